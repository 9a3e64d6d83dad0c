"""What every loader works with: the load context of one file, its row counts, the
issues found while parsing, and the exception that rejects a whole file."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

# Temporary tables of the file being loaded (per connection, dropped after each file).
STAGE = "ingest_stage"  # the file's rows as text, in file order
PIDS = "ingest_pids"  # pseudonymous ids of the staged rows, by stage rowid
CHECKED = "ingest_checked"  # the staged rows typed and looked up, with their fate
ACCEPTED = "ingest_accepted"  # view: the rows to write
FRAME = "ingest_frame"  # rows computed in Python, while SQL reads them (frames.py)


class FileRejected(Exception):
    """The file as a whole cannot be loaded; the message says why."""


@dataclass(frozen=True)
class Issue:
    """A row refused before it reached SQL validation (a parse problem)."""

    row: int  # 1-based data row (line for JSON lines), 0 for the whole file
    field: str | None
    reason: str
    raw: str | None = None  # the row as JSON, contacts removed; None when unparsable


@dataclass
class FileCounts:
    """Rows of one file by fate."""

    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    erased: int = 0  # rows of persons in the erasure ledger, skipped
    ignored: int = 0  # rows that are not data (summary lines, events without UTM source)


@dataclass
class LoadContext:
    """Where and when a file is loaded."""

    con: duckdb.DuckDBPyConnection
    key: bytes
    now: datetime  # naive UTC: nothing dated after it is accepted
    run_id: int
    file: str  # path relative to the drop folder ('sql:<name>' for a SQL source)
    kind: str
    location: str = ""  # the source, as load_run.source names it
    # Whether a written key may be stored already. A first attempt at a file assumes
    # not (new exports: plain inserts, which the store's keys check); when a key is
    # stored after all, the file is loaded again with upserts (``upsert.StoredKey``).
    keys_may_exist: bool = False

    @property
    def now_sql(self) -> str:
        """``now`` as a SQL timestamp literal."""
        return f"TIMESTAMP '{self.now.isoformat(sep=' ')}'"

    @property
    def today_sql(self) -> str:
        """The date of ``now`` as a SQL date literal."""
        return f"DATE '{self.now.date().isoformat()}'"
