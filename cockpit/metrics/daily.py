"""KPIs as known at the end of a day: a value over a trailing window, a daily series,
enrolment against the target curve, and how fresh each source's data is. The alert
rules are evaluated on these.

Every number uses the page definitions (DESIGN.md "KPI definitions"):
- counts are event based (``counts.stage_counts``): each stage on the day it was
  reached, so nothing that happened after the day looked at is counted;
- spend, impressions and clicks are ``counts.spend`` (platform plus offline costs),
  recorded per study and channel, so spend-based KPIs cannot be split by site or
  segment (``counts.spend_applies``);
- ratios over a window are pooled: sum of numerators / sum of denominators (CTR of a
  week = its clicks / its impressions), never a mean of daily ratios.
Window values come from the same functions the pages call; the daily series are the
same sums, grouped by day in DuckDB.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Mapping

import duckdb
import numpy as np
import pandas as pd

from cockpit.filters import Filters
from cockpit.metrics.counts import (
    JOURNEY_COLUMNS,
    SPEND_COLUMNS,
    STAGES,
    events_sql,
    ratio,
    spend,
    stage_counts,
)
from cockpit.metrics.sites import working_days_sql


@dataclass(frozen=True)
class Kpi:
    """A KPI an alert rule can watch.

    ``columns``: the scope dimensions it can be split by; ``bad``: the direction that
    is bad news ("up" for costs and delays, "down" for counts and CTR); ``page``: the
    cockpit page that shows it; ``how``: count, spend, ratio (numerator / denominator,
    times ``scale``) or median (of per-person values)."""

    key: str
    label: str
    unit: str
    columns: Mapping[str, str]
    bad: str
    page: str
    how: str
    definition: str
    numerator: str = ""
    denominator: str = ""
    scale: float = 1.0
    decimals: int = 0


def _count(key: str, label: str, definition: str, page: str = "/") -> Kpi:
    return Kpi(key, label, "persons", JOURNEY_COLUMNS, "down", page, "count", definition)


def _cost(key: str, label: str, per: str) -> Kpi:
    return Kpi(key, label, "€", SPEND_COLUMNS, "up", "/channels", "ratio",
               f"{label} = spend / persons {per} (both over the same days).", "spend", per, 1.0, 2)


KPIS: dict[str, Kpi] = {k.key: k for k in (
    _count("leads", "Leads", "Persons whose first pre-screen form, referral or event sign-up "
           "for a study falls in the window."),
    _count("eligible", "Eligible", "Leads pre-screened eligible, counted on the day they completed "
           "the pre-screener."),
    _count("consented", "Consented", "Persons who signed the study's (e)Consent in the window."),
    _count("randomized", "Randomized", "Persons randomized in the window."),
    _count("contacts", "First contacts by sites", "Leads a site reached for the first time in "
           "the window (a site that stops calling its leads back shows here).", page="/sites"),
    Kpi("spend", "Spend", "€", SPEND_COLUMNS, "up", "/channels", "spend",
        "Ad-platform spend plus offline costs booked in the window.", decimals=0),
    Kpi("ctr_pct", "CTR", "%", SPEND_COLUMNS, "down", "/channels", "ratio",
        "CTR = clicks / impressions, in percent.", "clicks", "impressions", 100.0, 2),
    _cost("cpl", "Cost per lead", "leads"),
    _cost("cost_per_eligible", "Cost per eligible", "eligible"),
    _cost("cost_per_randomized", "Cost per randomized", "randomized"),
    Kpi("contact_delay_wd", "Working days to first contact", "working days", JOURNEY_COLUMNS, "up",
        "/sites", "median",
        "Median working days (Monday to Friday) from the lead's day to the site's first contact, "
        "over the first contacts made in the window.", decimals=1),
    Kpi("days_to_randomization", "Days from lead to randomization", "days", JOURNEY_COLUMNS, "up",
        "/funnel", "median",
        "Median days from the lead's day to randomization, over the persons randomized in the "
        "window (those still waiting are not in it: see the Funnel page's Kaplan-Meier curves).",
        decimals=1),
)}


@dataclass(frozen=True)
class WindowValue:
    """A KPI over a window: the value (None when undefined: nothing to divide by, no
    observation), and what it is made of (numerator and denominator of a ratio; the
    count, total or number of observations otherwise)."""

    value: float | None
    numerator: float | None = None
    denominator: float | None = None


def window(scope: Filters, start: date, end: date) -> Filters:
    """The rule's scope restricted to the days ``start`` to ``end`` (both included)."""
    return replace(scope, start=start, end=end)


def trailing(scope: Filters, as_of: date, days: int, gap: int = 0) -> Filters:
    """The ``days`` days ending ``gap`` days before ``as_of`` (gap 0: ending on as_of)."""
    end = as_of - timedelta(days=gap)
    return window(scope, end - timedelta(days=days - 1), end)


# ---------------------------------------------------------------- window values


def window_value(con: duckdb.DuckDBPyConnection, key: str, f: Filters) -> WindowValue:
    """The KPI ``key`` over the window and scope of ``f`` (its start and end must be set).

    Counts: ``counts.stage_counts``; spend and CTR: ``counts.spend`` (CTR =
    100 x clicks / impressions); costs per stage: ``counts.ratio`` of the two; medians:
    DuckDB ``quantile_cont(x, 0.5)`` (linear interpolation)."""
    kpi = KPIS[key]
    if kpi.how == "median":
        return _median_value(con, key, f)
    if key == "contacts":
        return _contacts_value(con, f)
    if kpi.how == "count":
        n = int(stage_counts(con, f).iloc[0][key])
        return WindowValue(float(n), float(n))
    spent = spend(con, f).iloc[0]
    if key == "spend":
        return WindowValue(float(spent["spend"]), float(spent["spend"]))
    if key == "ctr_pct":
        num, den = float(spent["clicks"] or 0), float(spent["impressions"] or 0)
    else:
        num, den = float(spent["spend"]), float(stage_counts(con, f).iloc[0][kpi.denominator])
    r = ratio(num, den)
    return WindowValue(None if r is None else kpi.scale * r, num, den)


def _contacts_value(con: duckdb.DuckDBPyConnection, f: Filters) -> WindowValue:
    where, params = f.where(JOURNEY_COLUMNS, date_column="contacted_ts")
    n = con.execute(f"SELECT count(*) FROM journey WHERE contacted_ts IS NOT NULL AND {where}",
                    params).fetchone()[0]
    return WindowValue(float(n), float(n))


def _person_values_sql(key: str) -> tuple[str, str]:
    """(per-person value, timestamp it is dated by) of a median KPI."""
    if key == "contact_delay_wd":
        return working_days_sql("CAST(lead_ts AS DATE)", "CAST(contacted_ts AS DATE)"), "contacted_ts"
    return ("date_diff('day', CAST(lead_ts AS DATE), CAST(randomized_ts AS DATE))", "randomized_ts")


def _median_value(con: duckdb.DuckDBPyConnection, key: str, f: Filters) -> WindowValue:
    expr, ts = _person_values_sql(key)
    where, params = f.where(JOURNEY_COLUMNS, date_column=ts)
    med, n = con.execute(
        f"SELECT quantile_cont({expr}, 0.5), count(*) FROM journey WHERE {ts} IS NOT NULL AND {where}",
        params).fetchone()
    return WindowValue(None if med is None else float(med), None, float(n))


# ---------------------------------------------------------------- daily series


def daily_series(con: duckdb.DuckDBPyConnection, key: str, f: Filters) -> pd.DataFrame:
    """One row per day of ``f``'s window (start and end set): ``day``, ``value`` (NaN
    when undefined that day: no impressions for CTR, nobody to take a median of),
    ``numerator`` and ``denominator`` (as in ``window_value``: summing them over days
    and dividing gives the window's pooled value)."""
    kpi = KPIS[key]
    days = pd.date_range(f.start, f.end, freq="D")
    if kpi.how == "median":
        out = _daily_medians(con, key, f)
    elif kpi.how == "count":
        counts = _daily_counts(con, f, key)
        out = pd.DataFrame({"day": counts.index, "value": counts.values, "numerator": counts.values,
                            "denominator": np.nan})
    else:
        out = _daily_spend_based(con, kpi, f)
    out["day"] = pd.to_datetime(out["day"])
    out = out.set_index("day").reindex(days)
    if kpi.how in ("count", "spend"):  # a day without events is a zero, not a gap
        out["value"] = out["value"].fillna(0.0)
        out["numerator"] = out["numerator"].fillna(0.0)
    elif kpi.how == "ratio":
        out[["numerator", "denominator"]] = out[["numerator", "denominator"]].fillna(0.0)
        out["value"] = np.where(out["denominator"] > 0,
                                kpi.scale * out["numerator"] / out["denominator"].where(out["denominator"] > 0),
                                np.nan)
    out = out.rename_axis("day").reset_index()
    out["day"] = out["day"].dt.date
    return out[["day", "value", "numerator", "denominator"]].astype(
        {"value": float, "numerator": float, "denominator": float})


def _daily_counts(con: duckdb.DuckDBPyConnection, f: Filters, key: str) -> pd.Series:
    """Persons reaching stage ``key`` (or first contacts) per day."""
    if key == "contacts":
        source = ("SELECT study_id, site_id, segment_id, channel_id, contacted_ts AS ts FROM journey "
                  "WHERE contacted_ts IS NOT NULL")
    else:
        source = f"SELECT * FROM ({events_sql(STAGES)}) WHERE stage = '{key}'"  # key from KPIS only
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    rows = con.execute(f"SELECT CAST(ts AS DATE) AS day, count(*) AS n FROM ({source}) "
                       f"WHERE {where} GROUP BY ALL", params).df()
    return pd.Series(rows["n"].to_numpy(dtype=float), index=pd.to_datetime(rows["day"]))


def _daily_spend_based(con: duckdb.DuckDBPyConnection, kpi: Kpi, f: Filters) -> pd.DataFrame:
    where, params = f.where(SPEND_COLUMNS, date_column="day")
    spent = con.execute(
        f"SELECT day, sum(spend) AS spend, sum(impressions) AS impressions, sum(clicks) AS clicks "
        f"FROM spend_daily WHERE {where} GROUP BY day", params).df()
    spent["day"] = pd.to_datetime(spent["day"])
    spent = spent.set_index("day").astype(float)
    if kpi.key == "spend":
        return pd.DataFrame({"day": spent.index, "value": spent["spend"].to_numpy(),
                             "numerator": spent["spend"].to_numpy(), "denominator": np.nan})
    if kpi.key == "ctr_pct":
        num, den = spent["clicks"], spent["impressions"]
    else:
        num = spent["spend"]
        den = _daily_counts(con, f, kpi.denominator)
    both = pd.concat({"numerator": num, "denominator": den}, axis=1)
    both.index.name = "day"
    return both.reset_index().assign(value=np.nan)


def _daily_medians(con: duckdb.DuckDBPyConnection, key: str, f: Filters) -> pd.DataFrame:
    expr, ts = _person_values_sql(key)
    where, params = f.where(JOURNEY_COLUMNS, date_column=ts)
    return con.execute(
        f"SELECT CAST({ts} AS DATE) AS day, quantile_cont({expr}, 0.5) AS value, "
        f"NULL::DOUBLE AS numerator, count(*)::DOUBLE AS denominator "
        f"FROM journey WHERE {ts} IS NOT NULL AND {where} GROUP BY ALL", params).df()


def weekly_values(con: duckdb.DuckDBPyConnection, key: str, scope: Filters, as_of: date,
                  weeks: int = 12) -> pd.DataFrame:
    """The KPI over each of the ``weeks`` 7-day windows ending on ``as_of`` (oldest
    first): ``week_end``, ``value`` (``window_value`` of that week)."""
    rows = []
    for back in range(weeks - 1, -1, -1):
        f = trailing(scope, as_of, 7, gap=7 * back)
        rows.append({"week_end": f.end, "value": window_value(con, key, f).value})
    return pd.DataFrame(rows, columns=["week_end", "value"])


# ---------------------------------------------------------------- enrolment pace


@dataclass(frozen=True)
class Pace:
    """Randomized since study start up to ``as_of`` against the straight-line target
    (target x elapsed share of the planned duration, as on the Overview page), summed
    over the studies in scope. ``pct`` = 100 x randomized / target to date; None
    while the target curve asks for less than one patient (too early to judge)."""

    pct: float | None
    randomized: int
    target_to_date: float
    studies: tuple[str, ...]


PACE_COLUMNS = {"study": "st.study_id", "phase": "st.phase"}


def enrolment_pace(con: duckdb.DuckDBPyConnection, scope: Filters, as_of: date) -> Pace:
    """Enrolment against the target curve at the end of ``as_of`` (see ``Pace``)."""
    where, params = scope.where(PACE_COLUMNS)
    rows = con.execute(
        f"""SELECT st.study_id, st.target_randomized, st.start_date, st.planned_end,
                   (SELECT count(*) FROM journey j WHERE j.study_id = st.study_id
                      AND j.randomized_ts < CAST(? AS DATE) + INTERVAL 1 DAY) AS randomized
            FROM study st WHERE {where} ORDER BY st.study_id""",
        [as_of, *params]).fetchall()
    randomized, target = 0, 0.0
    for _, goal, start, end, done in rows:
        duration = (end - start).days or 1
        elapsed = min(max((as_of - start).days / duration, 0.0), 1.0)
        target += elapsed * goal
        randomized += int(done)
    pct = 100.0 * randomized / target if target >= 1.0 else None
    return Pace(pct, randomized, round(target, 1), tuple(r[0] for r in rows))


# ---------------------------------------------------------------- freshness

# Which fact table each export kind writes, with the record's time (a daily record
# counts as data up to the end of its day) and the scope columns it can be split by.
_FACTS = {
    "ads": ("SELECT CAST(a.day AS TIMESTAMP) + INTERVAL 1 DAY AS ts, c.study_id, c.channel_id, "
            "NULL::VARCHAR AS site_id, a.source_file FROM ad_daily a JOIN campaign c USING (campaign_id)",
            {"study": "study_id", "channel": "channel_id"}),
    "costs": ("SELECT CAST(day AS TIMESTAMP) + INTERVAL 1 DAY AS ts, study_id, channel_id, site_id, "
              "source_file FROM offline_cost", {"study": "study_id", "channel": "channel_id", "site": "site_id"}),
    "touch": ("SELECT ts, study_id, channel_id, site_id, source_file FROM touchpoint",
              {"study": "study_id", "channel": "channel_id", "site": "site_id"}),
    "funnel": ("SELECT ts, study_id, NULL::VARCHAR AS channel_id, site_id, source_file FROM funnel_event",
               {"study": "study_id", "site": "site_id"}),
    "consent": ("SELECT ts, NULL::VARCHAR AS study_id, channel_id, NULL::VARCHAR AS site_id, source_file "
                "FROM consent_event", {"channel": "channel_id"}),
}
SOURCES: dict[str, tuple[str, str]] = {  # export kind -> (name, fact table)
    "meta_ads": ("Meta Ads export", "ads"),
    "google_ads": ("Google Ads export", "ads"),
    "linkedin_ads": ("LinkedIn Ads export", "ads"),
    "offline_costs": ("Offline costs", "costs"),
    "web_events": ("Web events", "touch"),
    "qr_scans": ("QR code scans", "touch"),
    "prescreener": ("Pre-screener", "funnel"),
    "hcp_referrals": ("HCP referrals", "funnel"),
    "screening_events": ("Screening events", "funnel"),
    "consent": ("Consent records", "consent"),
    "site_pipeline": ("Site pipeline", "funnel"),
}


def source_columns(kind: str) -> Mapping[str, str]:
    """The scope dimensions the data of export ``kind`` can be split by."""
    return _FACTS[SOURCES[kind][1]][1]


@dataclass(frozen=True)
class Freshness:
    """How fresh the data of one export kind is at ``now``.

    ``newest_record``: the latest time a record of the kind speaks about (end of day
    for daily exports), up to ``now``; ``age_hours`` = now - newest_record (None when
    the kind never delivered a record in scope); ``last_file``/``last_loaded``: the
    newest file of the kind the loader took in (``source_file``) up to ``now``;
    ``last_run``: when the last successful load run finished (``load_run``)."""

    newest_record: datetime | None
    age_hours: float | None
    last_file: str | None
    last_loaded: datetime | None
    last_run: datetime | None


def source_freshness(con: duckdb.DuckDBPyConnection, kind: str, scope: Filters,
                     now: datetime) -> Freshness:
    """Freshness of export ``kind`` in ``scope`` at ``now`` (see ``Freshness``)."""
    sql, columns = _FACTS[SOURCES[kind][1]]
    where, params = scope.where(columns)
    newest = con.execute(
        f"""SELECT max(x.ts) FROM ({sql}) x JOIN source_file sf ON sf.path = x.source_file
            WHERE sf.kind = ? AND x.ts <= ? AND {where}""", [kind, now, *params]).fetchone()[0]
    path, loaded = con.execute(
        "SELECT arg_max(path, loaded_at), max(loaded_at) FROM source_file "
        "WHERE kind = ? AND status = 'loaded' AND loaded_at <= ?", [kind, now]).fetchone()
    run = con.execute("SELECT max(finished_at) FROM load_run WHERE status = 'ok' AND finished_at <= ?",
                      [now]).fetchone()[0]
    age = (now - newest).total_seconds() / 3600.0 if newest is not None else None
    return Freshness(newest, age, path, loaded, run)


def latest_day(con: duckdb.DuckDBPyConnection, until: date) -> date | None:
    """The latest day up to ``until`` with ad delivery or a funnel event."""
    return con.execute(
        "SELECT greatest((SELECT max(day) FROM ad_daily WHERE day <= ?), "
        "(SELECT CAST(max(ts) AS DATE) FROM funnel_event WHERE ts < CAST(? AS DATE) + INTERVAL 1 DAY))",
        [until, until]).fetchone()[0]


__all__ = ["KPIS", "Kpi", "WindowValue", "window", "trailing", "window_value", "daily_series",
           "weekly_values", "Pace", "enrolment_pace", "SOURCES", "source_columns", "Freshness",
           "source_freshness", "latest_day"]
