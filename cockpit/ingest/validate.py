"""Validation of staged rows in SQL. A rule is a condition that is true for a refused
row, with the message it gives; all rules run over the whole file at once, and the
first failing rule of a row is its quarantine reason. Duplicates of a row's key within
the file are refused after the row rules, keeping the first occurrence.

The typed rows are a view: evaluating it is cheap, materialising a wide table of a
large file is not. The rules run once, giving each row the number of its first failing
rule; only the verdict on rows that are not accepted (refused, ignored, erased:
usually few) is stored, with the message built for those rows alone."""
from __future__ import annotations

from dataclasses import dataclass

from .context import ACCEPTED, RELATION, STAGE, VERDICT, LoadContext
from .sqltext import cat, ident, in_list, lit, quoted

_INTEGER = r"'\s*-?[0-9]+\s*'"
# Relation columns with these suffixes serve the rules only; accepted rows drop them.
RULE_ONLY = ("_raw", "_text")


@dataclass(frozen=True)
class Rule:
    """``bad`` (SQL, true when refused) with ``reason`` (SQL text) in ``field``."""

    field: str | None
    bad: str
    reason: str


@dataclass(frozen=True)
class DuplicateKey:
    """The natural key of a file's rows (columns of the typed relation), and the message
    for a later row with the same key (SQL over the staged row ``s``)."""

    columns: tuple[str, ...]
    field: str | None
    reason: str


# ---------------------------------------------------------------- rule builders
# ``src`` is the column as the file names it (the quarantine field), ``label`` the
# name used in the message, ``raw`` the staged text and ``typed`` the parsed value.

def required(src: str, raw: str) -> Rule:
    """The value must be present."""
    return Rule(src, f"{raw} IS NULL", lit(f"missing field '{src}'"))


def integer(src: str, label: str, raw: str, text: str | None = None) -> Rule:
    """When present, the value (``text``: the raw value cleaned) must be a whole number."""
    return Rule(src, f"{raw} IS NOT NULL AND NOT regexp_full_match({text or raw}, {_INTEGER})",
                cat(lit(f"{label} is not an integer ("), quoted(raw), lit(")")))


def number(src: str, label: str, raw: str, typed: str) -> Rule:
    """When present, the value must be a finite number."""
    return Rule(src, f"{raw} IS NOT NULL AND ({typed} IS NULL OR NOT isfinite({typed}))",
                cat(lit(f"{label} is not a number ("), quoted(raw), lit(")")))


def non_negative(src: str, label: str, raw: str, typed: str) -> Rule:
    """A parsed number must not be below zero."""
    return Rule(src, f"{typed} < 0", cat(lit(f"{label} is negative ("), f"trim({raw})", lit(")")))


def date(src: str, label: str, raw: str, typed: str, expected: str) -> Rule:
    """When present, the value must parse as a date in the ``expected`` format."""
    return Rule(src, f"{raw} IS NOT NULL AND {typed} IS NULL",
                cat(lit(f"{label} is not a date ("), quoted(raw), lit(f", expected {expected})")))


def date_not_future(src: str, typed: str, ctx: LoadContext) -> Rule:
    """A parsed date must not be after today."""
    return Rule(src, f"{typed} > {ctx.today_sql}",
                cat(lit("date "), f"CAST({typed} AS VARCHAR)", lit(" is in the future")))


def timestamp(src: str, label: str, raw: str, typed: str) -> Rule:
    """When present, the value must parse as an ISO 8601 timestamp."""
    return Rule(src, f"{raw} IS NOT NULL AND {typed} IS NULL",
                cat(lit(f"{label} is not a timestamp ("), quoted(raw), lit(")")))


def timestamp_not_future(src: str, raw: str, typed: str, ctx: LoadContext) -> Rule:
    """A parsed timestamp must not be after now."""
    return Rule(src, f"{typed} > {ctx.now_sql}", cat(lit("timestamp "), raw, lit(" is in the future")))


def one_of(src: str, label: str, raw: str, value: str, allowed: tuple[str, ...],
           empty_ok: bool = False) -> Rule:
    """When present, the (normalised) ``value`` must be one of ``allowed``."""
    choices = ", ".join(allowed) + (" or empty" if empty_ok else "")
    return Rule(src, f"{raw} IS NOT NULL AND {value} NOT IN {in_list(allowed)}",
                cat(lit(f"{label} "), quoted(raw), lit(f" is not one of {choices}")))


def known(src: str, what: str, raw: str, resolved: str, where: str | None = None) -> Rule:
    """When present, the value must name a known ``what`` (``resolved`` is its lookup)."""
    suffix = f" in {where}" if where else ""
    return Rule(src, f"{raw} IS NOT NULL AND {resolved} IS NULL",
                cat(lit(f"unknown {what} "), quoted(raw), lit(suffix)))


def site_of_study(src: str, site_raw: str, site_study: str, study: str) -> Rule:
    """A site, when given, must belong to the row's study."""
    return Rule(src, f"{site_study} IS NOT NULL AND {study} IS NOT NULL AND {site_study} <> {study}",
                cat(lit("site "), quoted(site_raw), lit(" belongs to study "), quoted(site_study),
                    lit(", not "), quoted(study)))


def birth_year(src: str, raw: str, typed: str, ctx: LoadContext) -> list[Rule]:
    """A birth year, when given, is a plausible four-digit year."""
    last = ctx.now.year
    return [
        integer(src, "birth_year", raw),
        Rule(src, f"{typed} NOT BETWEEN 1900 AND {last}",
             cat(lit("birth_year "), f"CAST({typed} AS VARCHAR)", lit(f" is out of range (1900-{last})"))),
    ]


def duplicate(src: str, column: str) -> DuplicateKey:
    """Key on a single id column (the same name in the stage and the relation): a
    second row with the same id is refused."""
    return DuplicateKey((column,), src,
                        cat(lit(f"duplicate {src} "), quoted(f"s.{ident(column)}"), lit(" in this file")))


# ---------------------------------------------------------------- evaluation

def parse_timestamp(raw: str) -> str:
    """SQL: an ISO 8601 text as a UTC timestamp (offsets applied; no zone means UTC)."""
    return f"timezone('UTC', try_cast({raw} AS TIMESTAMPTZ))"


def build_verdict(ctx: LoadContext, relation: str, rules: list[Rule], ignore: str | None = None,
                  erased: str | None = None) -> None:
    """Create the view of typed rows (``relation``) and the verdict table: every row
    that is not data (``ignore``), of an erased person (``erased``) or refused by a
    rule, with the ``_field`` and ``_reason`` of its first failing rule."""
    ignored = f"coalesce(({ignore}), false)" if ignore else "false"
    erased_sql = f"(coalesce(({erased}), false) AND NOT {ignored})" if erased else "false"
    # A rule whose condition is NULL (a value it does not apply to) does not fire.
    first = " ".join(f"WHEN {r.bad} THEN {n}" for n, r in enumerate(rules, 1))
    rule = f"CASE WHEN _ignored OR _erased THEN NULL {first} END" if rules else "NULL"
    field = " ".join(f"WHEN {n} THEN {lit(r.field) if r.field else 'NULL'}"
                     for n, r in enumerate(rules, 1))
    reason = " ".join(f"WHEN {n} THEN {r.reason}" for n, r in enumerate(rules, 1))
    con = ctx.con
    con.execute(f"CREATE TEMP VIEW {RELATION} AS {relation}")
    con.execute(
        f"CREATE TEMP TABLE {VERDICT} AS SELECT _rid, _ignored, _erased, "
        f"CAST({f'CASE _rule {field} END' if rules else 'NULL'} AS VARCHAR) AS _field, "
        f"CAST({f'CASE _rule {reason} END' if rules else 'NULL'} AS VARCHAR) AS _reason "
        f"FROM (SELECT *, {rule} AS _rule FROM (SELECT p.*, {ignored} AS _ignored, "
        f"{erased_sql} AS _erased FROM {RELATION} p)) "
        f"WHERE _ignored OR _erased OR _rule IS NOT NULL"
    )


def flag_duplicates(ctx: LoadContext, key: DuplicateKey) -> None:
    """Refuse every row whose key repeats that of an earlier accepted row of the file.
    (This also keeps a batch free of repeated keys, which an upsert cannot take.)"""
    con = ctx.con
    columns = ", ".join(key.columns)
    # Cheap test over all rows first: without a repeated key anywhere there is none
    # among the accepted rows.
    repeated = con.execute(
        f"SELECT 1 FROM {RELATION} GROUP BY {columns} HAVING count(*) > 1 LIMIT 1").fetchone()
    if not repeated:
        return
    con.execute(
        f"INSERT INTO {VERDICT} SELECT d._rid, false, false, "
        f"{lit(key.field) if key.field else 'NULL'}, {key.reason} "
        f"FROM (SELECT _rid, row_number() OVER (PARTITION BY {columns} ORDER BY _rid) AS n "
        f"FROM {RELATION} WHERE _rid NOT IN (SELECT _rid FROM {VERDICT})) d "
        f"JOIN {STAGE} s ON s.rowid = d._rid WHERE d.n > 1"
    )


def create_accepted(ctx: LoadContext, materialize: bool) -> None:
    """The rows to write: those without a verdict, without the columns only rules use.
    A table when the writer reads them several times, else a view."""
    con = ctx.con
    columns = [row[0] for row in con.execute(f"DESCRIBE {RELATION}").fetchall()]
    keep = ", ".join(ident(c) for c in columns if not c.endswith(RULE_ONLY))
    what = "TABLE" if materialize else "VIEW"
    con.execute(
        f"CREATE TEMP {what} {ACCEPTED} AS SELECT {keep} FROM {RELATION} "
        f"WHERE _rid NOT IN (SELECT _rid FROM {VERDICT})"
    )
