"""Numbers of the Overview page: KPI cards, per-study table, enrolment against
target, weekly trend, and how fresh the data is."""
from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from cockpit.filters import Filters
from cockpit.metrics.counts import JOURNEY_COLUMNS, STAGES, ratio, spend, spend_applies, stage_counts

STUDY_TABLE_COLUMNS = [
    "study_id", "name", "phase", "target_randomized", "active_sites",
    "leads", "eligible", "consented", "randomized",
    "randomized_to_date", "pct_target", "spend", "cost_per_randomized",
]


def kpis(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Leads, eligible, consented, randomized in the period; spend and cost per
    randomized (None when a site or segment filter makes spend unknowable, or when
    nobody was randomized)."""
    counts = stage_counts(con, f).iloc[0]
    out = {name: int(counts[name]) for name in STAGES}
    if spend_applies(f):
        total = float(spend(con, f)["spend"].sum())
        out["spend"] = total
        out["cost_per_randomized"] = ratio(total, out["randomized"])
    else:
        out["spend"] = None
        out["cost_per_randomized"] = None
    return out


def _studies(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    where, params = f.where({"study": "study_id", "phase": "phase"})
    return con.execute(
        f"""SELECT st.study_id, st.name, st.phase, st.target_randomized, st.start_date,
                   st.planned_end,
                   (SELECT count(*) FROM site s WHERE s.study_id = st.study_id
                      AND s.activation_date IS NOT NULL
                      AND s.activation_date <= current_date) AS active_sites
            FROM study st WHERE {where} ORDER BY st.study_id""",
        params,
    ).df()


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
    studies = _studies(con, f)
    counts = stage_counts(con, f, by="study")
    to_date = randomized_to_date(con, f)
    table = studies.merge(counts, on="study_id", how="left").merge(to_date, on="study_id", how="left")
    for col in list(STAGES) + ["randomized_to_date"]:
        table[col] = table[col].fillna(0).astype("int64")
    table["pct_target"] = (100.0 * table["randomized_to_date"] / table["target_randomized"]).round(1)
    if spend_applies(f):
        spent = spend(con, f, by="study")
        table = table.merge(spent[["study_id", "spend"]], on="study_id", how="left")
        table["spend"] = table["spend"].fillna(0.0).round(2)
        table["cost_per_randomized"] = [
            None if r is None else round(r, 2)
            for r in map(ratio, table["spend"], table["randomized"])
        ]
    else:
        table["spend"] = None
        table["cost_per_randomized"] = None
    return table[STUDY_TABLE_COLUMNS]


def enrolment_curve(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Cumulative randomized per study and week since study start, beside the
    straight-line target pace (target x elapsed share of the planned duration)."""
    studies = _studies(con, f)
    if studies.empty:
        return pd.DataFrame(columns=["study_id", "week", "cumulative_randomized", "target_to_date"])
    where, params = f.where(JOURNEY_COLUMNS)
    weekly = con.execute(
        f"""SELECT study_id, CAST(date_trunc('week', randomized_ts) AS DATE) AS week, count(*) AS n
            FROM journey WHERE randomized_ts IS NOT NULL AND {where} GROUP BY ALL""",
        params,
    ).df()
    last_week = pd.Timestamp(_latest_day(con) or datetime.utcnow().date()).to_period("W").start_time
    frames = []
    for st in studies.itertuples():
        start = pd.Timestamp(st.start_date).to_period("W").start_time
        weeks = pd.date_range(start, max(start, last_week), freq="W-MON")
        mine = weekly[weekly["study_id"] == st.study_id]
        got = pd.Series(mine["n"].to_numpy(), index=pd.to_datetime(mine["week"]))
        cumulative = got.reindex(weeks, fill_value=0).cumsum()
        duration = (pd.Timestamp(st.planned_end) - pd.Timestamp(st.start_date)).days or 1
        elapsed = np.clip((weeks - pd.Timestamp(st.start_date)).days.to_numpy() / duration, 0.0, 1.0)
        frames.append(pd.DataFrame({
            "study_id": st.study_id,
            "week": weeks.date,
            "cumulative_randomized": cumulative.to_numpy().astype("int64"),
            "target_to_date": (elapsed * st.target_randomized).round(1),
        }))
    return pd.concat(frames, ignore_index=True)


def weekly_trend(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per week: leads, eligible, consented, randomized (each on its own date) and spend."""
    counts = stage_counts(con, f, by="week")
    if spend_applies(f):
        spent = spend(con, f, by="week")[["week", "spend"]]
        out = counts.merge(spent, on="week", how="outer")
    else:
        out = counts.assign(spend=None)
    for col in STAGES:
        out[col] = out[col].fillna(0).astype("int64")
    return out.sort_values("week").reset_index(drop=True)


def _latest_day(con: duckdb.DuckDBPyConnection):
    row = con.execute(
        "SELECT greatest((SELECT max(day) FROM ad_daily), "
        "(SELECT CAST(max(ts) AS DATE) FROM funnel_event))"
    ).fetchone()
    return row[0]


def data_as_of(con: duckdb.DuckDBPyConnection) -> dict:
    """When the last load finished and the latest day with data, for the "data as of" line."""
    run = con.execute(
        "SELECT max(finished_at) FROM load_run WHERE status = 'ok'"
    ).fetchone()[0]
    return {"last_load": run, "latest_day": _latest_day(con)}
