"""Load runs and transactions, shared by every source: a run is recorded in
``load_run`` when it starts and when it ends; each unit of work (a file, a batch of
SQL rows) commits in a transaction of its own; derived tables are rebuilt at the end
of a run that changed data, or that follows a run cut off before it could rebuild them."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import duckdb

from cockpit.store import StoreError

from .people import attach_linked_visits
from .summary import LoadSummary

AfterLoad = Callable[[duckdb.DuckDBPyConnection], None]

_DISK_FULL = ("no space left on device", "disk is full", "disk full")

# During a run, committed files gather in the write-ahead log up to this size before
# DuckDB folds them into the database file (its default, 16 MB, checkpoints every few
# files: each checkpoint rewrites the tables' changed row groups). Committed data is
# durable in the log either way; a run ends with one checkpoint.
RUN_CHECKPOINT_THRESHOLD = "1GB"


def store_failure(what: str, exc: BaseException) -> StoreError:
    """The StoreError for a store failure while doing ``what``, with what to do about
    a full disk (the most likely cause of a write failing mid-load)."""
    message = f"{what}: {exc}"
    if any(sign in str(exc).lower() for sign in _DISK_FULL):
        message += (" -- The disk holding the store is full. Free space and run the load "
                    "again: what was committed is kept, and the rest loads then.")
    return StoreError(message)


def execute(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    """Run a statement that opens work on the store; a failure becomes StoreError."""
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise store_failure(f"The store refused to start {what}", exc) from exc


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if the failure left one."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (the failure ended it)


def in_transaction(con: duckdb.DuckDBPyConnection, work: Callable[[], object], what: str) -> None:
    """Run ``work`` in a transaction of its own; a store failure becomes StoreError."""
    execute(con, "BEGIN TRANSACTION", what)
    try:
        work()
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise store_failure(f"The store failed while {what}", exc) from exc
    except BaseException:
        rollback(con)
        raise


def start_run(con: duckdb.DuckDBPyConnection, location: str) -> int:
    """Record a new run of the source at ``location``; returns its id. A run still
    marked running is one whose process was killed: it is marked failed first."""
    try:
        con.execute("SET TimeZone = 'UTC'")  # timestamps without zone are UTC
        # One writer per store, so a run still 'running' now was cut off (process killed);
        # its open transaction was never committed.
        con.execute("UPDATE load_run SET status = 'failed', finished_at = timezone('UTC', now()), "
                    "message = 'interrupted: the process ended during the run' "
                    "WHERE status = 'running'")
        return con.execute(
            "INSERT INTO load_run (started_at, status, source) "
            "VALUES (timezone('UTC', now()), 'running', ?) RETURNING run_id",
            [location]).fetchone()[0]
    except duckdb.Error as exc:
        raise store_failure("Cannot start a load run in the store", exc) from exc


def finish_run(con: duckdb.DuckDBPyConnection, summary: LoadSummary) -> None:
    """Record the outcome and the counts of a run."""
    message = summary.message or (
        f"{summary.files_loaded} loaded, {summary.files_skipped} already loaded, "
        f"{summary.files_rejected} rejected, {summary.files_deferred} deferred; "
        f"{summary.rows_erased} rows of erased persons skipped")
    if summary.notes:
        message += "; " + "; ".join(summary.notes)
    con.execute(
        "UPDATE load_run SET finished_at = timezone('UTC', now()), status = ?, files_seen = ?, "
        "files_loaded = ?, files_skipped = ?, files_rejected = ?, files_deferred = ?, "
        "rows_read = ?, rows_accepted = ?, rows_quarantined = ?, rows_erased = ?, "
        "rows_ignored = ?, message = ? WHERE run_id = ?",
        [summary.status, summary.files_seen, summary.files_loaded, summary.files_skipped,
         summary.files_rejected, summary.files_deferred, summary.rows_read,
         summary.rows_accepted, summary.rows_quarantined, summary.rows_erased,
         summary.rows_ignored, message, summary.run_id])


def finish_run_quietly(con: duckdb.DuckDBPyConnection, summary: LoadSummary) -> None:
    """Mark the run failed if the store still lets us; the original error is what matters."""
    rollback(con)
    try:
        finish_run(con, summary)
    except duckdb.Error:
        pass


def derived_stale(con: duckdb.DuckDBPyConnection, run_id: int) -> bool:
    """True when data was committed after the derived tables were last rebuilt: by an
    earlier run that was killed or failed before its rebuild. (Every run that ends 'ok'
    has rebuilt them when it loaded anything.)"""
    row = con.execute(
        "SELECT EXISTS (SELECT 1 FROM source_file WHERE status = 'loaded' AND run_id < ? "
        "AND run_id > (SELECT coalesce(max(run_id), 0) FROM load_run "
        "WHERE status = 'ok' AND run_id < ?))", [run_id, run_id]).fetchone()
    return bool(row[0])


def rebuild_derived(con: duckdb.DuckDBPyConnection, summary: LoadSummary,
                    after_load: AfterLoad | None) -> None:
    """Run ``after_load`` in its own transaction when this run loaded something, or when
    an earlier run was cut off before its rebuild."""
    if after_load is None:
        return
    if summary.files_loaded or derived_stale(con, summary.run_id):
        in_transaction(con, lambda: after_load(con), "rebuilding derived tables")


def attach_visits(con: duckdb.DuckDBPyConnection) -> None:
    """Give the earlier web touchpoints of the visitors linked by this run (or by a run
    cut off before this step) their person, in its own transaction, once per run."""
    in_transaction(con, lambda: attach_linked_visits(con), "attaching web visits to their persons")


def run_failed(con: duckdb.DuckDBPyConnection, summary: LoadSummary, exc: BaseException) -> None:
    """Record a run that ended on ``exc``; a store error is raised again as StoreError."""
    summary.status = "failed"
    summary.message = str(exc)
    finish_run_quietly(con, summary)
    if isinstance(exc, duckdb.Error):
        raise store_failure(f"The load run {summary.run_id} failed in the store", exc) from exc


@contextmanager
def recorded_run(con: duckdb.DuckDBPyConnection, summary: LoadSummary,
                 after_load: AfterLoad | None) -> Iterator[None]:
    """Around the work of a run: then attach the web visits of newly linked visitors,
    rebuild the derived tables and record the run as ok; on any exception record it as
    failed (``run_failed``) and raise again.
    Checkpoints are batched over the run (``RUN_CHECKPOINT_THRESHOLD``)."""
    con.execute(f"SET checkpoint_threshold = '{RUN_CHECKPOINT_THRESHOLD}'")
    try:
        yield
        attach_visits(con)
        rebuild_derived(con, summary, after_load)
        summary.status = "ok"
        finish_run(con, summary)
    except BaseException as exc:
        run_failed(con, summary, exc)
        raise
    finally:
        _end_batched_checkpoints(con)


def _end_batched_checkpoints(con: duckdb.DuckDBPyConnection) -> None:
    """Back to DuckDB's checkpoint threshold, and fold the run's log into the file now.
    The checkpoint is skipped while other connections have transactions open (pages
    being served); the next commit past the threshold then makes it."""
    try:
        con.execute("RESET checkpoint_threshold")
        con.execute("CHECKPOINT")
    except duckdb.Error:
        pass
