"""The SQL source against a real SQLite file and a real PostgreSQL server started here
(tests/pg.py): incremental runs by watermark, late corrections, the same validation,
quarantine and pseudonymization as the file loaders, and clear errors that lose nothing."""
from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from cockpit.ingest import load_folder, runner
from cockpit.ingest.sql_source import SourceError, SqlTable, load_sql_source
from cockpit.store import StoreError, open_db

from pg import PostgresServer, free_port
from test_ingest import ANNA, BERT, KEY, NOW, SETUP, expected_pid

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=timezone.utc)
MAPPING = {"record_id": "id", "study_id": "study", "site_id": "site", "status_at": "changed_at"}
STATUS_MESSAGE = ("status 'lost' is not one of contacted, not_reachable, consented, declined, "
                  "screened, screen_failed, randomized, withdrew")

_meta = sa.MetaData()
PIPELINE = sa.Table(
    "crm_pipeline", _meta,
    sa.Column("id", sa.String(20), primary_key=True),
    sa.Column("study", sa.String(20)), sa.Column("site", sa.String(20)),
    sa.Column("email", sa.String(100)), sa.Column("phone", sa.String(40)),
    sa.Column("status", sa.String(40)), sa.Column("changed_at", sa.String(40)),
    sa.Column("reason", sa.String(100)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)


# ---------------------------------------------------------------- the two databases

@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def crm(request, tmp_path):
    """A CRM database with an empty pipeline table: SQLite file or PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").url
    engine = sa.create_engine(url)
    _meta.drop_all(engine)
    _meta.create_all(engine)
    yield engine
    engine.dispose()


def put(engine: sa.Engine, *rows: dict) -> None:
    """Insert or replace rows of the pipeline table (a CRM saving its records)."""
    with engine.begin() as conn:
        for row in rows:
            conn.execute(PIPELINE.delete().where(PIPELINE.c.id == row["id"]))
            conn.execute(PIPELINE.insert().values(**row))


def record(rid: str, status: str, minutes: int, email: str | None = None, phone: str | None = None,
           reason: str | None = None, site: str = "S-01") -> dict:
    return {"id": rid, "study": "ST-101", "site": site, "email": email, "phone": phone,
            "status": status, "changed_at": "2026-01-05T10:00:00Z", "reason": reason,
            "updated_at": T0 + timedelta(minutes=minutes)}


def source(engine: sa.Engine, **changes) -> SqlTable:
    base = SqlTable(name="crm", url=engine.url.render_as_string(hide_password=False),
                    table="crm_pipeline", kind="site_pipeline", watermark="updated_at",
                    columns=MAPPING)
    return dataclasses.replace(base, **changes)


def new_store(folder: Path, name: str = "store"):
    """A store with the trial setup loaded from a file."""
    raw = folder / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "setup_2026-01.json").write_text(json.dumps(SETUP), encoding="utf-8")
    con = open_db(folder / f"{name}.duckdb")
    load_folder(con, raw, KEY, now=NOW)
    return con


@pytest.fixture
def store(tmp_path):
    con = new_store(tmp_path)
    yield con
    con.close()


def rows(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def open_quarantine(con) -> list[tuple]:
    return rows(con, "SELECT file, field, reason, json_extract_string(raw, '$.record_id') "
                     "FROM quarantine q WHERE quarantine_id NOT IN "
                     "(SELECT quarantine_id FROM quarantine_resolution) ORDER BY quarantine_id")


def load(con, src: SqlTable, **kwargs):
    return load_sql_source(con, src, KEY, now=NOW, **kwargs)


# ---------------------------------------------------------------- incremental runs

def test_incremental_runs_load_only_new_and_changed_rows(crm, store):
    put(crm, record("P-1", "contacted", 1, email=" Anna.Berg@Example.COM "),
        record("P-2", "lost", 2, email="paula@example.org"),
        record("P-3", "consented", 3, phone="0151 2345 678"),
        record("P-4", "declined", 3, email="quentin@example.org", reason="Moved to Spain"))
    src = source(crm)

    first = load(store, src)
    assert (first.rows_read, first.rows_accepted, first.rows_quarantined) == (4, 2, 2)
    # the same pids as from a CSV export: one pseudonymization path
    assert rows(store, "SELECT event_id, pid, stage, source_file FROM funnel_event ORDER BY 1") == [
        ("pipe:P-1", ANNA, "contacted", "sql:crm"), ("pipe:P-3", BERT, "consented", "sql:crm")]
    assert open_quarantine(store) == [
        ("sql:crm", "status", STATUS_MESSAGE, "P-2"),
        ("sql:crm", "reason", "reason 'Moved to Spain' is not a code (letters, digits and _ only)", "P-4")]
    # contacts never reach the store, not even the quarantine
    assert "paula" not in json.dumps(rows(store, "SELECT raw FROM quarantine"))

    nothing = load(store, src)
    assert (nothing.status, nothing.files_seen, nothing.rows_read) == ("ok", 0, 0)

    # a late correction of P-1, P-2 fixed at the source, and P-5 saved later with the
    # same watermark value as the newest row already loaded
    put(crm, record("P-1", "randomized", 10, email="anna.berg@example.com"),
        record("P-2", "declined", 11, email="paula@example.org", reason="lost_interest"),
        record("P-5", "contacted", 3, email="quentin@example.org"))
    third = load(store, src)
    assert (third.rows_read, third.rows_accepted, third.rows_quarantined) == (3, 3, 0)
    assert rows(store, "SELECT event_id, stage, reason FROM funnel_event ORDER BY 1") == [
        ("pipe:P-1", "randomized", None), ("pipe:P-2", "declined", "lost_interest"),
        ("pipe:P-3", "consented", None), ("pipe:P-5", "contacted", None)]
    # P-2's entry is resolved by the corrected row; P-4's stays open
    assert [q[3] for q in open_quarantine(store)] == ["P-4"]
    kind, value = rows(store, "SELECT value_type, value FROM source_watermark WHERE source = 'sql:crm'")[0]
    assert kind in ("datetime", "str") and value.startswith("2026-01-10") and "08:11:00" in value
    assert load(store, src).rows_read == 0


def test_batches_commit_with_their_watermark_and_a_store_failure_loses_nothing(
        crm, store, tmp_path, monkeypatch):
    put(crm, *[record(f"P-{i}", "contacted", i, email=f"p{i}@example.org") for i in range(1, 8)])
    src = source(crm, batch_rows=3)
    spec = runner.TABLE_SPECS["site_pipeline"]
    calls = []

    def fail_on_second_batch(ctx):
        calls.append(1)
        spec.write(ctx)
        if len(calls) == 2:
            raise duckdb.IOException("No space left on device")

    monkeypatch.setitem(runner.TABLE_SPECS, "site_pipeline",
                        dataclasses.replace(spec, write=fail_on_second_batch))
    with pytest.raises(StoreError, match="No space left on device"):
        load(store, src)
    assert rows(store, "SELECT count(*) FROM funnel_event") == [(3,)]  # the first batch only
    assert rows(store, "SELECT status FROM load_run ORDER BY run_id DESC LIMIT 1") == [("failed",)]

    monkeypatch.setitem(runner.TABLE_SPECS, "site_pipeline", spec)
    again = load(store, src)
    assert (again.rows_read, again.files_seen) == (4, 2)  # the rest, in two batches

    clean = new_store(tmp_path, "clean")
    load(clean, source(crm, batch_rows=100))
    assert rows(store, "SELECT * FROM funnel_event ORDER BY 1") == \
        rows(clean, "SELECT * FROM funnel_event ORDER BY 1")
    clean.close()


def test_rows_without_a_watermark_are_reported_not_silently_dropped(crm, store):
    put(crm, record("P-1", "contacted", 1, email="a@example.org"),
        dict(record("P-2", "contacted", 2, email="b@example.org"), updated_at=None))
    summary = load(store, source(crm))
    assert summary.rows_read == 1
    assert summary.notes == ["1 rows of crm_pipeline have no updated_at and are not read"]
    assert "have no updated_at" in rows(store, "SELECT message FROM load_run ORDER BY run_id DESC LIMIT 1")[0][0]


# ---------------------------------------------------------------- errors that lose nothing

def test_a_locked_sqlite_source_fails_clearly_and_the_next_run_loads_everything(tmp_path, store):
    path = tmp_path / "locked.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    _meta.create_all(engine)
    put(engine, record("P-1", "contacted", 1, email="a@example.org"))
    engine.dispose()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")  # a CRM job holding the database
    src = SqlTable(name="crm", url=f"sqlite:///{path}?timeout=0.2", table="crm_pipeline",
                   kind="site_pipeline", watermark="updated_at", columns=MAPPING)
    try:
        with pytest.raises(SourceError, match="database is locked"):
            load(store, src)
    finally:
        holder.rollback()
        holder.close()
    assert rows(store, "SELECT status, message LIKE '%database is locked%' FROM load_run "
                       "ORDER BY run_id DESC LIMIT 1") == [("failed", True)]
    assert rows(store, "SELECT count(*) FROM source_watermark") == [(0,)]
    assert load(store, src).rows_accepted == 1


def test_an_unreachable_server_is_named_without_its_password(store):
    src = SqlTable(name="crm", url=f"postgresql+psycopg://cockpit:s3cret@127.0.0.1:{free_port()}/crm",
                   table="crm_pipeline", kind="site_pipeline", watermark="updated_at")
    with pytest.raises(SourceError) as caught:
        load(store, src)
    assert "cockpit:***@127.0.0.1" in str(caught.value) and "s3cret" not in str(caught.value)
    assert "s3cret" not in json.dumps(rows(store, "SELECT * FROM load_run"), default=str)


def test_missing_table_or_column_is_named(crm, store):
    with pytest.raises(SourceError, match="has no table 'nope'"):
        load(store, source(crm, table="nope"))
    with pytest.raises(SourceError, match="has no column 'changed' \\(mapped from 'status_at'\\)"):
        load(store, source(crm, columns={**MAPPING, "status_at": "changed"}))
    with pytest.raises(SourceError, match="no column for 'record_id', 'study_id'"):
        load(store, source(crm, columns={}))
    with pytest.raises(SourceError, match="no watermark column 'modified'"):
        load(store, source(crm, watermark="modified"))


# ---------------------------------------------------------------- one person across sources

def test_a_person_from_a_sql_crm_and_a_file_export_is_one_person(crm, store, tmp_path):
    raw = tmp_path / "raw"
    (raw / "hcp_referrals_2026-01.csv").write_text(
        "referral_id,referred_at,study_id,site_id,hcp_id,patient_email,patient_phone,birth_year\n"
        "REF-1,2026-01-04T08:00:00Z,ST-101,S-01,lanr-1,anna.berg@example.com,,1995\n",
        encoding="utf-8")
    load_folder(store, raw, KEY, now=NOW)
    put(crm, record("P-1", "contacted", 1, email="ANNA.BERG@example.com"))
    load(store, source(crm))
    assert rows(store, "SELECT DISTINCT pid FROM funnel_event") == [(ANNA,)]
    assert rows(store, "SELECT pid FROM person") == [(ANNA,)]
    assert ANNA == expected_pid("email", "anna.berg@example.com")
