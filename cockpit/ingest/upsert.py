"""Bulk upserts of accepted rows: one INSERT ... ON CONFLICT DO UPDATE per target, that
touches a stored row only when a value really changed (so loading the same content
again changes nothing, and a late correction replaces the earlier values)."""
from __future__ import annotations

from .context import LoadContext


def upsert(ctx: LoadContext, table: str, columns: list[str], key: list[str], select: str,
           merge: dict[str, str] | None = None) -> None:
    """Insert the rows of ``select`` (its columns in the order of ``columns``) into
    ``table``; on a key conflict, update the other columns. ``merge`` gives the new
    value of a column as SQL over ``excluded`` and the stored row instead of
    ``excluded.<column>``. The ``source_file`` column alone does not count as a change."""
    merge = merge or {}
    values = [c for c in columns if c not in key]
    sets = ", ".join(f"{c} = {merge.get(c, f'excluded.{c}')}" for c in values)
    changed = " OR ".join(
        f"{table}.{c} IS DISTINCT FROM {merge.get(c, f'excluded.{c}')}"
        for c in values if c != "source_file")
    ctx.con.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) {select} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} WHERE {changed}"
    )
