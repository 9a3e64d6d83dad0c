"""Writing refused rows and files to the quarantine table. The ``raw`` column holds
the row's known fields as JSON without contact fields, so quarantine never keeps an
identifier; rows that could not be parsed into fields keep no raw text at all."""
from __future__ import annotations

from .context import STAGE, Issue, LoadContext
from .frames import python_rows
from .staging import Field, Staged
from .sqltext import ident, lit
from .validate import DuplicateKey

_COLUMNS = "run_id, file, kind, row_number, field, reason, raw, created_at"
_CREATED = "timezone('UTC', now())"


def quarantine_rows(ctx: LoadContext, staged: Staged, fields: tuple[Field, ...], refusals: str,
                    key: DuplicateKey) -> None:
    """Quarantine the refused rows (``refusals``: SQL giving ``_rid``, ``_dup``,
    ``_field`` and ``_reason``, see validate.refusals_sql; a duplicate takes the field
    and message of ``key``) and the parse issues of the file, in file order."""
    con = ctx.con
    raw = "json_object(" + ", ".join(
        f"{lit(f.source)}, s.{ident(f.name)}" for f in fields if not f.contact) + ")"
    head = f"{ctx.run_id}, {lit(ctx.file)}, {lit(ctx.kind)}"
    field = f"CASE WHEN c._dup THEN {lit(key.field) if key.field else 'NULL'} ELSE c._field END"
    reason = f"CASE WHEN c._dup THEN {key.reason} ELSE c._reason END"
    refused = (
        f"SELECT {head}, {staged.row_sql} AS row_number, {field}, {reason}, {raw}, {_CREATED} "
        f"FROM ({refusals}) c JOIN {STAGE} s ON s.rowid = c._rid"
    )
    if not staged.issues:
        con.execute(f"INSERT INTO quarantine ({_COLUMNS}) {refused} ORDER BY row_number")
    else:
        issues = {"row_number": ("BIGINT", [i.row for i in staged.issues]),
                  "field": ("VARCHAR", [i.field for i in staged.issues]),
                  "reason": ("VARCHAR", [i.reason for i in staged.issues]),
                  "raw": ("VARCHAR", [i.raw for i in staged.issues])}
        with python_rows(con, issues) as source:
            con.execute(
                f"INSERT INTO quarantine ({_COLUMNS}) SELECT * FROM ({refused} UNION ALL "
                f"SELECT {head}, row_number, field, reason, raw, {_CREATED} FROM {source}) "
                f"ORDER BY row_number"
            )


def quarantine_items(ctx: LoadContext, issues: list[Issue]) -> None:
    """Quarantine issues found in Python (setup items)."""
    if not issues:
        return
    columns = {"row_number": ("BIGINT", [i.row for i in issues]),
               "field": ("VARCHAR", [i.field for i in issues]),
               "reason": ("VARCHAR", [i.reason for i in issues]),
               "raw": ("VARCHAR", [i.raw for i in issues])}
    with python_rows(ctx.con, columns) as source:
        ctx.con.execute(
            f"INSERT INTO quarantine ({_COLUMNS}) SELECT {ctx.run_id}, {lit(ctx.file)}, "
            f"{lit(ctx.kind)}, row_number, field, reason, raw, {_CREATED} FROM {source}")


def quarantine_file(ctx: LoadContext, reason: str) -> None:
    """Quarantine a whole file (row 0) that cannot be parsed."""
    ctx.con.execute(
        f"INSERT INTO quarantine ({_COLUMNS}) VALUES (?, ?, ?, 0, NULL, ?, NULL, {_CREATED})",
        [ctx.run_id, ctx.file, ctx.kind, reason],
    )


# ---------------------------------------------------------------- resolution

_RESOLVE = ("INSERT INTO quarantine_resolution (quarantine_id, run_id, resolved_at) "
            "SELECT q.quarantine_id, ?, timezone('UTC', now()) FROM quarantine q ")
_OPEN = ("NOT EXISTS (SELECT 1 FROM quarantine_resolution z "
         "WHERE z.quarantine_id = q.quarantine_id)")


def resolve_file(ctx: LoadContext) -> None:
    """Close the open entries of this file left by earlier runs of the same source: the
    file is being read again (new bytes under the same name, or a retry), and whatever
    is still wrong with it gets new entries."""
    ctx.con.execute(
        _RESOLVE + "JOIN load_run r ON r.run_id = q.run_id "
        f"WHERE r.source = ? AND q.file = ? AND q.run_id < ? AND {_OPEN}",
        [ctx.run_id, ctx.location, ctx.file, ctx.run_id])


def resolve_ids(ctx: LoadContext, field: Field) -> None:
    """Close the open entries of a SQL source whose row id (``field``, as kept in the
    entry's raw JSON) is staged again now: the row was corrected at the source."""
    path = "$." + json_key(field.source)
    ctx.con.execute(
        _RESOLVE + f"WHERE q.file = ? AND q.run_id <= ? AND {_OPEN} AND "
        f"json_extract_string(q.raw, {lit(path)}) IN (SELECT {ident(field.name)} FROM {STAGE})",
        [ctx.run_id, ctx.file, ctx.run_id])


def json_key(name: str) -> str:
    """A JSON path member for a key that may hold dots or spaces."""
    return '"' + name.replace('"', '\\"') + '"'


def open_files(con, location: str) -> set[str]:
    """Files of the source at ``location`` that have open quarantine entries."""
    rows = con.execute(
        "SELECT DISTINCT q.file FROM quarantine q JOIN load_run r ON r.run_id = q.run_id "
        f"WHERE r.source = ? AND {_OPEN}", [location]).fetchall()
    return {row[0] for row in rows}
