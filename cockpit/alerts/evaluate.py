"""Evaluating alert rules: the value each rule watches, the control charts of drift
rules, the state machine (normal -> pending -> firing -> resolved), acknowledge and
silence, and the evaluation log.

One evaluation of a rule, as of a day (``as_of``: the last day of data it looks at)
and at a time (``now``):
1. the value is computed on the calling thread's read cursor (``observe``);
2. on the store's writer, in one transaction: the rule's state is read, the next
   state worked out (``step``), the evaluation logged with the value seen, and, when
   the step calls for a message, the message queued in the outbox (``cockpit.alerts.smtp``
   sends it later). So a state change and its message are committed together or not
   at all, and two evaluations never interleave.

Drift rules use a control chart on the KPI's daily values. The normal level mu and
spread sigma are the mean and standard deviation (n - 1) of the daily values in the
``baseline_days`` before the last ``monitor_days``; the chart runs over the monitored
days (days without a value are skipped):
- EWMA (Roberts 1959; Lucas & Saccucci 1990, Technometrics 32:1-12):
  z_t = lambda x_t + (1 - lambda) z_{t-1}, z_0 = mu; limits
  mu +- L sigma sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2t))) (exact, not
  asymptotic, so an early shift is judged fairly). With lambda = 0.2 and L = 3, a
  two-sided chart on independent normal days raises a false alarm once in about 560
  days, and signals a step of 1 sigma after 10 days on average, 1.5 sigma after 4.7
  days, 2 sigma after 2.9, 3 sigma after 1.6 (zero-state average run lengths,
  simulated; Montgomery, Introduction to Statistical Quality Control, ch. 9.2).
- CUSUM (Page 1954; Montgomery ch. 9.1), on standardized days u_t = (x_t - mu)/sigma:
  S+_t = max(0, S+_{t-1} + u_t - k), S-_t = max(0, S-_{t-1} - u_t - k), signal when
  one exceeds h. k = 0.5, h = 5 (the default): each side raises a false alarm once
  in about 465 days and signals a 1 sigma step after 10.4 days on average (h = 4:
  168 and 8.4 days; Montgomery, Table 9.3).
A step is caught only while the monitored days are all after it and the baseline all
before it: after ``monitor_days`` the step starts to enter the baseline, which then
adapts to the new level and the alert resolves (the new level has become normal). So
a drift is signalled within ``monitor_days`` of its start or not at all; the pending
period adds to the delay.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from email.utils import make_msgid

import duckdb
import numpy as np
import pandas as pd

from cockpit.alerts import notify
from cockpit.alerts.rules import (Rule, broken_rules, describe, format_value, load_rules, log_action,
                                  method_text)
from cockpit.metrics import daily

log = logging.getLogger("cockpit.alerts")

STATES = ("normal", "pending", "firing", "resolved")
TREND_WEEKS = 12


# ---------------------------------------------------------------- control charts


@dataclass(frozen=True)
class Chart:
    """A control chart over the monitored days.

    ``mean``, ``sd``: normal level and spread from the baseline days; ``statistic``:
    the chart's value on each monitored day with data (EWMA: smoothed KPI in its own
    unit; CUSUM: (S-, S+) in standard deviations); ``lower``/``upper``: the limits on
    the last day, in the statistic's unit; ``signal``: "down", "up" or None on the
    last monitored day with data; ``signals``: the same for every monitored day (None
    on days without data); ``days``: monitored days with data."""

    method: str
    mean: float
    sd: float
    statistic: list
    lower: float
    upper: float
    signal: str | None
    signals: list
    days: int


def ewma_chart(baseline: np.ndarray, monitored: np.ndarray, lam: float, L: float) -> Chart:
    """EWMA chart of ``monitored`` against the level and spread of ``baseline`` (see
    the module docstring for the formulas and their reference). NaN days are skipped."""
    mean, sd = _level(baseline)
    z, t, path, signals, signal = mean, 0, [], [], None
    lower = upper = mean
    for x in monitored:
        if np.isnan(x):  # no data that day: the chart holds its value and its verdict
            signals.append(None)
            continue
        t += 1
        z = lam * x + (1 - lam) * z
        width = L * sd * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
        lower, upper = mean - width, mean + width
        path.append(z)
        signal = ("down" if z < lower else "up" if z > upper else None) if width > 0 else None
        signals.append(signal)
    return Chart("ewma", mean, sd, path, lower, upper, signal, signals, t)


def cusum_chart(baseline: np.ndarray, monitored: np.ndarray, k: float, h: float) -> Chart:
    """Tabular CUSUM of ``monitored`` standardized by ``baseline`` (module docstring)."""
    mean, sd = _level(baseline)
    low = high = 0.0
    path, signals, t, signal = [], [], 0, None
    for x in monitored:
        if np.isnan(x) or sd <= 0:
            signals.append(None)
            continue
        t += 1
        u = (x - mean) / sd
        high = max(0.0, high + u - k)
        low = max(0.0, low - u - k)
        path.append((low, high))
        # both sums cannot exceed h together on one series; if they did, the larger wins
        signal = ("down" if low >= high else "up") if max(low, high) > h else None
        signals.append(signal)
    return Chart("cusum", mean, sd, path, -h, h, signal, signals, t)


def _level(baseline: np.ndarray) -> tuple[float, float]:
    values = baseline[~np.isnan(baseline)]
    if len(values) < 2:
        return (float(values.mean()) if len(values) else float("nan")), 0.0
    return float(values.mean()), float(values.std(ddof=1))


# ---------------------------------------------------------------- observations


@dataclass(frozen=True)
class Observation:
    """What one evaluation saw.

    ``value``: the number the rule compares (KPI over the window; EWMA statistic;
    CUSUM statistic in standard deviations; % of the target pace; data age in hours);
    ``reference``: what it is compared with (threshold, control limit, minimum pace,
    maximum age); ``baseline``: the normal level (change and drift rules);
    ``condition``: True when the rule's condition holds, None when there is nothing to
    judge; ``summary``: the comparison in one technical sentence (the log);
    ``headline``: the same in words for the e-mail; ``short``: the value in a few
    words for the e-mail's subject; ``rows``: the facts for the
    e-mail; ``trend``: drawn in the e-mail (None: computed when a message is due)."""

    as_of: date
    value: float | None
    condition: bool | None
    summary: str
    reference: float | None = None
    baseline: float | None = None
    headline: str = ""
    short: str = ""
    rows: tuple = ()
    page: str = "/"
    trend: notify.Trend | None = None
    extra: dict = field(default_factory=dict)


def observe(con: duckdb.DuckDBPyConnection, rule: Rule, as_of: date, now: datetime) -> Observation:
    """Evaluate ``rule``'s value and condition on data up to the end of ``as_of``."""
    fn = {"threshold": _threshold, "change": _change, "drift": _drift, "pace": _pace,
          "stale": _stale}[rule.kind]
    return fn(con, rule, as_of, now)


def _fmt(rule: Rule, value: float | None) -> str:
    kpi = daily.KPIS[rule.kpi]
    return format_value(value, kpi.unit, _decimals(kpi))


def _decimals(kpi: daily.Kpi) -> int:
    return 2 if kpi.unit == "%" else kpi.decimals


_SCOPE_NAMES = {"study": "SELECT study_id, name FROM study", "site": "SELECT site_id, name FROM site",
                "channel": "SELECT channel_id, name FROM channel", "segment": "SELECT segment_id, name FROM segment"}


def scope_words(con: duckdb.DuckDBPyConnection, scope) -> str:
    """The scope for a sentence: 'in study ST-102 (Bone study), channel Facebook';
    'across all studies' when nothing is set."""
    parts = []
    for dim in ("study", "phase", "site", "segment", "channel"):
        ids = getattr(scope, dim)
        if not ids:
            continue
        names = dict(con.execute(_SCOPE_NAMES[dim]).fetchall()) if dim in _SCOPE_NAMES else {}
        shown = [_named(dim, i, names.get(i)) for i in ids]
        plural = dim + ("es" if dim.endswith("s") else "s") if len(ids) > 1 else dim
        parts.append(f"{plural} {', '.join(shown)}")
    return ("in " + ", ".join(parts)) if parts else "across all studies"


def _named(dim: str, id_: str, name: str | None) -> str:
    """A channel or segment by its name; a study or site by id and name (once)."""
    if not name or name == id_:
        return id_
    if dim in ("channel", "segment") or id_ in name:
        return name
    return f"{id_} ({name})"


def _kpi_rows(rule: Rule) -> tuple:
    return (("KPI", daily.KPIS[rule.kpi].definition),)


def _threshold(con, rule: Rule, as_of: date, now: datetime) -> Observation:
    p, kpi = rule.params, daily.KPIS[rule.kpi]
    f = daily.trailing(rule.scope, as_of, p["window_days"])
    value = daily.window_value(con, rule.kpi, f).value
    limit = p["value"]
    period = f"{f.start} to {f.end}"
    if value is None:
        return Observation(as_of, None, None, f"{kpi.label} {period}: no data to judge.", limit,
                           page=kpi.page)
    hit = value > limit if p["op"] == ">" else value < limit
    side = ("above", "at or below") if p["op"] == ">" else ("below", "at or above")
    summary = (f"{kpi.label} over {period} is {_fmt(rule, value)}, {side[0 if hit else 1]} the "
               f"threshold of {_fmt(rule, limit)}.")
    where = scope_words(con, rule.scope)
    days = f"the last {p['window_days']} days ({period})"
    headline = (f"{kpi.label} {where} was {_fmt(rule, value)} over {days}, {side[0]} the limit of "
                f"{_fmt(rule, limit)} set in this rule." if hit else
                f"{kpi.label} {where} is back {side[1]} the limit of {_fmt(rule, limit)}: "
                f"{_fmt(rule, value)} over {days}.")
    rows = ((kpi.label, f"{_fmt(rule, value)} over {days}"),
            ("Alert limit", f"{side[0]} {_fmt(rule, limit)}"),
            ("Data up to", str(as_of))) + _kpi_rows(rule)
    short = f"{kpi.label} {_fmt(rule, value)}, limit {_fmt(rule, limit)}"
    return Observation(as_of, value, hit, summary, limit, headline=headline, short=short, rows=rows,
                       page=kpi.page)


def _change(con, rule: Rule, as_of: date, now: datetime) -> Observation:
    p, kpi = rule.params, daily.KPIS[rule.kpi]
    cur_f = daily.trailing(rule.scope, as_of, p["window_days"])
    base_f = daily.trailing(rule.scope, as_of, p["baseline_days"], gap=p["window_days"])
    cur = daily.window_value(con, rule.kpi, cur_f).value
    base = daily.window_value(con, rule.kpi, base_f).value
    if cur is None or base is None or base == 0:
        return Observation(as_of, cur, None, f"{kpi.label}: no data (or a zero baseline) to compare "
                           f"{cur_f.start} to {cur_f.end} with {base_f.start} to {base_f.end}.",
                           baseline=base, page=kpi.page)
    change = 100.0 * (cur - base) / base
    pct, direction = p["pct"], p["direction"]
    hit = {"down": change <= -pct, "up": change >= pct, "either": abs(change) >= pct}[direction]
    falls = direction == "down" or (direction == "either" and change < 0)
    edge = base * (1 - pct / 100) if falls else base * (1 + pct / 100)
    moved = f"{'fell' if change < 0 else 'rose'} {abs(change):.0f}%"
    alert_at = {"down": f"a {pct:g}% fall", "up": f"a {pct:g}% rise",
                "either": f"a {pct:g}% change either way"}[direction]
    summary = (f"{kpi.label} over {cur_f.start} to {cur_f.end} is {_fmt(rule, cur)}, "
               f"{change:+.0f}% against {_fmt(rule, base)} over {base_f.start} to {base_f.end} "
               f"(alert at {alert_at}).")
    where = scope_words(con, rule.scope)
    headline = (f"{kpi.label} {where} {moved} in the last {p['window_days']} days: {_fmt(rule, cur)} "
                f"against {_fmt(rule, base)} in the {p['baseline_days']} days before. This rule alerts "
                f"at {alert_at}." if hit else
                f"{kpi.label} {where} is {_fmt(rule, cur)} over the last {p['window_days']} days, "
                f"{abs(change):.0f}% {'below' if change < 0 else 'above'} the {p['baseline_days']} days "
                f"before ({_fmt(rule, base)}): less than the {alert_at} that raises this alert.")
    rows = ((kpi.label, f"{_fmt(rule, cur)} over {cur_f.start} to {cur_f.end}"),
            ("Before", f"{_fmt(rule, base)} over {base_f.start} to {base_f.end}"),
            ("Change", f"{change:+.0f}%"),
            ("Alert level", f"{alert_at}, i.e. at {_fmt(rule, edge)}"),
            ("Data up to", str(as_of))) + _kpi_rows(rule)
    short = f"{kpi.label} {_fmt(rule, cur)}, {change:+.0f}%"
    return Observation(as_of, cur, hit, summary, edge, base, headline, short, rows, kpi.page,
                       extra={"change_pct": change})


def _drift(con, rule: Rule, as_of: date, now: datetime) -> Observation:
    p, kpi = rule.params, daily.KPIS[rule.kpi]
    B, M = p["baseline_days"], p["monitor_days"]
    f = daily.window(rule.scope, as_of - timedelta(days=B + M - 1), as_of)
    series = daily.daily_series(con, rule.kpi, f)
    values = series["value"].to_numpy(dtype=float)
    base, watched = values[:B], values[B:]
    need = max(7, B // 2)
    if np.count_nonzero(~np.isnan(base)) < need or np.count_nonzero(~np.isnan(watched)) == 0:
        return Observation(as_of, None, None, f"Daily {kpi.label}: too few days with data to judge "
                           f"(need {need} of the {B} baseline days and one of the last {M}).",
                           page=kpi.page, extra={"series": series})
    if p["method"] == "ewma":
        chart = ewma_chart(base, watched, p["lambda"], p["L"])
    else:
        chart = cusum_chart(base, watched, p["k"], p["h"])
    if chart.sd <= 0:
        return Observation(as_of, None, None, f"Daily {kpi.label} did not vary at all in the baseline "
                           f"period: a control chart cannot judge it.", page=kpi.page,
                           extra={"series": series})
    return _drift_observation(con, rule, as_of, series, chart, B)


def _drift_observation(con, rule: Rule, as_of: date, series: pd.DataFrame, chart: Chart,
                       B: int) -> Observation:
    p, kpi = rule.params, daily.KPIS[rule.kpi]
    wanted = {"down": ("down",), "up": ("up",), "either": ("down", "up")}[p["direction"]]
    hit = chart.signal in wanted
    watched = series.iloc[B:]
    recent = float(np.nanmean(watched["value"])) if watched["value"].notna().any() else None
    base_days = f"{series['day'].iloc[0]} to {series['day'].iloc[B - 1]}"
    where = scope_words(con, rule.scope)
    low_side = p["direction"] == "down" or (p["direction"] == "either" and (recent or 0) < chart.mean)
    if chart.method == "ewma":
        value = chart.statistic[-1]
        reference = chart.lower if low_side else chart.upper
        state = ("below its lower control limit" if chart.signal == "down" else
                 "above its upper control limit" if chart.signal == "up" else "within its control limits")
        summary = (f"Smoothed daily {kpi.label} (EWMA) on {as_of} is {_fmt(rule, value)}, {state} "
                   f"({_fmt(rule, chart.lower)} to {_fmt(rule, chart.upper)}); normal level "
                   f"{_fmt(rule, chart.mean)}.")
        now_row = ("Now (smoothed)", f"{_fmt(rule, value)} on {as_of}")
        limit_row = ("Normal range", f"{_fmt(rule, chart.lower)} to {_fmt(rule, chart.upper)} "
                                     f"(for the smoothed value)")
        level_now = _fmt(rule, value)
    else:
        low, high = chart.statistic[-1]
        value = low if low_side else high
        reference = chart.upper
        side = "downward" if low_side else "upward"
        summary = (f"The {side} CUSUM of daily {kpi.label} on {as_of} is {value:.1f} standard deviations, "
                   f"{'above' if hit else 'below'} its decision limit of {chart.upper:g}; normal level "
                   f"{_fmt(rule, chart.mean)}, the last {len(watched)} days averaged {_fmt(rule, recent)}.")
        now_row = ("Accumulated deviation", f"{value:.1f} standard deviations {side} (CUSUM) on {as_of}")
        limit_row = ("Alert limit", f"{chart.upper:g} standard deviations")
        level_now = f"{_fmt(rule, recent)} on average over the last {len(watched)} days"
    if hit:
        way = "dropped below" if chart.signal == "down" else "risen above"
        bound = chart.lower if chart.signal == "down" else chart.upper
        headline = (f"{kpi.label} {where} has {way} its normal range: it is now {level_now}, while it "
                    f"normally runs at {_fmt(rule, chart.mean)}.")
        if chart.method == "ewma":
            headline += (f" Ordinary day-to-day ups and downs would not take the smoothed value "
                         f"{'below' if chart.signal == 'down' else 'above'} {_fmt(rule, bound)}.")
    else:
        headline = (f"{kpi.label} {where} is within its normal range: it is now {level_now}; "
                    f"normal level {_fmt(rule, chart.mean)}.")
    rows = (now_row,
            ("Normal level", f"{_fmt(rule, chart.mean)} (average of the days {base_days})"),
            limit_row,
            (f"Last {len(watched)} days", f"averaged {_fmt(rule, recent)}"),
            ("Data up to", str(as_of))) + _kpi_rows(rule) + (
            ("How it is judged", _method_words(p, rule, chart)),)
    trend = notify.Trend(
        f"Daily {kpi.label}, {series['day'].iloc[0]} to {as_of}", _points(series), kpi.unit,
        _decimals(kpi), _flags(series, B, chart, wanted), watched_from=series["day"].iloc[B],
        lines=((chart.mean, "#495057", "normal level"),),
        note="Red: days on which the alert's condition held.")
    short = (f"{kpi.label} {_fmt(rule, value)}, normally {_fmt(rule, chart.mean)}" if chart.method == "ewma"
             else f"{kpi.label} {_fmt(rule, recent)}, normally {_fmt(rule, chart.mean)}")
    return Observation(as_of, value, hit, summary, reference, chart.mean, headline, short, rows, kpi.page,
                       trend, extra={"chart": chart, "series": series})


def _method_words(p, rule: Rule, chart: Chart) -> str:
    spread = _fmt(rule, chart.sd)
    if p["method"] == "ewma":
        return (f"{method_text(p)}. The smoothed value is an average that gives the newest day "
                f"{100 * p['lambda']:.0f}% of the weight; the range is ± {p['L']:g} times the normal "
                f"day-to-day variation (standard deviation {spread}), narrowed for the smoothing.")
    return (f"{method_text(p)}. Each day's distance from the normal level, in standard deviations "
            f"({spread}) minus an allowance of {p['k']:g}, is added up; the alert fires when the sum "
            f"passes {p['h']:g}.")


def _flags(series: pd.DataFrame, B: int, chart: Chart, wanted: tuple) -> list[bool]:
    """Days to draw red: monitored days on which the chart signalled in a watched direction."""
    return [False] * B + [s in wanted for s in chart.signals]


def _points(series: pd.DataFrame) -> list[tuple[date, float | None]]:
    return [(d, None if pd.isna(v) else float(v)) for d, v in zip(series["day"], series["value"])]


def _pace(con, rule: Rule, as_of: date, now: datetime) -> Observation:
    minimum = rule.params["min_pct"]
    pace = daily.enrolment_pace(con, rule.scope, as_of)
    studies = ", ".join(pace.studies) or "no study"
    if pace.pct is None:
        return Observation(as_of, None, None, f"{studies}: too early to judge the pace (the target "
                           f"curve asks for {pace.target_to_date:g} randomized by {as_of}).", minimum)
    behind = pace.pct < minimum
    summary = (f"{studies}: {pace.randomized:,} randomized by {as_of}, target curve {pace.target_to_date:,.1f}: "
               f"{pace.pct:.0f}% of the target pace (alert below {minimum:g}%).")
    who = f"{'Studies' if len(pace.studies) > 1 else 'Study'} {studies}"
    headline = (f"{who} randomized {pace.randomized:,} patients by {as_of}; the target curve asks for "
                f"{pace.target_to_date:,.0f} by then. Enrolment runs at {pace.pct:.0f}% of the target "
                f"pace, " + (f"below the {minimum:g}% this rule accepts." if behind else
                             f"at or above the {minimum:g}% this rule asks for."))
    rows = (("Randomized to date", f"{pace.randomized:,} (study start to {as_of})"),
            ("Target curve to date", f"{pace.target_to_date:,.1f} (a straight line from study start "
                                     f"to the planned end)"),
            ("Pace", f"{pace.pct:.0f}% of the target curve"),
            ("Alert below", f"{minimum:g}%"),
            ("Data up to", str(as_of)))
    return Observation(as_of, pace.pct, behind, summary, minimum, headline=headline,
                       short=f"{pace.pct:.0f}% of the target pace", rows=rows, page="/")


def _stale(con, rule: Rule, as_of: date, now: datetime) -> Observation:
    source, limit = rule.params["source"], rule.params["max_hours"]
    name = daily.SOURCES[source][0]
    fresh = daily.source_freshness(con, source, rule.scope, now)
    where = scope_words(con, rule.scope) if rule.scope.to_query() else ""
    loaded = (f"{fresh.last_file} at {fresh.last_loaded:%Y-%m-%d %H:%M} UTC" if fresh.last_loaded
              else "none yet")
    rows = [("Newest record", f"{fresh.newest_record:%Y-%m-%d %H:%M} UTC" if fresh.newest_record else "none"),
            ("Last file loaded", loaded),
            ("Last successful load", f"{fresh.last_run:%Y-%m-%d %H:%M} UTC" if fresh.last_run else "none"),
            ("Alert when older than", f"{limit:g} hours")]
    if fresh.age_hours is None:
        text = f"There is no {name} data {where} at all.".replace("  ", " ")
        return Observation(as_of, None, True, text, limit, headline=text, short="no data at all",
                           rows=tuple(rows))
    stale = fresh.age_hours > limit
    summary = (f"The newest {name} record is {_age(fresh.age_hours)} old "
               f"({'more' if stale else 'less'} than the {limit:g} hours allowed).")
    newest = f"{fresh.newest_record:%Y-%m-%d %H:%M} UTC"
    headline = (f"No new {name} data {where} for {_age(fresh.age_hours)}: the newest record is from "
                f"{newest}, and this rule allows {limit:g} hours. Check that the export still arrives "
                f"in the drop folder and loads without errors." if stale else
                f"{name} data {where} is up to date again: the newest record ({newest}) is "
                f"{_age(fresh.age_hours)} old, within the {limit:g} hours allowed.").replace("  ", " ")
    rows.insert(0, ("Data age", _age(fresh.age_hours)))
    return Observation(as_of, fresh.age_hours, stale, summary, limit, headline=headline,
                       short=f"newest data {_age(fresh.age_hours)} old", rows=tuple(rows))


def _age(hours: float) -> str:
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def trend_for(con: duckdb.DuckDBPyConnection, rule: Rule, obs: Observation) -> notify.Trend | None:
    """The trend drawn in a message: the chart's daily values for drift rules, weekly
    values of the KPI (each over 7 days) for threshold and change rules, weekly pace
    for pace rules; none for stale-data rules."""
    if obs.trend is not None or rule.kind == "stale":
        return obs.trend
    if rule.kind == "pace":
        points = [(obs.as_of - timedelta(days=7 * w),
                   daily.enrolment_pace(con, rule.scope, obs.as_of - timedelta(days=7 * w)).pct)
                  for w in range(TREND_WEEKS - 1, -1, -1)]
        flags = [v is not None and v < rule.params["min_pct"] for _, v in points]
        return notify.Trend("Enrolment as % of the target curve, week by week", points, "%", 0, flags,
                            lines=((rule.params["min_pct"], "#b02a37", "alert level"),),
                            period=(points[0][0] - timedelta(days=6), obs.as_of))
    kpi = daily.KPIS[rule.kpi]
    weekly = daily.weekly_values(con, rule.kpi, rule.scope, obs.as_of, TREND_WEEKS)
    points = [(d, None if v is None or pd.isna(v) else float(v))
              for d, v in zip(weekly["week_end"], weekly["value"])]
    flags = [_beyond(rule, obs, v) for _, v in points]
    lines = ((obs.reference, "#b02a37", "alert level"),) if obs.reference is not None else ()
    if rule.kind == "change" and obs.baseline is not None:
        lines = ((obs.baseline, "#495057", "before"),) + lines
    return notify.Trend(f"{kpi.label} week by week (each bar: the 7 days ending on its date)", points,
                        kpi.unit, _decimals(kpi), flags, lines=lines,
                        period=(points[0][0] - timedelta(days=6), obs.as_of))


def _beyond(rule: Rule, obs: Observation, v: float | None) -> bool:
    if v is None:
        return False
    p = rule.params
    if rule.kind == "threshold":
        return v > p["value"] if p["op"] == ">" else v < p["value"]
    if obs.baseline:
        change = 100.0 * (v - obs.baseline) / obs.baseline
        return {"down": change <= -p["pct"], "up": change >= p["pct"],
                "either": abs(change) >= p["pct"]}[p["direction"]]
    return False


# ---------------------------------------------------------------- state machine


@dataclass(frozen=True)
class AlertState:
    """A rule's stored state (``alert_state``); a rule never evaluated is normal."""

    state: str = "normal"
    state_since: datetime | None = None
    clear_since: datetime | None = None
    last_notified_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    silenced_until: datetime | None = None
    silenced_by: str | None = None


@dataclass(frozen=True)
class Step:
    """The outcome of one evaluation for the state machine: the state after, the
    message to send (``notification``: firing, reminder, resolved or None) and a
    ``note`` saying why nothing was sent when that is not obvious."""

    before: str
    after: AlertState
    notification: str | None = None
    note: str | None = None


def step(state: AlertState, condition: bool | None, rule: Rule, now: datetime) -> Step:
    """The next state of ``rule`` after an evaluation at ``now`` found ``condition``.

    normal/resolved -> pending when the condition holds (straight to firing with no
    pending period); pending -> firing once it has held ``pending_hours`` (message
    "firing"), back to normal if it goes away first; firing stays firing while it
    holds (a "reminder" every ``repeat_hours`` unless acknowledged or silenced) and
    resolves once it has been gone ``clear_hours`` (message "resolved", if the firing
    was announced). No data (condition None) changes nothing.
    """
    s, before = state, state.state
    since = s.state_since or now
    silenced = s.silenced_until is not None and now < s.silenced_until
    keep = Step(before, replace(s, state_since=since))
    if condition is None:
        return replace(keep, note="nothing to judge: state kept")
    if s.state in ("normal", "resolved"):
        if not condition:
            return keep
        if rule.pending_hours <= 0:
            return _fire(s, before, now, silenced)
        return Step(before, replace(s, state="pending", state_since=now, clear_since=None),
                    note=f"condition holds; fires if it still holds after {rule.pending_hours:g} h")
    if s.state == "pending":
        if not condition:
            return Step(before, replace(s, state="normal", state_since=now),
                        note="condition gone before the pending period ended")
        if now - since >= timedelta(hours=rule.pending_hours):
            return _fire(s, before, now, silenced)
        return keep
    return _firing(s, before, since, condition, rule, now, silenced)


def _fire(s: AlertState, before: str, now: datetime, silenced: bool) -> Step:
    fired = replace(s, state="firing", state_since=now, clear_since=None, acknowledged_at=None,
                    acknowledged_by=None, last_notified_at=None)
    if silenced:
        return Step(before, fired, note=f"silenced until {s.silenced_until:%Y-%m-%d %H:%M} UTC: no message")
    return Step(before, replace(fired, last_notified_at=now), notification="firing")


def _firing(s: AlertState, before: str, since: datetime, condition: bool, rule: Rule,
            now: datetime, silenced: bool) -> Step:
    if condition:
        held = replace(s, state_since=since, clear_since=None)
        if s.acknowledged_at is not None:
            return Step(before, held, note=f"acknowledged by {s.acknowledged_by}: no reminder")
        if silenced:
            return Step(before, held, note=f"silenced until {s.silenced_until:%Y-%m-%d %H:%M} UTC: no message")
        if s.last_notified_at is None:  # fired during a silence that has ended
            return Step(before, replace(held, last_notified_at=now), notification="firing")
        if now - s.last_notified_at >= timedelta(hours=rule.repeat_hours):
            return Step(before, replace(held, last_notified_at=now), notification="reminder")
        return Step(before, held)
    gone_since = s.clear_since or now
    if now - gone_since >= timedelta(hours=rule.clear_hours):
        resolved = AlertState(state="resolved", state_since=now, silenced_until=s.silenced_until,
                              silenced_by=s.silenced_by)
        if s.last_notified_at is None:
            return Step(before, resolved, note="resolved; its firing was never announced (silenced), "
                                               "so no message")
        # a recovery is reported even during a silence: nobody is left believing it still fires
        return Step(before, resolved, notification="resolved")
    return Step(before, replace(s, state_since=since, clear_since=gone_since),
                note=f"condition gone since {gone_since:%Y-%m-%d %H:%M} UTC; resolves after "
                     f"{rule.clear_hours:g} h without it")


def load_state(con: duckdb.DuckDBPyConnection, rule_id: int) -> AlertState:
    row = con.execute(
        "SELECT state, state_since, clear_since, last_notified_at, acknowledged_at, acknowledged_by, "
        "silenced_until, silenced_by FROM alert_state WHERE rule_id = ?", [rule_id]).fetchone()
    return AlertState(*row) if row else AlertState()


def _save_state(con: duckdb.DuckDBPyConnection, rule_id: int, s: AlertState, obs: Observation | None,
                now: datetime) -> None:
    value = None if obs is None else _num(obs.value)
    reference = None if obs is None else _num(obs.reference)
    con.execute(
        """INSERT INTO alert_state (rule_id, state, state_since, clear_since, last_value, last_reference,
               last_evaluated_at, last_as_of, last_notified_at, acknowledged_at, acknowledged_by,
               silenced_until, silenced_by)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (rule_id) DO UPDATE SET state = excluded.state, state_since = excluded.state_since,
               clear_since = excluded.clear_since, last_value = excluded.last_value,
               last_reference = excluded.last_reference, last_evaluated_at = excluded.last_evaluated_at,
               last_as_of = excluded.last_as_of, last_notified_at = excluded.last_notified_at,
               acknowledged_at = excluded.acknowledged_at, acknowledged_by = excluded.acknowledged_by,
               silenced_until = excluded.silenced_until, silenced_by = excluded.silenced_by""",
        [rule_id, s.state, s.state_since or now, s.clear_since, value, reference,
         now if obs is not None else None, obs.as_of if obs is not None else None, s.last_notified_at,
         s.acknowledged_at, s.acknowledged_by, s.silenced_until, s.silenced_by])


def _num(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else float(value)


# ---------------------------------------------------------------- one cycle


@dataclass(frozen=True)
class Outcome:
    """One rule's evaluation: what was seen, the step taken, and the message queued
    (or, in a dry run, the message that would be)."""

    rule: Rule
    observation: Observation | None
    step: Step | None
    message: notify.Message | None = None
    message_id: str | None = None
    error: str | None = None


def default_as_of(con: duckdb.DuckDBPyConnection, now: datetime) -> date:
    """The day rules judge by default: yesterday (today's data is not complete), or the
    latest earlier day with data when the data stops before (a stale-data rule reports
    that; the other rules keep judging the last days that have data)."""
    yesterday = now.date() - timedelta(days=1)
    latest = daily.latest_day(con, yesterday)
    return latest or yesterday


def evaluate_all(store, now: datetime | None = None, as_of: date | None = None, base_url: str = "",
                 domain: str = "localhost", dry_run: bool = False) -> list[Outcome]:
    """Evaluate every enabled rule once; in a dry run nothing is written."""
    now = now or datetime.utcnow()
    con = store.reader()
    as_of = as_of or default_as_of(con, now)
    for rule_id, why in broken_rules(con):
        log.warning("alert rule %s is not evaluated: it no longer validates (%s)", rule_id, why)
    outcomes = []
    for rule in load_rules(con, enabled_only=True):
        outcomes.append(evaluate_rule(store, rule, as_of, now, base_url, domain, dry_run))
    return outcomes


def evaluate_rule(store, rule: Rule, as_of: date, now: datetime, base_url: str = "",
                  domain: str = "localhost", dry_run: bool = False) -> Outcome:
    """Evaluate one rule (see the module docstring); an error is logged with the rule,
    never raised, so one broken rule does not stop the others."""
    try:
        obs = observe(store.reader(), rule, as_of, now)
    except Exception as exc:  # a failing query must not silence every other rule
        log.exception("alert rule %s: evaluation failed", rule.rule_id)
        obs = Observation(as_of, None, None, f"Evaluation failed: {type(exc).__name__}: {exc}")
        if dry_run:
            return Outcome(rule, obs, None, error=obs.summary)
    if dry_run:
        con = store.reader()
        st = step(load_state(con, rule.rule_id), obs.condition, rule, now)
        message = _message(con, rule, obs, st, now, base_url) if st.notification else None
        return Outcome(rule, obs, st, message)
    try:
        return store.write_sync(lambda con: _commit(con, rule, obs, now, base_url, domain))
    except Exception as exc:  # rolled back: state, log and outbox stay as they were
        log.exception("alert rule %s: could not record the evaluation", rule.rule_id)
        return Outcome(rule, obs, None, error=f"{type(exc).__name__}: {exc}")


def _message(con, rule: Rule, obs: Observation, st: Step, now: datetime, base_url: str) -> notify.Message:
    trend = trend_for(con, rule, obs)
    headline, short = obs.headline or obs.summary, obs.short
    if st.notification == "resolved" and rule.kind == "drift":
        before = _moved_baseline(con, rule, obs)
        if before is not None:
            # an adapted baseline is not a recovery: say so in the subject, the text and the chart
            headline += (f" Note: the normal level is now {_fmt(rule, obs.baseline)}; it was "
                         f"{_fmt(rule, before)} when the alert fired. The changed level has lasted long "
                         f"enough to count as the new normal, so this is not a return to the old level. "
                         f"If the new level is not acceptable, add a threshold rule for it.")
            short = (f"{daily.KPIS[rule.kpi].label} {_fmt(rule, obs.baseline)} is the new normal, "
                     f"was {_fmt(rule, before)}")
            if trend is not None:
                trend = replace(trend, lines=tuple(trend.lines) + (
                    (before, "#b02a37", "normal level when the alert fired"),))
    period = notify.trend_period(trend, obs.as_of)
    facts = notify.Facts(headline, obs.rows, obs.page, period, short)
    firing_since = st.after.state_since if st.notification != "resolved" else _firing_since(con, rule)
    return notify.compose(rule, st.notification, facts, trend, firing_since=firing_since, now=now,
                          base_url=base_url)


def _moved_baseline(con, rule: Rule, obs: Observation) -> float | None:
    """For a resolved drift alert: the normal level when it fired, if the normal level
    has moved since by half a day-to-day standard deviation or more (the baseline now
    holds the new level); None otherwise."""
    row = con.execute(
        "SELECT baseline FROM alert_evaluation WHERE rule_id = ? AND notification = 'firing' "
        "ORDER BY eval_id DESC LIMIT 1", [rule.rule_id]).fetchone()
    chart = obs.extra.get("chart")
    if not row or row[0] is None or obs.baseline is None or chart is None:
        return None
    before = float(row[0])
    return before if abs(float(obs.baseline) - before) >= 0.5 * chart.sd else None


def _firing_since(con, rule: Rule) -> datetime | None:
    state = load_state(con, rule.rule_id)
    return state.state_since if state.state == "firing" else None


def _commit(con: duckdb.DuckDBPyConnection, rule: Rule, obs: Observation, now: datetime,
            base_url: str, domain: str) -> Outcome:
    """On the writer: read the state, step, log, queue the message, in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        st = step(load_state(con, rule.rule_id), obs.condition, rule, now)
        eval_id = con.execute("SELECT nextval('alert_evaluation_seq')").fetchone()[0]
        message = message_id = None
        if st.notification:
            message = _message(con, rule, obs, st, now, base_url)
            message_id = make_msgid(idstring=f"alert{rule.rule_id}.{eval_id}", domain=domain)
            _queue(con, message_id, rule, eval_id, st.notification, message, now)
        _log(con, eval_id, rule, obs, st, message_id, now)
        _save_state(con, rule.rule_id, st.after, obs, now)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return Outcome(rule, obs, st, message, message_id)


def _queue(con, message_id: str, rule: Rule, eval_id: int, kind: str, message: notify.Message,
           now: datetime) -> None:
    con.execute(
        """INSERT INTO alert_outbox (message_id, rule_id, eval_id, kind, created_at, recipients,
               subject, body_text, body_html, status, attempts)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0)""",
        [message_id, rule.rule_id, eval_id, kind, now, ", ".join(message.recipients), message.subject,
         message.text, message.html])


def _log(con, eval_id: int, rule: Rule, obs: Observation, st: Step, message_id: str | None,
         now: datetime) -> None:
    con.execute(
        """INSERT INTO alert_evaluation (eval_id, rule_id, evaluated_at, as_of, value, reference, baseline,
               condition, state_before, state_after, notification, message_id, summary, note)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [eval_id, rule.rule_id, now, obs.as_of, _num(obs.value), _num(obs.reference), _num(obs.baseline),
         obs.condition, st.before, st.after.state, st.notification, message_id, obs.summary, st.note])


# ---------------------------------------------------------------- acknowledge, silence


class AlertActionError(ValueError):
    """An action on an alert was refused; the message says why."""


def acknowledge(store, rule_id: int, actor: str, now: datetime | None = None) -> None:
    """Acknowledge a firing alert: no more reminders until it resolves (the resolved
    message still goes out). Refused when the alert is not firing."""
    now = now or datetime.utcnow()

    def write(con):
        state = load_state(con, rule_id)
        if state.state != "firing":
            raise AlertActionError(f"Only a firing alert can be acknowledged; rule {rule_id} is {state.state}.")
        if state.acknowledged_at is not None:
            raise AlertActionError(f"Rule {rule_id} was already acknowledged by {state.acknowledged_by}.")
        _change_state(con, rule_id, replace(state, acknowledged_at=now, acknowledged_by=actor),
                      actor, "acknowledged", None, now)

    store.write_sync(write)


def silence(store, rule_id: int, hours: float, actor: str, now: datetime | None = None) -> datetime:
    """Silence a rule for ``hours`` (0 lifts a silence): it is still evaluated and
    logged, but sends no firing message or reminder until then. Returns the end."""
    now = now or datetime.utcnow()
    if not 0 <= hours <= 24 * 90:
        raise AlertActionError("A silence lasts from 0 hours to 90 days.")
    until = now + timedelta(hours=hours)

    def write(con):
        if not con.execute("SELECT count(*) FROM alert_rule WHERE rule_id = ?", [rule_id]).fetchone()[0]:
            raise AlertActionError(f"Rule {rule_id} does not exist.")
        state = load_state(con, rule_id)
        new = replace(state, silenced_until=until if hours else None, silenced_by=actor if hours else None,
                      state_since=state.state_since or now)
        action = "silenced" if hours else "unsilenced"
        _change_state(con, rule_id, new, actor, action,
                      f"until {until:%Y-%m-%d %H:%M} UTC" if hours else None, now)

    store.write_sync(write)
    return until


def _change_state(con, rule_id: int, state: AlertState, actor: str, action: str, detail: str | None,
                  now: datetime) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        exists = con.execute("SELECT count(*) FROM alert_state WHERE rule_id = ?", [rule_id]).fetchone()[0]
        if exists:
            con.execute(
                "UPDATE alert_state SET acknowledged_at = ?, acknowledged_by = ?, silenced_until = ?, "
                "silenced_by = ? WHERE rule_id = ?",
                [state.acknowledged_at, state.acknowledged_by, state.silenced_until, state.silenced_by,
                 rule_id])
        else:
            _save_state(con, rule_id, state, None, now)
        log_action(con, rule_id, actor, action, detail, now)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------- tables for the page and the CLI

RULE_COLUMNS = ["rule_id", "name", "kind", "condition", "scope", "state", "since", "last_value",
                "compared_with", "data_up_to", "last_evaluated", "acknowledged", "silenced_until",
                "recipients", "pending_hours", "repeat_hours", "clear_hours", "enabled"]
HISTORY_COLUMNS = ["evaluated_at", "rule_id", "rule", "data_up_to", "value", "compared_with", "baseline",
                   "unit", "condition_met", "state_before", "state_after", "message", "summary", "note", "message_id"]
OUTBOX_COLUMNS = ["created_at", "rule_id", "kind", "subject", "recipients", "status", "attempts",
                  "last_attempt_at", "sent_at", "last_error", "message_id"]


def rules_table(con: duckdb.DuckDBPyConnection, rules: list[Rule] | None = None) -> pd.DataFrame:
    """One row per rule: its condition in words, scope, current state with the last
    value seen and what it was compared with, acknowledgement and silence. ``rules``:
    the stored rules when the caller has read them already."""
    rules = {r.rule_id: r for r in (load_rules(con) if rules is None else rules)}
    states = con.execute("SELECT * FROM alert_state").df().set_index("rule_id") if rules else pd.DataFrame()
    rows = []
    for rule_id, rule in rules.items():
        st = states.loc[rule_id] if rule_id in states.index else None
        get = (lambda col: None if st is None or pd.isna(st[col]) else st[col])
        rows.append({
            "rule_id": rule_id, "name": rule.name, "kind": rule.kind, "condition": describe(rule),
            "scope": rule.scope.label(), "state": (get("state") or "normal") if rule.enabled else "disabled",
            "since": _ts(get("state_since")), "last_value": value_text(rule, get("last_value")),
            "compared_with": value_text(rule, get("last_reference")), "data_up_to": _day(get("last_as_of")),
            "last_evaluated": _ts(get("last_evaluated_at")),
            "acknowledged": (f"{get('acknowledged_by')} {_ts(get('acknowledged_at'))}"
                             if get("acknowledged_at") is not None else ""),
            "silenced_until": _ts(get("silenced_until")), "recipients": ", ".join(rule.recipients),
            "pending_hours": rule.pending_hours, "repeat_hours": rule.repeat_hours,
            "clear_hours": rule.clear_hours, "enabled": rule.enabled,
        })
    return pd.DataFrame(rows, columns=RULE_COLUMNS)


def history_table(con: duckdb.DuckDBPyConnection, rule_id: int | None = None, limit: int = 1000,
                  rules: list[Rule] | None = None) -> pd.DataFrame:
    """The latest evaluations (newest first), of one rule or all, with the values seen.
    ``rules``: the stored rules when the caller has read them already."""
    where, params = ("WHERE e.rule_id = ?", [rule_id]) if rule_id is not None else ("", [])
    out = con.execute(
        f"""SELECT strftime(e.evaluated_at, '%Y-%m-%d %H:%M') AS evaluated_at, e.rule_id, r.name AS rule,
                   CAST(e.as_of AS VARCHAR) AS data_up_to, e.value, e.reference AS compared_with, e.baseline,
                   e.condition AS condition_met, e.state_before, e.state_after,
                   coalesce(e.notification, '') AS message, e.summary, coalesce(e.note, '') AS note,
                   coalesce(e.message_id, '') AS message_id
            FROM alert_evaluation e LEFT JOIN alert_rule r USING (rule_id) {where}
            ORDER BY e.eval_id DESC LIMIT {int(limit)}""", params).df()
    for col in ("value", "compared_with", "baseline"):
        out[col] = out[col].astype(float).round(4)
    units = {r.rule_id: value_unit(r) for r in (load_rules(con) if rules is None else rules)}
    out["unit"] = out["rule_id"].map(units).fillna("")
    out["condition_met"] = out["condition_met"].map({True: "yes", False: "no"}).fillna("no data")
    return out[HISTORY_COLUMNS]


def outbox_table(con: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    """Messages, newest first: queued ones wait for the SMTP server, sent ones were
    accepted by it, rejected ones were refused for good (the reason is shown)."""
    out = con.execute(
        f"""SELECT strftime(created_at, '%Y-%m-%d %H:%M') AS created_at, rule_id, kind, subject, recipients,
                   status, attempts, strftime(last_attempt_at, '%Y-%m-%d %H:%M') AS last_attempt_at,
                   strftime(sent_at, '%Y-%m-%d %H:%M') AS sent_at, coalesce(last_error, '') AS last_error,
                   message_id
            FROM alert_outbox ORDER BY created_at DESC, message_id LIMIT {int(limit)}""").df()
    return out[OUTBOX_COLUMNS]


def value_unit(rule: Rule) -> str:
    """The unit of the values a rule logs (value and compared-with)."""
    if rule.kind == "pace":
        return "% of target pace"
    if rule.kind == "stale":
        return "hours"
    if rule.kind == "drift" and rule.params["method"] == "cusum":
        return "standard deviations (CUSUM)"
    return daily.KPIS[rule.kpi].unit


def value_text(rule: Rule, value) -> str:
    """A logged value with its unit, as the rules table shows it ('' when none)."""
    if value is None or pd.isna(value):
        return ""
    value = float(value)
    if rule.kind == "pace":
        return f"{value:.0f}% of target pace"
    if rule.kind == "stale":
        return _age(value)
    if rule.kind == "drift" and rule.params["method"] == "cusum":
        return f"{value:.1f} SD"
    return _fmt(rule, value)


def _ts(value) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _day(value) -> str:
    return "" if value is None or pd.isna(value) else str(pd.Timestamp(value).date())


__all__ = ["Chart", "ewma_chart", "cusum_chart", "Observation", "observe", "trend_for", "AlertState",
           "Step", "step", "load_state", "Outcome", "default_as_of", "evaluate_all", "evaluate_rule",
           "AlertActionError", "acknowledge", "silence", "rules_table", "history_table", "outbox_table",
           "value_unit", "value_text",
           "STATES"]
