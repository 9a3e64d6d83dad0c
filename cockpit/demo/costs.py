"""Cost items of the offline channels of one study: HCP referral programme (liaison
and per-referral fees), brochures (print runs, distribution), screening-event fees,
newsletter issues and patient-community sponsorships. Amounts in EUR."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.funnel import CH
from cockpit.demo.population import StudyLeads, newsletter_issue_days
from cockpit.demo.util import DAY, iso_day, month_key
from cockpit.demo.world import World


def _month_starts(days: np.ndarray) -> np.ndarray:
    """First day of each month within `days` (the first day counts as a start)."""
    months = days.astype("datetime64[D]").astype("datetime64[M]")
    new = np.r_[True, months[1:] != months[:-1]]
    return days[new]


def _month_ends(days: np.ndarray) -> np.ndarray:
    """Last day of each month within `days` (`end` for the running month)."""
    months = days.astype("datetime64[D]").astype("datetime64[M]")
    last = np.r_[months[1:] != months[:-1], True]
    return days[last]


def _items(day, channel, study_id, campaign, site, amount, description) -> pd.DataFrame:
    day = np.asarray(day, dtype=np.int64)
    n = len(day)
    return pd.DataFrame({
        "day": day, "channel": channel, "campaign_id": campaign, "study_id": study_id,
        "site_id": np.broadcast_to(np.asarray(site, dtype=object), (n,)) if n else np.array([], dtype=object),
        "amount": np.round(np.asarray(amount, dtype=float), 2),
        "description": np.broadcast_to(np.asarray(description, dtype=object), (n,)) if n else np.array([], dtype=object)})


def offline_costs(world: World, study_idx: int, leads: StudyLeads, rng: np.random.Generator) -> pd.DataFrame:
    """All offline cost items of the study, dated when incurred."""
    days = leads.days
    study_id = world.studies.study_id[study_idx]
    camp = world.campaigns[world.campaigns.study_idx == study_idx].set_index("channel_id").campaign_id
    site_ids = world.sites.site_id.to_numpy()
    act = world.sites.activation_day.to_numpy()
    a = leads.arrays
    parts = []

    # HCP referral programme: a monthly liaison fee and a fee per referral per site.
    ends = _month_ends(days)
    parts.append(_items(ends, "hcp_referral", study_id, camp["hcp_referral"], "",
                        np.full(len(ends), P.HCP_LIAISON_PER_STUDY_MONTH), "HCP liaison (monthly)"))
    ref = a["channel"] == CH["hcp_referral"]
    if ref.any():
        month = month_key(a["lead_ts"][ref] // DAY)
        fees = pd.DataFrame({"site": a["site"][ref], "month": month}).value_counts().sort_index()
        month_end = dict(zip(month_key(ends), ends))
        parts.append(_items([month_end[m] for _, m in fees.index], "hcp_referral", study_id, camp["hcp_referral"],
                            site_ids[[s for s, _ in fees.index]], fees.to_numpy() * P.HCP_FEE_PER_REFERRAL,
                            "HCP referral fees"))

    # Brochures: a print run every two months, distribution per active site and month.
    starts = _month_starts(days)
    runs = starts[::2]
    parts.append(_items(runs, "paper_brochure", study_id, camp["paper_brochure"], "",
                        rng.uniform(*P.BROCHURE_PRINT_RUN, len(runs)), "Brochure print run"))
    for s in leads.site_idx[act[leads.site_idx] >= 0]:
        sd = starts[starts >= act[s]]
        parts.append(_items(sd, "paper_brochure", study_id, camp["paper_brochure"], site_ids[s],
                            rng.uniform(*P.BROCHURE_DISTRIBUTION_PER_SITE_MONTH, len(sd)),
                            "Brochure distribution"))

    # Screening events: one fee per event.
    ev = leads.events
    parts.append(_items(ev.day, "screening_event", study_id, camp["screening_event"], site_ids[leads.site_idx[ev.site]],
                        rng.uniform(*P.SCREENING_EVENT_FEE, len(ev.day)), "Screening event fee"))

    # Newsletter issues and community sponsorships.
    issues = newsletter_issue_days(days)
    parts.append(_items(issues, "newsletter", study_id, camp["newsletter"], "",
                        rng.uniform(*P.NEWSLETTER_ISSUE_FEE, len(issues)), "Newsletter issue sponsorship"))
    parts.append(_items(starts, "patient_community", study_id, camp["patient_community"], "",
                        rng.uniform(*P.COMMUNITY_SPONSORSHIP_MONTH, len(starts)), "Community sponsorship (monthly)"))
    return pd.concat(parts, ignore_index=True).sort_values(["day", "channel"], kind="stable").reset_index(drop=True)


def cost_rows(costs: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """offline_costs_*.csv rows."""
    return pd.DataFrame({
        "cost_id": ids, "date": iso_day(costs.day.to_numpy()), "channel": costs.channel.to_numpy(),
        "campaign_id": costs.campaign_id.to_numpy(), "study_id": costs.study_id.to_numpy(),
        "site_id": costs.site_id.to_numpy(), "amount": [f"{v:.2f}" for v in costs.amount.to_numpy()],
        "currency": "EUR", "description": costs.description.to_numpy(),
        "_month": month_key(costs.day.to_numpy())})
