"""Subject access (GDPR Art. 15): what the store holds on one person, as JSON and as
a summary; every request audited and recorded, naming the person by hash only."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from cockpit import audit, privacy
from cockpit.commands.subject_access import subject_access as access_command
from cockpit.erasure import erase
from cockpit.store import open_db
from cockpit.subject_access import SubjectAccessError, collect, record_access, subject_access
from test_erasure import ANNA, BERT, KEY_TEXT, copy_store, small_store  # noqa: F401  (small_store: fixture)


def test_p3_holds_nine_rows_and_tracking_consent_is_withdrawn(tiny_db):
    # p3: person, touchpoint t3, lead e7 and ineligible e8, consents c3a (granted) and
    # c3b (withdrawn two days later) summed up in one consent decision, one journey; no
    # touchpoint path (the click lost its tracking consent)
    result = subject_access(tiny_db, "p3", "cli:dpo", received_at=datetime(2026, 3, 20, tzinfo=timezone.utc))
    assert result["pid"] == "p3" and result["found"]
    assert result["counts"] == {"person": 1, "visitor_link": 0, "touchpoint": 1, "funnel_event": 2,
                                "consent_event": 2, "journey": 1, "journey_path": 0, "consent_decision": 1,
                                "quarantine": 0}
    assert [r["event_id"] for r in result["rows"]["funnel_event"]] == ["e7", "e8"]
    assert result["rows"]["person"] == [{"pid": "p3", "birth_year": 1990, "segment_id": "adults",
                                         "first_seen": "2026-03-09T00:00:00Z"}]
    assert result["rows"]["touchpoint"][0]["ts"] == "2026-03-09T08:00:00Z"
    assert result["consent"] == {"tracking": {"granted": False, "since": "2026-03-11T07:00:00Z",
                                              "channel_id": None, "notice_version": "v1"}}
    assert result["in_erasure_ledger"] is False and result["erasure"] is None
    assert result["received_at"] == "2026-03-20T00:00:00Z"
    subject = privacy.subject_hash("p3")
    con = open_db(tiny_db)
    try:
        assert con.execute("SELECT request_id, kind, subject, received_at, handled_by, completed_at IS NOT NULL "
                           "FROM subject_request").fetchall() == [
            (result["request_id"], "access", subject, datetime(2026, 3, 20), "cli:dpo", True)]
        assert con.execute("SELECT actor, action, target, new_value FROM audit_log").fetchall() == [
            ("cli:dpo", "subject_access", subject, json.dumps(
                {"request_id": 1, "rows": {"consent_decision": 1, "consent_event": 2, "funnel_event": 2,
                                           "journey": 1, "person": 1, "touchpoint": 1}}, sort_keys=True))]
        assert audit.verify(con).ok
    finally:
        con.close()


def test_unknown_person_gets_zero_counts_and_is_still_recorded(tiny_db):
    result = subject_access(tiny_db, "nobody", "cli:dpo")
    assert result["found"] is False and set(result["counts"].values()) == {0}
    assert result["consent"] == {} and result["in_erasure_ledger"] is False
    con = open_db(tiny_db)
    try:
        assert con.execute("SELECT kind, subject FROM subject_request").fetchall() == [
            ("access", privacy.subject_hash("nobody"))]
        assert con.execute("SELECT action, target FROM audit_log").fetchall() == [
            ("subject_access", privacy.subject_hash("nobody"))]
    finally:
        con.close()


def test_after_erasure_the_answer_says_so_and_lists_both_requests(tiny_db):
    erase(tiny_db, "p1", "cli:dpo", received_at=datetime(2026, 3, 21, tzinfo=timezone.utc))
    con = open_db(tiny_db)
    try:
        result = record_access(con, "p1", "cli:dpo")
        assert set(result["counts"].values()) == {0}
        assert result["in_erasure_ledger"] is True
        assert result["erasure"]["requested_at"] == "2026-03-21T00:00:00Z"
        assert [r["kind"] for r in result["requests"]] == ["erasure", "access"]
        # collect alone reads and writes nothing
        before = con.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        assert collect(con, "p1")["in_erasure_ledger"] is True
        assert con.execute("SELECT count(*) FROM audit_log").fetchone()[0] == before == 2
    finally:
        con.close()


def test_command_json_lists_the_persons_rows(small_store, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COCKPIT_SECRET_KEY", KEY_TEXT)
    result = CliRunner().invoke(access_command, ["--db", str(small_store), "--email", "<Anna.Berg@example.org>",
                                                 "--json", "--received", "2026-01-25"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["pid"] == ANNA
    # person, link v-anna, web ad click and form, lead/started/outcome + PL-1, consent
    # cs-1 and its decision, journey and its touchpoint path, refused rows we-2 and PL-1
    assert answer["counts"] == {"person": 1, "visitor_link": 1, "touchpoint": 2, "funnel_event": 4,
                                "consent_event": 1, "journey": 1, "journey_path": 1, "consent_decision": 1,
                                "quarantine": 2}
    assert sorted(r["event_id"] for r in answer["rows"]["funnel_event"]) == [
        "pipe:PL-1", "pre:R-1:lead", "pre:R-1:outcome", "pre:R-1:started"]
    assert {r["pid"] for t in ("person", "touchpoint", "funnel_event", "consent_event", "journey", "journey_path",
                               "consent_decision") for r in answer["rows"][t]} == {ANNA}
    assert answer["rows"]["visitor_link"][0]["visitor_id"] == "v-anna"
    assert answer["consent"]["tracking"]["granted"] is True
    assert answer["received_at"] == "2026-01-25T00:00:00Z"
    con = open_db(small_store)
    try:
        assert con.execute("SELECT kind, received_at FROM subject_request").fetchall() == [
            ("access", datetime(2026, 1, 25))]
        assert con.execute("SELECT action, target FROM audit_log").fetchall() == [
            ("subject_access", privacy.subject_hash(ANNA))]
        # the request is recorded by hash: the pid is in no column of the bookkeeping
        assert con.execute("SELECT count(*) FROM audit_log WHERE concat_ws('|', target, new_value) "
                           "LIKE '%' || ? || '%'", [ANNA]).fetchone()[0] == 0
    finally:
        con.close()


def test_command_summary_is_readable(small_store):  # noqa: F811
    result = CliRunner().invoke(access_command, ["--db", str(small_store), "--pid", BERT])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Person {BERT} (subject ")
    assert "In the erasure ledger: no" in lines
    # Bert: rows like Anna's, and the refused web event we-3 of his visitor; his refused
    # pipeline row PL-9 names no id he has in the store, so nothing ties it to him
    assert "Rows held: 13" in lines
    assert "  touchpoint            2" in lines
    assert any(line.startswith("  tracking         granted since 2026-01-02T08:00:00Z") for line in lines)
    assert lines[-1].startswith("Recorded as access request 1 (received ")


def test_command_unknown_person_prints_the_pid_and_zero(small_store):  # noqa: F811
    result = CliRunner().invoke(access_command, ["--db", str(small_store), "--pid", "A" * 32, "--json"])
    assert result.exit_code == 0
    answer = json.loads(result.output)
    assert answer["pid"] == "a" * 32 and sum(answer["counts"].values()) == 0


def test_command_errors(small_store, tmp_path):  # noqa: F811
    runner = CliRunner()
    both = runner.invoke(access_command, ["--db", str(small_store), "--pid", "a" * 32, "--phone", "0151 2345678"])
    assert both.exit_code == 2 and both.output.startswith("Error: give exactly one")
    missing = runner.invoke(access_command, ["--db", str(tmp_path / "none.duckdb"), "--pid", "a" * 32])
    assert missing.exit_code == 2 and "no store at" in missing.output


def test_in_use_store_is_refused(tiny_db):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(tiny_db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(SubjectAccessError, match="Stop the serving cockpit"):
            subject_access(tiny_db, "p1", "cli:dpo")
    finally:
        holder.kill()
        holder.wait()


def test_demo_person_counts_match_the_tables(demo_db, tmp_path):
    path = copy_store(demo_db, tmp_path / "demo.duckdb")
    con = open_db(path)
    try:
        pid = con.execute("SELECT pid FROM journey WHERE randomized_ts IS NOT NULL ORDER BY pid LIMIT 1").fetchone()[0]
        expected = {t: con.execute(f"SELECT count(*) FROM {t} WHERE pid = ?", [pid]).fetchone()[0]
                    for t in ("person", "visitor_link", "touchpoint", "funnel_event", "consent_event", "journey",
                              "journey_path", "consent_decision")}
        latest = dict(con.execute("SELECT purpose, arg_max(granted, ts) FROM consent_event WHERE pid = ? "
                                  "GROUP BY 1", [pid]).fetchall())
        result = record_access(con, pid, "cli:dpo")
    finally:
        con.close()
    assert {t: n for t, n in result["counts"].items() if t != "quarantine"} == expected
    assert expected["funnel_event"] >= 5 and expected["journey"] == 1 and expected["journey_path"] <= 1
    assert {p: c["granted"] for p, c in result["consent"].items()} == latest
    assert all(len(result["rows"][t]) == n for t, n in expected.items())
