"""The recruitment funnel of each lead: stage probabilities, outcomes and times.

One function gives the probability of every step for arrays of leads; the same
function calibrates lead volumes (expected yield of a study) and draws the outcomes,
so the planted rates and the generated files agree by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cockpit.demo import params as P
from cockpit.demo.util import DAY, add_working_days, lognormal

CHANNEL_IDS = tuple(c.channel_id for c in P.CHANNELS)
CH = {c.channel_id: i for i, c in enumerate(P.CHANNELS)}
OFFLINE_FORM = np.array([c.channel_id in ("hcp_referral", "screening_event") for c in P.CHANNELS])
CH_ELIG = np.array([c.eligibility_factor for c in P.CHANNELS])
CH_CONSENT = np.array([c.consent_bonus for c in P.CHANNELS])
SEG_DELAY = np.array([s.delay_factor for s in P.SEGMENTS])
SEG_COMPLETE = np.array([s.completion for s in P.SEGMENTS])
SEG_ELIG = np.array([s.eligibility_factor for s in P.SEGMENTS])
SEG_REACH = np.array([s.reach for s in P.SEGMENTS])
SEG_CONSENT = np.array([s.consent for s in P.SEGMENTS])
SEG_BOUNDS = np.array([s.min_age for s in P.SEGMENTS[1:]])

# Pipeline statuses in funnel order, as written to site_pipeline.
STATUSES = ("contacted", "not_reachable", "consented", "declined", "screened",
            "withdrew", "screen_failed", "randomized")


def segment_of(age: np.ndarray) -> np.ndarray:
    """Segment index of each age (age bands of params.SEGMENTS)."""
    return np.searchsorted(SEG_BOUNDS, age, side="right")


def stage_probabilities(study, channel: np.ndarray, segment: np.ndarray, age: np.ndarray) -> dict[str, np.ndarray]:
    """P(next step | previous step) for each lead, for an enrolling site."""
    n = len(channel)
    age_ok = (age >= study.min_age) & (age <= study.max_age)
    return {
        "form": np.where(OFFLINE_FORM[channel], P.PRESCREEN_UPTAKE_OFFLINE, 1.0),
        "complete": SEG_COMPLETE[segment],
        "eligible": np.clip(study.eligibility * CH_ELIG[channel] * SEG_ELIG[segment], 0, 0.92) * age_ok,
        "reach": SEG_REACH[segment],
        "consent": np.clip(SEG_CONSENT[segment] + CH_CONSENT[channel], 0, 0.95),
        "screened": np.full(n, P.SCREENED_RATE),
        "passed": np.full(n, 1.0 - study.screen_fail),
        "stay": np.full(n, 1.0 - P.WITHDRAW_BEFORE_RANDOMIZATION),
    }


def randomized_probability(study, channel: np.ndarray, segment: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(lead ends randomized) at an enrolling site, ignoring censoring at `end`."""
    probs = stage_probabilities(study, channel, segment, age)
    out = np.ones(len(channel))
    for value in probs.values():
        out = out * value
    return out


def age_distribution(study, channel_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Ages 18..MAX_AGE and their probabilities for leads of a channel in a study:
    the channel's audience by segment, reweighted by the study's affinity."""
    mix = np.array(P.CHANNELS[channel_index].age_mix) * np.array(study.segment_affinity)
    mix = mix / mix.sum()
    ages = np.arange(18, P.MAX_AGE + 1)
    seg = segment_of(ages)
    counts = np.bincount(seg, minlength=len(P.SEGMENTS))
    return ages, mix[seg] / counts[seg]


def expected_yield(study) -> tuple[float, np.ndarray]:
    """Expected P(randomized | lead) of the study's channel mix, and per channel."""
    per_channel = np.zeros(len(P.CHANNELS))
    for i in range(len(P.CHANNELS)):
        ages, weights = age_distribution(study, i)
        ch = np.full(len(ages), i)
        per_channel[i] = float(np.sum(weights * randomized_probability(study, ch, segment_of(ages), ages)))
    shares = np.array([c.lead_share for c in P.CHANNELS])
    return float(np.sum(shares * per_channel) / shares.sum()), per_channel


@dataclass
class FunnelResult:
    """Outcomes and times (epoch seconds; -1 = did not happen) of each lead."""

    form_ts: np.ndarray          # pre-screener started
    completed_ts: np.ndarray
    eligible: np.ndarray         # 1 eligible, 0 ineligible, -1 not completed
    reason: np.ndarray           # ineligible reason code or ""
    status_ts: dict[str, np.ndarray]
    status_reason: dict[str, np.ndarray]


def _draw(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    return rng.random(len(p)) < p


def _days(rng: np.random.Generator, median: float, sigma: float, n: int, factor=1.0) -> np.ndarray:
    """Lognormal delays in whole seconds, given a median in days."""
    return (lognormal(rng, median, sigma, n) * factor * DAY).astype(np.int64)


def _prescreen(study, leads: dict, probs: dict, slow: np.ndarray, rng: np.random.Generator) -> dict:
    """Form start (online leads start it at the lead; referred and event persons a
    day or so later), completion and eligibility with its coded reason."""
    n = len(leads["lead_ts"])
    t0, age = leads["lead_ts"], leads["age"]
    form_ts = np.where(OFFLINE_FORM[leads["channel"]], t0 + _days(rng, P.REFERRAL_TO_FORM_DAYS, 0.7, n, slow), t0)
    has_form = _draw(rng, probs["form"])
    completed = has_form & _draw(rng, probs["complete"])
    completed_ts = form_ts + (lognormal(rng, P.PRESCREEN_MINUTES, 0.5, n) * slow * 60).astype(np.int64)
    eligible = completed & _draw(rng, probs["eligible"])
    age_ok = (age >= study.min_age) & (age <= study.max_age)
    reason_idx = rng.choice(len(P.INELIGIBLE_REASONS), size=n, p=P.INELIGIBLE_WEIGHTS)
    reason = np.where(age_ok, np.array(P.INELIGIBLE_REASONS)[reason_idx], "age")
    return {"form_ts": form_ts, "has_form": has_form, "completed": completed, "completed_ts": completed_ts,
            "eligible": eligible, "age_ok": age_ok, "reason": reason}


def _site_contact(leads: dict, pre: dict, probs: dict, flags: dict, rng: np.random.Generator) -> dict:
    """First contact by the site in working days: slower at the slow-contact sites
    and, from its date, at the drift site; some leads are never reached."""
    n = len(leads["lead_ts"])
    site = leads["site"]
    delay = np.where(flags["slow_contact"][site], lognormal(rng, *P.SLOW_CONTACT_WORKING_DAYS, n),
                     lognormal(rng, *P.CONTACT_WORKING_DAYS, n))
    drift_day = flags["drift_day"][site]
    drifted = (drift_day >= 0) & (pre["completed_ts"] // DAY >= drift_day)
    delay = np.where(drifted, delay * flags["drift_factor"][site], delay)
    contact_ts = add_working_days(pre["completed_ts"], delay, rng)
    reached = pre["eligible"] & _draw(rng, probs["reach"])
    return {"contact_ts": contact_ts, "reached": reached, "unreachable": pre["eligible"] & ~reached,
            "gave_up_ts": contact_ts + _days(rng, *P.NOT_REACHABLE_DAYS, n)}


def _consent(contact: dict, probs: dict, non_enrolling: np.ndarray, slow: np.ndarray,
             rng: np.random.Generator) -> dict:
    """eConsent or decline after the contact (patients' speed by segment)."""
    n = len(slow)
    p = np.where(non_enrolling, probs["consent"] * P.NON_ENROLLING_CONSENT_FACTOR, probs["consent"])
    consented = contact["reached"] & _draw(rng, p)
    return {"consented": consented, "declined": contact["reached"] & ~consented,
            "consent_ts": contact["contact_ts"] + _days(rng, *P.CONSENT_DAYS, n, slow),
            "decline_ts": contact["contact_ts"] + _days(rng, *P.DECLINE_DAYS, n)}


def _screening(study, consent: dict, probs: dict, non_enrolling: np.ndarray, slow: np.ndarray,
               rng: np.random.Generator) -> dict:
    """Screening visit, then screen failure or randomization; withdrawals before
    screening and (a few) between screening and randomization. Non-enrolling sites
    screen fewer and randomize nobody."""
    n = len(slow)
    screened = consent["consented"] & _draw(rng, np.where(non_enrolling, P.NON_ENROLLING_SCREENED_RATE,
                                                         probs["screened"]))
    screen_ts = add_working_days(consent["consent_ts"],
                                 lognormal(rng, *P.SCREENING_DAYS, n) * slow * 5 / 7, rng)
    drop_ts = consent["consent_ts"] + _days(rng, *P.WITHDRAW_DAYS, n)
    passed = screened & ~non_enrolling & _draw(rng, probs["passed"])
    stays = passed & _draw(rng, probs["stay"])
    fail_ts = add_working_days(screen_ts, lognormal(rng, *P.SCREEN_FAIL_DAYS, n) * 5 / 7, rng)
    rand_ts = add_working_days(screen_ts, lognormal(rng, study.randomization_days, 0.35, n) * slow * 5 / 7, rng)
    late_drop_ts = screen_ts + ((rand_ts - screen_ts) * rng.uniform(0.3, 0.9, n)).astype(np.int64)
    return {"screened": screened, "dropped": consent["consented"] & ~screened, "passed": passed,
            "failed": screened & ~passed, "stays": stays, "screen_ts": screen_ts, "drop_ts": drop_ts,
            "fail_ts": fail_ts, "rand_ts": rand_ts, "late_drop_ts": late_drop_ts}


def _reasons(study, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Coded reasons of the exits (never free text)."""
    def pick(codes) -> np.ndarray:
        return np.array(codes)[rng.integers(0, len(codes), n)]
    fail, decline, withdraw = pick(study.fail_reasons), pick(P.DECLINE_REASONS), pick(P.WITHDRAW_REASONS)
    return {"declined": decline, "withdrew": withdraw, "screen_failed": fail}


def run_funnel(study, leads: dict[str, np.ndarray], site_flags: dict[str, np.ndarray],
               end_s: int, rng: np.random.Generator) -> FunnelResult:
    """Draw every lead's path through the funnel and its timestamps, cut at `end`.

    `leads` holds channel, segment, age, lead_ts, site (index into site_flags);
    `site_flags` holds per-site arrays non_enrolling, slow_contact, drift_day (-1 none),
    drift_factor."""
    probs = stage_probabilities(study, leads["channel"], leads["segment"], leads["age"])
    slow = SEG_DELAY[leads["segment"]]
    non_enrolling = site_flags["non_enrolling"][leads["site"]]
    pre = _prescreen(study, leads, probs, slow, rng)
    contact = _site_contact(leads, pre, probs, site_flags, rng)
    consent = _consent(contact, probs, non_enrolling, slow, rng)
    scr = _screening(study, consent, probs, non_enrolling, slow, rng)
    reasons = _reasons(study, len(slow), rng)

    forced = _ensure_enrolment(leads["site"], non_enrolling, pre["completed"] & pre["age_ok"],
                               pre["completed_ts"], scr["rand_ts"], scr["stays"], end_s)
    eligible, reached, consented, screened, passed, stays = (
        a | forced for a in (pre["eligible"], contact["reached"], consent["consented"], scr["screened"],
                             scr["passed"], scr["stays"]))
    unreachable, declined, dropped, failed = (
        a & ~forced for a in (contact["unreachable"], consent["declined"], scr["dropped"], scr["failed"]))
    withdrew = dropped | (passed & ~stays)
    status_ts = {
        "contacted": np.where(reached, contact["contact_ts"], -1),
        "not_reachable": np.where(unreachable, contact["gave_up_ts"], -1),
        "consented": np.where(consented, consent["consent_ts"], -1),
        "declined": np.where(declined, consent["decline_ts"], -1),
        "screened": np.where(screened, scr["screen_ts"], -1),
        "withdrew": np.where(withdrew, np.where(dropped, scr["drop_ts"], scr["late_drop_ts"]), -1),
        "screen_failed": np.where(failed, scr["fail_ts"], -1),
        "randomized": np.where(stays, scr["rand_ts"], -1),
    }
    completed = pre["completed"]
    result = FunnelResult(
        form_ts=np.where(pre["has_form"], pre["form_ts"], -1),
        completed_ts=np.where(completed, pre["completed_ts"], -1),
        eligible=np.where(completed, eligible.astype(np.int8), -1),
        reason=np.where(completed & ~eligible, pre["reason"], ""),
        status_ts=status_ts,
        status_reason=reasons,
    )
    return censor(result, end_s)


def _ensure_enrolment(site: np.ndarray, non_enrolling: np.ndarray, can_enrol: np.ndarray,
                      completed_ts: np.ndarray, rand_ts: np.ndarray, randomized: np.ndarray,
                      end_s: int) -> np.ndarray:
    """Leads to push through to randomization so that every site meant to enrol has
    randomized someone by `end`: only the planted non-enrolling sites may have none.
    A site without one gets its earliest lead that can still be randomized in time."""
    in_time = rand_ts < end_s + DAY
    forced = np.zeros(len(site), dtype=bool)
    done_sites = np.unique(site[randomized & in_time])
    candidates = can_enrol & in_time & ~non_enrolling & ~np.isin(site, done_sites)
    if not candidates.any():
        return forced
    idx = np.flatnonzero(candidates)
    order = idx[np.lexsort((completed_ts[idx], site[idx]))]
    first = order[np.r_[True, site[order][1:] != site[order][:-1]]]
    forced[first] = True
    return forced


def censor(result: FunnelResult, end_s: int) -> FunnelResult:
    """Drop everything after `end`: a step not yet reached at `end` has not happened.
    Times grow along each path, so cutting each step cuts the path after it too."""
    end_excl = end_s + DAY  # `end` is the last day, included
    form = np.where(result.form_ts < end_excl, result.form_ts, -1)
    done = (result.completed_ts >= 0) & (result.completed_ts < end_excl) & (form >= 0)
    result.form_ts = form
    result.completed_ts = np.where(done, result.completed_ts, -1)
    result.eligible = np.where(done, result.eligible, -1)
    result.reason = np.where(done, result.reason, "")
    for status, ts in result.status_ts.items():
        result.status_ts[status] = np.where(ts < end_excl, ts, -1)
    return result
