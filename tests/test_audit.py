"""The audit log's hash chain, checked through ``cockpit audit verify`` and listed by
``cockpit audit list``, on real store files: intact, an entry edited, one deleted in the
middle, the last one deleted, and after an erasure rewrote the file."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from cockpit import audit
from cockpit.commands.audit import audit as audit_group
from cockpit.erasure import erase
from cockpit.store import open_db
from conftest import tiny_store_file

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path) -> Path:
    """The tiny store with five audit entries: alice's rule edits 1..5, a minute apart."""
    path = tiny_store_file(tmp_path / "audit.duckdb")
    con = open_db(path)
    for n in range(1, 6):
        audit.append(con, "alice", "rule.edit", f"rule {n}", old_value={"threshold": n},
                     new_value={"threshold": n + 1}, ts=T0.replace(minute=n))
    con.close()
    return path


def run(*args: str):
    return CliRunner().invoke(audit_group, list(args))


def tamper(path: Path, sql: str) -> None:
    con = open_db(path)
    con.execute(sql)
    con.close()


def test_intact_log(store):
    result = run("verify", "--db", str(store))
    assert (result.exit_code, result.output) == (0, "Audit log intact: 5 entries\n")


def test_edited_entry_is_named(store):
    tamper(store, "UPDATE audit_log SET new_value = '{\"threshold\": 99}' WHERE entry_id = 3")
    result = run("verify", "--db", str(store))
    assert result.exit_code == 1
    assert result.output == "Audit log broken at entry 3: its fields do not match its hash (edited)\n"


def test_edit_that_recomputes_the_hash_breaks_the_next_entry(store):
    # whoever edits entry 2 and fixes its own hash still leaves entry 3 pointing at the old one
    con = open_db(store)
    row = con.execute("SELECT entry_id, ts, actor, action, target, old_value, prev_hash FROM audit_log "
                      "WHERE entry_id = 2").fetchone()
    forged = audit._digest(row[6], row[0], row[1], row[2], row[3], row[4], row[5], "{}")
    con.execute("UPDATE audit_log SET new_value = '{}', hash = ? WHERE entry_id = 2", [forged])
    con.close()
    result = run("verify", "--db", str(store))
    assert result.exit_code == 1
    assert result.output.startswith("Audit log broken at entry 3: does not follow the entry before it")


def test_deleted_middle_entry_is_named_by_its_successor(store):
    tamper(store, "DELETE FROM audit_log WHERE entry_id = 3")
    result = run("verify", "--db", str(store))
    assert result.exit_code == 1
    assert result.output == ("Audit log broken at entry 4: does not follow the entry before it "
                             "(an entry was deleted or edited)\n")


def test_deleted_last_entry_is_named(store):
    tamper(store, "DELETE FROM audit_log WHERE entry_id = 5")
    result = run("verify", "--db", str(store))
    assert result.exit_code == 1
    assert result.output == "Audit log broken at entry 5: entries after the last one were deleted\n"


def test_erasure_keeps_the_chain_and_its_guard(store):
    erase(store, "p2", "cli:dpo")
    result = run("verify", "--db", str(store))
    assert (result.exit_code, result.output) == (0, "Audit log intact: 6 entries\n")
    # the rewritten file still knows entry 6 was issued: deleting it is caught
    tamper(store, "DELETE FROM audit_log WHERE entry_id = 6")
    result = run("verify", "--db", str(store))
    assert (result.exit_code, result.output) == (
        1, "Audit log broken at entry 6: entries after the last one were deleted\n")


def test_list_json_newest_first(store):
    result = run("list", "--db", str(store), "--limit", "2", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == [
        {"entry_id": 5, "ts": "2026-03-01T09:05:00Z", "actor": "alice", "action": "rule.edit",
         "target": "rule 5", "old_value": '{"threshold": 5}', "new_value": '{"threshold": 6}'},
        {"entry_id": 4, "ts": "2026-03-01T09:04:00Z", "actor": "alice", "action": "rule.edit",
         "target": "rule 4", "old_value": '{"threshold": 4}', "new_value": '{"threshold": 5}'},
    ]


def test_list_text(store):
    result = run("list", "--db", str(store))
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 5
    assert lines[0].split() == ["5", "2026-03-01T09:05:00Z", "alice", "rule.edit", "rule", "5",
                                '{"threshold":', "5}", "->", '{"threshold":', "6}"]
    assert lines[-1].split()[0] == "1"


def test_empty_log_and_missing_store(tmp_path):
    path = tmp_path / "empty.duckdb"
    open_db(path).close()
    assert run("verify", "--db", str(path)).output == "Audit log intact: 0 entries\n"
    assert run("list", "--db", str(path)).output == "The audit log is empty.\n"
    missing = run("verify", "--db", str(tmp_path / "none.duckdb"))
    assert missing.exit_code == 2 and missing.output.startswith("Error: no store at")
    assert not (tmp_path / "none.duckdb").exists()
