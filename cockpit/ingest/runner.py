"""Load runs: scan the drop folder, load each new file in its own transaction (its
rows, its quarantine entries and its ``source_file`` record commit together or not at
all), record the run in ``load_run``, and rebuild derived tables afterwards."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb

from . import ads, consent, costs, leads, pipeline, web
from .context import FileCounts, FileRejected, LoadContext
from .files import FoundFile, discover, known_sha256, remember_sha256, sha256_hex
from .quarantine import open_files, quarantine_file, resolve_file
from .runs import AfterLoad, execute, in_transaction, recorded_run, rollback
from .runs import start_run, store_failure
from .setup import load_setup
from .summary import FileResult, LoadSummary
from .tabular import TableSpec, load_table
from .upsert import StoredKey

TABLE_SPECS: dict[str, TableSpec] = {spec.kind: spec for spec in (
    *ads.SPECS.values(), costs.SPEC, web.WEB_SPEC, web.QR_SPEC, leads.PRESCREENER_SPEC,
    leads.REFERRAL_SPEC, leads.SIGNUP_SPEC, consent.SPEC, pipeline.SPEC)}

# DuckDB errors that mean the input could not be parsed, not that the store failed.
_PARSE_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException)

OnFile = Callable[[int, int, FileResult], None]


class _FileChanged(Exception):
    """The file changed between hashing and loading (still being written)."""


@dataclass
class _Known:
    """What a run reads from the store once, instead of once per file: the hashes of
    the files recorded in ``source_file`` (kept up to date as the run records files),
    and the files of this source with open quarantine entries of earlier runs."""

    hashes: set[str]
    open: set[str]


def folder_location(source: Path) -> str:
    """How load runs name a drop folder: its absolute path, so that runs of the same
    folder agree whether it was given relative or absolute."""
    return str(Path(source).resolve())


def load_folder(con: duckdb.DuckDBPyConnection, source: Path, key: bytes,
                progress: Callable[[str], None] | None = None,
                after_load: AfterLoad | None = None,
                now: datetime | None = None, *, settle_seconds: float = 0.0,
                retry_quarantined: bool = False, on_file: OnFile | None = None) -> LoadSummary:
    """Load every new export under ``source`` into the store behind ``con``.

    Files are taken in dependency order (setup, ad exports and offline costs, web
    events and QR scans, pre-screener, referrals, screening events, consent, site
    pipeline; by path within a kind). A file whose bytes were loaded before is skipped,
    unless ``retry_quarantined`` and the file has open quarantine entries: it is then
    read again (after the setup was fixed, say), and its old entries are closed.
    A file modified less than ``settle_seconds`` ago may still be being written: it
    is deferred to the next run. ``key`` is the pseudonymization key; ``now``
    (default: the current UTC time) is the limit for dates and timestamps.
    ``after_load(con)`` runs in its own transaction when a file was loaded (or an
    earlier run was cut off before it ran). ``progress`` gets one line per file,
    ``on_file(number, total, result)`` the result. Raises StoreError when the store
    fails; the run is then marked failed and nothing of the file being loaded remains.
    """
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"The drop folder {source} does not exist or is not a folder.")
    limit = naive_utc(now or datetime.now(timezone.utc))
    location = folder_location(source)
    files = discover(source)
    run_id = start_run(con, location)
    summary = LoadSummary(run_id=run_id, files_seen=len(files))
    with recorded_run(con, summary, after_load):
        known = _Known(hashes=_loaded_hashes(con), open=open_files(con, location))
        retry = set(known.open) if retry_quarantined else set()
        for number, found in enumerate(files, 1):
            ctx = LoadContext(con=con, key=key, now=limit, run_id=run_id, file=found.rel,
                              kind=found.kind, location=location)
            result = _load_file(ctx, found, settle_seconds, found.rel in retry, known)
            summary.add(result)
            if progress:
                progress(f"[{number}/{len(files)}] {result.line()}")
            if on_file:
                on_file(number, len(files), result)
    return summary


def naive_utc(moment: datetime) -> datetime:
    """``moment`` as a naive UTC datetime (naive input is taken as UTC already)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


# ---------------------------------------------------------------- one file

def _load_file(ctx: LoadContext, found: FoundFile, settle_seconds: float,
               retry: bool, known: _Known) -> FileResult:
    con = ctx.con
    try:
        before = found.path.stat()
        if settle_seconds > 0:
            age = time.time() - before.st_mtime
            if age < settle_seconds:
                return FileResult(found.rel, found.kind, "deferred", message=(
                    f"modified {max(age, 0):.1f} s ago; it loads once it has been unchanged "
                    f"for {settle_seconds:g} s"))
        seen = known_sha256(found.path, before)
        if seen is not None and not retry and seen in known.hashes:
            return FileResult(found.rel, found.kind, "skipped")
        data = found.path.read_bytes()
    except OSError as exc:
        # Not recorded as loaded: an unreadable file is tried again next run (and its
        # entry of the previous try is closed, so one entry stays open, not one a run).
        reason = f"cannot read the file: {exc.strerror or exc}"

        def note() -> None:
            resolve_file(ctx)
            quarantine_file(ctx, reason)
        in_transaction(con, note, f"quarantining {found.rel}")
        return FileResult(found.rel, found.kind, "deferred", message=reason)
    sha = sha256_hex(data)
    remember_sha256(found.path, before, sha)
    if not retry and sha in known.hashes:
        return FileResult(found.rel, found.kind, "skipped")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject(ctx, sha, len(data), f"file is not UTF-8 (byte 0x{data[exc.start]:02x} at "
                                            f"offset {exc.start} is not valid UTF-8)", known)
    try:
        try:
            counts = _load_in_transaction(ctx, found, text, before, sha, len(data), known)
        except StoredKey:
            # Rows of the file are stored already (a re-export, a correction): nothing
            # of the first attempt remains; load it again with upserts.
            rollback(con)
            ctx.keys_may_exist = True
            counts = _load_in_transaction(ctx, found, text, before, sha, len(data), known)
        known.hashes.add(sha)
        known.open.discard(found.rel)
    except FileRejected as rejected:
        rollback(con)
        return _reject(ctx, sha, len(data), str(rejected), known)
    except _FileChanged:
        rollback(con)
        return FileResult(found.rel, found.kind, "deferred",
                          message="the file changed while it was loaded; it loads next run")
    except _PARSE_ERRORS as exc:
        rollback(con)
        return _reject(ctx, sha, len(data), f"cannot parse the file: {_first_line(exc)}", known)
    except duckdb.Error as exc:
        rollback(con)
        raise store_failure(f"Loading {found.rel} failed in the store", exc) from exc
    except BaseException:
        rollback(con)
        raise
    return FileResult.loaded(found.rel, found.kind, counts)


def _load_in_transaction(ctx: LoadContext, found: FoundFile, text: str, before: os.stat_result,
                         sha: str, size: int, known: _Known) -> FileCounts:
    """Load the file's content and record it, in one transaction committed here."""
    con = ctx.con
    execute(con, "BEGIN TRANSACTION", f"loading {found.rel}")
    if found.rel in known.open:  # only a file with open entries has any to close
        resolve_file(ctx)
    counts = _load_content(ctx, found, text)
    if _changed(found.path, before):
        raise _FileChanged()
    _record_file(ctx, sha, size, counts, "loaded", update=sha in known.hashes)
    con.execute("COMMIT")
    return counts


def _load_content(ctx: LoadContext, found: FoundFile, text: str) -> FileCounts:
    if found.kind == "setup":
        return load_setup(ctx, text)
    return load_table(ctx, TABLE_SPECS[found.kind], found.path, text)


def _reject(ctx: LoadContext, sha: str, size: int, reason: str, known: _Known) -> FileResult:
    """Quarantine a whole file and record it, so the same bytes are not tried again."""
    def write() -> None:
        resolve_file(ctx)
        quarantine_file(ctx, reason)
        _record_file(ctx, sha, size, FileCounts(), "rejected", update=True)
    in_transaction(ctx.con, write, f"rejecting {ctx.file}")
    known.hashes.add(sha)
    known.open.discard(ctx.file)
    return FileResult(ctx.file, ctx.kind, "rejected", message=reason)


def _loaded_hashes(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The content hashes of every file recorded in ``source_file``."""
    try:
        return {row[0] for row in con.execute("SELECT sha256 FROM source_file").fetchall()}
    except duckdb.Error as exc:
        raise store_failure("Cannot read source_file from the store", exc) from exc


_RECORD = ("INSERT INTO source_file (sha256, path, kind, size_bytes, run_id, loaded_at, rows_read, "
           "rows_accepted, rows_quarantined, status) "
           "VALUES (?, ?, ?, ?, ?, timezone('UTC', now()), ?, ?, ?, ?)")
# A retried file has the same bytes as before: its record is updated.
_UPDATE = (" ON CONFLICT (sha256) DO UPDATE SET path = excluded.path, kind = excluded.kind, "
           "run_id = excluded.run_id, loaded_at = excluded.loaded_at, "
           "rows_read = excluded.rows_read, rows_accepted = excluded.rows_accepted, "
           "rows_quarantined = excluded.rows_quarantined, status = excluded.status")


def _record_file(ctx: LoadContext, sha: str, size: int, counts: FileCounts, status: str,
                 update: bool) -> None:
    """Record the file in ``source_file``; ``update`` when its bytes may be recorded
    already (a plain insert of a new record is cheaper than an upsert)."""
    ctx.con.execute(_RECORD + (_UPDATE if update else ""),
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
