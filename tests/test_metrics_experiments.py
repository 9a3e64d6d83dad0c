"""Experiment numbers on a tiny hand-built store: every count below is worked out by hand
from EXP_SQL, and every verdict is checked against abtest.analyze on those hand counts."""
import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cockpit import derive
from cockpit.analytics import abtest
from cockpit.filters import Filters
from cockpit.metrics import experiments as ex
from cockpit.store import open_db

# E1 (study A, facebook, no planned end): text (control, 1/2), video (1/4), infographic (1/4).
# E2 (study B, instagram, planned end 2026-03-31): simple (control) vs detailed, 1/2 each.
# NA is a creative of the same campaign outside any experiment.
EXP_SQL = """
INSERT INTO study VALUES
  ('A', 'Atopic study', 'II',  'Dermatology', 10, '2026-01-01', '2026-12-31', 10000, 'EUR'),
  ('B', 'Bone study',   'III', 'Rheumatology', 20, '2026-01-01', '2027-06-30', 12000, 'EUR');
INSERT INTO site VALUES
  ('A1', 'A', 'Berlin',  'DE', '2026-01-10', '2026-01-15'),
  ('A2', 'A', 'Hamburg', 'DE', '2026-01-10', '2026-01-15'),
  ('B1', 'B', 'Lyon',    'FR', '2026-01-10', '2026-01-20');
INSERT INTO channel VALUES
  ('facebook', 'Facebook', 'paid_social', TRUE),
  ('instagram', 'Instagram', 'paid_social', TRUE);
INSERT INTO segment VALUES ('adults', 'Adults 18-64', 18, 64), ('seniors', 'Seniors 65+', 65, 120);
INSERT INTO campaign VALUES
  ('CA', 'A', 'facebook', 'A | FB', '2026-03-01', NULL),
  ('CB', 'B', 'instagram', 'B | IG', '2026-03-01', '2026-03-31');
INSERT INTO creative VALUES
  ('XA', 'CA', 'A text only', 'text', 'E1', TRUE, 0.5),
  ('YA', 'CA', 'A video 20s', 'video', 'E1', FALSE, 0.25),
  ('ZA', 'CA', 'A infographic', 'infographic', 'E1', FALSE, 0.25),
  ('NA', 'CA', 'A default image', 'image', NULL, FALSE, NULL),
  ('SB', 'CB', 'B simple invitation', 'simple', 'E2', TRUE, 0.5),
  ('DB', 'CB', 'B detailed invitation', 'detailed', 'E2', FALSE, 0.5);
INSERT INTO ad_daily VALUES
  ('2026-03-02', 'CA', 'XA', 10, 1000, 20, 'f'),
  ('2026-03-02', 'CA', 'YA', 5,  500, 15, 'f'),
  ('2026-03-02', 'CA', 'ZA', 5,  500, 10, 'f'),
  ('2026-03-02', 'CA', 'NA', 1,  100,  1, 'f'),
  ('2026-03-09', 'CA', 'XA', 10, 1000, 30, 'f'),
  ('2026-03-09', 'CA', 'YA', 5,  500, 25, 'f'),
  ('2026-03-09', 'CA', 'ZA', 5,  500,  5, 'f'),
  ('2026-03-03', 'CB', 'SB', 5,  400,  8, 'f'),
  ('2026-03-03', 'CB', 'DB', 5,  400,  8, 'f');
INSERT INTO person VALUES
  ('p1', 1980, 'adults', '2026-03-02'), ('p2', 1950, 'seniors', '2026-03-09'),
  ('p3', 1990, 'adults', '2026-03-02'), ('p4', 1985, 'adults', '2026-03-09'),
  ('p5', 1975, 'adults', '2026-03-09'), ('p6', 1940, 'seniors', '2026-03-02'),
  ('p7', 1970, 'adults', '2026-03-02'), ('p8', 1960, 'adults', '2026-03-03'),
  ('p9', 1965, 'adults', '2026-03-02');
INSERT INTO touchpoint VALUES
  ('t1', 'p1', 'v1', '2026-03-02 10:00', 'ad_click', 'facebook', 'CA', 'XA', 'A', NULL, NULL, 'f'),
  ('t2', 'p2', 'v2', '2026-03-09 10:00', 'ad_click', 'facebook', 'CA', 'XA', 'A', NULL, NULL, 'f'),
  ('t3', 'p3', 'v3', '2026-03-02 11:00', 'ad_click', 'facebook', 'CA', 'YA', 'A', NULL, NULL, 'f'),
  ('t4', 'p4', 'v4', '2026-03-09 11:00', 'ad_click', 'facebook', 'CA', 'YA', 'A', NULL, NULL, 'f'),
  ('t5', 'p5', 'v5', '2026-03-09 12:00', 'ad_click', 'facebook', 'CA', 'YA', 'A', NULL, NULL, 'f'),
  ('t6', 'p6', 'v6', '2026-03-02 12:00', 'ad_click', 'facebook', 'CA', 'ZA', 'A', NULL, NULL, 'f'),
  -- p7 never granted tracking consent: the click must not attribute the lead to XA
  ('t7', 'p7', 'v7', '2026-03-02 13:00', 'ad_click', 'facebook', 'CA', 'XA', 'A', NULL, NULL, 'f'),
  ('t8', 'p8', 'v8', '2026-03-03 10:00', 'ad_click', 'instagram', 'CB', 'SB', 'B', NULL, NULL, 'f'),
  -- p9 clicked the creative outside the experiment
  ('t9', 'p9', 'v9', '2026-03-02 14:00', 'ad_click', 'facebook', 'CA', 'NA', 'A', NULL, NULL, 'f');
INSERT INTO consent_event VALUES
  ('c1', 'p1', 'tracking', TRUE, '2026-03-02 09:00', NULL, 'v1', 'f'),
  ('c2', 'p2', 'tracking', TRUE, '2026-03-09 09:00', NULL, 'v1', 'f'),
  ('c3', 'p3', 'tracking', TRUE, '2026-03-02 09:00', NULL, 'v1', 'f'),
  ('c4', 'p4', 'tracking', TRUE, '2026-03-09 09:00', NULL, 'v1', 'f'),
  ('c5', 'p5', 'tracking', TRUE, '2026-03-09 09:00', NULL, 'v1', 'f'),
  ('c6', 'p6', 'tracking', TRUE, '2026-03-02 09:00', NULL, 'v1', 'f'),
  ('c8', 'p8', 'tracking', TRUE, '2026-03-03 09:00', NULL, 'v1', 'f'),
  ('c9', 'p9', 'tracking', TRUE, '2026-03-02 09:00', NULL, 'v1', 'f');
INSERT INTO funnel_event VALUES
  ('e1',  'p1', 'A', 'A1', 'lead',               '2026-03-02 10:10', NULL, 'f'),
  ('e2',  'p1', 'A', 'A1', 'prescreen_eligible', '2026-03-02 10:20', NULL, 'f'),
  ('e3',  'p1', 'A', 'A1', 'consented',          '2026-03-06 10:00', NULL, 'f'),
  ('e4',  'p1', 'A', 'A1', 'randomized',         '2026-03-09 10:00', NULL, 'f'),
  ('e5',  'p2', 'A', 'A1', 'lead',               '2026-03-09 10:10', NULL, 'f'),
  ('e6',  'p2', 'A', 'A1', 'prescreen_eligible', '2026-03-09 10:20', NULL, 'f'),
  ('e7',  'p3', 'A', 'A1', 'lead',               '2026-03-03 09:00', NULL, 'f'),
  ('e8',  'p3', 'A', 'A1', 'prescreen_eligible', '2026-03-03 09:10', NULL, 'f'),
  ('e9',  'p3', 'A', 'A1', 'consented',          '2026-03-07 09:00', NULL, 'f'),
  ('e10', 'p4', 'A', 'A2', 'lead',               '2026-03-10 09:00', NULL, 'f'),
  ('e11', 'p4', 'A', 'A2', 'prescreen_eligible', '2026-03-10 09:10', NULL, 'f'),
  ('e12', 'p4', 'A', 'A2', 'consented',          '2026-03-10 15:00', NULL, 'f'),
  ('e13', 'p4', 'A', 'A2', 'randomized',         '2026-03-11 09:00', NULL, 'f'),
  ('e14', 'p5', 'A', 'A1', 'lead',               '2026-03-09 12:10', NULL, 'f'),
  ('e15', 'p5', 'A', 'A1', 'prescreen_ineligible', '2026-03-09 12:20', 'age', 'f'),
  ('e16', 'p6', 'A', 'A1', 'lead',               '2026-03-02 12:10', NULL, 'f'),
  ('e17', 'p7', 'A', 'A1', 'lead',               '2026-03-02 13:10', NULL, 'f'),
  ('e18', 'p7', 'A', 'A1', 'prescreen_eligible', '2026-03-02 13:20', NULL, 'f'),
  ('e19', 'p8', 'B', 'B1', 'lead',               '2026-03-03 10:10', NULL, 'f'),
  ('e20', 'p8', 'B', 'B1', 'prescreen_eligible', '2026-03-03 10:20', NULL, 'f'),
  ('e21', 'p9', 'A', 'A1', 'lead',               '2026-03-02 14:10', NULL, 'f');
"""
# The latest day with data is 2026-03-11 (p4's randomization).

E1_ALL = {  # arm: impressions, clicks, leads, eligible, consented, randomized
    "text": (2000, 50, 2, 2, 1, 1),        # p1, p2 (p7 has no tracking consent)
    "video": (1000, 40, 3, 2, 2, 1),       # p3, p4, p5
    "infographic": (1000, 15, 1, 0, 0, 0),  # p6
}
FROM_5_MARCH = {  # delivery of 9 March; leads p2 (text), p4 and p5 (video)
    "text": (1000, 30, 1, 1, 0, 0),
    "video": (500, 25, 2, 1, 1, 1),
    "infographic": (500, 5, 0, 0, 0, 0),
}
SHARES = {"text": 0.5, "video": 0.25, "infographic": 0.25}


@pytest.fixture
def con(tmp_path: Path):
    con = open_db(tmp_path / "experiments.duckdb")
    con.execute(EXP_SQL)
    derive.refresh(con)
    yield con
    con.close()


def counts_of(frame: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    return {row["arm"]: tuple(int(row[c]) for c in ex.COUNT_COLUMNS) for _, row in frame.iterrows()}


def hand_arms(counts: dict, users: int, conversions: int, weights: dict | None = SHARES) -> list:
    return [abtest.Arm(arm, c[users], c[conversions], None if weights is None else weights[arm])
            for arm, c in counts.items()]


# ---------------------------------------------------------------- the list


def test_list_experiments(con):
    frame = ex.list_experiments(con, Filters())
    assert frame["experiment_id"].tolist() == ["E1", "E2"]
    e1, e2 = frame.to_dict("records")
    assert (e1["study_id"], e1["channel_id"], e1["campaign"], e1["arms"]) == ("A", "facebook", "A | FB", 3)
    assert (e1["start"], e1["end"], e1["planned_end"]) == (date(2026, 3, 2), date(2026, 3, 9), None)
    assert e1["status"] == "running"  # last delivery 2 days before the latest data
    assert (e2["start"], e2["end"], e2["planned_end"]) == (
        date(2026, 3, 3), date(2026, 3, 3), date(2026, 3, 31))
    assert e2["status"] == "running"  # 8 days without delivery, but planned to run to 31 March


def test_status_ended_and_not_started(con):
    con.execute("UPDATE campaign SET end_date = '2026-03-10' WHERE campaign_id = 'CB'")
    con.execute("INSERT INTO campaign VALUES ('CC', 'A', 'facebook', 'A | FB 2', '2026-04-01', NULL)")
    con.execute("INSERT INTO creative VALUES ('Q1', 'CC', 'q one', 'one', 'E3', TRUE, 0.5), "
                "('Q2', 'CC', 'q two', 'two', 'E3', FALSE, 0.5)")
    status = ex.list_experiments(con, Filters()).set_index("experiment_id")["status"].to_dict()
    assert status == {"E1": "running", "E2": "ended", "E3": "not started"}
    # no planned end: ended once nothing was delivered for more than STALE_DAYS
    con.execute("INSERT INTO funnel_event VALUES "
                "('late', 'p8', 'B', 'B1', 'consented', '2026-03-17 10:00', NULL, 'f')")
    assert ex.list_experiments(con, Filters()).set_index("experiment_id")["status"]["E1"] == "ended"


def test_list_follows_study_phase_and_channel(con):
    assert ex.list_experiments(con, Filters.make(study="B"))["experiment_id"].tolist() == ["E2"]
    assert ex.list_experiments(con, Filters.make(phase="II"))["experiment_id"].tolist() == ["E1"]
    assert ex.list_experiments(con, Filters.make(channel="instagram"))["experiment_id"].tolist() == ["E2"]
    assert ex.list_experiments(con, Filters.make(channel="hcp_referral")).empty


# ---------------------------------------------------------------- counts


def test_arm_counts_by_hand(con):
    frame = ex.arm_counts(con, Filters(), "E1")
    assert frame["arm"].tolist() == ["text", "video", "infographic"]  # control first
    assert frame["creative_id"].tolist() == ["XA", "YA", "ZA"]
    assert frame["is_control"].tolist() == [True, False, False]
    assert counts_of(frame) == E1_ALL


def test_arm_counts_date_filter(con):
    assert counts_of(ex.arm_counts(con, Filters.make(start="2026-03-05"), "E1")) == FROM_5_MARCH


def test_site_and_segment_narrow_only_persons(con):
    seniors = counts_of(ex.arm_counts(con, Filters.make(segment="seniors"), "E1"))
    assert seniors == {"text": (2000, 50, 1, 1, 0, 0), "video": (1000, 40, 0, 0, 0, 0),
                       "infographic": (1000, 15, 1, 0, 0, 0)}
    a2 = counts_of(ex.arm_counts(con, Filters.make(site="A2"), "E1"))
    assert a2["video"] == (1000, 40, 1, 1, 1, 1) and a2["text"][2:] == (0, 0, 0, 0)
    assert ex.filter_note(Filters.make(site="A2")) and not ex.filter_note(Filters.make(study="A"))


def test_arm_counts_of_excluded_or_unknown_experiment_are_empty(con):
    assert ex.arm_counts(con, Filters.make(study="B"), "E1").empty
    assert ex.arm_counts(con, Filters(), "nope").empty


def test_daily_counts_add_up_to_the_arm_counts(con):
    daily = ex.daily_arm_counts(con, Filters(), "E1", "ctr")
    assert daily.to_dict("records")[:3] == [
        {"day": date(2026, 3, 2), "arm": "text", "users": 1000, "conversions": 20},
        {"day": date(2026, 3, 2), "arm": "video", "users": 500, "conversions": 15},
        {"day": date(2026, 3, 2), "arm": "infographic", "users": 500, "conversions": 10},
    ]
    for metric, spec in ex.METRICS.items():
        daily = ex.daily_arm_counts(con, Filters(), "E1", metric)
        totals = daily.groupby("arm")[["users", "conversions"]].sum()
        for arm, counts in E1_ALL.items():
            expected = (counts[ex.COUNT_COLUMNS.index(spec.users)],
                        counts[ex.COUNT_COLUMNS.index(spec.conversions)])
            assert tuple(totals.loc[arm]) == expected, (metric, arm)
    leads = ex.daily_arm_counts(con, Filters(), "E1", "eligible_rate")
    assert {(r["day"], r["arm"]): (r["users"], r["conversions"]) for r in leads.to_dict("records")} == {
        (date(2026, 3, 2), "text"): (1, 1), (date(2026, 3, 9), "text"): (1, 1),
        (date(2026, 3, 3), "video"): (1, 1), (date(2026, 3, 9), "video"): (1, 0),
        (date(2026, 3, 10), "video"): (1, 1), (date(2026, 3, 2), "infographic"): (1, 0)}


# ---------------------------------------------------------------- statistics


def test_ctr_analysis_is_analyze_on_the_hand_counts(con):
    analysis = ex.analyse(con, Filters(), "E1", "ctr")
    expected = abtest.analyze(hand_arms(E1_ALL, 0, 1))
    assert analysis.result == expected
    assert analysis.planned_users_per_arm is None and not analysis.peeking


def test_summary_verdicts_equal_analyze(con):
    table = ex.summary(con, Filters())
    assert table.columns.tolist() == ex.SUMMARY_COLUMNS
    e1, e2 = table.to_dict("records")
    expected = abtest.analyze(hand_arms(E1_ALL, 0, 1))
    assert (e1["verdict"], e1["decision"]) == (expected["verdict"], expected["decision"])
    assert (e1["metric"], e1["status"], e1["control"], e1["users_per_arm"]) == ("CTR", "running", "text", 1000)
    # video 4% vs text 2.5%: the best variant and its lift
    assert (e1["best_variant"], e1["best_rate_pct"], e1["control_rate_pct"]) == ("video", 4.0, 2.5)
    assert e1["best_lift_pct"] == 60.0
    video = expected["arms"][1]
    assert e1["p_value"] == float(f"{video['p_decision']:.3g}")
    assert e1["chance_to_beat_control_pct"] == round(100 * video["chance_to_beat_control"], 1)

    # E2 runs until 31 March: 400 impressions per arm in 9 days (3-11 March) -> 29 days
    planned = -(-400 * 29 // 9)
    assert e2["planned_users_per_arm"] == planned == 1289
    hand = abtest.analyze([abtest.Arm("simple", 400, 8, 0.5), abtest.Arm("detailed", 400, 8, 0.5)],
                          planned_users_per_arm=planned)
    assert (e2["verdict"], e2["decision"]) == (hand["verdict"], hand["decision"])
    assert "interim look" in e2["verdict"] and e2["decision"] == "need_more_data"


def test_summary_counts_every_experiment_as_arm_counts_does(con):
    """The list counts the arms of all experiments in one query: the same counts, and the
    same verdicts, as one experiment at a time."""
    for f in (Filters(), Filters.make(start="2026-03-05"), Filters.make(site="A1"), Filters.make(study="B")):
        table = ex.summary(con, f)
        for row in table.to_dict("records"):
            analysis = ex.analyse(con, f, row["experiment_id"])
            assert (row["verdict"], row["decision"], row["control"]) == (
                analysis.verdict, analysis.decision, analysis.counts["arm"].iloc[0])
            assert counts_of(analysis.counts) == counts_of(ex.arm_counts(con, f, row["experiment_id"]))


def test_analysis_made_again_is_a_fresh_copy(con):
    first = ex.analyse(con, Filters(), "E1")
    users = first.result["arms"][0]["users"]
    first.result["arms"][0]["users"] = -1
    again = ex.analyse(con, Filters(), "E1")
    assert again.result["arms"][0]["users"] == users == E1_ALL["text"][0]


def test_summary_with_another_primary_metric(con):
    table = ex.summary(con, Filters(), primary={"E1": "lead_rate"}).set_index("experiment_id")
    assert table.loc["E1", "metric"] == "Lead rate"
    arms = [replace_weight(a) for a in hand_arms(E1_ALL, 1, 2)]
    assert table.loc["E1", "verdict"] == abtest.analyze(arms)["verdict"]


def replace_weight(arm: abtest.Arm) -> abtest.Arm:
    return abtest.Arm(arm.name, arm.users, arm.conversions, float(arm.users))


def test_later_metrics_check_the_split_on_impressions(con):
    # clicks are 50/40/15 against a 1/2-1/4-1/4 split: that is the creatives' effect,
    # not a mismatch; the check runs on impressions (2000/1000/1000: as planned)
    analysis = ex.analyse(con, Filters(), "E1", "lead_rate")
    assert analysis.result["srm_p"] == pytest.approx(1.0)
    assert [a["planned_share"] for a in analysis.result["arms"]] == [0.5, 0.25, 0.25]
    con.execute("UPDATE ad_daily SET impressions = 3000 WHERE creative_id = 'XA'")
    skewed = ex.analyse(con, Filters(), "E1", "lead_rate")
    srm = abtest.srm_p_value(hand_arms({"text": (6000,), "video": (1000,), "infographic": (1000,)}, 0, 0))
    assert skewed.result["srm_p"] == pytest.approx(srm) and srm < abtest.SRM_ALPHA
    assert skewed.decision == "srm" and "do not trust" in skewed.verdict


def test_filters_narrow_the_numbers(con):
    later = ex.summary(con, Filters.make(start="2026-03-05")).set_index("experiment_id")
    expected = abtest.analyze(hand_arms(FROM_5_MARCH, 0, 1))
    assert later.loc["E1", "users_per_arm"] == 500
    assert later.loc["E1", "verdict"] == expected["verdict"]
    # E2 delivered only on 3 March: nothing to compare after the 5th
    assert later.loc["E2", "decision"] == "not_enough_data"
    assert "no impressions" in later.loc["E2", "verdict"]
    assert ex.summary(con, Filters.make(study="A"))["experiment_id"].tolist() == ["E1"]


def test_rates_that_cannot_be_computed_say_why(con):
    # leads from 9 March: p2 (text), p4 and p5 (video), none for infographic
    analysis = ex.analyse(con, Filters.make(start="2026-03-09"), "E1", "eligible_rate")
    assert analysis.result is None and analysis.decision == "not_enough_data"
    assert "infographic has no leads" in analysis.verdict
    table = ex.arm_table(analysis)
    assert table.columns[4:6].tolist() == ["leads", "eligible"]
    assert table["leads"].tolist() == [1, 2, 0]
    # video's 3 leads against 2 reported clicks: no rate, and the page says why
    con.execute("UPDATE ad_daily SET clicks = 1 WHERE creative_id = 'YA'")
    lead = ex.analyse(con, Filters(), "E1", "lead_rate")
    assert lead.result is None and "video has more leads (3) than clicks (2)" in lead.verdict
    assert ex.analyse(con, Filters(), "nope") is None


def test_arm_table(con):
    analysis = ex.analyse(con, Filters(), "E1", "ctr")
    table = ex.arm_table(analysis)
    assert table["arm"].tolist() == ["text", "video", "infographic"]
    assert table.columns[4:6].tolist() == ["impressions", "clicks"]
    text, video, _ = table.to_dict("records")
    assert (text["role"], text["rate_pct"], text["planned_share_pct"]) == ("control", 2.5, 50.0)
    assert pd.isna(text["p_z"])
    row = analysis.result["arms"][1]
    assert video["rate_pct"] == 4.0 and video["diff_pp"] == 1.5 and video["rel_lift_pct"] == 60.0
    assert video["diff_ci_low_pp"] == round(100 * row["diff_ci"][0], 3)
    assert video["p_z"] == float(f"{row['p_value']:.3g}")
    assert video["p_fisher"] == float(f"{row['p_fisher']:.3g}")
    assert video["p_holm"] == float(f"{row['p_adjusted']:.3g}")
    assert video["p_always_valid"] == float(f"{row['always_valid_p']:.3g}")
    assert video["users_still_needed"] == row["users_still_needed"]


def test_lift_over_time(con):
    lift = ex.lift_over_time(con, Filters(), "E1", "ctr")
    assert lift["arm"].tolist() == ["video", "infographic", "video", "infographic"]
    last = lift[(lift["day"] == date(2026, 3, 9)) & (lift["arm"] == "video")].iloc[0]
    assert (last["users"], last["conversions"], last["control_users"]) == (1000, 40, 2000)
    assert last["diff"] == pytest.approx(0.04 - 0.025)
    # the always-valid interval is never narrower than the fixed one
    assert (lift["always_valid_low"] <= lift["diff_ci_low"] + 1e-12).all()
    nothing = ex.lift_over_time(con, Filters.make(start="2026-03-05"), "E2", "ctr")
    assert nothing.empty and "fewer than two arms" in nothing.attrs["problem"]


def test_users_still_needed_agree_with_the_verdict(con):
    for experiment_id in ("E1", "E2"):
        for metric in ex.METRICS:
            analysis = ex.analyse(con, Filters(), experiment_id, metric)
            if analysis.decision == "need_more_data":
                _, more = analysis.still_needed
                assert f"need about {more:,} more users per arm" in analysis.verdict
    # with a plan: the planned size minus the smallest arm
    assert ex.analyse(con, Filters(), "E2", "ctr").still_needed == ("detailed", 1289 - 400)


def test_peeking_check_of_a_win(con):
    # video beats text on CTR at p = 0.046 (fixed horizon), far from always-valid evidence
    analysis = ex.analyse(con, Filters(), "E1", "ctr")
    assert analysis.decision == "variant_wins" and analysis.result["winner"] == "video"
    variants = analysis.result["arms"][1:]
    assert analysis.always_valid_holm == dict(zip(
        ["video", "infographic"], abtest.holm([a["always_valid_p"] for a in variants])))
    assert analysis.always_valid_holm["video"] > 0.05
    assert analysis.peeking_safe is False
    assert ex.analyse(con, Filters(), "E1", "lead_rate").peeking_safe is None


# ---------------------------------------------------------------- all metrics


def test_metrics_overview_holm_per_metric(con):
    frame = ex.metrics_overview(con, Filters(), "E1")
    assert frame.columns.tolist() == [c for c in ex.OVERVIEW_COLUMNS if c != "p_bh"]
    labels = [m.label for m in ex.METRICS.values()]
    assert frame["metric"].tolist() == [label for label in labels for _ in range(2)]
    assert frame["arm"].tolist() == ["video", "infographic"] * 5
    for spec in ex.METRICS.values():
        users = ex.COUNT_COLUMNS.index(spec.users)
        conversions = ex.COUNT_COLUMNS.index(spec.conversions)
        expected = abtest.analyze(hand_arms(E1_ALL, users, conversions))["arms"][1:]
        rows = frame[frame["metric"] == spec.label]
        assert rows["p_holm"].tolist() == pytest.approx([a["p_adjusted"] for a in expected], abs=1e-12)
        assert rows["diff_pp"].tolist() == [round(100 * a["diff"], 3) for a in expected]
        assert rows["significant"].tolist() == [a["p_adjusted"] <= 0.05 for a in expected]
    # CTR, video: 40/1000 against 50/2000
    ctr = frame.iloc[0]
    assert (ctr["control_rate_pct"], ctr["rate_pct"], ctr["diff_pp"]) == (2.5, 4.0, 1.5)


def test_metrics_overview_bh_equals_statsmodels(con):
    from statsmodels.stats import multitest

    frame = ex.metrics_overview(con, Filters(), "E1", adjust="bh")
    assert frame.columns.tolist() == ex.OVERVIEW_COLUMNS
    for arm in ("video", "infographic"):
        rows = frame[frame["arm"] == arm]
        assert len(rows) == 5
        reject, expected, _, _ = multitest.multipletests(rows["p_holm"].to_numpy(), alpha=0.05,
                                                          method="fdr_bh")
        assert rows["p_bh"].to_numpy() == pytest.approx(expected, abs=1e-12)
        assert rows["significant"].tolist() == [bool(r) for r in reject]
    # the adjustment never lowers a p-value; video's CTR (Holm p 0.046) is no longer significant
    assert (frame["p_bh"] >= frame["p_holm"] - 1e-15).all()
    assert frame.iloc[0]["p_holm"] < 0.05 < frame.iloc[0]["p_bh"]
    assert not frame.iloc[0]["significant"]
    assert ex.metrics_overview(con, Filters(), "E1").iloc[0]["significant"]


def test_metrics_overview_bh_by_hand_on_e2(con):
    # detailed vs simple: CTR 8/400 each (p = 1); lead rate 0/8 against 1/8 (p8);
    # detailed has no leads, so the three lead-based rates cannot be compared
    frame = ex.metrics_overview(con, Filters(), "E2", adjust="bh").set_index("metric")
    pooled = 1 / 16
    z = (0 - 1 / 8) / math.sqrt(pooled * (1 - pooled) * (1 / 8 + 1 / 8))
    p_lead = math.erfc(abs(z) / math.sqrt(2))  # 0.3017
    assert frame.loc["Lead rate", "p_holm"] == pytest.approx(p_lead, abs=1e-12)
    assert frame.loc["CTR", "p_holm"] == pytest.approx(1.0)
    # two p-values in the family: the smaller times 2/1, the larger times 2/2
    assert frame.loc["Lead rate", "p_bh"] == pytest.approx(2 * p_lead, abs=1e-12)
    assert frame.loc["CTR", "p_bh"] == pytest.approx(1.0)
    for label in ("Eligible rate", "Consent rate", "Randomized rate"):
        assert pd.isna(frame.loc[label, "p_holm"]) and pd.isna(frame.loc[label, "p_bh"])
        assert frame.loc[label, "significant"] is None


def test_bh_across_metrics_by_hand():
    # one variant, five metrics: sorted 0.01, 0.03, 0.04, 0.2, 0.5 times 5/1, 5/2, 5/3,
    # 5/4, 5/5 = 0.05, 0.075, 0.0667, 0.25, 0.5; running minimum from the top makes
    # 0.075 -> 0.0667. A second variant is its own family; a missing p stays missing.
    frame = pd.DataFrame({
        "arm": ["v"] * 5 + ["w"] * 3,
        "p_holm": [0.01, 0.04, 0.03, 0.2, 0.5, 0.02, 0.04, None],
    })
    adjusted = ex.bh_across_metrics(frame)
    assert adjusted[:5].tolist() == pytest.approx([0.05, 0.2 / 3, 0.2 / 3, 0.25, 0.5])
    assert adjusted[5:7].tolist() == pytest.approx([0.04, 0.04])
    assert pd.isna(adjusted[7])


def test_metrics_overview_of_unknown_experiment_and_bad_adjust(con):
    assert ex.metrics_overview(con, Filters(), "nope").empty
    assert ex.metrics_overview(con, Filters.make(study="B"), "E1", adjust="bh").empty
    with pytest.raises(ValueError):
        ex.metrics_overview(con, Filters(), "E1", adjust="bonferroni")
