"""The leads of one study: who arrives through which channel, when, at which site,
with which age and contacts. Everything is drawn per study with numpy arrays.

Every channel's leads follow its spend: paid leads come from the campaigns' delivery,
offline leads from the study's share of the offline channels' response
(`cockpit.demo.media`); both go to the active sites in proportion to the sites' rates
(their catchment), screening-event sign-ups to the site holding the event.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cockpit.demo import params as P
from cockpit.demo.delivery import PaidDelivery, active_matrix
from cockpit.demo.funnel import CH, age_distribution, segment_of
from cockpit.demo.media import MediaPlan
from cockpit.demo.offline import SITE_CHANNELS, ScreeningEvents, site_weights
from cockpit.demo.util import DAY, b32_tokens, hex_tokens, mix64, permute_bits, rng_for, year_of
from cockpit.demo.world import World

# Leads per hour of day for people acting online (evening peak; demo choice).
ONLINE_HOURS = np.array([1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.0, 2.2, 2.3, 2.4,
                         2.6, 2.4, 2.3, 2.3, 2.4, 2.8, 3.2, 3.6, 3.8, 3.4, 2.6, 1.6])
OFFLINE_SITE_CHANNELS = SITE_CHANNELS
VISITOR_NOISE_BASE = 1 << 39   # non-converting visitors' counters start here


@dataclass
class StudyLeads:
    """One entry per lead (= person) of the study, sorted by lead time."""

    arrays: dict[str, np.ndarray]
    events: ScreeningEvents
    day_rates: dict[str, np.ndarray]   # expected leads per day by channel (for noise)
    site_day_rates: dict[str, np.ndarray]   # per site and day (paper: QR noise)
    days: np.ndarray
    site_idx: np.ndarray               # global indices of the study's sites

    def __len__(self) -> int:
        return len(self.arrays["lead_ts"])


# ---------------------------------------------------------------- timing


def online_seconds(days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A time of day for online activity on each day."""
    hour = rng.choice(24, size=len(days), p=ONLINE_HOURS / ONLINE_HOURS.sum())
    return days.astype(np.int64) * DAY + hour * 3600 + rng.integers(0, 3600, len(days))


# ---------------------------------------------------------------- lead volumes


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every unit of a count matrix."""
    r, c = np.nonzero(counts)
    k = counts[r, c]
    return np.repeat(r, k), np.repeat(c, k)


# ---------------------------------------------------------------- assembly


def _paid_sites(delivery: PaidDelivery, active: np.ndarray, rate: np.ndarray, days: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Site position of each paid lead, drawn by active site rates on its day."""
    pos = delivery.lead_day - days[0]
    weights = (rate[:, None] * active).T                   # days x sites
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(pos)) * cum[pos, -1]
    return (cum[pos] <= u[:, None]).sum(axis=1)


def build_leads(world: World, study_idx: int, delivery: PaidDelivery, plan: MediaPlan,
                rng: np.random.Generator) -> StudyLeads:
    """All leads of a study, with channel, site, time, age, segment and contacts."""
    days = delivery.days
    site_idx, active = active_matrix(world, study_idx, days)
    _, weights = site_weights(world, study_idx, days)
    expected = plan.study_daily(study_idx)
    parts = []
    day_rates, site_day_rates = {}, {}
    for ch in OFFLINE_SITE_CHANNELS:
        rates = weights * expected[ch][None, :]
        site_pos, day_pos = _expand(rng.poisson(rates))
        day_rates[ch] = rates.sum(axis=0)
        site_day_rates[ch] = rates
        parts.append(_part(ch, site_pos, days[day_pos], rng))
    events = plan.studies[study_idx].events
    lead_event = np.repeat(np.arange(len(events.day)), rng.poisson(plan.event_signups(study_idx)))
    se = _part("screening_event", events.site[lead_event], events.day[lead_event], rng)
    se["event"] = lead_event
    parts.append(se)
    rate = world.sites.rate.to_numpy()[site_idx]
    paid_site = _paid_sites(delivery, active, rate, days, rng)
    paid = _part_paid(world, delivery, paid_site, rng)
    parts.append(paid)
    arrays = _concat(parts)
    arrays["site"] = site_idx[arrays["site_pos"]]
    order = np.argsort(arrays["lead_ts"], kind="stable")
    arrays = {k: v[order] for k, v in arrays.items()}
    _add_people(world, study_idx, arrays, rng)
    return StudyLeads(arrays, events, day_rates, site_day_rates, days, site_idx)


def _part(channel_id: str, site_pos: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> dict:
    """Leads of one offline channel with their timestamps."""
    n = len(day)
    if channel_id == "hcp_referral":
        ts = day.astype(np.int64) * DAY + 8 * 3600 + rng.integers(0, 9 * 3600, n)
    elif channel_id == "screening_event":
        ts = day.astype(np.int64) * DAY + 9 * 3600 + rng.integers(0, 7 * 3600, n)
    elif channel_id == "paper_brochure":
        ts = day.astype(np.int64) * DAY + 8 * 3600 + rng.integers(0, 12 * 3600, n)
    else:
        ts = online_seconds(day, rng)
    return {"channel": np.full(n, CH[channel_id]), "site_pos": site_pos, "lead_ts": ts,
            "creative": np.full(n, -1), "click_ts": np.full(n, -1, dtype=np.int64),
            "event": np.full(n, -1)}


def _part_paid(world: World, delivery: PaidDelivery, site_pos: np.ndarray, rng: np.random.Generator) -> dict:
    """Paid leads: the lead follows the converter's ad click by minutes (same day) or
    comes back days later."""
    cr = delivery.lead_creative
    channel = np.array([CH[c] for c in world.creatives.channel_id.to_numpy()[cr]], dtype=np.int64) \
        if len(cr) else np.array([], dtype=np.int64)
    same_day = delivery.click_day == delivery.lead_day
    lead_ts = online_seconds(delivery.lead_day, rng)
    click_other = online_seconds(np.maximum(delivery.click_day, 0), rng)
    click_ts = np.where(same_day, lead_ts - rng.integers(60, 900, len(cr)), click_other)
    click_ts = np.where(delivery.click_day < 0, -1, np.minimum(click_ts, lead_ts - 60))
    return {"channel": channel, "site_pos": site_pos, "lead_ts": lead_ts, "creative": cr,
            "click_ts": click_ts, "event": np.full(len(cr), -1)}


def _concat(parts: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------- people


def _add_people(world: World, study_idx: int, a: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Age, birth year, segment, e-mail, phone and visitor id of each lead."""
    n = len(a["lead_ts"])
    study = world.studies.loc[study_idx]
    age = np.zeros(n, dtype=np.int64)
    for ch in np.unique(a["channel"]):
        rows = np.flatnonzero(a["channel"] == ch)
        ages, weights = age_distribution(study, int(ch))
        age[rows] = rng.choice(ages, size=len(rows), p=weights)
    a["age"] = age
    a["segment"] = segment_of(age)
    a["birth_year"] = year_of(a["lead_ts"]) - age
    a["person_no"] = np.arange(n, dtype=np.int64)
    a["email"] = person_emails(world.seed, study_idx, a["person_no"])
    a["phone_e164"], a["phone_national"] = person_phones(world, a["site"], rng)
    a["visitor"] = person_visitors(world.seed, study_idx, a["person_no"])


def person_emails(seed: int, study_idx: int, person_no: np.ndarray) -> np.ndarray:
    """Unique synthetic e-mails at reserved domains: an opaque 8-character token
    (a bijection of study and person number) at example.com/.org/.net."""
    if study_idx >= 256 or (len(person_no) and person_no.max() >= 1 << 32):
        raise ValueError("e-mail tokens are unique for up to 256 studies of 2^32 persons")
    key = (np.uint64(study_idx) << np.uint64(32)) | person_no.astype(np.uint64)
    local = b32_tokens(permute_bits(key, 40, seed), 8)
    domain = np.array(P.EMAIL_DOMAINS)[(mix64(key, seed + 3) % np.uint64(len(P.EMAIL_DOMAINS))).astype(np.intp)]
    return np.char.add(np.char.add(local, "@"), domain)


def person_phones(world: World, site: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Phone numbers from the fictional range of the site's city ('' = no phone):
    E.164, and the national spelling where one exists (German numbers)."""
    n = len(site)
    city = world.sites.city.to_numpy()[site]
    e164 = np.full(n, "", dtype=object)
    national = np.full(n, "", dtype=object)
    has = rng.random(n) < P.PHONE_SHARE
    for name in np.unique(city):
        rows = np.flatnonzero((city == name) & has)
        _, prefix, nat, first, count, digits = P.PHONE_RANGES[name]
        number = np.char.zfill((first + rng.integers(0, count, len(rows))).astype(str), digits)
        e164[rows] = np.char.add(prefix, number)
        if nat:
            national[rows] = np.char.add(nat, number)
    return e164.astype(str), national.astype(str)


def person_visitors(seed: int, study_idx: int, number: np.ndarray) -> np.ndarray:
    """Web cookie ids 'v-' + 16 hex digits, unique per (study, number)."""
    key = (np.uint64(study_idx) << np.uint64(40)) | number.astype(np.uint64)
    return np.char.add("v-", hex_tokens(mix64(key, seed * 31 + 5), 16))


def noise_visitors(seed: int, study_idx: int, start: int, n: int) -> np.ndarray:
    """Visitor ids of people who never become leads (a separate number range)."""
    return person_visitors(seed, study_idx, np.arange(VISITOR_NOISE_BASE + start, VISITOR_NOISE_BASE + start + n))


def study_rng(seed: int, stream: int, study_idx: int) -> np.random.Generator:
    """The random stream `stream` of one study."""
    return rng_for(seed, stream, study_idx)

