"""The DuckDB store: opening it, migrating its schema, and the one writer.

DuckDB allows one read-write process per file. The serving process owns that
connection; each request thread reads through its own cursor, and every write
(loads, audit entries, alert state) goes through the single writer thread, so a long
load never blocks readers (they see the last committed snapshot) and writes never
interleave.
"""
from __future__ import annotations

import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import duckdb

T = TypeVar("T")

DEFAULT_DB = Path("data") / "cockpit.duckdb"


class StoreError(RuntimeError):
    """The store cannot be used (locked by another process, not a DuckDB file, no space)."""


def resolve_db_path(db: str | os.PathLike | None) -> Path:
    """The database path: the argument, else ``$COCKPIT_DB``, else ``data/cockpit.duckdb``."""
    if db:
        return Path(db)
    env = os.environ.get("COCKPIT_DB")
    return Path(env) if env else DEFAULT_DB


def migrations() -> list[tuple[int, str, str]]:
    """The schema migrations shipped with the package, as (version, name, sql), in order."""
    folder = resources.files("cockpit") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied to this database (0 for an empty file)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migration'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migration").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration newer than the database's version, each in its own
    transaction. Returns the versions applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migration ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    current = schema_version(con)
    applied = []
    for version, name, sql in migrations():
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migration VALUES (?, ?, now()::TIMESTAMP)", [version, name]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


# Migrations after which the derived tables must be rebuilt from the facts (a column or
# a table they add is filled by the rebuild).
REBUILDS_DERIVED = frozenset({5, 7, 8, 9, 10})


def _rebuild_derived(con: duckdb.DuckDBPyConnection) -> None:
    from cockpit import derive

    con.execute("BEGIN TRANSACTION")
    try:
        derive.refresh(con)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def open_db(path: str | os.PathLike, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the store at ``path``.

    Raises StoreError with a message that says what to do when the file is held by
    another process, is not a DuckDB database, or cannot be created.
    """
    path = Path(path)
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise StoreError(
                f"The store {path} is in use by another process (DuckDB allows one writer "
                f"per file). Stop that process (for example a running 'cockpit serve') "
                f"and try again. Details: {text}"
            ) from exc
        raise StoreError(f"Cannot open the store {path}: {text}") from exc
    except (duckdb.Error, OSError) as exc:
        raise StoreError(f"Cannot open the store {path}: {exc}") from exc
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only and REBUILDS_DERIVED & set(migrate(con)):
            _rebuild_derived(con)
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"Cannot migrate the store {path}: {exc}") from exc
    return con


# DuckDB's memory while serving pages: its default (80% of the machine) lets page
# queries keep gigabytes of cached blocks and hash tables in the serving process; under
# a limit it evicts and spills to its temporary directory instead. Load runs lift it
# while they last (cockpit.ingest.runs). Python, Dash and pandas add about 0.3-0.5 GB.
SERVING_MEMORY_LIMIT = "1GB"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


def memory_limit_problem(value: str) -> str | None:
    """Why ``value`` is not a DuckDB memory size such as '1GB' or '512MiB' (None if it is)."""
    return None if _MEMORY.match(value.strip()) else "expected a size such as '1GB' or '512MB'"


class Store:
    """The serving process's handle on the database: per-thread read cursors and
    one writer thread. ``memory_limit`` bounds DuckDB's memory (None: DuckDB's default)."""

    def __init__(self, path: str | os.PathLike, memory_limit: str | None = SERVING_MEMORY_LIMIT):
        self.path = Path(path)
        if memory_limit is not None and memory_limit_problem(memory_limit):
            raise StoreError(f"memory_limit {memory_limit!r}: {memory_limit_problem(memory_limit)}")
        self.memory_limit = memory_limit.strip() if memory_limit is not None else None
        self.con = open_db(self.path)
        if self.memory_limit is not None:
            self.con.execute(f"SET memory_limit = '{self.memory_limit}'")
        self._local = threading.local()
        self._queue: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="cockpit-writer", daemon=True)
        self._writer.start()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reading
    def reader(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self.con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cur
        return cur

    # -- writing
    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> Future:
        """Queue ``fn(cursor)`` on the writer thread; the future holds its result."""
        if self._closed:
            raise StoreError("The store is closed.")
        future: Future = Future()
        self._queue.put((fn, future))
        return future

    def write_sync(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``fn`` on the writer thread and wait for its result."""
        return self.write(fn).result()

    @contextmanager
    def memory_lifted(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """DuckDB's default memory (80% of the machine) for the work inside, the serving
        bound again after: a load run's key indexes of large tables and its rebuild of
        the derived tables need more than serving pages."""
        if self.memory_limit is None:
            yield
            return
        con.execute("RESET memory_limit")
        try:
            yield
        finally:
            con.execute(f"SET memory_limit = '{self.memory_limit}'")

    def _write_loop(self) -> None:
        cur = self.con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        while True:
            item = self._queue.get()
            if item is None:
                break
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(cur))
            except BaseException as exc:  # handed to the caller, never lost in the thread
                future.set_exception(exc)
        cur.close()

    def close(self, wait_seconds: float = 60.0) -> None:
        """Stop the writer and close the database. DuckDB refuses to close while a
        reader's query still runs (a page request, the scheduler's warm-up), so the
        close is retried until those finish, for up to ``wait_seconds``."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join(timeout=30)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self.con.close()
                return
            except duckdb.ResourceInUseException:
                if time.monotonic() > deadline:
                    raise StoreError(f"The store {self.path} is still busy with a query after "
                                     f"{wait_seconds:.0f} s; it was not closed cleanly.") from None
                time.sleep(0.05)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def data_version(con: duckdb.DuckDBPyConnection) -> int:
    """A number that changes whenever a load run changes the data: the key for cached
    results. Runs that found nothing new leave it as it was."""
    row = con.execute(
        "SELECT coalesce(max(run_id), 0) FROM load_run "
        "WHERE status = 'ok' AND (files_loaded > 0 OR files_rejected > 0)"
    ).fetchone()
    return int(row[0])
