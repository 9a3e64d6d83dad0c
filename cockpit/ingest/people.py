"""Persons at load time: contacts become pseudonymous ids (HMAC, see cockpit.privacy)
before anything is written; persons in the erasure ledger are recognised; persons,
their segment and the links of web visitors to persons are upserted."""
from __future__ import annotations

import duckdb

from cockpit.privacy import (hcp_id, hmac_parameters, person_id, person_ids_sql, subject_hash_sql,
                             visitor_hash_sql)

from .context import ACCEPTED, PIDS, STAGE, LoadContext
from .frames import python_rows
from .sqltext import ident
from .upsert import any_present, insert_new

# SQL over the typed relation: the row belongs to an erased person. The ledger holds
# subject hashes, never pids, so the row's pid is hashed the same way in SQL.
ERASED = f"{subject_hash_sql('pid')} IN (SELECT subject FROM erasure_ledger)"


def add_pids(ctx: LoadContext, email: str, phone: str, hcp: str | None = None) -> None:
    """Compute the pid of every staged row (from the e-mail, else the phone; None when
    neither is usable) and the pseudonymous HCP id, into the pids table (by rowid).

    The ids are computed in SQL (``cockpit.privacy.person_ids_sql``: the same
    normalisation and HMAC as ``person_id`` and ``hcp_id``), with the key's HMAC pads as
    parameters. The few rows whose contacts need what SQL cannot reproduce exactly
    (Unicode folding, IDN domains, ...) get their ids from ``person_id`` and ``hcp_id``
    in Python."""
    con = ctx.con
    select = person_ids_sql(f"{STAGE} s", "s.rowid", f"s.{ident(email)}", f"s.{ident(phone)}",
                            f"s.{ident(hcp)}" if hcp else None)
    con.execute(f"CREATE TEMP TABLE {PIDS} AS {select}", hmac_parameters(ctx.key))
    columns = [email, phone] + ([hcp] if hcp else [])
    rows = con.execute(
        f"SELECT k._rid, {', '.join('s.' + ident(c) for c in columns)} FROM {PIDS} k "
        f"JOIN {STAGE} s ON s.rowid = k._rid WHERE k._python").fetchall()
    if rows:
        _python_pids(ctx, rows, hcp is not None)


def _python_pids(ctx: LoadContext, rows: list[tuple], hcp: bool) -> None:
    """Replace the ids of ``rows`` (rowid, e-mail, phone[, HCP number]) by those
    computed in Python."""
    key = ctx.key
    columns = {"_rid": ("BIGINT", [row[0] for row in rows]),
               "pid": ("VARCHAR", [person_id(key, row[1], row[2]) for row in rows]),
               "hcp_pid": ("VARCHAR", [hcp_id(key, row[3]) if hcp and row[3] else None
                                       for row in rows])}
    with python_rows(ctx.con, columns) as source:
        ctx.con.execute(f"UPDATE {PIDS} SET pid = f.pid, hcp_pid = f.hcp_pid FROM {source} f "
                        f"WHERE {PIDS}._rid = f._rid")


def erased_visits(visitor_column: str) -> str:
    """SQL over the typed relation: the row is a visit of an erased person's visitor id."""
    return (f"(coalesce({visitor_column}, '') <> '' AND {visitor_hash_sql(visitor_column)} "
            "IN (SELECT subject FROM erased_visitor))")


def visitors_erased(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any erased person left web visitor ids to keep out."""
    return con.execute("SELECT EXISTS (SELECT 1 FROM erased_visitor)").fetchone()[0]


def ledger_has_entries(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any person was erased (the erasure ledger is not empty)."""
    return con.execute("SELECT EXISTS (SELECT 1 FROM erasure_ledger)").fetchone()[0]


def upsert_persons(ctx: LoadContext, ts: str) -> None:
    """Upsert the persons of the accepted rows: first_seen is the earliest ``ts`` ever
    seen, birth_year the latest given, and the segment that of the age at first_seen
    (reassigned whenever it differs, say after the segments changed).

    One statement: the stored values, where the person exists, are merged in the
    SELECT, so the segment of the merged values is known before the upsert."""
    persons = (f"SELECT pid, arg_max(birth_year, _rid) FILTER (WHERE birth_year IS NOT NULL) "
               f"AS birth_year, min({ts}) AS first_seen FROM {ACCEPTED} GROUP BY pid")
    # least() skips NULL: a new person's first_seen is its own.
    merged = (f"SELECT n.pid, n.birth_year, n.first_seen, least(p.first_seen, n.first_seen) AS m_first, "
              f"coalesce(n.birth_year, p.birth_year) AS m_birth FROM ({persons}) n "
              f"LEFT JOIN person p ON p.pid = n.pid")
    ctx.con.execute(
        f"INSERT INTO person (pid, birth_year, segment_id, first_seen) "
        f"SELECT m.pid, m.birth_year, (SELECT min(sg.segment_id) FROM segment sg "
        f"WHERE year(m.m_first) - m.m_birth BETWEEN sg.min_age AND sg.max_age), m.first_seen "
        f"FROM ({merged}) m "
        f"ON CONFLICT (pid) DO UPDATE SET "
        f"birth_year = coalesce(excluded.birth_year, person.birth_year), "
        f"first_seen = least(person.first_seen, excluded.first_seen), "
        f"segment_id = excluded.segment_id "
        f"WHERE person.first_seen > excluded.first_seen "
        f"OR person.birth_year IS DISTINCT FROM coalesce(excluded.birth_year, person.birth_year) "
        f"OR person.segment_id IS DISTINCT FROM excluded.segment_id"
    )


def link_visitors(ctx: LoadContext, ts: str) -> None:
    """Link web visitors (cookie ids) of the accepted rows to their person; a visitor
    seen on several submissions belongs to the person of the latest one."""
    links = (f"SELECT visitor_id, arg_max(pid, {ts}) AS pid, max({ts}) AS linked_at, FALSE FROM {ACCEPTED} "
             f"WHERE visitor_id IS NOT NULL GROUP BY visitor_id")
    # not yet attached: the run gives the visitor's earlier touchpoints its person at its end
    insert = f"INSERT INTO visitor_link (visitor_id, pid, linked_at, attached) {links}"
    if not ctx.keys_may_exist:
        insert_new(ctx, insert)
        return
    if not any_present(ctx, "visitor_link", ["visitor_id"],
                       f"SELECT visitor_id FROM {ACCEPTED} WHERE visitor_id IS NOT NULL"):
        ctx.con.execute(insert)
        return
    ctx.con.execute(
        f"{insert} ON CONFLICT (visitor_id) DO UPDATE SET pid = excluded.pid, linked_at = excluded.linked_at, "
        f"attached = FALSE "
        f"WHERE excluded.linked_at >= visitor_link.linked_at "
        f"AND (visitor_link.pid <> excluded.pid OR visitor_link.linked_at <> excluded.linked_at)"
    )


def attach_linked_visits(con: duckdb.DuckDBPyConnection) -> int:
    """Give anonymous touchpoints the person their visitor is now linked to (a web event
    loaded before the visitor's pre-screener gets its person later); returns the number
    of visitors attached.

    Web events and QR scans take the person of a linked visitor when written, so only
    the visitors linked since the last attachment (``visitor_link.attached`` false) can
    have anonymous touchpoints to fill: one pass over the touchpoints for all the
    visitors a run linked. The caller owns the transaction."""
    pending = con.execute("SELECT count(*) FROM visitor_link WHERE NOT attached").fetchone()[0]
    if not pending:
        return 0
    con.execute(
        "UPDATE touchpoint SET pid = v.pid FROM visitor_link v "
        "WHERE touchpoint.pid IS NULL AND touchpoint.visitor_id = v.visitor_id AND NOT v.attached")
    con.execute("UPDATE visitor_link SET attached = TRUE WHERE NOT attached")
    return pending
