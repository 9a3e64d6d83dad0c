"""The trial setup of the demo: studies, sites, channels, segments, campaigns,
creatives and QR codes, plus which sites carry which planted effect.

Everything here is small (at most a few thousand rows), so plain pandas frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.funnel import expected_yield
from cockpit.demo.util import day_number, first_of_month_before, hex_tokens, permute_bits, rng_for

STREAM_WORLD = 1


@dataclass
class World:
    """The setup and the planted site roles of one generated demo."""

    seed: int
    scale_name: str
    scale: P.Scale
    end: date
    end_day: int
    studies: pd.DataFrame
    sites: pd.DataFrame
    campaigns: pd.DataFrame
    creatives: pd.DataFrame
    qr_codes: pd.DataFrame
    drifts: list[dict] = field(default_factory=list)


def build_world(seed: int, scale_name: str, end: date) -> World:
    """Draw the whole setup for (seed, scale, end)."""
    scale = P.SCALES[scale_name]
    rng = rng_for(seed, STREAM_WORLD)
    end_day = day_number(end)
    studies = _studies(scale, end_day, rng)
    sites = _sites(scale, studies, end_day, rng)
    _plant_site_roles(scale, sites, end_day, rng)
    _calibrate_studies(studies, sites, end_day, rng)
    campaigns = _campaigns(studies, sites)
    creatives = _creatives(campaigns)
    qr_codes = _qr_codes(sites, campaigns, seed)
    world = World(seed, scale_name, scale, end, end_day, studies, sites, campaigns, creatives, qr_codes)
    world.drifts = _drifts(world)
    _apply_contact_drift(world)
    return world


# ---------------------------------------------------------------- studies


def _studies(scale: P.Scale, end_day: int, rng: np.random.Generator) -> pd.DataFrame:
    """Studies cycle through the templates; start dates spread over the early history."""
    history = int(scale.history_months * P.DAYS_PER_MONTH)
    first_day = end_day - history
    offsets = np.sort(rng.uniform(0, P.STUDY_START_SPREAD * history, scale.n_studies))
    offsets[0] = 0.0
    rows = []
    for i in range(scale.n_studies):
        t = P.STUDY_TEMPLATES[i % len(P.STUDY_TEMPLATES)]
        number = P.FIRST_STUDY_NUMBER + i
        start = first_day + int(offsets[i])
        months = rng.integers(P.STUDY_DURATION_MONTHS[0], P.STUDY_DURATION_MONTHS[1] + 1)
        rows.append({
            "study_id": f"ST-{number}", "number": number, "name": f"{t.label} phase {t.phase} (ST-{number})",
            "phase": t.phase, "therapeutic_area": t.therapeutic_area, "min_age": t.min_age,
            "max_age": t.max_age, "eligibility": t.eligibility, "screen_fail": t.screen_fail,
            "randomization_days": t.randomization_days, "value_per_randomized": t.value_per_randomized,
            "segment_affinity": t.segment_affinity, "fail_reasons": t.fail_reasons,
            "start_day": start, "planned_end_day": start + int(months * P.DAYS_PER_MONTH),
        })
    return pd.DataFrame(rows)


def _calibrate_studies(studies: pd.DataFrame, sites: pd.DataFrame, end_day: int, rng: np.random.Generator) -> None:
    """Expected yield per lead, leads per day at full capacity and the target."""
    yields, per_channel, full_leads, targets = [], [], [], []
    for s in studies.itertuples():
        total, by_channel = expected_yield(s)
        capacity = sites.loc[sites.study_idx == s.Index, "rate"].sum()  # randomized / month
        yields.append(total)
        per_channel.append(by_channel)
        full_leads.append(capacity / P.DAYS_PER_MONTH / total)
        months = (s.planned_end_day - s.start_day) / P.DAYS_PER_MONTH
        expected = capacity * months * P.TARGET_RAMP_SHARE
        targets.append(int(round(expected * rng.uniform(*P.TARGET_FACTOR) / 5.0) * 5))
    studies["expected_yield"] = yields
    studies["yield_by_channel"] = per_channel
    studies["full_leads_per_day"] = full_leads
    studies["target_randomized"] = np.maximum(targets, 20)


# ---------------------------------------------------------------- sites


def _site_counts(scale: P.Scale) -> np.ndarray:
    base = np.full(scale.n_studies, scale.n_sites // scale.n_studies)
    base[: scale.n_sites % scale.n_studies] += 1
    return base


def _sites(scale: P.Scale, studies: pd.DataFrame, end_day: int, rng: np.random.Generator) -> pd.DataFrame:
    """Sites with Gamma-distributed rates and staggered activation dates."""
    counts = _site_counts(scale)
    study_idx = np.repeat(np.arange(scale.n_studies), counts)
    n = len(study_idx)
    cities = np.array(list(P.PHONE_RANGES))
    countries = np.array([P.PHONE_RANGES[c][0] for c in cities])
    country_w = np.array([P.COUNTRY_WEIGHTS[c] for c in countries])
    country_w = country_w / np.array([np.sum(countries == c) for c in countries])
    city = rng.choice(cities, size=n, p=country_w / country_w.sum())
    rate = np.maximum(rng.gamma(P.SITE_RATE_SHAPE, P.SITE_RATE_SCALE, n), P.SITE_RATE_FLOOR)
    start = studies.start_day.to_numpy()[study_idx]
    latest = end_day - P.MIN_ACTIVE_DAYS
    planned = start + 14 + (rng.random(n) * np.maximum(latest - start - 14, 1) * P.ACTIVATION_SPREAD).astype(int)
    delay = rng.gamma(P.ACTIVATION_DELAY_SHAPE, P.ACTIVATION_DELAY_SCALE, n).astype(int)
    activation = np.minimum(planned + delay, latest)
    inactive = _pick_inactive(scale, study_idx, rng)
    planned = np.where(inactive, end_day + rng.integers(-45, 60, n), planned)
    activation = np.where(inactive, -1, activation)
    width = max(3, len(str(n)))
    sites = pd.DataFrame({
        "site_id": [f"S-{i + 1:0{width}d}" for i in range(n)],
        "study_idx": study_idx,
        "city": city,
        "country": [P.PHONE_RANGES[c][0] for c in city],
        "planned_day": planned,
        "activation_day": activation,
        "rate": rate * scale.rate_multiplier,
        "rate_planted": rate * scale.rate_multiplier,
    })
    sites["name"] = _site_names(sites, rng)
    for flag in ("non_enrolling", "slow_contact"):
        sites[flag] = False
    sites["drift_day"] = -1
    sites["drift_factor"] = 1.0
    return sites


def _pick_inactive(scale: P.Scale, study_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Planned sites not active at `end`, never more than a third of a study's sites."""
    inactive = np.zeros(len(study_idx), dtype=bool)
    order = rng.permutation(len(study_idx))
    per_study = np.bincount(study_idx)
    taken = np.zeros_like(per_study)
    for i in order:
        if inactive.sum() >= scale.inactive_sites:
            break
        s = study_idx[i]
        if taken[s] + 1 <= per_study[s] // 3:
            inactive[i] = True
            taken[s] += 1
    return inactive


def _site_names(sites: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    facility = rng.choice(np.array(P.SITE_FACILITIES), size=len(sites))
    names = [f"{c} {f}" for c, f in zip(sites.city, facility)]
    seen: dict[tuple[int, str], int] = {}
    out = []
    for study, name in zip(sites.study_idx, names):
        k = seen.get((study, name), 0) + 1
        seen[(study, name)] = k
        out.append(name if k == 1 else f"{name} {k}")
    return out


def _plant_site_roles(scale: P.Scale, sites: pd.DataFrame, end_day: int, rng: np.random.Generator) -> None:
    """Non-enrolling sites (per study, among its smaller sites), slow-contact sites
    (spread over the studies) and the contact-drift site.

    Slow and drifting sites are the busiest free sites, so their delays rest on
    enough contacts to be seen."""
    active = sites.activation_day.to_numpy() >= 0
    study = sites.study_idx.to_numpy()
    rate = sites.rate.to_numpy()
    for s in np.unique(study):
        cand = np.flatnonzero(active & (study == s))
        if len(cand) >= 3:
            small = cand[rate[cand] <= np.median(rate[cand])]
            pick = rng.choice(small, size=min(scale.non_enrolling_per_study, len(small)), replace=False)
            sites.loc[pick, "non_enrolling"] = True
    free = active & ~sites.non_enrolling.to_numpy()
    volume = rate * (end_day - sites.activation_day.to_numpy())   # expected randomized so far
    drift_site = np.flatnonzero(free)[np.argmax(volume[free])]
    sites.loc[drift_site, "drift_day"] = 0  # set to the real date in _apply_contact_drift
    free[drift_site] = False
    n_studies = study.max() + 1
    step = max(n_studies // max(scale.slow_contact_sites, 1), 1)
    for k in range(scale.slow_contact_sites):
        for shift in range(n_studies):
            s = (k * step + shift) % n_studies
            cand = np.flatnonzero(free & (study == s))
            if len(cand) and s != study[drift_site]:
                break
        else:
            continue
        busiest = cand[np.argmax(rate[cand])]
        sites.loc[busiest, "slow_contact"] = True
        free[busiest] = False


# ---------------------------------------------------------------- campaigns


_PURPOSE = {"facebook": "Awareness", "instagram": "Awareness", "linkedin": "Professionals",
            "youtube": "Video reach", "hcp_referral": "HCP referral programme",
            "patient_community": "Community", "newsletter": "Newsletter",
            "paper_brochure": "Brochures", "screening_event": "Screening days"}


def _campaigns(studies: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """One campaign per channel and study, starting with the study's first site."""
    rows = []
    for s in studies.itertuples():
        act = sites.activation_day[(sites.study_idx == s.Index) & (sites.activation_day >= 0)]
        start = int(act.min())
        for c in P.CHANNELS:
            rows.append({
                "campaign_id": f"C-{c.code}-{s.number}-01", "study_idx": s.Index, "study_id": s.study_id,
                "channel_id": c.channel_id, "name": f"ST{s.number} | {_PURPOSE[c.channel_id]} | {c.code}",
                "start_day": start,
            })
    return pd.DataFrame(rows)


def _creative_specs(study_idx: int, channel_id: str) -> tuple[tuple[P.CreativeSpec, ...], P.ExperimentSpec | None]:
    for exp in P.EXPERIMENTS:
        if exp.study_index == study_idx and exp.channel_id == channel_id:
            return exp.creatives, exp
    return P.DEFAULT_CREATIVES.get(channel_id, ()), None


def _creatives(campaigns: pd.DataFrame) -> pd.DataFrame:
    """Creatives of the paid campaigns; the experiments' arms where planted."""
    rows = []
    for c in campaigns.itertuples():
        specs, exp = _creative_specs(c.study_idx, c.channel_id)
        number = c.name.split(" | ")[0]
        for spec in specs:
            rows.append({
                "campaign_idx": c.Index, "campaign_id": c.campaign_id, "channel_id": c.channel_id,
                "name": f"{number} {c.channel_id} {spec.label}", "variant": spec.variant,
                "experiment_id": exp.experiment_id if exp else None,
                "is_control": bool(exp and spec.variant == exp.control_variant),
                "planned_share": round(spec.share, 4) if exp else None,
                "share": spec.share, "ctr_factor": spec.ctr_factor, "lead_factor": spec.lead_factor,
            })
    out = pd.DataFrame(rows)
    width = max(4, len(str(len(out))))
    out.insert(0, "creative_id", [f"CR-{i + 1:0{width}d}" for i in range(len(out))])
    return out


def _qr_codes(sites: pd.DataFrame, campaigns: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One brochure QR code per site (opaque hex, unique: a bijection of the site number)."""
    paper = campaigns[campaigns.channel_id == "paper_brochure"].set_index("study_idx").campaign_id
    tokens = hex_tokens(permute_bits(np.arange(len(sites), dtype=np.uint64), 24, seed * 7919 + 17), 6)
    return pd.DataFrame({
        "code": np.char.add("QR-", np.char.upper(tokens)),
        "channel_id": "paper_brochure",
        "campaign_id": paper.loc[sites.study_idx].to_numpy(),
        "site_id": sites.site_id.to_numpy(),
        "site_idx": np.arange(len(sites)),
    })


# ---------------------------------------------------------------- drifts


def _drifts(world: World) -> list[dict]:
    """The planted KPI drifts with their dates, scopes and sizes."""
    n = len(world.studies)
    ctr = P.CTR_DRIFT
    ctr_study = world.studies.study_id[ctr["study_index"] % n]
    contact_site = world.sites[world.sites.drift_day >= 0].iloc[0]
    return [
        {"kpi": "ctr", "study_id": ctr_study, "site_id": None, "channel_id": ctr["channel_id"],
         "date": first_of_month_before(world.end, ctr["months_before_end"]).isoformat(),
         "relative_change": ctr["relative_change"]},
        {"kpi": "contact_delay_working_days", "study_id": world.studies.study_id[contact_site.study_idx],
         "site_id": contact_site.site_id, "channel_id": None,
         "date": first_of_month_before(world.end, P.CONTACT_DRIFT["months_before_end"]).isoformat(),
         "relative_change": P.CONTACT_DRIFT["relative_change"]},
    ]


def _apply_contact_drift(world: World) -> None:
    drift = world.drifts[1]
    row = world.sites.site_id == drift["site_id"]
    world.sites.loc[row, "drift_day"] = day_number(date.fromisoformat(drift["date"]))
    world.sites.loc[row, "drift_factor"] = 1.0 + drift["relative_change"]


def ctr_drift_day(world: World) -> tuple[str, str, int, float]:
    """(study_id, channel_id, first day, multiplier) of the CTR drift."""
    d = world.drifts[0]
    return d["study_id"], d["channel_id"], day_number(date.fromisoformat(d["date"])), 1.0 + d["relative_change"]


# ---------------------------------------------------------------- setup export


def _none(value):
    """None for a missing value (pandas keeps None as NaN in some columns)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _iso(day: int) -> str | None:
    return None if day < 0 else (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


def setup_document(world: World) -> dict:
    """The setup_*.json object, exactly as docs/EXPORTS.md describes it."""
    st, si = world.studies, world.sites
    return {
        "studies": [{
            "study_id": s.study_id, "name": s.name, "phase": s.phase, "therapeutic_area": s.therapeutic_area,
            "target_randomized": int(s.target_randomized), "start_date": _iso(s.start_day),
            "planned_end": _iso(s.planned_end_day), "value_per_randomized": int(s.value_per_randomized),
            "currency": "EUR"} for s in st.itertuples()],
        "sites": [{
            "site_id": r.site_id, "study_id": st.study_id[r.study_idx], "name": r.name, "country": r.country,
            "planned_activation": _iso(r.planned_day), "activation_date": _iso(r.activation_day)}
            for r in si.itertuples()],
        "channels": [{
            "channel_id": c.channel_id, "name": c.name, "kind": c.kind, "online": c.online,
            "utm_sources": list(c.utm_sources)} for c in P.CHANNELS],
        "segments": [{
            "segment_id": s.segment_id, "name": s.name, "min_age": s.min_age, "max_age": s.max_age}
            for s in P.SEGMENTS],
        "campaigns": [_campaign_doc(world, c) for c in world.campaigns.itertuples()],
        "qr_codes": [{
            "code": q.code, "channel_id": q.channel_id, "campaign_id": q.campaign_id, "site_id": q.site_id}
            for q in world.qr_codes.itertuples()],
    }


def _campaign_doc(world: World, c) -> dict:
    creatives = world.creatives[world.creatives.campaign_idx == c.Index]
    return {
        "campaign_id": c.campaign_id, "study_id": c.study_id, "channel_id": c.channel_id, "name": c.name,
        "start_date": _iso(c.start_day), "end_date": None,
        "creatives": [{
            "creative_id": r.creative_id, "name": r.name, "variant": r.variant,
            "experiment_id": _none(r.experiment_id), "is_control": bool(r.is_control),
            "planned_share": _none(r.planned_share)} for r in creatives.itertuples()],
    }
