"""Daily delivery of the paid campaigns of one study and the leads they produce, and
the media plan every channel's spend follows.

Spend follows the budget flights of the media plan (so the whole response curve is
observed, from dark weeks to twice the nominal budget); the leads a campaign brings are
its share of the channel's planted response (`cockpit.demo.media`: a Hill curve of the
adstock of the channel's weekly spend), so they saturate and carry over into the
following weeks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from cockpit.demo import params as P
from cockpit.demo.util import rng_for
from cockpit.demo.world import World, ctr_drift_day

CHANNEL_INDEX = {c.channel_id: i for i, c in enumerate(P.CHANNELS)}
CONVERT_SAME_DAY = 0.65   # leads whose ad click was on the day of the lead
CLICK_LAG_P = 0.3         # geometric lag (days) of the other converters' clicks
STREAM_PLAN = 2           # random stream of the media plan (per channel)


@dataclass
class PaidDelivery:
    """Ad rows, leads per creative-day and what was planted, for one study."""

    days: np.ndarray              # day numbers of the study's paid calendar
    ads: pd.DataFrame             # day, creative_idx, spend_cents, impressions, clicks
    lead_day: np.ndarray          # one entry per paid lead
    lead_creative: np.ndarray
    click_day: np.ndarray         # day of the converter's ad click (-1 none)
    curves: list[dict]            # per campaign: spend, expected and drawn leads
    arms: pd.DataFrame            # per creative: expected clicks and leads, impressions
    expected_daily: dict[str, np.ndarray]   # expected leads per day by channel (CTR drift included)


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


def plan_calendar(world: World, channel_id: str) -> tuple[int, np.ndarray, np.ndarray]:
    """The portfolio's media plan of a channel: (first day, level of each flight, flight
    of each day from the first day to `end`). Flights last 2-6 weeks at a level drawn
    log-uniformly within FLIGHT_LEVEL_RANGE, or are dark (level 0)."""
    first = int(world.studies.start_day.min())
    n = world.end_day + 1 - first
    rng = rng_for(world.seed, STREAM_PLAN, CHANNEL_INDEX[channel_id])
    lengths = rng.integers(P.FLIGHT_MIN_DAYS, P.FLIGHT_MAX_DAYS + 1, size=n // P.FLIGHT_MIN_DAYS + 2)
    lo, hi = np.log(P.FLIGHT_LEVEL_RANGE[0]), np.log(P.FLIGHT_LEVEL_RANGE[1])
    levels = np.exp(rng.uniform(lo, hi, size=len(lengths)))
    levels[rng.random(len(lengths)) < P.FLIGHT_PAUSE_PROB] = 0.0
    flight = np.searchsorted(np.cumsum(lengths), np.arange(n), side="right")
    _, drift_channel, drift_day, _ = ctr_drift_day(world)
    if channel_id == drift_channel:
        # the planted CTR drift must be observable: no dark or thin flight around its date
        lo_day, hi_day = drift_day - P.DRIFT_LIVE_DAYS - first, drift_day + P.DRIFT_LIVE_DAYS - first
        near = np.unique(flight[max(lo_day, 0):max(min(hi_day, n), 0)])
        levels[near] = np.maximum(levels[near], P.DRIFT_MIN_LEVEL)
    return first, levels, flight


def plan_levels(world: World, channel_id: str, days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Budget level of one study's campaign on each of `days`: the plan's flight level
    times the study's own deviation for that flight (lognormal, STUDY_FLIGHT_SD)."""
    first, levels, flight = plan_calendar(world, channel_id)
    deviation = np.exp(P.STUDY_FLIGHT_SD * rng.standard_normal(len(levels)))
    f = flight[np.asarray(days) - first]
    return levels[f] * deviation[f]


def hill(x: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Hill saturation x^n / (K^n + x^n), in [0, 1)."""
    xn = np.power(np.maximum(x, 0.0), shape)
    return xn / (half ** shape + xn)


def adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    """Geometric adstock A_t = (1 - d) * spend_t + d * A_{t-1} from nothing before the
    first step; steady state = spend."""
    return lfilter([1.0 - decay], [1.0, -decay], spend)


def paid_units(world: World, study_idx: int, days: np.ndarray, ramp: np.ndarray,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Planned daily spend of the study's paid campaigns in units of the channel's
    nominal leads (the media plan turns units into euros): the channel's share of the
    study's leads per day at full capacity, times the capacity open, the plan's level,
    a weekend dip and day-to-day noise."""
    full = world.studies.full_leads_per_day[study_idx]
    week = np.where(weekday(days) >= 5, P.WEEKEND_SPEND_FACTOR, 1.0)
    out = {}
    for channel_id in P.PAID_CHANNELS:
        share = P.CHANNELS[CHANNEL_INDEX[channel_id]].lead_share
        level = plan_levels(world, channel_id, days, rng)
        noise = np.exp(P.DAILY_SPEND_NOISE * rng.standard_normal(len(days)))
        out[channel_id] = share * full * ramp * level * week * noise
    return out


def _split(total: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split integer totals (days) across creatives by planned shares."""
    return rng.multinomial(total, shares / shares.sum())


def _split_cents(cents: np.ndarray, impr_cr: np.ndarray) -> np.ndarray:
    """Each day's spend (cents) split over the creatives by their impressions, the
    rounding remainder to the creative with most impressions: the creatives' spend adds
    up to the day's spend exactly."""
    total = np.maximum(impr_cr.sum(axis=1, keepdims=True), 1)
    out = (cents[:, None] * impr_cr) // total
    rest = cents - out.sum(axis=1)
    out[np.arange(len(cents)), np.argmax(impr_cr, axis=1)] += rest
    return out


def _campaign_delivery(world: World, campaign_idx: int, days: np.ndarray, planned: np.ndarray,
                       expected: np.ndarray, rng: np.random.Generator) -> tuple[dict, pd.DataFrame, dict]:
    """Impressions, clicks and spend per creative and day from the planned spend, and
    the campaign's leads: `expected` leads per day (its share of the channel's response,
    `cockpit.demo.media`), split over the creatives by their share, CTR and leads per
    click; the CTR drift lowers clicks and leads alike."""
    camp = world.campaigns.loc[campaign_idx]
    spec = P.PAID[camp.channel_id]
    crs = world.creatives[world.creatives.campaign_idx == campaign_idx]
    shares, ctr_f, lead_f = (crs[c].to_numpy(float) for c in ("share", "ctr_factor", "lead_factor"))

    cpm = spec.cpm_eur * np.exp(P.CPM_NOISE * rng.standard_normal(len(days)))
    cents = np.rint(planned * 100).astype(np.int64)
    # a day with spend has at least one impression, so every cent is reported
    impressions = np.where(cents > 0, np.maximum(rng.poisson(planned / cpm * 1000.0), 1), 0)
    impr_cr = _split(impressions, shares, rng)                          # days x creatives
    cents_cr = _split_cents(cents, impr_cr)
    spend = cents_cr.sum(axis=1) / 100.0

    drift = _drift_multiplier(world, camp, days)
    ctr = spec.ctr * ctr_f[None, :] * drift[:, None]
    clicks = rng.binomial(impr_cr, ctr)
    mu = expected * drift
    weight = shares * ctr_f * lead_f
    mu_cr = mu[:, None] * weight[None, :] / weight.sum()
    leads = rng.poisson(mu_cr)

    summary = {"campaign_id": camp.campaign_id, "study_id": camp.study_id, "channel_id": camp.channel_id,
               "spend_eur": float(spend.sum()), "expected_leads": float(mu.sum()), "leads": int(leads.sum())}
    rows = _ad_rows(days, crs.index.to_numpy(), cents_cr, impr_cr, clicks)
    counts = {"leads": leads, "clicks": clicks, "creatives": crs.index.to_numpy(),
              "expected_clicks": (impr_cr * ctr).sum(axis=0), "expected_leads": mu_cr.sum(axis=0),
              "impressions": impr_cr.sum(axis=0), "expected_daily": mu}
    return summary, rows, counts


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


def paid_delivery(world: World, study_idx: int, days: np.ndarray, planned: dict[str, np.ndarray],
                  expected: dict[str, np.ndarray], rng: np.random.Generator) -> PaidDelivery:
    """Delivery and leads of every paid campaign of the study: `planned` spend (EUR per
    day) and `expected` leads per day by channel, from the media plan."""
    camps = world.campaigns
    paid = camps.index[(camps.study_idx == study_idx) & camps.channel_id.isin(P.PAID_CHANNELS)]
    curves, rows, lead_day, lead_cr, click_day, arms = [], [], [], [], [], []
    expected_daily = {}
    for ci in paid:
        channel_id = camps.channel_id[ci]
        curve, ad, counts = _campaign_delivery(world, ci, days, planned[channel_id], expected[channel_id], rng)
        curves.append(curve)
        rows.append(ad)
        expected_daily[channel_id] = counts["expected_daily"]
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
                        pd.concat(arms, ignore_index=True), expected_daily)
