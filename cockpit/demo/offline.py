"""Spend of the offline channels of one study, booked as cost items: the HCP referral
programme (weekly outreach and education), community sponsorships (weekly),
newsletter issue sponsorships (every other week), brochure print runs and their
distribution to the sites (weekly), and a fee per screening event.

Offline budgets follow the media plan's flights (`delivery.plan_levels`) the way ad
budgets do, and their leads follow the channel's planted response to spend
(`cockpit.demo.media`). Amounts are drawn here in units of the channel's nominal leads;
the media plan turns them into euros at the channel's cost per lead.

No cost item is dated on the first or last day of a month: the cockpit reads offline
items on those days as monthly fees and spreads them over their month.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.delivery import CHANNEL_INDEX, active_matrix, plan_levels, weekday
from cockpit.demo.util import iso_day
from cockpit.demo.world import World

SITE_CHANNELS = ("hcp_referral", "patient_community", "newsletter", "paper_brochure")
BOOKING_PERIOD = {"weekly": 7, "biweekly": 14}


@dataclass
class ScreeningEvents:
    """Public screening events of a study: one row per event held."""

    site: np.ndarray      # position among the study's sites
    day: np.ndarray
    name: np.ndarray
    fee: np.ndarray       # in nominal-lead units until the media plan prices them, then EUR


# ---------------------------------------------------------------- dates


def off_month_edges(days: np.ndarray) -> np.ndarray:
    """Move days on the 1st of a month one day later and days on the last day one day
    earlier (so that no item looks like a monthly fee)."""
    days = np.asarray(days, dtype=np.int64)
    d = days.astype("datetime64[D]")
    first = d == d.astype("datetime64[M]").astype("datetime64[D]")
    last = (d + 1).astype("datetime64[M]") != d.astype("datetime64[M]")
    return days + first.astype(np.int64) - last.astype(np.int64)


def booking_days(spec: P.OfflineSpec, days: np.ndarray) -> np.ndarray:
    """Days of the weekly or every-other-week items within `days` (every other week:
    weeks of even number since Monday 1970-01-05), off the months' edges."""
    on = weekday(days) == spec.weekday
    if spec.booking == "biweekly":
        on &= ((days - 4) // 7) % 2 == 0
    book = off_month_edges(days[on])
    return book[(book >= days[0]) & (book <= days[-1])]


def weekly_profile(channel_id: str, days: np.ndarray) -> np.ndarray:
    """Relative lead intensity by weekday, mean 1 over a week: HCPs refer on weekdays,
    brochures are read in clinics on weekdays; the others are flat."""
    wd = weekday(days)
    if channel_id == "hcp_referral":
        weights = np.where(np.arange(7) < 5, 1.0, 0.08)
    elif channel_id == "paper_brochure":
        weights = np.where(np.arange(7) < 5, 1.15, 0.6)
    else:
        return np.ones(len(days))
    return (weights / weights.mean())[wd]


# ---------------------------------------------------------------- bookings


def site_weights(world: World, study_idx: int, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global indices of the study's sites and each active site's share of the day's
    capacity (sites x days, columns sum to 1): leads go to sites by their rates."""
    idx, active = active_matrix(world, study_idx, days)
    w = world.sites.rate.to_numpy()[idx][:, None] * active
    return idx, w / np.maximum(w.sum(axis=0, keepdims=True), 1e-12)


def _item(day, channel: str, site, amount, description) -> pd.DataFrame:
    day = np.asarray(day, dtype=np.int64)
    n = len(day)
    return pd.DataFrame({
        "day": day, "channel": channel, "site": np.broadcast_to(np.asarray(site, dtype=np.int64), (n,)),
        "amount": np.asarray(amount, dtype=float), "description": np.full(n, description, dtype=object)})


def _booked(world: World, study_idx: int, channel_id: str, days: np.ndarray, ramp: np.ndarray,
            site_idx: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Cost items of a weekly or every-other-week channel, in nominal-lead units: the
    period's nominal leads of the channel, times the capacity open, the plan's level and
    a little noise. Items in dark flights are not booked."""
    spec = P.OFFLINE[channel_id]
    share = P.CHANNELS[CHANNEL_INDEX[channel_id]].lead_share
    level = plan_levels(world, channel_id, days, rng)
    book = booking_days(spec, days)
    pos = book - days[0]
    units = (BOOKING_PERIOD[spec.booking] * share * world.studies.full_leads_per_day[study_idx] * ramp[pos]
             * level[pos] * np.exp(P.BOOKING_NOISE * rng.standard_normal(len(book))))
    held = units > 0
    book, units = book[held], units[held]
    if channel_id != "paper_brochure":
        return _item(book, channel_id, -1, units, spec.description)
    # a brochure batch: the print run (study level) and its distribution to the active
    # sites, in proportion to their rates
    _, w = site_weights(world, study_idx, book)
    site_pos, k = np.nonzero(w > 0)
    return pd.concat([
        _item(book, channel_id, -1, units * P.BROCHURE_PRINT_SHARE, "Brochure print run"),
        _item(book[k], channel_id, site_idx[site_pos], units[k] * (1 - P.BROCHURE_PRINT_SHARE) * w[site_pos, k],
              "Brochure distribution")], ignore_index=True)


def _events(world: World, study_idx: int, days: np.ndarray, site_idx: np.ndarray,
            rng: np.random.Generator) -> ScreeningEvents:
    """Saturday screening events every 6-10 weeks per active site; an event planned in a
    dark flight is not held. A fee (in nominal-lead units) follows the plan's level and
    the site's share of the study's capacity: its nominal sign-ups."""
    spec = P.OFFLINE["screening_event"]
    sites = world.sites
    act = sites.activation_day.to_numpy()[site_idx]
    rate = sites.rate.to_numpy()[site_idx]
    lo, hi = P.SCREENING_EVENT_INTERVAL_DAYS
    n_max = int((days[-1] - days[0]) // lo) + 2
    gaps = rng.integers(lo, hi + 1, size=(len(site_idx), n_max))
    first = act[:, None] + rng.integers(P.SCREENING_EVENT_FIRST_DAYS[0], P.SCREENING_EVENT_FIRST_DAYS[1] + 1,
                                        size=(len(site_idx), 1))
    ev = first + np.concatenate([np.zeros((len(site_idx), 1), int), np.cumsum(gaps[:, :-1], axis=1)], axis=1)
    ev = ev + (spec.weekday - weekday(ev)) % 7                # move to the Saturday
    ev = off_month_edges(ev.ravel()).reshape(ev.shape)
    valid = (act[:, None] >= 0) & (ev <= days[-1]) & (ev >= days[0])
    site_pos, k = np.nonzero(valid)
    ev_day = ev[site_pos, k]
    order = np.lexsort((site_pos, ev_day))
    site_pos, ev_day = site_pos[order], ev_day[order]

    level = plan_levels(world, "screening_event", days, rng)[ev_day - days[0]]
    noise = np.exp(P.BOOKING_NOISE * rng.standard_normal(len(ev_day)))
    held = level > 0
    site_pos, ev_day, level, noise = site_pos[held], ev_day[held], level[held], noise[held]
    share = P.CHANNELS[CHANNEL_INDEX["screening_event"]].lead_share
    per_event = share * world.studies.full_leads_per_day[study_idx] * rate / rate.sum() * (lo + hi) / 2
    units = per_event[site_pos] * level * noise

    city = sites.city.to_numpy()[site_idx][site_pos]
    area = world.studies.therapeutic_area[study_idx].split(" (")[0]
    month = np.array([m[:7] for m in iso_day(ev_day)]) if len(ev_day) else np.array([], str)
    names = np.char.add(np.char.add(f"{area} screening day ", city.astype(str)), np.char.add(" ", month))
    return ScreeningEvents(site_pos, ev_day, names, units)


def offline_bookings(world: World, study_idx: int, days: np.ndarray, ramp: np.ndarray,
                     rng: np.random.Generator) -> tuple[pd.DataFrame, ScreeningEvents]:
    """The study's offline cost items (day, channel, site: global index or -1 for the
    study, amount in nominal-lead units, description) and its screening events."""
    site_idx, _ = site_weights(world, study_idx, days[:1])
    items = [_booked(world, study_idx, ch, days, ramp, site_idx, rng) for ch in SITE_CHANNELS]
    events = _events(world, study_idx, days, site_idx, rng)
    items.append(_item(events.day, "screening_event", site_idx[events.site], events.fee,
                       P.OFFLINE["screening_event"].description))
    table = pd.concat(items, ignore_index=True).sort_values(["day", "channel"], kind="stable")
    return table.reset_index(drop=True), events
