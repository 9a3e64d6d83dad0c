"""Daily delivery of the paid campaigns of one study and the leads they produce.

Spend follows budget flights (so the whole response curve is observed); leads per
day follow a Hill curve of the geometric adstock of spend, so they saturate and
carry over into the following days and weeks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from cockpit.demo import params as P
from cockpit.demo.world import World, ctr_drift_day

CHANNEL_INDEX = {c.channel_id: i for i, c in enumerate(P.CHANNELS)}
CONVERT_SAME_DAY = 0.65   # leads whose ad click was on the day of the lead
CLICK_LAG_P = 0.3         # geometric lag (days) of the other converters' clicks


@dataclass
class PaidDelivery:
    """Ad rows, leads per creative-day and what was planted, for one study."""

    days: np.ndarray              # day numbers of the study's paid calendar
    ads: pd.DataFrame             # day, creative_idx, spend_cents, impressions, clicks
    lead_day: np.ndarray          # one entry per paid lead
    lead_creative: np.ndarray
    click_day: np.ndarray         # day of the converter's ad click (-1 none)
    curves: list[dict]            # planted response per campaign
    arms: pd.DataFrame            # per creative: expected clicks and leads, impressions


def active_matrix(world: World, study_idx: int, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(global site indices of the study, active[site, day]) for the given days."""
    sites = world.sites
    idx = np.flatnonzero(sites.study_idx.to_numpy() == study_idx)
    act = sites.activation_day.to_numpy()[idx]
    active = (act[:, None] >= 0) & (days[None, :] >= act[:, None])
    return idx, active


def weekday(days: np.ndarray) -> np.ndarray:
    """0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def study_days(world: World, study_idx: int) -> np.ndarray:
    """Days from the study's first site activation to `end`."""
    start = int(world.campaigns.start_day[world.campaigns.study_idx == study_idx].min())
    return np.arange(start, world.end_day + 1)


def capacity_ramp(world: World, study_idx: int, days: np.ndarray) -> np.ndarray:
    """Share of the study's eventual site capacity active on each day."""
    idx, active = active_matrix(world, study_idx, days)
    rate = world.sites.rate.to_numpy()[idx]
    total = rate[active[:, -1]].sum()
    return (rate[:, None] * active).sum(axis=0) / total


def flight_levels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Budget level per day: piecewise constant flights, sometimes paused."""
    lengths = rng.integers(P.FLIGHT_MIN_DAYS, P.FLIGHT_MAX_DAYS + 1, size=n // P.FLIGHT_MIN_DAYS + 2)
    lo, hi = np.log(P.FLIGHT_LEVEL_RANGE[0]), np.log(P.FLIGHT_LEVEL_RANGE[1])
    levels = np.exp(rng.uniform(lo, hi, size=len(lengths)))
    levels[rng.random(len(lengths)) < P.FLIGHT_PAUSE_PROB] = 0.0
    levels[0] = max(levels[0], 1.0)  # campaigns launch at full budget
    flight = np.searchsorted(np.cumsum(lengths), np.arange(n), side="right")
    return levels[flight]


def hill(x: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Hill saturation x^n / (K^n + x^n), in [0, 1)."""
    xn = np.power(np.maximum(x, 0.0), shape)
    return xn / (half ** shape + xn)


def adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    """Geometric adstock A_t = (1 - d) * spend_t + d * A_{t-1}; steady state = spend."""
    return lfilter([1.0 - decay], [1.0, -decay], spend)


def flight_yield(shape: float) -> float:
    """Mean response over the budget flights relative to the nominal budget's
    (levels log-uniform, some paused): the curve is lifted by its inverse so that a
    campaign brings its nominal share of leads on average."""
    lo, hi = np.log(P.FLIGHT_LEVEL_RANGE[0]), np.log(P.FLIGHT_LEVEL_RANGE[1])
    levels = np.exp(np.linspace(lo, hi, 401))
    r = P.NOMINAL_SATURATION
    half = ((1 - r) / r) ** (1 / shape)
    return float(np.mean(hill(levels, half, shape)) / r * (1 - P.FLIGHT_PAUSE_PROB))


def campaign_curve(world: World, study_idx: int, channel_id: str) -> dict:
    """Planted response of a study's campaign on a paid channel. The channel's curve
    is scaled by the study's audience (its leads per day at full capacity), so the
    nominal budget sits at half saturation in every study."""
    spec = P.PAID[channel_id]
    share = P.CHANNELS[CHANNEL_INDEX[channel_id]].lead_share
    nominal_leads = share * world.studies.full_leads_per_day[study_idx]
    r = P.NOMINAL_SATURATION
    budget = spec.cost_per_lead * nominal_leads
    half = budget * ((1 - r) / r) ** (1 / spec.hill_shape)
    return {
        "channel_id": channel_id,
        "nominal_budget_eur_per_day": budget,
        "half_saturation_eur_per_day": half,
        "max_leads_per_day": nominal_leads / (r * flight_yield(spec.hill_shape)),
        "shape": spec.hill_shape,
        "adstock_decay": spec.adstock_decay,
    }


def _spend_plan(curve: dict, ramp: np.ndarray, days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(days)
    level = flight_levels(n, rng)
    week = np.where(weekday(days) >= 5, P.WEEKEND_SPEND_FACTOR, 1.0)
    noise = np.exp(P.DAILY_SPEND_NOISE * rng.standard_normal(n))
    return curve["nominal_budget_eur_per_day"] * ramp * level * week * noise


def _split(total: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split integer totals (days) across creatives by planned shares."""
    return rng.multinomial(total, shares / shares.sum())


def _campaign_delivery(world: World, campaign_idx: int, days: np.ndarray, ramp: np.ndarray,
                       rng: np.random.Generator) -> tuple[dict, pd.DataFrame, dict]:
    camp = world.campaigns.loc[campaign_idx]
    spec = P.PAID[camp.channel_id]
    curve = campaign_curve(world, camp.study_idx, camp.channel_id)
    crs = world.creatives[world.creatives.campaign_idx == campaign_idx]
    shares, ctr_f, lead_f = (crs[c].to_numpy(float) for c in ("share", "ctr_factor", "lead_factor"))

    planned = _spend_plan(curve, ramp, days, rng)
    cpm = spec.cpm_eur * np.exp(P.CPM_NOISE * rng.standard_normal(len(days)))
    impressions = rng.poisson(planned / cpm * 1000.0)
    impr_cr = _split(impressions, shares, rng)                          # days x creatives
    cents = np.rint(planned * 100).astype(np.int64)
    cents_cr = np.where(impressions[:, None] > 0,
                        np.rint(cents[:, None] * impr_cr / np.maximum(impressions[:, None], 1)), 0).astype(np.int64)
    spend = cents_cr.sum(axis=1) / 100.0

    drift = _drift_multiplier(world, camp, days)
    ctr = spec.ctr * ctr_f[None, :] * drift[:, None]
    clicks = rng.binomial(impr_cr, ctr)
    mu = curve["max_leads_per_day"] * hill(adstock(spend, spec.adstock_decay),
                                           curve["half_saturation_eur_per_day"], spec.hill_shape) * drift
    weight = shares * ctr_f * lead_f
    mu_cr = mu[:, None] * weight[None, :] / weight.sum()
    leads = rng.poisson(mu_cr)

    curve.update(campaign_id=camp.campaign_id, spend_eur=float(spend.sum()), leads=int(leads.sum()))
    rows = _ad_rows(days, crs.index.to_numpy(), cents_cr, impr_cr, clicks)
    counts = {"leads": leads, "clicks": clicks, "creatives": crs.index.to_numpy(),
              "expected_clicks": (impr_cr * ctr).sum(axis=0), "expected_leads": mu_cr.sum(axis=0),
              "impressions": impr_cr.sum(axis=0)}
    return curve, rows, counts


def _drift_multiplier(world: World, camp, days: np.ndarray) -> np.ndarray:
    study_id, channel_id, first_day, factor = ctr_drift_day(world)
    if camp.study_id == study_id and camp.channel_id == channel_id:
        return np.where(days >= first_day, factor, 1.0)
    return np.ones(len(days))


def _ad_rows(days: np.ndarray, creative_idx: np.ndarray, cents: np.ndarray, impr: np.ndarray,
             clicks: np.ndarray) -> pd.DataFrame:
    d, c = np.nonzero(impr > 0)
    return pd.DataFrame({"day": days[d], "creative_idx": creative_idx[c], "spend_cents": cents[d, c],
                         "impressions": impr[d, c], "clicks": clicks[d, c]})


def _converter_click_days(leads: np.ndarray, clicks: np.ndarray, days: np.ndarray,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand lead counts to one entry per lead with the day of its ad click: mostly
    the same day, else a few days earlier (the carried-over ones), never a day
    without clicks on that creative."""
    d, c = np.nonzero(leads)
    n_each = leads[d, c]
    d, c = np.repeat(d, n_each), np.repeat(c, n_each)
    pos = np.arange(len(days))[:, None]
    last = np.maximum.accumulate(np.where(clicks > 0, pos, -1), axis=0)   # days x creatives
    lag = np.where(rng.random(len(d)) < CONVERT_SAME_DAY, 0, rng.geometric(CLICK_LAG_P, len(d)))
    cand = np.maximum(d - lag, 0)
    click = last[cand, c]
    click = np.where(click < 0, last[d, c], click)
    return d, c, np.where(click >= 0, days[np.maximum(click, 0)], -1)


def paid_delivery(world: World, study_idx: int, rng: np.random.Generator) -> PaidDelivery:
    """Spend, delivery and paid leads of every paid campaign of the study."""
    days = study_days(world, study_idx)
    ramp = capacity_ramp(world, study_idx, days)
    camps = world.campaigns
    paid = camps.index[(camps.study_idx == study_idx) & camps.channel_id.isin(P.PAID_CHANNELS)]
    curves, rows, lead_day, lead_cr, click_day, arms = [], [], [], [], [], []
    for ci in paid:
        curve, ad, counts = _campaign_delivery(world, ci, days, ramp, rng)
        curves.append(curve)
        rows.append(ad)
        d, c, clicked = _converter_click_days(counts["leads"], counts["clicks"], days, rng)
        lead_day.append(days[d])
        lead_cr.append(counts["creatives"][c])
        click_day.append(clicked)
        arms.append(pd.DataFrame({
            "creative_idx": counts["creatives"], "impressions": counts["impressions"],
            "clicks": counts["clicks"].sum(axis=0), "leads": counts["leads"].sum(axis=0),
            "expected_clicks": counts["expected_clicks"], "expected_leads": counts["expected_leads"]}))
    return PaidDelivery(days, pd.concat(rows, ignore_index=True), np.concatenate(lead_day),
                        np.concatenate(lead_cr), np.concatenate(click_day), curves,
                        pd.concat(arms, ignore_index=True))
