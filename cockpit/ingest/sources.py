"""Loading a configured source, whatever its type, and recording the sources' settings
in the store (the Data page judges freshness by them)."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable, Mapping

import duckdb

from cockpit.config import FolderSource, Source, SqlSource

from .runner import OnFile, load_folder
from .runs import AfterLoad
from .sql_source import load_sql_source
from .summary import LoadSummary


def register_sources(con: duckdb.DuckDBPyConnection, sources: Iterable[Source]) -> None:
    """Record (or update) each source's name, type, interval and stale window."""
    for s in sources:
        con.execute(
            "INSERT INTO source_setting (location, name, type, stale_after_hours, interval_seconds, "
            "updated_at) VALUES (?, ?, ?, ?, ?, timezone('UTC', now())) "
            "ON CONFLICT (location) DO UPDATE SET name = excluded.name, type = excluded.type, "
            "stale_after_hours = excluded.stale_after_hours, "
            "interval_seconds = excluded.interval_seconds, updated_at = excluded.updated_at",
            [s.location, s.name, s.type, s.stale_after_hours, s.interval_seconds])


def load_source(con: duckdb.DuckDBPyConnection, source: Source, key: bytes, *,
                after_load: AfterLoad | None = None, settle_seconds: float | None = None,
                retry_quarantined: bool = False, progress: Callable[[str], None] | None = None,
                on_file: OnFile | None = None, now: datetime | None = None,
                environ: Mapping[str, str] | None = None) -> LoadSummary:
    """One load run of ``source``. A folder waits ``settle_seconds`` (default: the
    source's own setting) for files being written; ``retry_quarantined`` re-reads its
    files with open quarantine entries. A SQL source reads its new and changed rows."""
    if isinstance(source, FolderSource):
        settle = source.settle_seconds if settle_seconds is None else settle_seconds
        return load_folder(con, source.path, key, progress=progress, after_load=after_load,
                           now=now, settle_seconds=settle, retry_quarantined=retry_quarantined,
                           on_file=on_file)
    if isinstance(source, SqlSource):
        return load_sql_source(con, source.reader(environ), key, after_load=after_load, now=now,
                               progress=progress, on_file=on_file)
    raise TypeError(f"not a source: {source!r}")
