"""Erasure of a data subject (GDPR Art. 17): every row of the person, everywhere, and
the bytes of those rows out of the database file.

``erase`` works on the database file, not through the serving process: it needs the
file to itself (DuckDB allows one read-write process per file), because after
deleting the rows it rewrites the whole file. DuckDB marks deleted rows as deleted and
leaves their bytes in the file until the space is reused, so a byte search would still
find the pid; copying every live row into a new file (``COPY FROM DATABASE``) and
putting that file in place of the old one leaves nothing of the person behind.

What is removed, and what stays:

- every row whose ``pid`` is the person's: ``person``, ``visitor_link``,
  ``touchpoint``, ``funnel_event``, ``consent_event``, the derived ``journey``,
  ``journey_path`` and ``consent_decision``, and any other table with a ``pid`` column (found at run time, so a
  later migration is not missed); ``touchpoint.hcp_pid`` names a physician and is not a
  data subject here;
- anonymous touchpoints of the person's web visitors (cookie ids linked to the person);
- refused rows of the person in ``quarantine`` (their ``raw`` holds no contact, but it
  holds ids: the person's visitor ids and the ids of the person's own records, such as
  the pre-screener response or the pipeline record), with their resolutions;
- the erasure ledger, the subject request and the audit entry name the person by
  ``subject_hash(pid)`` only; they stay, as proof that the request was honoured and so
  that later loads skip the person.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb

from cockpit import audit, derive
from cockpit.privacy import subject_hash, visitor_hash
from cockpit.store import StoreError, open_db

Progress = Callable[[str], None]

# Tables whose rows of a person are found by their pid column, in deletion order
# (derived before facts before the person). Other tables with a pid column are found
# at run time and handled the same way.
PID_TABLES = ("journey", "journey_path", "consent_decision", "touchpoint", "funnel_event", "consent_event", "visitor_link",
              "person")

# How the loaders make the ids of a person's rows from the ids of the export rows
# ('pre:<response_id>:lead', 'pipe:<record_id>', ...): the prefix names the field of the
# export, as a refused row's quarantine ``raw`` keys it. Referral and sign-up ids also
# appear on pre-screener rows (the referral or event that led to the response).
ID_PREFIX_FIELDS = {
    "pre": "response_id",
    "ref": "referral_id",
    "sig": "signup_id",
    "pipe": "record_id",
    "web": "event_id",
    "qr": "scan_id",
}

# What else is computed from the facts, and how erasure deals with it.
DERIVED_NOTES = (
    "journey, journey_path and consent_decision: rebuilt from the remaining facts "
    "(cockpit.derive.refresh)",
    "alert evaluations and alert states keep the aggregate values seen when they were "
    "evaluated (a record of what was judged and sent; no person-level data); the next "
    "evaluation uses the data without the person",
    "cached model fits and forecasts live only in the serving process, which is stopped "
    "for the erasure, so they are computed afresh when it starts again",
)


class ErasureError(RuntimeError):
    """The erasure cannot be done (store in use, missing, no space); nothing changed
    unless the message says otherwise."""


@dataclass
class ErasureReport:
    """What ``erase`` did.

    ``status`` is ``erased`` (rows were removed), ``already_erased`` (the person is in
    the erasure ledger and no row of them is left) or ``not_found`` (no row and no
    ledger entry: nothing changed). ``rows`` counts the rows deleted per table;
    ``size_before`` / ``size_after`` are the database file's sizes in bytes before the
    erasure and after the rewrite (``size_after`` is None when the file was not
    rewritten).
    """

    pid: str
    subject: str
    status: str
    rows: dict[str, int] = field(default_factory=dict)
    size_before: int = 0
    size_after: int | None = None
    rewritten: bool = False
    requested_at: datetime | None = None  # when the request arrived (UTC, naive)
    completed_at: datetime | None = None  # when the rows were deleted (UTC, naive)
    erased_before: datetime | None = None  # completion of an earlier erasure of the person
    audit_entry: int | None = None
    derived: tuple[str, ...] = DERIVED_NOTES

    @property
    def total(self) -> int:
        """All rows deleted."""
        return sum(self.rows.values())

    @property
    def message(self) -> str:
        """One sentence saying what happened."""
        if self.status == "not_found":
            return (f"No data of person {self.pid} in the store and no earlier erasure: "
                    f"nothing was changed.")
        if self.status == "already_erased":
            when = _day(self.erased_before)
            return (f"Person {self.pid} was already erased{when}; no row of them is left. "
                    f"The file was rewritten again, so no deleted bytes remain.")
        again = f" (already in the erasure ledger{_day(self.erased_before)})" if self.erased_before else ""
        return f"Erased person {self.pid}{again}: {self.total} rows removed."


def _day(ts: datetime | None) -> str:
    return f" on {ts:%Y-%m-%d %H:%M} UTC" if ts else ""


# ---------------------------------------------------------------- the person's rows

@dataclass(frozen=True)
class Selection:
    """The rows of one person, as a WHERE clause (with its parameters) per table."""

    pid: str
    where: dict[str, tuple[str, list]]
    visitors: tuple[str, ...] = ()  # the person's web visitor ids, kept out of later loads

    def count(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        """Rows per table (every table of the selection, zeros included)."""
        return {table: int(con.execute(f'SELECT count(*) FROM "{table}" WHERE {clause}',
                                       params).fetchone()[0])
                for table, (clause, params) in self.where.items()}


def pid_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every base table of the store with a ``pid`` column, the known ones first in
    deletion order, then any other (a later migration) by name."""
    rows = con.execute(
        "SELECT c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.column_name = 'pid' AND t.table_type = 'BASE TABLE' "
        "AND c.table_schema = 'main' AND c.table_catalog = current_database()").fetchall()
    found = {r[0] for r in rows}
    return [t for t in PID_TABLES if t in found] + sorted(found - set(PID_TABLES))


def visitor_ids(con: duckdb.DuckDBPyConnection, pid: str) -> list[str]:
    """Web visitor (cookie) ids of the person: linked to them, or on their touchpoints."""
    rows = con.execute(
        "SELECT visitor_id FROM visitor_link WHERE pid = ? UNION "
        "SELECT visitor_id FROM touchpoint WHERE pid = ? AND visitor_id IS NOT NULL "
        "ORDER BY 1", [pid, pid]).fetchall()
    return [r[0] for r in rows]


def record_ids(con: duckdb.DuckDBPyConnection, pid: str) -> set[tuple[str, str]]:
    """(export field, value) pairs naming the person's own export rows, as quarantine
    ``raw`` keys them: the source ids inside the ids of their funnel events and
    touchpoints, their consent ids and visitor ids."""
    pairs: set[tuple[str, str]] = set()
    rows = con.execute(
        "SELECT event_id FROM funnel_event WHERE pid = ? UNION ALL "
        "SELECT touch_id FROM touchpoint WHERE pid = ?", [pid, pid]).fetchall()
    for (made,) in rows:
        prefix, _, rest = made.partition(":")
        name = ID_PREFIX_FIELDS.get(prefix)
        if not name or not rest:
            continue
        if prefix in ("pre", "ref", "sig"):  # 'pre:<id>:lead', 'ref:<id>' (the source id may hold ':')
            for suffix in (":lead", ":started", ":outcome", ":form"):
                if rest.endswith(suffix):
                    rest = rest[: -len(suffix)]
                    break
        pairs.add((name, rest))
    for (consent_id,) in con.execute("SELECT consent_id FROM consent_event WHERE pid = ?", [pid]).fetchall():
        pairs.add(("consent_id", consent_id))
    for visitor in visitor_ids(con, pid):
        pairs.add(("visitor_id", visitor))
    return pairs


def quarantine_ids(con: duckdb.DuckDBPyConnection, pid: str) -> list[int]:
    """Quarantine entries of the person's refused rows: any field of the entry's raw
    row equal to one of the person's ids (``record_ids``)."""
    pairs = record_ids(con, pid)
    if not pairs:
        return []
    keys = sorted(f"{name}\x1f{value}" for name, value in pairs)
    rows = con.execute(
        "SELECT DISTINCT q.quarantine_id FROM "
        "(SELECT quarantine_id, raw FROM quarantine WHERE raw IS NOT NULL AND json_valid(raw)) q, "
        "json_each(q.raw) j "
        "WHERE j.key || chr(31) || (j.value ->> '$') IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY 1", [keys]).fetchall()
    return [int(r[0]) for r in rows]


def select_person(con: duckdb.DuckDBPyConnection, pid: str, with_resolutions: bool = True) -> Selection:
    """Where the person's rows are, per table, in the order they can be deleted.
    ``with_resolutions`` adds the resolutions of the person's quarantine entries
    (bookkeeping of the loader, deleted with the entries)."""
    where: dict[str, tuple[str, list]] = {}
    quarantined = quarantine_ids(con, pid)
    visitors = visitor_ids(con, pid)
    if with_resolutions:
        where["quarantine_resolution"] = ("list_contains(?::INTEGER[], quarantine_id)", [quarantined])
    where["quarantine"] = ("list_contains(?::INTEGER[], quarantine_id)", [quarantined])
    for table in pid_tables(con):
        if table == "touchpoint":
            # anonymous touchpoints of the person's visitors are theirs too
            where[table] = ("pid = ? OR (pid IS NULL AND list_contains(?::VARCHAR[], visitor_id))",
                            [pid, visitors])
        else:
            where[table] = ("pid = ?", [pid])
    return Selection(pid, where, tuple(visitors))


def ledger_entry(con: duckdb.DuckDBPyConnection, pid: str) -> tuple[datetime, datetime | None] | None:
    """(requested_at, completed_at) of the person's erasure ledger entry, or None."""
    row = con.execute("SELECT requested_at, completed_at FROM erasure_ledger WHERE subject = ?",
                      [subject_hash(pid)]).fetchone()
    return (row[0], row[1]) if row else None


# ---------------------------------------------------------------- erasure

def open_exclusive(db_path: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """The store opened read-write by this process alone. Raises ErasureError when it
    does not exist or another process (the serving cockpit) has it open."""
    path = Path(db_path)
    if not path.is_file():
        raise ErasureError(f"No store at {path}.")
    try:
        return open_db(path)
    except StoreError as exc:
        if "lock" in str(exc.__cause__ or "").lower():
            raise ErasureError(
                f"The store {path} is open in another process (DuckDB lets one process write "
                f"a file). Stop the serving cockpit ('cockpit serve') and any load or other "
                f"command using this file, then run the request again. Nothing was changed."
            ) from exc
        raise ErasureError(str(exc)) from exc


def _naive_utc(ts: datetime | None) -> datetime:
    ts = ts or datetime.now(timezone.utc)
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


def erase(db_path: str | os.PathLike, pid: str, requested_by: str,
          received_at: datetime | None = None, progress: Progress | None = None) -> ErasureReport:
    """Erase the person ``pid`` from the store at ``db_path`` and rewrite the file.

    In one transaction: delete the person's rows (``select_person``), record the ledger
    entry (``subject_hash(pid)``, requested at ``received_at`` or now, completed now, by
    ``requested_by``), the subject request (kind ``erasure``) and an audit entry
    (action ``erasure``, target the subject hash, new_value the rows deleted per table),
    and rebuild what is derived (``derive.refresh``). Then copy the database into a new
    file and put it in place of the old one (``rewrite``), so that no byte of the deleted
    rows remains. A person neither found nor erased before changes nothing.
    Raises ErasureError when the store is missing, in use by another process, or the
    disk cannot hold the copy.
    """
    say = progress or (lambda line: None)
    path = Path(db_path)
    con = open_exclusive(path)
    subject = subject_hash(pid)
    report = ErasureReport(pid=pid, subject=subject, status="erased", size_before=path.stat().st_size)
    try:
        selection = select_person(con, pid)
        counts = selection.count(con)
        earlier = ledger_entry(con, pid)
        report.erased_before = earlier[1] if earlier else None
        if any(counts.values()):
            _check_space(path)
            say(f"Deleting {sum(counts.values())} rows of person {pid} ...")
            now = _naive_utc(None)
            requested = _naive_utc(received_at) if received_at else now
            report.requested_at, report.completed_at = requested, now
            report.rows, report.audit_entry = _delete(con, selection, subject, requested, now,
                                                      requested_by, say)
        else:
            report.rows = counts
            report.status = "not_found" if earlier is None else "already_erased"
            if earlier is not None:
                _check_space(path)
    except BaseException:
        con.close()
        raise
    if report.status == "not_found":
        con.close()
        return report
    # Also for a person erased before: an earlier erasure cut off before its rewrite
    # is completed this way.
    say("Rewriting the database file so that no deleted bytes remain ...")
    try:
        rewrite(con, path, say)  # closes con
    except ErasureError as exc:
        if report.status != "erased":
            raise
        raise ErasureError(
            f"{exc} The person's rows were deleted and the erasure recorded, but the deleted "
            f"bytes may still be in the file: run the erasure again once the cause is fixed "
            f"(it finds the person erased and rewrites the file).") from exc
    report.rewritten = True
    report.size_after = path.stat().st_size
    return report


def _delete(con: duckdb.DuckDBPyConnection, selection: Selection, subject: str,
            requested: datetime, now: datetime, requested_by: str,
            say: Progress) -> tuple[dict[str, int], int]:
    """The erasure transaction; returns the rows deleted per table and the audit entry's id."""
    deleted: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for visitor in selection.visitors:
            # web and QR exports name visitors, not contacts: keep their visits out too
            con.execute("INSERT INTO erased_visitor VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [visitor_hash(visitor), now])
        for table, (clause, params) in selection.where.items():
            deleted[table] = int(con.execute(f'DELETE FROM "{table}" WHERE {clause}', params).fetchone()[0])
        con.execute(
            "INSERT INTO erasure_ledger (subject, requested_at, completed_at, requested_by) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET completed_at = excluded.completed_at",
            [subject, requested, now, requested_by])
        con.execute(
            "INSERT INTO subject_request (kind, subject, received_at, completed_at, handled_by) "
            "VALUES ('erasure', ?, ?, ?, ?)", [subject, requested, now, requested_by])
        entry = audit.append(con, requested_by, "erasure", target=subject,
                             new_value={t: n for t, n in deleted.items() if n}, ts=now)
        say("Rebuilding the journey tables ...")
        derive.refresh(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deleted, entry


def _check_space(path: Path) -> None:
    """The rewrite needs room for a second copy of the file: refuse before deleting
    anything when the disk does not have it."""
    free = shutil.disk_usage(path.parent).free
    needed = path.stat().st_size
    if free < needed:
        raise ErasureError(
            f"The rewrite of {path} needs about {needed / 1e6:.0f} MB free beside it; "
            f"{free / 1e6:.0f} MB are. Free some space and run the request again. Nothing was changed.")


# ---------------------------------------------------------------- the rewrite

@dataclass(frozen=True)
class Inventory:
    """What a database holds, to compare a copy with its original: the row count of
    every table, the definition of every view and macro, and the last value of every
    sequence (``None`` when never used)."""

    tables: dict[str, int]
    views: dict[str, str]
    macros: tuple[str, ...]
    sequences: dict[str, int | None]
    migrations: tuple[tuple, ...]


def inventory(con: duckdb.DuckDBPyConnection, catalog: str) -> Inventory:
    """The ``Inventory`` of the attached database ``catalog``."""
    tables = {}
    for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
            "AND NOT temporary ORDER BY 1, 2", [catalog]).fetchall():
        tables[f"{schema}.{name}"] = int(con.execute(
            f'SELECT count(*) FROM "{catalog}"."{schema}"."{name}"').fetchone()[0])
    views = {f"{s}.{n}": sql for s, n, sql in con.execute(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = ? "
        "AND NOT internal AND NOT temporary ORDER BY 1, 2", [catalog]).fetchall()}
    macros = tuple(r[0] for r in con.execute(
        "SELECT DISTINCT schema_name || '.' || function_name FROM duckdb_functions() "
        "WHERE database_name = ? AND NOT internal AND function_type IN ('macro', 'table_macro') "
        "ORDER BY 1", [catalog]).fetchall())
    sequences = {f"{s}.{n}": (None if last is None else int(last)) for s, n, last in con.execute(
        "SELECT schema_name, sequence_name, last_value FROM duckdb_sequences() "
        "WHERE database_name = ? AND NOT temporary ORDER BY 1, 2", [catalog]).fetchall()}
    migrations: tuple[tuple, ...] = ()
    if "main.schema_migration" in tables:
        migrations = tuple(con.execute(
            f'SELECT version, name FROM "{catalog}".main.schema_migration ORDER BY version').fetchall())
    return Inventory(tables, views, macros, sequences, migrations)


def _restore_sequences(con: duckdb.DuckDBPyConnection, catalog: str, wanted: dict[str, int | None]) -> None:
    """Bring every sequence of the copy to the last value it had in the original. A
    sequence that restarted is advanced by drawing values from it (it cannot be
    dropped and recreated while a column default depends on it)."""
    have = inventory(con, catalog).sequences
    for name, last in wanted.items():
        now = have.get(name)
        if last is None or now == last:
            continue
        schema, seq = name.split(".", 1)
        qualified = f'"{catalog}"."{schema}"."{seq}"'
        row = con.execute("SELECT start_value, increment_by FROM duckdb_sequences() WHERE "
                          "database_name = ? AND schema_name = ? AND sequence_name = ?",
                          [catalog, schema, seq]).fetchone()
        start, step = int(row[0]), int(row[1])
        current = now if now is not None else start - step
        draws = (last - current) // step
        if draws <= 0:
            raise ErasureError(f"The copy's sequence {name} is at {now}, past the original's {last}.")
        con.execute(f"SELECT max(nextval('{qualified}')) FROM range(?)", [draws])


def rewrite(con: duckdb.DuckDBPyConnection, path: Path, progress: Progress | None = None) -> None:
    """Copy the database behind ``con`` (the file ``path``) into a new file and put it
    in place of ``path``: same permissions, no write-ahead log left. The copy is checked
    first (``inventory``: every table with the same row count, every view, macro and
    migration, every sequence at the same last value); on any difference or failure the
    original stays as it was and ErasureError is raised. ``con`` is closed."""
    say = progress or (lambda line: None)
    old = con.execute("SELECT current_database()").fetchone()[0]
    token = secrets.token_hex(6)
    new_path = path.with_name(f".{path.name}.rewrite-{token}")
    alias = f"rewrite_{token}"
    try:
        try:
            con.execute("CHECKPOINT")
            before = inventory(con, old)
            con.execute(f"ATTACH '{_sql_text(str(new_path))}' AS {alias}")
            con.execute(f'COPY FROM DATABASE "{old}" TO {alias}')
            _restore_sequences(con, alias, before.sequences)
            after = inventory(con, alias)
            if after != before:
                raise ErasureError("The copy of the database differs from the original: "
                                   + _difference(before, after) + ". The original was kept.")
            con.execute(f"DETACH {alias}")
        finally:
            con.close()
        mode = path.stat().st_mode
        os.chmod(new_path, mode & 0o7777)
        _keep_owner(path, new_path)
        with open(new_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(new_path, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        for leftover in (new_path, Path(str(new_path) + ".wal")):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, duckdb.Error):
            raise ErasureError(f"The rewrite of {path} failed; the original file is unchanged: {exc}") from exc
        raise
    wal = Path(str(path) + ".wal")
    wal.unlink(missing_ok=True)  # a log left by the old file must not be replayed on the new one
    say(f"Rewrote {path}.")


def _difference(before: Inventory, after: Inventory) -> str:
    parts = []
    for label in ("tables", "views", "macros", "sequences", "migrations"):
        a, b = getattr(before, label), getattr(after, label)
        if a != b:
            if isinstance(a, dict):
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                parts.append(f"{label} {', '.join(f'{k}: {a.get(k)} -> {b.get(k)}' for k in keys[:5])}")
            else:
                parts.append(f"{label} {a} -> {b}")
    return "; ".join(parts)


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


def _keep_owner(old: Path, new: Path) -> None:
    st = old.stat()
    try:
        if (st.st_uid, st.st_gid) != (new.stat().st_uid, new.stat().st_gid):
            os.chown(new, st.st_uid, st.st_gid)
    except PermissionError:  # only root may give a file away; the mode is kept regardless
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

