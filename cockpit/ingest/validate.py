"""Validation of staged rows in SQL. A rule is a condition that is true for a refused
row, with the message it gives; all rules run over the whole file at once, and the
first failing rule of a row is its quarantine reason. Duplicates of a row's key within
the file are refused after the row rules, keeping the first occurrence.

One statement types the rows (the kind's relation: lookups, parsed values), runs the
rules and flags repeated keys, into a table of checked rows; the writers read the
accepted rows from it, and the messages are built for the refused rows alone. Each
statement costs planning time however small the file, so a file takes few of them."""
from __future__ import annotations

from dataclasses import dataclass

from .context import ACCEPTED, CHECKED, LoadContext
from .sqltext import cat, ident, in_list, lit, quoted

_INTEGER = r"'\s*-?[0-9]+\s*'"


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


def check_rows(ctx: LoadContext, relation: str, rules: list[Rule], ignore: str | None = None,
               erased: str | None = None) -> None:
    """Create the table of checked rows: every row of the typed ``relation`` with its
    fate, in one statement. ``_ignored``: not data (``ignore``); ``_erased``: of an
    erased person (``erased``); ``_rule``: the number (1-based, in ``rules``) of its
    first failing rule, NULL when none fails; ``_dup``: false here, see ``flag_duplicates``.

    Only the rule numbers are computed here; the messages of refused rows are built by
    ``refusals_sql`` for those rows alone (usually few), which keeps this statement
    cheap to plan and to run."""
    ignored = f"coalesce(({ignore}), false)" if ignore else "false"
    erased_sql = f"(coalesce(({erased}), false) AND NOT {ignored})" if erased else "false"
    # A rule whose condition is NULL (a value it does not apply to) does not fire.
    first = " ".join(f"WHEN {r.bad} THEN {n}" for n, r in enumerate(rules, 1))
    rows = f"SELECT p.*, {ignored} AS _ignored, {erased_sql} AS _erased FROM ({relation}) p"
    if ignore or erased:  # rules do not judge rows that are not data or erased
        rule = f"CASE WHEN _ignored OR _erased THEN NULL {first} END" if rules else "NULL"
        select = f"SELECT *, CAST({rule} AS INTEGER) AS _rule, false AS _dup FROM ({rows})"
    else:  # one level less to plan
        rule = f"CASE {first} END" if rules else "NULL"
        select = (f"SELECT p.*, false AS _ignored, false AS _erased, CAST({rule} AS INTEGER) AS _rule, "
                  f"false AS _dup FROM ({relation}) p")
    ctx.con.execute(f"CREATE TEMP TABLE {CHECKED} AS {select}")


def counts_sql(key: DuplicateKey) -> str:
    """SQL: how many checked rows are ignored, erased and refused by a rule, and how
    many of the rows that pass repeat the key of an earlier one (rows that pass minus
    their distinct keys)."""
    passing = "_rule IS NULL AND NOT _ignored AND NOT _erased"
    keys = f"row({', '.join(key.columns)})"  # a row value: NULL parts are equal, as in GROUP BY
    return (f"SELECT count(*) FILTER (WHERE _ignored), count(*) FILTER (WHERE _erased), "
            f"count(*) FILTER (WHERE _rule IS NOT NULL), "
            f"count(*) FILTER (WHERE {passing}) - count(DISTINCT {keys}) FILTER (WHERE {passing}) "
            f"FROM {CHECKED}")


def flag_duplicates(ctx: LoadContext, key: DuplicateKey) -> None:
    """Refuse every row whose key repeats that of an earlier row of the file that
    passed every rule: the first one (in file order) is kept. (This also keeps a batch
    free of repeated keys, which an upsert cannot take.)"""
    passing = "_rule IS NULL AND NOT _ignored AND NOT _erased"
    ctx.con.execute(
        f"UPDATE {CHECKED} SET _dup = true WHERE _rid IN (SELECT _rid FROM (SELECT _rid, "
        f"row_number() OVER (PARTITION BY {', '.join(key.columns)} ORDER BY _rid) AS n "
        f"FROM {CHECKED} WHERE {passing}) WHERE n > 1)")


def refusals_sql(rules: list[Rule]) -> str:
    """SQL: the refused rows of the checked table, ``_rid``, ``_dup`` and the ``_field``
    and ``_reason`` of the first failing rule (NULL for a duplicate, whose message the
    caller builds from the staged row with ``DuplicateKey.reason``)."""
    field = " ".join(f"WHEN {n} THEN {lit(r.field) if r.field else 'NULL'}"
                     for n, r in enumerate(rules, 1))
    reason = " ".join(f"WHEN {n} THEN {r.reason}" for n, r in enumerate(rules, 1))
    field_sql = f"CASE _rule {field} END" if rules else "NULL"
    reason_sql = f"CASE _rule {reason} END" if rules else "NULL"
    return (f"SELECT _rid, _dup, CAST({field_sql} AS VARCHAR) AS _field, "
            f"CAST({reason_sql} AS VARCHAR) AS _reason FROM {CHECKED} "
            f"WHERE _rule IS NOT NULL OR _dup")


def create_accepted(ctx: LoadContext) -> None:
    """The rows to write: a view of the accepted rows of the checked table (which is
    materialised, so a writer may read it several times at little cost)."""
    ctx.con.execute(
        f"CREATE TEMP VIEW {ACCEPTED} AS SELECT * EXCLUDE (_ignored, _erased, _rule, _dup) "
        f"FROM {CHECKED} WHERE _rule IS NULL AND NOT _ignored AND NOT _erased AND NOT _dup"
    )
