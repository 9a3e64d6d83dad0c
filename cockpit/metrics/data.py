"""Numbers of the Data page: load runs, freshness per source (stale when no new data
arrived within its window), and the quarantine with its reasons.

A source is known by its location, as ``load_run.source`` holds it (a drop folder's
absolute path, or ``sql:<name>``); its name and stale window come from the
configuration (``source_setting``), or the defaults for a folder loaded without one.
"New data" is a file or SQL batch loaded with at least one accepted row; its time is
when it was loaded (UTC), not the dates inside it.
"""
from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pandas as pd

from cockpit.config import DEFAULT_STALE_AFTER_HOURS

QUARANTINE_LIMIT = 10_000  # rows shown (and exported) at most; the newest first
RUNS_LIMIT = 500

RUN_COLUMNS = ["run_id", "source", "status", "started_at", "finished_at", "seconds",
               "files_seen", "files_loaded", "files_skipped", "files_rejected", "files_deferred",
               "rows_read", "rows_accepted", "rows_quarantined", "rows_erased", "rows_ignored",
               "message"]
FRESHNESS_COLUMNS = ["source", "type", "location", "last_run_at", "last_run_status",
                     "last_new_data_at", "hours_since_new_data", "stale_after_hours", "stale"]
QUARANTINE_COLUMNS = ["quarantine_id", "run_id", "source", "file", "kind", "row", "field",
                      "reason", "raw", "quarantined_at", "resolved_by_run"]

_NAME = "coalesce(st.name, {loc})"


def _utc_now(now: datetime | None) -> datetime:
    moment = now or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


# A run that did something: read rows, rejected or deferred a file, failed or is still
# running. Scheduled scans that found nothing new are the others.
_BUSY = ("(r.status <> 'ok' OR r.rows_read > 0 "
         "OR r.files_loaded + r.files_rejected + r.files_deferred > 0)")


def load_runs(con: duckdb.DuckDBPyConnection, limit: int = RUNS_LIMIT,
              include_idle: bool = False) -> pd.DataFrame:
    """The latest load runs, newest first, with their counts and duration in seconds;
    runs that found nothing new only with ``include_idle``."""
    return con.execute(
        f"SELECT r.run_id, {_NAME.format(loc='r.source')} AS source, r.status, "
        "date_trunc('second', r.started_at) AS started_at, "
        "date_trunc('second', r.finished_at) AS finished_at, "
        "round(date_diff('millisecond', r.started_at, r.finished_at) / 1000.0, 1) "
        "AS seconds, r.files_seen, r.files_loaded, r.files_skipped, r.files_rejected, "
        "r.files_deferred, r.rows_read, r.rows_accepted, r.rows_quarantined, r.rows_erased, "
        "r.rows_ignored, r.message "
        "FROM load_run r LEFT JOIN source_setting st ON st.location = r.source "
        f"{'' if include_idle else 'WHERE ' + _BUSY} ORDER BY r.run_id DESC LIMIT ?",
        [limit]).df()[RUN_COLUMNS]


def idle_runs(con: duckdb.DuckDBPyConnection) -> int:
    """How many finished runs found nothing to do (``load_runs`` leaves them out unless asked)."""
    return int(con.execute(f"SELECT count(*) FROM load_run r WHERE NOT {_BUSY}").fetchone()[0])


def freshness(con: duckdb.DuckDBPyConnection, now: datetime | None = None,
              default_window: float = DEFAULT_STALE_AFTER_HOURS) -> pd.DataFrame:
    """One row per source (configured, or seen in a load run): its last run and that
    run's status, when it last brought new data, hours since then, its window, and
    ``stale`` (no new data within the window, or never)."""
    moment = _utc_now(now)
    return con.execute(
        "WITH runs AS (SELECT source AS location, date_trunc('second', max(started_at)) AS last_run_at, "
        "  arg_max(status, run_id) AS last_run_status FROM load_run GROUP BY source), "
        "new_data AS (SELECT r.source AS location, max(f.loaded_at) AS last_new_data_at "
        "  FROM source_file f JOIN load_run r ON r.run_id = f.run_id "
        "  WHERE f.status = 'loaded' AND f.rows_accepted > 0 GROUP BY r.source), "
        "known AS (SELECT location FROM source_setting UNION SELECT location FROM runs) "
        f"SELECT {_NAME.format(loc='k.location')} AS source, "
        "coalesce(st.type, CASE WHEN k.location LIKE 'sql:%' THEN 'sql' ELSE 'folder' END) AS type, "
        "k.location, runs.last_run_at, runs.last_run_status, "
        "date_trunc('second', n.last_new_data_at) AS last_new_data_at, "
        "round(date_diff('second', n.last_new_data_at, ?::TIMESTAMP) / 3600.0, 1) "
        "AS hours_since_new_data, coalesce(st.stale_after_hours, ?) AS stale_after_hours, "
        "coalesce(date_diff('second', n.last_new_data_at, ?::TIMESTAMP) "
        "  > coalesce(st.stale_after_hours, ?) * 3600, true) AS stale "
        "FROM known k LEFT JOIN source_setting st ON st.location = k.location "
        "LEFT JOIN runs ON runs.location = k.location "
        "LEFT JOIN new_data n ON n.location = k.location ORDER BY source",
        [moment, default_window, moment, default_window]).df()[FRESHNESS_COLUMNS]


def _quarantine_where(include_resolved: bool) -> str:
    return "" if include_resolved else "WHERE z.quarantine_id IS NULL"


def quarantine(con: duckdb.DuckDBPyConnection, include_resolved: bool = False,
               limit: int = QUARANTINE_LIMIT) -> pd.DataFrame:
    """Quarantined rows (row 0: the whole file), newest run first, then by file and
    row: the source, file, row, field and reason, the row's fields without contacts
    (``raw``), and the run that resolved the entry (only with ``include_resolved``)."""
    return con.execute(
        f"SELECT q.quarantine_id, q.run_id, {_NAME.format(loc='r.source')} AS source, q.file, "
        "q.kind, q.row_number AS row, q.field, q.reason, q.raw, "
        "date_trunc('second', q.created_at) AS quarantined_at, "
        "z.run_id AS resolved_by_run "
        "FROM quarantine q LEFT JOIN load_run r ON r.run_id = q.run_id "
        "LEFT JOIN source_setting st ON st.location = r.source "
        f"LEFT JOIN quarantine_resolution z ON z.quarantine_id = q.quarantine_id "
        f"{_quarantine_where(include_resolved)} "
        "ORDER BY q.run_id DESC, q.file, q.row_number, q.quarantine_id LIMIT ?",
        [limit]).df()[QUARANTINE_COLUMNS]


def quarantine_count(con: duckdb.DuckDBPyConnection, include_resolved: bool = False) -> int:
    """How many entries ``quarantine`` would list without its limit."""
    return int(con.execute(
        "SELECT count(*) FROM quarantine q LEFT JOIN quarantine_resolution z "
        f"ON z.quarantine_id = q.quarantine_id {_quarantine_where(include_resolved)}").fetchone()[0])
