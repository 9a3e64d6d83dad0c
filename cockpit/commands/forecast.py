"""``cockpit forecast``: when will the last patient be in?

Two modes:
- store forecast: ``cockpit forecast --db PATH --study ID [--json]``, the Poisson-Gamma
  forecast of one study from the store (cockpit.metrics.forecast);
- calculator: ``cockpit forecast --remaining N --centres C --shape A --rate B
  --months T [--json]``, closed forms for C sites with rates ~ Gamma(A, B) per month
  (cockpit.analytics.forecast.calculator).

Exit codes: 0 on success, 2 for bad options or inputs (the message names the option),
1 when the store cannot be used or the study cannot be forecast.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

CALCULATOR_OPTIONS = ("remaining", "centres", "shape", "rate", "months")


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _calculator(values: dict, as_json: bool) -> None:
    from cockpit.analytics.forecast import ForecastInputError, calculator

    missing = [f"--{name}" for name in CALCULATOR_OPTIONS if values[name] is None]
    if missing:
        _fail(f"the calculator needs {', '.join(missing)} as well")
    try:
        result = calculator(**values)
    except ForecastInputError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(result, allow_nan=False))
        return
    mean = "infinite" if result["mean_months"] is None else f"{result['mean_months']:.1f}"
    click.echo(f"P({values['remaining']} within {values['months']:g} months) = {result['p_by_deadline']:.3f}")
    click.echo(f"Months to recruit them: median {result['median_months']:.1f} (90% interval "
               f"{result['q05_months']:.1f}-{result['q95_months']:.1f}), mean {mean}")
    click.echo(f"Recruited within {values['months']:g} months: expected {result['expected_by_deadline']:.1f} "
               f"(90% interval {result['q05_by_deadline']}-{result['q95_by_deadline']})")


def _store_forecast(db: Path | None, study: str | None, sims: int, seed: int, as_json: bool) -> None:
    from cockpit.analytics.forecast import ForecastInputError
    from cockpit.metrics.forecast import NoDataError, UnknownStudyError, study_forecast, study_ids
    from cockpit.store import StoreError, open_db, resolve_db_path

    if not study:
        _fail("give --study ID (store forecast) or --remaining, --centres, --shape, --rate and "
              "--months (calculator)")
    path = resolve_db_path(db)
    if not path.is_file():
        _fail(f"--db: no store at {path}", code=1)
    try:
        con = open_db(path, read_only=True)
    except StoreError as exc:
        _fail(f"--db: {exc}", code=1)
    try:
        result = study_forecast(con, study, n_sims=sims, seed=seed)
    except UnknownStudyError:
        _fail(f"--study: unknown study {study!r} (studies in the store: {', '.join(study_ids(con)) or 'none'})")
    except (NoDataError, ForecastInputError) as exc:
        _fail(f"study {study}: cannot forecast: {exc}", code=1)
    finally:
        con.close()
    if as_json:
        click.echo(json.dumps(result, allow_nan=False))
    else:
        _print_store(result)


def _print_store(r: dict) -> None:
    """A short reading of the forecast for a terminal."""
    d = r["target_date"]
    click.echo(f"Study {r['study_id']} as of {r['as_of']}: {r['randomized']} of {r['target']} randomized, "
               f"{r['active_sites']} active and {r['planned_sites']} planned sites")
    click.echo(f"Site rates ~ Gamma(alpha {r['alpha']:.3g}, beta {r['beta']:.3g}): mean "
               f"{r['mean_rate']:.2f}, median {r['median_rate']:.2f} per site-month")
    click.echo(f"Target reached: {d['median']} (80% {d['q10']} to {d['q90']}; 95% {d['q025']} to {d['q975']})")
    click.echo(f"P(target by planned end {r['planned_end']}) = {r['p_on_time']:.2f}; extra sites needed "
               f"for 80%: {r['sites_needed_80']}, for 90%: {r['sites_needed_90']}")
    for warning in r["warnings"]:
        click.echo(f"Warning: {warning}")


@click.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Store to read [default: $COCKPIT_DB or data/cockpit.duckdb].")
@click.option("--study", default=None, help="Study to forecast from the store.")
@click.option("--remaining", type=int, default=None, help="Calculator: patients still to recruit (N).")
@click.option("--centres", type=int, default=None, help="Calculator: active sites (C).")
@click.option("--shape", type=float, default=None, help="Calculator: Gamma shape A of the site rates.")
@click.option("--rate", type=float, default=None, help="Calculator: Gamma rate B (per month) of the site rates.")
@click.option("--months", type=float, default=None, help="Calculator: months until the deadline (T).")
@click.option("--sims", type=click.IntRange(100), default=20_000, show_default=True,
              help="Monte Carlo draws of the store forecast.")
@click.option("--seed", type=int, default=20070, show_default=True, help="Seed of the store forecast.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable contract).")
def forecast(db: Path | None, study: str | None, remaining: int | None, centres: int | None,
             shape: float | None, rate: float | None, months: float | None, sims: int, seed: int,
             as_json: bool) -> None:
    """Forecast when a study reaches its target (Poisson-Gamma model, Anisimov & Fedorov
    2007), or, with --remaining/--centres/--shape/--rate/--months, the closed-form
    calculator for C sites with rates ~ Gamma(A, B) per month."""
    values = {"remaining": remaining, "centres": centres, "shape": shape, "rate": rate, "months": months}
    if any(v is not None for v in values.values()):
        if study is not None:
            _fail("--study cannot be combined with the calculator options")
        _calculator(values, as_json)
    else:
        _store_forecast(db, study, sims, seed, as_json)
