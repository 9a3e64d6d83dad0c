"""``cockpit abtest FILE --json``: analyse an A/B test from a CSV."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable contract).")
def abtest(file: Path, as_json: bool) -> None:
    """Analyse an A/B test from a CSV with columns arm,users,conversions[,weight];
    the first row is the control."""
    from cockpit.analytics.abtest import AbTestInputError, report_from_csv

    try:
        report = report_from_csv(file)
    except AbTestInputError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report, allow_nan=False))
        return
    for arm in report["arms"]:
        line = f"{arm['arm']:<20} {arm['conversions']:>8}/{arm['users']:<8} rate {arm['rate']:.4f}"
        if "diff" in arm:
            line += (f"  diff {arm['diff']:+.4f}  p {arm['p_value']:.4g}"
                     f"  P(beat control) {arm['chance_to_beat_control']:.3f}")
        click.echo(line)
    click.echo(report["verdict"])
