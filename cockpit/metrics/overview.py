"""Numbers of the Overview page: KPI cards, per-study table, enrolment against
target, weekly trend, and how fresh the data is.

The page asks for all of them at once (``snapshot``): the stage counts come from one
pass over the stage events (in total, per study and per week together), the spend
from one pass over the daily spend, the studies with their progress to date from one
query and the enrolment curve from another. The single-number functions (``kpis``,
``study_table``, ...) give the same numbers one at a time, for exports and reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd

from cockpit.filters import Filters
from cockpit.metrics.counts import (
    STAGE_PIVOT,
    events_sql,
    JOURNEY_COLUMNS,
    SPEND_COLUMNS,
    STAGES,
    ratio,
    spend_applies,
)

STUDY_TABLE_COLUMNS = [
    "study_id", "name", "phase", "target_randomized", "active_sites",
    "leads", "eligible", "consented", "randomized",
    "randomized_to_date", "pct_target", "spend", "cost_per_randomized",
]
CURVE_COLUMNS = ["study_id", "week", "cumulative_randomized", "target_to_date"]
STUDY_COLUMNS = {"study": "st.study_id", "phase": "st.phase"}

# grouping of the one-pass counts -> its GROUPING SETS entry
_GROUPS = {"total": "()", "study": "(study_id)", "week": "(week)"}
_ZERO = (0,) * len(STAGES)
_RANDOMIZED = list(STAGES).index("randomized")


@dataclass(frozen=True)
class Snapshot:
    """Everything the Overview page shows for one filter: ``kpis`` as ``kpis``,
    ``studies`` as ``study_table``, ``curve`` as ``enrolment_curve``, ``trend`` as
    ``weekly_trend``."""

    kpis: dict
    studies: pd.DataFrame
    curve: pd.DataFrame
    trend: pd.DataFrame


def snapshot(con: duckdb.DuckDBPyConnection, f: Filters) -> Snapshot:
    """The numbers of the Overview page, in four queries."""
    counts = _stage_counts(con, f, ("total", "study", "week"))
    spent = _spend(con, f, ("total", "study", "week"))
    studies = _studies(con, f)
    return Snapshot(
        kpis=_kpis(counts, spent),
        studies=_study_table(studies, counts, spent),
        curve=enrolment_curve(con, f) if studies else _empty_curve(),
        trend=_trend(counts, spent),
    )


# ---------------------------------------------------------------- the numbers

def kpis(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Leads, eligible, consented, randomized in the period; spend and cost per
    randomized (None when a site or segment filter makes spend unknowable, or when
    nobody was randomized)."""
    return _kpis(_stage_counts(con, f, ("total",)), _spend(con, f, ("total",)))


def randomized_to_date(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Randomized since study start per study (date filter not applied: progress
    against target counts every patient so far)."""
    where, params = f.where(JOURNEY_COLUMNS)
    return con.execute(
        f"""SELECT study_id, count(*) AS randomized_to_date FROM journey
            WHERE randomized_ts IS NOT NULL AND {where} GROUP BY study_id""",
        params,
    ).df()


def study_table(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """One row per study: target, active sites, stage counts in the period, randomized to
    date and share of target, spend and cost per randomized in the period."""
    return _study_table(_studies(con, f), _stage_counts(con, f, ("study",)), _spend(con, f, ("study",)))


def enrolment_curve(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Cumulative randomized per study and week since study start, beside the
    straight-line target pace (target x elapsed share of the planned duration).

    Weeks start on Monday, from the week of the study's start to the week of the
    latest day with data (today when there is none); a randomization outside those
    weeks is not counted. target_to_date = target x (days from study start to the
    week's Monday) / (planned duration in days), clipped to [0, target], to one
    decimal."""
    where_study, study_params = f.where(STUDY_COLUMNS)
    where, params = f.where(JOURNEY_COLUMNS)
    rows = con.execute(
        f"""WITH st AS (
                SELECT st.study_id, st.start_date, st.planned_end, st.target_randomized,
                       CAST(date_trunc('week', st.start_date) AS DATE) AS first_week
                FROM study st WHERE {where_study}),
            last AS (
                SELECT CAST(date_trunc('week', coalesce({_LATEST_DAY_SQL}, ?)) AS DATE) AS last_week),
            grid AS (
                SELECT study_id, start_date, planned_end, target_randomized,
                       CAST(unnest(generate_series(CAST(first_week AS TIMESTAMP),
                                                   CAST(greatest(first_week, last_week) AS TIMESTAMP),
                                                   INTERVAL 7 DAY)) AS DATE) AS week
                FROM st, last),
            weekly AS (
                SELECT study_id, CAST(date_trunc('week', randomized_ts) AS DATE) AS week, count(*) AS n
                FROM journey WHERE randomized_ts IS NOT NULL AND {where} GROUP BY ALL)
            SELECT g.study_id, g.week,
                   CAST(sum(coalesce(w.n, 0)) OVER (PARTITION BY g.study_id ORDER BY g.week) AS BIGINT),
                   date_diff('day', g.start_date, g.week), date_diff('day', g.start_date, g.planned_end),
                   g.target_randomized
            FROM grid g LEFT JOIN weekly w USING (study_id, week)
            ORDER BY g.study_id, g.week""",
        [*study_params, datetime.now(timezone.utc).date(), *params],
    ).fetchall()
    if not rows:
        return _empty_curve()
    study_ids, weeks, cumulative, days, duration, target = zip(*rows)
    duration = np.array([d or 1 for d in duration], dtype="int64")
    elapsed = np.clip(np.array(days, dtype="int64") / duration, 0.0, 1.0)
    return pd.DataFrame({
        "study_id": list(study_ids),
        "week": np.array(weeks, dtype=object),
        "cumulative_randomized": np.array(cumulative, dtype="int64"),
        "target_to_date": (elapsed * np.array(target, dtype="int64")).round(1),
    })


def weekly_trend(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per week: leads, eligible, consented, randomized (each on its own date) and spend."""
    return _trend(_stage_counts(con, f, ("week",)), _spend(con, f, ("week",)))


_LATEST_DAY_SQL = ("greatest((SELECT max(day) FROM ad_daily), "
                   "(SELECT CAST(max(ts) AS DATE) FROM funnel_event))")


def _latest_day(con: duckdb.DuckDBPyConnection):
    return con.execute(f"SELECT {_LATEST_DAY_SQL}").fetchone()[0]


def data_as_of(con: duckdb.DuckDBPyConnection) -> dict:
    """When the last load finished and the latest day with data, for the "data as of" line."""
    run = con.execute(
        "SELECT max(finished_at) FROM load_run WHERE status = 'ok'"
    ).fetchone()[0]
    return {"last_load": run, "latest_day": _latest_day(con)}


# ---------------------------------------------------------------- queries

def _stage_counts(con: duckdb.DuckDBPyConnection, f: Filters, groups: tuple[str, ...]) -> dict[str, dict]:
    """Persons reaching each stage in the period, counted as ``counts.stage_counts``
    does (each stage on the day it was reached), for several groupings in one pass:
    ``total`` ({"all": counts}), ``study`` (study id -> counts) and ``week`` (Monday ->
    counts); counts in the order of ``STAGES``. A total is always there (zeros without
    events); a study or week without events is not."""
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    rows = con.execute(
        f"""SELECT {_grouping(groups)}, {STAGE_PIVOT}
            FROM (SELECT study_id, stage, CAST(date_trunc('week', ts) AS DATE) AS week
                  FROM ({events_sql(STAGES)}) WHERE {where})
            {_group_by(groups)}""",
        params,
    ).fetchall()
    return _by_group(rows, groups, lambda row: tuple(row[4:]))


def _spend(con: duckdb.DuckDBPyConnection, f: Filters, groups: tuple[str, ...]) -> dict[str, dict] | None:
    """Spend in the period as ``counts.spend`` sums it (platform spend plus offline
    costs), for the groupings of ``_stage_counts``; None when a site or segment filter
    is set (``spend_applies``)."""
    if not spend_applies(f):
        return None
    where, params = f.where(SPEND_COLUMNS, date_column="day")
    rows = con.execute(
        f"""SELECT {_grouping(groups)}, coalesce(sum(spend), 0.0)
            FROM (SELECT study_id, CAST(date_trunc('week', day) AS DATE) AS week, spend
                  FROM spend_daily WHERE {where})
            {_group_by(groups)}""",
        params,
    ).fetchall()
    return _by_group(rows, groups, lambda row: float(row[4]))


def _grouping(groups: tuple[str, ...]) -> str:
    """Per row: whether it is of a study, whether of a week (0 = it is; grouping()
    of the column), the study id and the week."""
    if groups == ("total",):
        return "1, NULL, 1, NULL"  # one total row, no groups
    study = "grouping(study_id), study_id" if "study" in groups else "1, NULL"
    week = "grouping(week), week" if "week" in groups else "1, NULL"
    return f"{study}, {week}"


def _group_by(groups: tuple[str, ...]) -> str:
    if groups == ("total",):
        return ""
    return f"GROUP BY GROUPING SETS ({', '.join(_GROUPS[g] for g in groups)})"


def _by_group(rows: list[tuple], groups: tuple[str, ...], value) -> dict[str, dict]:
    """Rows of a ``_grouping`` query -> grouping -> key -> value."""
    out: dict[str, dict] = {g: {} for g in groups}
    for row in rows:
        if row[0] == 0:
            out["study"][row[1]] = value(row)
        elif row[2] == 0:
            out["week"][row[3]] = value(row)
        else:
            out["total"]["all"] = value(row)
    return out


def _studies(con: duckdb.DuckDBPyConnection, f: Filters) -> list[tuple]:
    """The studies of the filter with their active sites and randomized to date:
    (study_id, name, phase, target_randomized, active_sites, randomized_to_date)."""
    where_study, study_params = f.where(STUDY_COLUMNS)
    where, params = f.where(JOURNEY_COLUMNS)
    return con.execute(
        f"""WITH to_date AS (
                SELECT study_id, count(*) AS n FROM journey
                WHERE randomized_ts IS NOT NULL AND {where} GROUP BY study_id)
            SELECT st.study_id, st.name, st.phase, st.target_randomized,
                   (SELECT count(*) FROM site s WHERE s.study_id = st.study_id
                      AND s.activation_date IS NOT NULL
                      AND s.activation_date <= current_date) AS active_sites,
                   coalesce(d.n, 0)
            FROM study st LEFT JOIN to_date d ON d.study_id = st.study_id
            WHERE {where_study} ORDER BY st.study_id""",
        [*params, *study_params],
    ).fetchall()


# ---------------------------------------------------------------- frames

def _kpis(counts: dict[str, dict], spent: dict[str, dict] | None) -> dict:
    """``kpis`` of the total counts and spend."""
    out = dict(zip(STAGES, counts["total"]["all"]))
    if spent is None:
        out["spend"] = None
        out["cost_per_randomized"] = None
    else:
        total = spent["total"]["all"]
        out["spend"] = total
        out["cost_per_randomized"] = ratio(total, out["randomized"])
    return out


def _study_table(studies: list[tuple], counts: dict[str, dict], spent: dict[str, dict] | None) -> pd.DataFrame:
    """``study_table`` (columns ``STUDY_TABLE_COLUMNS``) of the studies and the counts
    and spend per study; a study without events or spend has zeros."""
    if not studies:
        ids = names = phases = targets = active = to_date = ()
    else:
        ids, names, phases, targets, active, to_date = zip(*studies)
    per_study = [counts["study"].get(s, _ZERO) for s in ids]
    to_date = np.array(to_date, dtype="int64")
    targets = np.array(targets, dtype="int32")
    randomized = [c[_RANDOMIZED] for c in per_study]
    with np.errstate(divide="ignore", invalid="ignore"):  # a target of 0 has no share
        pct_target = (100.0 * to_date / targets).round(1)
    if spent is None:
        spend = cost = np.array([None] * len(ids), dtype=object)
    else:
        spend = np.array([spent["study"].get(s, 0.0) for s in ids], dtype=float).round(2)
        cost = [None if r is None else round(r, 2) for r in map(ratio, spend.tolist(), randomized)]
    return pd.DataFrame({
        # text, or plain objects when there is no study
        "study_id": np.array(ids, dtype=object),
        "name": np.array(names, dtype=object),
        "phase": np.array(phases, dtype=object),
        "target_randomized": targets,
        "active_sites": np.array(active, dtype="int64"),
        **{stage: np.array([c[i] for c in per_study], dtype="int64") for i, stage in enumerate(STAGES)},
        "randomized_to_date": to_date,
        "pct_target": pct_target,
        "spend": spend,
        "cost_per_randomized": cost,
    })


def _empty_curve() -> pd.DataFrame:
    """The enrolment curve without any study."""
    return pd.DataFrame(columns=CURVE_COLUMNS)


def _trend(counts: dict[str, dict], spent: dict[str, dict] | None) -> pd.DataFrame:
    """Weeks with events or spend, in order; stages zero and spend empty where none."""
    by_week = counts["week"]
    spend_by_week = {} if spent is None else spent["week"]
    weeks = sorted(by_week.keys() | spend_by_week.keys())
    per_week = [by_week.get(w, _ZERO) for w in weeks]
    if spent is None:
        spend = np.array([None] * len(weeks), dtype=object)
    else:
        spend = np.array([spend_by_week.get(w, np.nan) for w in weeks], dtype=float)
    return pd.DataFrame({
        "week": np.array(weeks, dtype=object),
        **{stage: np.array([c[i] for c in per_week], dtype="int64") for i, stage in enumerate(STAGES)},
        "spend": spend,
    })
