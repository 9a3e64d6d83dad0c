"""Numbers of the Weekly review: one row per study for leadership, a portfolio total,
the forecast of the selected study and the biggest changes of the week.

Definitions (all as of the latest day with a funnel event, ``as_of``):
- This week: the 7 days ending on ``as_of`` (both included); the week before: the 7
  days before that. Weeks are rolling, not calendar weeks, so that the latest day with
  data always closes a full week.
- Randomized to date: every randomized person of the study up to ``as_of``.
- Planned to date: the straight-line target pace, target x (days from study start to
  ``as_of``) / (days from study start to planned end), capped to [0, target].
- Pace against plan: randomized to date / planned to date, in percent (100 = on plan).
- Forecast: the Poisson-Gamma forecast of the study (cockpit.metrics.forecast), over all
  its channels and sites whatever the filter: median day the target is reached, its
  80% interval (10th to 90th percentile), and the probability of reaching the target
  by the planned end.
- Cost per randomized to date: all spend of the study up to ``as_of`` / randomized to date.
- Alerts firing: enabled alert rules in state ``firing`` whose scope names the study;
  rules scoped to no study count in the portfolio total only.

Filters: study and phase apply; dates, sites, segments and channels do not (the
review is about each study's progress as a whole).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import NamedTuple

import duckdb
import pandas as pd

from cockpit.analytics.forecast import ForecastInputError
from cockpit.cache import LRU
from cockpit.filters import FilterError, Filters
from cockpit.metrics.counts import JOURNEY_COLUMNS, STAGES, ratio, stage_counts
from cockpit.metrics.counts import events_sql
from cockpit.metrics.forecast import NoDataError, UnknownStudyError, study_forecast
from cockpit.metrics.funnel import last_day
from cockpit.store import data_version

PAGE_SIMS = 4000  # enough for percent-level probabilities; the CLI keeps the full count
MIN_VOLUME = 10  # changes are judged only on rows with at least this many in the week before
CHANGE_KPIS = ("leads", "eligible", "consented", "randomized")
CHANGE_STAGES = {kpi: STAGES[kpi] for kpi in CHANGE_KPIS}  # each counted on its own day
CHANGE_LEVELS = {"study": "Study", "channel": "Channel", "site": "Site"}
TOTAL_ID = "Total"

REVIEW_COLUMNS = [
    "study_id", "name", "phase", "target", "randomized_to_date", "planned_to_date", "pace_pct",
    "forecast_date", "forecast_lo80", "forecast_hi80", "p_on_time_pct", "cost_per_randomized_to_date",
    "randomized_this_week", "randomized_week_before", "leads_this_week", "leads_week_before",
    "leads_change_pct", "alerts_firing",
]


# ---------------------------------------------------------------- periods

def review_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest day with a funnel event: the review is as of this day."""
    return last_day(con)


def weeks(as_of: date) -> tuple[tuple[date, date], tuple[date, date]]:
    """(this week, the week before) as inclusive (first day, last day) pairs."""
    this_start = as_of - timedelta(days=6)
    return (this_start, as_of), (this_start - timedelta(days=7), this_start - timedelta(days=1))


def study_scope(f: Filters) -> Filters:
    """The filter the review applies: study and phase only."""
    return Filters(study=f.study, phase=f.phase)


# ---------------------------------------------------------------- per-study parts

def planned_to_date(target: int, start: date, planned_end: date, as_of: date) -> float:
    """Where the straight-line pace from start to planned end stands on ``as_of``."""
    start, planned_end = pd.Timestamp(start).date(), pd.Timestamp(planned_end).date()
    duration = (planned_end - start).days
    if duration <= 0:
        return float(target)
    share = min(max((as_of - start).days / duration, 0.0), 1.0)
    return target * share


def week_counts(con: duckdb.DuckDBPyConnection, f: Filters, period: tuple[date, date],
                by: str = "study") -> pd.DataFrame:
    """Stage counts (each stage on its own day) in ``period``, grouped by ``by``."""
    return stage_counts(con, replace(f, start=period[0], end=period[1]), by=by)


def alerts_firing(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], int]:
    """(firing rules per study named in their scope, firing rules in all). Both empty
    when the store has no alert tables yet."""
    try:
        scopes = [r[0] for r in con.execute(
            """SELECT r.scope FROM alert_rule r JOIN alert_state s USING (rule_id)
               WHERE s.state = 'firing' AND r.enabled""").fetchall()]
    except duckdb.CatalogException:  # a store from before the alert tables
        return {}, 0
    per_study: dict[str, int] = {}
    for scope in scopes:
        try:
            studies = Filters.from_query(scope).study
        except FilterError:  # a malformed scope still fires: count it in the total
            studies = ()
        for study in studies:
            per_study[study] = per_study.get(study, 0) + 1
    return per_study, len(scopes)


# ---------------------------------------------------------------- forecasts, cached

# forecasts (a small dict each) of every study, for a few sizes of simulation; the
# least recently used, those of older data versions, go first
_CACHE = LRU(2048)
_NOT_KEPT = object()


def clear_cache() -> None:
    """Forget every forecast kept."""
    _CACHE.clear()


def cached_forecast(con: duckdb.DuckDBPyConnection, study_id: str, n_sims: int = PAGE_SIMS) -> dict | None:
    """The study's forecast (cockpit.metrics.forecast.study_forecast), computed once per
    study and data version; None when it cannot be made (no data, nobody recruited at
    an active site yet)."""
    return _forecast(con, study_id, n_sims, _data_key(con, last_day(con)))


def warm_forecasts(con: duckdb.DuckDBPyConnection, n_sims: int = PAGE_SIMS) -> int:
    """Compute and cache the forecast of every study for the current data version, as
    the review table asks for them; returns how many studies have one. Run after a load,
    so that the first viewer of the review does not wait for hundreds of simulations."""
    key = _data_key(con, last_day(con))
    studies = [s for (s,) in con.execute("SELECT study_id FROM study ORDER BY study_id").fetchall()]
    return sum(_forecast(con, study_id, n_sims, key) is not None for study_id in studies)


def _data_key(con: duckdb.DuckDBPyConnection, end: date | None) -> tuple:
    """What a cached forecast depends on besides the study: the data version and the
    latest day with data (``end``)."""
    return data_version(con), end


def _forecast(con: duckdb.DuckDBPyConnection, study_id: str, n_sims: int, data_key: tuple) -> dict | None:
    """``cached_forecast`` with the data key already read (one read for every study of a table)."""
    key = (study_id, *data_key, n_sims)
    kept = _CACHE.get(key, _NOT_KEPT)
    if kept is not _NOT_KEPT:
        return kept
    try:
        result = study_forecast(con, study_id, n_sims=n_sims)
    except (ForecastInputError, NoDataError, UnknownStudyError):
        result = None
    _CACHE.put(key, result)
    return result


def forecast_failure(con: duckdb.DuckDBPyConnection, study_id: str) -> str | None:
    """Why the study has no forecast, in words (None when it has one)."""
    try:
        study_forecast(con, study_id, n_sims=10)
    except (ForecastInputError, NoDataError, UnknownStudyError) as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------- the table

def pct_change(now: float, before: float) -> float | None:
    """(now - before) / before in percent, None when the week before had none."""
    r = ratio(now - before, before)
    return None if r is None else round(100.0 * r, 1)


def review_table(con: duckdb.DuckDBPyConnection, f: Filters, with_total: bool = True,
                 n_sims: int = PAGE_SIMS, as_of: date | None = None) -> pd.DataFrame:
    """One row per study (columns ``REVIEW_COLUMNS``, definitions in the module
    docstring), then the portfolio total (``study_id`` = "Total"). ``as_of`` (default:
    the latest day with data) sets the weeks and the "to date" counts; forecasts always
    start from the latest day with data."""
    return _table(con, f, with_total, n_sims, as_of, last_day(con))


def snapshot(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[pd.DataFrame, date | None]:
    """What the Weekly review page shows for a filter: ``review_table`` and the day it
    is as of (``review_day``), read once for both."""
    end = review_day(con)
    return _table(con, f, True, PAGE_SIMS, end, end), end


def _table(con: duckdb.DuckDBPyConnection, f: Filters, with_total: bool, n_sims: int,
           as_of: date | None, end: date | None) -> pd.DataFrame:
    """``review_table``, ``end`` being the latest day with data (the forecasts' start)."""
    f = study_scope(f)
    as_of = as_of or end
    if as_of is None:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    studies = _study_rows(con, f, as_of)
    if not studies:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    counts = _week_counts(con, f, as_of)
    firing, firing_total = alerts_firing(con)
    data_key = _data_key(con, end)
    rows = [_study_row(st, as_of, counts.get(st.study_id, _NO_COUNTS), firing,
                       _forecast(con, st.study_id, n_sims, data_key))
            for st in studies]
    table = pd.DataFrame(rows, columns=REVIEW_COLUMNS + ["spend_to_date", "planned_exact"])
    if with_total:
        table = pd.concat([table, pd.DataFrame([total_row(table, con, f, firing_total)])], ignore_index=True)
    return table[REVIEW_COLUMNS]


class _Study(NamedTuple):
    """A study of the table, with its randomized and spend up to the review day."""

    study_id: str
    name: str
    phase: str
    target: int
    start_date: date
    planned_end: date
    randomized_to_date: int
    spend_to_date: float


def _study_rows(con: duckdb.DuckDBPyConnection, f: Filters, as_of: date) -> list[_Study]:
    """The studies of the filter by id, each with every randomized person and all spend
    of the study up to ``as_of`` (whatever the other filters)."""
    where, params = f.where({"study": "st.study_id", "phase": "st.phase"})
    rows = con.execute(
        f"""SELECT st.study_id, st.name, st.phase, st.target_randomized, st.start_date, st.planned_end,
                   coalesce(r.randomized_to_date, 0), coalesce(s.spend_to_date, 0)
            FROM study st
            LEFT JOIN (SELECT study_id, count(*) AS randomized_to_date FROM journey
                       WHERE CAST(randomized_ts AS DATE) <= ? GROUP BY study_id) r USING (study_id)
            LEFT JOIN (SELECT study_id, sum(spend) AS spend_to_date FROM spend_daily
                       WHERE day <= ? GROUP BY study_id) s USING (study_id)
            WHERE {where} ORDER BY st.study_id""", [as_of, as_of, *params]).fetchall()
    return [_Study(*row) for row in rows]


# per study: (leads this week, leads the week before, randomized this week, the week before)
_NO_COUNTS = (0, 0, 0, 0)


def _week_counts(con: duckdb.DuckDBPyConnection, f: Filters, as_of: date) -> dict[str, tuple[int, int, int, int]]:
    """Per study, leads and randomized of this week and of the week before, each stage
    on its own day (as ``week_counts``), counted in one pass."""
    where, params = f.where(JOURNEY_COLUMNS)
    periods = weeks(as_of)
    counted = ", ".join(
        f"count(*) FILTER (WHERE {column} >= ? AND {column} < ? + INTERVAL 1 DAY)"
        for column in ("lead_ts", "randomized_ts") for _ in periods)
    bounds = [day for _ in ("lead_ts", "randomized_ts") for period in periods for day in period]
    rows = con.execute(f"SELECT study_id, {counted} FROM journey WHERE {where} GROUP BY study_id",
                       [*bounds, *params]).fetchall()
    return {study_id: tuple(numbers) for study_id, *numbers in rows}


def _study_row(st: _Study, as_of: date, counts: tuple[int, int, int, int], firing: dict[str, int],
               fc: dict | None) -> dict:
    randomized = int(st.randomized_to_date)
    spend_to_date = float(st.spend_to_date)
    planned = planned_to_date(int(st.target), st.start_date, st.planned_end, as_of)
    leads_now, leads_before, randomized_now, randomized_before = counts
    dates = fc["target_date"] if fc else {}
    return {
        "study_id": st.study_id, "name": st.name, "phase": st.phase, "target": int(st.target),
        "randomized_to_date": randomized, "planned_to_date": round(planned, 1),
        "pace_pct": _pct(randomized, planned),
        "forecast_date": dates.get("median"), "forecast_lo80": dates.get("q10"),
        "forecast_hi80": dates.get("q90"),
        "p_on_time_pct": round(100.0 * fc["p_on_time"], 1) if fc else None,
        "cost_per_randomized_to_date": _money(ratio(spend_to_date, randomized)),
        "randomized_this_week": randomized_now, "randomized_week_before": randomized_before,
        "leads_this_week": leads_now, "leads_week_before": leads_before,
        "leads_change_pct": pct_change(leads_now, leads_before),
        "alerts_firing": firing.get(st.study_id, 0), "spend_to_date": spend_to_date,
        "planned_exact": planned,  # unrounded, for the total
    }


def _pct(value: float, base: float) -> float | None:
    r = ratio(value, base)
    return None if r is None else round(100.0 * r, 1)


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def total_row(table: pd.DataFrame, con: duckdb.DuckDBPyConnection, f: Filters,
              firing_total: int | None = None) -> dict:
    """The portfolio: sums of the studies shown; pace and cost from the sums; no
    forecast (each study has its own). With no study or phase filter, alerts firing
    include the rules scoped to no study (``firing_total``: all rules firing, when
    ``alerts_firing`` was already read)."""
    sums = {c: int(table[c].sum()) for c in (
        "target", "randomized_to_date", "randomized_this_week", "randomized_week_before",
        "leads_this_week", "leads_week_before", "alerts_firing")}
    planned = float(table["planned_exact"].sum())
    spend_total = float(table["spend_to_date"].sum())
    if not f.study and not f.phase:
        sums["alerts_firing"] = alerts_firing(con)[1] if firing_total is None else firing_total
    return {
        **{c: None for c in REVIEW_COLUMNS}, **sums,
        "study_id": TOTAL_ID, "name": f"Portfolio ({len(table)} studies)",
        "planned_to_date": round(planned, 1), "pace_pct": _pct(sums["randomized_to_date"], planned),
        "cost_per_randomized_to_date": _money(ratio(spend_total, sums["randomized_to_date"])),
        "leads_change_pct": pct_change(sums["leads_this_week"], sums["leads_week_before"]),
    }


# ---------------------------------------------------------------- biggest changes

def week_changes(con: duckdb.DuckDBPyConnection, study_id: str, as_of: date | None = None) -> pd.DataFrame:
    """Every (level, key, KPI) of one study with its count this week and the week before:
    level is study, channel or site; KPIs are ``CHANGE_KPIS`` (each stage on its own day).
    Rows by level, then key, then KPI; all counted in one query."""
    as_of = as_of or review_day(con)
    cols = ["level", "key", "kpi", "this_week", "week_before"]
    if as_of is None:
        return pd.DataFrame(columns=cols)
    this_week, week_before = weeks(as_of)
    counted = _level_counts(con, Filters(study=(study_id,), start=week_before[0], end=this_week[1]), this_week[0])
    rows = []
    for level in CHANGE_LEVELS:
        for key in sorted(k for (lv, k) in counted if lv == level):
            now, before = counted[(level, key)]
            rows += [(level, key, kpi, now[i], before[i]) for i, kpi in enumerate(CHANGE_KPIS)]
    return pd.DataFrame(rows, columns=cols)


def _level_counts(con: duckdb.DuckDBPyConnection, f: Filters, this_start: date) -> dict[tuple[str, str], list]:
    """(level, key) -> [counts of ``CHANGE_KPIS`` from ``this_start`` on, counts before
    it], in ``f``'s period; keys that are empty (a lead without a channel) left out."""
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    pivot = ", ".join(f"count(*) FILTER (WHERE stage = '{kpi}')" for kpi in CHANGE_KPIS)
    levels = " UNION ALL ".join(f"SELECT '{level}' AS level, {level}_id AS key, now, stage FROM e"
                                for level in CHANGE_LEVELS)  # level names are fixed, never input
    rows = con.execute(
        f"""WITH e AS (SELECT *, ts >= CAST(? AS DATE) AS now FROM ({events_sql(CHANGE_STAGES)}) WHERE {where})
            SELECT level, key, now, {pivot} FROM ({levels}) WHERE key IS NOT NULL GROUP BY ALL""",
        [this_start, *params]).fetchall()
    counted: dict[tuple[str, str], list] = {}
    for level, key, now, *numbers in rows:
        counted.setdefault((level, key), [(0,) * len(CHANGE_KPIS)] * 2)[0 if now else 1] = tuple(numbers)
    return counted


def biggest_changes(con: duckdb.DuckDBPyConnection, study_id: str, as_of: date | None = None,
                    n: int = 3, min_volume: int = MIN_VOLUME) -> pd.DataFrame:
    """The ``n`` largest relative changes week over week of one study: among
    ``week_changes`` rows with at least ``min_volume`` in the week before, ranked by
    |this week - week before| / week before, ties by the absolute difference. Adds
    ``change`` (this week - week before), ``change_pct`` and the ``label`` a reader
    knows the row by."""
    rows = week_changes(con, study_id, as_of)
    rows = rows[rows["week_before"] >= min_volume].copy()
    rows["change"] = rows["this_week"] - rows["week_before"]
    rows["change_pct"] = (100.0 * rows["change"] / rows["week_before"]).round(1)
    rows["_rank"] = rows["change_pct"].abs()
    rows["_abs"] = rows["change"].abs()
    rows = rows[rows["change"] != 0].sort_values(["_rank", "_abs", "level", "key", "kpi"],
                                                 ascending=[False, False, True, True, True])
    top = rows.drop(columns=["_rank", "_abs"]).head(n).reset_index(drop=True)
    top["label"] = [_label(con, level, key) for level, key in zip(top["level"], top["key"])]
    return top


def _label(con: duckdb.DuckDBPyConnection, level: str, key: str) -> str:
    """How a reader knows the row: the site's or channel's name beside its id."""
    table = {"site": "site", "channel": "channel"}.get(level)
    if table is None:
        return key
    found = con.execute(f"SELECT name FROM {table} WHERE {table}_id = ?", [key]).fetchone()
    return f"{found[0]} ({key})" if found and found[0] != key else key


def describe_change(row) -> str:
    """One sentence: 'Leads for site Berlin (A1): 12 this week, 20 the week before (-40%).'"""
    where = f"{CHANGE_LEVELS[row['level']].lower()} {row.get('label') or row['key']}"
    if row["level"] == "study":
        where = "the whole study"
    kpi = row["kpi"].capitalize()
    sign = "+" if row["change_pct"] > 0 else ""
    return (f"{kpi} for {where}: {int(row['this_week']):,} this week, "
            f"{int(row['week_before']):,} the week before ({sign}{row['change_pct']:.0f}%).")


__all__ = ["review_table", "biggest_changes", "week_changes", "cached_forecast", "warm_forecasts", "weeks", "review_day",
           "planned_to_date", "alerts_firing", "describe_change", "REVIEW_COLUMNS", "STAGES", "MIN_VOLUME"]


def randomized_history(con: duckdb.DuckDBPyConnection, study_id: str, as_of: date | None = None) -> pd.DataFrame:
    """Cumulative randomized of one study per day with a randomization, up to ``as_of``
    (columns ``day``, ``cumulative``)."""
    as_of = as_of or review_day(con)
    out = con.execute(
        """SELECT CAST(randomized_ts AS DATE) AS day, count(*) AS n FROM journey
           WHERE study_id = ? AND randomized_ts IS NOT NULL AND CAST(randomized_ts AS DATE) <= ?
           GROUP BY ALL ORDER BY day""", [study_id, as_of]).df()
    out["cumulative"] = out["n"].cumsum().astype("int64")
    return out[["day", "cumulative"]]
