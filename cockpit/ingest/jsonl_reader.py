"""Staging a JSON-lines export: one row per line, the line number as its data row.
DuckDB reads, checks and extracts the lines; the few lines it refuses are parsed again
in Python, for the parser's own message (``Expecting ',' delimiter at column 40``).

A line is taken when it is valid JSON (DuckDB's ``json_valid``), an object, its fields
single values (not objects or arrays) and its nested fields inside objects; a field's
value is the text ``json_extract_string`` gives. One statement reads the lines and
parses each once (``json_transform`` into text fields, the parents of nested fields as
JSON); the exact ``json_type`` checks run only on the rare lines where the parsed
values leave a doubt (a value that starts like an object or array, no known field)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .context import STAGE, Issue, LoadContext
from .sqltext import ident, lit
from .staging import Field, Staged, duckdb_can_read, line_count, value_sql


def stage_jsonl(ctx: LoadContext, path: Path, text: str, fields: tuple[Field, ...],
                trim: bool = True) -> Staged:
    """Stage a JSON-lines export. The data row of a line is its line number; blank
    lines are skipped. DuckDB reads, checks and extracts the lines; the few lines it
    refuses are parsed again in Python for the parser's message."""
    con = ctx.con
    explicit = True  # whether the lines are numbered by a _row column
    if not text.startswith("\ufeff") and "\x01" not in text and duckdb_can_read(path):
        # chr(1) cannot occur in JSON text (nor here), so every line is one field. The
        # staging table's rows are in file order, one per line.
        source = (f"read_csv({lit(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false, "
                  "auto_detect = false, delim = chr(1), quote = '', escape = '', ignore_errors = true)")
        read = con.execute(f"CREATE TEMP TABLE {STAGE} AS {_extraction(fields, trim, source)}"
                           ).fetchone()[0]
        explicit = read != line_count(text)
        if explicit:  # a line DuckDB could not read (too long): split here instead
            con.execute(f"DROP TABLE {STAGE}")
    if explicit:
        # A byte order mark, a name DuckDB would read as a glob pattern, or a line it
        # could not read: the lines are split here, numbered explicitly.
        source = ("(SELECT unnest(l) AS line, unnest(range(1, len(l) + 1)) AS _row "
                  "FROM (SELECT string_split(?, chr(10)) AS l))")
        con.execute(f"CREATE TEMP TABLE {STAGE} AS {_extraction(fields, trim, source, ', _row')}",
                    [text.lstrip("\ufeff")])
    rows, refused, base = con.execute(
        f"SELECT count(*) FILTER (WHERE _good), count(*) FILTER (WHERE NOT _good), "
        f"coalesce(min(rowid), 0) FROM {STAGE}").fetchone()
    # Rows read by one CREATE ... AS count up from a base that depends on the transaction.
    row_sql = "s._row" if explicit else f"(s.rowid - {base} + 1)"
    issues: list[Issue] = []
    if refused:
        bad = con.execute(f"SELECT {row_sql} AS n, _line FROM {STAGE} s WHERE NOT _good ORDER BY n"
                          ).fetchall()
        con.execute(f"DELETE FROM {STAGE} WHERE NOT _good")
        paths = [(f, f.source.split(".")) for f in fields]
        issues = [_json_issue(n, line, paths, fields) for n, line in bad if line and line.strip()]
    return Staged(rows=rows, issues=issues, row_sql=row_sql)


def _extraction(fields: tuple[Field, ...], trim: bool, source: str, keep: str = "") -> str:
    """SQL over ``source`` (a table expression giving ``line``): each field's value,
    ``_good`` (the line is taken) and ``_line`` (the text of a line not taken), plus the
    columns ``keep``.

    The line is parsed once: ``json_transform`` gives the leaves as text (the text
    ``json_extract_string`` gives) and the parents of nested fields as JSON, which a
    subquery per depth parses in turn (objects only). Who passes is decided from the
    parsed values; ``json_type`` over the line settles the rare doubtful cases."""
    tree: dict[str, Any] = {}
    for f in fields:
        node = tree
        *parents, leaf = f.source.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{f.source}: a field cannot also hold fields")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"{f.source}: a field cannot also hold fields")
        node[leaf] = f

    levels: list[list[str]] = []  # per depth of nesting: the parse of each object there
    values: dict[str, str] = {}  # field name -> its text
    parents: list[str] = []  # the JSON of each parent object

    def walk(node: dict[str, Any], column: str, depth: int) -> None:
        for name, child in node.items():
            value = f"struct_extract({column}, {lit(name)})"
            if isinstance(child, dict):
                while len(levels) <= depth:
                    levels.append([])
                parsed = f"j_{depth + 1}_{len(levels[depth])}"
                levels[depth].append(
                    f"CASE WHEN left({value}, 1) = '{{' THEN json_transform({value}, "
                    f"{lit(_shape(child))}) END AS {parsed}")
                parents.append(value)
                walk(child, parsed, depth + 1)
            else:
                values[child.name] = value

    walk(tree, "j_0", 0)
    query = (f"SELECT *, CASE WHEN json_valid(line) THEN json_transform(line, {lit(_shape(tree))}) "
             f"END AS j_0 FROM {source}")
    for parsed in levels:
        query = f"SELECT *, {', '.join(parsed)} FROM ({query})"
    leaves = list(values.values())
    paths = "[" + ", ".join(lit(f"$.{f.source}") for f in fields) + "]"
    # A parent must be an object or absent (NULL: missing or JSON null).
    parent_ok = " AND ".join(f"({p} IS NULL OR left({p}, 1) = '{{')" for p in parents)
    # No known field at all: the line may be another JSON value than an object.
    nothing = " AND ".join(f"struct_extract(j_0, {lit(name)}) IS NULL" for name in tree)
    # A leaf that is an object or an array reads as its JSON text; a string may start so too.
    doubtful = " OR ".join(f"left({v}, 1) IN ('{{', '[')" for v in leaves)
    good = ("CASE WHEN j_0 IS NULL THEN false "
            + (f"WHEN NOT ({parent_ok}) THEN false " if parents else "")
            + f"WHEN {nothing} THEN json_type(line) = 'OBJECT' "
            f"WHEN coalesce({doubtful}, false) THEN "
            f"NOT list_has_any(json_type(line, {paths}), ['OBJECT', 'ARRAY']) ELSE true END")
    query = f"SELECT *, {good} AS _good FROM ({query})"
    items = ", ".join(f"{value_sql(values[f.name], trim)} AS {ident(f.name)}" for f in fields)
    return (f"SELECT {items}, _good, CASE WHEN NOT _good THEN line END AS _line{keep} "
            f"FROM ({query})")


def _shape(node: dict[str, Any]) -> str:
    """The json_transform structure of an object: leaves as text, parents as JSON."""
    return json.dumps({k: "JSON" if isinstance(v, dict) else "VARCHAR" for k, v in node.items()})


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
