"""offline_costs rows of one study: the offline cost items of the media plan
(`cockpit.demo.offline`, priced by `cockpit.demo.media`), dated when booked. HCP referral programme: weekly outreach
and education; community: weekly sponsorships; newsletter: issue sponsorships every
other week; brochures: print runs and their distribution to the sites; screening
events: one fee per event. Amounts in EUR."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cockpit.demo.media import StudySpend
from cockpit.demo.util import iso_day, month_key
from cockpit.demo.world import World


def offline_costs(world: World, study_idx: int, plan: StudySpend) -> pd.DataFrame:
    """All offline cost items of the study: day, channel, campaign_id, study_id, site_id
    ('' for study-level items), amount, description."""
    items = plan.items
    camp = world.campaigns[world.campaigns.study_idx == study_idx].set_index("channel_id").campaign_id
    site = items.site.to_numpy()
    site_ids = np.where(site >= 0, world.sites.site_id.to_numpy()[np.maximum(site, 0)], "")
    return pd.DataFrame({
        "day": items.day.to_numpy(), "channel": items.channel.to_numpy(),
        "campaign_id": camp.reindex(items.channel.to_numpy()).to_numpy(),
        "study_id": world.studies.study_id[study_idx], "site_id": site_ids.astype(object),
        "amount": items.amount.to_numpy(), "description": items.description.to_numpy()})


def cost_rows(costs: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """offline_costs_*.csv rows."""
    return pd.DataFrame({
        "cost_id": ids, "date": iso_day(costs.day.to_numpy()), "channel": costs.channel.to_numpy(),
        "campaign_id": costs.campaign_id.to_numpy(), "study_id": costs.study_id.to_numpy(),
        "site_id": costs.site_id.to_numpy(), "amount": [f"{v:.2f}" for v in costs.amount.to_numpy()],
        "currency": "EUR", "description": costs.description.to_numpy(),
        "_month": month_key(costs.day.to_numpy())})
