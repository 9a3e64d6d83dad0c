"""Weekly review numbers on a small hand-built store whose weeks are written out by hand.

The store (as of 2026-03-31, the latest event):
- this week = 25-31 March, the week before = 18-24 March;
- study A (phase II, target 100, 2026-01-01 to 2026-12-31): site A1 has 20 leads the week
  before and 10 this week, all referred by the HCP channel; site A2 has 10 then 14, not
  attributed to any channel. Randomized: 5 at A1 before the weeks, 1 at A2 the week
  before (20 March), 2 at A1 this week (26 and 31 March) = 8 to date. Spend: 400 up to
  the as-of day (another 1000 after it must not count).
- study B (phase III, target 20, 2026-01-01 to 2027-06-30): site B1 has 3 leads the week
  before, 9 this week (below the minimum volume), 1 randomized on 1 March.
- alerts: rule 1 (scope study A) firing, rule 2 (no scope) firing, rule 3 (study A)
  normal, rule 4 (study B) firing but disabled.
"""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from cockpit import derive
from cockpit.filters import Filters
from cockpit.metrics import review
from cockpit.store import open_db

AS_OF = date(2026, 3, 31)
THIS_WEEK = [date(2026, 3, 25) + timedelta(days=i) for i in range(7)]
WEEK_BEFORE = [date(2026, 3, 18) + timedelta(days=i) for i in range(7)]

BASE_SQL = """
INSERT INTO study VALUES
  ('A', 'Atopic study', 'II',  'Dermatology', 100, '2026-01-01', '2026-12-31', 10000, 'EUR'),
  ('B', 'Bone study',   'III', 'Rheumatology', 20, '2026-01-01', '2027-06-30', 12000, 'EUR');
INSERT INTO site VALUES
  ('A1', 'A', 'Berlin',  'DE', '2026-01-10', '2026-01-10'),
  ('A2', 'A', 'Hamburg', 'DE', '2026-01-10', '2026-01-10'),
  ('B1', 'B', 'Lyon',    'FR', '2026-01-10', '2026-01-10');
INSERT INTO channel VALUES ('hcp_referral', 'HCP referral', 'hcp_referral', FALSE);
INSERT INTO segment VALUES ('adults', 'Adults 18-64', 18, 64);
INSERT INTO campaign VALUES ('HA', 'A', 'hcp_referral', 'A | HCP', '2026-01-01', NULL);
INSERT INTO offline_cost VALUES
  ('oc1', '2026-03-05', 'hcp_referral', 'HA', 'A', NULL, 400, 'liaison', 'f'),
  ('oc2', '2026-04-05', 'hcp_referral', 'HA', 'A', NULL, 1000, 'after the as-of day', 'f');
INSERT INTO load_run (started_at, finished_at, status, source) VALUES
  ('2026-04-01 06:00', '2026-04-01 06:01', 'ok', 'hand-built');
INSERT INTO alert_rule (rule_id, name, kind, kpi, params, scope, recipients, pending_hours, repeat_hours,
                        clear_hours, enabled, created_at, created_by, updated_at, updated_by) VALUES
  (1, 'A leads', 'threshold', 'leads', '{}', '?study=A', 'a@example.org', 0, 24, 0, TRUE, now(), 't', now(), 't'),
  (2, 'all leads', 'threshold', 'leads', '{}', '', 'a@example.org', 0, 24, 0, TRUE, now(), 't', now(), 't'),
  (3, 'A calm', 'threshold', 'leads', '{}', '?study=A', 'a@example.org', 0, 24, 0, TRUE, now(), 't', now(), 't'),
  (4, 'B off', 'threshold', 'leads', '{}', '?study=B', 'a@example.org', 0, 24, 0, FALSE, now(), 't', now(), 't');
INSERT INTO alert_state (rule_id, state, state_since) VALUES
  (1, 'firing', now()), (2, 'firing', now()), (3, 'normal', now()), (4, 'firing', now());
"""


def _leads(prefix: str, study: str, site: str, days: list[date], n: int, referred: bool) -> list[str]:
    """n leads spread over ``days``; referred ones get an HCP referral just before."""
    sql = []
    for i in range(n):
        pid, day = f"{prefix}{i}", days[i % len(days)]
        sql.append(f"INSERT INTO person VALUES ('{pid}', 1980, 'adults', '{day}');")
        sql.append(f"INSERT INTO funnel_event VALUES ('e{pid}', '{pid}', '{study}', '{site}', 'lead', "
                   f"'{day} 10:00', NULL, 'f');")
        if referred:
            sql.append(f"INSERT INTO touchpoint VALUES ('t{pid}', '{pid}', NULL, '{day} 09:00', 'referral', "
                       f"'hcp_referral', 'HA', NULL, '{study}', '{site}', 'h1', 'f');")
    return sql


def _randomized(pid: str, study: str, site: str, day: str) -> list[str]:
    return [f"INSERT INTO person VALUES ('{pid}', 1970, 'adults', '2026-02-02');",
            f"INSERT INTO funnel_event VALUES ('l{pid}', '{pid}', '{study}', '{site}', 'lead', "
            f"'2026-02-02 09:00', NULL, 'f');",
            f"INSERT INTO funnel_event VALUES ('r{pid}', '{pid}', '{study}', '{site}', 'randomized', "
            f"'{day} 09:00', NULL, 'f');"]


def review_sql() -> str:
    sql = [BASE_SQL]
    sql += _leads("a1b", "A", "A1", WEEK_BEFORE, 20, referred=True)
    sql += _leads("a1t", "A", "A1", THIS_WEEK, 10, referred=True)
    sql += _leads("a2b", "A", "A2", WEEK_BEFORE, 10, referred=False)
    sql += _leads("a2t", "A", "A2", THIS_WEEK, 14, referred=False)
    sql += _leads("b1b", "B", "B1", WEEK_BEFORE, 3, referred=False)
    sql += _leads("b1t", "B", "B1", THIS_WEEK, 9, referred=False)
    for i, day in enumerate(["2026-02-15", "2026-02-20", "2026-02-25", "2026-03-05", "2026-03-10"]):
        sql += _randomized(f"o{i}", "A", "A1", day)
    sql += _randomized("o5", "A", "A2", "2026-03-20")
    sql += _randomized("o6", "A", "A1", "2026-03-26")
    sql += _randomized("o7", "A", "A1", "2026-03-31")
    sql += _randomized("q0", "B", "B1", "2026-03-01")
    return "\n".join(sql)


@pytest.fixture
def review_con(tmp_path: Path):
    con = open_db(tmp_path / "review.duckdb")
    con.execute(review_sql())
    derive.refresh(con)
    yield con
    con.close()


def _row(table, study_id: str) -> dict:
    return table[table["study_id"] == study_id].iloc[0].to_dict()


def test_weeks_end_on_the_latest_day(review_con):
    assert review.review_day(review_con) == AS_OF
    assert review.weeks(AS_OF) == ((date(2026, 3, 25), AS_OF), (date(2026, 3, 18), date(2026, 3, 24)))


def test_study_rows_by_hand(review_con):
    table = review.review_table(review_con, Filters(), n_sims=500)
    assert table["study_id"].tolist() == ["A", "B", "Total"]
    a, b, total = _row(table, "A"), _row(table, "B"), _row(table, "Total")
    # A: 8 randomized; plan 100 x 89 / 364 days = 24.45; pace 8 / 24.45
    assert (a["phase"], a["target"], a["randomized_to_date"]) == ("II", 100, 8)
    assert a["planned_to_date"] == 24.5 and a["pace_pct"] == 32.7
    assert (a["randomized_this_week"], a["randomized_week_before"]) == (2, 1)
    assert (a["leads_this_week"], a["leads_week_before"], a["leads_change_pct"]) == (24, 30, -20.0)
    assert a["cost_per_randomized_to_date"] == 50.0  # 400 / 8; the April cost is after the as-of day
    assert a["alerts_firing"] == 1
    # B: 1 randomized; plan 20 x 89 / 545 = 3.27
    assert (b["randomized_to_date"], b["planned_to_date"], b["pace_pct"]) == (1, 3.3, 30.6)
    assert (b["leads_this_week"], b["leads_week_before"], b["leads_change_pct"]) == (9, 3, 200.0)
    assert b["cost_per_randomized_to_date"] == 0.0 and b["alerts_firing"] == 0
    # total: sums; pace 9 / 27.72; cost 400 / 9; both firing rules (the unscoped one too)
    assert (total["target"], total["randomized_to_date"], total["pace_pct"]) == (120, 9, 32.5)
    assert (total["leads_this_week"], total["leads_week_before"], total["leads_change_pct"]) == (33, 33, 0.0)
    assert (total["randomized_this_week"], total["randomized_week_before"]) == (2, 1)
    assert total["cost_per_randomized_to_date"] == 44.44
    assert total["alerts_firing"] == 2
    assert total["forecast_date"] is None and total["p_on_time_pct"] is None


def test_snapshot_is_the_table_and_its_day(review_con):
    table, day = review.snapshot(review_con, Filters())
    assert day == AS_OF
    assert table.equals(review.review_table(review_con, Filters()))
    empty, day = review.snapshot(review_con, Filters.make(study="NONE"))
    assert day == AS_OF and empty.empty and empty.columns.tolist() == review.REVIEW_COLUMNS


def test_an_earlier_review_day(review_con):
    """``as_of`` sets the weeks and the "to date" counts; the forecasts stay those of the
    latest day with data."""
    table = review.review_table(review_con, Filters(), n_sims=500, as_of=date(2026, 3, 24))
    latest = review.review_table(review_con, Filters(), n_sims=500)
    a, a_latest = _row(table, "A"), _row(latest, "A")
    assert (a["leads_this_week"], a["randomized_this_week"]) == (a_latest["leads_week_before"],
                                                                 a_latest["randomized_week_before"])
    assert a["forecast_date"] == a_latest["forecast_date"]


def test_forecast_columns(review_con):
    a = _row(review.review_table(review_con, Filters(), n_sims=500), "A")
    assert a["forecast_lo80"] <= a["forecast_date"] <= a["forecast_hi80"]
    assert 0 <= a["p_on_time_pct"] <= 100


def test_filters_study_and_phase_only(review_con):
    table = review.review_table(review_con, Filters.make(phase="III"), n_sims=500)
    assert table["study_id"].tolist() == ["B", "Total"]
    assert _row(table, "Total")["alerts_firing"] == 0  # the unscoped rule is not B's
    # channel and date filters do not change the review
    assert review.review_table(review_con, Filters.make(channel="hcp_referral", start="2026-03-30"),
                               n_sims=500).equals(review.review_table(review_con, Filters(), n_sims=500))


def test_biggest_changes_by_hand(review_con):
    changes = review.biggest_changes(review_con, "A")
    got = list(zip(changes["level"], changes["key"], changes["kpi"], changes["this_week"],
                   changes["week_before"], changes["change_pct"]))
    # -50% twice (HCP channel = site A1), then +40% (unattributed = site A2, channel first);
    # the study's -20% and B's +200% (3 the week before) are not among them
    assert got == [("channel", "hcp_referral", "leads", 10, 20, -50.0),
                   ("site", "A1", "leads", 10, 20, -50.0),
                   ("channel", "unattributed", "leads", 14, 10, 40.0)]
    assert review.describe_change(changes.iloc[1].to_dict()) == (
        "Leads for site Berlin (A1): 10 this week, 20 the week before (-50%).")
    assert review.biggest_changes(review_con, "B").empty  # 3 the week before: below the minimum
    # with a lower minimum: the study, its site and its (unattributed) channel, all +200%
    assert len(review.biggest_changes(review_con, "B", min_volume=3)) == 3


def test_forecast_is_cached_per_data_version(review_con):
    first = review.cached_forecast(review_con, "A", n_sims=300)
    assert review.cached_forecast(review_con, "A", n_sims=300) is first
    review_con.execute("INSERT INTO load_run (started_at, finished_at, status, source, files_loaded) "
                       "VALUES ('2026-04-02 06:00', '2026-04-02 06:01', 'ok', 'next', 1)")
    assert review.cached_forecast(review_con, "A", n_sims=300) is not first


def test_no_alert_tables_means_none(review_con):
    review_con.execute("DROP TABLE alert_state")
    assert review.alerts_firing(review_con) == ({}, 0)
    assert _row(review.review_table(review_con, Filters(), n_sims=300), "A")["alerts_firing"] == 0


def test_history_is_cumulative(review_con):
    hist = review.randomized_history(review_con, "A")
    assert hist["cumulative"].tolist() == list(range(1, 9))
    assert hist["day"].iloc[-1].date() == AS_OF
