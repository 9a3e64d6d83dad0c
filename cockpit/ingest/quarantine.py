"""Writing refused rows and files to the quarantine table. The ``raw`` column holds
the row's known fields as JSON without contact fields, so quarantine never keeps an
identifier; rows that could not be parsed into fields keep no raw text at all."""
from __future__ import annotations

from .context import STAGE, VERDICT, Issue, LoadContext
from .frames import python_rows
from .staging import Field, Staged
from .sqltext import ident, lit

_COLUMNS = "run_id, file, kind, row_number, field, reason, raw, created_at"
_CREATED = "timezone('UTC', now())"


def quarantine_rows(ctx: LoadContext, staged: Staged, fields: tuple[Field, ...]) -> None:
    """Quarantine the refused rows of the verdict table and the parse issues of the
    file, in file order."""
    con = ctx.con
    raw = "json_object(" + ", ".join(
        f"{lit(f.source)}, s.{ident(f.name)}" for f in fields if not f.contact) + ")"
    head = f"{ctx.run_id}, {lit(ctx.file)}, {lit(ctx.kind)}"
    refused = (
        f"SELECT {head}, {staged.row_sql} AS row_number, c._field, c._reason, {raw}, {_CREATED} "
        f"FROM {VERDICT} c JOIN {STAGE} s ON s.rowid = c._rid WHERE c._reason IS NOT NULL"
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
