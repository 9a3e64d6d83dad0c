"""Person-level export rows of one study: pre-screener responses, HCP referrals,
screening-event sign-ups, site pipeline status changes and consent events.

Contacts are written as a real drop folder has them: the same person's e-mail with
other capitals or stray spaces in another export, phones in E.164 or national form.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.funnel import CH, STATUSES, FunnelResult
from cockpit.demo.population import StudyLeads
from cockpit.demo.touches import Touches, cat
from cockpit.demo.util import DAY, iso_ts, mix64, month_key, permute_bits
from cockpit.demo.world import World

CHANNEL_IDS = np.array([c.channel_id for c in P.CHANNELS])
EMAIL_STYLES = 4   # 1 capitalised, 2 upper-case domain, 3 stray spaces, 4 all upper-case


@dataclass
class Sequences:
    """Running id counters shared by all studies, so ids are unique in the drop folder."""

    next: dict[str, int] = field(default_factory=dict)

    def ids(self, prefix: str, n: int, width: int = 8) -> np.ndarray:
        start = self.next.get(prefix, 1)
        self.next[prefix] = start + n
        numbers = np.arange(start, start + n).astype(str)
        return np.char.add(prefix, np.char.zfill(numbers, width))


@dataclass
class PersonStyle:
    """How each lead's contacts are spelt in the exports after the pre-screener."""

    email_style: np.ndarray       # 0 = as in the pre-screener
    never_tracking: np.ndarray    # never grants tracking consent
    withdraws_tracking: np.ndarray


def person_styles(n: int, rng: np.random.Generator) -> PersonStyle:
    varied = rng.random(n) < P.EMAIL_VARIANT_SHARE
    style = np.where(varied, rng.integers(1, EMAIL_STYLES + 1, n), 0)
    never = rng.random(n) < P.NO_TRACKING_SHARE
    withdraws = ~never & (rng.random(n) < P.TRACKING_WITHDRAW_SHARE)
    return PersonStyle(style, never, withdraws)


def spell_email(email: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The e-mail as another system spells it (normalises to the same address)."""
    local, _, domain = (np.char.partition(email, "@")[:, i] for i in range(3))
    out = email.astype(object)
    out = np.where(style == 1, np.char.capitalize(email), out)
    out = np.where(style == 2, cat(local, "@", np.char.upper(domain)), out)
    out = np.where(style == 3, cat(" ", email, " "), out)
    out = np.where(style == 4, np.char.upper(email), out)
    return out.astype(str)


def pick_phone(e164: np.ndarray, national: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """E.164 or, where the number has one and a coin says so, the national spelling."""
    use_national = (national != "") & (rng.random(len(e164)) < P.NATIONAL_FORMAT_SHARE)
    return np.where(use_national, national, e164)


def _month(ts: np.ndarray) -> np.ndarray:
    return month_key(ts // DAY)


def _sorted(df: pd.DataFrame, ts: str) -> pd.DataFrame:
    return df.sort_values(ts, kind="stable").reset_index(drop=True)


def _ts_text(ts: np.ndarray) -> np.ndarray:
    return np.where(ts >= 0, iso_ts(np.maximum(ts, 0)), "")


# ---------------------------------------------------------------- referrals and sign-ups


def hcp_ids(world: World, site: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Referring physicians: 3-10 per site, a few refer most (registry numbers are
    synthetic: 'HCP-<country>-' + 7 digits)."""
    pool = 3 + (mix64(site.astype(np.uint64), world.seed + 41) % np.uint64(8)).astype(np.int64)
    k = np.floor(pool * rng.random(len(site)) ** 2).astype(np.int64)   # skewed to the first ones
    number = permute_bits(site.astype(np.uint64) * np.uint64(16) + k.astype(np.uint64), 23, world.seed + 43)
    digits = (number + np.uint64(1_000_000)).astype(str)   # unique 7 digits per physician
    return cat("HCP-", world.sites.country.to_numpy()[site].astype(str), "-", digits)


def referral_rows(world: World, study_idx: int, leads: StudyLeads, style: PersonStyle, ids: np.ndarray,
                  rng: np.random.Generator) -> pd.DataFrame:
    a = leads.arrays
    rows = a["channel"] == CH["hcp_referral"]
    ts = a["lead_ts"][rows]
    return pd.DataFrame({
        "referral_id": ids[rows], "referred_at": iso_ts(ts),
        "study_id": world.studies.study_id[study_idx], "site_id": world.sites.site_id.to_numpy()[a["site"][rows]],
        "hcp_id": hcp_ids(world, a["site"][rows], rng),
        "patient_email": spell_email(a["email"][rows], style.email_style[rows]),
        "patient_phone": pick_phone(a["phone_e164"][rows], a["phone_national"][rows], rng),
        "birth_year": a["birth_year"][rows], "_month": _month(ts)})


def signup_rows(world: World, study_idx: int, leads: StudyLeads, style: PersonStyle, ids: np.ndarray,
                rng: np.random.Generator) -> pd.DataFrame:
    a = leads.arrays
    rows = a["channel"] == CH["screening_event"]
    ts = a["lead_ts"][rows]
    return pd.DataFrame({
        "signup_id": ids[rows], "signed_up_at": iso_ts(ts),
        "event_name": leads.events.name[a["event"][rows]] if rows.any() else np.array([], str),
        "study_id": world.studies.study_id[study_idx], "site_id": world.sites.site_id.to_numpy()[a["site"][rows]],
        "email": spell_email(a["email"][rows], style.email_style[rows]),
        "phone": pick_phone(a["phone_e164"][rows], a["phone_national"][rows], rng),
        "birth_year": a["birth_year"][rows], "_month": _month(ts)})


def lead_ids(leads: StudyLeads, seq: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Referral and sign-up ids of the leads of those channels ('' otherwise)."""
    ch = leads.arrays["channel"]
    referral = np.full(len(ch), "", dtype=object)
    signup = np.full(len(ch), "", dtype=object)
    r, s = ch == CH["hcp_referral"], ch == CH["screening_event"]
    referral[r] = seq.ids("RF-", int(r.sum()))
    signup[s] = seq.ids("SU-", int(s.sum()))
    return referral.astype(str), signup.astype(str)


# ---------------------------------------------------------------- pre-screener


def prescreener_rows(world: World, study_idx: int, leads: StudyLeads, funnel: FunnelResult, touches: Touches,
                     referral: np.ndarray, signup: np.ndarray, seq: Sequences,
                     rng: np.random.Generator) -> pd.DataFrame:
    """One row per started pre-screener; abandoned ones have no completion."""
    a = leads.arrays
    rows = funnel.form_ts >= 0
    ch = a["channel"][rows]
    cr = a["creative"][rows]
    paid = cr >= 0
    creative_id = np.where(paid, world.creatives.creative_id.to_numpy()[np.maximum(cr, 0)], "")
    campaign = np.where(paid, world.creatives.campaign_id.to_numpy()[np.maximum(cr, 0)], "")
    page = np.isin(ch, [CH["newsletter"], CH["patient_community"]])
    camps = world.campaigns[world.campaigns.study_idx == study_idx].set_index("channel_id").campaign_id
    campaign = np.where(page, camps.reindex(CHANNEL_IDS[ch]).to_numpy(str), campaign)
    paper = ch == CH["paper_brochure"]
    eligible = funnel.eligible[rows]
    df = pd.DataFrame({
        "started_at": funnel.form_ts[rows],
        "completed_at": _ts_text(funnel.completed_ts[rows]),
        "study_id": world.studies.study_id[study_idx],
        "site_id": world.sites.site_id.to_numpy()[a["site"][rows]],
        "email": a["email"][rows],
        "phone": pick_phone(a["phone_e164"][rows], a["phone_national"][rows], rng),
        "birth_year": a["birth_year"][rows],
        "eligible": np.select([eligible == 1, eligible == 0], ["yes", "no"], ""),
        "ineligible_reason": funnel.reason[rows],
        "visitor_id": touches.form_visitor[rows],
        "utm_source": touches.utm_alias[rows],
        "utm_campaign": campaign,
        "utm_content": creative_id,
        "qr_code": np.where(paper, world.qr_codes.code.to_numpy()[a["site"][rows]], ""),
        "referral_id": referral[rows],
        "signup_id": signup[rows],
    })
    df = _sorted(df, "started_at")
    df.insert(0, "response_id", seq.ids("PS-", len(df)))
    df["_month"] = _month(df.started_at.to_numpy())
    df["started_at"] = iso_ts(df.started_at.to_numpy())
    return df


# ---------------------------------------------------------------- site pipeline


def pipeline_rows(world: World, study_idx: int, leads: StudyLeads, funnel: FunnelResult, style: PersonStyle,
                  seq: Sequences, rng: np.random.Generator) -> pd.DataFrame:
    """One row per status change that happened by `end`."""
    a = leads.arrays
    parts = []
    for status in STATUSES:
        ts = funnel.status_ts[status]
        rows = np.flatnonzero(ts >= 0)
        reason = funnel.status_reason.get(status)
        parts.append(pd.DataFrame({
            "person": rows, "status": status, "ts": ts[rows],
            "reason": reason[rows] if reason is not None else ""}))
    df = pd.concat(parts, ignore_index=True).sort_values(["ts", "person"], kind="stable")
    person = df.person.to_numpy()
    out = pd.DataFrame({
        "record_id": seq.ids("PL-", len(df)),
        "study_id": world.studies.study_id[study_idx],
        "site_id": world.sites.site_id.to_numpy()[a["site"][person]],
        "email": spell_email(a["email"][person], style.email_style[person]),
        "phone": pick_phone(a["phone_e164"][person], a["phone_national"][person], rng),
        "status": df.status.to_numpy(),
        "status_at": iso_ts(df.ts.to_numpy()),
        "reason": df.reason.to_numpy(),
        "_month": _month(df.ts.to_numpy()),
    })
    return out


# ---------------------------------------------------------------- consent


def notice_version(ts: np.ndarray) -> np.ndarray:
    """The privacy notice in force at each time (versions start on the 1st)."""
    starts = np.array([np.datetime64(v + "-01", "s").astype(np.int64) for v in P.NOTICE_VERSIONS])
    pos = np.maximum(np.searchsorted(starts, ts, side="right") - 1, 0)
    return np.array(P.NOTICE_VERSIONS)[pos]


def consent_rows(leads: StudyLeads, funnel: FunnelResult, touches: Touches, style: PersonStyle, end_s: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Tracking decision at the first web/QR touch or form (refusals are recorded as
    'withdrawn' without an earlier grant), later withdrawals, and consent to be
    contacted for research when the pre-screener is completed or the person is
    referred / signs up."""
    a = leads.arrays
    n = len(leads)
    decided = np.where(touches.person_first_ts >= 0, touches.person_first_ts, funnel.form_ts)
    has_decision = decided >= 0
    offline_lead = np.isin(a["channel"], [CH["hcp_referral"], CH["screening_event"]])
    contact_ts = np.where(offline_lead, a["lead_ts"], funnel.completed_ts)
    later = decided + (rng.uniform(10, 150, n) * DAY).astype(np.int64)
    withdraws = has_decision & style.withdraws_tracking & (later < end_s + DAY)
    parts = [
        (np.flatnonzero(has_decision), decided, "tracking", np.where(style.never_tracking, "withdrawn", "granted")),
        (np.flatnonzero(withdraws), later, "tracking", np.full(n, "withdrawn")),
        (np.flatnonzero(contact_ts >= 0), contact_ts, "contact_research", np.full(n, "granted")),
    ]
    frames = [pd.DataFrame({"person": p, "ts": ts[p], "purpose": purpose, "action": action[p]})
              for p, ts, purpose, action in parts]
    df = pd.concat(frames, ignore_index=True).sort_values(["ts", "person"], kind="stable")
    return df.reset_index(drop=True)


def consent_lines(df: pd.DataFrame, leads: StudyLeads, style: PersonStyle, seq: Sequences,
                  rng: np.random.Generator) -> pd.DataFrame:
    """consent_*.jsonl lines, one JSON object each."""
    a = leads.arrays
    person = df.person.to_numpy()
    ts = df.ts.to_numpy()
    phone = pick_phone(a["phone_e164"][person], a["phone_national"][person], rng)
    phone_json = np.where(phone == "", "null", cat('"', phone, '"'))
    email = spell_email(a["email"][person], np.where(rng.random(len(person)) < 0.5, style.email_style[person], 0))
    line = cat('{"consent_id": "', seq.ids("cs-", len(df)), '", "ts": "', iso_ts(ts),
               '", "email": "', email, '", "phone": ', phone_json,
               ', "purpose": "', df.purpose.to_numpy(), '", "action": "',
               df.action.to_numpy(), '", "channel": "', CHANNEL_IDS[a["channel"][person]],
               '", "notice_version": "', notice_version(ts), '"}')
    return pd.DataFrame({"_line": line, "_month": _month(ts)})


def web_lines(web: pd.DataFrame, study_id: str, seq: Sequences) -> pd.DataFrame:
    """web_events_*.jsonl lines in time order."""
    web = web.iloc[np.argsort(web.ts.to_numpy(), kind="stable")]
    ts = web.ts.to_numpy()
    line = cat('{"event_id": "', seq.ids("we-", len(web), 9), '", "ts": "', iso_ts(ts),
               '", "visitor_id": "', web.visitor.to_numpy(), '", "event": "',
               web.event.to_numpy(), '", "study_id": "', study_id, '", "utm": ',
               web.utm.to_numpy(), "}")
    return pd.DataFrame({"_line": line, "_month": _month(ts)})


def qr_rows(qr: pd.DataFrame, seq: Sequences) -> pd.DataFrame:
    """qr_scans_*.csv rows in time order."""
    qr = qr.iloc[np.argsort(qr.ts.to_numpy(), kind="stable")]
    ts = qr.ts.to_numpy()
    return pd.DataFrame({"scan_id": seq.ids("QS-", len(qr)), "scanned_at": iso_ts(ts),
                         "code": qr.code.to_numpy(), "visitor_id": qr.visitor.to_numpy(), "_month": _month(ts)})
