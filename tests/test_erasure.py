"""Erasure (GDPR Art. 17) against real DuckDB files: every row of the person goes, the
bytes leave the file, the ledger keeps later loads from bringing the person back, and
nothing else changes."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from cockpit import audit, derive, privacy
from cockpit.commands.erase import erase as erase_command
from cockpit.erasure import ErasureError, ErasureReport, erase, select_person
from cockpit.ingest import load_folder
from cockpit.store import open_db
from test_ingest import SETUP

KEY_TEXT = "erasure-test-key"
KEY = KEY_TEXT.encode()
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)
RECEIVED = datetime(2026, 1, 20, tzinfo=timezone.utc)


def pid_of(email: str) -> str:
    """HMAC-SHA256(key, 'person:email:<normalised>'), 128 bits hex, computed here."""
    return hmac.new(KEY, f"person:email:{email}".encode(), hashlib.sha256).hexdigest()[:32]


ANNA = pid_of("anna.berg@example.org")
BERT = pid_of("bert@example.org")


def copy_store(src: Path, dst: Path) -> Path:
    """Copy a store file (and its write-ahead log, when there is one)."""
    shutil.copyfile(src, dst)
    wal = Path(str(src) + ".wal")
    if wal.exists():
        shutil.copyfile(wal, Path(str(dst) + ".wal"))
    return dst


def table_counts(con) -> dict[str, int]:
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "ORDER BY 1").fetchall()]
    return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def file_bytes(path: Path) -> bytes:
    """The database file and, if any, its write-ahead log."""
    data = path.read_bytes()
    wal = Path(str(path) + ".wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


# ---------------------------------------------------------------- the tiny store

def leads(con) -> dict[str, int]:
    return dict(con.execute("SELECT study_id, count(*) FROM journey GROUP BY 1 ORDER BY 1").fetchall())


def test_erasing_p1_removes_its_ten_rows_and_one_lead(tiny_db):
    # p1: 1 person, touchpoints t1 and t6, funnel events e1..e4, consent c1, one journey,
    # its touchpoint path and its consent decision
    report = erase(tiny_db, "p1", "cli:test", received_at=RECEIVED)
    assert report.status == "erased"
    assert {t: n for t, n in report.rows.items() if n} == {
        "journey": 1, "journey_path": 1, "consent_decision": 1, "touchpoint": 2, "funnel_event": 4,
        "consent_event": 1, "person": 1}
    assert report.total == 11
    con = open_db(tiny_db)
    try:
        # study A had leads p1, p2, p3, p5; B had p4
        assert leads(con) == {"A": 3, "B": 1}
        for table in ("person", "touchpoint", "funnel_event", "consent_event", "journey", "journey_path",
                      "consent_decision", "visitor_link"):
            assert con.execute(f"SELECT count(*) FROM {table} WHERE pid = 'p1'").fetchone()[0] == 0
        # the others keep their attribution: p2 and p5 by referral, p4 by an ad; p3 withdrew
        # tracking consent, so its ad click does not count
        assert con.execute("SELECT pid, channel_id FROM journey ORDER BY pid").fetchall() == [
            ("p2", "hcp_referral"), ("p3", "unattributed"), ("p4", "facebook"), ("p5", "hcp_referral")]
        subject = privacy.subject_hash("p1")
        assert con.execute("SELECT subject, requested_at, requested_by FROM erasure_ledger").fetchall() == [
            (subject, datetime(2026, 1, 20), "cli:test")]
        assert con.execute("SELECT kind, subject, received_at, handled_by FROM subject_request").fetchall() == [
            ("erasure", subject, datetime(2026, 1, 20), "cli:test")]
        entry = con.execute("SELECT actor, action, target, new_value FROM audit_log").fetchall()
        assert entry == [("cli:test", "erasure", subject,
                          json.dumps({"consent_decision": 1, "consent_event": 1, "funnel_event": 4,
                                      "journey": 1, "journey_path": 1, "person": 1, "touchpoint": 2},
                                     sort_keys=True))]
        assert audit.verify(con).ok
    finally:
        con.close()


def test_rewrite_keeps_sequences_views_migrations_and_permissions(tiny_db):
    con = open_db(tiny_db)
    for n in range(3):
        audit.append(con, "alice", "rule.edit", f"rule {n}")
    seqs_before = dict(con.execute("SELECT sequence_name, last_value FROM duckdb_sequences()").fetchall())
    migrations = con.execute("SELECT version, name FROM schema_migration ORDER BY 1").fetchall()
    views = sorted(r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall())
    tables_sql = dict(con.execute("SELECT table_name, sql FROM duckdb_tables()").fetchall())
    spend = con.execute("SELECT sum(spend) FROM spend_daily").fetchone()[0]
    con.close()
    os.chmod(tiny_db, 0o640)

    erase(tiny_db, "p4", "cli:test")

    assert stat.S_IMODE(os.stat(tiny_db).st_mode) == 0o640
    assert not Path(str(tiny_db) + ".wal").exists()
    assert [p.name for p in tiny_db.parent.iterdir()] == ["tiny.duckdb"]  # no copy left beside it
    con = open_db(tiny_db)
    try:
        seqs_after = dict(con.execute("SELECT sequence_name, last_value FROM duckdb_sequences()").fetchall())
        assert seqs_before["audit_seq"] == 3
        assert seqs_after == {**seqs_before, "audit_seq": 4, "subject_request_seq": 1}
        assert con.execute("SELECT nextval('load_run_seq')").fetchone()[0] == seqs_before["load_run_seq"] + 1
        assert con.execute("SELECT version, name FROM schema_migration ORDER BY 1").fetchall() == migrations
        assert sorted(r[0] for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()) == views
        assert dict(con.execute("SELECT table_name, sql FROM duckdb_tables()").fetchall()) == tables_sql
        assert con.execute("SELECT sum(spend) FROM spend_daily").fetchone()[0] == spend == 100 + 200 + 50 + 30
        assert audit.verify(con).ok
        # the audit log's tail is still guarded: deleting the erasure entry is caught
        con.execute("DELETE FROM audit_log WHERE entry_id = 4")
        assert audit.verify(con) == audit.Verdict(False, 3, 4, "entries after the last one were deleted")
    finally:
        con.close()


def test_unknown_person_changes_nothing(tiny_db):
    before = tiny_db.read_bytes()
    report = erase(tiny_db, "nobody", "cli:test")
    assert report.status == "not_found" and report.total == 0 and not report.rewritten
    assert "nothing was changed" in report.message
    assert tiny_db.read_bytes() == before


def test_second_erasure_says_already_erased(tiny_db):
    erase(tiny_db, "p2", "cli:test", received_at=RECEIVED)
    again = erase(tiny_db, "p2", "cli:other")
    assert again.status == "already_erased" and again.total == 0
    assert "already erased" in again.message
    con = open_db(tiny_db)
    try:
        assert con.execute("SELECT count(*), min(requested_by) FROM erasure_ledger").fetchone() == (1, "cli:test")
        assert con.execute("SELECT count(*) FROM subject_request").fetchone()[0] == 1
    finally:
        con.close()


def test_store_open_in_another_process_is_refused(tiny_db):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('open', flush=True); "
         "time.sleep(60)", str(tiny_db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        before = tiny_db.read_bytes()
        with pytest.raises(ErasureError) as caught:
            erase(tiny_db, "p1", "cli:test")
        assert "open in another process" in str(caught.value)
        assert "Stop the serving cockpit" in str(caught.value)
        result = CliRunner().invoke(erase_command, ["--db", str(tiny_db), "--pid", "0" * 32, "--yes"])
        assert result.exit_code == 2
        assert result.output.startswith("Error: The store") and "Stop the serving cockpit" in result.output
        assert tiny_db.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


def test_anonymous_touchpoints_of_the_persons_visitor_are_erased(tiny_db):
    con = open_db(tiny_db)
    con.execute("INSERT INTO visitor_link VALUES ('v3', 'p3', '2026-03-09 08:00', TRUE), "
                "('v4', 'p4', '2026-03-05 07:00', TRUE)")
    con.execute("INSERT INTO touchpoint VALUES "
                "('t7', NULL, 'v3', '2026-03-12 10:00', 'page_view', 'facebook', 'CA', NULL, 'A', NULL, NULL, 'f'), "
                "('t8', NULL, 'v4', '2026-03-12 10:00', 'page_view', 'facebook', 'CB', NULL, 'B', NULL, NULL, 'f')")
    con.close()
    report = erase(tiny_db, "p3", "cli:test")
    # t3 (p3's own) and t7 (anonymous, visitor v3 is p3's); t8 belongs to p4's visitor
    assert report.rows["touchpoint"] == 2 and report.rows["visitor_link"] == 1
    con = open_db(tiny_db)
    try:
        assert con.execute("SELECT touch_id FROM touchpoint ORDER BY touch_id").fetchall() == [
            ("t1",), ("t2",), ("t4",), ("t5",), ("t6",), ("t8",)]
    finally:
        con.close()


# ---------------------------------------------------------------- hand-written exports

PRESCREENER_HEADER = ("response_id,started_at,completed_at,study_id,site_id,email,phone,birth_year,"
                      "eligible,ineligible_reason,visitor_id,utm_source,utm_campaign,utm_content,"
                      "qr_code,referral_id,signup_id\n")
PIPELINE_HEADER = "record_id,study_id,site_id,email,phone,status,status_at,reason\n"


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def jsonl(*objects: dict) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def web_event(event_id: str, visitor: str, campaign: str) -> dict:
    return {"event_id": event_id, "ts": "2026-01-02T09:00:00Z", "visitor_id": visitor, "event": "ad_click",
            "study_id": "ST-101", "utm": {"source": "fb", "campaign": campaign}}


def consent(consent_id: str, email: str, purpose: str, action: str, ts: str) -> dict:
    return {"consent_id": consent_id, "ts": ts, "email": email, "phone": "", "purpose": purpose,
            "action": action, "channel": "facebook", "notice_version": "2025-03"}


@pytest.fixture
def small_store(tmp_path) -> Path:
    """Anna and Bert, loaded from hand-written exports; two refused rows of each."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw, "setup_2026-01.json", json.dumps(SETUP))
    write(raw, "web_events_2026-01.jsonl", jsonl(
        web_event("we-1", "v-anna", "C-FB-101-01"),
        web_event("we-2", "v-anna", "C-NOPE"),     # refused: unknown campaign (Anna's visitor)
        web_event("we-3", "v-bert", "C-NOPE"),     # refused: Bert's visitor
        web_event("we-4", "v-bert", "C-FB-101-01")))
    write(raw, "prescreener_2026-01.csv", PRESCREENER_HEADER +
          "R-1,2026-01-03T10:00:00Z,2026-01-03T10:05:00Z,ST-101,S-01,Anna.Berg@Example.org,,1990,yes,,"
          "v-anna,fb,C-FB-101-01,,,,\n"
          "R-2,2026-01-04T10:00:00Z,2026-01-04T10:05:00Z,ST-101,S-01,bert@example.org,,1960,yes,,"
          "v-bert,fb,C-FB-101-01,,,,\n")
    write(raw, "consent_2026-01.jsonl", jsonl(
        consent("cs-1", "anna.berg@example.org", "tracking", "granted", "2026-01-02T08:00:00Z"),
        consent("cs-2", "bert@example.org", "tracking", "granted", "2026-01-02T08:00:00Z")))
    write(raw, "site_pipeline_2026-01a.csv", PIPELINE_HEADER +
          "PL-1,ST-101,S-01,anna.berg@example.org,,contacted,2026-01-06T10:00:00Z,\n"
          "PL-2,ST-101,S-01,bert@example.org,,contacted,2026-01-06T11:00:00Z,\n")
    write(raw, "site_pipeline_2026-01b.csv", PIPELINE_HEADER +
          "PL-1,ST-101,S-01,anna.berg@example.org,,lost,2026-01-07T10:00:00Z,\n"   # refused: Anna's record
          "PL-9,ST-101,S-01,bert@example.org,,lost,2026-01-07T10:00:00Z,\n")      # refused: Bert's
    path = tmp_path / "small.duckdb"
    con = open_db(path)
    summary = load_folder(con, raw, KEY, after_load=derive.refresh, now=NOW)
    assert summary.rows_quarantined == 4
    con.close()
    return path


def test_quarantined_rows_of_the_person_go_with_the_person(small_store):
    report = erase(small_store, ANNA, "cli:test")
    # Anna: person, link v-anna, touchpoints we-1 and her form, lead/started/outcome and
    # PL-1, consent cs-1 and its decision, journey and path, and the refused rows we-2 and
    # PL-1 (by their ids)
    assert {t: n for t, n in report.rows.items() if n} == {
        "quarantine": 2, "journey": 1, "journey_path": 1, "consent_decision": 1, "touchpoint": 2,
        "funnel_event": 4, "consent_event": 1, "visitor_link": 1, "person": 1}
    con = open_db(small_store)
    try:
        left = [json.loads(r[0]) for r in con.execute("SELECT raw FROM quarantine ORDER BY quarantine_id").fetchall()]
        assert [(r.get("event_id"), r.get("record_id"), r.get("visitor_id")) for r in left] == [
            ("we-3", None, "v-bert"), (None, "PL-9", None)]
        assert con.execute("SELECT DISTINCT pid FROM person UNION SELECT DISTINCT pid FROM touchpoint").fetchall() == [(BERT,)]
    finally:
        con.close()
    data = file_bytes(small_store)
    for trace in (ANNA, "v-anna", "we-2", "PL-1", "R-1", "cs-1"):
        assert trace.encode() not in data, trace
    for kept in (BERT, "v-bert", "we-3", "PL-9"):
        assert kept.encode() in data, kept


def test_old_exports_loaded_again_do_not_bring_the_person_back(small_store, tmp_path):
    erase(small_store, ANNA, "cli:test")
    again = tmp_path / "again"
    again.mkdir()
    # the channels send their history again, Anna spelled differently this time
    write(again, "prescreener_2026-02.csv", PRESCREENER_HEADER +
          "R-1,2026-01-03T10:00:00Z,2026-01-03T10:05:00Z,ST-101,S-01,<ANNA.BERG@example.org>,,1990,yes,,"
          "v-anna,fb,C-FB-101-01,,,,\n"
          "R-2,2026-01-04T10:00:00Z,2026-01-04T10:05:00Z,ST-101,S-01,bert@example.org,,1960,yes,,"
          "v-bert,fb,C-FB-101-01,,,,\n")
    write(again, "consent_2026-02.jsonl", jsonl(
        consent("cs-1", "mailto:anna.berg@example.org", "tracking", "granted", "2026-01-02T08:00:00Z")))
    write(again, "site_pipeline_2026-02.csv", PIPELINE_HEADER +
          "PL-1,ST-101,S-01, Anna.Berg@example.org ,,contacted,2026-01-06T10:00:00Z,\n"
          "PL-3,ST-101,S-01,bert@example.org,,consented,2026-01-20T11:00:00Z,\n")
    con = open_db(small_store)
    try:
        summary = load_folder(con, again, KEY, after_load=derive.refresh, now=NOW)
        assert (summary.rows_read, summary.rows_accepted, summary.rows_erased, summary.rows_quarantined) == (5, 2, 3, 0)
        assert con.execute("SELECT rows_erased FROM load_run WHERE run_id = ?",
                           [summary.run_id]).fetchone()[0] == 3
        for table in ("person", "visitor_link", "touchpoint", "funnel_event", "consent_event", "journey",
                      "journey_path", "consent_decision"):
            assert con.execute(f"SELECT count(*) FROM {table} WHERE pid = ?", [ANNA]).fetchone()[0] == 0, table
        assert con.execute("SELECT stage FROM funnel_event WHERE event_id = 'pipe:PL-3'").fetchall() == [("consented",)]
        assert con.execute("SELECT count(*) FROM journey").fetchone()[0] == 1
    finally:
        con.close()


# ---------------------------------------------------------------- the command

def test_command_erases_by_email_and_prints_what_it_did(small_store, monkeypatch):
    monkeypatch.setenv("COCKPIT_SECRET_KEY", KEY_TEXT)
    size = small_store.stat().st_size
    result = CliRunner().invoke(erase_command, ["--db", str(small_store), "--email", " mailto:Anna.Berg@EXAMPLE.org",
                                                "--received", "2026-01-20", "--yes"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Erased person {ANNA}: 14 rows removed." in out
    assert "  funnel_event                4" in out and "  quarantine                  2" in out
    assert "  total                      14" in out
    assert f"File size before: {size:,} bytes" in out
    assert f"The database file {small_store} was rewritten" in out
    assert "request received 2026-01-20 00:00 UTC" in out
    con = open_db(small_store)
    try:
        assert con.execute("SELECT requested_at, requested_by LIKE 'cli:%' FROM erasure_ledger").fetchall() == [
            (datetime(2026, 1, 20), True)]
    finally:
        con.close()


def test_command_asks_first_and_a_no_changes_nothing(small_store, monkeypatch):
    before = small_store.read_bytes()
    result = CliRunner().invoke(erase_command, ["--db", str(small_store), "--pid", ANNA], input="n\n")
    assert result.exit_code == 1
    assert f"Erase person {ANNA} from {small_store}: 14 rows" in result.output
    assert "Aborted" in result.output
    assert small_store.read_bytes() == before


def test_command_not_found_and_already_erased(small_store):
    runner = CliRunner()
    unknown = runner.invoke(erase_command, ["--db", str(small_store), "--pid", "f" * 32, "--yes"])
    assert unknown.exit_code == 1
    assert "No data of person ffff" in unknown.output and "nothing was changed" in unknown.output
    assert runner.invoke(erase_command, ["--db", str(small_store), "--pid", BERT, "--yes"]).exit_code == 0
    again = runner.invoke(erase_command, ["--db", str(small_store), "--pid", BERT.upper(), "--yes"])
    assert again.exit_code == 0
    assert f"Person {BERT} was already erased on " in again.output


@pytest.mark.parametrize("args, message", [
    (["--email", "a@example.org", "--pid", "0" * 32], "give exactly one of --email, --phone, --pid (got --email, --pid)"),
    ([], "give exactly one of --email, --phone, --pid"),
    (["--pid", "not-a-pid"], "is not a person id"),
    (["--email", "no address"], "--email is not a usable e-mail address"),
    (["--phone", "12"], "--phone is not a usable phone number"),
    (["--pid", "0" * 32, "--received", "2999-01-01"], "--received 2999-01-01 is in the future"),
])
def test_command_refuses_bad_options(small_store, args, message):
    result = CliRunner().invoke(erase_command, ["--db", str(small_store), "--yes", *args])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and message in result.output


def test_command_without_a_key_does_not_make_one(small_store, monkeypatch):
    monkeypatch.delenv("COCKPIT_SECRET_KEY", raising=False)
    monkeypatch.delenv("COCKPIT_KEY_FILE", raising=False)
    monkeypatch.delenv("COCKPIT_CONFIG", raising=False)
    result = CliRunner().invoke(erase_command, ["--db", str(small_store), "--email", "anna.berg@example.org", "--yes"])
    assert result.exit_code == 2 and "No pseudonymization key" in result.output
    assert not Path(str(small_store) + ".key").exists()


def test_command_on_a_missing_store(tmp_path):
    result = CliRunner().invoke(erase_command, ["--db", str(tmp_path / "none.duckdb"), "--pid", "0" * 32])
    assert result.exit_code == 2 and "no store at" in result.output
    assert not (tmp_path / "none.duckdb").exists()


# ---------------------------------------------------------------- the demo store

CONTACT_COLUMNS = {  # export file prefix -> (e-mail column, phone column)
    "prescreener": ("email", "phone"),
    "hcp_referrals": ("patient_email", "patient_phone"),
    "screening_events": ("email", "phone"),
    "site_pipeline": ("email", "phone"),
    "consent": ("email", "phone"),
}


def export_rows(raw: Path):
    """(kind, file, header, row dict, raw line) of every export row with contacts."""
    for path in sorted(raw.rglob("*")):
        kind = next((k for k in CONTACT_COLUMNS if path.name.startswith(k + "_")), None)
        if kind is None:
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            for line in text.splitlines():
                if line.strip():
                    yield kind, path, None, json.loads(line), line
        else:
            reader = csv.DictReader(io.StringIO(text))
            for row in reader:
                yield kind, path, reader.fieldnames, row, None


@dataclass
class DemoCase:
    path: Path
    pid: str
    email: str
    other_pid: str
    before: dict[str, int]
    person_rows: dict[str, int]
    leads_before: dict[str, int]
    person_leads: dict[str, int]
    journey_others: list
    report: ErasureReport


@pytest.fixture(scope="module")
def demo_case(demo_db, demo_raw, demo_key, tmp_path_factory) -> DemoCase:
    """A copy of the demo store with one person erased: someone who filled in the
    pre-screener, has a linked web visitor, consent events and site pipeline events."""
    path = copy_store(demo_db, tmp_path_factory.mktemp("erase-demo") / "demo.duckdb")
    con = duckdb.connect(str(path), read_only=True)
    try:
        chosen = None
        for kind, _, _, row, _ in export_rows(demo_raw):
            if kind != "prescreener" or not row["email"]:
                continue
            pid = privacy.person_id(demo_key, row["email"], row["phone"])
            has = con.execute(
                "SELECT (SELECT count(*) FROM visitor_link WHERE pid = $1), "
                "(SELECT count(*) FROM consent_event WHERE pid = $1), "
                "(SELECT count(*) FROM funnel_event WHERE pid = $1 AND event_id LIKE 'pipe:%')",
                [pid]).fetchone()
            if all(has):
                chosen = (pid, row["email"])
                break
        assert chosen, "the demo has a person with a visitor, consent and pipeline events"
        pid, email = chosen
        before = table_counts(con)
        person_rows = select_person(con, pid).count(con)
        leads_before = leads(con)
        person_leads = dict(con.execute("SELECT study_id, count(*) FROM journey WHERE pid = ? GROUP BY 1",
                                        [pid]).fetchall())
        journey_others = con.execute("SELECT * FROM journey WHERE pid <> ? ORDER BY ALL", [pid]).fetchall()
        other = con.execute("SELECT pid FROM person WHERE pid <> ? ORDER BY pid LIMIT 1", [pid]).fetchone()[0]
    finally:
        con.close()
    report = erase(path, pid, "cli:test", received_at=RECEIVED)
    return DemoCase(path, pid, email, other, before, person_rows, leads_before, person_leads,
                    journey_others, report)


def test_demo_erasure_leaves_no_byte_of_the_person(demo_case):
    data = file_bytes(demo_case.path)
    assert demo_case.pid.encode() not in data
    for spelling in {demo_case.email, demo_case.email.strip().lower(), privacy.normalize_email(demo_case.email)}:
        assert spelling.encode() not in data
    assert demo_case.other_pid.encode() in data  # the search does find a pid that is there
    assert not Path(str(demo_case.path) + ".wal").exists()
    report = demo_case.report
    assert report.rewritten and report.size_after > 0 and report.size_before > 0


def test_demo_erasure_removes_exactly_the_persons_rows(demo_case):
    report = demo_case.report
    assert report.rows == demo_case.person_rows
    assert report.rows["person"] == 1 and report.rows["visitor_link"] >= 1
    con = open_db(demo_case.path)
    try:
        after = table_counts(con)
        recorded = {"erasure_ledger": 1, "subject_request": 1, "audit_log": 1,
                    "erased_visitor": report.rows["visitor_link"]}
        expected = {t: n - demo_case.person_rows.get(t, 0) + recorded.get(t, 0)
                    for t, n in demo_case.before.items()}
        assert after == expected
        assert con.execute("SELECT * FROM journey ORDER BY ALL").fetchall() == demo_case.journey_others
        assert audit.verify(con).ok
    finally:
        con.close()


def test_demo_journey_no_longer_counts_the_person(demo_case):
    con = open_db(demo_case.path)
    try:
        after = leads(con)
    finally:
        con.close()
    assert sum(demo_case.person_leads.values()) >= 1
    assert after == {s: n - demo_case.person_leads.get(s, 0) for s, n in demo_case.leads_before.items()}


def test_demo_exports_sent_again_are_counted_as_erased(demo_case, demo_raw, demo_key, tmp_path):
    """The person's rows of every demo export, sent again in new files (new bytes, so
    the loader reads them), with one row of another person that is already loaded."""
    path = copy_store(demo_case.path, tmp_path / "again.duckdb")
    folder = tmp_path / "again"
    folder.mkdir()
    files: dict[Path, list] = {}
    other_added = False
    expected_erased = 0
    for kind, source, header, row, line in export_rows(demo_raw):
        email_col, phone_col = CONTACT_COLUMNS[kind]
        pid = privacy.person_id(demo_key, row.get(email_col), row.get(phone_col))
        mine = pid == demo_case.pid
        if mine or (kind == "prescreener" and not other_added and pid):
            files.setdefault(source, [header]).append(line if line is not None else row)
            expected_erased += mine
            other_added = other_added or not mine
    for source, (header, *rows) in files.items():
        target = folder / f"{source.stem}_again{source.suffix}"
        if header is None:
            target.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        else:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            target.write_text(out.getvalue(), encoding="utf-8")
    kinds = {next(k for k in CONTACT_COLUMNS if s.name.startswith(k)) for s in files}
    assert {"prescreener", "site_pipeline", "consent"} <= kinds
    con = open_db(path)
    try:
        summary = load_folder(con, folder, demo_key, after_load=derive.refresh)
        assert summary.rows_erased == expected_erased >= 5
        assert (summary.rows_accepted, summary.rows_quarantined) == (1, 0)
        for table in ("person", "visitor_link", "touchpoint", "funnel_event", "consent_event", "journey",
                      "journey_path", "consent_decision"):
            assert con.execute(f"SELECT count(*) FROM {table} WHERE pid = ?",
                               [demo_case.pid]).fetchone()[0] == 0, table
        assert leads(con) == {s: n - demo_case.person_leads.get(s, 0) for s, n in demo_case.leads_before.items()}
    finally:
        con.close()


def test_web_and_qr_visits_of_an_erased_person_stay_out(demo_case, demo_store, demo_raw, demo_key, tmp_path):
    """Web events and QR scans carry the visitor's cookie id, not a contact: the erasure
    keeps a hash of each of the person's visitor ids, and old exports of their visits
    sent again are counted as erased, not loaded as anonymous visits."""
    visitors = {v for (v,) in demo_store.reader().execute(
        "SELECT visitor_id FROM visitor_link WHERE pid = ?", [demo_case.pid]).fetchall()}
    assert visitors
    folder = tmp_path / "visits"
    folder.mkdir()
    lines = [line for path in sorted(demo_raw.rglob("web_events_*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["visitor_id"] in visitors]
    # and an ad click of each visitor, as the site's tracking would have sent it
    lines += [json.dumps({"event_id": f"we-again-{n}", "ts": "2026-06-01T10:00:00Z", "visitor_id": v,
                          "event": "ad_click", "study_id": "ST-101",
                          "utm": {"source": "facebook", "medium": "paid_social"}})
              for n, v in enumerate(sorted(visitors))]
    tracked = sum(1 for line in lines if (json.loads(line).get("utm") or {}).get("source"))
    (folder / "web_events_again.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    path = copy_store(demo_case.path, tmp_path / "visits.duckdb")
    con = open_db(path)
    try:
        assert con.execute("SELECT count(*) FROM erased_visitor").fetchone()[0] == len(visitors)
        summary = load_folder(con, folder, demo_key, after_load=derive.refresh)
        # visits without a UTM source are not data either way; the others are the person's
        assert (summary.rows_erased, summary.rows_accepted) == (tracked, 0)
        marks = ", ".join("?" for _ in visitors)
        assert con.execute(f"SELECT count(*) FROM touchpoint WHERE visitor_id IN ({marks})",
                           list(visitors)).fetchone()[0] == 0
    finally:
        con.close()
    assert not any(v.encode() in path.read_bytes() for v in visitors)
