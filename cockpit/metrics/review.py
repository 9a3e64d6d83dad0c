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

import threading
from dataclasses import replace
from datetime import date, timedelta

import duckdb
import pandas as pd

from cockpit.analytics.forecast import ForecastInputError
from cockpit.filters import FilterError, Filters
from cockpit.metrics.counts import STAGES, ratio, stage_counts
from cockpit.metrics.forecast import NoDataError, UnknownStudyError, study_forecast
from cockpit.metrics.funnel import last_day
from cockpit.store import data_version

PAGE_SIMS = 4000  # enough for percent-level probabilities; the CLI keeps the full count
MIN_VOLUME = 10  # changes are judged only on rows with at least this many in the week before
CHANGE_KPIS = ("leads", "eligible", "consented", "randomized")
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

def _studies(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    where, params = f.where({"study": "study_id", "phase": "phase"})
    return con.execute(
        f"""SELECT study_id, name, phase, target_randomized AS target, start_date, planned_end
            FROM study WHERE {where} ORDER BY study_id""", params).df()


def planned_to_date(target: int, start: date, planned_end: date, as_of: date) -> float:
    """Where the straight-line pace from start to planned end stands on ``as_of``."""
    start, planned_end = pd.Timestamp(start).date(), pd.Timestamp(planned_end).date()
    duration = (planned_end - start).days
    if duration <= 0:
        return float(target)
    share = min(max((as_of - start).days / duration, 0.0), 1.0)
    return target * share


def _to_date(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Per study: randomized and spend up to ``as_of``."""
    return con.execute(
        """SELECT st.study_id,
                  (SELECT count(*) FROM journey j WHERE j.study_id = st.study_id
                     AND CAST(j.randomized_ts AS DATE) <= ?) AS randomized_to_date,
                  (SELECT coalesce(sum(spend), 0) FROM spend_daily s WHERE s.study_id = st.study_id
                     AND s.day <= ?) AS spend_to_date
           FROM study st""", [as_of, as_of]).df()


def week_counts(con: duckdb.DuckDBPyConnection, f: Filters, period: tuple[date, date],
                by: str = "study") -> pd.DataFrame:
    """Stage counts (each stage on its own day) in ``period``, grouped by ``by``."""
    return stage_counts(con, replace(f, start=period[0], end=period[1]), by=by)


def alerts_firing(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], int]:
    """(firing rules per study named in their scope, firing rules in all). Both empty
    when the store has no alert tables yet."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('alert_rule', 'alert_state')"
    ).fetchone()[0]
    if exists < 2:
        return {}, 0
    scopes = [r[0] for r in con.execute(
        """SELECT r.scope FROM alert_rule r JOIN alert_state s USING (rule_id)
           WHERE s.state = 'firing' AND r.enabled""").fetchall()]
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

_CACHE: dict[tuple, dict | None] = {}
_CACHE_LOCK = threading.Lock()


def cached_forecast(con: duckdb.DuckDBPyConnection, study_id: str, n_sims: int = PAGE_SIMS) -> dict | None:
    """The study's forecast (cockpit.metrics.forecast.study_forecast), computed once per
    study and data version; None when it cannot be made (no data, nobody recruited at
    an active site yet)."""
    key = (study_id, data_version(con), last_day(con), n_sims)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    try:
        result = study_forecast(con, study_id, n_sims=n_sims)
    except (ForecastInputError, NoDataError, UnknownStudyError):
        result = None
    with _CACHE_LOCK:
        if len(_CACHE) > 256:  # old data versions are never asked for again
            _CACHE.clear()
        _CACHE[key] = result
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
    f = study_scope(f)
    studies = _studies(con, f)
    as_of = as_of or review_day(con)
    if studies.empty or as_of is None:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    this_week, week_before = weeks(as_of)
    now = week_counts(con, f, this_week).set_index("study_id")
    before = week_counts(con, f, week_before).set_index("study_id")
    to_date = _to_date(con, as_of).set_index("study_id")
    firing, _ = alerts_firing(con)
    rows = [_study_row(st, as_of, now, before, to_date, firing, cached_forecast(con, st.study_id, n_sims))
            for st in studies.itertuples()]
    table = pd.DataFrame(rows, columns=REVIEW_COLUMNS + ["spend_to_date", "planned_exact"])
    if with_total:
        table = pd.concat([table, pd.DataFrame([total_row(table, con, f)])], ignore_index=True)
    return table[REVIEW_COLUMNS]


def _count(frame: pd.DataFrame, study_id: str, stage: str) -> int:
    return int(frame.at[study_id, stage]) if study_id in frame.index else 0


def _study_row(st, as_of: date, now: pd.DataFrame, before: pd.DataFrame, to_date: pd.DataFrame,
               firing: dict[str, int], fc: dict | None) -> dict:
    randomized = int(to_date.at[st.study_id, "randomized_to_date"])
    spend_to_date = float(to_date.at[st.study_id, "spend_to_date"])
    planned = planned_to_date(int(st.target), st.start_date, st.planned_end, as_of)
    leads_now, leads_before = _count(now, st.study_id, "leads"), _count(before, st.study_id, "leads")
    dates = fc["target_date"] if fc else {}
    return {
        "study_id": st.study_id, "name": st.name, "phase": st.phase, "target": int(st.target),
        "randomized_to_date": randomized, "planned_to_date": round(planned, 1),
        "pace_pct": _pct(randomized, planned),
        "forecast_date": dates.get("median"), "forecast_lo80": dates.get("q10"),
        "forecast_hi80": dates.get("q90"),
        "p_on_time_pct": round(100.0 * fc["p_on_time"], 1) if fc else None,
        "cost_per_randomized_to_date": _money(ratio(spend_to_date, randomized)),
        "randomized_this_week": _count(now, st.study_id, "randomized"),
        "randomized_week_before": _count(before, st.study_id, "randomized"),
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


def total_row(table: pd.DataFrame, con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """The portfolio: sums of the studies shown; pace and cost from the sums; no
    forecast (each study has its own). With no study or phase filter, alerts firing
    include the rules scoped to no study."""
    sums = {c: int(table[c].sum()) for c in (
        "target", "randomized_to_date", "randomized_this_week", "randomized_week_before",
        "leads_this_week", "leads_week_before", "alerts_firing")}
    planned = float(table["planned_exact"].sum())
    spend_total = float(table["spend_to_date"].sum())
    if not f.study and not f.phase:
        sums["alerts_firing"] = alerts_firing(con)[1]
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
    level is study, channel or site; KPIs are ``CHANGE_KPIS`` (each stage on its own day)."""
    as_of = as_of or review_day(con)
    cols = ["level", "key", "kpi", "this_week", "week_before"]
    if as_of is None:
        return pd.DataFrame(columns=cols)
    f = Filters(study=(study_id,))
    this_week, week_before = weeks(as_of)
    frames = []
    for level in CHANGE_LEVELS:
        now = week_counts(con, f, this_week, by=level).set_index(level + "_id")
        before = week_counts(con, f, week_before, by=level).set_index(level + "_id")
        keys = sorted(set(now.index.dropna()) | set(before.index.dropna()))
        for key in keys:
            for kpi in CHANGE_KPIS:
                frames.append((level, key, kpi, _count(now, key, kpi), _count(before, key, kpi)))
    return pd.DataFrame(frames, columns=cols)


def biggest_changes(con: duckdb.DuckDBPyConnection, study_id: str, as_of: date | None = None,
                    n: int = 3, min_volume: int = MIN_VOLUME) -> pd.DataFrame:
    """The ``n`` largest relative changes week over week of one study: among
    ``week_changes`` rows with at least ``min_volume`` in the week before, ranked by
    |this week - week before| / week before, ties by the absolute difference. Adds
    ``change`` (this week - week before) and ``change_pct``."""
    rows = week_changes(con, study_id, as_of)
    rows = rows[rows["week_before"] >= min_volume].copy()
    rows["change"] = rows["this_week"] - rows["week_before"]
    rows["change_pct"] = (100.0 * rows["change"] / rows["week_before"]).round(1)
    rows["_rank"] = rows["change_pct"].abs()
    rows["_abs"] = rows["change"].abs()
    rows["label"] = [_label(con, level, key) for level, key in zip(rows["level"], rows["key"])]
    rows = rows[rows["change"] != 0].sort_values(["_rank", "_abs", "level", "key", "kpi"],
                                                 ascending=[False, False, True, True, True])
    return rows.drop(columns=["_rank", "_abs"]).head(n).reset_index(drop=True)


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


__all__ = ["review_table", "biggest_changes", "week_changes", "cached_forecast", "weeks", "review_day",
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
