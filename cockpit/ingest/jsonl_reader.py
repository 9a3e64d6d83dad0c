"""Staging a JSON-lines export: one row per line, the line number as its data row.
DuckDB reads, checks and extracts the lines; the few lines it refuses are parsed again
in Python, for the parser's own message (``Expecting ',' delimiter at column 40``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .context import STAGE, Issue, LoadContext
from .sqltext import ident, lit
from .staging import Field, Staged, create_from_csv, duckdb_can_read, value_sql

_LINES = "ingest_lines"


def stage_jsonl(ctx: LoadContext, path: Path, text: str, fields: tuple[Field, ...],
                trim: bool = True) -> Staged:
    """Stage a JSON-lines export. The data row of a line is its line number; blank
    lines are skipped. DuckDB reads, checks and extracts the lines; the few lines it
    refuses are parsed again in Python for the parser's message."""
    con = ctx.con
    row = _stage_lines(ctx, path, text)
    leaves = [f"$.{f.source}" for f in fields]
    parents = sorted({f"$.{'.'.join(f.source.split('.')[:depth])}"
                      for f in fields for depth in range(1, f.source.count(".") + 1)})
    # A line is taken when it is a JSON object whose fields are single values (and
    # whose nested fields sit in objects).
    shaped = [f"NOT list_has_any(json_type(line, {_sql_list(leaves)}), ['OBJECT', 'ARRAY'])"]
    shaped += [f"coalesce(json_type(line, {lit(p)}) IN ('OBJECT', 'NULL'), true)" for p in parents]
    good = (f"CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' AND {' AND '.join(shaped)} "
            "ELSE false END")
    values = ", ".join(
        f"{value_sql(f'v[{i}]', trim)} AS {ident(f.name)}" for i, f in enumerate(fields, 1))
    con.execute(
        f"CREATE TEMP TABLE {STAGE} AS SELECT _row, {values} FROM (SELECT {row} AS _row, "
        f"json_extract_string(line, {_sql_list(leaves)}) AS v FROM {_LINES} WHERE {good})")
    lines, rows = con.execute(
        f"SELECT (SELECT count(line) FROM {_LINES}), (SELECT count(*) FROM {STAGE})").fetchone()
    refused = [] if lines == rows else con.execute(
        f"SELECT {row} AS n, line FROM {_LINES} WHERE n NOT IN (SELECT _row FROM {STAGE}) "
        f"ORDER BY n").fetchall()
    con.execute(f"DROP TABLE {_LINES}")
    paths = [(f, f.source.split(".")) for f in fields]
    issues = [_json_issue(n, line, paths, fields) for n, line in refused if line and line.strip()]
    return Staged(rows=rows, issues=issues, row_sql="s._row")


def _stage_lines(ctx: LoadContext, path: Path, text: str) -> str:
    """The lines of the file in a temporary table (a blank line is NULL or empty);
    returns the SQL of a line's number. DuckDB's reader is parallel and keeps the blank
    lines of a one-column file; a file with a byte order mark, or a name DuckDB would
    read as a glob pattern, is split here instead."""
    con = ctx.con
    if not text.startswith("\ufeff") and duckdb_can_read(path):
        # chr(1) cannot occur in JSON text, so every line is one field.
        broken = create_from_csv(
            con, _LINES, "line", path,
            "columns = {'line': 'VARCHAR'}, header = false, auto_detect = false, "
            "delim = chr(1), quote = '', escape = ''")
        if not broken:
            base = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {_LINES}").fetchone()[0]
            return f"(rowid - {base} + 1)"  # rows of one CREATE ... AS are in file order
        con.execute(f"DROP TABLE {_LINES}")
    con.execute(
        f"CREATE TEMP TABLE {_LINES} AS SELECT line, _row FROM (SELECT unnest(l) AS line, "
        "unnest(range(1, len(l) + 1)) AS _row FROM (SELECT string_split(?, chr(10)) AS l))",
        [text.lstrip("\ufeff")])
    return "_row"


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]"


def _json_issue(row: int, line: str, paths: list[tuple[Field, list[str]]],
                fields: tuple[Field, ...]) -> Issue:
    """Why a line was refused, in the words of Python's JSON parser."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        # Some messages end in 'at' themselves ('Invalid control character at').
        message = exc.msg.removesuffix(" at")
        return Issue(row, None, f"malformed JSON: {message} at column {exc.colno}")
    if not isinstance(obj, dict):
        return Issue(row, None, "line is not a JSON object")
    flat, problem = _flatten(obj, paths)
    if problem is not None:
        return Issue(row, problem[0], problem[1], raw=raw_json(flat, fields))
    return Issue(row, None, "malformed JSON: not standard JSON")


def _flatten(obj: dict, paths: list[tuple[Field, list[str]]]
             ) -> tuple[dict[str, str | None], tuple[str, str] | None]:
    """The text value of each field (by source path), or the first type problem."""
    flat: dict[str, str | None] = {}
    problem = None
    for f, path in paths:
        node: Any = obj
        for depth, part in enumerate(path):
            if node is None:
                break
            if not isinstance(node, dict):
                problem = problem or (".".join(path[:depth]), f"{'.'.join(path[:depth])} is not an object")
                node = None
                break
            node = node.get(part)
        if isinstance(node, (dict, list)):
            problem = problem or (f.source, f"{f.source} is not a single value")
            node = None
        flat[f.source] = _text(node)
    return flat, problem


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def raw_json(flat: dict[str, str | None], fields: tuple[Field, ...]) -> str:
    """A parsed row as JSON for quarantine: the known fields only, contacts removed."""
    return json.dumps({f.source: flat.get(f.source) for f in fields if not f.contact},
                      ensure_ascii=False)
