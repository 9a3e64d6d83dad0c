"""Compliance numbers on the tiny store plus hand-written consent histories, file loads,
access requests and erasures; every expected number is worked out in the comments."""
from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from cockpit import derive
from cockpit.filters import Filters, Scope
from cockpit.metrics import compliance as co

# tiny_con already holds tracking: p1 granted 03-02 09:59, p3 granted 03-09 07:00 and
# withdrew 03-11 07:00, p4 granted 03-05 06:00 (file 'f'). Journeys: p1 p2 p3 p5 in
# study A (p2 at site A2, p2 and p5 by HCP referral), p4 in study B. p6 has no journey.
CONSENT_SQL = """
INSERT INTO consent_event VALUES
  -- tracking
  ('t-p2',  'p2', 'tracking', FALSE, '2026-03-04 08:00', NULL, 'v1', 'consent_03.jsonl'),
  ('t-p5a', 'p5', 'tracking', FALSE, '2026-02-10 08:00', NULL, 'v1', 'consent_03.jsonl'),
  ('t-p5b', 'p5', 'tracking', TRUE,  '2026-03-01 08:00', NULL, 'v1', 'consent_03.jsonl'),
  ('t-p6a', 'p6', 'tracking', TRUE,  '2026-03-03 10:00', NULL, 'v1', 'consent_web.jsonl'),
  ('t-p6b', 'p6', 'tracking', FALSE, '2026-03-03 10:00', NULL, 'v1', 'consent_web.jsonl'),
  -- contact for research
  ('r-p1a', 'p1', 'contact_research', TRUE,  '2026-03-03 12:00', NULL, 'v1', 'consent_03.jsonl'),
  ('r-p1b', 'p1', 'contact_research', FALSE, '2026-03-12 00:00', NULL, 'v1', 'consent_03.jsonl'),
  ('r-p2a', 'p2', 'contact_research', TRUE,  '2026-03-04 09:00', NULL, 'v1', 'consent_03.jsonl'),
  ('r-p2b', 'p2', 'contact_research', FALSE, '2026-03-05 09:00', NULL, 'v1', 'consent_03.jsonl'),
  ('r-p2c', 'p2', 'contact_research', FALSE, '2026-03-06 09:00', NULL, 'v1', 'consent_03.jsonl'),
  ('r-p4a', 'p4', 'contact_research', TRUE,  '2026-03-05 08:00', NULL, 'v1', 'consent_b.jsonl'),
  ('r-p4b', 'p4', 'contact_research', FALSE, '2026-03-10 08:00', NULL, 'v1', 'consent_b.jsonl'),
  ('r-p4c', 'p4', 'contact_research', TRUE,  '2026-03-11 08:00', NULL, 'v1', 'consent_b.jsonl'),
  ('r-p5',  'p5', 'contact_research', FALSE, '2026-02-10 09:00', NULL, 'v1', 'consent_03.jsonl');
-- consent_03.jsonl was loaded twice (new content under the same name); the web file was refused
INSERT INTO source_file VALUES
  ('sha-a', 'consent_03.jsonl',  'consent', 10, 1, '2026-03-04 12:00', 1, 1, 0, 'loaded'),
  ('sha-b', 'consent_03.jsonl',  'consent', 10, 2, '2026-03-13 06:00', 1, 1, 0, 'loaded'),
  ('sha-c', 'consent_b.jsonl',   'consent', 10, 2, '2026-03-10 20:00', 1, 1, 0, 'loaded'),
  ('sha-d', 'consent_web.jsonl', 'consent', 10, 2, '2026-03-04 00:00', 0, 0, 0, 'rejected'),
  ('sha-f', 'f',                 'consent', 10, 3, '2026-03-26 06:00', 1, 1, 0, 'loaded');
INSERT INTO subject_request (request_id, kind, subject, received_at, completed_at, handled_by) VALUES
  (1, 'access',  'h1', '2026-03-01 09:00', '2026-03-20 09:00', 'dpo'),
  (2, 'access',  'h2', '2026-02-01 00:00', '2026-03-15 00:00', 'dpo'),
  (3, 'access',  'h3', '2026-03-20 12:00', NULL, NULL),
  (4, 'access',  'h4', '2026-04-10 12:00', NULL, NULL),
  (5, 'erasure', 'h5', '2026-01-01 00:00', NULL, NULL),
  (6, 'access',  'h6', '2026-03-31 12:00', NULL, NULL);
INSERT INTO erasure_ledger VALUES
  ('s1', '2026-03-01 00:00', '2026-03-04 12:00', 'dpo'),
  ('s2', '2026-03-10 00:00', '2026-03-11 12:00', 'dpo'),
  ('s3', '2026-03-20 00:00', '2026-04-25 00:00', 'dpo'),
  ('s4', '2026-04-20 00:00', NULL, 'dpo');
"""
NOW = datetime(2026, 4, 30, 12, 0)
UNLIMITED = Filters()


@pytest.fixture
def con(tiny_con):
    tiny_con.execute(CONSENT_SQL)
    derive.refresh(tiny_con)
    return tiny_con


def rows(table: pd.DataFrame, columns: list[str]) -> dict:
    out = table.set_index("purpose")[columns]
    return {k: tuple(None if pd.isna(v) else v for v in vals) for k, vals in zip(out.index, out.to_numpy())}


RATES = ["decided", "granted", "consent_rate_pct", "refused", "refusal_rate_pct"]
WITHDRAWALS = ["withdrawals", "withdrawals_applied", "median_hours_to_apply"]


def test_rates_per_purpose(con):
    table = co.purpose_table(con, UNLIMITED)
    assert table.columns.tolist() == co.PURPOSE_COLUMNS
    assert table["purpose"].tolist() == ["contact_research", "tracking"]
    # research: p1 p2 p4 p5 decided; granted now p4 (1/4); p5 refused at first (1/4)
    # tracking: p1..p6 decided; granted now p1 p4 p5 (3/6); p2 and p5 refused first (2/6);
    #   p6 granted and withdrew at the same instant: a grant, then a withdrawal, not a refusal
    assert rows(table, RATES) == {
        "contact_research": (4, 1, 25.0, 1, 25.0),
        "tracking": (6, 3, 50.0, 2, 33.3),
    }


def test_withdrawals_and_the_time_to_apply_them(con):
    table = co.purpose_table(con, UNLIMITED)
    # research: p1 03-12 00:00 -> 2nd load of consent_03.jsonl 03-13 06:00 = 30 h;
    #   p2 03-05 09:00 -> same load = 7 d 21 h = 189 h (the 1st load, 03-04, came before;
    #   the repeated withdrawal of 03-06 is not a new one); p4 03-10 08:00 -> 20:00 = 12 h
    #   (re-granted since, still a withdrawal). Median of 12, 30, 189 = 30.
    # tracking: p3 03-11 07:00 -> 'f' 03-26 06:00 = 359 h; p6's file was refused: not applied
    assert rows(table, WITHDRAWALS) == {
        "contact_research": (3, 3, 30.0),
        "tracking": (2, 1, 359.0),
    }
    # every purpose: median of 12, 30, 189, 359 = (30 + 189) / 2
    assert co.median_hours_to_apply(con, UNLIMITED) == {"withdrawals": 5, "applied": 4, "median_hours": 109.5}


def test_study_and_channel_filters_follow_the_journeys(con):
    a = co.purpose_table(con, Filters.make(study="A"))
    # persons with a journey in A: p1 p2 p3 p5 (p6 has none: only in the unfiltered view)
    assert rows(a, RATES + ["withdrawals", "median_hours_to_apply"]) == {
        "contact_research": (3, 0, 0.0, 1, 33.3, 2, 109.5),
        "tracking": (4, 2, 50.0, 2, 50.0, 1, 359.0),
    }
    hcp = co.purpose_table(con, Filters.make(channel="hcp_referral"))  # p2 and p5
    assert rows(hcp, RATES)["tracking"] == (2, 1, 50.0, 2, 100.0)
    phase = co.purpose_table(con, Filters.make(phase="III"))  # study B: p4
    assert rows(phase, RATES + ["withdrawals"])["contact_research"] == (1, 1, 100.0, 0, 0.0, 1)


def test_a_person_with_two_journeys_counts_once(con):
    # p1 becomes a lead of study B too (before withdrawing, so a second journey)
    con.execute("INSERT INTO funnel_event VALUES ('e1b', 'p1', 'B', 'B1', 'lead', '2026-03-04 12:00', NULL, 'f')")
    derive.refresh(con)
    # two purposes x two journeys, marked as one person's
    assert con.execute("SELECT count(*), bool_and(shared) FROM consent_decision WHERE pid = 'p1'").fetchone() == (4, True)
    # unfiltered: as before (test_rates_per_purpose, test_withdrawals_and_the_time_to_apply_them)
    assert rows(co.purpose_table(con, UNLIMITED), RATES + WITHDRAWALS) == {
        "contact_research": (4, 1, 25.0, 1, 25.0, 3, 3, 30.0),
        "tracking": (6, 3, 50.0, 2, 33.3, 2, 1, 359.0)}
    # both studies: every person with a journey, p1..p5 (not p6); p1 and its withdrawal once
    assert rows(co.purpose_table(con, Filters.make(study=["A", "B"])), RATES + ["withdrawals"]) == {
        "contact_research": (4, 1, 25.0, 1, 25.0, 3),
        "tracking": (5, 3, 60.0, 2, 40.0, 1)}
    # study B: p1 (withdrawn 03-12) and p4 (granted again)
    assert rows(co.purpose_table(con, Filters.make(study="B")), RATES + ["withdrawals"])["contact_research"] == \
        (2, 1, 50.0, 0, 0.0, 2)
    assert co.weekly_withdrawals(con, Filters.make(study=["A", "B"]))["withdrawals"].sum() == 4
    # a period with an end: p1's decisions are read once, at their state on 03-07 (its
    # withdrawal on 03-12 came later), as in test_a_period_counts_first_decisions_...
    assert rows(co.purpose_table(con, Filters.make(start="2026-03-01", end="2026-03-07")), RATES) == {
        "contact_research": (3, 2, 66.7, 0, 0.0), "tracking": (4, 2, 50.0, 1, 25.0)}


def test_a_period_counts_first_decisions_and_the_state_at_its_end(con):
    week = Filters.make(start="2026-03-01", end="2026-03-07")
    table = co.purpose_table(con, week)
    # research: first decisions p1 03-03, p2 03-04, p4 03-05; at the end of 03-07 p1 and
    #   p4 still granted (their withdrawals came later), p2 withdrawn 03-05 -> 2 of 3
    # tracking: p1 03-02, p6 03-03, p2 03-04, p4 03-05 (p3 first decided 03-09, p5 in
    #   February); granted at the end p1 p4; refused first p2; withdrawn in the week p6
    assert rows(table, RATES + WITHDRAWALS) == {
        "contact_research": (3, 2, 66.7, 0, 0.0, 1, 1, 189.0),
        "tracking": (4, 2, 50.0, 1, 25.0, 1, 0, None),
    }
    # an open end: the current state (p1 withdrew on 03-12)
    assert rows(co.purpose_table(con, Filters.make(start="2026-03-01")), RATES)["contact_research"] == \
        (3, 1, 33.3, 0, 0.0)


def test_scope_confines_the_persons(con):
    b = Filters(scope=Scope(studies=("B",)))  # a manager of study B sees p4 only
    assert rows(co.purpose_table(con, b), RATES + ["withdrawals"]) == {
        "contact_research": (1, 1, 100.0, 0, 0.0, 1),
        "tracking": (1, 1, 100.0, 0, 0.0, 0),
    }
    a2 = Filters(scope=Scope(sites=("A2",)))  # p2 only
    assert rows(co.purpose_table(con, a2), RATES)["tracking"] == (1, 0, 0.0, 1, 100.0)
    nothing = Filters(scope=Scope(studies=(), sites=()))
    assert co.purpose_table(con, nothing)["decided"].tolist() == [0, 0]
    assert co.weekly_withdrawals(con, nothing).empty


def test_weekly_withdrawals(con):
    weeks = co.weekly_withdrawals(con, UNLIMITED)
    assert weeks.columns.tolist() == co.WEEK_COLUMNS
    # week of Monday 2 March: p6 tracking (03-03), p2 research (03-05);
    # week of 9 March: p4 research (03-10), p3 tracking (03-11), p1 research (03-12)
    assert list(weeks.itertuples(index=False, name=None)) == [
        (date(2026, 3, 2), 1, 1, 2), (date(2026, 3, 9), 2, 1, 3)]
    assert co.weekly_withdrawals(con, Filters.make(site="A1")).to_dict("list") == {
        "week": [date(2026, 3, 9)], "withdrawals_contact_research": [1], "withdrawals_tracking": [1],
        "withdrawals": [2]}  # p1 and p3


def test_access_requests_with_their_age(con):
    table = co.access_requests(con, UNLIMITED, now=NOW)
    assert table.columns.tolist() == co.ACCESS_COLUMNS
    # open first, oldest first: 3 (03-20 12:00 -> now 41 days, over), 6 (exactly 30 days:
    # not over), 4 (20 days); then completed, latest received first: 1 (19 days), 2 (42, over)
    assert list(table[["request_id", "status", "age_days", "over_30_days"]].itertuples(index=False, name=None)) == [
        ("3", "open", 41.0, True), ("6", "open", 30.0, False), ("4", "open", 20.0, False),
        ("1", "completed", 19.0, False), ("2", "completed", 42.0, True)]
    assert co.access_summary(con, UNLIMITED, now=NOW) == {"received": 5, "open": 3, "over_30_days": 2}
    march = Filters.make(start="2026-03-01", end="2026-03-31")
    assert co.access_requests(con, march, now=NOW)["request_id"].tolist() == ["3", "6", "1"]
    assert co.access_summary(con, march, now=NOW) == {"received": 3, "open": 2, "over_30_days": 1}


def test_erasures(con):
    table = co.erasure_requests(con, UNLIMITED, now=NOW)
    assert table.columns.tolist() == co.ERASURE_COLUMNS
    assert "subject" not in table.columns
    # open first: s4 (10.5 days so far); then by request: s1 3.5 days, s2 1.5, s3 36 (over 30)
    got = [tuple(None if pd.isna(v) else v for v in r) for r in
           table[["status", "days_to_complete", "age_days", "over_30_days"]].itertuples(index=False, name=None)]
    assert got == [("open", None, 10.5, False), ("completed", 3.5, 3.5, False),
                   ("completed", 1.5, 1.5, False), ("completed", 36.0, 36.0, True)]
    # median of 3.5, 1.5 and 36 days; requested by 15 March: s1 and s2, (3.5 + 1.5) / 2
    assert co.erasure_summary(con, UNLIMITED) == {"requested": 4, "completed": 3, "open": 1, "median_days": 3.5}
    assert co.erasure_summary(con, Filters.make(end="2026-03-15")) == {
        "requested": 2, "completed": 2, "open": 0, "median_days": 2.5}


def test_requests_are_shown_only_unfiltered_and_unconfined(con):
    assert co.requests_visible(UNLIMITED)
    assert co.requests_visible(Filters.make(start="2026-03-01"))  # dates are fine
    for f in (Filters.make(study="A"), Filters.make(phase="II"), Filters.make(site="A1"),
              Filters.make(segment="adults"), Filters.make(channel="facebook"),
              Filters(scope=Scope(studies=("A", "B"))), Filters(scope=Scope(sites=("A1",)))):
        assert not co.requests_visible(f)
        assert co.access_requests(con, f, now=NOW).empty
        assert co.erasure_requests(con, f, now=NOW).empty
        assert co.erasure_summary(con, f) is None
        assert co.access_summary(con, f, now=NOW) is None


def test_summary_cards(con):
    s = co.summary(con, UNLIMITED, now=NOW)
    assert (s["consent_rate_research"], s["refusal_rate_research"]) == (25.0, 25.0)
    assert (s["consent_rate_tracking"], s["refusal_rate_tracking"]) == (50.0, 33.3)
    assert (s["withdrawals"], s["withdrawals_applied"], s["median_hours_to_apply"]) == (5, 4, 109.5)
    assert (s["median_days_to_erase"], s["access_over_30_days"], s["requests_visible"]) == (3.5, 2, True)
    hidden = co.summary(con, Filters.make(study="B"), now=NOW)
    assert (hidden["median_days_to_erase"], hidden["access_over_30_days"], hidden["requests_visible"]) == \
        (None, None, False)
    assert hidden["consent_rate_research"] == 100.0


def test_empty_store(tmp_path):
    from cockpit.store import open_db

    con = open_db(tmp_path / "empty.duckdb")
    table = co.purpose_table(con, UNLIMITED)
    assert table[["decided", "withdrawals"]].to_numpy().tolist() == [[0, 0], [0, 0]]
    assert table["consent_rate_pct"].isna().all()
    assert co.weekly_withdrawals(con, UNLIMITED).empty
    assert co.summary(con, UNLIMITED)["median_hours_to_apply"] is None
    con.close()


def test_purposes_match_the_loader():
    from cockpit.ingest.consent import PURPOSES

    assert set(co.PURPOSE_ORDER) == set(PURPOSES) == set(derive.PURPOSES)
    assert set(co.DEFINITIONS) >= set(co.PURPOSE_COLUMNS[2:]) | set(co.WEEK_COLUMNS) | {"age_days", "over_30_days"}
