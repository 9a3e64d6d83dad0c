"""Numbers of the Segments page: yield and speed per segment (age band), and a
priority score that weighs them.

Methods (each stated on the page too):

- Counts are those of ``counts.stage_counts``, each stage on the day it was reached.
  Eligible rate is cohort based: of the leads created in the period, the share ever
  pre-screened eligible.
- Spend per segment. Spend is booked per study, channel and day, never per person, so
  it is allocated: the spend of each study x channel x week goes to the segments in
  proportion to that cell's leads. A cell whose week brought no lead is allocated by
  the segments' shares of that study x channel's leads over the whole period; spend
  of a study x channel without any lead in the period stays unallocated (reported).
  Spend cannot be split by site, so a site filter leaves spend empty.
- Time to enrolment: the one definition of ``funnel.enrolment_durations`` (whole days
  from lead to randomization of the period's leads that enrol or still can; open
  leads censored at the latest day with data; leads that left the funnel, with an
  exit or no step for ``funnel.STALE_DAYS`` days, left out), as a Kaplan-Meier median
  per segment (``cockpit.analytics.survival``).
- Priority = 100 x (yield index + speed index) / 2, where yield index = the segment's
  randomized per 1,000 spend / the best segment's, and speed index = the shortest
  median time to enrolment / the segment's (0 when its median is not reached). 100 is
  the cheapest and fastest segment on both counts. Indices compare the segments under
  every filter except the segment filter, so picking a segment does not change its
  score.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from cockpit.analytics.survival import kaplan_meier
from cockpit.filters import Filters
from cockpit.metrics import funnel
from cockpit.metrics.counts import JOURNEY_COLUMNS, STAGES, ratio, stage_counts

UNKNOWN_SEGMENT = "Unknown age"
# Below this many randomized patients a segment's yield and speed rest on a handful of
# persons: the table says so beside the score.
MIN_RANDOMIZED = 10
TABLE_COLUMNS = [  # the answer first, then what it is made of
    "segment_id", "segment", "priority", "caution", "leads", "eligible_rate_pct", "randomized",
    "randomized_per_1000", "allocated_cost_per_randomized", "median_days_to_randomization",
    "eligible", "consented", "allocated_spend", "km_leads", "open_leads",
    "yield_index", "speed_index",
]
TTE_COLUMNS = ["segment_id", "median_days_to_randomization", "km_leads", "open_leads"]
PRIORITY_FORMULA = (
    "Priority = 100 × (yield index + speed index) ÷ 2, where "
    "yield index = randomized per €1,000 of the segment ÷ that of the best segment, and "
    "speed index = shortest median days to enrolment ÷ the segment's median days "
    "(0 when its median is not reached: fewer than half of the leads followed randomized yet)."
)
ALLOCATION_METHOD = (
    "Spend is booked per study, channel and day, never per person, so it is allocated: "
    "each study × channel × week's spend goes to the segments in proportion to that "
    "week's leads from that channel for that study. A week without leads is allocated by "
    "the study × channel's lead shares over the whole period."
)
KM_METHOD = (
    "Median days from lead to randomization by Kaplan-Meier, over the period's leads that "
    "enrol or still can: randomized leads, and open leads (no exit, a step within the last "
    f"{funnel.STALE_DAYS} days), which are censored at the latest day with data. Leads that "
    f"left the funnel (an exit recorded, or no step for {funnel.STALE_DAYS} days) are not part "
    "of it: they will not be randomized, so they are no delay; the Funnel page's conversion "
    "and drop-off tables show them. Same definition as on the Funnel page."
)


def allocation_applies(f: Filters) -> bool:
    """Spend can be allocated to segments, but not to sites: a site filter hides it."""
    return not f.site


def allocated_spend(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[pd.DataFrame, dict]:
    """Spend of the period per segment (``segment_id`` '' for unknown age), allocated by
    lead shares (see the module docstring), and a summary: total spend, the part
    allocated by the week's leads, the part by the period's leads, and the part left
    unallocated because its study x channel had no lead in the period.

    Allocation uses every segment's leads whatever the segment filter (a segment's
    share is relative to all of them); the caller keeps the segments it shows.
    """
    base = f.without("segment", "site")
    spend_where, spend_params = base.where({"study": "study_id", "channel": "channel_id"}, date_column="day")
    lead_where, lead_params = base.where({"study": "study_id", "channel": "channel_id"})
    period, period_params = f.dates("lead_ts")
    sql = f"""
    WITH cell_spend AS (
        SELECT study_id, channel_id, CAST(date_trunc('week', day) AS DATE) AS week,
               sum(spend) AS spend
        FROM spend_daily WHERE {spend_where} GROUP BY ALL
    ),
    leads AS (
        SELECT study_id, channel_id, CAST(date_trunc('week', lead_ts) AS DATE) AS week,
               coalesce(segment_id, '') AS segment_id, ({period}) AS in_period
        FROM journey WHERE {lead_where}
    ),
    week_share AS (
        SELECT study_id, channel_id, week, segment_id,
               count(*) / sum(count(*)) OVER (PARTITION BY study_id, channel_id, week) AS share
        FROM leads GROUP BY study_id, channel_id, week, segment_id
    ),
    period_share AS (
        SELECT study_id, channel_id, segment_id,
               count(*) / sum(count(*)) OVER (PARTITION BY study_id, channel_id) AS share
        FROM leads WHERE in_period GROUP BY study_id, channel_id, segment_id
    ),
    cell AS (
        SELECT cs.*,
               EXISTS (SELECT 1 FROM week_share w WHERE w.study_id = cs.study_id
                       AND w.channel_id = cs.channel_id AND w.week = cs.week) AS by_week,
               EXISTS (SELECT 1 FROM period_share p WHERE p.study_id = cs.study_id
                       AND p.channel_id = cs.channel_id) AS by_period
        FROM cell_spend cs
    )
    SELECT 'week' AS method, w.segment_id, sum(c.spend * w.share) AS spend
    FROM cell c JOIN week_share w USING (study_id, channel_id, week)
    WHERE c.by_week GROUP BY ALL
    UNION ALL
    SELECT 'period', p.segment_id, sum(c.spend * p.share)
    FROM cell c JOIN period_share p USING (study_id, channel_id)
    WHERE NOT c.by_week GROUP BY ALL
    UNION ALL
    SELECT 'unallocated', NULL, sum(spend) FROM cell WHERE NOT by_week AND NOT by_period
    """
    parts = con.execute(sql, spend_params + period_params + lead_params).df()
    parts["spend"] = parts["spend"].fillna(0.0).astype(float)
    per_method = parts.groupby("method")["spend"].sum()
    summary = {
        "by_week": float(per_method.get("week", 0.0)),
        "by_period": float(per_method.get("period", 0.0)),
        "unallocated": float(per_method.get("unallocated", 0.0)),
    }
    summary["total"] = summary["by_week"] + summary["by_period"] + summary["unallocated"]
    allocated = (parts[parts["method"] != "unallocated"].groupby("segment_id", as_index=False)["spend"].sum()
                 .rename(columns={"spend": "allocated_spend"}))
    return allocated, summary


def time_to_enrolment(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per segment (``segment_id`` '' for unknown age): the Kaplan-Meier median days
    from lead to randomization (``median_days_to_randomization``, empty when not
    reached) of ``funnel.enrolment_durations``, the leads it follows (``km_leads``:
    randomized or open) and those censored because still open (``open_leads``)."""
    data = funnel.enrolment_durations(con, f, by="segment")
    rows = []  # one Kaplan-Meier per segment
    for group, g in data.groupby("group", sort=True):
        km = kaplan_meier(g["days"], g["randomized"], weights=g["persons"])
        rows.append({
            "segment_id": "" if group == funnel.UNKNOWN else group,
            "median_days_to_randomization": km.median(),
            "km_leads": km.n,
            "open_leads": km.n - km.n_events,
        })
    return pd.DataFrame(rows, columns=TTE_COLUMNS)


def segment_table(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """The table of ``segment_report``."""
    return segment_report(con, f)[0]


def segment_report(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[pd.DataFrame, dict | None]:
    """The segment table and the summary of the spend allocation (``allocated_spend``;
    None with a site filter). One row per segment with leads in the period
    (``Unknown age`` for persons without a birth year):

    - leads, eligible, consented, randomized: ``counts.stage_counts``, each on its day;
    - eligible_rate_pct: 100 x leads of the period ever eligible / leads of the period;
    - allocated_spend: ``allocated_spend`` (empty with a site filter);
    - allocated_cost_per_randomized = allocated spend / randomized;
      randomized_per_1000 = 1,000 x randomized / allocated spend;
    - median_days_to_randomization, km_leads, open_leads: ``time_to_enrolment``;
    - yield_index, speed_index, priority: ``PRIORITY_FORMULA``;
    - caution: says so when fewer than ``MIN_RANDOMIZED`` were randomized, so that a
      score resting on a handful of patients is not taken at face value.
    """
    scope = f.without("segment")  # indices compare every segment (module docstring)
    counts = stage_counts(con, scope, by="segment_or_unknown")
    table = counts.merge(_cohort_eligible(con, scope), on="segment_id", how="outer")
    summary = None
    if allocation_applies(f):
        spent, summary = allocated_spend(con, scope)
        table = table.merge(spent, on="segment_id", how="left")
    else:
        table["allocated_spend"] = np.nan
    table = table.merge(time_to_enrolment(con, scope), on="segment_id", how="left")
    for col in list(STAGES) + ["cohort_leads", "cohort_eligible", "km_leads", "open_leads"]:
        table[col] = table[col].fillna(0).astype("int64")
    table["eligible_rate_pct"] = [_pct(e, n) for e, n in zip(table["cohort_eligible"], table["cohort_leads"])]
    table["allocated_spend"] = pd.to_numeric(table["allocated_spend"], errors="coerce").astype(float)
    if allocation_applies(f):
        table["allocated_spend"] = table["allocated_spend"].fillna(0.0)
    table["allocated_cost_per_randomized"] = _floats(
        ratio(s, r) for s, r in zip(table["allocated_spend"], table["randomized"]))
    table["randomized_per_1000"] = _floats(
        None if (q := ratio(r, s)) is None else 1000.0 * q
        for r, s in zip(table["randomized"], table["allocated_spend"])
    )
    table["median_days_to_randomization"] = pd.to_numeric(table["median_days_to_randomization"]).astype(float)
    table = priority(table)
    table["caution"] = [f"only {n} randomized: uncertain" if n < MIN_RANDOMIZED else ""
                        for n in table["randomized"]]
    table = _names(con, table)
    for col, digits in (("allocated_spend", 2), ("allocated_cost_per_randomized", 2), ("randomized_per_1000", 3),
                        ("median_days_to_randomization", 1), ("yield_index", 3), ("speed_index", 3),
                        ("priority", 0)):
        table[col] = table[col].round(digits)
    if f.segment:
        wanted = set(f.segment)
        table = table[table["segment_id"].isin(wanted)]
    return table[TABLE_COLUMNS].reset_index(drop=True), summary


def priority(table: pd.DataFrame) -> pd.DataFrame:
    """Add yield_index, speed_index and priority (``PRIORITY_FORMULA``) to a frame with
    randomized_per_1000 and median_days_to_randomization. Without spend (site filter) or
    without any randomized patient the yield index, and so the priority, is empty."""
    table = table.copy()
    best_yield = table["randomized_per_1000"].max(skipna=True)
    if pd.isna(best_yield) or best_yield <= 0:
        table["yield_index"] = np.nan
    else:
        table["yield_index"] = table["randomized_per_1000"] / best_yield
    # durations are whole days: a median of 0 (randomized on the lead's day) counts as
    # 1 day, so that the index stays finite
    medians = table["median_days_to_randomization"].clip(lower=1.0)
    table["speed_index"] = (medians.min(skipna=True) / medians).fillna(0.0)
    table["priority"] = 100.0 * (table["yield_index"] + table["speed_index"]) / 2.0
    return table


# ---------------------------------------------------------------- helpers


def _cohort_eligible(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Leads created in the period per segment, and how many were ever eligible."""
    where, params = f.where(JOURNEY_COLUMNS, date_column="lead_ts")
    return con.execute(
        f"""SELECT coalesce(segment_id, '') AS segment_id, count(*) AS cohort_leads,
                   count(eligible_ts) AS cohort_eligible
            FROM journey WHERE {where} GROUP BY ALL""",
        params,
    ).df()


def _names(con: duckdb.DuckDBPyConnection, table: pd.DataFrame) -> pd.DataFrame:
    """Segment names, youngest band first, unknown age last."""
    segments = con.execute("SELECT segment_id, name AS segment, min_age FROM segment").df()
    table = table.merge(segments, on="segment_id", how="left")
    table["segment"] = table["segment"].where(table["segment_id"] != "", UNKNOWN_SEGMENT)
    table["segment"] = table["segment"].fillna(table["segment_id"])
    table["min_age"] = table["min_age"].fillna(10_000)
    return table.sort_values(["min_age", "segment_id"]).drop(columns="min_age")


def _pct(numerator, denominator) -> float:
    r = ratio(numerator, denominator)
    return np.nan if r is None else round(100.0 * r, 1)


def _floats(values) -> list[float]:
    return [np.nan if v is None else float(v) for v in values]
