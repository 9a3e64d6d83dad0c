"""``cockpit mix fit FILE --outcome COL --spend COL[,COL...] --json``: fit the mix model to
weekly rows of a CSV."""
from __future__ import annotations

import csv
import json
import math
import sys
from datetime import date
from pathlib import Path

import click


class MixCsvError(ValueError):
    """A CSV the mix model cannot read; the message names the row or column."""


def _columns(text: str | None, option: str) -> list[str]:
    if text is None:
        return []
    names = [c.strip() for c in text.split(",")]
    if any(not c for c in names):
        raise MixCsvError(f"{option}: empty column name in {text!r}")
    if len(set(names)) != len(names):
        raise MixCsvError(f"{option}: a column is named twice in {text!r}")
    return names


def _number(value: str | None, column: str, row: int, negative_ok: bool) -> float:
    text = (value or "").strip()
    if not text:
        raise MixCsvError(f"row {row}: {column} is empty")
    try:
        number = float(text)
    except ValueError:
        raise MixCsvError(f"row {row}: {column} is not a number: {text!r}") from None
    if not math.isfinite(number):
        raise MixCsvError(f"row {row}: {column} is not finite: {text!r}")
    if number < 0 and not negative_ok:
        raise MixCsvError(f"row {row}: {column} is negative: {text!r}")
    return number


def read_weekly_csv(file: Path, outcome: str, spend: list[str], controls: list[str],
                    date_column: str | None) -> dict:
    """Columns of a weekly CSV (one row per week, oldest first), validated. Rows are
    numbered from 1 (the first row after the header)."""
    wanted = [outcome, *spend, *controls] + ([date_column] if date_column else [])
    overlap = {c for c in wanted if wanted.count(c) > 1}
    if overlap:
        raise MixCsvError(f"column(s) {', '.join(sorted(overlap))} used for more than one role")
    try:
        handle = open(file, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise MixCsvError(f"cannot read {file}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise MixCsvError(f"header: missing column(s) {', '.join(missing)}")
        reader.fieldnames = header
        out: dict = {"y": [], "spend": [], "controls": [], "dates": []}
        for row, record in enumerate(reader, start=1):
            if None in record:
                raise MixCsvError(f"row {row}: more values than columns")
            out["y"].append(_number(record[outcome], outcome, row, negative_ok=False))
            out["spend"].append([_number(record[c], c, row, negative_ok=False) for c in spend])
            out["controls"].append([_number(record[c], c, row, negative_ok=True) for c in controls])
            if date_column:
                text = (record[date_column] or "").strip()
                try:
                    day = date.fromisoformat(text[:10])
                except ValueError:
                    raise MixCsvError(f"row {row}: {date_column} is not a date (YYYY-MM-DD): {text!r}") from None
                if out["dates"] and day <= out["dates"][-1]:
                    raise MixCsvError(f"row {row}: {date_column} {day} is not after the row before "
                                      f"({out['dates'][-1]}); rows must be weeks in time order")
                out["dates"].append(day)
    if not out["y"]:
        raise MixCsvError("no rows: the file has a header but no weeks")
    return out


@click.group()
def mix() -> None:
    """Marketing-mix model: weekly spend per channel -> outcome, with carry-over and
    saturation."""


@mix.command("fit")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--outcome", required=True, help="Column of the weekly outcome (e.g. randomized).")
@click.option("--spend", "spend_cols", required=True, help="Spend columns, comma-separated; one per channel.")
@click.option("--controls", "control_cols", default=None, help="Control columns, comma-separated (e.g. active sites).")
@click.option("--date", "date_col", default=None, help="Column with the week's date (YYYY-MM-DD), for seasonality.")
@click.option("--holdout", type=click.IntRange(min=0), default=None,
              help="Last weeks held out for the MAPE check [default: a sixth of the weeks, 4 to 13].")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap refits for the contribution intervals (printed without --json).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the stable contract).")
def fit_command(file: Path, outcome: str, spend_cols: str, control_cols: str | None, date_col: str | None,
                holdout: int | None, n_boot: int, seed: int, as_json: bool) -> None:
    """Fit the mix model to FILE, a CSV with one row per week (oldest first).

    JSON: {"channels": {NAME: {"contribution", "share", "roas"}}, "fit": {"r2",
    "mape_holdout"}}; share = contribution / total outcome, roas = contribution / spend,
    mape_holdout as a fraction (0.12 = 12%). Warnings go to standard error."""
    from cockpit.analytics import mix as model

    try:
        spend = _columns(spend_cols, "--spend")
        controls = _columns(control_cols, "--controls")
        rows = read_weekly_csv(file, outcome, spend, controls, date_col)
        data = model.make_data(rows["y"], rows["spend"], spend, rows["controls"] if controls else None,
                               controls, dates=rows["dates"] or None)
        result = model.fit(data, outcome=outcome, n_boot=n_boot, holdout=holdout, seed=seed)
    except (MixCsvError, model.MixInputError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(model.report(result), allow_nan=False))
        return
    _print_table(result)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _print_table(result) -> None:
    rows = result.channel_table()
    width = max([len(r["channel"]) for r in rows] + [7])
    click.echo(f"{'channel':<{width}} {'spend':>12} {'contribution':>13} {'share':>7} {'roas':>9} "
               f"{'cost/outcome':>13} {'marginal':>12} {'saturation':>12}")
    for r in rows:
        share = "—" if r["share"] is None else f"{100 * r['share']:.1f}%"
        click.echo(f"{r['channel']:<{width}} {_fmt(r['spend'], 0):>12} {_fmt(r['contribution'], 1):>13} "
                   f"{share:>7} {_fmt(r['roas'], 4):>9} {_fmt(r['cost_per_outcome']):>13} "
                   f"{_fmt(r['marginal_cost']):>12} {_fmt(r['saturation_spend'], 0):>12}")
        if r["contribution_low"] is not None:
            click.echo(f"{'':<{width}} {'':>12} {'80%: ' + _fmt(r['contribution_low'], 1):>13} - "
                       f"{_fmt(r['contribution_high'], 1)}")
    mape = "—" if result.mape_holdout is None else f"{100 * result.mape_holdout:.1f}%"
    r2 = "—" if result.r2 is None else f"{result.r2:.3f}"
    click.echo(f"R2 {r2} · MAPE on the last {result.holdout_weeks} weeks held out: {mape}")
