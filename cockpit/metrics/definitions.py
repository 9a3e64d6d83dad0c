"""What each KPI means, in the words shown on hover and in exports (DESIGN.md)."""

KPI_DEFINITIONS: dict[str, str] = {
    "leads": "Leads: persons whose first pre-screen form, referral or event sign-up for a "
    "study falls in the period. A person counts once per study.",
    "eligible": "Eligible: leads who completed the pre-screener as eligible, counted on the "
    "day they completed it.",
    "consented": "Consented: persons who signed the study's (e)Consent in the period.",
    "randomized": "Randomized: persons randomized in the period.",
    "spend": "Spend: ad-platform spend plus costs of offline channels (print, events, "
    "sponsorships, referral programme) booked in the period. Spend is recorded per study "
    "and channel, so it is not shown when a site or segment filter is set.",
    "cost_per_randomized": "Cost per randomized (cost per inclusion): spend in the period "
    "divided by persons randomized in the period.",
    "pct_target": "Share of the study's target of randomized patients reached to date.",
    "target_to_date": "Where a straight-line pace from study start to planned end would be.",
}
