"""Segment numbers on a small hand-built store; every expected number is worked out
by hand in the comments. Study S, one site; facebook (paid), HCP referral and a
newsletter (offline costs); segments young (18-34) and seniors (70+)."""
import json

import pandas as pd
import pytest

from cockpit import derive
from cockpit.filters import Filters
from cockpit.metrics import funnel, segments
from cockpit.store import open_db

SEG_SQL = """
INSERT INTO study VALUES ('S', 'Sleep study', 'II', 'Neurology', 10, '2026-01-01', '2026-12-31', 5000, 'EUR');
INSERT INTO site VALUES ('S1', 'S', 'Leeds', 'GB', '2026-01-10', '2026-01-15');
INSERT INTO channel VALUES ('facebook', 'Facebook', 'paid_social', TRUE),
  ('hcp_referral', 'HCP referral', 'hcp_referral', FALSE), ('newsletter', 'Newsletter', 'newsletter', TRUE);
INSERT INTO segment VALUES ('young', 'Young 18-34', 18, 34), ('seniors', 'Seniors 70+', 70, 120);
INSERT INTO campaign VALUES ('CF', 'S', 'facebook', 'S | FB', '2026-03-01', NULL),
  ('CH', 'S', 'hcp_referral', 'S | HCP', '2026-03-01', NULL), ('CN', 'S', 'newsletter', 'S | NL', '2026-03-01', NULL);
-- facebook: 300 in the week of Mon 2 March, 120 in the week of 9 March
INSERT INTO ad_daily VALUES ('2026-03-02', 'CF', '', 100, 1000, 10, 'f'), ('2026-03-03', 'CF', '', 100, 1000, 10, 'f'),
  ('2026-03-04', 'CF', '', 100, 1000, 10, 'f'), ('2026-03-10', 'CF', '', 120, 1000, 10, 'f');
INSERT INTO offline_cost VALUES ('o1', '2026-03-04', 'hcp_referral', 'CH', 'S', NULL, 40, 'liaison', 'f'),
  ('o2', '2026-03-05', 'newsletter', 'CN', 'S', NULL, 25, 'issue', 'f');
INSERT INTO person VALUES ('y1', 2000, 'young', '2026-03-02'), ('y2', 1998, 'young', '2026-03-03'),
  ('s1', 1950, 'seniors', '2026-03-04'), ('s2', 1948, 'seniors', '2026-03-04'),
  ('s3', 1945, 'seniors', '2026-03-17'), ('s4', 1940, 'seniors', '2026-03-18'),
  ('u1', NULL, NULL, '2026-03-05');
INSERT INTO consent_event VALUES ('cy1', 'y1', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f'),
  ('cy2', 'y2', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f'),
  ('cs1', 's1', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f'),
  ('cs3', 's3', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f'),
  ('cu1', 'u1', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f');
INSERT INTO touchpoint VALUES
  ('t1', 'y1', NULL, '2026-03-02 08:00', 'ad_click', 'facebook', 'CF', NULL, 'S', NULL, NULL, 'f'),
  ('t2', 'y2', NULL, '2026-03-03 08:00', 'ad_click', 'facebook', 'CF', NULL, 'S', NULL, NULL, 'f'),
  ('t3', 's1', NULL, '2026-03-04 08:00', 'ad_click', 'facebook', 'CF', NULL, 'S', NULL, NULL, 'f'),
  ('t4', 's2', NULL, '2026-03-04 11:00', 'referral', 'hcp_referral', 'CH', NULL, 'S', 'S1', 'h1', 'f'),
  ('t5', 's3', NULL, '2026-03-17 08:00', 'ad_click', 'facebook', 'CF', NULL, 'S', NULL, NULL, 'f'),
  ('t6', 's4', NULL, '2026-03-18 08:00', 'referral', 'hcp_referral', 'CH', NULL, 'S', 'S1', 'h1', 'f'),
  ('t7', 'u1', NULL, '2026-03-05 08:00', 'ad_click', 'facebook', 'CF', NULL, 'S', NULL, NULL, 'f');
INSERT INTO funnel_event VALUES
  ('e1', 'y1', 'S', 'S1', 'lead', '2026-03-02 09:00', NULL, 'f'),
  ('e2', 'y1', 'S', 'S1', 'prescreen_eligible', '2026-03-02 10:00', NULL, 'f'),
  ('e3', 'y1', 'S', 'S1', 'consented', '2026-03-08 09:00', NULL, 'f'),
  ('e4', 'y1', 'S', 'S1', 'randomized', '2026-03-12 09:00', NULL, 'f'),
  ('e5', 'y2', 'S', 'S1', 'lead', '2026-03-03 09:00', NULL, 'f'),
  ('e6', 'y2', 'S', 'S1', 'prescreen_eligible', '2026-03-03 10:00', NULL, 'f'),
  ('e7', 'y2', 'S', 'S1', 'contacted', '2026-03-20 09:00', NULL, 'f'),
  ('e8', 's1', 'S', 'S1', 'lead', '2026-03-04 09:00', NULL, 'f'),
  ('e9', 's1', 'S', 'S1', 'prescreen_eligible', '2026-03-04 10:00', NULL, 'f'),
  ('e10', 's1', 'S', 'S1', 'consented', '2026-03-14 09:00', NULL, 'f'),
  ('e11', 's1', 'S', 'S1', 'randomized', '2026-03-24 09:00', NULL, 'f'),
  ('e12', 's2', 'S', 'S1', 'lead', '2026-03-04 12:00', NULL, 'f'),
  ('e13', 's2', 'S', 'S1', 'prescreen_eligible', '2026-03-05 12:00', NULL, 'f'),
  ('e14', 's2', 'S', 'S1', 'consented', '2026-03-20 12:00', NULL, 'f'),
  ('e15', 's2', 'S', 'S1', 'randomized', '2026-04-03 12:00', NULL, 'f'),
  ('e16', 's3', 'S', 'S1', 'lead', '2026-03-17 09:00', NULL, 'f'),
  ('e17', 's3', 'S', 'S1', 'prescreen_eligible', '2026-03-17 10:00', NULL, 'f'),
  ('e18', 's3', 'S', 'S1', 'declined', '2026-03-20 10:00', NULL, 'f'),
  ('e19', 's4', 'S', 'S1', 'lead', '2026-03-18 09:00', NULL, 'f'),
  ('e20', 's4', 'S', 'S1', 'prescreen_ineligible', '2026-03-18 09:10', 'age', 'f'),
  ('e21', 'u1', 'S', 'S1', 'lead', '2026-03-05 09:00', NULL, 'f');
"""
# Leads per study x channel x week:
#   facebook, week of 2 March: y1, y2 (young), s1 (senior), u1 (unknown age)
#   facebook, week of 16 March: s3 (senior); HCP, week of 2 March: s2; week of 16 March: s4
# Spend allocation:
#   facebook 300 (week of 2 March) by that week's leads: young 2/4, seniors 1/4, unknown 1/4
#     -> 150, 75, 75
#   facebook 120 (week of 9 March, no lead that week) by the period's facebook leads
#     y1, y2, s1, u1, s3: young 2/5, seniors 2/5, unknown 1/5 -> 48, 48, 24
#   HCP 40 (week of 2 March): s2 alone -> seniors 40
#   newsletter 25: no newsletter lead at all -> unallocated
#   young 198, seniors 163, unknown 99 (allocated 460); unallocated 25; total 485
# Time to enrolment (funnel.enrolment_durations; latest day with data 3 April, s2's
# randomization; whole calendar days from the lead's date):
#   young: y1 randomized after 10 days (2 -> 12 March); y2 open (no exit, last step
#     20 March, 14 days before 3 April), censored at 31 days (3 March -> 3 April)
#     -> at 10 days 2 at risk, 1 randomized: S = 1/2, median 10
#   seniors: s1 after 20 days (4 -> 24 March), s2 after 30 (4 March -> 3 April); s3
#     declined and s4 ineligible left the funnel: not followed -> S(20) = 1/2: median 20
#   unknown: u1 started the pre-screener on 5 March and never passed it; 29 days before
#     3 April is more than the 14 days a pre-screener may stay open: abandoned, not
#     followed -> no curve, median not reached


@pytest.fixture
def seg_con(tmp_path):
    con = open_db(tmp_path / "segments.duckdb")
    con.execute(SEG_SQL)
    derive.refresh(con)
    yield con
    con.close()


def by_segment(table):
    return table.set_index("segment_id")


def test_spend_allocated_by_the_weeks_leads_then_the_periods(seg_con):
    allocated, summary = segments.allocated_spend(seg_con, Filters())
    got = dict(zip(allocated["segment_id"], allocated["allocated_spend"].round(6)))
    assert got == {"young": 198.0, "seniors": 163.0, "": 99.0}
    assert summary == pytest.approx({"by_week": 340.0, "by_period": 120.0, "unallocated": 25.0,
                                     "total": 485.0})


def test_allocation_fallback_uses_the_periods_leads(seg_con):
    # from 9 March: facebook spends 120 in a week without leads; the period's only
    # facebook lead is s3 (17 March) -> all 120 to seniors
    allocated, summary = segments.allocated_spend(seg_con, Filters.make(start="2026-03-09"))
    assert dict(zip(allocated["segment_id"], allocated["allocated_spend"])) == {"seniors": 120.0}
    assert summary == pytest.approx({"by_week": 0.0, "by_period": 120.0, "unallocated": 0.0, "total": 120.0})


def test_time_to_enrolment_kaplan_meier(seg_con):
    km = by_segment(segments.time_to_enrolment(seg_con, Filters()))
    assert km.loc["young"].tolist() == [10.0, 2, 1]       # median, followed, still open
    assert km.loc["seniors"].tolist() == [20.0, 2, 0]
    assert "" not in km.index  # u1 abandoned the pre-screener: nobody of that group followed


def test_time_to_enrolment_is_the_funnel_pages(seg_con):
    # one definition: the Funnel page's speed summary per segment gives the same numbers
    km = by_segment(segments.time_to_enrolment(seg_con, Filters()))
    funnel_km = funnel.enrolment_curves(seg_con, Filters(), by="segment").summary.set_index("group")
    for seg in ("young", "seniors"):
        assert km.loc[seg].tolist() == funnel_km.loc[seg, ["median_days_to_randomization", "km_leads",
                                                            "open_leads"]].tolist()
    # s3 and s4 left the funnel: counted there, not followed
    assert funnel_km.loc["seniors", ["exited", "stale"]].tolist() == [2, 0]


def test_segment_table(seg_con):
    t = segments.segment_table(seg_con, Filters())
    assert t.columns.tolist() == segments.TABLE_COLUMNS
    assert t["segment"].tolist() == ["Young 18-34", "Seniors 70+", "Unknown age"]
    t = by_segment(t)
    young, seniors, unknown = t.loc["young"], t.loc["seniors"], t.loc[""]
    assert (young["leads"], young["eligible"], young["consented"], young["randomized"]) == (2, 2, 1, 1)
    assert (seniors["leads"], seniors["eligible"], seniors["consented"], seniors["randomized"]) == (4, 3, 2, 2)
    assert (unknown["leads"], unknown["eligible"], unknown["randomized"]) == (1, 0, 0)
    rates = (young["eligible_rate_pct"], seniors["eligible_rate_pct"], unknown["eligible_rate_pct"])
    assert rates == (100.0, 75.0, 0.0)
    assert (young["allocated_spend"], seniors["allocated_spend"], unknown["allocated_spend"]) == (198.0, 163.0, 99.0)
    assert (young["allocated_cost_per_randomized"], seniors["allocated_cost_per_randomized"]) == (198.0, 81.5)
    assert pd.isna(unknown["allocated_cost_per_randomized"])
    # randomized per 1,000: 1000 / 198 = 5.051, 2000 / 163 = 12.270, 0 / 99 = 0
    assert (young["randomized_per_1000"], seniors["randomized_per_1000"], unknown["randomized_per_1000"]) \
        == (5.051, 12.270, 0.0)
    assert (young["median_days_to_randomization"], seniors["median_days_to_randomization"]) == (10.0, 20.0)
    assert pd.isna(unknown["median_days_to_randomization"]) and unknown["km_leads"] == 0
    # a handful of patients: the table says so
    assert young["caution"] == "only 1 randomized: uncertain"


def test_priority_score(seg_con):
    t = by_segment(segments.segment_table(seg_con, Filters()))
    # yield index: 5.0505 / 12.2699 = 0.412 (young), 1 (seniors), 0 (unknown)
    # speed index: 10 / 10 = 1 (young), 10 / 20 = 0.5 (seniors), 0 (no median)
    assert t["yield_index"].tolist() == [0.412, 1.0, 0.0]
    assert t["speed_index"].tolist() == [1.0, 0.5, 0.0]
    # priority: 100 x (0.4116 + 1) / 2 = 70.6 -> 71; 100 x 1.5 / 2 = 75; 0
    assert t["priority"].tolist() == [71.0, 75.0, 0.0]


def test_a_period_changes_the_ranking(seg_con):
    t = by_segment(segments.segment_table(seg_con, Filters.make(start="2026-03-01", end="2026-03-31")))
    # same spend and cohort, but s2 was randomized on 3 April: seniors 1 randomized in March
    assert t.loc["seniors", "randomized"] == 1
    assert t.loc["seniors", "randomized_per_1000"] == round(1000 / 163, 3)
    # yield index young 5.0505 / 6.1350 = 0.823: priority 100 x 1.823 / 2 = 91 against 75
    assert (t.loc["young", "priority"], t.loc["seniors", "priority"]) == (91.0, 75.0)


def test_segment_filter_keeps_the_comparison_with_all_segments(seg_con):
    t = segments.segment_table(seg_con, Filters.make(segment="young"))
    assert t["segment_id"].tolist() == ["young"]
    assert (t["priority"].iloc[0], t["yield_index"].iloc[0]) == (71.0, 0.412)


def test_site_filter_hides_spend_but_keeps_speed(seg_con):
    t = by_segment(segments.segment_table(seg_con, Filters.make(site="S1")))
    assert t["allocated_spend"].isna().all() and t["priority"].isna().all()
    assert t.loc["seniors", "median_days_to_randomization"] == 20.0
    assert not segments.allocation_applies(Filters.make(site="S1"))


def test_unknown_segment_rows_on_tiny(tiny_con):
    # conftest's tiny store: adults (p1, p2, p3, p5) and seniors (p4); spend 330 and 50
    t = by_segment(segments.segment_table(tiny_con, Filters()))
    assert t.loc["adults", "allocated_spend"] == 330.0 and t.loc["seniors", "allocated_spend"] == 50.0
    # latest day with data 25 March. adults: p1 randomized after 17 days (3 -> 20 March);
    # p2 open (last step 5 March, 20 days before), censored at 21 (4 -> 25 March); p5 after
    # 23 (10 Feb -> 5 March); p3 ineligible, not followed. At 17 days 3 at risk -> 2/3; at 23
    # p5 alone -> 0: median 23
    assert (t.loc["adults", "median_days_to_randomization"], t.loc["adults", "km_leads"]) == (23.0, 3)


def test_empty_period(seg_con):
    assert segments.segment_table(seg_con, Filters.make(start="2027-01-01")).empty


def test_planted_segment_speed_is_found(demo_store, demo_raw):
    """Young adults start fast, seniors are slow (planted delay factors 0.6 and 1.7)."""
    truth = json.loads((demo_raw / "ground_truth.json").read_text())["segments"]
    t = by_segment(segments.segment_table(demo_store.reader(), Filters()))
    slow = max(truth, key=lambda s: truth[s]["planted"]["delay_factor"])
    fast = min(truth, key=lambda s: truth[s]["planted"]["delay_factor"])
    medians = t["median_days_to_randomization"]
    assert medians[fast] < medians[slow], f"{fast}: {medians[fast]} days, {slow}: {medians[slow]} days"
    assert t["allocated_spend"].sum() > 0 and t["priority"].notna().all()
