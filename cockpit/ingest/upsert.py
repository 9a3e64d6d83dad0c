"""Bulk upserts of accepted rows: rows whose keys are new are inserted; when some key
is in the table already, one INSERT ... ON CONFLICT DO UPDATE per target touches a
stored row only when a value really changed (so loading the same content again changes
nothing, and a late correction replaces the earlier values)."""
from __future__ import annotations

import duckdb

from .context import LoadContext


class StoredKey(Exception):
    """A plain insert met a key that is stored already: the file is loaded again with
    ``keys_may_exist`` set."""


def insert_new(ctx: LoadContext, insert: str) -> None:
    """Run a plain INSERT into a keyed table; a key stored already raises StoredKey
    (the store refuses the insert, so nothing of it is written)."""
    try:
        ctx.con.execute(insert)
    except duckdb.ConstraintException as exc:
        raise StoredKey(str(exc)) from exc


def any_present(ctx: LoadContext, table: str, key: list[str], keys: str) -> bool:
    """Whether a row of ``table`` has one of the keys that the SELECT ``keys`` gives
    (its columns named as ``key``). The keys are the hashed side of the join and the
    table is scanned, which costs far less than planning an upsert for a small batch."""
    on = " AND ".join(f"t.{k} = w.{k}" for k in key)
    return ctx.con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {table} t SEMI JOIN ({keys}) w ON {on} LIMIT 1)"
    ).fetchone()[0] > 0


def upsert(ctx: LoadContext, table: str, columns: list[str], key: list[str], select: str,
           merge: dict[str, str] | None = None) -> None:
    """Insert the rows of ``select`` (its columns in the order of ``columns``) into
    ``table``; on a key conflict, update the other columns. ``merge`` gives the new
    value of a column as SQL over ``excluded`` and the stored row instead of
    ``excluded.<column>``. The ``source_file`` column alone does not count as a change.

    A plain INSERT on a file's first attempt (a new export: the usual case; the table's
    key refuses a stored key, and the file is then loaded again) or when no key is in
    the table yet; the upsert otherwise."""
    names = ", ".join(columns)
    insert = f"INSERT INTO {table} ({names}) {select}"
    if not ctx.keys_may_exist:
        insert_new(ctx, insert)
        return
    if not any_present(ctx, table, key, f"SELECT {', '.join(key)} FROM ({select}) AS w({names})"):
        ctx.con.execute(insert)
        return
    merge = merge or {}
    values = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = {merge.get(c, f'excluded.{c}')}" for c in values)
    changed = " OR ".join(
        f"{table}.{c} IS DISTINCT FROM {merge.get(c, f'excluded.{c}')}"
        for c in values if c != "source_file")
    ctx.con.execute(f"{insert} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} WHERE {changed}")
