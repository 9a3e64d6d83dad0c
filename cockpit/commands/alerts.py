"""``cockpit alerts check --db PATH [--dry-run] [--as-of DATE]``: evaluate every alert
rule once and print what was (or, in a dry run, would be) sent.

The SMTP server and the cockpit's address come from the ``[smtp]`` and ``[alerts]``
sections of the configuration file (``--config``, default ``$COCKPIT_CONFIG``, read and
validated by ``cockpit.config``); the SMTP login only from the environment. Without an ``[smtp]`` section messages are
queued in the store and sent by the next run that has one (or by the serving process).

Exit codes: 0 done; 1 messages remain queued because the SMTP server could not take
them (they are retried by the next run); 2 the store or the configuration is unusable.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import click

DEFAULT_BASE_URL = "http://127.0.0.1:8050"


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _config(path: Path | None) -> tuple[dict, dict]:
    """The ``[smtp]`` and ``[alerts]`` sections of the configuration file (empty
    without one)."""
    from cockpit.config import ConfigError, load_config

    path = path or (Path(os.environ["COCKPIT_CONFIG"]) if os.environ.get("COCKPIT_CONFIG") else None)
    if path is None:
        return {}, {}
    try:
        # the sources' environment variables do not matter to alerts
        config = load_config(path, check_env=False)
    except ConfigError as exc:
        _fail(str(exc))
    return config.smtp, config.alerts


@click.group()
def alerts() -> None:
    """Alert rules: evaluate them and send the e-mails."""


@alerts.command()
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DuckDB file [default: $COCKPIT_DB, then data/cockpit.duckdb].")
@click.option("--dry-run", is_flag=True, help="Evaluate and print, but change nothing and send nothing.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Judge the data up to this day [default: the last complete day with data].")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file with [smtp] and [alerts] sections [default: $COCKPIT_CONFIG].")
def check(db: Path | None, dry_run: bool, as_of, config: Path | None) -> None:
    """Evaluate every enabled alert rule once; print each rule's state and the
    e-mails sent (or, with --dry-run, the e-mails that would be sent)."""
    from cockpit.alerts import run_alert_cycle
    from cockpit.alerts.evaluate import evaluate_all
    from cockpit.alerts.smtp import SmtpConfigError, SmtpSettings
    from cockpit.store import Store, StoreError, resolve_db_path

    smtp_section, alerts_section = _config(config)
    base_url = str(alerts_section.get("base_url") or DEFAULT_BASE_URL)
    settings = None
    if smtp_section and not dry_run:
        try:
            settings = SmtpSettings.from_mapping(smtp_section)
        except SmtpConfigError as exc:
            _fail(str(exc))
    try:
        store = Store(resolve_db_path(db))
    except StoreError as exc:
        _fail(str(exc))
    now = datetime.utcnow()
    day = as_of.date() if as_of else None
    try:
        if dry_run:
            outcomes, flush = evaluate_all(store, now=now, as_of=day, base_url=base_url, dry_run=True), None
        else:
            result = run_alert_cycle(store, settings, base_url, now=now, as_of=day)
            outcomes, flush = result.outcomes, result.flush
        _report(outcomes, flush, settings, dry_run, now)
    finally:
        store.close()
    if flush is not None and flush.deferred:
        sys.exit(1)


def _report(outcomes, flush, settings, dry_run: bool, now: datetime) -> None:
    as_of = outcomes[0].observation.as_of if outcomes else None
    head = "Dry run: nothing is written or sent. " if dry_run else ""
    click.echo(f"{head}{len(outcomes)} rule(s) evaluated at {now:%Y-%m-%d %H:%M} UTC"
               + (f" on data up to {as_of}." if as_of else "."))
    sent = set(flush.sent) if flush else set()
    deferred = set(flush.deferred) if flush else set()
    for o in outcomes:
        st = o.step
        moved = f"{st.before} -> {st.after.state}" if st else "error"
        click.echo(f"#{o.rule.rule_id} {o.rule.name} [{o.rule.kind}]: {moved}. {o.observation.summary}")
        if st and st.note:
            click.echo(f"    ({st.note})")
        if o.message is None:
            continue
        to = ", ".join(o.message.recipients)
        if dry_run:
            status = "WOULD SEND"
        elif o.message_id in sent:
            status = "SENT"
        elif settings is None:
            status = "QUEUED (no [smtp] settings; sent by a later run that has them)"
        elif o.message_id in deferred:
            status = "QUEUED (the SMTP server did not take it; retried on the next run)"
        else:
            status = "QUEUED"
        click.echo(f"    {status} {st.notification} to {to}: {o.message.subject}"
                   + (f" {o.message_id}" if o.message_id else ""))
    if flush is not None:
        own = {o.message_id for o in outcomes if o.message_id}
        earlier = [m for m in flush.sent if m not in own]
        if earlier:
            click.echo(f"Also sent {len(earlier)} message(s) queued by earlier runs.")
        click.echo(f"E-mail: {len(flush.sent)} sent, {len(flush.deferred)} kept for a retry, "
                   f"{len(flush.rejected)} refused by the server."
                   + (f" {flush.error}" if flush.error else ""))
