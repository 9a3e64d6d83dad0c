"""What each KPI means, in the words shown on hover and in exports (DESIGN.md)."""
from cockpit.metrics import compliance as _compliance

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
    # Channels page
    "impressions": "Impressions: times the channel's ads were shown in the period, as the ad "
    "platform reports them. Empty for channels that report no reach (paper, events, referrals).",
    "clicks": "Clicks: ad clicks in the period, as the ad platform reports them.",
    "ctr_pct": "CTR = clicks / impressions, in percent.",
    "cpl": "CPL (cost per lead) = spend / leads in the period.",
    "eligible_rate_pct": "Eligible rate: of the leads created in the period, the share (%) "
    "whose pre-screen came out eligible, whenever that happened (cohort based).",
    "cost_per_eligible": "Cost per eligible = spend / persons pre-screened eligible in the period.",
    "value": "Value of the randomized: persons randomized in the period x their study's value "
    "of one randomized patient, summed over studies.",
    "roi_pct": "ROI = (randomized x value per randomized - spend) / spend, in percent; value "
    "set per study. Compare with cost per randomized, which needs no assumed value.",
    "share_budget_pct": "Share of budget: the row's spend as % of all spend shown.",
    "share_leads_pct": "Share of leads: the row's leads as % of all leads shown (unattributed included).",
    "share_eligible_pct": "Share of eligible pre-screens: the row's eligible as % of all eligible shown.",
    "share_randomized_pct": "Share of randomized: the row's randomized as % of all randomized shown.",
    # Segments page
    "allocated_spend": "Spend allocated to the segment: each study x channel x week's spend "
    "split by the segments' shares of that cell's leads (weeks without leads: shares over the "
    "period). Not shown with a site filter.",
    "allocated_cost_per_randomized": "Cost per randomized of the segment = allocated spend / "
    "persons of the segment randomized in the period.",
    "randomized_per_1000": "Randomized per 1,000 of allocated spend (yield).",
    "km_leads": "Leads followed for time to enrolment: randomized, or still open (no exit, a step "
    "within the last 60 days, and the pre-screener passed or started within the last 14 days).",
    "open_leads": "Leads still in process (censored at the latest day with data): not randomized, "
    "no exit, a step within the last 60 days, and the pre-screener passed or started within the "
    "last 14 days.",
    "yield_index": "Randomized per 1,000 spend / the best segment's (1 = best).",
    "speed_index": "Shortest median days to enrolment / this segment's (1 = fastest; 0 = median "
    "not reached).",
    "priority": "Priority = 100 x (yield index + speed index) / 2: 100 is the cheapest and "
    "fastest segment.",
    "caution": "Shown when fewer than 10 of the segment's leads were randomized: its yield, "
    "speed and priority rest on a handful of patients.",
    # Funnel page
    "reached": "Reached: of the leads created in the period, persons who ever reached this stage "
    "(up to the latest day with data). Reaching a later stage, or leaving from it, counts as "
    "having passed this one.",
    "conversion_pct": "Cohort conversion: reached / leads created in the period, in percent.",
    "step_conversion_pct": "Step conversion: reached / reached at the stage before, in percent.",
    "pct_of_exit": "Share (%) of this exit's persons with this reason.",
    "pct_of_leads": "Persons as % of the leads created in the period.",
    "median_days": "Median days between the two stages of the period's leads who reached both "
    "(25th and 75th percentiles beside it); persons still waiting are not in it.",
    "randomized_so_far": "Of these leads (created in the period), those randomized by the "
    "latest day with data.",
    "censored": "Leads not randomized, still open or out of the funnel: censored at the latest "
    "day with data (Kaplan-Meier), not dropped.",
    "pct_randomized_90d": "Share (%) of the leads randomized within 90 days of the lead: 1 - "
    "Kaplan-Meier, leads not randomized censored at the latest day with data. Empty when no lead "
    "was followed that long.",
    "pct_randomized_30d": "Share (%) of the leads randomized within 30 days of the lead "
    "(as for 90 days).",
    "pct_randomized_60d": "Share (%) of the leads randomized within 60 days of the lead "
    "(as for 90 days).",
    "median_days_to_randomization": "Median days from lead to randomization (Kaplan-Meier) over "
    "the period's leads that enrol or still can: randomized leads are events; open leads (no exit "
    "recorded, a step within the last 60 days before the latest day with data, the pre-screener "
    "passed or started within the last 14 days) are censored at the latest day with data. Leads "
    "that left the funnel (pre-screen ineligible, not reachable, declined, screen fail, withdrawn "
    "before randomization, no step for 60 days, or a pre-screener abandoned for 14 days) are not part "
    "of it; the conversion and drop-off tables show them. Empty = not reached: fewer than half of "
    "these leads randomized yet.",
    "median_ci_low": "Lower limit of the 95% interval of the median (Brookmeyer-Crowley, "
    "log-log band).",
    "median_ci_high": "Upper limit of the 95% interval of the median (Brookmeyer-Crowley, "
    "log-log band); empty = not reached.",
    "median_days_randomized_only": "Median days from lead to randomization of the leads "
    "randomized so far: not Kaplan-Meier, so a young cohort looks faster than it is.",
    "lead_to_randomized_pct": "Lead to randomized: of the leads created in the period, the "
    "share (%) randomized so far (cohort conversion).",
    "typical_days_to_randomization": "90th percentile of days from lead to randomization of "
    "all randomized persons under the filter (all dates): a cohort whose leads are mostly "
    "younger than this is too young to judge.",
    # Sites page
    "rank": "Rank by randomized per site-month among active sites (1 = fastest). Click any "
    "column header to sort by it.",
    "months_active": "Months since the site's activation, up to the latest day with data.",
    "site_months": "Active site-months in the period: days the site was active within the "
    "period / 30.4375.",
    "randomized_per_site_month": "Enrolment rate: persons randomized at the site in the period "
    "/ active site-months in the period.",
    "needed_pace": "Needed pace: randomized per site-month every active site of the study must "
    "keep from now on to reach the target = (target - randomized so far) / (active sites x "
    "months left to the planned end). Empty after the planned end.",
    "planned_pace": "Planned pace = target / (sites of the study x planned months from study "
    "start to planned end).",
    "pct_of_needed_pace": "Randomized per site-month as % of the needed pace (100 = on pace).",
    "randomized_since_activation": "Persons randomized at the site since its activation: all "
    "dates, channels and segments.",
    "non_enrolling": "Non-enrolling site: active, and nobody randomized since its activation.",
    "to_contact": "Leads of the period at the site that needed a call from the site "
    "(pre-screen eligible or further).",
    "median_working_days_to_contact": "Median working days (Mon-Fri) from the lead's date to "
    "the date the site first reached the person, over those reached.",
    "pct_contacted_within_2wd": "Of the leads that needed a call and are at least 2 working "
    "days old, the share (%) the site reached within 2 working days.",
    "waiting_for_contact": "Leads that needed a call and have no contact and no outcome yet.",
    "slow_contact": "Slow contact: median above 2 working days from lead to first contact, on "
    "at least 5 contacts.",
    "screened": "Persons with a screening visit at the site in the period (screen fails included).",
    "screen_failed": "Screened persons who failed screening.",
    "screen_fail_rate": "Screen-fail rate = screen failed / screened in the period, in percent.",
    "sites_active": "Sites whose activation date is on or before the latest day with data.",
    "sites_on_pace": "Active sites whose randomized per site-month is at least their study's "
    "needed pace.",
    # Weekly review page
    "randomized_to_date": "Randomized to date: every patient of the study randomized up to the "
    "latest day with data, all channels and sites.",
    "planned_to_date": "Planned to date: target x elapsed share of the time from study start to "
    "planned end (a straight-line plan).",
    "pace_pct": "Pace against plan = randomized to date / planned to date, in percent "
    "(100 = on plan).",
    "forecast_date": "Forecast day the target is reached: the median of the recruitment "
    "forecast (Poisson-Gamma model over the study's sites), with its 80% interval.",
    "p_on_time_pct": "Probability (%) of reaching the target by the planned end, from the "
    "recruitment forecast.",
    "cost_per_randomized_to_date": "Cost per randomized to date: all spend of the study up to "
    "the latest day with data / randomized to date.",
    "randomized_this_week": "Randomized in the 7 days ending on the latest day with data.",
    "randomized_week_before": "Randomized in the 7 days before those.",
    "leads_this_week": "Leads in the 7 days ending on the latest day with data.",
    "leads_week_before": "Leads in the 7 days before those.",
    "leads_change_pct": "Change of leads this week against the week before, in percent.",
    "alerts_firing": "Alert rules firing now whose scope names the study; the total also counts "
    "rules for the whole portfolio.",
}

# The Compliance page's cards, worded from cockpit.metrics.compliance's definitions.
_COMPLIANCE_CARDS = {
    "compliance_consent_rate_research": _compliance.DEFINITIONS["consent_rate_pct"]
    + " Purpose: to be contacted for research.",
    "compliance_refusal_rate_research": _compliance.DEFINITIONS["refusal_rate_pct"]
    + " Purpose: to be contacted for research.",
    "compliance_consent_rate_tracking": _compliance.DEFINITIONS["consent_rate_pct"] + " Purpose: tracking.",
    "compliance_refusal_rate_tracking": _compliance.DEFINITIONS["refusal_rate_pct"] + " Purpose: tracking.",
    "compliance_withdrawals": _compliance.DEFINITIONS["withdrawals"] + " Both purposes.",
    "compliance_median_hours_to_apply": _compliance.DEFINITIONS["median_hours_to_apply"]
    + " Withdrawals of the period, both purposes.",
    "compliance_median_days_to_erase": _compliance.DEFINITIONS["median_days_to_erase"],
    "compliance_access_over_30_days": _compliance.DEFINITIONS["access_over_30_days"],
}
KPI_DEFINITIONS.update(_COMPLIANCE_CARDS)
