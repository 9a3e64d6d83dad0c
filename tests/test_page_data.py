"""The Data page: load runs, freshness and stale flags per source, the quarantine with
its reasons, and re-processing once a file (or the setup it refers to) is fixed; the
numbers without a browser first, then the page in headless Chromium."""
from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from browser import click, grid_column, read_download, start_signed_in, text_of, wait_until
from cockpit import context, scheduler
from cockpit.config import FolderSource, SqlSource
from cockpit.ingest import load_folder
from cockpit.ingest.sources import register_sources
from cockpit.metrics import data
from cockpit.store import Store, open_db

from conftest import add_admin
from test_ingest import KEY, NOW, SETUP, meta_rows, write

BAD_SPEND = "2026-01-02,ST101 | Awareness | FB,ST101 video 15s,facebook,-12.50,800,8"
GOOD_DAY = "2026-01-01,ST101 | Awareness | FB,ST101 video 15s,facebook,12.50,1000,20"
QR_FILE = "scan_id,scanned_at,code,visitor_id\nQS-1,2026-01-04T08:00:00Z,QR-NEW,v-2\n"


def drop_folder(folder: Path) -> Path:
    raw = folder / "raw"
    write(raw, "setup_2026-01.json", json.dumps(SETUP))
    write(raw, "meta_ads_2026-01.csv", meta_rows(GOOD_DAY, BAD_SPEND))
    return raw


def open_entries(con) -> list[tuple]:
    frame = data.quarantine(con)
    return list(zip(frame["file"], frame["row"], frame["field"], frame["reason"]))


# ---------------------------------------------------------------- without a browser

def test_freshness_flags_sources_without_new_data_in_their_window(tmp_path):
    raw = drop_folder(tmp_path)
    con = open_db(tmp_path / "s.duckdb")
    drop = FolderSource(name="drop", path=raw, stale_after_hours=6)
    crm = SqlSource(name="crm", url_env="CRM_URL", table="t", kind="site_pipeline", watermark="w")
    register_sources(con, [drop, crm])
    load_folder(con, raw, KEY, now=NOW)
    loaded = con.execute("SELECT max(loaded_at) FROM source_file").fetchone()[0]
    load_folder(con, raw, KEY, now=NOW)  # a run that finds nothing new

    soon = data.freshness(con, now=loaded + timedelta(hours=5)).set_index("source")
    assert list(soon.index) == ["crm", "drop"]
    assert soon.loc["drop", "type"] == "folder" and soon.loc["drop", "location"] == str(raw.resolve())
    assert soon.loc["drop", "last_new_data_at"] == loaded.replace(microsecond=0)  # not the empty run
    assert (soon.loc["drop", "hours_since_new_data"], soon.loc["drop", "stale_after_hours"]) == (5.0, 6.0)
    assert not soon.loc["drop", "stale"] and soon.loc["drop", "last_run_status"] == "ok"
    # configured, never loaded: stale, with the default window
    assert soon.loc["crm", "stale"] and soon.loc["crm", "stale_after_hours"] == 48.0
    later = data.freshness(con, now=loaded + timedelta(hours=7)).set_index("source")
    assert later.loc["drop", "stale"]

    runs = data.load_runs(con, include_idle=True)
    assert list(runs.columns) == data.RUN_COLUMNS
    assert runs[["run_id", "source", "status", "files_seen", "files_loaded", "files_skipped",
                 "rows_read", "rows_accepted", "rows_quarantined"]].values.tolist() == [
        [2, "drop", "ok", 2, 0, 2, 0, 0, 0], [1, "drop", "ok", 2, 2, 0, 25, 24, 1]]
    # the scan that found nothing new is left out unless asked for
    assert data.load_runs(con)["run_id"].tolist() == [1] and data.idle_runs(con) == 1
    con.close()


def test_a_fixed_file_dropped_again_under_its_name_resolves_its_entries(tmp_path):
    raw = drop_folder(tmp_path)
    con = open_db(tmp_path / "s.duckdb")
    load_folder(con, raw, KEY, now=NOW)
    assert open_entries(con) == [("meta_ads_2026-01.csv", 2, "Amount spent (EUR)",
                                  "spend is negative (-12.50)")]
    assert data.quarantine_count(con) == 1
    write(raw, "meta_ads_2026-01.csv", meta_rows(GOOD_DAY, BAD_SPEND.replace("-12.50", "12.50")))
    fixed = load_folder(con, raw, KEY, now=NOW)
    assert fixed.files_loaded == 1
    assert open_entries(con) == [] and data.quarantine_count(con) == 0
    everything = data.quarantine(con, include_resolved=True)
    assert everything["resolved_by_run"].tolist() == [fixed.run_id]
    assert con.execute("SELECT count(*) FROM ad_daily").fetchone()[0] == 2  # the fixed row, once
    con.close()


def test_retry_reads_a_file_again_once_the_setup_knows_its_codes(tmp_path):
    raw = drop_folder(tmp_path)
    write(raw, "qr_scans_2026-01.csv", QR_FILE)
    with Store(tmp_path / "s.duckdb") as store:
        before = scheduler.plan()
        scheduler.configure(store, [FolderSource(name="drop", path=raw)], KEY)
        try:
            scheduler.run_now()
            con = store.reader()
            assert ("qr_scans_2026-01.csv", 1, "code", "unknown QR code 'QR-NEW'") in open_entries(con)
            # the setup is fixed; the scan file's bytes are the same, so a plain run skips it
            setup = dict(SETUP, qr_codes=SETUP["qr_codes"] + [
                {"code": "QR-NEW", "channel_id": "paper_brochure", "campaign_id": "C-PB-101-01",
                 "site_id": "S-01"}])
            write(raw, "setup_2026-02.json", json.dumps(setup))
            [(_, plain, _)] = scheduler.run_now()
            assert plain.files_skipped == 3
            assert ("qr_scans_2026-01.csv", 1, "code", "unknown QR code 'QR-NEW'") in open_entries(con)
            [(_, retried, error)] = scheduler.run_now(retry_quarantined=True)
            assert error is None and retried.files_loaded == 2  # the scans and the ad export
            assert [e[0] for e in open_entries(con)] == ["meta_ads_2026-01.csv"]  # still wrong
            assert con.execute("SELECT touch_id, channel_id FROM touchpoint").fetchall() == [
                ("qr:QS-1", "paper_brochure")]
        finally:
            scheduler._plan = before


def test_load_now_starts_the_warm_up_in_the_background(tmp_path):
    import threading

    from cockpit import cache
    from cockpit.filters import UNLIMITED, Filters
    from cockpit.metrics import overview

    raw = drop_folder(tmp_path)
    with Store(tmp_path / "s.duckdb") as store:
        before = scheduler.plan()
        scheduler.configure(store, [FolderSource(name="drop", path=raw)], KEY)
        try:
            [(_, summary, _)] = scheduler.run_now()
            assert summary.rows_accepted > 0
            for thread in threading.enumerate():
                if thread.name == "cockpit-warm":
                    thread.join(60)
            assert cache.is_cached(store, overview.snapshot, Filters(scope=UNLIMITED))
        finally:
            scheduler._plan = before


# ---------------------------------------------------------------- in the browser

@pytest.fixture
def data_app(tmp_path):
    """The cockpit on a store holding a quarantined row, loading its drop folder on demand."""
    os.environ.setdefault("COCKPIT_SECRET_KEY", "test-key-for-the-demo-store")
    from app import create_app

    raw = drop_folder(tmp_path)
    store = Store(tmp_path / "data.duckdb")
    store.write_sync(lambda con: load_folder(con, raw, KEY))
    previous_store, previous_plan = context._store, scheduler.plan()
    scheduler.configure(store, [FolderSource(name="drop", path=raw, stale_after_hours=24)], KEY)
    app = create_app(store)
    yield app, store, raw, add_admin(store)
    context.set_store(previous_store)  # other tests share the one Dash app
    scheduler._plan = previous_plan
    store.close()


def test_data_page_shows_quarantine_exports_it_and_reprocesses_a_fixed_file(dash_duo, data_app):
    app, store, raw, admin = data_app
    start_signed_in(dash_duo, app, admin)
    dash_duo.driver.get(dash_duo.server_url + "/data")
    reason = "spend is negative (-12.50)"
    wait_until(lambda: grid_column(dash_duo, "data-quarantine", "reason") == [reason],
               "the quarantined row in the table")
    assert grid_column(dash_duo, "data-quarantine", "file") == ["meta_ads_2026-01.csv"]
    assert grid_column(dash_duo, "data-quarantine", "row") == ["2"]
    assert text_of(dash_duo, "data-quarantine-note") == "1 open entries."
    wait_until(lambda: grid_column(dash_duo, "data-sources", "source") == ["drop"], "the source")
    assert grid_column(dash_duo, "data-sources", "stale") == ["fresh"]
    assert grid_column(dash_duo, "data-runs", "rows_quarantined") == ["1"]

    click(dash_duo, "#data-quarantine-export")
    exported = read_download(dash_duo, "quarantine_open.csv")
    shown = data.quarantine(store.reader())
    assert list(exported[0]) == list(shown.columns) == data.QUARANTINE_COLUMNS
    assert [(r["file"], r["row"], r["field"], r["reason"], r["raw"]) for r in exported] == [
        (f, str(n), fld, why, raw_json) for f, n, fld, why, raw_json in
        zip(shown["file"], shown["row"], shown["field"], shown["reason"], shown["raw"])]

    # the fixed export dropped again under its name, then re-processed from the page
    write(raw, "meta_ads_2026-01.csv", meta_rows(GOOD_DAY, BAD_SPEND.replace("-12.50", "12.50")))
    click(dash_duo, "#data-retry")
    wait_until(lambda: "Re-processed" in dash_duo.find_element("#data-retry-status").text,
               "the re-processing to finish")
    wait_until(lambda: grid_column(dash_duo, "data-quarantine", "reason") == [], "an empty quarantine")
    assert text_of(dash_duo, "data-quarantine-note", not_in=("", "1 open entries.")) == "0 open entries."
    assert store.reader().execute("SELECT count(*) FROM ad_daily").fetchone()[0] == 2
    assert dash_duo.get_logs() == []


def test_load_retry_quarantined_on_the_command_line(tmp_path):
    import subprocess
    import sys

    raw = drop_folder(tmp_path)
    write(raw, "qr_scans_2026-01.csv", QR_FILE)
    db = tmp_path / "s.duckdb"
    env = {**os.environ, "COCKPIT_SECRET_KEY": "cli"}

    def load(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cockpit.cli", "load", "--db", str(db),
                               "--source", str(raw), *extra], capture_output=True, text=True,
                              env=env, cwd=Path(__file__).resolve().parents[1], timeout=300)

    assert load().returncode == 0
    setup = dict(SETUP, qr_codes=SETUP["qr_codes"] + [
        {"code": "QR-NEW", "channel_id": "paper_brochure", "campaign_id": "C-PB-101-01"}])
    write(raw, "setup_2026-02.json", json.dumps(setup))
    retried = load("--retry-quarantined")
    assert retried.returncode == 0, retried.stderr
    assert "qr_scans_2026-01.csv: 1 rows (1 accepted, 0 quarantined)" in retried.stderr
    con = open_db(db)
    assert open_entries(con) == [("meta_ads_2026-01.csv", 2, "Amount spent (EUR)",
                                  "spend is negative (-12.50)")]
    con.close()
