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
def _load(db: Path, source: Path) -> None:
    from cockpit import derive
    from cockpit.ingest import load_folder
    from cockpit.privacy import load_key

    if not source.is_dir():
        _fail(f"source folder {source} does not exist")
    try:
        con = open_db(db)
    except StoreError as exc:
        _fail(str(exc))
    try:
        key = load_key(db)
        started = time.perf_counter()
        summary = load_folder(con, source, key, progress=lambda line: click.echo(line, err=True),
                              after_load=derive.refresh)
    except StoreError as exc:
        _fail(str(exc))
    finally:
        con.close()
    click.echo(summary.text())
    click.echo(f"Load took {time.perf_counter() - started:.1f} s.")


@main.command()
@db_option
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Drop folder to scan (recursively) for exports.")
def load(db: Path | None, source: Path) -> None:
    """Load every new file of SOURCE once into the store and print a summary.

    Rows that fail validation go to quarantine with file, row, field and reason; the
    exit code is non-zero only when the store itself cannot be used."""
    _load(resolve_db_path(db), source)


# ------------------------------------------------------------------ serve
def _serve(db: Path, host: str, port: int, source: Path, interval: int) -> None:
    import waitress

    from app import create_app
    from cockpit import scheduler
    from cockpit.privacy import load_key
    from cockpit.store import Store

    try:
        store = Store(db)
    except StoreError as exc:
        _fail(str(exc))
    jobs = scheduler.start(store, source, load_key(db), interval_seconds=interval)
    app = create_app(store)
    click.echo(f"Cockpit serving {db} at http://{host}:{port}/ (watching {source} every {interval} s). "
               "Ctrl+C stops it.")
    try:
        waitress.serve(app.server, host=host, port=port, threads=8, ident="cockpit")
    finally:
        jobs.shutdown(wait=False)
        store.close()


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=Path("data/raw"),
              show_default=True, help="Drop folder the scheduler watches.")
@click.option("--interval", type=click.IntRange(5), default=60, show_default=True,
              help="Seconds between scans of the drop folder.")
def serve(db: Path | None, host: str, port: int, source: Path, interval: int) -> None:
    """Serve the cockpit and run the scheduled loaders."""
    _serve(resolve_db_path(db), host, port, source, interval)


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
    _load(db, raw)
    _serve(db, host, port, db.parent / "raw", 60)


# ------------------------------------------------------------------ feature commands
main.add_command(abtest)


if __name__ == "__main__":
    main()
