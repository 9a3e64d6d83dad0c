"""How far a SQL source has been read, kept in ``source_watermark``.

The next run reads the rows whose watermark is at least the stored value. Reading from
the value itself, not past it, keeps a row that the source committed later with the
same value; the rows already loaded at that value are recognised by their hash (kept
with the watermark) and dropped, so they are not loaded twice. The watermark is
written in the transaction of the rows it covers: a run killed between two batches
resumes after the last committed one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb

_DECODE = {
    "int": int,
    "float": float,
    "decimal": Decimal,
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "str": str,
}


def encode(value: Any) -> tuple[str, str]:
    """A watermark value as (type, text), so it can be bound again with its own type."""
    if isinstance(value, bool):
        raise TypeError("a boolean column cannot be a watermark")
    for name, kind in (("int", int), ("float", float), ("decimal", Decimal),
                       ("datetime", datetime), ("date", date), ("time", time), ("str", str)):
        if isinstance(value, kind):
            return name, value.isoformat() if hasattr(value, "isoformat") else str(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be a watermark")


def decode(kind: str, text: str) -> Any:
    """The value ``encode`` gave (type, text) for."""
    return _DECODE[kind](text)


@dataclass
class Mark:
    """The stored position of a source: ``value`` (None: read from the start) and the
    hashes of the rows loaded at exactly that value."""

    table: str
    column: str
    value: Any = None
    boundary: set[str] = field(default_factory=set)

    def seen(self, value: Any, row_hash: str) -> bool:
        """Whether a row read again at the boundary was loaded before, unchanged."""
        return self.value is not None and value == self.value and row_hash in self.boundary

    def advance(self, values: list[Any], hashes: list[str]) -> None:
        """Move past a batch read in watermark order (``values`` and ``hashes`` per row)."""
        if not values:
            return
        last = values[-1]
        at_last = {h for v, h in zip(values, hashes) if v == last}
        self.boundary = (self.boundary | at_last) if last == self.value else at_last
        self.value = last


def read(con: duckdb.DuckDBPyConnection, source: str, table: str, column: str) -> tuple[Mark, str | None]:
    """The stored mark of ``source``, and a note when it was kept for another table or
    column (the source is then read from the start; upserts keep that harmless)."""
    row = con.execute(
        "SELECT table_name, column_name, value_type, value, boundary FROM source_watermark "
        "WHERE source = ?", [source]).fetchone()
    if row is None:
        return Mark(table, column), None
    if (row[0], row[1]) != (table, column):
        return Mark(table, column), (
            f"the watermark was kept for {row[0]}.{row[1]}, now {table}.{column}: "
            "read from the start")
    return Mark(table, column, decode(row[2], row[3]), set(json.loads(row[4]))), None


def write(con: duckdb.DuckDBPyConnection, source: str, mark: Mark, run_id: int) -> None:
    """Store ``mark`` (within the caller's transaction, with the rows it covers)."""
    kind, text = encode(mark.value)
    con.execute(
        "INSERT INTO source_watermark (source, table_name, column_name, value_type, value, "
        "boundary, run_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, timezone('UTC', now())) "
        "ON CONFLICT (source) DO UPDATE SET table_name = excluded.table_name, "
        "column_name = excluded.column_name, value_type = excluded.value_type, "
        "value = excluded.value, boundary = excluded.boundary, run_id = excluded.run_id, "
        "updated_at = excluded.updated_at",
        [source, mark.table, mark.column, kind, text, json.dumps(sorted(mark.boundary)), run_id])
