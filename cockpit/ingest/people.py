"""Persons at load time: contacts become pseudonymous ids (HMAC, see cockpit.privacy)
before anything is written; persons in the erasure ledger are recognised; persons,
their segment and the links of web visitors to persons are upserted."""
from __future__ import annotations

from cockpit.privacy import hcp_id, person_id, subject_hash_sql

from .context import ACCEPTED, PIDS, STAGE, LoadContext
from .frames import python_rows
from .sqltext import ident

# SQL over the typed relation: the row belongs to an erased person. The ledger holds
# subject hashes, never pids, so the row's pid is hashed the same way in SQL.
ERASED = f"{subject_hash_sql('pid')} IN (SELECT subject FROM erasure_ledger)"


def add_pids(ctx: LoadContext, email: str, phone: str, hcp: str | None = None) -> None:
    """Compute the pid of every staged row (from the e-mail, else the phone; None when
    neither is usable) and the pseudonymous HCP id, into the pids table (by rowid)."""
    columns = [email, phone] + ([hcp] if hcp else [])
    rows = ctx.con.execute(
        f"SELECT rowid, {', '.join(ident(c) for c in columns)} FROM {STAGE}").fetchall()
    key = ctx.key
    cache: dict[tuple[str | None, str | None], str | None] = {}
    pids = []
    for row in rows:
        contact = (row[1], row[2])
        pid = cache.get(contact)
        if pid is None and contact not in cache:
            pid = cache[contact] = person_id(key, *contact)
        pids.append(pid)
    hcps = [hcp_id(key, row[3]) if row[3] else None for row in rows] if hcp else [None] * len(rows)
    columns = {"_rid": ("BIGINT", [row[0] for row in rows]), "pid": ("VARCHAR", pids),
               "hcp_pid": ("VARCHAR", hcps)}
    with python_rows(ctx.con, columns) as source:
        ctx.con.execute(f"CREATE TEMP TABLE {PIDS} AS SELECT * FROM {source}")


def upsert_persons(ctx: LoadContext, ts: str) -> None:
    """Upsert the persons of the accepted rows: first_seen is the earliest ``ts`` ever
    seen, birth_year the latest given; then (re)assign their segment from the age at
    first_seen."""
    con = ctx.con
    con.execute(
        f"INSERT INTO person (pid, birth_year, segment_id, first_seen) "
        f"SELECT pid, arg_max(birth_year, _rid) FILTER (WHERE birth_year IS NOT NULL), NULL, min({ts}) "
        f"FROM {ACCEPTED} GROUP BY pid "
        f"ON CONFLICT (pid) DO UPDATE SET "
        f"birth_year = coalesce(excluded.birth_year, person.birth_year), "
        f"first_seen = least(person.first_seen, excluded.first_seen) "
        f"WHERE person.first_seen > excluded.first_seen "
        f"OR person.birth_year IS DISTINCT FROM coalesce(excluded.birth_year, person.birth_year)"
    )
    con.execute(
        f"UPDATE person SET segment_id = g.segment_id FROM ("
        f" SELECT p.pid, (SELECT min(sg.segment_id) FROM segment sg"
        f"   WHERE year(p.first_seen) - p.birth_year BETWEEN sg.min_age AND sg.max_age) AS segment_id"
        f" FROM person p WHERE p.pid IN (SELECT pid FROM {ACCEPTED})) g "
        f"WHERE person.pid = g.pid AND person.segment_id IS DISTINCT FROM g.segment_id"
    )


def link_visitors(ctx: LoadContext, ts: str) -> None:
    """Link web visitors (cookie ids) of the accepted rows to their person; a visitor
    seen on several submissions belongs to the person of the latest one."""
    ctx.con.execute(
        f"INSERT INTO visitor_link (visitor_id, pid, linked_at) "
        f"SELECT visitor_id, arg_max(pid, {ts}), max({ts}) FROM {ACCEPTED} "
        f"WHERE visitor_id IS NOT NULL GROUP BY visitor_id "
        f"ON CONFLICT (visitor_id) DO UPDATE SET pid = excluded.pid, linked_at = excluded.linked_at "
        f"WHERE excluded.linked_at >= visitor_link.linked_at "
        f"AND (visitor_link.pid <> excluded.pid OR visitor_link.linked_at <> excluded.linked_at)"
    )


def attach_touchpoints(ctx: LoadContext) -> None:
    """Give anonymous touchpoints the person their visitor is now linked to (a web
    event loaded before the visitor's pre-screener gets its person later)."""
    ctx.con.execute(
        "UPDATE touchpoint SET pid = v.pid FROM visitor_link v "
        "WHERE touchpoint.pid IS NULL AND touchpoint.visitor_id = v.visitor_id"
    )
