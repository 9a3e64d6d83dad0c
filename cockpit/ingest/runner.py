"""Load runs: scan the drop folder, load each new file in its own transaction (its
rows, its quarantine entries and its ``source_file`` record commit together or not at
all), record the run in ``load_run``, and rebuild derived tables afterwards."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb

from cockpit.store import StoreError

from . import ads, consent, costs, leads, pipeline, web
from .context import FileCounts, FileRejected, LoadContext
from .files import FoundFile, discover, known_sha256, remember_sha256, sha256_hex
from .quarantine import quarantine_file
from .setup import load_setup
from .summary import FileResult, LoadSummary
from .tabular import TableSpec, load_table

TABLE_SPECS: dict[str, TableSpec] = {spec.kind: spec for spec in (
    *ads.SPECS.values(), costs.SPEC, web.WEB_SPEC, web.QR_SPEC, leads.PRESCREENER_SPEC,
    leads.REFERRAL_SPEC, leads.SIGNUP_SPEC, consent.SPEC, pipeline.SPEC)}

# DuckDB errors that mean the input could not be parsed, not that the store failed.
_PARSE_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException)


class _FileChanged(Exception):
    """The file changed between hashing and loading (still being written)."""


def load_folder(con: duckdb.DuckDBPyConnection, source: Path, key: bytes,
                progress: Callable[[str], None] | None = None,
                after_load: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
                now: datetime | None = None) -> LoadSummary:
    """Load every new export under ``source`` into the store behind ``con``.

    Files are taken in dependency order (setup, ad exports and offline costs, web
    events and QR scans, pre-screener, referrals, screening events, consent, site
    pipeline; by path within a kind). A file whose bytes were loaded before is skipped.
    ``key`` is the pseudonymization key; ``now`` (default: the current UTC time) is the
    limit for dates and timestamps. ``after_load(con)`` runs in its own transaction when
    at least one file was loaded. Raises StoreError when the store fails; the run is
    then marked failed and nothing of the file being loaded remains.
    """
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"The drop folder {source} does not exist or is not a folder.")
    limit = _naive_utc(now or datetime.now(timezone.utc))
    files = discover(source)
    run_id = _start_run(con, source)
    summary = LoadSummary(run_id=run_id, files_seen=len(files))
    try:
        for number, found in enumerate(files, 1):
            result = _load_file(con, found, key, limit, run_id)
            summary.add(result)
            if progress:
                progress(f"[{number}/{len(files)}] {result.line()}")
        if summary.files_loaded and after_load is not None:
            _in_transaction(con, lambda: after_load(con), "rebuilding derived tables")
        summary.status = "ok"
        _finish_run(con, summary)
    except BaseException as exc:
        summary.status = "failed"
        summary.message = str(exc)
        _finish_run_quietly(con, summary)
        if isinstance(exc, duckdb.Error):
            raise StoreError(f"The load run {run_id} failed in the store: {exc}") from exc
        raise
    return summary


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


# ---------------------------------------------------------------- one file

def _load_file(con: duckdb.DuckDBPyConnection, found: FoundFile, key: bytes, now: datetime,
               run_id: int) -> FileResult:
    ctx = LoadContext(con=con, key=key, now=now, run_id=run_id, file=found.rel, kind=found.kind)
    try:
        before = found.path.stat()
        seen = known_sha256(found.path, before)
        if seen is not None and _already_loaded(con, seen):
            return FileResult(found.rel, found.kind, "skipped")
        data = found.path.read_bytes()
    except OSError as exc:
        # Not recorded as loaded: an unreadable file is tried again next run.
        reason = f"cannot read the file: {exc.strerror or exc}"
        _in_transaction(con, lambda: quarantine_file(ctx, reason), f"quarantining {found.rel}")
        return FileResult(found.rel, found.kind, "deferred", message=reason)
    sha = sha256_hex(data)
    remember_sha256(found.path, before, sha)
    if _already_loaded(con, sha):
        return FileResult(found.rel, found.kind, "skipped")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject(ctx, sha, len(data), f"file is not UTF-8 (byte 0x{data[exc.start]:02x} at "
                                            f"offset {exc.start} is not valid UTF-8)")
    _execute(con, "BEGIN TRANSACTION", found.rel)
    try:
        counts = _load_content(ctx, found, text)
        if _changed(found.path, before):
            raise _FileChanged()
        _record_file(ctx, sha, len(data), counts, "loaded")
        con.execute("COMMIT")
    except FileRejected as rejected:
        _rollback(con)
        return _reject(ctx, sha, len(data), str(rejected))
    except _FileChanged:
        _rollback(con)
        return FileResult(found.rel, found.kind, "deferred",
                          message="the file changed while it was loaded; it loads next run")
    except _PARSE_ERRORS as exc:
        _rollback(con)
        return _reject(ctx, sha, len(data), f"cannot parse the file: {_first_line(exc)}")
    except duckdb.Error as exc:
        _rollback(con)
        raise StoreError(f"Loading {found.rel} failed in the store: {exc}") from exc
    except BaseException:
        _rollback(con)
        raise
    return FileResult.loaded(found.rel, found.kind, counts)


def _load_content(ctx: LoadContext, found: FoundFile, text: str) -> FileCounts:
    if found.kind == "setup":
        return load_setup(ctx, text)
    return load_table(ctx, TABLE_SPECS[found.kind], found.path, text)


def _reject(ctx: LoadContext, sha: str, size: int, reason: str) -> FileResult:
    """Quarantine a whole file and record it, so the same bytes are not tried again."""
    def write() -> None:
        quarantine_file(ctx, reason)
        _record_file(ctx, sha, size, FileCounts(), "rejected")
    _in_transaction(ctx.con, write, f"rejecting {ctx.file}")
    return FileResult(ctx.file, ctx.kind, "rejected", message=reason)


def _already_loaded(con: duckdb.DuckDBPyConnection, sha: str) -> bool:
    try:
        return con.execute("SELECT 1 FROM source_file WHERE sha256 = ?", [sha]).fetchone() is not None
    except duckdb.Error as exc:
        raise StoreError(f"Cannot read source_file from the store: {exc}") from exc


def _record_file(ctx: LoadContext, sha: str, size: int, counts: FileCounts, status: str) -> None:
    ctx.con.execute(
        "INSERT INTO source_file (sha256, path, kind, size_bytes, run_id, loaded_at, rows_read, "
        "rows_accepted, rows_quarantined, status) "
        "VALUES (?, ?, ?, ?, ?, timezone('UTC', now()), ?, ?, ?, ?)",
        [sha, ctx.file, ctx.kind, size, ctx.run_id, counts.read, counts.accepted,
         counts.quarantined, status])


def _changed(path: Path, before: os.stat_result) -> bool:
    try:
        after = path.stat()
    except OSError:
        return True
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------- transactions and the run

def _execute(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise StoreError(f"The store refused to start loading {what}: {exc}") from exc


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (the failure ended it)


def _in_transaction(con: duckdb.DuckDBPyConnection, work: Callable[[], object], what: str) -> None:
    """Run ``work`` in a transaction of its own; a store failure becomes StoreError."""
    _execute(con, "BEGIN TRANSACTION", what)
    try:
        work()
        con.execute("COMMIT")
    except duckdb.Error as exc:
        _rollback(con)
        raise StoreError(f"The store failed while {what}: {exc}") from exc
    except BaseException:
        _rollback(con)
        raise


def _start_run(con: duckdb.DuckDBPyConnection, source: Path) -> int:
    try:
        con.execute("SET TimeZone = 'UTC'")  # timestamps without zone are UTC
        # One writer per store, so a run still 'running' now was cut off (process killed);
        # its file transactions were never committed.
        con.execute("UPDATE load_run SET status = 'failed', finished_at = timezone('UTC', now()), "
                    "message = 'interrupted: the process ended during the run' "
                    "WHERE status = 'running'")
        return con.execute(
            "INSERT INTO load_run (started_at, status, source) "
            "VALUES (timezone('UTC', now()), 'running', ?) RETURNING run_id",
            [str(source)]).fetchone()[0]
    except duckdb.Error as exc:
        raise StoreError(f"Cannot start a load run in the store: {exc}") from exc


def _finish_run(con: duckdb.DuckDBPyConnection, summary: LoadSummary) -> None:
    message = summary.message or (
        f"{summary.files_loaded} loaded, {summary.files_skipped} already loaded, "
        f"{summary.files_rejected} rejected, {summary.files_deferred} deferred; "
        f"{summary.rows_erased} rows of erased persons skipped")
    con.execute(
        "UPDATE load_run SET finished_at = timezone('UTC', now()), status = ?, files_seen = ?, "
        "files_loaded = ?, files_skipped = ?, files_rejected = ?, files_deferred = ?, "
        "rows_read = ?, rows_accepted = ?, rows_quarantined = ?, rows_erased = ?, "
        "rows_ignored = ?, message = ? WHERE run_id = ?",
        [summary.status, summary.files_seen, summary.files_loaded, summary.files_skipped,
         summary.files_rejected, summary.files_deferred, summary.rows_read,
         summary.rows_accepted, summary.rows_quarantined, summary.rows_erased,
         summary.rows_ignored, message, summary.run_id])


def _finish_run_quietly(con: duckdb.DuckDBPyConnection, summary: LoadSummary) -> None:
    """Mark the run failed if the store still lets us; the original error is what matters."""
    _rollback(con)
    try:
        _finish_run(con, summary)
    except duckdb.Error:
        pass
