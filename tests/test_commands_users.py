"""``cockpit users ...`` through click's CliRunner on the group, on a real DuckDB file
with study A (sites A1, A2) and study B (site B1)."""
from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cockpit import audit
from cockpit.auth import users as accounts
from cockpit.commands.users import cli_actor, users
from cockpit.store import open_db

PW = "a long enough password"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cli.duckdb"
    con = open_db(path)
    con.execute("""
        INSERT INTO study VALUES
          ('A', 'Atopic study', 'II', 'Dermatology', 10, '2026-01-01', '2026-12-31', 10000, 'EUR'),
          ('B', 'Bone study', 'III', 'Rheumatology', 20, '2026-01-01', '2027-06-30', 12000, 'EUR');
        INSERT INTO site VALUES ('A1', 'A', 'Berlin', 'DE', NULL, NULL),
          ('A2', 'A', 'Hamburg', 'DE', NULL, NULL), ('B1', 'B', 'Lyon', 'FR', NULL, NULL);""")
    con.close()
    return path


def run(db, *args, stdin=None):
    result = CliRunner().invoke(users, [*args, "--db", str(db)], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def state(db):
    con = open_db(db)
    try:
        return accounts.list_users(con), audit.entries(con), audit.verify(con)
    finally:
        con.close()


def test_add_with_a_generated_password_shown_once(db):
    code, out, _ = run(db, "add", "max", "--role", "manager", "--study", "A", "--study", "B")
    assert code == 0
    assert "Added max (manager; studies A, B)." in out
    password = re.search(r"^Password for max \(shown once\): (\S+)$", out, re.M).group(1)
    assert len(password) == 20
    con = open_db(db)
    assert accounts.authenticate(con, "max", password).studies == ("A", "B")
    con.close()
    listed, entries, verdict = state(db)
    assert entries[0]["action"] == "user.add" and entries[0]["actor"] == f"cli:{getpass.getuser()}"
    assert password not in json.dumps(entries, default=str) and verdict.ok


def test_add_with_password_from_stdin(db):
    code, out, _ = run(db, "add", "sam", "--role", "site", "--site", "A2", "--password-stdin", stdin=PW + "\n")
    assert code == 0 and "Password for" not in out and PW not in out
    con = open_db(db)
    assert accounts.authenticate(con, "sam", PW).sites == ("A2",)
    con.close()


@pytest.mark.parametrize("args, stdin, message", [
    (["add", "Bad Name", "--role", "admin"], None, "Invalid username"),
    (["add", "ada", "--role", "boss"], None, "Unknown role 'boss'"),
    (["add", "ada", "--role", "manager", "--study", "Z"], None, r"Unknown study id\(s\): Z"),
    (["add", "ada", "--role", "admin", "--site", "A1"], None, "Only site users are assigned sites"),
    (["add", "ada", "--role", "admin", "--password-stdin"], "short\n", "at least 12 characters"),
    (["add", "ada", "--role", "admin", "--password-stdin"], "", "standard input held no password"),
    (["set-role", "nobody", "admin"], None, "No user named 'nobody'"),
    (["disable", "nobody"], None, "No user named 'nobody'"),
])
def test_errors_exit_2(db, args, stdin, message):
    code, out, err = run(db, *args, stdin=stdin)
    assert code == 2
    assert err.startswith("Error: ") and re.search(message, err)
    assert "Password for" not in out
    assert state(db)[0] == []


def test_duplicate(db):
    assert run(db, "add", "ada", "--role", "admin")[0] == 0
    code, _, err = run(db, "add", "ada", "--role", "admin")
    assert code == 2 and "Error: A user named 'ada' already exists." in err


def test_list_table_and_json(db):
    run(db, "add", "ada", "--role", "admin")
    run(db, "add", "sam", "--role", "site", "--site", "B1")
    code, out, _ = run(db, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["username", "role", "state", "created", "(UTC)", "assignments"]
    assert lines[1].split()[:3] == ["ada", "admin", "enabled"] and lines[1].endswith("no assignment")
    assert lines[2].split()[:3] == ["sam", "site", "enabled"] and lines[2].endswith("sites B1")
    code, out, _ = run(db, "list", "--json")
    doc = json.loads(out)
    assert [{k: v for k, v in row.items() if k != "created_at"} for row in doc] == [
        {"username": "ada", "role": "admin", "disabled": False, "studies": [], "sites": []},
        {"username": "sam", "role": "site", "disabled": False, "studies": [], "sites": ["B1"]}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", doc[0]["created_at"])
    assert "scrypt" not in out


def test_list_empty(db):
    code, out, _ = run(db, "list")
    assert code == 0 and "No users yet" in out
    assert json.loads(run(db, "list", "--json")[1]) == []


def test_set_role_assign_disable_enable_set_password(db):
    run(db, "add", "max", "--role", "manager", "--study", "A")
    code, out, _ = run(db, "set-role", "max", "site", "--site", "A1")
    assert code == 0 and out.strip() == "max is now site (sites A1)."
    code, out, _ = run(db, "assign", "max", "--site", "B1")
    assert code == 0 and out.strip() == "max now has sites A1, B1."
    code, _, err = run(db, "assign", "max", "--study", "A")
    assert code == 2 and "Only managers are assigned studies" in err
    assert run(db, "disable", "max")[1].strip() == "max is disabled."
    assert run(db, "disable", "max")[1].strip() == "max was already disabled; nothing changed."
    assert run(db, "enable", "max")[1].strip() == "max is enabled."
    code, out, _ = run(db, "set-password", "max", "--password-stdin", stdin="the new long password\n")
    assert code == 0 and out.strip() == "Password of max changed."
    code, out, _ = run(db, "set-password", "max")
    generated = re.search(r"Password for max \(shown once\): (\S+)", out).group(1)
    con = open_db(db)
    assert accounts.authenticate(con, "max", "the new long password") is None
    assert accounts.authenticate(con, "max", generated).sites == ("A1", "B1")
    con.close()
    listed, entries, verdict = state(db)
    assert [e["action"] for e in reversed(entries)] == [
        "user.add", "user.role", "user.assign", "user.disable", "user.enable",
        "user.password", "user.password"]
    assert {e["actor"] for e in entries} == {cli_actor()} and verdict.ok and verdict.entries == 7


def test_set_role_without_ids_keeps_what_fits(db):
    run(db, "add", "max", "--role", "manager", "--study", "B")
    assert run(db, "set-role", "max", "manager")[1].strip() == "max is now manager (studies B)."
    assert run(db, "set-role", "max", "leadership")[1].strip() == "max is now leadership (no assignment)."


def test_a_store_held_by_another_process_is_an_error(db):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(120)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, out, err = run(db, "add", "ada", "--role", "admin")
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "in use by another process" in err and "Password for" not in out


def test_a_file_that_is_not_a_store_is_an_error(tmp_path):
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("not a database\n" * 100, encoding="utf-8")
    code, _, err = run(bogus, "list")
    assert code == 2 and err.startswith("Error: Cannot open the store")
