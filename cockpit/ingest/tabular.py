"""The load of one CSV or JSON-lines export, the same for every kind: stage the rows,
pseudonymize contacts, validate, refuse duplicates, quarantine refused rows, then hand
the accepted rows to the kind's writer. A kind is described by a TableSpec."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .context import ACCEPTED, RELATION, PIDS, STAGE, VERDICT, FileCounts, LoadContext
from .people import ERASED, add_pids
from .quarantine import quarantine_rows
from .csv_reader import stage_csv
from .jsonl_reader import stage_jsonl
from .staging import Field, Staged
from .validate import DuplicateKey, Rule, build_verdict, create_accepted, flag_duplicates


@dataclass(frozen=True)
class TableSpec:
    """How one kind of export is read, checked and written.

    ``relation`` is a SELECT over the staging table ``s`` (and ``k``, the pids, when
    the kind has contacts) giving ``_rid`` (s.rowid), the raw and typed columns the
    rules and the writer use; ``rules`` refuse rows; ``key`` refuses repeated rows;
    ``ignore`` (SQL) marks rows that are not data; ``write`` upserts the accepted rows
    (``materialize`` when it reads them more than once).
    """

    kind: str
    fmt: str  # 'csv' or 'jsonl'
    fields: tuple[Field, ...]
    relation: Callable[[LoadContext], str]
    rules: Callable[[LoadContext], list[Rule]]
    key: DuplicateKey
    write: Callable[[LoadContext], None]
    contacts: tuple[str, str] | None = None  # the e-mail and phone fields, made into pid
    hcp: str | None = None  # the HCP registry number field, made into hcp_pid
    ignore: str | None = None
    trim: bool = True  # trim values (ad reports are exact; trimming 200k rows costs)
    materialize: bool = False


def load_table(ctx: LoadContext, spec: TableSpec, path: Path, text: str) -> FileCounts:
    """Load one export of ``spec``'s kind within the caller's transaction. (On failure
    the caller rolls back, which also removes the temporary tables made here.)"""
    if spec.fmt == "csv":
        staged = stage_csv(ctx, path, text, spec.fields, spec.trim)
    else:
        staged = stage_jsonl(ctx, path, text, spec.fields, spec.trim)
    return load_staged(ctx, spec, staged)


def load_staged(ctx: LoadContext, spec: TableSpec, staged: Staged) -> FileCounts:
    """Validate, quarantine and write rows already in the staging table, whatever they
    were read from (a file, a SQL source): the one path every row takes."""
    con = ctx.con
    if spec.contacts:
        add_pids(ctx, *spec.contacts, hcp=spec.hcp)
    build_verdict(ctx, spec.relation(ctx), spec.rules(ctx), spec.ignore,
                  ERASED if spec.contacts else None)
    flag_duplicates(ctx, spec.key)
    create_accepted(ctx, spec.materialize)
    quarantine_rows(ctx, staged, spec.fields)
    ignored, erased, refused = con.execute(
        f"SELECT count(*) FILTER (WHERE _ignored), count(*) FILTER (WHERE _erased), "
        f"count(*) FILTER (WHERE _reason IS NOT NULL) FROM {VERDICT}").fetchone()
    accepted = staged.rows - ignored - erased - refused
    if accepted:
        spec.write(ctx)
    _drop_temporaries(ctx, spec.materialize)
    return FileCounts(read=staged.rows + len(staged.issues), accepted=accepted,
                      quarantined=refused + len(staged.issues), erased=erased, ignored=ignored)


def _drop_temporaries(ctx: LoadContext, materialized: bool) -> None:
    con = ctx.con
    con.execute(f"DROP {'TABLE' if materialized else 'VIEW'} {ACCEPTED}")
    con.execute(f"DROP VIEW {RELATION}")
    for table in (VERDICT, PIDS, STAGE):
        con.execute(f"DROP TABLE IF EXISTS {table}")
