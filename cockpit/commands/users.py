"""``cockpit users ...``: the accounts that may sign in to the cockpit.

    cockpit users add USERNAME --role ROLE [--study ID]... [--site ID]... [--password-stdin]
    cockpit users list [--json]
    cockpit users set-role USERNAME ROLE [--study ID]... [--site ID]...
    cockpit users assign USERNAME [--study ID]... [--site ID]...
    cockpit users disable USERNAME
    cockpit users enable USERNAME
    cockpit users set-password USERNAME [--password-stdin]

Without ``--password-stdin`` a password is generated and printed once. Each command
opens the store file itself (``--db``), so it cannot run while ``cockpit serve`` holds
the file. Every change is in the audit log with the actor ``cli:<OS user>``.

Exit codes: 0 done; 2 the store is unusable or the change was refused (the message
says why).
"""
from __future__ import annotations

import getpass
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
import duckdb

DB_OPTION = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="DuckDB file [default: $COCKPIT_DB, then data/cockpit.duckdb].")
PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of generating one.")
STUDY_OPTION = click.option("--study", "studies", multiple=True, metavar="ID",
                            help="A study the manager may see (repeatable).")
SITE_OPTION = click.option("--site", "sites", multiple=True, metavar="ID",
                           help="A site the site user may see (repeatable).")


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def cli_actor() -> str:
    """The audit actor for command-line changes: ``cli:<OS user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        name = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{name}"


@contextmanager
def _store(db: Path | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated connection on the store; UserError and StoreError end the command
    with exit code 2."""
    from cockpit.auth.users import UserError
    from cockpit.store import StoreError, open_db, resolve_db_path

    try:
        con = open_db(resolve_db_path(db))
    except StoreError as exc:
        _fail(str(exc))
    try:
        yield con
    except UserError as exc:
        _fail(str(exc))
    finally:
        con.close()


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated): the first line of stdin, or a new random password."""
    from cockpit.auth.passwords import generate_password

    if not from_stdin:
        return generate_password(), True
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        _fail("--password-stdin was given but standard input held no password.")
    return line, False


def _assignment(studies: tuple[str, ...], sites: tuple[str, ...]) -> str:
    parts = []
    if studies:
        parts.append("studies " + ", ".join(studies))
    if sites:
        parts.append("sites " + ", ".join(sites))
    return "; ".join(parts) if parts else "no assignment"


@click.group()
def users() -> None:
    """User accounts: add, list, change role or assignments, disable, set passwords."""


@users.command("add")
@click.argument("username")
@click.option("--role", required=True, help="admin, leadership, manager or site.")
@STUDY_OPTION
@SITE_OPTION
@PASSWORD_STDIN
@DB_OPTION
def add(username: str, role: str, studies: tuple[str, ...], sites: tuple[str, ...],
        password_stdin: bool, db: Path | None) -> None:
    """Create USERNAME with ROLE; managers take --study, site users --site."""
    from cockpit.auth.users import add_user

    password, generated = _password(password_stdin)
    with _store(db) as con:
        add_user(con, username, password, role, studies=studies, sites=sites, actor=cli_actor())
    click.echo(f"Added {username} ({role}; {_assignment(studies, sites)}).")
    if generated:
        click.echo(f"Password for {username} (shown once): {password}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@DB_OPTION
def list_(as_json: bool, db: Path | None) -> None:
    """Every user: role, state, assignments, when created (UTC)."""
    from cockpit.auth.users import list_users

    with _store(db) as con:
        rows = list_users(con)
    if as_json:
        for row in rows:
            row["created_at"] = row["created_at"].isoformat(timespec="seconds")
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No users yet. Add one with 'cockpit users add NAME --role admin'.")
        return
    width = max(len("username"), *(len(r["username"]) for r in rows))
    click.echo(f"{'username':<{width}}  {'role':<10}  {'state':<8}  {'created (UTC)':<16}  assignments")
    for r in rows:
        state = "disabled" if r["disabled"] else "enabled"
        click.echo(f"{r['username']:<{width}}  {r['role']:<10}  {state:<8}  "
                   f"{r['created_at']:%Y-%m-%d %H:%M}  {_assignment(tuple(r['studies']), tuple(r['sites']))}")


@users.command("set-role")
@click.argument("username")
@click.argument("role")
@STUDY_OPTION
@SITE_OPTION
@DB_OPTION
def set_role_(username: str, role: str, studies: tuple[str, ...], sites: tuple[str, ...],
              db: Path | None) -> None:
    """Give USERNAME the role ROLE. --study / --site replace the assignments; without
    them the assignments that fit the new role are kept."""
    from cockpit.auth.users import principal, set_role

    with _store(db) as con:
        set_role(con, username, role, studies=studies or None, sites=sites or None, actor=cli_actor())
        now = principal(con, username)
    shown = _assignment(tuple(now.studies or ()), tuple(now.sites or ())) if now else "disabled"
    click.echo(f"{username} is now {role} ({shown}).")


@users.command("assign")
@click.argument("username")
@STUDY_OPTION
@SITE_OPTION
@DB_OPTION
def assign_(username: str, studies: tuple[str, ...], sites: tuple[str, ...], db: Path | None) -> None:
    """Add studies (manager) or sites (site user) to USERNAME's assignments."""
    from cockpit.auth.users import assign, list_users

    with _store(db) as con:
        assign(con, username, studies=studies, sites=sites, actor=cli_actor())
        row = next(r for r in list_users(con) if r["username"] == username)
    click.echo(f"{username} now has {_assignment(tuple(row['studies']), tuple(row['sites']))}.")


def _set_disabled(username: str, disabled: bool, db: Path | None) -> None:
    from cockpit.auth.users import set_disabled

    word = "disabled" if disabled else "enabled"
    with _store(db) as con:
        changed = set_disabled(con, username, disabled, actor=cli_actor())
    click.echo(f"{username} is {word}." if changed else f"{username} was already {word}; nothing changed.")


@users.command("disable")
@click.argument("username")
@DB_OPTION
def disable(username: str, db: Path | None) -> None:
    """Stop USERNAME from signing in; open sessions end on their next request."""
    _set_disabled(username, True, db)


@users.command("enable")
@click.argument("username")
@DB_OPTION
def enable(username: str, db: Path | None) -> None:
    """Let a disabled USERNAME sign in again."""
    _set_disabled(username, False, db)


@users.command("set-password")
@click.argument("username")
@PASSWORD_STDIN
@DB_OPTION
def set_password_(username: str, password_stdin: bool, db: Path | None) -> None:
    """Replace USERNAME's password (generated unless --password-stdin); the user's open
    sessions end."""
    from cockpit.auth.users import set_password

    password, generated = _password(password_stdin)
    with _store(db) as con:
        set_password(con, username, password, actor=cli_actor())
    click.echo(f"Password of {username} changed.")
    if generated:
        click.echo(f"Password for {username} (shown once): {password}")
