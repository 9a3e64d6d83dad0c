"""The command line as other tools call it: exit codes, summaries, JSON contracts."""
import json
import subprocess
import sys

import duckdb

from cockpit.store import open_db


def cockpit(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_every_command_has_help():
    for command in ("generate", "load", "serve", "demo", "abtest", "users", "erase", "subject-access", "audit"):
        result = cockpit(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command


def test_generate_is_deterministic_for_a_seed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cockpit("generate", "--out", str(a), "--seed", "3").returncode == 0
    assert cockpit("generate", "--out", str(b), "--seed", "3").returncode == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def test_load_prints_a_summary_and_loads_each_file_once(tmp_path, demo_raw):
    env = {**__import__("os").environ, "COCKPIT_SECRET_KEY": "cli-test"}
    db = tmp_path / "c.duckdb"
    first = cockpit("load", "--db", str(db), "--source", str(demo_raw), env=env)
    assert first.returncode == 0, first.stderr
    files = sum(1 for p in demo_raw.rglob("*") if p.name != "ground_truth.json" and p.is_file())
    assert f"{files} files seen, {files} loaded" in first.stdout
    assert "0 quarantined" in first.stdout
    assert f"[{files}/{files}]" in first.stderr  # progress per file
    again = cockpit("load", "--db", str(db), "--source", str(demo_raw), env=env)
    assert again.returncode == 0 and f"0 loaded, {files} already loaded" in again.stdout
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM load_run WHERE status = 'ok'").fetchone()[0] == 2


def test_load_into_a_locked_store_fails_clearly_and_changes_nothing(tmp_path, demo_raw):
    db = tmp_path / "locked.duckdb"
    open_db(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = cockpit("load", "--db", str(db), "--source", str(demo_raw))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    assert "in use by another process" in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM load_run").fetchone()[0] == 0


def test_load_from_a_missing_folder_fails_clearly(tmp_path):
    result = cockpit("load", "--db", str(tmp_path / "x.duckdb"), "--source", str(tmp_path / "nope"))
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_abtest_json_contract(tmp_path):
    path = tmp_path / "ab.csv"
    path.write_text("arm,users,conversions\ntext,1000,100\nvideo,1000,130\n")
    result = cockpit("abtest", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [a["arm"] for a in report["arms"]] == ["text", "video"]
    video = report["arms"][1]
    for key in ("diff", "diff_ci", "rel_lift", "p_value", "p_fisher", "p_adjusted", "chance_to_beat_control"):
        assert key in video
    assert video["diff"] == 0.03 or abs(video["diff"] - 0.03) < 1e-12
    assert {"chi2_p", "srm_p", "verdict"} <= set(report)


def test_abtest_bad_input_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("arm,users,conversions\ntext,1000,100\nvideo,10,30\n")
    result = cockpit("abtest", str(path), "--json")
    assert result.returncode != 0
    assert "row 2" in result.stderr and "conversions" in result.stderr


def test_demo_users_get_generated_passwords_printed_once(tmp_path, demo_db, capsys):
    import re
    import shutil

    from cockpit.auth import users
    from cockpit.cli import _demo_users

    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_db, db)
    _demo_users(db)
    printed = capsys.readouterr().out
    found = dict(re.findall(r"^  (\w+)\s+\w+\s+(\S+)$", printed, re.M))
    assert sorted(found) == ["admin", "leadership", "manager", "site"]
    assert len(set(found.values())) == 4 and all(len(p) >= 12 for p in found.values())
    con = open_db(db)
    try:
        for username, password in found.items():
            assert users.authenticate(con, username, password).role == username
        assert users.authenticate(con, "admin", "admin") is None
        assert users.principal(con, "site").sites and users.principal(con, "manager").studies
    finally:
        con.close()
    _demo_users(db)  # a second start prints no password
    again = capsys.readouterr().out
    assert not any(p in again for p in found.values()) and "existing user" in again
