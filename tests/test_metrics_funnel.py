"""Funnel numbers on a hand-built store of twelve leads; every expected number is
worked out by hand in the comments from the PATHS table below."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cockpit import derive
from cockpit.filters import Filters
from cockpit.metrics import funnel
from cockpit.metrics.definitions import KPI_DEFINITIONS
from cockpit.store import open_db

# Study A, sites A1/A2. Every event at 09:00 on the date shown (2026).
# pid, channel, segment, site, [(stage, MM-DD, reason)]
PATHS = [
    ("q1", "facebook", "adults", "A1", [("lead", "03-02"), ("prescreen_started", "03-02"),
        ("prescreen_eligible", "03-02"), ("contacted", "03-04"), ("consented", "03-10"),
        ("screened", "03-20"), ("randomized", "04-01")]),
    ("q2", "facebook", "adults", "A1", [("lead", "03-03"), ("prescreen_started", "03-03"),
        ("prescreen_ineligible", "03-03", "age")]),
    ("q3", "facebook", "seniors", "A2", [("lead", "03-06"), ("prescreen_started", "03-06"),
        ("prescreen_eligible", "03-06"), ("not_reachable", "03-20", "no_answer")]),
    ("q4", "hcp_referral", "seniors", "A1", [("lead", "03-09"), ("prescreen_started", "03-10"),
        ("prescreen_eligible", "03-10"), ("contacted", "03-11"), ("declined", "03-14", "travel_distance")]),
    ("q5", "hcp_referral", "seniors", "A2", [("lead", "03-10"), ("prescreen_started", "03-11"),
        ("prescreen_eligible", "03-11"), ("contacted", "03-16"), ("consented", "03-20"),
        ("screened", "03-30"), ("screen_failed", "04-03", "lab_values")]),
    # randomized without a recorded screening visit: still counts as screened
    ("q6", "hcp_referral", "adults", "A2", [("lead", "03-16"), ("prescreen_started", "03-16"),
        ("prescreen_eligible", "03-16"), ("contacted", "03-17"), ("consented", "03-25"),
        ("randomized", "04-21")]),
    ("q7", "facebook", "adults", "A1", [("lead", "03-20"), ("prescreen_started", "03-20"),
        ("prescreen_eligible", "03-20"), ("contacted", "03-23"), ("consented", "03-30"),
        ("withdrawn", "04-05", "lost_interest")]),
    ("q8", "facebook", "adults", "A1", [("lead", "03-25"), ("prescreen_started", "03-25"),
        ("prescreen_ineligible", "03-25", "bmi")]),
    ("q9", "hcp_referral", "seniors", "A1", [("lead", "06-01"), ("prescreen_started", "06-02"),
        ("prescreen_eligible", "06-02")]),
    ("q10", "facebook", "adults", "A2", [("lead", "06-20"), ("prescreen_started", "06-20"),
        ("prescreen_eligible", "06-20"), ("contacted", "06-22"), ("consented", "06-30")]),
    # withdrew after randomization: randomized, and not a recruitment drop-off
    ("q11", "hcp_referral", "adults", "A1", [("lead", "04-01"), ("prescreen_started", "04-01"),
        ("prescreen_eligible", "04-01"), ("contacted", "04-02"), ("consented", "04-08"),
        ("screened", "04-15"), ("randomized", "05-01"), ("withdrawn", "05-20", "relocated")]),
    # an exit without a reason code
    ("q12", "facebook", "adults", "A1", [("lead", "04-10"), ("prescreen_started", "04-10"),
        ("prescreen_ineligible", "04-10", None)]),
]

DIMENSIONS_SQL = """
INSERT INTO study VALUES ('A', 'Atopic study', 'II', 'Dermatology', 10, '2026-01-01', '2026-12-31', 10000, 'EUR');
INSERT INTO site VALUES ('A1', 'A', 'Berlin', 'DE', '2026-01-10', '2026-01-15'),
                        ('A2', 'A', 'Hamburg', 'DE', '2026-01-10', '2026-02-01');
INSERT INTO channel VALUES ('facebook', 'Facebook', 'paid_social', TRUE),
                           ('hcp_referral', 'HCP referral', 'hcp_referral', FALSE);
INSERT INTO segment VALUES ('adults', 'Adults 18-64', 18, 64), ('seniors', 'Seniors 65+', 65, 120);
INSERT INTO campaign VALUES ('CA', 'A', 'facebook', 'A | FB', '2026-03-01', NULL),
                            ('HA', 'A', 'hcp_referral', 'A | HCP', '2026-01-01', NULL);
"""


def build(con, paths) -> None:
    """Insert persons, the touch that attributes each lead, and the funnel events."""
    con.execute(DIMENSIONS_SQL)
    for pid, channel, segment, site, events in paths:
        lead = f"2026-{events[0][1]} 09:00"
        con.execute("INSERT INTO person VALUES (?, 1970, ?, ?)", [pid, segment, lead])
        kind, campaign = ("ad_click", "CA") if channel == "facebook" else ("referral", "HA")
        con.execute("INSERT INTO touchpoint VALUES (?, ?, NULL, ?, ?, ?, ?, NULL, 'A', ?, NULL, 'f')",
                    [f"t-{pid}", pid, lead, kind, channel, campaign, site])
        con.execute("INSERT INTO consent_event VALUES (?, ?, 'tracking', TRUE, ?::TIMESTAMP - INTERVAL 1 HOUR, "
                    "NULL, 'v1', 'f')", [f"c-{pid}", pid, lead])
        for i, (stage, day, *reason) in enumerate(events):
            con.execute("INSERT INTO funnel_event VALUES (?, ?, 'A', ?, ?, ?, ?, 'f')",
                        [f"{pid}-{i}", pid, site, stage, f"2026-{day} 09:00", reason[0] if reason else None])
    derive.refresh(con)


@pytest.fixture
def con(tmp_path: Path):
    con = open_db(tmp_path / "funnel.duckdb")
    build(con, PATHS)
    yield con
    con.close()


MARCH = Filters.make(start="2026-03-01", end="2026-03-31")


def test_last_day(con):
    assert funnel.last_day(con) == date(2026, 6, 30)


def test_stage_conversion_all_leads(con):
    table = funnel.stage_conversion(con, Filters())
    # eligible: q1 q3 q4 q5 q6 q7 q9 q10 q11 (q3 counts through "not reachable");
    # contacted: q1 q4 q5 q6 q7 q10 q11; consented: q1 q5 q6 q7 q10 q11;
    # screened: q1 q5 q6 (randomized) q11; randomized: q1 q6 q11
    assert table["reached"].tolist() == [12, 12, 9, 7, 6, 4, 3]
    assert table["conversion_pct"].tolist() == [100.0, 100.0, 75.0, 58.3, 50.0, 33.3, 25.0]
    # 12/12, 9/12, 7/9, 6/7, 4/6, 3/4
    assert table["step_conversion_pct"].tolist()[1:] == [100.0, 75.0, 77.8, 85.7, 66.7, 75.0]
    assert pd.isna(table["step_conversion_pct"].iloc[0])
    assert table["stage"].tolist()[0] == "lead" and table["label"].tolist()[-1] == "Randomized"


def test_stage_conversion_is_cohort_based(con):
    # March leads q1..q8; q6 was randomized in April and still counts for March
    table = funnel.stage_conversion(con, MARCH)
    assert table["reached"].tolist() == [8, 8, 6, 5, 4, 3, 2]
    assert table["conversion_pct"].iloc[-1] == 25.0


def test_stage_conversion_filters(con):
    # facebook: q1 q2 q3 q7 q8 q10 q12; eligible q1 q3 q7 q10; contacted q1 q7 q10
    fb = funnel.stage_conversion(con, Filters.make(channel="facebook"))
    assert fb["reached"].tolist() == [7, 7, 4, 3, 3, 1, 1]
    # site A2: q3 q5 q6 q10
    a2 = funnel.stage_conversion(con, Filters.make(site="A2"))
    assert a2["reached"].tolist() == [4, 4, 4, 3, 3, 2, 1]
    # seniors: q3 q4 q5 q9
    seniors = funnel.stage_conversion(con, Filters.make(segment="seniors"))
    assert seniors["reached"].tolist() == [4, 4, 4, 2, 1, 1, 0]
    assert funnel.stage_conversion(con, Filters.make(phase="III"))["reached"].tolist() == [0] * 7
    assert funnel.stage_conversion(con, Filters.make(phase="III"))["conversion_pct"].tolist() == [None] * 7


def test_dropoff_reasons(con):
    table = funnel.dropoff_reasons(con, Filters())
    rows = [tuple(r) for r in table[["exit", "left_after", "reason", "persons", "pct_of_exit",
                                     "pct_of_leads"]].itertuples(index=False)]
    stalled, none = funnel.STALLED, "no outcome recorded"
    # three ineligible (one each, 1/3 of that exit, 1/12 of the leads); q11's withdrawal
    # came after randomization and is not a drop-off; q9 (eligible, never called) and
    # q10 (consented, not yet screened) went no further without an exit
    assert rows == [
        ("Pre-screen ineligible", "Pre-screen started", "age", 1, 33.3, 8.3),
        ("Pre-screen ineligible", "Pre-screen started", "bmi", 1, 33.3, 8.3),
        ("Pre-screen ineligible", "Pre-screen started", "not recorded", 1, 33.3, 8.3),
        ("Not reachable", "Pre-screen eligible", "no_answer", 1, 100.0, 8.3),
        (stalled, "Pre-screen eligible", none, 1, 100.0, 8.3),
        ("Declined consent", "Contacted by site", "travel_distance", 1, 100.0, 8.3),
        ("Withdrew before randomization", "Consented", "lost_interest", 1, 100.0, 8.3),
        (stalled, "Consented", none, 1, 100.0, 8.3),
        ("Screen fail", "Screened", "lab_values", 1, 100.0, 8.3),
    ]


def test_dropoff_reasons_of_the_period_and_empty(con):
    # April leads: q11 (withdrew after randomization) and q12 (ineligible, no code)
    april = funnel.dropoff_reasons(con, Filters.make(start="2026-04-01", end="2026-04-30"))
    assert april[["reason", "persons", "pct_of_leads"]].values.tolist() == [["not recorded", 1, 50.0]]
    assert funnel.dropoff_reasons(con, Filters.make(site="nowhere")).empty


def test_stage_gaps(con):
    gaps = funnel.stage_gaps(con, Filters()).set_index("from_stage")
    # lead -> pre-screen: 12 persons, nine the same day, q4 q5 q9 a day later; the
    # 75th percentile lies a quarter of the way from the 9th value (0) to the 10th (1):
    # 0.25, shown to one decimal (half to even) as 0.2
    assert gaps.loc["Lead"].tolist() == ["Pre-screen started", 12, 0.0, 0.0, 0.2]
    # eligible -> contacted: q1 2, q4 1, q5 5, q6 1, q7 3, q10 2, q11 1 -> [1,1,1,2,2,3,5]
    assert gaps.loc["Pre-screen eligible"].tolist() == ["Contacted by site", 7, 2.0, 1.0, 2.5]
    # contacted -> consented: q1 6, q5 4, q6 8, q7 7, q10 8, q11 6 -> [4,6,6,7,8,8]
    assert gaps.loc["Contacted by site"].tolist() == ["Consented", 6, 6.5, 6.0, 7.8]
    # consented -> screened: q1 10, q5 10, q11 7 (q6 has no screening date)
    assert gaps.loc["Consented", ["persons", "median_days"]].tolist() == [3, 10.0]
    # screened -> randomized: q1 12, q11 16
    assert gaps.loc["Screened"].tolist() == ["Randomized", 2, 14.0, 13.0, 15.0]


def test_a_date_range_alone_reads_the_same_cohort(con):
    # a date range without a study or site reads its cohort once into a materialized
    # CTE; with study A (every lead here) the parts read the journey: the same numbers
    with_study = Filters.make(start="2026-03-01", end="2026-03-31", study="A")
    pd.testing.assert_frame_equal(funnel.stage_gaps(con, MARCH), funnel.stage_gaps(con, with_study))
    pd.testing.assert_frame_equal(funnel.dropoff_reasons(con, MARCH), funnel.dropoff_reasons(con, with_study))
    # March leads q1..q8: q1 and q6 randomized (lead -> randomized 30 and 36 days)
    assert funnel.stage_gaps(con, MARCH).set_index("from_stage").loc["Lead", "persons"] == 8


def test_cohort_maturity_old_enough(con):
    m = funnel.cohort_maturity(con, Filters())
    # typical time: 90th percentile of [30, 30, 36] days = 36; leads younger than 36
    # days on 30 June: q9 (29) and q10 (10) -> 2 of 12
    assert (m["typical_days"], m["leads"], m["young"], m["pct_young"], m["too_young"]) == (36, 12, 2, 16.7, False)
    assert m["message"] == ""


def test_cohort_maturity_too_young(con):
    m = funnel.cohort_maturity(con, Filters.make(start="2026-06-01"))
    assert (m["leads"], m["young"], m["too_young"]) == (2, 2, True)
    assert m["message"].startswith("Cohort too young to judge: 2 of its 2 leads (100.0%) are younger than 36 days")


def test_cohort_maturity_without_history(con):
    m = funnel.cohort_maturity(con, Filters.make(segment="seniors"))
    assert m["too_young"] is None and m["typical_days"] is None
    assert "Nobody matching this filter has been randomized" in m["message"]


# ---------------------------------------------------------------- time to enrolment
# Latest day with data: 30 June. Whole calendar days from the lead's date:
#   randomized: q1 30 (2 Mar -> 1 Apr), q6 36 (16 Mar -> 21 Apr), q11 30 (1 Apr -> 1 May;
#     its withdrawal after randomization changes nothing)
#   open (no exit, last step within 60 days of 30 June), censored on 30 June:
#     q9 29 (lead 1 Jun, last step 2 Jun), q10 10 (lead 20 Jun, last step 30 Jun)
#   exited, to 30 June: q2 119, q3 116, q4 113, q5 112, q7 102, q8 97, q12 81
#   stale: none (see STALE_PATHS below)


def test_lead_status(con):
    rows = funnel.lead_status(con, Filters.make(channel="facebook"))
    assert list(rows[["status", "days", "persons"]].itertuples(index=False, name=None)) == [
        ("exited", 81, 1), ("exited", 97, 1), ("exited", 102, 1), ("exited", 116, 1), ("exited", 119, 1),
        ("open", 10, 1), ("randomized", 30, 1)]


def test_enrolment_durations_follow_the_leads_that_enrol_or_still_can(con):
    data = funnel.enrolment_durations(con, Filters(), by="channel")
    fb = data[data["group"] == "facebook"]
    # q10 open (10 days), q1 randomized (30); q2 q3 q7 q8 q12 left the funnel: not here
    assert list(fb[["days", "randomized", "persons"]].itertuples(index=False, name=None)) == [
        (10, False, 1), (30, True, 1)]
    hcp = data[data["group"] == "hcp_referral"]
    # q9 open (29), q11 (30) and q6 (36) randomized; q4 declined and q5 screen fail: not here
    assert list(hcp[["days", "randomized", "persons"]].itertuples(index=False, name=None)) == [
        (29, False, 1), (30, True, 1), (36, True, 1)]


def test_enrolment_left_out(con):
    left = funnel.enrolment_left_out(con, Filters(), by="segment").set_index("group")
    # adults: q2 q8 q12 ineligible, q7 withdrew; seniors: q3 not reachable, q4 declined,
    # q5 screen fail
    assert left.to_dict("index") == {"adults": {"exited": 4, "stale": 0},
                                     "seniors": {"exited": 3, "stale": 0}}


def test_randomized_share_durations_keep_every_lead(con):
    data = funnel.randomized_share_durations(con, Filters.make(channel="facebook"))
    # every lead at risk up to 30 June: exits q12 81, q8 97, q7 102, q3 116, q2 119 days
    assert list(data[["days", "randomized"]].itertuples(index=False, name=None)) == [
        (10, False), (30, True), (81, False), (97, False), (102, False), (116, False), (119, False)]


def test_bad_keys(con):
    with pytest.raises(ValueError):
        funnel.enrolment_durations(con, Filters(), by="channel_id; DROP TABLE journey")
    with pytest.raises(ValueError):
        funnel.enrolment_curves(con, Filters(), view="drop")


# q13: last step (eligible) on 1 May, 60 days before 30 June: still open, censored at
# 71 days (20 Apr -> 30 Jun); q14: last step (pre-screen started) on 30 April, 61 days
# before: stale, left out (71 days too in the share of all leads)
STALE_PATHS = PATHS + [
    ("q13", "facebook", "adults", "A1", [("lead", "04-20"), ("prescreen_started", "04-20"),
        ("prescreen_eligible", "05-01")]),
    ("q14", "facebook", "adults", "A1", [("lead", "04-20"), ("prescreen_started", "04-30")]),
]


@pytest.fixture
def stale_con(tmp_path: Path):
    con = open_db(tmp_path / "stale.duckdb")
    build(con, STALE_PATHS)
    yield con
    con.close()


def test_a_lead_without_a_step_for_60_days_is_left_out(stale_con):
    assert funnel.STALE_DAYS == 60
    fb = Filters.make(channel="facebook")
    data = funnel.enrolment_durations(stale_con, fb)
    assert list(data[["days", "randomized", "persons"]].itertuples(index=False, name=None)) == [
        (10, False, 1), (30, True, 1), (71, False, 1)]
    assert funnel.enrolment_left_out(stale_con, fb)[["exited", "stale"]].values.tolist() == [[5, 1]]
    share = funnel.randomized_share_durations(stale_con, fb)
    assert share.loc[share["days"] == 71, "persons"].tolist() == [2]


def test_enrolment_curves_speed(con):
    km = funnel.enrolment_curves(con, Filters(), by="channel")
    assert km.view == "speed" and km.summary.columns.tolist() == funnel.SUMMARY_COLUMNS["speed"]
    s = km.summary.set_index("group")
    counts = ["km_leads", "randomized_so_far", "open_leads", "exited", "stale"]
    # hcp: q9 censored at 29; at 30 days q11 and q6 at risk, q11 randomized -> S = 1/2:
    # median 30; at 36 q6 alone -> S = 0. Randomized only: 30 and 36 -> 33
    assert s.loc["hcp_referral", counts].tolist() == [3, 2, 1, 2, 0]
    assert s.loc["hcp_referral", ["median_days_to_randomization", "median_days_randomized_only"]].tolist() == [
        30.0, 33.0]
    # facebook: q10 censored at 10; at 30 days q1 alone at risk and randomized -> S = 0
    assert s.loc["facebook", counts].tolist() == [2, 1, 1, 5, 0]
    assert s.loc["facebook", "median_days_to_randomization"] == 30.0
    # all leads: at 30 days q1 q11 q6 at risk, two randomized -> S = 1/3: median 30
    assert s.loc[funnel.ALL_LEADS, counts].tolist() == [5, 3, 2, 7, 0]
    assert s.loc[funnel.ALL_LEADS, "median_days_to_randomization"] == 30.0
    assert s.loc[funnel.ALL_LEADS, "median_ci_low"] <= 30.0
    hcp = km.curves[km.curves["group"] == "hcp_referral"]
    assert hcp["days"].tolist() == [0.0, 30.0, 36.0]
    assert hcp["pct_randomized"].tolist() == [0.0, 50.0, 100.0]
    # band of the share randomized lies around it (log-log band of S turned over)
    assert hcp["pct_low"].iloc[1] < 50.0 < hcp["pct_high"].iloc[1]
    # longest follow-up 36 days (q6), also the last randomization: at risk at 0 and 30
    assert (km.risk_days, km.horizon_days) == ([0, 30], 36)
    assert km.at_risk.set_index("group").loc[:, ["day_0", "day_30"]].to_dict("index") == {
        "facebook": {"day_0": 2, "day_30": 1}, "hcp_referral": {"day_0": 3, "day_30": 2},
        funnel.ALL_LEADS: {"day_0": 5, "day_30": 3}}


def test_a_group_whose_leads_all_left(con):
    # facebook seniors: q3 alone, not reachable -> listed with its exit, no curve
    km = funnel.enrolment_curves(con, Filters.make(channel="facebook"), by="segment")
    s = km.summary.set_index("group")
    assert s.loc["seniors", ["km_leads", "exited"]].tolist() == [0, 1]
    assert pd.isna(s.loc["seniors", "median_days_to_randomization"])
    assert km.curves["group"].unique().tolist() == ["adults"]
    assert km.at_risk.set_index("group").loc["seniors", "day_0"] == 0


def test_enrolment_curves_empty(con):
    km = funnel.enrolment_curves(con, Filters.make(site="nowhere"))
    assert km.summary.empty and km.curves.empty


def test_share_of_all_leads_randomized(con):
    km = funnel.enrolment_curves(con, Filters(), by="channel", view="yield")
    assert km.summary.columns.tolist() == funnel.SUMMARY_COLUMNS["yield"]
    assert "median_days_to_randomization" not in km.summary.columns  # a speed, not a yield
    s = km.summary.set_index("group")
    # all leads: 10 and 29 censored; at 30 days 10 at risk, q1 q11 randomized -> S = 8/10;
    # at 36 days 8 at risk, q6 randomized -> S = 0.8 x 7/8 = 0.7: 30% randomized by 90 days
    all_leads = s.loc[funnel.ALL_LEADS]
    assert all_leads[["leads", "randomized_so_far", "censored"]].tolist() == [12, 3, 9]
    assert all_leads[["pct_randomized_30d", "pct_randomized_60d", "pct_randomized_90d"]].tolist() == [
        20.0, 30.0, 30.0]
    # hcp: q9 censored at 29; at 30 days 4 at risk (q11 q6 q4 q5) -> 3/4; at 36 3 at risk
    # -> 3/4 x 2/3 = 1/2
    hcp = s.loc["hcp_referral"]
    assert (hcp["pct_randomized_30d"], hcp["pct_randomized_90d"]) == (25.0, 50.0)
    assert hcp["group_name"] == "HCP referral"
    # facebook: at 30 days 6 at risk (q10 left at 10), q1 randomized -> 1/6
    assert s.loc["facebook", "pct_randomized_90d"] == round(100 / 6, 1)
    # last randomization at 36 days: the risk table goes one 30-day step past it
    assert km.risk_days == [0, 30, 60] and km.horizon_days == 66
    # at 60 days: 81 97 102 112 113 116 119
    at_risk = km.at_risk.set_index("group")
    assert at_risk.loc[funnel.ALL_LEADS, ["day_0", "day_30", "day_60"]].tolist() == [12, 10, 7]


def test_share_of_all_leads_curve_is_flat_after_the_last_randomization(con):
    km = funnel.enrolment_curves(con, Filters.make(channel="facebook"), view="yield")
    # flat after q1's randomization on to the longest follow-up (q2: 119 days)
    assert km.curves["days"].tolist() == [0.0, 30.0, 119.0]
    assert km.curves["pct_randomized"].tolist() == [0.0, round(100 / 6, 2), round(100 / 6, 2)]
    assert km.risk_days == [0, 30, 60]  # one step past the last randomization (30 days)


def test_enrolment_summary(con):
    speed = funnel.enrolment_summary(con, Filters())
    assert (speed["km_leads"], speed["randomized_so_far"], speed["exited"]) == (5, 3, 7)
    assert speed["median_days_to_randomization"] == 30.0
    share = funnel.enrolment_summary(con, Filters(), view="yield")
    assert (share["leads"], share["randomized_so_far"], share["pct_randomized_90d"]) == (12, 3, 30.0)
    empty = funnel.enrolment_summary(con, Filters.make(site="nowhere"))
    assert empty["km_leads"] == 0 and empty["median_days_to_randomization"] is None
    assert funnel.enrolment_summary(con, Filters.make(site="nowhere"), view="yield")["leads"] == 0


def test_one_definition_of_the_median():
    text = KPI_DEFINITIONS["median_days_to_randomization"]
    assert "median_days_to_randomized" not in KPI_DEFINITIONS
    assert f"{funnel.STALE_DAYS} days" in text and "censored" in text and "drop-off" in text


# ---------------------------------------------------------------- the demo's planted truths

def _truth(demo_raw):
    import json
    return json.loads((demo_raw / "ground_truth.json").read_text(encoding="utf-8"))


def test_demo_counts_per_study_match_the_generator(demo_raw, demo_store):
    con = demo_store.reader()
    for study, want in _truth(demo_raw)["counts"]["studies"].items():
        got = funnel.stage_conversion(con, Filters.make(study=study)).set_index("stage")["reached"]
        assert (got["lead"], got["eligible"], got["consented"], got["randomized"]) == (
            want["leads"], want["eligible"], want["consented"], want["randomized"]), study


def test_demo_segments_differ_in_speed_as_planted(demo_raw, demo_store):
    truth = _truth(demo_raw)["segments"]
    km = funnel.enrolment_curves(demo_store.reader(), Filters(), by="segment").summary.set_index("group")
    for segment, want in truth.items():
        row = km.loc[segment]
        # every lead is followed or counted as having left the funnel
        assert row["km_leads"] + row["exited"] + row["stale"] == want["leads"]
        assert row["randomized_so_far"] == want["randomized"]
        # whole calendar days here, fractional days in the generator
        assert abs(row["median_days_randomized_only"] - want["median_days_lead_to_randomized"]) <= 1.0
    planted = sorted(truth, key=lambda s: truth[s]["planted"]["delay_factor"])
    found = sorted(truth, key=lambda s: km.loc[s, "median_days_randomized_only"])
    assert found[0] == planted[0] == "young_adults"


# ---------------------------------------------------------------- consent to be contacted withdrawn

def withdraw_research_consent(con, pid: str, granted: str, withdrawn: str) -> None:
    """A grant and a later withdrawal of the consent to be contacted for research."""
    con.execute("INSERT INTO consent_event VALUES (?, ?, 'contact_research', TRUE, ?, NULL, 'v1', 'f'), "
                "(?, ?, 'contact_research', FALSE, ?, NULL, 'v1', 'f')",
                [f"rg-{pid}", pid, f"2026-{granted} 08:00", f"rw-{pid}", pid, f"2026-{withdrawn} 08:00"])
    derive.refresh(con)


def test_a_lead_who_withdrew_consent_is_no_longer_open(con):
    # q10 (facebook, lead 06-20, contacted 06-22, consented 06-30) withdraws on 06-25: the
    # consent of 06-30 is gone and q10, open before, now left the funnel (10 days to 30 June)
    withdraw_research_consent(con, "q10", "06-20", "06-25")
    rows = funnel.lead_status(con, Filters.make(channel="facebook"))
    assert list(rows[["status", "days", "persons"]].itertuples(index=False, name=None)) == [
        ("exited", 10, 1), ("exited", 81, 1), ("exited", 97, 1), ("exited", 102, 1), ("exited", 116, 1),
        ("exited", 119, 1), ("randomized", 30, 1)]
    # the cohort keeps the lead with the stages before the withdrawal: consented 6 -> 5
    assert funnel.stage_conversion(con, Filters())["reached"].tolist() == [12, 12, 9, 7, 5, 4, 3]


def test_a_randomization_before_the_withdrawal_still_counts(con):
    # q11 was randomized 05-01 and withdraws consent to be contacted on 05-10
    withdraw_research_consent(con, "q11", "04-01", "05-10")
    rows = funnel.lead_status(con, Filters.make(channel="hcp_referral"))
    assert ("randomized", 30, 1) in list(rows[["status", "days", "persons"]].itertuples(index=False, name=None))


def test_exits_after_the_withdrawal_are_not_drop_offs(con):
    # q7 consented 03-30 and withdrew from the study on 04-05; it withdrew consent to be
    # contacted on 04-01, so the exit of 04-05 is after the journey's end and is not counted:
    # q7 left after consenting by withdrawing that consent; q10 is still open or stalled
    withdraw_research_consent(con, "q7", "03-20", "04-01")
    table = funnel.dropoff_reasons(con, Filters())
    consented = table[table["left_after"] == "Consented"]
    assert consented[["exit", "reason", "persons"]].values.tolist() == [
        [funnel.CONSENT_WITHDRAWN, "consent to be contacted withdrawn", 1], [funnel.STALLED, "no outcome recorded", 1]]
    assert "Withdrew before randomization" not in table["exit"].tolist()


@pytest.mark.parametrize("f", [Filters(), MARCH, Filters.make(channel="facebook"), Filters.make(site="nowhere")])
@pytest.mark.parametrize("by,view", [("channel", "speed"), ("segment", "yield")])
def test_the_page_snapshot_holds_the_numbers_of_each_function(con, f, by, view):
    # the page reads the cohort's counts in one pass and its leads by status once
    numbers = funnel.snapshot(con, f, by=by, view=view)
    pd.testing.assert_frame_equal(numbers.stages, funnel.stage_conversion(con, f))
    assert numbers.speed == funnel.enrolment_summary(con, f, view="speed")
    assert numbers.share == funnel.enrolment_summary(con, f, view="yield")
    assert numbers.maturity == funnel.cohort_maturity(con, f)
    pd.testing.assert_frame_equal(numbers.gaps, funnel.stage_gaps(con, f))
    pd.testing.assert_frame_equal(numbers.dropoff, funnel.dropoff_reasons(con, f))
    km = funnel.enrolment_curves(con, f, by=by, view=view)
    for part in ("summary", "curves", "at_risk"):
        pd.testing.assert_frame_equal(getattr(numbers.curves, part), getattr(km, part))
    assert (numbers.curves.risk_days, numbers.curves.horizon_days) == (km.risk_days, km.horizon_days)
    assert numbers.curves.latest_day == funnel.last_day(con) == date(2026, 6, 30)


def test_the_all_leads_row_is_the_same_whatever_the_grouping(con):
    # one Kaplan-Meier over every lead, whether its rows come per channel or per segment
    for view in funnel.VIEWS:
        rows = [funnel.enrolment_curves(con, Filters(), by=by, view=view).summary.set_index("group")
                .loc[funnel.ALL_LEADS] for by in ("channel", "segment", "site")]
        assert rows[0].drop("group_name").equals(rows[1].drop("group_name"))
        assert rows[0].drop("group_name").equals(rows[2].drop("group_name"))
