"""``cockpit attribution FILE --json``: multi-touch attribution of conversion paths from a CSV."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable contract).")
@click.option("--half-life", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also compute the time-decay model, with this half-life in touches counted "
                   "back from the conversion (the CSV has no times).")
def attribution(file: Path, as_json: bool, half_life: float | None) -> None:
    """Attribute conversions to channels from a CSV with columns path,conversions,nulls;
    channels in a path are separated by '>' (e.g. "facebook > hcp_referral").

    Prints, per model (first touch, last touch, linear, position-based 40/20/40, Markov
    removal effect), the conversions credited to each channel; every model's credits add
    up to the total conversions."""
    from cockpit.analytics.attribution import LABELS, AttributionInputError, report_from_csv

    try:
        report = report_from_csv(file, half_life=half_life)
    except AttributionInputError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report, allow_nan=False))
        return
    models = report["models"]
    channels = sorted(report["removal_effects"])
    width = max([len(c) for c in channels] + [7])
    header = f"{'channel':<{width}} " + " ".join(f"{LABELS[m]:>14}" for m in models) + f" {'Removal effect':>14}"
    click.echo(header)
    for c in channels:
        values = " ".join(f"{models[m][c]:>14.2f}" for m in models)
        click.echo(f"{c:<{width}} {values} {report['removal_effects'][c]:>14.3f}")
    totals = " ".join(f"{sum(models[m].values()):>14.2f}" for m in models)
    click.echo(f"{'total':<{width}} {totals}")
