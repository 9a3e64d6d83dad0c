"""Overview numbers on the tiny store, each worked out by hand from conftest.TINY_SQL."""
from datetime import date

import pandas as pd
import pytest

from cockpit.filters import Filters
from cockpit.metrics import overview

MARCH = dict(start="2026-03-01", end="2026-03-31")


def test_kpis_all_data(tiny_con):
    k = overview.kpis(tiny_con, Filters())
    assert k == {"leads": 5, "eligible": 4, "consented": 3, "randomized": 3,
                 "spend": 380.0, "cost_per_randomized": pytest.approx(380 / 3)}


def test_kpis_count_each_stage_on_its_own_day(tiny_con):
    # p5 became a lead and consented in February but was randomized on 5 March
    k = overview.kpis(tiny_con, Filters.make(**MARCH))
    assert (k["leads"], k["eligible"], k["consented"], k["randomized"]) == (4, 3, 2, 3)
    assert k["spend"] == 380.0


def test_kpis_by_study(tiny_con):
    k = overview.kpis(tiny_con, Filters.make(study="A"))
    assert (k["leads"], k["randomized"], k["spend"]) == (4, 2, 330.0)
    assert k["cost_per_randomized"] == 165.0


def test_kpis_by_phase_goes_through_the_study(tiny_con):
    assert overview.kpis(tiny_con, Filters.make(phase="III"))["leads"] == 1


def test_kpis_by_channel_uses_last_consented_touch(tiny_con):
    # p3's tracking consent was withdrawn: the facebook click no longer attributes the lead
    k = overview.kpis(tiny_con, Filters.make(channel="facebook"))
    assert (k["leads"], k["randomized"], k["spend"]) == (2, 2, 350.0)
    assert overview.kpis(tiny_con, Filters.make(channel="unattributed"))["leads"] == 1
    assert overview.kpis(tiny_con, Filters.make(channel="hcp_referral"))["leads"] == 2


def test_site_filter_hides_spend_rather_than_mislead(tiny_con):
    k = overview.kpis(tiny_con, Filters.make(site="A1"))
    assert (k["leads"], k["randomized"]) == (3, 2)
    assert k["spend"] is None and k["cost_per_randomized"] is None


def test_no_randomized_means_no_cost_per_randomized(tiny_con):
    k = overview.kpis(tiny_con, Filters.make(start="2026-03-26", end="2026-03-31"))
    assert k["randomized"] == 0 and k["cost_per_randomized"] is None


def test_study_table(tiny_con):
    table = overview.study_table(tiny_con, Filters.make(**MARCH)).set_index("study_id")
    a, b = table.loc["A"], table.loc["B"]
    assert (a["leads"], a["eligible"], a["consented"], a["randomized"]) == (3, 2, 1, 2)
    assert a["randomized_to_date"] == 2 and a["pct_target"] == 20.0
    assert a["active_sites"] == 2 and a["spend"] == 330.0 and a["cost_per_randomized"] == 165.0
    assert (b["leads"], b["randomized"], b["pct_target"], b["cost_per_randomized"]) == (1, 1, 5.0, 50.0)


def test_enrolment_curve_against_target_pace(tiny_con):
    curve = overview.enrolment_curve(tiny_con, Filters.make(study="A"))
    a = curve.set_index("week")
    # randomized on Thu 5 March (week of Mon 2 March) and Fri 20 March (week of 16 March)
    assert a.loc[date(2026, 3, 2), "cumulative_randomized"] == 1
    assert a.loc[date(2026, 3, 9), "cumulative_randomized"] == 1
    assert a.loc[date(2026, 3, 16), "cumulative_randomized"] == 2
    # straight line: 10 patients over 364 days; on 16 March 74 days have passed
    assert a.loc[date(2026, 3, 16), "target_to_date"] == pytest.approx(round(10 * 74 / 364, 1))


def test_weekly_trend(tiny_con):
    trend = overview.weekly_trend(tiny_con, Filters.make(**MARCH)).set_index("week")
    week = trend.loc[date(2026, 3, 2)]
    # week of 2 March: leads p1, p2, p4; randomized p5; spend 100 + 50 + 30
    assert (week["leads"], week["randomized"], week["spend"]) == (3, 1, 180.0)
    assert trend["leads"].sum() == 4


def test_data_as_of(tiny_con):
    info = overview.data_as_of(tiny_con)
    assert info["latest_day"] == date(2026, 3, 25)
    assert info["last_load"].isoformat().startswith("2026-03-26T06:01")


def test_enrolment_curve_keeps_studies_apart(tiny_con):
    curve = overview.enrolment_curve(tiny_con, Filters())
    last = curve.groupby("study_id")["cumulative_randomized"].max().to_dict()
    assert last == {"A": 2, "B": 1}
    b = curve[curve["study_id"] == "B"].set_index("week")
    assert b.loc[date(2026, 3, 16), "cumulative_randomized"] == 0
    assert b.loc[date(2026, 3, 23), "cumulative_randomized"] == 1


@pytest.mark.parametrize("f", [
    Filters(), Filters.make(**MARCH), Filters.make(study="A"), Filters.make(phase="III"),
    Filters.make(site="A1"), Filters.make(channel="unattributed"), Filters.make(study="nowhere"),
])
def test_the_page_snapshot_holds_the_numbers_of_each_function(tiny_con, f):
    # the page reads its counts in one pass (total, per study and per week together)
    numbers = overview.snapshot(tiny_con, f)
    assert numbers.kpis == overview.kpis(tiny_con, f)
    pd.testing.assert_frame_equal(numbers.studies, overview.study_table(tiny_con, f))
    pd.testing.assert_frame_equal(numbers.curve, overview.enrolment_curve(tiny_con, f))
    pd.testing.assert_frame_equal(numbers.trend, overview.weekly_trend(tiny_con, f))
    # the weekly trend adds up to the period's totals
    assert [numbers.trend[stage].sum() for stage in ("leads", "randomized")] == [
        numbers.kpis["leads"], numbers.kpis["randomized"]]


def test_study_table_without_spend_and_without_studies(tiny_con):
    at_site = overview.study_table(tiny_con, Filters.make(site="A1")).set_index("study_id")
    # A1 is a site of study A: p1, p3, p5 led there, p1 and p5 randomized
    assert (at_site.loc["A", "leads"], at_site.loc["A", "randomized_to_date"]) == (3, 2)
    assert at_site["spend"].isna().all() and at_site["cost_per_randomized"].isna().all()
    none = overview.study_table(tiny_con, Filters.make(study="nowhere"))
    assert none.empty and none.columns.tolist() == overview.STUDY_TABLE_COLUMNS
