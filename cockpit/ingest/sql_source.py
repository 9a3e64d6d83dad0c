"""SQL sources: a site pipeline or CRM table read through SQLAlchemy (any URL it takes:
SQLite, PostgreSQL, ...), incrementally by a watermark column.

Each run reads the rows whose watermark is at least the stored one (see watermark.py),
in watermark order, in batches. A batch is staged exactly as a file's rows are (every
value as text, under the export's column names, see docs/EXPORTS.md), then takes the
same path: pseudonymization, validation, quarantine, upsert. Its rows, its quarantine
entries, its ``source_file`` record and the advanced watermark commit in one
transaction. The URL is never stored or printed with its password; the store knows
the source as ``sql:<name>``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping

import duckdb
import sqlalchemy as sa

from cockpit.privacy import pseudonym

from . import watermark
from .context import STAGE, FileCounts, LoadContext
from .quarantine import resolve_ids
from .runner import TABLE_SPECS, OnFile, naive_utc
from .runs import AfterLoad, execute, recorded_run, rollback, start_run, store_failure
from .staging import Field, stage_values
from .summary import FileResult, LoadSummary
from .tabular import TableSpec, load_staged

# Kinds a SQL table may hold: those whose rows carry their own id (the first column),
# which is how a corrected row closes its quarantine entry.
SQL_KINDS = ("site_pipeline", "prescreener", "hcp_referrals", "screening_events", "consent",
             "qr_scans", "web_events", "offline_costs")
DEFAULT_BATCH_ROWS = 50_000


class SourceError(RuntimeError):
    """The SQL source cannot be read (unreachable, locked, no such table or column)."""


@dataclass(frozen=True)
class SqlTable:
    """A table to read: ``columns`` maps export columns (as docs/EXPORTS.md names them)
    to the table's columns; an export column not mapped is read from the table column
    of the same name, when there is one."""

    name: str
    url: str
    table: str
    kind: str
    watermark: str
    columns: Mapping[str, str] = field(default_factory=dict)
    schema: str | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS

    @property
    def location(self) -> str:
        """The source as load runs, quarantine and source_file name it."""
        return f"sql:{self.name}"

    def shown_url(self) -> str:
        """The URL with its password hidden, for messages."""
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return "(an invalid URL)"


def fields_of(kind: str) -> tuple[Field, ...]:
    """The export columns of a kind that SQL sources may hold."""
    if kind not in SQL_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(SQL_KINDS)}")
    return TABLE_SPECS[kind].fields


def load_sql_source(con: duckdb.DuckDBPyConnection, source: SqlTable, key: bytes,
                    after_load: AfterLoad | None = None, now: datetime | None = None,
                    progress: Callable[[str], None] | None = None,
                    on_file: OnFile | None = None) -> LoadSummary:
    """Load the new and changed rows of ``source`` into the store behind ``con``.

    Raises SourceError when the source cannot be read (the run is recorded as failed;
    batches committed before stay, with their watermark) and StoreError when the store
    fails."""
    spec = TABLE_SPECS[source.kind]
    limit = naive_utc(now or datetime.now(timezone.utc))
    run_id = start_run(con, source.location)
    summary = LoadSummary(run_id=run_id, unit="batches")
    with recorded_run(con, summary, after_load):
        _read_batches(con, source, spec, key, limit, summary, progress, on_file)
    return summary


# ---------------------------------------------------------------- reading the source

def _read_batches(con, source: SqlTable, spec: TableSpec, key: bytes, now: datetime,
                  summary: LoadSummary, progress, on_file) -> None:
    mark, note = watermark.read(con, source.location, source.table, source.watermark)
    if note:
        summary.notes.append(note)
    engine = _engine(source)
    try:
        with engine.connect() as conn:
            mapping = _mapping(conn, source, spec.fields)
            nulls = _count_null_watermarks(conn, source)
            if nulls:
                summary.notes.append(f"{nulls:,} rows of {source.table} have no {source.watermark} "
                                     "and are not read")
            result = conn.execution_options(stream_results=True, yield_per=source.batch_rows) \
                .execute(_select(conn, source, mapping, spec.fields, mark))
            position = 0
            for number, chunk in enumerate(result.partitions(source.batch_rows), 1):
                rows, values, hashes = _fresh_rows(chunk, spec.fields, mark, key)
                if not rows:
                    continue
                outcome = _load_batch(con, source, spec, key, now, summary.run_id, rows,
                                      position, mark, values, hashes)
                position += len(rows)
                summary.files_seen += 1
                summary.add(outcome)
                if progress:
                    progress(f"[batch {number}] {outcome.line()}")
                if on_file:
                    on_file(number, 0, outcome)
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"Cannot read the SQL source {source.name} ({source.shown_url()}): "
                          f"{_first_line(exc)}") from exc
    finally:
        engine.dispose()


def _engine(source: SqlTable) -> sa.Engine:
    try:
        return sa.create_engine(source.url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise SourceError(f"The URL of the SQL source {source.name} ({source.shown_url()}) "
                          f"cannot be used: {exc}") from exc


def _mapping(conn: sa.Connection, source: SqlTable, fields: tuple[Field, ...]) -> dict[str, str | None]:
    """The table column of each export field (None: not in the table). Raises
    SourceError naming what is missing."""
    try:
        present = [c["name"] for c in sa.inspect(conn).get_columns(source.table, schema=source.schema)]
    except sa.exc.NoSuchTableError as exc:
        raise SourceError(f"The SQL source {source.name} has no table {source.table!r}.") from exc
    lower = {name.lower(): name for name in present}
    mapping: dict[str, str | None] = {}
    for f in fields:
        wanted = source.columns.get(f.source) or source.columns.get(f.name)
        if wanted is not None:
            if wanted not in present and wanted.lower() not in lower:
                raise SourceError(f"The table {source.table} of the SQL source {source.name} has no "
                                  f"column {wanted!r} (mapped from {f.source!r}).")
            mapping[f.name] = wanted if wanted in present else lower[wanted.lower()]
        else:
            mapping[f.name] = lower.get(f.source.lower()) or lower.get(f.name.lower())
    missing = [f.source for f in fields if f.required and mapping[f.name] is None]
    if missing:
        raise SourceError(
            f"The table {source.table} of the SQL source {source.name} has no column for "
            f"{', '.join(repr(m) for m in missing)}; map them under columns in its configuration.")
    if source.watermark not in present:
        raise SourceError(f"The table {source.table} of the SQL source {source.name} has no "
                          f"watermark column {source.watermark!r}.")
    return mapping


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _from(conn: sa.Connection, source: SqlTable) -> str:
    table = _quote(conn, source.table)
    return f"{_quote(conn, source.schema)}.{table}" if source.schema else table


def _select(conn: sa.Connection, source: SqlTable, mapping: dict[str, str | None],
            fields: tuple[Field, ...], mark: watermark.Mark) -> sa.TextClause:
    """The rows from the mark on, in watermark order (then by id, for stable row numbers)."""
    mark_col = _quote(conn, source.watermark)
    items = [f"{_quote(conn, mapping[f.name])} AS c{i}" if mapping[f.name] else f"NULL AS c{i}"
             for i, f in enumerate(fields)]
    items.append(f"{mark_col} AS wm")
    order = f"{mark_col}, {_quote(conn, mapping[fields[0].name])}"
    where = f"{mark_col} >= :wm" if mark.value is not None else f"{mark_col} IS NOT NULL"
    query = sa.text(f"SELECT {', '.join(items)} FROM {_from(conn, source)} WHERE {where} ORDER BY {order}")
    return query.bindparams(wm=mark.value) if mark.value is not None else query


def _count_null_watermarks(conn: sa.Connection, source: SqlTable) -> int:
    return conn.execute(sa.text(
        f"SELECT count(*) FROM {_from(conn, source)} WHERE {_quote(conn, source.watermark)} IS NULL"
    )).scalar_one()


def _fresh_rows(chunk, fields: tuple[Field, ...], mark: watermark.Mark, key: bytes):
    """The rows of a chunk not loaded before, as text, with their watermark values and
    row hashes (keyed, since rows hold contacts)."""
    rows, values, hashes = [], [], []
    for row in chunk:
        texts = [as_text(v) for v in row[:len(fields)]]
        mark_value = row[len(fields)]
        row_hash = pseudonym(key, json.dumps([texts, as_text(mark_value)], ensure_ascii=False), "row")
        if mark.seen(mark_value, row_hash):
            continue
        rows.append(texts)
        values.append(mark_value)
        hashes.append(row_hash)
    return rows, values, hashes


def as_text(value: Any) -> str | None:
    """A source value as the text a file would hold."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# ---------------------------------------------------------------- one batch

def _load_batch(con: duckdb.DuckDBPyConnection, source: SqlTable, spec: TableSpec, key: bytes,
                now: datetime, run_id: int, rows: list[list[str | None]], position: int,
                mark: watermark.Mark, values: list, hashes: list[str]) -> FileResult:
    """Stage, validate and write one batch with its watermark, in one transaction."""
    ctx = LoadContext(con=con, key=key, now=now, run_id=run_id, file=source.location,
                      kind=source.kind, location=source.location,
                      keys_may_exist=True)  # changed rows come again: upserts from the start
    label = f"{source.location} rows {position + 1:,}-{position + len(rows):,}"
    columns = {f.name: [row[i] for row in rows] for i, f in enumerate(spec.fields)}
    execute(con, "BEGIN TRANSACTION", f"loading {label}")
    try:
        staged = stage_values(con, STAGE, spec.fields, list(range(position + 1, position + len(rows) + 1)),
                              columns, spec.trim)
        resolve_ids(ctx, spec.fields[0])
        counts = load_staged(ctx, spec, staged)
        _record_batch(ctx, key, hashes, sum(len(t or "") for row in rows for t in row), counts)
        mark.advance(values, hashes)
        watermark.write(con, source.location, mark, run_id)
        con.execute("COMMIT")
    except duckdb.Error as exc:
        rollback(con)
        raise store_failure(f"Loading {label} failed in the store", exc) from exc
    except BaseException:
        rollback(con)
        raise
    return FileResult.loaded(label, source.kind, counts)


def _record_batch(ctx: LoadContext, key: bytes, hashes: list[str], size: int,
                  counts: FileCounts) -> None:
    """Record the batch like a file: the Data page's freshness reads these records."""
    batch = pseudonym(key, ctx.location + ":" + ",".join(hashes), "batch")
    ctx.con.execute(
        "INSERT INTO source_file (sha256, path, kind, size_bytes, run_id, loaded_at, rows_read, "
        "rows_accepted, rows_quarantined, status) "
        "VALUES (?, ?, ?, ?, ?, timezone('UTC', now()), ?, ?, ?, 'loaded') "
        "ON CONFLICT (sha256) DO UPDATE SET run_id = excluded.run_id, loaded_at = excluded.loaded_at",
        [batch, ctx.location, ctx.kind, size, ctx.run_id, counts.read, counts.accepted,
         counts.quarantined])


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
