"""Loads that never lose or duplicate a row: killed with kill -9 at random moments, fed
files still being written, corrupt or truncated files, late corrections, a full disk,
a locked store, and readers in threads during a load. The reference everywhere is a
clean load of the same files, compared table by table."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from cockpit import derive, scheduler
from cockpit.config import FolderSource
from cockpit.filters import Filters
from cockpit.ingest import load_folder, runner
from cockpit.metrics import data, overview
from cockpit.store import Store, StoreError, open_db

from test_ingest import KEY, NOW, SETUP, consent_file, meta_rows, pipeline_file, write

ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = "kill-test-key"
LAST_MONTH = "2025-11"  # the subset: the setup and the first three months of the small demo
# Columns that say when or in which run something happened: they differ between two
# loads of the same files.
VOLATILE = {"quarantine_id", "run_id", "created_at", "loaded_at", "updated_at", "resolved_at"}
NOT_COMPARED = {"load_run", "schema_migration"}


# ---------------------------------------------------------------- shared data

@pytest.fixture(scope="module")
def subset(demo_raw, tmp_path_factory) -> Path:
    """The setup and the first months of the small demo's exports (about 30 files)."""
    out = tmp_path_factory.mktemp("subset")
    for path in demo_raw.rglob("*"):
        month = re.search(r"_(\d{4}-\d{2})\.", path.name)
        if path.is_file() and (path.name.startswith("setup_") or (month and month.group(1) <= LAST_MONTH)):
            target = out / path.relative_to(demo_raw)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return out


@pytest.fixture(scope="module")
def clean(subset, tmp_path_factory) -> Path:
    """A clean load of the subset, in one uninterrupted run."""
    path = tmp_path_factory.mktemp("clean") / "clean.duckdb"
    con = open_db(path)
    load_folder(con, subset, DEMO_KEY.encode(), after_load=derive.refresh)
    con.close()
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A migrated, empty store, copied by the tests that need a fresh one (migrating
    every time costs more than the test)."""
    path = tmp_path_factory.mktemp("template") / "empty.duckdb"
    open_db(path).close()
    return path


def new_store(template: Path, folder: Path):
    shutil.copyfile(template, folder / "s.duckdb")
    return open_db(folder / "s.duckdb")


def snapshot(path: Path) -> dict[str, list]:
    """Every row of every table but the run log, without the volatile columns, sorted."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        for table in tables:
            if table in NOT_COMPARED:
                continue
            columns = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall()]
            kept = [c for c in columns if c not in VOLATILE]
            if not kept:
                out[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()
                continue
            select = ", ".join(f'"{c}"' for c in kept)
            out[table] = sorted(con.execute(f'SELECT {select} FROM "{table}"').fetchall(), key=repr)
        return out
    finally:
        con.close()


def assert_same_store(path: Path, reference: Path, sizeable: bool = True) -> None:
    got, want = snapshot(path), snapshot(reference)
    assert set(got) == set(want)
    for needed in ("study", "site", "channel", "campaign", "creative", "segment", "qr_code", "ad_daily",
                   "offline_cost", "person", "visitor_link", "touchpoint", "funnel_event",
                   "consent_event", "journey", "quarantine", "source_file"):
        assert needed in got
    for table in sorted(want):
        assert got[table] == want[table], f"table {table} differs from the clean load"
    if sizeable:
        assert len(want["touchpoint"]) > 500 and len(want["journey"]) > 50


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COCKPIT_SECRET_KEY": DEMO_KEY, **extra}


def cockpit(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True,
                          text=True, env=cli_env(), cwd=ROOT, timeout=300, **kwargs)


# ---------------------------------------------------------------- kill -9

def _load_and_kill(db: Path, source: Path, after_lines: int | None, delay: float,
                   count_skipped: bool = False) -> str:
    """Start `cockpit load`, SIGKILL it ``delay`` seconds after the progress line of the
    ``after_lines``-th file it loads (files loaded by earlier runs are skipped and not
    counted unless ``count_skipped``; None: ``delay`` seconds after start). Returns
    what happened."""
    proc = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "load", "--db", str(db),
                             "--source", str(source)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
    seen = 0
    if after_lines is not None:
        while seen < after_lines:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line.startswith("[") and (count_skipped or not line.rstrip().endswith("already loaded, skipped"))
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    return "finished before the kill" if proc.returncode == 0 else f"killed after {seen} files"


def test_kill_9_at_random_moments_then_reload_equals_a_clean_load(subset, clean, tmp_path):
    db = tmp_path / "killed.duckdb"
    files = sum(1 for p in subset.rglob("*") if p.is_file())
    rng = random.Random(20260315)
    # During start-up (before or while the store opens), inside a file of each of three
    # runs (each run goes on where the last stopped), and after the last file, while the
    # derived tables are rebuilt. The start-up and last kills may land outside a run on
    # a fast machine; the in-file ones cannot (at most 15 of the files are loaded by then).
    moments = [(None, rng.uniform(0.1, 0.4), False)]
    moments += [(rng.randint(1, 5), rng.uniform(0.0, 0.05), False) for _ in range(3)]
    moments += [(files, rng.uniform(0.0, 0.05), True)]
    outcomes = [_load_and_kill(db, subset, *moment) for moment in moments]

    final = cockpit("load", "--db", str(db), "--source", str(subset))
    assert final.returncode == 0, final.stderr
    con = duckdb.connect(str(db), read_only=True)
    runs = con.execute("SELECT status, message FROM load_run ORDER BY run_id").fetchall()
    con.close()
    interrupted = [r for r in runs if r == ("failed", "interrupted: the process ended during the run")]
    assert len(interrupted) >= 3, (outcomes, runs)  # the in-file kills landed inside load runs
    assert runs[-1][0] == "ok" and all(status in ("ok", "failed") for status, _ in runs)
    assert_same_store(db, clean)


def test_a_run_cut_off_before_its_rebuild_is_rebuilt_by_the_next_run(tmp_path, template):
    raw = tmp_path / "raw"
    write(raw, "setup_2026-01.json", json.dumps(SETUP))
    write(raw, "site_pipeline_2026-01.csv", pipeline_file())
    write(raw, "prescreener_2026-01.csv", "response_id,started_at,completed_at,study_id,site_id,email,"
          "phone,birth_year,eligible,ineligible_reason,visitor_id,utm_source,utm_campaign,utm_content,"
          "qr_code,referral_id,signup_id\n"
          "R-1,2026-01-03T10:00:00Z,,ST-101,S-01,anna.berg@example.com,,1995,,,,,,,,,\n")
    con = new_store(template, tmp_path)

    def killed(_con):
        raise KeyboardInterrupt  # the process stops while journey is being rebuilt

    with pytest.raises(KeyboardInterrupt):
        load_folder(con, raw, KEY, now=NOW, after_load=killed)
    assert con.execute("SELECT count(*) FROM funnel_event").fetchone()[0] > 0  # the files committed
    assert con.execute("SELECT count(*) FROM journey").fetchone()[0] == 0  # ... the rebuild did not
    again = load_folder(con, raw, KEY, now=NOW, after_load=derive.refresh)
    assert (again.files_loaded, again.files_skipped) == (0, 3)
    assert con.execute("SELECT count(*) FROM journey").fetchone()[0] == 1
    rebuilt = []
    load_folder(con, raw, KEY, now=NOW, after_load=rebuilt.append)
    assert rebuilt == []  # nothing new and nothing pending: no rebuild
    con.close()


# ---------------------------------------------------------------- files being written

def test_a_file_being_written_is_deferred_not_half_read(tmp_path, template):
    raw = tmp_path / "raw"
    setup = write(raw, "setup_2026-01.json", json.dumps(SETUP))
    os.utime(setup, (time.time() - 60, time.time() - 60))  # dropped a minute ago
    lines = pipeline_file().splitlines(keepends=True)
    growing = write(raw, "site_pipeline_2026-01.csv", "".join(lines[:2]))  # header + 1 row so far
    con = new_store(template, tmp_path)

    # scanned while being written: too young, left alone (no rows, no quarantine)
    first = load_folder(con, raw, KEY, now=NOW, settle_seconds=2)
    assert [(f.path, f.status) for f in first.files] == [
        ("setup_2026-01.json", "loaded"), ("site_pipeline_2026-01.csv", "deferred")]
    assert "modified" in first.files[1].message and "unchanged for 2 s" in first.files[1].message
    assert con.execute("SELECT count(*) FROM funnel_event").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0

    # it grows while it is being loaded: the load is rolled back, the file deferred
    original = runner._load_content

    def append_during_load(ctx, found, text):
        counts = original(ctx, found, text)
        with growing.open("a", encoding="utf-8") as fh:
            fh.write(lines[2])
        return counts

    runner._load_content = append_during_load
    try:
        second = load_folder(con, raw, KEY, now=NOW)
    finally:
        runner._load_content = original
    assert second.files[-1].status == "deferred"
    assert second.files[-1].message == "the file changed while it was loaded; it loads next run"
    assert con.execute("SELECT count(*) FROM funnel_event").fetchone()[0] == 0

    # written completely and settled: loaded whole
    growing.write_text("".join(lines), encoding="utf-8")
    settled = time.time() - 10
    os.utime(growing, (settled, settled))
    third = load_folder(con, raw, KEY, now=NOW, settle_seconds=2)
    assert (third.files[-1].status, third.files[-1].read) == ("loaded", len(lines) - 1)
    assert con.execute("SELECT count(*) FROM funnel_event").fetchone()[0] == 2
    con.close()


def test_the_scheduler_waits_for_a_fresh_file_to_settle(tmp_path):
    raw = tmp_path / "raw"
    setup = write(raw, "setup_2026-01.json", json.dumps(SETUP))
    folder = FolderSource(name="drop", path=raw)
    assert folder.settle_seconds == 2  # the scheduler's default; `cockpit load` uses 0
    with Store(tmp_path / "s.duckdb") as store:
        scheduler.load_job(store, folder, KEY)
        assert store.reader().execute("SELECT count(*) FROM study").fetchone()[0] == 0
        os.utime(setup, (time.time() - 5, time.time() - 5))
        scheduler.load_job(store, folder, KEY)
        assert store.reader().execute("SELECT count(*) FROM study").fetchone()[0] == 2
        runs = store.reader().execute("SELECT files_deferred, files_loaded FROM load_run "
                                      "ORDER BY run_id").fetchall()
        assert runs == [(1, 0), (0, 1)]


# ---------------------------------------------------------------- corrupt and truncated files

def test_corrupt_and_truncated_files_are_quarantined_whole_and_block_nothing(tmp_path, template):
    raw = tmp_path / "raw"
    setup = json.dumps(SETUP)
    write(raw, "setup_2026-01.json", setup)
    write(raw, "setup_2026-02.json", setup[: len(setup) // 2])  # cut off mid-way
    write(raw, "meta_ads_2026-01.csv", b"\x1f\x8b\x08\x00\xa3\x9b\x17\x66\x00\x03\xcb\x48")  # gzip bytes
    write(raw, "offline_costs_2026-01.csv", "cost_id,date,chan")  # cut inside the header
    write(raw, "site_pipeline_2026-01.csv", "")  # an empty export
    write(raw, "consent_2026-01.jsonl", consent_file()[:-40])  # the last line cut off
    write(raw, "meta_ads_2026-02.csv",
          meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20"))
    con = new_store(template, tmp_path)
    summary = load_folder(con, raw, KEY, now=NOW)
    assert summary.status == "ok"
    assert {f.path: f.status for f in summary.files} == {
        "setup_2026-01.json": "loaded", "setup_2026-02.json": "rejected",
        "meta_ads_2026-01.csv": "rejected", "meta_ads_2026-02.csv": "loaded",
        "offline_costs_2026-01.csv": "rejected", "consent_2026-01.jsonl": "loaded",
        "site_pipeline_2026-01.csv": "rejected"}
    whole = con.execute("SELECT file, reason FROM quarantine WHERE row_number = 0 ORDER BY file").fetchall()
    assert [f for f, _ in whole] == ["meta_ads_2026-01.csv", "offline_costs_2026-01.csv",
                                     "setup_2026-02.json", "site_pipeline_2026-01.csv"]
    reasons = dict(whole)
    assert reasons["meta_ads_2026-01.csv"].startswith("file is not UTF-8 (byte 0x8b at offset 1")
    assert reasons["offline_costs_2026-01.csv"] == "header is missing required columns: 'channel', 'amount'"
    assert reasons["setup_2026-02.json"].startswith("setup is not valid JSON")
    assert reasons["site_pipeline_2026-01.csv"] == "file is empty"
    # the truncated JSON line is refused alone; the rest of that file and the good file load
    assert con.execute("SELECT row_number, reason FROM quarantine WHERE file = 'consent_2026-01.jsonl' "
                       "AND reason LIKE 'malformed JSON%'").fetchall()[0][0] == 5
    assert con.execute("SELECT count(*) FROM ad_daily").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM consent_event").fetchone()[0] == 2
    con.close()


# ---------------------------------------------------------------- ten kinds of bad rows

PRESCREENER = ("response_id,started_at,completed_at,study_id,site_id,email,phone,birth_year,eligible,"
               "ineligible_reason,visitor_id,utm_source,utm_campaign,utm_content,qr_code,referral_id,"
               "signup_id\n")
GOOD_AD = "2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20"
BAD_ROWS = [
    ("missing field", "site_pipeline_2026-01.csv",
     "record_id,study_id,site_id,email,phone,status,status_at,reason\n"
     "P-1,ST-101,S-01,a@example.org,,,2026-01-05T10:00:00Z,\n",
     (1, "status", "missing field 'status'")),
    ("wrong type", "meta_ads_2026-01.csv",
     meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,many,20"),
     (1, "Impressions", "impressions is not an integer ('many')")),
    ("negative spend", "meta_ads_2026-01.csv",
     meta_rows("2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,-3.20,1000,20"),
     (1, "Amount spent (EUR)", "spend is negative (-3.20)")),
    ("unknown channel", "prescreener_2026-01.csv",
     PRESCREENER + "R-1,2026-01-03T10:00:00Z,,ST-101,S-01,a@example.org,,1990,,,v-1,tiktok,,,,,\n",
     (1, "utm_source", "unknown channel 'tiktok' in utm_source")),
    ("date in the future", "meta_ads_2026-01.csv",
     meta_rows("2026-04-01,ST101 | Awareness | FB,ST101 video 15s,facebook,1,10,1"),
     (1, "Day", "date 2026-04-01 is in the future")),
    ("duplicate id", "offline_costs_2026-01.csv",
     "cost_id,date,channel,campaign_id,study_id,site_id,amount,currency,description\n"
     "OC-1,2026-01-10,paper_brochure,,ST-101,,10,EUR,Print\n"
     "OC-1,2026-01-11,paper_brochure,,ST-101,,12,EUR,Print\n",
     (2, "cost_id", "duplicate cost_id 'OC-1' in this file")),
    ("malformed JSON line", "web_events_2026-01.jsonl",
     '{"event_id": "we-1", "ts": "2026-01-03T09:00:00Z" "visitor_id": "v-1"}\n',
     (1, None, "malformed JSON: Expecting ',' delimiter at column 51")),
    ("wrong encoding", "offline_costs_2026-01.csv",
     ("cost_id,date,channel,campaign_id,study_id,site_id,amount,currency,description\n"
      "OC-1,2026-01-10,paper_brochure,,ST-101,,10,EUR,Broschüren\n").encode("latin-1"),
     (0, None, "file is not UTF-8 (byte 0xfc at offset 131 is not valid UTF-8)")),
    ("unknown QR code", "qr_scans_2026-01.csv",
     "scan_id,scanned_at,code,visitor_id\nQS-1,2026-01-04T08:00:00Z,QR-NOPE,v-2\n",
     (1, "code", "unknown QR code 'QR-NOPE'")),
    ("consent without purpose", "consent_2026-01.jsonl",
     json.dumps({"consent_id": "cs-1", "ts": "2026-01-03T10:00:00Z", "email": "a@example.org",
                 "action": "granted", "channel": "facebook", "notice_version": "2025-03"}) + "\n",
     (1, "purpose", "missing field 'purpose'")),
]


@pytest.mark.parametrize("name, file, content, expected", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_each_kind_of_bad_row_gets_its_message(tmp_path, name, file, content, expected, template):
    raw = tmp_path / "raw"
    write(raw, "setup_2026-01.json", json.dumps(SETUP))
    write(raw, file, content)
    con = new_store(template, tmp_path)
    summary = load_folder(con, raw, KEY, now=NOW)
    assert summary.status == "ok"
    assert con.execute("SELECT row_number, field, reason FROM quarantine WHERE file = ?",
                       [file]).fetchall() == [expected]
    # nothing of the refused row reached a fact table
    facts = con.execute("SELECT (SELECT count(*) FROM ad_daily) + (SELECT count(*) FROM offline_cost) "
                        "+ (SELECT count(*) FROM touchpoint) + (SELECT count(*) FROM funnel_event) "
                        "+ (SELECT count(*) FROM consent_event)").fetchone()[0]
    assert facts == (1 if name == "duplicate id" else 0)
    con.close()


# ---------------------------------------------------------------- late corrections

def test_late_corrections_update_and_never_duplicate(tmp_path, template):
    raw = tmp_path / "raw"
    write(raw, "setup_2026-01.json", json.dumps(SETUP))
    write(raw, "meta_ads_2026-01.csv", meta_rows(GOOD_AD))
    write(raw, "site_pipeline_2026-01.csv", pipeline_file())
    write(raw, "offline_costs_2026-01.csv",
          "cost_id,date,channel,campaign_id,study_id,site_id,amount,currency,description\n"
          "OC-1,2026-01-10,paper_brochure,,ST-101,,10,EUR,Print\n")
    con = new_store(template, tmp_path)
    load_folder(con, raw, KEY, now=NOW)
    counts = "SELECT (SELECT count(*) FROM ad_daily), (SELECT count(*) FROM funnel_event), " \
             "(SELECT count(*) FROM offline_cost)"
    before = con.execute(counts).fetchone()
    # the same records re-exported with new values, in new files
    write(raw, "meta_ads_2026-01_v2.csv", meta_rows(GOOD_AD.replace("12.50,1000,20", "14.00,1100,21")))
    write(raw, "site_pipeline_2026-02.csv", "record_id,study_id,site_id,email,phone,status,status_at,reason\n"
          "P-1,ST-101,S-01,anna.berg@example.com,,randomized,2026-02-01T10:00:00Z,\n")
    write(raw, "offline_costs_2026-02.csv",
          "cost_id,date,channel,campaign_id,study_id,site_id,amount,currency,description\n"
          "OC-1,2026-01-10,paper_brochure,,ST-101,,12.5,EUR,Print (corrected)\n")
    load_folder(con, raw, KEY, now=NOW)
    assert con.execute(counts).fetchone() == before
    assert con.execute("SELECT spend, impressions, clicks FROM ad_daily").fetchall() == [(14.0, 1100, 21)]
    assert con.execute("SELECT stage FROM funnel_event WHERE event_id = 'pipe:P-1'").fetchall() == \
        [("randomized",)]
    assert con.execute("SELECT amount, description FROM offline_cost").fetchall() == \
        [(12.5, "Print (corrected)")]
    con.close()


# ---------------------------------------------------------------- a full disk, a locked store

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (mounting needs root), or None where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave_bytes`` free."""
    stat = os.statvfs(folder)
    filler = folder / "filler"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave_bytes, 0))
    return filler


def test_a_full_disk_gives_a_clear_error_and_loses_nothing(subset, clean, small_disk, tmp_path, monkeypatch):
    if small_disk is None:
        # No tmpfs here (not root, or no CAP_SYS_ADMIN): the store's write fails with the
        # error DuckDB gives on a full disk, raised inside the writer of one file.
        db = tmp_path / "s.duckdb"
        spec = runner.TABLE_SPECS["web_events"]

        def disk_full(ctx):
            spec.write(ctx)
            raise duckdb.IOException('Could not write file "s.duckdb.wal": No space left on device')

        monkeypatch.setitem(runner.TABLE_SPECS, "web_events", dataclasses.replace(spec, write=disk_full))
        con = open_db(db)
        with pytest.raises(StoreError) as caught:
            load_folder(con, subset, DEMO_KEY.encode(), after_load=derive.refresh)
        con.close()
        message = str(caught.value)
        monkeypatch.setitem(runner.TABLE_SPECS, "web_events", spec)
    else:
        db = small_disk / "s.duckdb"
        open_db(db).close()  # the store exists; then the disk fills up
        filler = _fill(small_disk, leave_bytes=120_000)
        result = cockpit("load", "--db", str(db), "--source", str(subset))
        assert result.returncode == 2, result.stdout + result.stderr
        message = result.stderr
        filler.unlink()  # space freed
    assert "No space left on device" in message
    assert "The disk holding the store is full. Free space and run the load again" in message
    con = open_db(db)
    again = load_folder(con, subset, DEMO_KEY.encode(), after_load=derive.refresh)
    con.close()
    assert again.files_skipped > 0 and again.files_loaded > 0  # committed files were kept
    assert_same_store(db, clean)


def test_a_locked_store_gives_a_clear_error_and_loses_nothing(subset, tmp_path):
    drop = tmp_path / "drop"
    for path in [*subset.rglob("setup_*.json"), *subset.rglob("*_2025-10.csv")]:
        target = drop / path.relative_to(subset)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    db = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cockpit.store import Store; "
         f"s = Store({str(db)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"  # a serving process owns the store
        result = cockpit("load", "--db", str(db), "--source", str(drop))
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert result.returncode == 2
    assert "is in use by another process" in result.stderr and "Stop that process" in result.stderr
    assert len(list(drop.rglob("*.csv"))) > 3  # the exports are where they were
    con = open_db(db)
    assert con.execute("SELECT count(*) FROM load_run").fetchone()[0] == 0  # nothing half-done
    load_folder(con, drop, DEMO_KEY.encode(), after_load=derive.refresh)
    con.close()
    reference = open_db(tmp_path / "reference.duckdb")
    load_folder(reference, drop, DEMO_KEY.encode(), after_load=derive.refresh)
    reference.close()
    assert_same_store(db, tmp_path / "reference.duckdb", sizeable=False)


# ---------------------------------------------------------------- readers during a load

# In one statement (one snapshot): files are never half visible. Every ad row belongs to
# a file recorded as loaded, and every loaded ad file shows exactly its accepted rows.
_HALF_FILES = """
SELECT (SELECT count(*) FROM ad_daily WHERE source_file NOT IN (SELECT path FROM source_file))
     + (SELECT count(*) FROM touchpoint WHERE source_file NOT IN (SELECT path FROM source_file))
     + (SELECT count(*) FROM source_file f
        LEFT JOIN (SELECT source_file, count(*) AS n FROM ad_daily GROUP BY 1) a ON a.source_file = f.path
        WHERE f.kind IN ('meta_ads', 'google_ads', 'linkedin_ads') AND f.status = 'loaded'
          AND coalesce(a.n, 0) <> f.rows_accepted)
"""


def test_pages_queried_from_threads_during_a_load_are_consistent(subset, clean, tmp_path):
    done = threading.Event()
    errors: list[BaseException] = []
    seen: dict[int, list] = {}

    def reader(number: int, store: Store) -> None:
        seen[number] = []
        try:
            while not done.is_set():
                con = store.reader()
                assert con.execute(_HALF_FILES).fetchone()[0] == 0
                kpis = overview.kpis(con, Filters())
                data.freshness(con)
                data.load_runs(con)
                # several queries in one read transaction see one snapshot
                con.execute("BEGIN TRANSACTION")
                first = con.execute("SELECT count(*), sum(spend) FROM ad_daily").fetchone()
                time.sleep(0.01)
                second = con.execute("SELECT count(*), sum(spend) FROM ad_daily").fetchone()
                con.execute("COMMIT")
                assert first == second
                seen[number].append((kpis["leads"], first[0]))
                time.sleep(0.05)  # a user between two clicks
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with Store(tmp_path / "s.duckdb") as store:
        threads = [threading.Thread(target=reader, args=(n, store)) for n in range(2)]
        for t in threads:
            t.start()
        try:
            summary = store.write_sync(lambda con: load_folder(con, subset, DEMO_KEY.encode(),
                                                               after_load=derive.refresh))
        finally:
            done.set()
            for t in threads:
                t.join(30)
        assert errors == []
        assert summary.files_loaded > 20
        # readers saw the load progress (ad rows only grow here), in many snapshots
        for rows in seen.values():
            assert len(rows) >= 3
            ad_rows = [r[1] for r in rows]
            assert ad_rows == sorted(ad_rows) and len(set(ad_rows)) > 1
        final = overview.kpis(store.reader(), Filters())
    reference = duckdb.connect(str(clean), read_only=True)
    assert final == overview.kpis(reference, Filters())
    reference.close()
    assert_same_store(tmp_path / "s.duckdb", clean)
