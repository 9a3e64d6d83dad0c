"""``cockpit audit verify --db PATH`` and ``cockpit audit list --db PATH [--limit N]
[--json]``: check the audit log's hash chain, and show its newest entries.

``verify`` exits 0 when the chain is intact ("Audit log intact: N entries") and 1 when
it is broken ("Audit log broken at entry K: reason"), naming the first entry that was
edited, follows a deleted one, or was deleted at the end; 2 when the store cannot be
read.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import duckdb

from cockpit.commands.erase import fail, store_path

db_option = click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="DuckDB file [default: $COCKPIT_DB, then data/cockpit.duckdb].")


def _open(db: Path | None) -> duckdb.DuckDBPyConnection:
    """The store, read-only (checking the log changes nothing)."""
    from cockpit.store import StoreError, open_db

    try:
        return open_db(store_path(db), read_only=True)
    except StoreError as exc:
        fail(str(exc))


@click.group()
def audit() -> None:
    """The audit log: verify its hash chain, list its entries."""


@audit.command()
@db_option
def verify(db: Path | None) -> None:
    """Walk the hash chain from the first entry; name the first entry edited or
    deleted."""
    from cockpit.audit import verify as verify_chain

    con = _open(db)
    try:
        verdict = verify_chain(con)
    finally:
        con.close()
    if verdict.ok:
        click.echo(f"Audit log intact: {verdict.entries} entries")
        return
    click.echo(f"Audit log broken at entry {verdict.broken_entry}: {verdict.reason}")
    sys.exit(1)


@audit.command("list")
@db_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many of the newest entries.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (the stable contract).")
def list_entries(db: Path | None, limit: int, as_json: bool) -> None:
    """The newest entries, newest first: id, time (UTC), actor, action, target and the
    values before and after."""
    from cockpit.audit import entries
    from cockpit.subject_access import iso

    con = _open(db)
    try:
        rows = entries(con, limit=limit)
    finally:
        con.close()
    if as_json:
        click.echo(json.dumps([{k: iso(v) for k, v in row.items()} for row in rows], ensure_ascii=False))
        return
    if not rows:
        click.echo("The audit log is empty.")
        return
    for row in rows:
        line = (f"{row['entry_id']:>6}  {iso(row['ts'])}  {row['actor']:<16} {row['action']:<16} "
                f"{row['target'] or '-'}")
        if row["old_value"] is not None or row["new_value"] is not None:
            line += f"  {row['old_value'] or '-'} -> {row['new_value'] or '-'}"
        click.echo(line)
