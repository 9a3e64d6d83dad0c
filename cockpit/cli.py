"""The ``cockpit`` command line: generate, load, serve, demo, and the feature commands
of ``cockpit/commands/``.

A stable contract: other tools and checks call these commands and read their output.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from datetime import date
from pathlib import Path

import click

from cockpit.commands.abtest import abtest
from cockpit.commands.alerts import alerts
from cockpit.commands.attribution import attribution
from cockpit.commands.audit import audit
from cockpit.commands.erase import erase
from cockpit.commands.forecast import forecast
from cockpit.commands.mix import mix
from cockpit.commands.subject_access import subject_access
from cockpit.commands.users import users
from cockpit.store import StoreError, open_db, resolve_db_path

SCALES = ("small", "medium", "large")
DEFAULT_END = date(2026, 11, 15)

db_option = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="DuckDB file [default: $COCKPIT_DB, then data/cockpit.duckdb].",
)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Recruitment cockpit: channel ROI, funnels, A/B tests and forecasts for
    clinical-trial patient recruitment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # one line per scheduler tick would drown the load summaries
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


# ------------------------------------------------------------------ generate
def _generate(out: Path, seed: int, scale: str, end: date) -> dict:
    from cockpit.demo import generate

    started = time.perf_counter()
    summary = generate(out, seed=seed, scale=scale, end=end, progress=lambda line: click.echo(line, err=True))
    click.echo(f"Generated {scale} demo exports in {out} ({time.perf_counter() - started:.1f} s, seed {seed}).")
    return summary


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the raw exports into.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed; the same seed gives the same files.")
@click.option("--scale", type=click.Choice(SCALES), default="small", show_default=True)
@click.option("--end", "end", type=click.DateTime(["%Y-%m-%d"]), default=str(DEFAULT_END), show_default=True,
              help="Last day of the generated history.")
def generate(out: Path, seed: int, scale: str, end) -> None:
    """Write demo raw exports (ad platforms, web events, pre-screener, referrals, QR scans,
    site pipeline, consent, offline costs) and a ground-truth file into OUT."""
    _generate(out, seed, scale, end.date())


# ------------------------------------------------------------------ load
def _read_config(path: Path | None):
    """The validated configuration file, or None; exits with its problems listed."""
    if path is None:
        return None
    from cockpit.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))


def _key(config, db: Path) -> bytes:
    """The pseudonymization key of the configuration (or of the store); exits when it
    cannot be read."""
    from cockpit.config import ConfigError, pseudonymization_key

    try:
        return pseudonymization_key(config, db)
    except ConfigError as exc:
        _fail(str(exc))


def _load(db: Path, source: Path | None, config_path: Path | None = None,
          retry_quarantined: bool = False, settle_seconds: float = 0.0) -> None:
    from cockpit import derive
    from cockpit.config import ConfigError, FolderSource
    from cockpit.ingest.progress import Progress
    from cockpit.ingest.runs import in_transaction
    from cockpit.ingest.sources import load_source, register_sources
    from cockpit.ingest.sql_source import SourceError

    config = _read_config(config_path)
    if source is not None:
        if not source.is_dir():
            _fail(f"source folder {source} does not exist")
        sources = [FolderSource(name=str(source), path=source)]
    elif config is not None:
        sources = list(config.sources)
        if not sources:
            _fail(f"the configuration {config_path} names no sources")
    else:
        _fail("give the drop folder with --source DIR, or a configuration file with --config FILE")
    key = _key(config, db)
    try:
        con = open_db(db)
    except StoreError as exc:
        _fail(str(exc))
    progress = Progress(lambda line: click.echo(line, err=True))
    failed = []
    try:
        if config is not None and source is None:
            in_transaction(con, lambda: register_sources(con, sources), "recording the sources")
        for item in sources:
            if len(sources) > 1:
                click.echo(f"Source {item.name}:", err=True)
            try:
                summary = load_source(con, item, key, after_load=derive.refresh,
                                      settle_seconds=settle_seconds,
                                      retry_quarantined=retry_quarantined, on_file=progress)
            except (SourceError, FileNotFoundError, ConfigError) as exc:
                click.echo(f"Error: source {item.name}: {exc}", err=True)
                failed.append(item.name)
                continue
            click.echo(summary.text() if len(sources) == 1 else f"{item.name}: {summary.text()}")
    except StoreError as exc:
        _fail(str(exc))
    finally:
        con.close()
    click.echo(progress.final())
    if failed:
        _fail(f"{len(failed)} of {len(sources)} sources could not be loaded: {', '.join(failed)}", code=1)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Configuration file (see cockpit.example.toml): sources, schedules, key file.")


@main.command()
@db_option
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Drop folder to scan (recursively) for exports; with --config, only this folder "
                   "is loaded.")
@config_option
@click.option("--retry-quarantined", is_flag=True,
              help="Read again the files that have open quarantine entries, even when their bytes "
                   "were loaded before (after the setup they refer to was fixed).")
@click.option("--settle-seconds", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Leave files modified less than this many seconds ago for the next run "
                   "(they may still be being written).")
def load(db: Path | None, source: Path | None, config_path: Path | None, retry_quarantined: bool,
         settle_seconds: float) -> None:
    """Load every new file of SOURCE (or every source of the configuration) once into the
    store, showing progress, and print a summary.

    Rows that fail validation go to quarantine with file, row, field and reason. The exit
    code is 2 when the store itself or the configuration cannot be used, 1 when a source
    could not be read (the others are loaded), else 0."""
    _load(resolve_db_path(db), source, config_path, retry_quarantined, settle_seconds)


# ------------------------------------------------------------------ serve
def _alerting(config, host: str, port: int):
    """Alert settings of the serving process: [smtp] and [alerts] of the configuration;
    without them rules are still evaluated and their e-mails kept in the outbox."""
    from cockpit.alerts import SmtpSettings
    from cockpit.alerts.smtp import SmtpConfigError
    from cockpit.scheduler import Alerting

    try:
        smtp = SmtpSettings.from_mapping(config.smtp) if config is not None and config.smtp else None
    except SmtpConfigError as exc:
        _fail(str(exc))
    alerts = config.alerts if config is not None else {}
    return Alerting(settings=smtp, base_url=alerts.get("base_url", f"http://{host}:{port}"),
                    interval_seconds=int(alerts.get("interval_seconds", 300)),
                    digest_recipients=tuple(alerts.get("digest_recipients") or ()),
                    digest_weekday=alerts.get("digest_weekday", "mon"),
                    digest_hour=int(alerts.get("digest_hour", 7)))


def _serve(db: Path, host: str, port: int, source: Path | None, interval: int,
           config_path: Path | None = None, debug: bool = False) -> None:
    import waitress

    from app import create_app
    from cockpit import config as settings
    from cockpit import scheduler
    from cockpit.config import FolderSource
    from cockpit.store import SERVING_MEMORY_LIMIT, Store

    config = _read_config(config_path)
    if config is not None and source is None:
        sources = list(config.sources)
    else:
        folder = source or Path("data/raw")
        sources = [FolderSource(name=str(folder), path=folder, interval_seconds=interval)]
    key = _key(config, db)
    server = config.server if config else {}
    try:
        store = Store(db, memory_limit=server.get("memory_limit", SERVING_MEMORY_LIMIT))
    except StoreError as exc:
        _fail(str(exc))
    settings.set_current(config)
    jobs = scheduler.start_sources(store, sources, key, _alerting(config, host, port))
    from cockpit import settings as runtime

    privacy, server = (config.privacy, config.server) if config else ({}, {})
    runtime.set_small_cell_threshold(privacy.get("small_cell_threshold", runtime.small_cell_threshold()))
    app = create_app(store, https=server.get("https", False), idle_minutes=server.get("idle_minutes", 30))
    if debug:
        # in-browser callback errors; never the Werkzeug debugger, which runs code
        app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)
    watched = ", ".join(f"{s.name} every {s.interval_seconds} s" for s in sources) or "no sources"
    click.echo(f"Cockpit serving {db} at http://{host}:{port}/ (loading {watched}). Ctrl+C stops it.")
    try:
        waitress.serve(app.server, host=host, port=port, threads=8, ident="cockpit")
    finally:
        jobs.shutdown(wait=False)
        store.close()


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Drop folder the scheduler watches [default: data/raw]; with --config, only "
                   "this folder is loaded.")
@click.option("--interval", type=click.IntRange(5), default=60, show_default=True,
              help="Seconds between scans of --source (configured sources have their own).")
@config_option
@click.option("--debug", is_flag=True, help="Show callback errors in the browser (development only).")
def serve(db: Path | None, host: str, port: int, source: Path | None, interval: int,
          config_path: Path | None, debug: bool) -> None:
    """Serve the cockpit and load the sources on their schedules. Users sign in with the
    accounts of 'cockpit users'."""
    _serve(resolve_db_path(db), host, port, source, interval, config_path, debug)


# ------------------------------------------------------------------ demo
def _demo_folder_current(folder: Path, seed: int, scale: str, end: date) -> bool:
    truth = folder / "ground_truth.json"
    if not truth.exists():
        return False
    try:
        meta = json.loads(truth.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return (meta.get("seed"), meta.get("scale"), meta.get("end_date")) == (seed, scale, end.isoformat())


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--scale", type=click.Choice(SCALES), default="small", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(db: Path | None, host: str, port: int, scale: str, seed: int) -> None:
    """Generate demo exports, load them and serve the cockpit, in one go."""
    db = resolve_db_path(db)
    raw = db.parent / "raw" / f"demo-{scale}-seed{seed}"
    if _demo_folder_current(raw, seed, scale, DEFAULT_END):
        click.echo(f"Demo exports already in {raw}.")
    else:
        _generate(raw, seed, scale, DEFAULT_END)
    # load the folder the server then watches, so the Data page knows it as one source
    drop = db.parent / "raw"
    _load(db, drop)
    _demo_users(db)
    _serve(db, host, port, drop, 60)


def _demo_users(db: Path) -> None:
    """One user per role, with generated passwords printed once; none on a store that
    already has users."""
    from cockpit.auth import users

    con = open_db(db)
    try:
        if users.list_users(con):
            click.echo("Sign in with an existing user ('cockpit users list'; "
                       "'cockpit users set-password NAME' sets a new password).")
            return
        created = users.create_demo_users(con)
    finally:
        con.close()
    click.echo("Demo users (passwords are shown this once):")
    for username, role, password in created:
        click.echo(f"  {username:<11} {role:<11} {password}")


# ------------------------------------------------------------------ feature commands
main.add_command(abtest)
main.add_command(alerts)
main.add_command(attribution)
main.add_command(audit)
main.add_command(erase)
main.add_command(forecast)
main.add_command(mix)
main.add_command(subject_access)
main.add_command(users)


if __name__ == "__main__":
    main()
