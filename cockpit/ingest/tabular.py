"""The load of one CSV or JSON-lines export, the same for every kind: stage the rows,
pseudonymize contacts, validate, refuse duplicates, quarantine refused rows, then hand
the accepted rows to the kind's writer. A kind is described by a TableSpec."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .context import ACCEPTED, CHECKED, PIDS, STAGE, FileCounts, LoadContext
from .people import ERASED, add_pids, erased_visits, ledger_has_entries, visitors_erased
from .quarantine import quarantine_rows
from .csv_reader import stage_csv
from .jsonl_reader import stage_jsonl
from .staging import Field, Staged
from .validate import (DuplicateKey, Rule, check_rows, counts_sql, create_accepted,
                       flag_duplicates, refusals_sql)


@dataclass(frozen=True)
class TableSpec:
    """How one kind of export is read, checked and written.

    ``relation`` is a SELECT over the staging table ``s`` (and ``k``, the pids, when
    the kind has contacts) giving ``_rid`` (s.rowid), the raw and typed columns the
    rules and the writer use; ``rules`` refuse rows; ``key`` refuses repeated rows;
    ``ignore`` (SQL) marks rows that are not data; ``write`` upserts the accepted rows.
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
    visitor: str | None = None  # the relation's web visitor id column, checked against erased visitors
    trim: bool = True  # trim values (ad reports are exact; trimming 200k rows costs)


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
    were read from (a file, a SQL source): the one path every row takes.

    Few statements, whatever the size: pids (contact kinds), one statement that checks
    every row, one that counts (and finds whether keys repeat), the quarantine (only
    when something was refused), the writer's upserts (only when something was
    accepted), and the clean-up."""
    con = ctx.con
    erased_if = []
    if spec.contacts:
        add_pids(ctx, *spec.contacts, hcp=spec.hcp)
        # Hashing every pid against an empty erasure ledger would find nothing.
        if ledger_has_entries(con):
            erased_if.append(ERASED)
    if spec.visitor and visitors_erased(con):
        erased_if.append(erased_visits(spec.visitor))
    erased = " OR ".join(erased_if) or None
    rules = spec.rules(ctx)
    check_rows(ctx, spec.relation(ctx), rules, spec.ignore, erased)
    ignored, erased_rows, refused, repeated = con.execute(counts_sql(spec.key)).fetchone()
    if repeated:
        flag_duplicates(ctx, spec.key)
        refused += repeated
    if refused or staged.issues:
        quarantine_rows(ctx, staged, spec.fields, refusals_sql(rules), spec.key)
    accepted = staged.rows - ignored - erased_rows - refused
    if accepted:
        create_accepted(ctx)
        spec.write(ctx)
    _drop_temporaries(ctx)
    return FileCounts(read=staged.rows + len(staged.issues), accepted=accepted,
                      quarantined=refused + len(staged.issues), erased=erased_rows, ignored=ignored)


def _drop_temporaries(ctx: LoadContext) -> None:
    # One call for all: each statement still runs, but the round trips are saved.
    ctx.con.execute(f"DROP VIEW IF EXISTS {ACCEPTED}; "
                    + " ".join(f"DROP TABLE IF EXISTS {t};" for t in (CHECKED, PIDS, STAGE)))
