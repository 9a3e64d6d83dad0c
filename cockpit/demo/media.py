"""The media plan of the whole demo and the planted response of every channel to its
spend.

Spend. Every channel, paid or offline, follows the plan's budget flights
(`delivery.plan_levels`): paid campaigns spend daily, offline budgets are booked as cost
items (weekly outreach and sponsorships, newsletter issues, brochure batches, event
fees). Each study's budget is its share of the channel's nominal leads at the capacity
it has open; the plan prices one nominal lead at the channel's cost per lead
(params.PAID / params.OFFLINE), so that over the history spend / expected leads is
exactly that cost per lead.

Response (planted). A channel's studies draw on one audience (the same social-media
users, referring physicians, newsletter readers, clinics and event-goers), so the
response is planted on the channel's spend over all studies, week by week (weeks start
on Monday):

    A_w = (1 - d) x_w + d A_{w-1}            geometric adstock of the week's spend x_w
    expected leads_w = vmax * A_w^n / (K^n + A_w^n)   Hill saturation

K is the channel's typical weekly spend (its mean over the weeks with spend), so the
plan's typical week sits at half saturation; vmax is set so that the channel brings its
nominal share of the leads over the history. This is the form of the cockpit's mix model
(`cockpit.analytics.mix`), so the model can be checked against it exactly.

Each study receives the share of the week's leads that its own adstocked spend has in
the channel's (`StudySpend.weekly_adstock`), spread over the week's days (paid: by the
day's spend; newsletter: after the issue; HCP referrals and brochures: on weekdays),
then over its active sites by their rates; screening-event sign-ups go to the events
of the week in proportion to their fees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.delivery import CHANNEL_INDEX, adstock, capacity_ramp, hill, paid_units, study_days
from cockpit.demo.offline import ScreeningEvents, offline_bookings, weekly_profile
from cockpit.demo.util import rng_for
from cockpit.demo.world import World

CHANNEL_IDS = tuple(c.channel_id for c in P.CHANNELS)
N_CHANNELS = len(CHANNEL_IDS)
MONDAY_ZERO = 4                # day number of Monday 1970-01-05
STREAM_SPEND = 16              # random stream of a study's spend plan
NEWSLETTER_DAILY_DECAY = 0.5   # leads of an issue fall by half each day after it


def week_of(days: np.ndarray) -> np.ndarray:
    """Week number (Monday-based) of day numbers."""
    return (np.asarray(days, dtype=np.int64) - MONDAY_ZERO) // 7


def cost_per_lead(channel_id: str) -> float:
    spec = P.PAID.get(channel_id) or P.OFFLINE[channel_id]
    return spec.cost_per_lead


def response_spec(channel_id: str) -> tuple[float, float]:
    """(weekly adstock decay, Hill shape) of a channel."""
    spec = P.PAID.get(channel_id) or P.OFFLINE[channel_id]
    return spec.adstock_decay, spec.hill_shape


@dataclass
class StudySpend:
    """What one study spends per channel, and its share of the channels' response."""

    days: np.ndarray                 # the study's campaign days
    daily: np.ndarray                # days x channels, EUR (paid: planned; offline: booked)
    items: pd.DataFrame              # offline cost items (day, channel, site, amount EUR, description)
    events: ScreeningEvents          # screening events held, fee in EUR
    weekly_adstock: np.ndarray       # plan weeks x channels: adstock of the study's own weekly spend


@dataclass
class MediaPlan:
    """The portfolio's weekly spend and planted response per channel, and each study's
    spend."""

    first_week: int                  # week number of row 0
    spend: np.ndarray                # weeks x channels, EUR over all studies
    adstock: np.ndarray              # weeks x channels
    expected: np.ndarray             # weeks x channels, expected leads (planted response)
    half: np.ndarray                 # K per channel, EUR per week
    vmax: np.ndarray                 # maximum expected leads per week per channel
    target: np.ndarray               # nominal leads per channel over the history
    studies: list[StudySpend]

    def week_dates(self) -> list[str]:
        """Monday of each plan week, ISO."""
        mondays = (self.first_week + np.arange(len(self.spend))) * 7 + MONDAY_ZERO
        return np.datetime_as_string(mondays.astype("datetime64[D]"), unit="D").tolist()

    def study_weekly(self, s: int) -> np.ndarray:
        """Expected leads per plan week and channel brought by study `s`: its share of
        the channel's adstock times the channel's response."""
        own = self.studies[s].weekly_adstock
        share = np.divide(own, self.adstock, out=np.zeros_like(own), where=self.adstock > 0)
        return self.expected * share

    def study_daily(self, s: int) -> dict[str, np.ndarray]:
        """Expected leads per day of the study's days, by channel (screening events
        excluded: see `event_signups`)."""
        st = self.studies[s]
        weekly = self.study_weekly(s)
        rows = week_of(st.days) - self.first_week
        out = {}
        for ch in CHANNEL_IDS:
            if ch == "screening_event":
                continue
            j = CHANNEL_INDEX[ch]
            weight = _day_weights(ch, st.days, st.daily[:, j])
            out[ch] = weekly[rows, j] * weight
        return out

    def event_signups(self, s: int) -> np.ndarray:
        """Expected sign-ups of each of the study's events: the study's share of the
        week's event response, split over its events that week by fee."""
        st = self.studies[s]
        weekly = self.study_weekly(s)[:, CHANNEL_INDEX["screening_event"]]
        ev = st.events
        rows = week_of(ev.day) - self.first_week
        fees = pd.Series(ev.fee).groupby(rows).transform("sum").to_numpy() if len(ev.fee) else ev.fee
        return weekly[rows] * np.divide(ev.fee, fees, out=np.zeros(len(ev.fee)), where=fees > 0)


def _day_weights(channel_id: str, days: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """How a week's leads spread over its days (summing to 1 over the week's days
    within `days`): paid leads by the day's spend, a newsletter's after its issue, HCP
    referrals and brochure leads on weekdays, community leads evenly. A week without
    spend (carried-over leads only) spreads them by the weekday profile."""
    base = weekly_profile(channel_id, days)
    if channel_id in P.PAID:
        driven = spend
    elif channel_id == "newsletter":
        driven = _issue_kernel(days, spend)
    else:
        driven = None
    rows = week_of(days)
    if driven is not None:
        week_driven = pd.Series(driven).groupby(rows).transform("sum").to_numpy()
        base = np.where(week_driven > 0, driven, base)
    total = pd.Series(base).groupby(rows).transform("sum").to_numpy()
    return np.divide(base, total, out=np.zeros(len(base)), where=total > 0)


def _issue_kernel(days: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """Leads of a newsletter issue on its day and the following days of its week,
    halving each day."""
    out = np.zeros(len(days))
    rows = week_of(days)
    for pos in np.flatnonzero(spend > 0):
        same = (rows == rows[pos]) & (np.arange(len(days)) >= pos)
        out[same] += spend[pos] * NEWSLETTER_DAILY_DECAY ** (np.flatnonzero(same) - pos)
    return out


# ---------------------------------------------------------------- building the plan


def build_plan(world: World) -> MediaPlan:
    """Every study's spend plan (in nominal-lead units, then priced so that each channel
    costs its cost per lead over the history) and the planted weekly response."""
    seed = world.seed
    units, targets = [], np.zeros(N_CHANNELS)
    for s in range(len(world.studies)):
        days = study_days(world, s)
        ramp = capacity_ramp(world, s, days)
        rng = rng_for(seed, STREAM_SPEND, s)
        daily = np.zeros((len(days), N_CHANNELS))
        for ch, x in paid_units(world, s, days, ramp, rng).items():
            daily[:, CHANNEL_INDEX[ch]] = x
        items, events = offline_bookings(world, s, days, ramp, rng)
        nominal = world.studies.full_leads_per_day[s] * ramp.sum()     # leads at the nominal plan
        targets += nominal * np.array([c.lead_share for c in P.CHANNELS])
        units.append((days, daily, items, events))
    unit_total = np.zeros(N_CHANNELS)
    for days, daily, items, events in units:
        unit_total += daily.sum(axis=0)
        by = items.groupby("channel").amount.sum()
        for ch, amount in by.items():
            unit_total[CHANNEL_INDEX[ch]] += amount
    # EUR per unit: spend over the history = cost per lead x nominal leads
    price = np.array([cost_per_lead(ch) for ch in CHANNEL_IDS]) * targets / np.maximum(unit_total, 1e-12)

    first_week = int(min(week_of(u[0][0]) for u in units))
    n_weeks = int(week_of(world.end_day)) - first_week + 1
    studies, spend = [], np.zeros((n_weeks, N_CHANNELS))
    for days, daily, items, events in units:
        daily = np.round(daily * price[None, :], 2)          # paid: the day's spend in cents, as exported
        item_price = price[[CHANNEL_INDEX[c] for c in items.channel]]
        items = items.assign(amount=np.round(items.amount.to_numpy() * item_price, 2))
        events.fee = np.round(events.fee * price[CHANNEL_INDEX["screening_event"]], 2)
        for ch in P.OFFLINE:                      # offline daily spend = the items as booked
            j = CHANNEL_INDEX[ch]
            mine = items[items.channel == ch]
            daily[:, j] = 0.0
            np.add.at(daily[:, j], mine.day.to_numpy() - days[0], mine.amount.to_numpy())
        weekly = np.zeros((n_weeks, N_CHANNELS))
        np.add.at(weekly, week_of(days) - first_week, daily)
        spend += weekly
        own = np.column_stack([adstock(weekly[:, j], response_spec(ch)[0]) for j, ch in enumerate(CHANNEL_IDS)])
        studies.append(StudySpend(days, daily, items, events, own))

    stock = np.column_stack([adstock(spend[:, j], response_spec(ch)[0]) for j, ch in enumerate(CHANNEL_IDS)])
    half = np.array([spend[spend[:, j] > 0, j].mean() if np.any(spend[:, j] > 0) else 1.0
                     for j in range(N_CHANNELS)])
    curve = np.column_stack([hill(stock[:, j], half[j], response_spec(ch)[1]) for j, ch in enumerate(CHANNEL_IDS)])
    vmax = targets / np.maximum(curve.sum(axis=0), 1e-12)
    return MediaPlan(first_week, spend, stock, curve * vmax[None, :], half, vmax, targets, studies)
