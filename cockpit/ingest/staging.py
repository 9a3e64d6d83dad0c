"""What the readers share: the description of an export's columns, the staged file,
and DuckDB's CSV reader run so that broken lines are counted rather than fatal."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from .context import Issue
from .frames import python_rows
from .sqltext import ident, lit

_GLOB_CHARS = "*?[]{}"
_REJECTS = "ingest_rejects"
_REJECT_SCANS = "ingest_reject_scans"


@dataclass(frozen=True)
class Field:
    """A column of an export."""

    name: str  # the name the loaders use in SQL
    source: str  # the CSV header, or the dotted path in a JSON object ('utm.source')
    required: bool = True  # a CSV whose header lacks it is rejected as a whole
    contact: bool = False  # an identifier: never stored, not even in quarantine


@dataclass(frozen=True)
class Staged:
    """The staging table of a file: ``rows`` rows; ``issues`` are rows refused while
    parsing; ``row_sql`` gives the 1-based data row of a staged row aliased ``s``."""

    rows: int
    issues: list[Issue]
    row_sql: str


def value_sql(column: str, trim: bool) -> str:
    """SQL of a staged value: trimmed, with an empty text as NULL, when ``trim``."""
    return f"nullif(trim({column}), '')" if trim else column


def duckdb_can_read(path: Path) -> bool:
    """DuckDB's readers take a path as a glob pattern; a name with glob characters is
    read in Python instead."""
    return not any(c in str(path) for c in _GLOB_CHARS)


def line_count(text: str) -> int:
    """Lines of ``text`` as DuckDB's readers count them: each ends at a line feed, a
    carriage return with a line feed, or a carriage return alone; a last line without
    an end counts too."""
    lines = text.count("\n") + text.count("\r") - text.count("\r\n")
    return lines + 1 if text and text[-1] not in "\r\n" else lines


def create_from_csv(con: duckdb.DuckDBPyConnection, table: str, select: str, path: Path,
                    options: str) -> int:
    """``CREATE TEMP TABLE table AS SELECT select FROM read_csv(path, options)`` with
    broken lines skipped; returns how many lines were broken (0 when all were read)."""
    con.execute(f"DROP TABLE IF EXISTS {_REJECTS}")
    con.execute(f"DROP TABLE IF EXISTS {_REJECT_SCANS}")
    con.execute(
        f"CREATE TEMP TABLE {table} AS SELECT {select} FROM read_csv({lit(str(path))}, {options}, "
        f"ignore_errors = true, store_rejects = true, "
        f"rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}')")
    broken = con.execute(f"SELECT count(*) FROM {_REJECTS}").fetchone()[0]
    con.execute(f"DROP TABLE IF EXISTS {_REJECTS}")
    con.execute(f"DROP TABLE IF EXISTS {_REJECT_SCANS}")
    return broken


def stage_values(con: duckdb.DuckDBPyConnection, table: str, fields: tuple[Field, ...],
                 rownums: list[int], values: dict[str, list], trim: bool = True) -> Staged:
    """Stage rows read in Python (one list of text values per field name, the data row
    number of each in ``rownums``) as the staging table ``table``, as the file readers
    do: every value text, trimmed and empty as NULL when ``trim``."""
    columns = {"_row": ("BIGINT", rownums),
               **{f.name: ("VARCHAR", values[f.name]) for f in fields}}
    select = ", ".join(f"{value_sql(ident(f.name), trim)} AS {ident(f.name)}" for f in fields)
    with python_rows(con, columns) as source:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT _row, {select} FROM {source}")
    return Staged(rows=len(rownums), issues=[], row_sql="s._row")
