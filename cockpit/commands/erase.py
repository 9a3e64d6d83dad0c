"""``cockpit erase --db PATH (--email E | --phone P | --pid ID) [--received DATE] [--yes]``:
erase one person (GDPR Art. 17) and rewrite the database file.

The serving cockpit must be stopped first: the erasure needs the file to itself.
The e-mail or phone is turned into the pid with the pseudonymization key the store was
loaded with ($COCKPIT_SECRET_KEY, else the key file of the configuration or beside the
store); it is never written anywhere.

Exit codes: 0 erased (or erased before); 1 no data of the person and no earlier
erasure (nothing changed), or the confirmation was declined; 2 the request cannot be
done (store missing or in use, no key, bad option).
"""
from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import click

PID_PATTERN = re.compile(r"[0-9a-f]{32}")


def fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def identity_options(fn: Callable) -> Callable:
    """--db, --email, --phone, --pid, --config and --received, shared by the commands
    about one data subject."""
    options = [
        click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="DuckDB file [default: $COCKPIT_DB, then data/cockpit.duckdb]."),
        click.option("--email", default=None, help="The person's e-mail address (any spelling)."),
        click.option("--phone", default=None, help="The person's phone number (national or E.164)."),
        click.option("--pid", default=None, help="The person's pseudonymous id (32 hex characters)."),
        click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Configuration file naming the key file [default: $COCKPIT_CONFIG]."),
        click.option("--received", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="Day the request arrived, YYYY-MM-DD (UTC) [default: now]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _key(db: Path, config: Path | None) -> bytes:
    """The pseudonymization key, never a new one (a new key would match nobody)."""
    from cockpit.config import ENV_SECRET_KEY, ConfigError, load_config, pseudonymization_key
    from cockpit.privacy import KeyFileError, existing_key

    config = config or (Path(os.environ["COCKPIT_CONFIG"]) if os.environ.get("COCKPIT_CONFIG") else None)
    try:
        if config is not None and not os.environ.get(ENV_SECRET_KEY):
            settings = load_config(config, check_env=False)
            if settings.key_file is not None:
                return pseudonymization_key(settings, db)
        return existing_key(db)
    except (ConfigError, KeyFileError) as exc:
        fail(str(exc))


def resolve_pid(db: Path, email: str | None, phone: str | None, pid: str | None,
                config: Path | None) -> str:
    """The pid named by exactly one of --email, --phone, --pid; exits 2 otherwise."""
    from cockpit.privacy import normalize_email, normalize_phone, person_id

    given = [name for name, value in (("--email", email), ("--phone", phone), ("--pid", pid)) if value]
    if len(given) != 1:
        fail("give exactly one of --email, --phone, --pid"
             + (f" (got {', '.join(given)})" if given else ""))
    if pid:
        value = pid.strip().lower()
        if not PID_PATTERN.fullmatch(value):
            fail(f"--pid {pid!r} is not a person id (32 hexadecimal characters)")
        return value
    if email:
        if normalize_email(email) is None:
            fail("--email is not a usable e-mail address")
        return person_id(_key(db, config), email=email)
    if normalize_phone(phone) is None:
        fail("--phone is not a usable phone number")
    return person_id(_key(db, config), phone=phone)


def received_at(value: datetime | None) -> datetime | None:
    """The --received day as UTC midnight; exits 2 when it lies in the future."""
    if value is None:
        return None
    day = value.replace(tzinfo=timezone.utc)
    if day.date() > datetime.now(timezone.utc).date():
        fail(f"--received {value:%Y-%m-%d} is in the future")
    return day


def cli_actor() -> str:
    """Who is named in the ledger and the audit log: ``cli:<OS user>``."""
    from cockpit.commands.users import cli_actor as actor

    return actor()


def store_path(db: Path | None) -> Path:
    """The store file, which must exist (a request must not create an empty store)."""
    from cockpit.store import resolve_db_path

    path = resolve_db_path(db)
    if not path.is_file():
        fail(f"no store at {path}")
    return path


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n:,} bytes ({n / 1e6:.1f} MB)"


@click.command()
@identity_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(db: Path | None, email: str | None, phone: str | None, pid: str | None,
          config: Path | None, received: datetime | None, yes: bool) -> None:
    """Erase every row of one person (GDPR Art. 17), record the request in the erasure
    ledger so later loads skip the person, and rewrite the database file so the
    deleted bytes are gone. Stop the serving cockpit first."""
    from cockpit.erasure import ErasureError, erase as run_erasure, ledger_entry, open_exclusive, select_person

    path = store_path(db)
    person = resolve_pid(path, email, phone, pid, config)
    when = received_at(received)
    try:
        con = open_exclusive(path)
    except ErasureError as exc:
        fail(str(exc))
    try:
        counts = select_person(con, person).count(con)
        earlier = ledger_entry(con, person)
    finally:
        con.close()
    total = sum(counts.values())
    if total == 0 and earlier is None:
        click.echo(f"No data of person {person} in {path} and no earlier erasure: nothing was changed.")
        sys.exit(1)
    if total and not yes:
        listed = ", ".join(f"{t} {n}" for t, n in counts.items() if n)
        click.confirm(f"Erase person {person} from {path}: {total} rows ({listed})? "
                      f"This cannot be undone.", abort=True)
    try:
        report = run_erasure(path, person, cli_actor(), received_at=when,
                             progress=lambda line: click.echo(line, err=True))
    except ErasureError as exc:
        fail(str(exc))
    click.echo(report.message)
    if report.status == "erased":
        click.echo("Rows removed per table:")
        for table, n in report.rows.items():
            click.echo(f"  {table:<22} {n:>6}")
        click.echo(f"  {'total':<22} {report.total:>6}")
        click.echo(f"Recorded in the erasure ledger as subject {report.subject} "
                   f"(request received {report.requested_at:%Y-%m-%d %H:%M} UTC, "
                   f"audit entry {report.audit_entry}).")
        click.echo("Derived data:")
        for note in report.derived:
            click.echo(f"  - {note}")
    click.echo(f"File size before: {_size(report.size_before)}; after: {_size(report.size_after)}.")
    if report.rewritten:
        click.echo(f"The database file {path} was rewritten: the deleted rows' bytes are gone.")
