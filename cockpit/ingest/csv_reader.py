"""Staging a CSV export: every value as text, in file order, one row per data row.
DuckDB's reader does it fast; a file with broken rows (wrong number of fields,
unterminated quotes) or blank lines is read again with Python's csv module, so that
every refused row gets its exact row number and reason. The header may sit below
title lines (Google Ads reports) and is matched by name, in any order and case."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import STAGE, FileRejected, Issue, LoadContext
from .frames import python_rows
from .sqltext import ident, lit
from .staging import Field, Staged, create_from_csv, duckdb_can_read, line_count, value_sql

_DELIMITERS = (",", ";", "\t")
_HEADER_SEARCH_RECORDS = 10  # title lines a report may put above its header (Google Ads: 2)
_HEADER_SEARCH_CHARS = 1 << 16


@dataclass(frozen=True)
class _Header:
    """Where the header is and which column holds which field."""

    columns: int  # fields per record
    index: dict[str, int]  # field name -> position, for the fields present
    record: int  # 0-based record number of the header (title lines come before it)
    lines: int  # physical lines up to and including the header
    delimiter: str


def stage_csv(ctx: LoadContext, path: Path, text: str, fields: tuple[Field, ...],
              trim: bool = True) -> Staged:
    """Stage a CSV export whose decoded content is ``text``. Raises FileRejected when
    the header cannot be found or lacks required columns."""
    header = _find_header(text, fields)
    if not _has_blank_line(text) and duckdb_can_read(path):
        fast = _stage_csv_duckdb(ctx, path, text, header, fields, trim)
        if fast is not None:
            return fast
    return _stage_csv_python(ctx, text, header, fields, trim)


def _norm(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().lower()


def _records(text: str, delimiter: str) -> list[tuple[list[str], int]]:
    """The first records of ``text`` with the physical line count after each."""
    reader = csv.reader(io.StringIO(text[:_HEADER_SEARCH_CHARS], newline=""), delimiter=delimiter)
    found: list[tuple[list[str], int]] = []
    try:
        for record in reader:
            found.append((record, reader.line_num))
            if len(found) >= _HEADER_SEARCH_RECORDS:
                break
    except csv.Error:
        pass
    return found


def _find_header(text: str, fields: tuple[Field, ...]) -> _Header:
    if not text.strip():
        raise FileRejected("file is empty")
    required = [_norm(f.source) for f in fields if f.required]
    for delimiter in _DELIMITERS:
        for number, (record, lines) in enumerate(_records(text, delimiter)):
            cells = [_norm(c) for c in record]
            if all(r in cells for r in required):
                return _header_from(cells, number, lines, delimiter, fields)
    first = next((r for r, _ in _records(text, ",") if any(c.strip() for c in r)), [])
    cells = {_norm(c) for c in first}
    missing = [f.source for f in fields if f.required and _norm(f.source) not in cells]
    raise FileRejected(
        "header is missing required columns: " + ", ".join(f"'{m}'" for m in missing)
    )


def _header_from(cells: list[str], record: int, lines: int, delimiter: str,
                 fields: tuple[Field, ...]) -> _Header:
    index = {}
    for f in fields:
        wanted = _norm(f.source)
        positions = [i for i, c in enumerate(cells) if c == wanted]
        if len(positions) > 1:
            raise FileRejected(f"column '{f.source}' appears twice in the header")
        if positions:
            index[f.name] = positions[0]
    return _Header(len(cells), index, record, lines, delimiter)


def _stage_select(fields: tuple[Field, ...], index: dict[str, int], colname, trim: bool) -> str:
    parts = []
    for f in fields:
        if f.name in index:
            parts.append(f"{value_sql(colname(f, index[f.name]), trim)} AS {ident(f.name)}")
        else:
            parts.append(f"NULL::VARCHAR AS {ident(f.name)}")
    return ", ".join(parts)


def _stage_csv_duckdb(ctx: LoadContext, path: Path, text: str, header: _Header,
                      fields: tuple[Field, ...], trim: bool) -> Staged | None:
    """Stage with DuckDB's CSV reader. None when the file has broken rows (their row
    numbers would not be exact); the staging table is then dropped."""
    con = ctx.con
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(header.columns)) + "}"
    select = _stage_select(fields, header.index, lambda f, i: f"c{i}", trim)
    options = (f"header = false, skip = {header.lines}, auto_detect = false, "
               f"delim = {lit(header.delimiter)}, quote = '\"', escape = '\"', columns = {columns}")
    fast = False
    if '"' not in text:
        # Without quotes every line is one record: when DuckDB read as many rows as the
        # file has lines after the header, no row was broken (a broken one is skipped).
        rows = con.execute(
            f"CREATE TEMP TABLE {STAGE} AS SELECT {select} FROM read_csv({lit(str(path))}, "
            f"{options}, ignore_errors = true)").fetchone()[0]
        fast = rows == line_count(text) - header.lines
        if not fast:
            con.execute(f"DROP TABLE {STAGE}")
    # Quoted values may span lines: DuckDB's reject table tells whether rows broke.
    if not fast and create_from_csv(con, STAGE, select, path, options):
        con.execute(f"DROP TABLE {STAGE}")
        return None
    # A table filled by one CREATE ... AS from read_csv numbers its rows in file order
    # (from a base that depends on the transaction).
    rows, base = con.execute(f"SELECT count(*), coalesce(min(rowid), 0) FROM {STAGE}").fetchone()
    return Staged(rows=rows, issues=[], row_sql=f"(s.rowid - {base} + 1)")


def _has_blank_line(text: str) -> bool:
    # DuckDB skips blank lines, so its row numbers after one would be off by one.
    body = text.rstrip("\r\n \t")
    return "\n\n" in body or "\n\r\n" in body


def _stage_csv_python(ctx: LoadContext, text: str, header: _Header, fields: tuple[Field, ...],
                      trim: bool) -> Staged:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=header.delimiter)
    present = [(f.name, header.index[f.name]) for f in fields if f.name in header.index]
    values: dict[str, list[Any]] = {name: [] for name, _ in present}
    rownums: list[int] = []
    issues: list[Issue] = []
    row = 0
    short_last = False
    try:
        for _ in range(header.record + 1):
            next(reader)
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line is not a row
            row += 1
            if len(record) != header.columns:
                short_last = len(record) < header.columns
                issues.append(Issue(row, None, f"row has {len(record)} fields, expected {header.columns}"))
                continue
            short_last = False
            rownums.append(row)
            for name, i in present:
                values[name].append(record[i] or None)
    except csv.Error as exc:
        raise FileRejected(f"cannot parse CSV near data row {row + 1}: {exc}") from exc
    if short_last and issues and issues[-1].row == row:
        last = issues.pop()
        issues.append(Issue(last.row, None, last.reason + " (the file may be truncated)"))
    _stage_rows(ctx, rownums, values, fields, header.index, trim)
    return Staged(rows=len(rownums), issues=issues, row_sql="s._row")


def _stage_rows(ctx: LoadContext, rownums: list[int], values: dict[str, list], fields: tuple[Field, ...],
                index: dict[str, int], trim: bool) -> None:
    """Create the staging table from rows parsed in Python."""
    columns = {"_row": ("BIGINT", rownums), **{name: ("VARCHAR", v) for name, v in values.items()}}
    select = _stage_select(fields, index, lambda f, i: ident(f.name), trim)
    with python_rows(ctx.con, columns) as source:
        ctx.con.execute(f"CREATE TEMP TABLE {STAGE} AS SELECT _row, {select} FROM {source}")
