"""The journey table: one row per person and study, attributed by last consented touch,
ending where the person withdrew the consent to be contacted for research; and the
touchpoint paths of the Attribution page derived with it."""
from datetime import date, datetime

import pytest

from cockpit import derive
from cockpit.filters import Filters


def journeys(con):
    return {row[0]: row[1:] for row in con.execute(
        "SELECT pid, study_id, site_id, segment_id, channel_id, campaign_id FROM journey ORDER BY pid"
    ).fetchall()}


def test_one_row_per_person_and_study(tiny_con):
    assert tiny_con.execute("SELECT count(*), count(DISTINCT (pid, study_id)) FROM journey").fetchone() == (5, 5)


def test_last_touch_before_the_lead_wins(tiny_con):
    # p1 clicked again after becoming a lead: the earlier click keeps the credit
    assert journeys(tiny_con)["p1"] == ("A", "A1", "adults", "facebook", "CA")


def test_withdrawn_tracking_consent_removes_the_touch(tiny_con):
    assert journeys(tiny_con)["p3"][3] == "unattributed"


def test_referral_counts_without_tracking_consent(tiny_con):
    # p2 and p5 never gave tracking consent; a referral is not tracking
    assert journeys(tiny_con)["p2"][3] == "hcp_referral"
    assert journeys(tiny_con)["p5"][3] == "hcp_referral"


def test_rebuild_is_idempotent(tiny_con):
    from cockpit import derive

    before = tiny_con.execute("SELECT * FROM journey ORDER BY pid").fetchall()
    assert derive.rebuild_journey(tiny_con) == 5
    assert tiny_con.execute("SELECT * FROM journey ORDER BY pid").fetchall() == before


# ---------------------------------------------------------------- consent to be contacted

# tiny_con journeys (tests/conftest.py): p1 A lead 03-03 12:00, eligible 12:10, consented
# 03-10 10:00, randomized 03-20 10:00; p2 A lead 03-04 09:00, eligible 03-05 09:00; p3 A
# lead 03-10 09:00, ineligible 09:05; p4 B lead 03-05 08:00, eligible 03-06, consented
# 03-15, randomized 03-25; p5 A lead 02-10, eligible 02-11, consented 02-20, randomized 03-05.
RESEARCH_SQL = """
INSERT INTO consent_event VALUES
  -- p1 withdraws after consenting to the study: randomization of 03-20 no longer counts
  ('r1a', 'p1', 'contact_research', TRUE,  '2026-03-03 11:00', NULL, 'v1', 'f'),
  ('r1b', 'p1', 'contact_research', FALSE, '2026-03-12 00:00', NULL, 'v1', 'f'),
  -- p2 withdraws at the very moment of the eligible pre-screen (not before it), then again
  ('r2a', 'p2', 'contact_research', TRUE,  '2026-03-04 08:00', NULL, 'v1', 'f'),
  ('r2b', 'p2', 'contact_research', FALSE, '2026-03-05 09:00', NULL, 'v1', 'f'),
  ('r2c', 'p2', 'contact_research', FALSE, '2026-03-06 09:00', NULL, 'v1', 'f'),
  -- p3 grants and withdraws in the same instant, before the lead: no journey at all
  ('r3a', 'p3', 'contact_research', TRUE,  '2026-03-10 08:00', NULL, 'v1', 'f'),
  ('r3b', 'p3', 'contact_research', FALSE, '2026-03-10 08:00', NULL, 'v1', 'f'),
  -- p4 withdraws and grants again: the current state is granted, nothing changes
  ('r4a', 'p4', 'contact_research', TRUE,  '2026-03-05 07:00', NULL, 'v1', 'f'),
  ('r4b', 'p4', 'contact_research', FALSE, '2026-03-10 08:00', NULL, 'v1', 'f'),
  ('r4c', 'p4', 'contact_research', TRUE,  '2026-03-11 08:00', NULL, 'v1', 'f'),
  -- p5 refused from the start: a refusal, not a withdrawal
  ('r5',  'p5', 'contact_research', FALSE, '2026-02-01 00:00', NULL, 'v1', 'f');
"""


@pytest.fixture
def withdrawn_con(tiny_con):
    tiny_con.execute(RESEARCH_SQL)
    derive.refresh(tiny_con)
    return tiny_con


def stages(con) -> dict:
    cols = "lead_ts, eligible_ts, consented_ts, randomized_ts, consent_withdrawn_ts"
    return {r[0]: tuple(None if v is None else v.strftime("%m-%d %H:%M") for v in r[1:])
            for r in con.execute(f"SELECT pid, {cols} FROM journey ORDER BY pid").fetchall()}


def test_journey_keeps_the_stages_before_a_withdrawal(withdrawn_con):
    assert stages(withdrawn_con) == {
        # lead, eligible, consented, randomized, withdrawn
        "p1": ("03-03 12:00", "03-03 12:10", "03-10 10:00", None, "03-12 00:00"),
        "p2": ("03-04 09:00", None, None, None, "03-05 09:00"),
        "p4": ("03-05 08:00", "03-06 08:00", "03-15 08:00", "03-25 08:00", None),
        "p5": ("02-10 09:00", "02-11 09:00", "02-20 09:00", "03-05 09:00", None),
    }
    # p1 keeps the channel its lead is attributed to
    assert journeys(withdrawn_con)["p1"][3] == "facebook"


def test_without_research_consent_events_nothing_changes(tiny_con):
    assert tiny_con.execute("SELECT count(*), count(consent_withdrawn_ts) FROM journey").fetchone() == (5, 0)


def test_lead_counts_before_the_withdrawal_keep_the_lead(withdrawn_con):
    from cockpit.metrics.counts import stage_counts

    week = stage_counts(withdrawn_con, Filters.make(start="2026-03-02", end="2026-03-08")).iloc[0]
    # leads p1 (03-03), p2 (03-04), p4 (03-05): all made before their withdrawals
    assert (week["leads"], week["eligible"]) == (3, 2)  # eligible p1, p4 (p2's came at the withdrawal)
    march = stage_counts(withdrawn_con, Filters.make(start="2026-03-01", end="2026-03-31")).iloc[0]
    # without the consent rows: leads 4 (p1 p2 p3 p4), eligible 3, consented 2, randomized 3
    assert march[["leads", "eligible", "consented", "randomized"]].tolist() == [3, 2, 2, 2]


def test_daily_kpis_follow_the_journey(withdrawn_con):
    from cockpit.metrics import daily

    march = Filters.make(start="2026-03-01", end="2026-03-31")
    assert daily.window_value(withdrawn_con, "randomized", march).value == 2.0  # p4 and p5
    series = daily.daily_series(withdrawn_con, "randomized", march).set_index("day")["value"]
    assert series.sum() == 2.0 and series[date(2026, 3, 20)] == 0.0  # p1's randomization is gone


def test_a_withdrawal_wins_over_a_tracking_grant_of_the_same_instant(tiny_con):
    # p4's click is at 03-05 07:00, tracking granted 06:00; a withdrawal stamped 06:00 too
    tiny_con.execute("INSERT INTO consent_event VALUES "
                     "('c4b', 'p4', 'tracking', FALSE, '2026-03-05 06:00', NULL, 'v1', 'f')")
    derive.refresh(tiny_con)
    assert journeys(tiny_con)["p4"][3] == "unattributed"


def test_consent_state_sql_rejects_an_unknown_purpose():
    with pytest.raises(ValueError):
        derive.consent_state_sql("marketing")


def test_the_migrations_add_the_columns(tiny_con):
    cols = [r[0] for r in tiny_con.execute("DESCRIBE journey").fetchall()]
    assert cols[-6:] == ["consent_withdrawn_ts", "ineligible_reason", "not_reachable_reason",
                         "declined_reason", "screen_failed_reason", "withdrawn_reason"]


def test_an_exit_keeps_the_reason_of_its_first_event_before_the_withdrawal(tiny_con):
    # p3 is ineligible for 'age' (e8); p2 is not reachable twice, first without a reason,
    # then 'no_answer', then 'wrong_number': the earliest with a reason wins; p4 declines
    # after withdrawing the consent to be contacted: no exit, no reason.
    tiny_con.execute("""
        INSERT INTO funnel_event VALUES
          ('x1', 'p2', 'A', 'A2', 'not_reachable', '2026-03-06 09:00', NULL, 'f'),
          ('x2', 'p2', 'A', 'A2', 'not_reachable', '2026-03-07 09:00', 'no_answer', 'f'),
          ('x3', 'p2', 'A', 'A2', 'not_reachable', '2026-03-08 09:00', 'wrong_number', 'f'),
          ('x4', 'p4', 'B', 'B1', 'declined', '2026-03-14 09:00', 'travel', 'f');
        INSERT INTO consent_event VALUES
          ('r4a', 'p4', 'contact_research', TRUE, '2026-03-05 08:00', NULL, 'v1', 'f'),
          ('r4b', 'p4', 'contact_research', FALSE, '2026-03-13 08:00', NULL, 'v1', 'f')""")
    derive.refresh(tiny_con)
    rows = {r[0]: r[1:] for r in tiny_con.execute(
        "SELECT pid, strftime(not_reachable_ts, '%d'), not_reachable_reason, ineligible_reason, "
        "declined_ts, declined_reason FROM journey").fetchall()}
    assert rows["p2"] == ("06", "no_answer", None, None, None)
    assert rows["p3"] == (None, None, "age", None, None)
    assert rows["p4"] == (None, None, None, None, None)


# ---------------------------------------------------------------- touchpoint paths

def paths(con, mode: str) -> dict:
    return {r[0]: (r[1], r[2]) for r in con.execute(
        f"SELECT pid, {mode}_channels, {mode}_ages FROM journey_path ORDER BY pid").fetchall()}


def test_paths_of_the_tiny_store_by_hand(tiny_con):
    # p1: facebook clicks 03-02 10:00 and 03-04 10:00, lead 03-03 12:00, randomized 03-20
    # 10:00. Up to the lead the second click lies past the end: one step, 1 day 2 h old.
    # Up to randomization the two clicks are one run, dated by the later: 16 days.
    # p2: referral at the lead 03-04 09:00, not randomized: up to now (9999-12-31).
    # p3: its only click lost its tracking consent: no path, no row.
    # p4: click 03-05 07:00, lead 08:00, randomized 03-25 08:00 (20 days 1 h).
    # p5: referral at the lead 02-10 09:00, randomized 03-05 09:00 (23 days).
    assert paths(tiny_con, "lead") == {
        "p1": (["facebook"], [1]), "p2": (["hcp_referral"], [0]),
        "p4": (["facebook"], [0]), "p5": (["hcp_referral"], [0])}
    up_to_now = (datetime(9999, 12, 31) - datetime(2026, 3, 4, 9)).days
    assert paths(tiny_con, "randomized") == {
        "p1": (["facebook"], [16]), "p2": (["hcp_referral"], [up_to_now]),
        "p4": (["facebook"], [20]), "p5": (["hcp_referral"], [23])}


def test_paths_are_rebuilt_with_the_journey(tiny_con):
    # p2 grants tracking and clicks twice before the referral, the second time on another
    # channel's ad; p1 withdraws the consent to be contacted on 03-12: its path up to
    # randomization now ends there (the randomization of 03-20 no longer counts)
    tiny_con.execute("""
        INSERT INTO channel VALUES ('google', 'Google', 'search', TRUE);
        INSERT INTO consent_event VALUES
          ('c2', 'p2', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f'),
          ('r1a', 'p1', 'contact_research', TRUE,  '2026-03-03 11:00', NULL, 'v1', 'f'),
          ('r1b', 'p1', 'contact_research', FALSE, '2026-03-12 00:00', NULL, 'v1', 'f');
        INSERT INTO touchpoint VALUES
          ('t7', 'p2', 'v2', '2026-03-01 10:00', 'ad_click', 'facebook', 'CA', NULL, 'A', NULL, NULL, 'f'),
          ('t8', 'p2', 'v2', '2026-03-02 10:00', 'ad_click', 'google', NULL, NULL, NULL, NULL, NULL, 'f'),
          ('t9', 'p2', 'v2', '2026-03-03 10:00', 'ad_click', 'google', NULL, NULL, 'B', NULL, NULL, 'f');
    """)
    derive.refresh(tiny_con)
    # t9 is of study B, p2's lead is of study A: not on the path
    assert paths(tiny_con, "lead")["p2"] == (["facebook", "google", "hcp_referral"], [2, 1, 0])
    assert paths(tiny_con, "randomized")["p1"] == (["facebook"], [7])  # 03-04 10:00 to 03-12 00:00
    assert tiny_con.execute("SELECT count(*) FROM journey_path").fetchone()[0] == 4


def walked_paths(con, mode: str) -> set:
    """The paths of every person walked straight from the touchpoints, one mode at a
    time, as the Attribution page used to on each filter change."""
    until = {"lead": "j.lead_ts",
             "randomized": "coalesce(j.randomized_ts, j.consent_withdrawn_ts, TIMESTAMP '9999-12-31')"}[mode]
    rows = con.execute(f"""
    WITH tracking AS ({derive.consent_state_sql('tracking')}),
    touches AS (
        SELECT j.pid, j.study_id, {until} AS until, t.ts, t.touch_id, t.channel_id
        FROM journey j
        JOIN touchpoint t
          ON t.pid = j.pid
         AND (t.study_id IS NULL OR t.study_id = j.study_id)
         AND t.ts <= {until}
         AND t.ts >= j.lead_ts - INTERVAL 90 DAY
        LEFT JOIN tracking c ON c.pid = t.pid
        WHERE t.kind NOT IN ('ad_click', 'page_view', 'qr_scan', 'form') OR coalesce(c.granted, FALSE)
    ),
    steps AS (
        SELECT *, lead(channel_id) OVER (PARTITION BY pid, study_id ORDER BY ts, touch_id) AS next_channel
        FROM touches
    )
    SELECT pid, study_id,
           list(channel_id ORDER BY ts, touch_id),
           list(CAST(floor(epoch(until - ts) / 86400) AS INTEGER) ORDER BY ts, touch_id)
    FROM steps
    WHERE next_channel IS DISTINCT FROM channel_id   -- the last touch of each run
    GROUP BY pid, study_id
    """).fetchall()
    return {(pid, study, tuple(channels), tuple(ages)) for pid, study, channels, ages in rows}


@pytest.mark.parametrize("mode", ["lead", "randomized"])
def test_demo_paths_equal_the_walk_over_the_touchpoints(demo_store, mode):
    con = demo_store.reader()
    stored = {(pid, study, tuple(channels), tuple(ages)) for pid, study, channels, ages in con.execute(
        f"SELECT pid, study_id, {mode}_channels, {mode}_ages FROM journey_path "
        f"WHERE {mode}_channels IS NOT NULL").fetchall()}
    assert stored == walked_paths(con, mode)
    # the comparison covers multi-step paths and persons without any path
    assert sum(len(p[2]) > 1 for p in stored) > 100
    persons, with_row = con.execute(
        "SELECT count(*), count(p.pid) FROM journey j "
        "LEFT JOIN journey_path p USING (pid, study_id)").fetchone()
    assert 0 < with_row < persons
    assert con.execute("SELECT count(*), count(DISTINCT (pid, study_id)) FROM journey_path").fetchone() \
        == (with_row, with_row)


def test_opening_a_store_of_an_earlier_schema_fills_the_derived_tables(tmp_path):
    import duckdb

    from conftest import tiny_store_file
    from cockpit.store import open_db

    path = tiny_store_file(tmp_path / "old.duckdb")
    con = duckdb.connect(str(path))
    reasons = [col for col, _ in derive.EXIT_REASON_COLUMNS]
    con.execute("DROP TABLE journey_path; DROP TABLE consent_decision; "
                + "".join(f"ALTER TABLE journey DROP COLUMN {col}; " for col in reasons)
                + "ALTER TABLE visitor_link DROP COLUMN attached; "
                + "DELETE FROM schema_migration WHERE version >= 7")
    con.close()
    con = open_db(path)
    assert sorted(paths(con, "lead")) == ["p1", "p2", "p4", "p5"]
    assert con.execute("SELECT count(*) FROM consent_decision").fetchone()[0] == 3  # p1, p3, p4
    assert con.execute("SELECT pid, ineligible_reason FROM journey WHERE ineligible_reason IS NOT NULL"
                       ).fetchall() == [("p3", "age")]
    con.close()


# ---------------------------------------------------------------- consent decisions

def test_consent_decision_sums_up_each_persons_history(tiny_con):
    # q1: grant, withdrawal, a repeated withdrawal (not a new one), then a grant and a
    # withdrawal of the same instant (a grant followed by a withdrawal); q2 refuses first,
    # then grants.
    tiny_con.execute("""
        INSERT INTO consent_event VALUES
          ('k1', 'q1', 'tracking', TRUE,  '2026-03-01 10:00', 'web', 'v1', 'a.jsonl'),
          ('k2', 'q1', 'tracking', FALSE, '2026-03-05 10:00', 'web', 'v1', 'b.jsonl'),
          ('k3', 'q1', 'tracking', FALSE, '2026-03-06 10:00', 'web', 'v1', 'b.jsonl'),
          ('k5', 'q1', 'tracking', FALSE, '2026-03-07 10:00', 'web', 'v1', 'c.jsonl'),
          ('k4', 'q1', 'tracking', TRUE,  '2026-03-07 10:00', 'web', 'v1', 'c.jsonl'),
          ('k6', 'q2', 'contact_research', FALSE, '2026-03-02 09:00', 'web', 'v1', 'a.jsonl'),
          ('k7', 'q2', 'contact_research', TRUE,  '2026-03-04 09:00', 'web', 'v1', 'a.jsonl')""")
    assert derive.rebuild_consent_decision(tiny_con) == tiny_con.execute(
        "SELECT count(DISTINCT (pid, purpose)) FROM consent_event").fetchone()[0]
    rows = {r[0]: r[1:] for r in tiny_con.execute(
        "SELECT pid, strftime(first_ts, '%m-%d'), first_granted, strftime(last_ts, '%m-%d'), granted, "
        "[(w.consent_id, strftime(w.ts, '%m-%d'), w.source_file) FOR w IN withdrawals] "
        "FROM consent_decision WHERE pid IN ('q1', 'q2')").fetchall()}
    assert rows["q1"] == ("03-01", True, "03-07", False,
                          [("k2", "03-05", "b.jsonl"), ("k5", "03-07", "c.jsonl")])
    assert rows["q2"] == ("03-02", False, "03-04", True, None)
