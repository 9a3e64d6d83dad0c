"""The demo generator: `generate()` writes a drop folder of raw exports and the
ground truth of what was planted in them.

The setup is drawn once, then the media plan: every study's spend per channel and
the channels' planted response to the portfolio's weekly spend (`cockpit.demo.media`;
kept for all studies, a few numbers per study-day). Then each study is generated on its
own random streams (paid delivery, leads, funnel, touches, records) and appended to the
monthly files, so the result depends only on (seed, scale, end) and memory on one study
at a time plus the plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cockpit.demo import params as P
from cockpit.demo.costs import cost_rows, offline_costs
from cockpit.demo.delivery import PaidDelivery, paid_delivery
from cockpit.demo.exports import SETUP_FILE, TRUTH_FILE, DropWriter, ad_exports
from cockpit.demo.funnel import CH, FunnelResult, run_funnel
from cockpit.demo.media import MediaPlan, build_plan
from cockpit.demo.population import StudyLeads, build_leads, study_rng
from cockpit.demo.records import (PersonStyle, Sequences, consent_lines, consent_rows, lead_ids, person_styles,
                                  pipeline_rows, prescreener_rows, qr_rows, referral_rows, signup_rows, web_lines)
from cockpit.demo.touches import Touches, build_touches
from cockpit.demo.truth import TruthCollector
from cockpit.demo.util import DAY, year_of
from cockpit.demo.world import World, build_world, setup_document

# Random stream numbers of a study (world draws use stream 1, the plan's flight
# calendars stream 2, each study's spend plan stream 16: cockpit.demo.media).
STREAM_DELIVERY, STREAM_LEADS, STREAM_FUNNEL, STREAM_TOUCHES, STREAM_RECORDS = range(10, 15)


@dataclass
class StudyData:
    """Everything generated for one study (kept only while it is written)."""

    delivery: PaidDelivery
    offline: list[dict]          # per offline campaign: spend, expected and drawn leads
    leads: StudyLeads
    funnel: FunnelResult
    touches: Touches
    style: PersonStyle
    consents: pd.DataFrame
    costs: pd.DataFrame


def generate(out_dir: Path, seed: int = 7, scale: str = "small", end: date = date(2026, 11, 15),
             progress: Callable[[str], None] | None = None) -> dict:
    """Write the raw exports of a demo into `out_dir` and return a summary
    (files written, rows per kind, persons, leads and randomized).

    The same (seed, scale, end) always gives byte-identical files."""
    if scale not in P.SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(P.SCALES)}")
    say = progress or (lambda _line: None)
    world = build_world(seed, scale, end)
    writer = DropWriter(Path(out_dir), end)
    writer.clean()
    writer.write_json(SETUP_FILE, setup_document(world))
    seq = Sequences()
    plan = build_plan(world)
    truth = TruthCollector(world, plan)
    n = len(world.studies)
    for s in range(n):
        data = _generate_study(world, plan, s, writer, seq)
        truth.add_study(s, data)
        say(f"study {world.studies.study_id[s]} ({s + 1}/{n}): {len(data.leads):,} leads")
    writer.finish()
    document = truth.document(writer)
    writer.write_json(TRUTH_FILE, document)
    say(f"wrote {len(writer.files) + 1} export files to {writer.out}")
    return {
        "out_dir": str(writer.out),
        "seed": seed, "scale": scale, "end_date": end.isoformat(),
        "files": [SETUP_FILE] + writer.file_list(),
        "rows": dict(writer.rows),
        "persons": document["counts"]["total"]["persons"],
        "leads": document["counts"]["total"]["leads"],
        "randomized": document["counts"]["total"]["randomized"],
    }


def _generate_study(world: World, plan: MediaPlan, s: int, writer: DropWriter, seq: Sequences) -> StudyData:
    """Generate one study and append its rows to the drop folder."""
    seed = world.seed
    study = world.studies.loc[s]
    spend = plan.studies[s]
    expected = plan.study_daily(s)
    delivery = paid_delivery(world, s, spend.days,
                             {ch: spend.daily[:, CH[ch]] for ch in P.PAID_CHANNELS},
                             {ch: expected[ch] for ch in P.PAID_CHANNELS}, study_rng(seed, STREAM_DELIVERY, s))
    leads = build_leads(world, s, delivery, plan, study_rng(seed, STREAM_LEADS, s))
    a = leads.arrays
    end_s = world.end_day * DAY
    funnel = run_funnel(study, a, _site_flags(world), end_s, study_rng(seed, STREAM_FUNNEL, s))
    _align_birth_years(a, funnel)
    touches = build_touches(world, s, leads, delivery, study_rng(seed, STREAM_TOUCHES, s))

    rng = study_rng(seed, STREAM_RECORDS, s)
    style = person_styles(len(leads), rng)
    referral, signup = lead_ids(leads, seq)
    writer.append("hcp_referrals", referral_rows(world, s, leads, style, referral, rng))
    writer.append("screening_events", signup_rows(world, s, leads, style, signup, rng))
    writer.append("prescreener", prescreener_rows(world, s, leads, funnel, touches, referral, signup, seq, rng))
    writer.append("site_pipeline", pipeline_rows(world, s, leads, funnel, style, seq, rng))
    consents = consent_rows(leads, funnel, touches, style, end_s, rng)
    writer.append("consent", consent_lines(consents, leads, style, seq, rng))
    writer.append("web_events", web_lines(touches.web, study.study_id, seq))
    writer.append("qr_scans", qr_rows(touches.qr, seq))
    for kind, rows in ad_exports(world, delivery).items():
        writer.append(kind, rows)
    costs = offline_costs(world, s, spend)
    writer.append("offline_costs", cost_rows(costs, seq.ids("OC-", len(costs))))
    return StudyData(delivery, _offline_campaigns(world, plan, s, a), leads, funnel, touches, style, consents, costs)


def _offline_campaigns(world: World, plan: MediaPlan, s: int, a: dict[str, np.ndarray]) -> list[dict]:
    """Spend, expected and drawn leads of the study's offline campaigns."""
    camps = world.campaigns[world.campaigns.study_idx == s].set_index("channel_id").campaign_id
    spend = plan.studies[s].daily.sum(axis=0)
    expected = plan.study_weekly(s).sum(axis=0)
    return [{"campaign_id": camps[ch], "study_id": world.studies.study_id[s], "channel_id": ch,
             "spend_eur": float(spend[CH[ch]]), "expected_leads": float(expected[CH[ch]]),
             "leads": int((a["channel"] == CH[ch]).sum())} for ch in P.OFFLINE]


def _site_flags(world: World) -> dict[str, np.ndarray]:
    sites = world.sites
    return {"non_enrolling": sites.non_enrolling.to_numpy(bool), "slow_contact": sites.slow_contact.to_numpy(bool),
            "drift_day": sites.drift_day.to_numpy(np.int64), "drift_factor": sites.drift_factor.to_numpy(float)}


def _align_birth_years(a: dict[str, np.ndarray], funnel: FunnelResult) -> None:
    """The loader takes the age at the pre-screener's start: keep the drawn age there
    when a referral in December leads to a form in January."""
    started = funnel.form_ts >= 0
    shift = np.where(started, year_of(np.maximum(funnel.form_ts, 0)) - year_of(a["lead_ts"]), 0)
    a["birth_year"] = a["birth_year"] + shift
