"""Touchpoints of one study: web events (ad clicks, page views) and QR scans, of
the leads themselves (their last touch, and earlier touches of other channels for
the multi-channel persons) and of the many visitors who never become leads."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.delivery import PaidDelivery
from cockpit.demo.funnel import CH
from cockpit.demo.population import StudyLeads, noise_visitors, online_seconds
from cockpit.demo.util import DAY
from cockpit.demo.world import World

PAID_IDX = np.array([CH[c] for c in P.PAID_CHANNELS])
WEB_PAGE_CHANNELS = ("newsletter", "patient_community")
EARLIER_CHOICES = ("facebook", "instagram", "linkedin", "youtube", "newsletter", "patient_community",
                   "paper_brochure")


def cat(*parts) -> np.ndarray:
    """Element-wise string concatenation of arrays and constant strings (an object
    array of Python strings: far faster than numpy's fixed-width unicode here)."""
    n = max((len(p) for p in parts if not isinstance(p, str)), default=0)
    columns = [repeat(p, n) if isinstance(p, str) else np.asarray(p).tolist() for p in parts]
    out = np.empty(n, dtype=object)
    out[:] = ["".join(row) for row in zip(*columns)]
    return out


@dataclass
class Touches:
    """Raw touch rows of a study, before ids are given."""

    web: pd.DataFrame     # ts, visitor, event, utm (JSON text)
    qr: pd.DataFrame      # ts, code, visitor
    person_first_ts: np.ndarray   # earliest web/QR touch of each lead (-1 none)
    utm_alias: np.ndarray         # utm_source alias a lead's form carries ('' none)
    multi_touch: np.ndarray       # leads with earlier touches of other channels
    form_visitor: np.ndarray      # visitor id a lead's pre-screener carries ('' none)


def utm_aliases(channel_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A utm_source alias per row, drawn by each channel's alias weights."""
    out = np.full(len(channel_idx), "", dtype=object)
    for ch in np.unique(channel_idx):
        spec = P.CHANNELS[ch]
        rows = np.flatnonzero(channel_idx == ch)
        out[rows] = rng.choice(np.array(spec.utm_sources), size=len(rows), p=np.array(spec.utm_weights))
    return out.astype(str)


def utm_json(source: np.ndarray, channel_idx: np.ndarray, campaign: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The "utm" object of each web event; campaign/content only where known.
    There are few distinct objects, so each is formatted once."""
    codes = [pd.factorize(np.asarray(x, dtype=object))[0] for x in (source, channel_idx, campaign, content)]
    key = np.zeros(len(source), dtype=np.int64)
    for c in codes:
        key = key * (int(c.max(initial=0)) + 2) + c + 1
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    src, ch = np.asarray(source, dtype=object)[first], np.asarray(channel_idx)[first]
    camp, cont = np.asarray(campaign, dtype=object)[first], np.asarray(content, dtype=object)[first]
    medium = np.array([c.utm_medium for c in P.CHANNELS], dtype=object)[ch]
    base = cat('{"source": "', src, '", "medium": "', medium, '"')
    with_campaign = np.where(camp != "", cat(base, ', "campaign": "', camp, '"'), base)
    with_content = np.where(cont != "", cat(with_campaign, ', "content": "', cont, '"'), with_campaign)
    text = np.where(src == "", "{}", cat(with_content, "}")).astype(object)
    return text[inverse]


def _campaign_of(world: World, study_idx: int) -> dict[str, str]:
    c = world.campaigns[world.campaigns.study_idx == study_idx]
    return dict(zip(c.channel_id, c.campaign_id))


def build_touches(world: World, study_idx: int, leads: StudyLeads, delivery: PaidDelivery,
                  rng: np.random.Generator) -> Touches:
    """All web events and QR scans of the study."""
    a = leads.arrays
    campaigns = _campaign_of(world, study_idx)
    alias = utm_aliases(a["channel"], rng)
    web_parts, qr_parts, first_ts = _last_touches(world, a, alias, campaigns, rng)
    multi, w_extra, q_extra, extra_first = _earlier_touches(world, study_idx, leads, first_ts, campaigns, rng)
    first_ts = np.where(extra_first >= 0, extra_first, first_ts)
    noise_web, noise_qr = _noise(world, study_idx, leads, delivery, campaigns, rng)
    web = pd.concat(web_parts + [w_extra] + noise_web, ignore_index=True)
    qr = pd.concat(qr_parts + [q_extra, noise_qr], ignore_index=True)
    paid = np.isin(a["channel"], PAID_IDX)
    page = np.isin(a["channel"], [CH[c] for c in WEB_PAGE_CHANNELS])
    online = paid | page | (a["channel"] == CH["paper_brochure"])
    form_visitor = np.where(online | multi, a["visitor"], "")
    form_alias = np.where(paid | page, alias, "")
    return Touches(web, qr, first_ts, form_alias, multi, form_visitor)


def _last_touches(world: World, a: dict[str, np.ndarray], alias: np.ndarray, campaigns: dict[str, str],
                  rng: np.random.Generator) -> tuple[list[pd.DataFrame], list[pd.DataFrame], np.ndarray]:
    """Each lead's touch of its own channel just before the form: the ad click (and
    the landing page view, without UTM), the newsletter/community visit, the QR scan.
    Also returns each lead's first own touch (-1 for referrals and sign-ups)."""
    first_ts = np.full(len(a["lead_ts"]), -1, dtype=np.int64)
    paid = np.isin(a["channel"], PAID_IDX)
    clicked = paid & (a["click_ts"] >= 0)
    cr = np.maximum(a["creative"], 0)[clicked]
    clicks = _web(a["click_ts"][clicked], a["visitor"][clicked], "ad_click",
                  utm_json(alias[clicked], a["channel"][clicked],
                           world.creatives.campaign_id.to_numpy()[cr].astype(str),
                           world.creatives.creative_id.to_numpy()[cr].astype(str)))
    landing = a["lead_ts"][paid] - rng.integers(10, 50, paid.sum())
    landings = _web(landing, a["visitor"][paid], "page_view", np.full(paid.sum(), "{}"))
    first_ts[clicked] = a["click_ts"][clicked]
    first_ts[paid & ~clicked] = landing[~clicked[paid]]

    page = np.isin(a["channel"], [CH[c] for c in WEB_PAGE_CHANNELS])
    view_ts = a["lead_ts"][page] - rng.integers(60, 900, page.sum())
    camp = np.array([campaigns[P.CHANNELS[c].channel_id] for c in a["channel"][page]], dtype=str)
    views = _web(view_ts, a["visitor"][page], "page_view",
                 utm_json(alias[page], a["channel"][page], camp, np.full(page.sum(), "")))
    first_ts[page] = view_ts

    paper = a["channel"] == CH["paper_brochure"]
    scan_ts = a["lead_ts"][paper] - rng.integers(30, 300, paper.sum())
    scans = _qr(scan_ts, _site_codes(world, a["site"][paper]), a["visitor"][paper])
    first_ts[paper] = scan_ts
    return [clicks, landings, views], [scans], first_ts


def _web(ts: np.ndarray, visitor: np.ndarray, event: str, utm: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts.astype(np.int64), "visitor": visitor, "event": event, "utm": utm})


def _qr(ts: np.ndarray, code: np.ndarray, visitor: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts.astype(np.int64), "code": code, "visitor": visitor})


def _site_codes(world: World, site: np.ndarray) -> np.ndarray:
    return world.qr_codes.code.to_numpy()[site].astype(str)


def _earlier_touches(world: World, study_idx: int, leads: StudyLeads, own_first: np.ndarray,
                     campaigns: dict[str, str], rng: np.random.Generator):
    """1-2 touches of other channels, 1-21 days before the lead's own first touch, for
    a few persons. They share the person's visitor id, so the pre-screener links them,
    and the lead's own channel stays the last touch."""
    a = leads.arrays
    n = len(leads)
    picked = np.flatnonzero(rng.random(n) < P.MULTI_TOUCH_SHARE)
    person = np.repeat(picked, rng.integers(1, 3, len(picked)))
    anchor = np.where(own_first[person] >= 0, own_first[person], a["lead_ts"][person])
    ts = anchor - (rng.uniform(1, 21, len(person)) * DAY).astype(np.int64)
    choices = np.array(EARLIER_CHOICES)
    choice = rng.integers(0, len(choices) - 1, len(person))
    own = np.array([P.CHANNELS[c].channel_id for c in a["channel"][person]], dtype=str)
    chosen = np.where(choices[choice] == own, choices[choice + 1], choices[choice])  # never its own
    start = int(world.campaigns.start_day[world.campaigns.study_idx == study_idx].min()) * DAY
    keep = ts >= start
    person, ts, chosen = person[keep], ts[keep], chosen[keep]
    multi = np.zeros(n, dtype=bool)
    multi[person] = True
    first = np.full(n, -1, dtype=np.int64)
    first[person] = a["lead_ts"][person]
    np.minimum.at(first, person, ts)

    ch_idx = np.array([CH[c] for c in chosen], dtype=np.int64)
    visitor = a["visitor"][person]
    is_paid = np.isin(chosen, P.PAID_CHANNELS)
    on_web = is_paid | np.isin(chosen, WEB_PAGE_CHANNELS)
    content = np.full(len(chosen), "", dtype=object)
    content[is_paid] = world.creatives.creative_id.to_numpy()[_random_creatives(world, study_idx, chosen[is_paid], rng)]
    camp = np.array([campaigns[c] for c in chosen], dtype=str)
    utm = utm_json(utm_aliases(ch_idx, rng), ch_idx, camp, content.astype(str))
    web = _web(ts[on_web], visitor[on_web], "page_view", utm[on_web])
    web.loc[is_paid[on_web], "event"] = "ad_click"
    is_qr = chosen == "paper_brochure"
    qr = _qr(ts[is_qr], _site_codes(world, a["site"][person[is_qr]]), visitor[is_qr])
    return multi, web, qr, first


def _random_creatives(world: World, study_idx: int, channel_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A creative of the study's campaign on each channel, by planned shares."""
    cr = world.creatives
    camp = world.campaigns
    out = np.zeros(len(channel_ids), dtype=np.int64)
    for ch in np.unique(channel_ids):
        cid = camp.index[(camp.study_idx == study_idx) & (camp.channel_id == ch)][0]
        rows = cr.index[cr.campaign_idx == cid].to_numpy()
        shares = cr.share.to_numpy(float)[rows]
        pick = channel_ids == ch
        out[pick] = rng.choice(rows, size=pick.sum(), p=shares / shares.sum())
    return out


# ---------------------------------------------------------------- visitors who never convert


def _noise(world: World, study_idx: int, leads: StudyLeads, delivery: PaidDelivery,
           campaigns: dict[str, str], rng: np.random.Generator) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Tracked clicks that lead nowhere, newsletter/community visits, direct visits
    (no UTM) and brochure scans without a pre-screener."""
    counter = [0]

    def visitors(m: int) -> np.ndarray:
        out = noise_visitors(world.seed, study_idx, counter[0], m)
        counter[0] += m
        return out

    parts = [_noise_clicks(world, delivery, leads, rng, visitors)]
    days = leads.days
    for ch, per_lead in (("newsletter", P.NEWSLETTER_VIEWS_PER_LEAD),
                         ("patient_community", P.COMMUNITY_VIEWS_PER_LEAD)):
        counts = rng.poisson(leads.day_rates[ch] * per_lead)
        day = np.repeat(days, counts)
        idx = np.full(len(day), CH[ch])
        camp = np.where(rng.random(len(day)) < 0.8, campaigns[ch], "")
        utm = utm_json(utm_aliases(idx, rng), idx, camp.astype(str), np.full(len(day), ""))
        parts.append(_web(online_seconds(day, rng), visitors(len(day)), "page_view", utm))
    total_rate = sum(leads.day_rates.values())
    day = np.repeat(days, rng.poisson(total_rate * P.DIRECT_VIEWS_PER_LEAD))
    parts.append(_web(online_seconds(day, rng), visitors(len(day)), "page_view", np.full(len(day), "{}")))

    site_pos, day_pos = np.nonzero(scans := rng.poisson(leads.site_day_rates["paper_brochure"] * P.QR_SCANS_PER_LEAD))
    k = scans[site_pos, day_pos]
    site = leads.site_idx[np.repeat(site_pos, k)]
    day = days[np.repeat(day_pos, k)]
    ts = day.astype(np.int64) * DAY + 8 * 3600 + rng.integers(0, 12 * 3600, len(day))
    qr = _qr(ts, _site_codes(world, site), visitors(len(day)))
    return parts, qr


def _noise_clicks(world: World, delivery: PaidDelivery, leads: StudyLeads, rng: np.random.Generator,
                  visitors) -> pd.DataFrame:
    """Tracked ad clicks of non-converting visitors: the platform's clicks of the day
    less the converters' clicks, of which ~85% reach the web analytics; some go on to
    a second page (a page view without UTM)."""
    a = leads.arrays
    ads = delivery.ads
    paid = a["click_ts"] >= 0
    conv = pd.DataFrame({"day": a["click_ts"][paid] // DAY, "creative_idx": a["creative"][paid]})
    conv = conv.value_counts().rename("conv").reset_index()
    merged = ads.merge(conv, on=["day", "creative_idx"], how="left").fillna({"conv": 0})
    free = np.maximum(merged.clicks.to_numpy() - merged.conv.to_numpy().astype(np.int64), 0)
    tracked = rng.binomial(free, P.TRACKED_CLICK_SHARE)
    row = np.repeat(np.arange(len(merged)), tracked)
    cr = merged.creative_idx.to_numpy()[row]
    ch_idx = np.array([CH[c] for c in world.creatives.channel_id.to_numpy()[cr]], dtype=np.int64) \
        if len(cr) else np.array([], dtype=np.int64)
    ts = online_seconds(merged.day.to_numpy()[row], rng)
    vis = visitors(len(row))
    utm = utm_json(utm_aliases(ch_idx, rng), ch_idx, world.creatives.campaign_id.to_numpy()[cr].astype(str),
                   world.creatives.creative_id.to_numpy()[cr].astype(str))
    clicks = _web(ts, vis, "ad_click", utm)
    more = rng.random(len(row)) < P.EXTRA_PAGE_VIEW_PROB
    views = _web(ts[more] + rng.integers(5, 120, more.sum()), vis[more], "page_view", np.full(more.sum(), "{}"))
    return pd.concat([clicks, views], ignore_index=True)
