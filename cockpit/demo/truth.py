"""ground_truth.json: every planted effect with its exact parameters, and counts of
what was written, so tests can check that the cockpit finds what was planted.

Only aggregates are kept between studies (memory stays bounded at any scale)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.funnel import CH
from cockpit.demo.media import week_of
from cockpit.demo.util import DAY, working_days_between
from cockpit.demo.world import World, ctr_drift_day

CHANNEL_IDS = [c.channel_id for c in P.CHANNELS]
SEGMENT_IDS = [s.segment_id for s in P.SEGMENTS]


def _r(x: float, digits: int = 6) -> float | None:
    """Rounded float for JSON (None for missing / not finite)."""
    if x is None or not np.isfinite(x):
        return None
    return float(round(float(x), digits))


def _median(values) -> float | None:
    values = np.asarray(values, dtype=float)
    return _r(float(np.median(values)), 3) if len(values) else None


def _iso(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


class TruthCollector:
    """Accumulates per-study aggregates and assembles the ground-truth document."""

    def __init__(self, world: World, plan) -> None:
        self.world = world
        self.plan = plan
        self.expected_weekly = np.zeros_like(plan.expected)   # expected leads per plan week, CTR drift included
        self.studies: dict[str, dict] = {}
        self.sites: dict[str, dict] = {}
        self.channel_leads = np.zeros(len(CHANNEL_IDS), dtype=np.int64)
        self.channel_rand = np.zeros(len(CHANNEL_IDS), dtype=np.int64)
        self.channel_cost = np.zeros(len(CHANNEL_IDS))
        self.seg_ch_leads = np.zeros((len(SEGMENT_IDS), len(CHANNEL_IDS)), dtype=np.int64)
        self.seg_ch_rand = np.zeros((len(SEGMENT_IDS), len(CHANNEL_IDS)), dtype=np.int64)
        self.seg_contacted = np.zeros(len(SEGMENT_IDS), dtype=np.int64)
        self.seg_consented = np.zeros(len(SEGMENT_IDS), dtype=np.int64)
        self.seg_days_rand: dict[int, list] = defaultdict(list)
        self.seg_days_consent: dict[int, list] = defaultdict(list)
        self.curves: list[dict] = []
        self.arms: list[pd.DataFrame] = []
        self.ctr_drift = {"before": [0, 0], "after": [0, 0]}
        self.contact_drift: dict[str, list] = {"before": [], "after": []}
        self.consent = defaultdict(int)
        self.contacts = defaultdict(int)
        self.touch_counts = defaultdict(int)

    # ------------------------------------------------------------ per study

    def add_study(self, s: int, data) -> None:
        w = self.world
        a = data.leads.arrays
        f = data.funnel
        rand = f.status_ts["randomized"] >= 0
        study_id = w.studies.study_id[s]
        self.studies[study_id] = {
            "persons": len(data.leads), "leads": len(data.leads),
            "prescreener_responses": int((f.form_ts >= 0).sum()),
            "eligible": int((f.eligible == 1).sum()),
            "consented": int((f.status_ts["consented"] >= 0).sum()),
            "randomized": int(rand.sum()),
            "target_randomized": int(w.studies.target_randomized[s]),
            "expected_lead_to_randomized": _r(w.studies.expected_yield[s], 4),
        }
        self._add_sites(s, a, f, rand)
        self._add_channels(a, rand, data)
        self._add_segments(a, f, rand)
        self._add_drifts(s, a, f, data.delivery)
        self.curves.extend(data.delivery.curves)
        self.curves.extend(data.offline)
        self._add_expected(s, data)
        arms = data.delivery.arms
        exp_rows = w.creatives.experiment_id.notna().to_numpy()[arms.creative_idx.to_numpy()]
        self.arms.append(arms[exp_rows])
        self._add_people(a, data)

    def _add_expected(self, s: int, data) -> None:
        """The study's expected leads per week and channel: its share of the planted
        response, with the paid campaigns' CTR drift applied."""
        weekly = self.plan.study_weekly(s)
        rows = week_of(data.delivery.days) - self.plan.first_week
        for ch, daily in data.delivery.expected_daily.items():
            j = CH[ch]
            weekly[:, j] = 0.0
            np.add.at(weekly[:, j], rows, daily)
        self.expected_weekly += weekly

    def _first_contact(self, f) -> np.ndarray:
        """When the site first reached the lead ('contacted'); -1 when never."""
        return f.status_ts["contacted"]

    def _add_sites(self, s: int, a, f, rand) -> None:
        w = self.world
        first = self._first_contact(f)
        has = first >= 0
        wd = working_days_between(a["lead_ts"][has], first[has])
        cal = (first[has] - a["lead_ts"][has]) / DAY
        site_of_contact = a["site"][has]
        for i in np.flatnonzero(w.sites.study_idx.to_numpy() == s):
            row = w.sites.loc[i]
            act = int(row.activation_day)
            months = (w.end_day + 1 - act) / P.DAYS_PER_MONTH if act >= 0 else 0.0
            n_rand = int((rand & (a["site"] == i)).sum())
            mine = site_of_contact == i
            self.sites[row.site_id] = {
                "study_id": w.studies.study_id[s], "activation_date": _iso(act) if act >= 0 else None,
                "planted_rate_per_month": _r(row.rate_planted, 4),
                "active_months": _r(months, 3), "leads": int((a["site"] == i).sum()), "randomized": n_rand,
                "observed_rate_per_month": _r(n_rand / months, 4) if months > 0 else None,
                "median_contact_working_days": _median(wd[mine]),
                "median_contact_calendar_days": _median(cal[mine]),
                "non_enrolling": bool(row.non_enrolling), "slow_contact": bool(row.slow_contact),
            }

    def _add_channels(self, a, rand, data) -> None:
        self.channel_leads += np.bincount(a["channel"], minlength=len(CHANNEL_IDS))
        self.channel_rand += np.bincount(a["channel"][rand], minlength=len(CHANNEL_IDS))
        for curve in data.delivery.curves:
            self.channel_cost[CH[curve["channel_id"]]] += curve["spend_eur"]
        by = data.costs.groupby("channel").amount.sum()
        for ch, amount in by.items():
            self.channel_cost[CH[ch]] += float(amount)

    def _add_segments(self, a, f, rand) -> None:
        seg, ch = a["segment"], a["channel"]
        np.add.at(self.seg_ch_leads, (seg, ch), 1)
        np.add.at(self.seg_ch_rand, (seg[rand], ch[rand]), 1)
        contacted = f.status_ts["contacted"] >= 0
        consented = f.status_ts["consented"] >= 0
        self.seg_contacted += np.bincount(seg[contacted], minlength=len(SEGMENT_IDS))
        self.seg_consented += np.bincount(seg[consented], minlength=len(SEGMENT_IDS))
        for k in range(len(SEGMENT_IDS)):
            m = rand & (seg == k)
            self.seg_days_rand[k].extend(((f.status_ts["randomized"][m] - a["lead_ts"][m]) / DAY).tolist())
            m = consented & (seg == k)
            self.seg_days_consent[k].extend(((f.status_ts["consented"][m] - a["lead_ts"][m]) / DAY).tolist())

    def _add_drifts(self, s: int, a, f, delivery) -> None:
        w = self.world
        study_id, channel_id, first_day, _ = ctr_drift_day(w)
        if w.studies.study_id[s] == study_id:
            ads = delivery.ads
            ch = w.creatives.channel_id.to_numpy()[ads.creative_idx.to_numpy()]
            for key, m in (("before", ads.day.to_numpy() < first_day), ("after", ads.day.to_numpy() >= first_day)):
                sel = m & (ch == channel_id)
                self.ctr_drift[key][0] += int(ads.impressions.to_numpy()[sel].sum())
                self.ctr_drift[key][1] += int(ads.clicks.to_numpy()[sel].sum())
        drift_sites = np.flatnonzero(w.sites.drift_day.to_numpy() >= 0)
        first = self._first_contact(f)
        for i in drift_sites:
            if w.sites.study_idx[i] != s:
                continue
            day = w.sites.drift_day[i]
            m = (a["site"] == i) & (first >= 0)
            done = f.completed_ts[m] // DAY
            wd = working_days_between(a["lead_ts"][m], first[m])
            self.contact_drift["before"].extend(wd[done < day].tolist())
            self.contact_drift["after"].extend(wd[done >= day].tolist())

    def _add_people(self, a, data) -> None:
        style = data.style
        cons = data.consents
        decided = cons[cons.purpose == "tracking"].person.unique()
        refused = cons[(cons.purpose == "tracking") & (cons.action == "withdrawn")].person.to_numpy()
        self.consent["persons_with_tracking_decision"] += len(decided)
        self.consent["never_tracking_persons"] += int(style.never_tracking[decided].sum())
        self.consent["tracking_withdrawn_later_persons"] += len(np.unique(refused)) - int(
            style.never_tracking[np.unique(refused)].sum())
        self.consent["contact_research_grants"] += int((cons.purpose == "contact_research").sum())
        self.contacts["email_variant_persons"] += int((style.email_style > 0).sum())
        self.contacts["multi_touch_persons"] += int(data.touches.multi_touch.sum())
        self.contacts["persons_with_phone"] += int((a["phone_e164"] != "").sum())
        web = data.touches.web
        self.touch_counts["web_events"] += len(web)
        self.touch_counts["web_events_with_utm"] += int((web.utm != "{}").sum())
        self.touch_counts["ad_clicks"] += int((web.event == "ad_click").sum())
        self.touch_counts["qr_scans"] += len(data.touches.qr)

    # ------------------------------------------------------------ document

    def document(self, writer) -> dict:
        w = self.world
        return {
            "seed": w.seed, "scale": w.scale_name, "end_date": w.end.isoformat(),
            "channels": self._channels(),
            "cheapest_channel_per_randomized": self._cheapest(),
            "channel_order_by_cost_per_randomized": self._order(self.channel_rand),
            "channel_order_by_cost_per_lead": self._order(self.channel_leads),
            "campaigns": [{k: (_r(v, 2) if isinstance(v, float) else v) for k, v in c.items()}
                          for c in self.curves],
            "planted_response": self._planted_response(),
            "experiments": self._experiments(),
            "drifts": self._drifts(),
            "non_enrolling_sites": sorted(w.sites.site_id[w.sites.non_enrolling].tolist()),
            "slow_contact_sites": self._slow_sites(),
            "typical_median_contact_working_days": self._typical_contact(),
            "segments": self._segments(),
            "site_rates": self._site_rates(),
            "consent": dict(self.consent) | {
                "never_tracking_share": _r(self.consent["never_tracking_persons"]
                                           / max(self.consent["persons_with_tracking_decision"], 1), 4),
                "refusal_recorded_as": "action 'withdrawn' without an earlier 'granted'"},
            "contacts": dict(self.contacts) | {"email_domains": list(P.EMAIL_DOMAINS)},
            "counts": self._counts(writer),
        }

    def _channels(self) -> dict:
        """Per channel: leads, randomized, cost, cost per lead and per randomized (as
        generated), and the planted response of its spend (every channel has one)."""
        plan = self.plan
        out = {}
        for i, c in enumerate(P.CHANNELS):
            entry = {"kind": c.kind, "online": c.online, "lead_share_planted": c.lead_share,
                     "leads": int(self.channel_leads[i]), "randomized": int(self.channel_rand[i]),
                     "cost_eur": _r(self.channel_cost[i], 2),
                     "planted_cost_per_lead": _r(self.channel_cost[i] / self.channel_leads[i], 2)
                     if self.channel_leads[i] else None,
                     "planted_cost_per_randomized": _r(self.channel_cost[i] / self.channel_rand[i], 2)
                     if self.channel_rand[i] else None,
                     "spend_response": c.channel_id in P.RESPONSE_CHANNELS,
                     "adstock_decay": None, "hill": None}
            spec = P.PAID.get(c.channel_id) or P.OFFLINE.get(c.channel_id)
            if spec is not None:
                entry["adstock_decay"] = spec.adstock_decay
                entry["hill"] = {
                    "formula": "expected leads in week w (all studies) = max_leads_per_week * A_w^shape / "
                               "(half_saturation^shape + A_w^shape), A_w = (1 - adstock_decay) * x_w + "
                               "adstock_decay * A_{w-1}, x_w = the channel's spend in week w (Monday to Sunday, "
                               "all studies; A = 0 before the first week)",
                    "shape": spec.hill_shape,
                    "half_saturation_eur_per_week": _r(plan.half[i], 2),
                    "max_leads_per_week": _r(plan.vmax[i], 4),
                    "planned_cost_per_lead": spec.cost_per_lead,
                    "expected_leads": _r(float(self.expected_weekly[:, i].sum()), 2),
                    "weekly": "planted_response"}
                if c.channel_id in P.PAID:
                    entry["hill"] |= {"cpm_eur": spec.cpm_eur, "ctr": spec.ctr}
                else:
                    entry["hill"] |= {"booking": spec.booking, "cost_items": spec.description}
            out[c.channel_id] = entry
        return out

    def _planted_response(self) -> dict:
        """The channels' weekly spend and expected leads (the planted response; the CTR
        drift of the paid campaign it hits is applied)."""
        plan = self.plan
        return {
            "unit": "weeks start on Monday; spend in EUR over all studies; expected leads of the planted response",
            "weeks": plan.week_dates(),
            "channels": {c: {"spend_eur": [_r(v, 2) for v in plan.spend[:, j]],
                             "adstock_eur": [_r(v, 2) for v in plan.adstock[:, j]],
                             "expected_leads": [_r(v, 3) for v in self.expected_weekly[:, j]]}
                         for j, c in enumerate(CHANNEL_IDS)},
        }

    def _order(self, per: np.ndarray) -> list[str]:
        """Channels with a planted spend response, cheapest first, by cost per `per`."""
        keep = [i for i, c in enumerate(CHANNEL_IDS) if c in P.RESPONSE_CHANNELS and per[i] > 0]
        return [CHANNEL_IDS[i] for i in sorted(keep, key=lambda i: self.channel_cost[i] / per[i])]

    def _cheapest(self) -> str:
        cost = np.where(self.channel_rand > 0, self.channel_cost / np.maximum(self.channel_rand, 1), np.inf)
        return CHANNEL_IDS[int(np.argmin(cost))]

    def _experiments(self) -> list[dict]:
        w = self.world
        arms = pd.concat(self.arms, ignore_index=True) if self.arms else pd.DataFrame()
        out = []
        for exp in P.EXPERIMENTS:
            crs = w.creatives[w.creatives.experiment_id == exp.experiment_id]
            if crs.empty:
                continue
            obs = arms.set_index("creative_idx").loc[crs.index]
            ids = crs.creative_id.tolist()
            control = crs.creative_id[crs.is_control].iloc[0]
            ctr = P.PAID[exp.channel_id].ctr
            base = {"experiment_id": exp.experiment_id, "campaign_id": crs.campaign_id.iloc[0], "control": control,
                    "variants": dict(zip(ids, crs.variant)), "planned_share": dict(zip(ids, crs.planned_share))}
            effect_ctr = len(set(crs.ctr_factor)) > 1
            effect_lead = len(set(crs.lead_factor)) > 1
            out.append(base | {
                "metric": "ctr", "unit": "clicks / impressions",
                "arms": {i: _r(ctr * f) for i, f in zip(ids, crs.ctr_factor)}, "has_effect": effect_ctr,
                "observed": {i: {"impressions": int(r.impressions), "clicks": int(r.clicks)}
                             for i, r in zip(ids, obs.itertuples())}})
            out.append(base | {
                "metric": "leads_per_click", "unit": "leads / clicks (expected over the run)",
                "arms": {i: _r(r.expected_leads / r.expected_clicks) for i, r in zip(ids, obs.itertuples())},
                "has_effect": effect_lead,
                "observed": {i: {"clicks": int(r.clicks), "leads": int(r.leads)} for i, r in zip(ids, obs.itertuples())}})
        return out

    def _drifts(self) -> list[dict]:
        out = []
        for d in self.world.drifts:
            d = dict(d)
            if d["kpi"] == "ctr":
                b, a = self.ctr_drift["before"], self.ctr_drift["after"]
                d["observed"] = {"ctr_before": _r(b[1] / max(b[0], 1)), "ctr_after": _r(a[1] / max(a[0], 1))}
            else:
                d["observed"] = {"median_before": _median(self.contact_drift["before"]),
                                 "median_after": _median(self.contact_drift["after"]),
                                 "contacts_before": len(self.contact_drift["before"]),
                                 "contacts_after": len(self.contact_drift["after"])}
            out.append(d)
        return out

    def _slow_sites(self) -> list[dict]:
        w = self.world
        return [{"site_id": sid, "median_contact_days": self.sites[sid]["median_contact_working_days"],
                 "unit": "working days from lead to first contact (status contacted)",
                 "median_contact_calendar_days": self.sites[sid]["median_contact_calendar_days"],
                 "planted_median_working_days": P.SLOW_CONTACT_WORKING_DAYS[0]}
                for sid in sorted(w.sites.site_id[w.sites.slow_contact])]

    def _typical_contact(self) -> float | None:
        values = [v["median_contact_working_days"] for v in self.sites.values()
                  if not v["slow_contact"] and v["median_contact_working_days"] is not None]
        return _median(values)

    def _segments(self) -> dict:
        out = {}
        for k, s in enumerate(P.SEGMENTS):
            leads = int(self.seg_ch_leads[k].sum())
            rand = int(self.seg_ch_rand[k].sum())
            out[s.segment_id] = {
                "min_age": s.min_age, "max_age": s.max_age,
                "planted": {"delay_factor": s.delay_factor, "completion_rate": s.completion,
                            "eligibility_factor": s.eligibility_factor, "reach_rate": s.reach,
                            "consent_rate": s.consent},
                "leads": leads, "randomized": rand,
                "lead_to_randomized": _r(rand / leads, 4) if leads else None,
                "consent_rate_observed": _r(self.seg_consented[k] / self.seg_contacted[k], 4)
                if self.seg_contacted[k] else None,
                "median_days_lead_to_consented": _median(self.seg_days_consent[k]),
                "median_days_lead_to_randomized": _median(self.seg_days_rand[k]),
                "by_channel": {ch: {"leads": int(self.seg_ch_leads[k, j]), "randomized": int(self.seg_ch_rand[k, j])}
                               for j, ch in enumerate(CHANNEL_IDS) if self.seg_ch_leads[k, j]},
            }
        return out

    def _site_rates(self) -> dict:
        w = self.world
        return {
            "distribution": "gamma", "shape": P.SITE_RATE_SHAPE, "scale": P.SITE_RATE_SCALE,
            "unit": "randomized per active site-month", "floor": P.SITE_RATE_FLOOR,
            "rate_multiplier": w.scale.rate_multiplier,
            "sites": self.sites,
        }

    def _counts(self, writer) -> dict:
        total = {k: sum(v[k] for v in self.studies.values())
                 for k in ("persons", "leads", "prescreener_responses", "eligible", "consented", "randomized")}
        return {
            "rows": dict(writer.rows), "files": writer.files_per_kind(),
            "studies": self.studies, "total": total | dict(self.touch_counts),
            "sites": len(self.world.sites), "active_sites": int((self.world.sites.activation_day >= 0).sum()),
        }
