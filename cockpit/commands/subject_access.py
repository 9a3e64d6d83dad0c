"""``cockpit subject-access --db PATH (--email E | --phone P | --pid ID) [--json]
[--received DATE]``: everything the store holds on one person (GDPR Art. 15).

The answer is recorded: a subject request (kind ``access``) and an audit entry, both
naming the person by the hash of the pid. A person without data still gets an answer
(the pid computed, zero rows) and the request is recorded all the same.

Exit codes: 0 answered; 2 the request cannot be answered (store missing or in use,
no key, bad option).
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from cockpit.commands.erase import cli_actor, fail, identity_options, received_at, resolve_pid, store_path


@click.command("subject-access")
@identity_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable contract).")
def subject_access(db: Path | None, email: str | None, phone: str | None, pid: str | None,
                   config: Path | None, received: datetime | None, as_json: bool) -> None:
    """Print everything held on one person: rows per table, current consent, and
    whether the person was erased. The request is audited. Stop the serving cockpit
    first (the request is written to the store)."""
    from cockpit.subject_access import SubjectAccessError, subject_access as answer, summary_lines

    path = store_path(db)
    person = resolve_pid(path, email, phone, pid, config)
    when = received_at(received)
    try:
        result = answer(path, person, cli_actor(), received_at=when)
    except SubjectAccessError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, allow_nan=False))
        return
    for line in summary_lines(result):
        click.echo(line)
