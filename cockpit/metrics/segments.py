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

import math
from datetime import timedelta

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
    allocated, summary = _allocation(con, f)
    ids = sorted(allocated)
    return pd.DataFrame({"segment_id": pd.Series(ids, dtype="str" if ids else object),
                         "allocated_spend": np.array([allocated[i] for i in ids], dtype=float)}), summary


def _spend_weeks(f: Filters) -> tuple[str, list]:
    """The weeks (from Monday) that hold the period's days, as a condition on
    ``lead_ts``: only those weeks' leads can allocate the period's spend, so the
    allocation reads the leads of a quarter, not of every year."""
    clauses, params = [], []
    if f.start:
        clauses.append("lead_ts >= ?")
        params.append(f.start - timedelta(days=f.start.weekday()))
    if f.end:
        clauses.append("lead_ts < ?")
        params.append(f.end - timedelta(days=f.end.weekday()) + timedelta(days=7))
    return " AND ".join(clauses) or "TRUE", params


def _allocation(con: duckdb.DuckDBPyConnection, f: Filters) -> tuple[dict[str, float], dict]:
    """``allocated_spend`` as {segment_id: spend} and the summary."""
    base = f.without("segment", "site")
    spend_where, spend_params = base.where({"study": "study_id", "channel": "channel_id"}, date_column="day")
    lead_where, lead_params = base.where({"study": "study_id", "channel": "channel_id"})
    period, period_params = f.dates("lead_ts")
    weeks, week_params = _spend_weeks(f)
    sql = f"""
    WITH cell_spend AS (
        SELECT study_id, channel_id, CAST(date_trunc('week', day) AS DATE) AS week,
               sum(spend) AS spend
        FROM spend_daily WHERE {spend_where} GROUP BY ALL
    ),
    leads AS (
        SELECT study_id, channel_id, CAST(date_trunc('week', lead_ts) AS DATE) AS week,
               coalesce(segment_id, '') AS segment_id, ({period}) AS in_period
        FROM journey WHERE {lead_where} AND {weeks}
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
    rows = con.execute(sql, spend_params + period_params + lead_params + week_params).fetchall()
    per_method: dict[str, list[float]] = {}
    per_segment: dict[str, list[float]] = {}
    for method, segment_id, spent in rows:
        spent = 0.0 if spent is None else float(spent)
        per_method.setdefault(method, []).append(spent)
        if method != "unallocated":
            per_segment.setdefault(segment_id, []).append(spent)
    summary = {
        "by_week": math.fsum(per_method.get("week", [])),
        "by_period": math.fsum(per_method.get("period", [])),
        "unallocated": math.fsum(per_method.get("unallocated", [])),
    }
    summary["total"] = summary["by_week"] + summary["by_period"] + summary["unallocated"]
    # exact sums: the same whatever order DuckDB hands the parts over in
    return {segment_id: math.fsum(parts) for segment_id, parts in per_segment.items()}, summary


def time_to_enrolment(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per segment (``segment_id`` '' for unknown age): the Kaplan-Meier median days
    from lead to randomization (``median_days_to_randomization``, empty when not
    reached) of ``funnel.enrolment_durations``, the leads it follows (``km_leads``:
    randomized or open) and those censored because still open (``open_leads``)."""
    rows = [{"segment_id": segment_id, "median_days_to_randomization": median,
             "km_leads": followed, "open_leads": still_open}
            for segment_id, (median, followed, still_open) in sorted(_enrolment(con, f).items(),
                                                                     key=lambda item: _group_of(item[0]))]
    return pd.DataFrame(rows, columns=TTE_COLUMNS)


def _group_of(segment_id: str) -> str:
    """The time-to-enrolment group of a segment id (the order ``time_to_enrolment`` lists them in)."""
    return funnel.UNKNOWN if segment_id == "" else segment_id


def _enrolment(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, tuple[float | None, int, int]]:
    """Per segment id: (Kaplan-Meier median days, leads followed, leads still open) of
    ``time_to_enrolment``. The leads that enrol or still can (``funnel.FOLLOWED``) of
    ``funnel.lead_status``, one Kaplan-Meier per segment; the status rows are already
    counted per day, so they go in as weights."""
    status = funnel.lead_status(con, f, by="segment")
    by_group: dict[str, tuple[list, list, list]] = {}
    for group, state, days, persons in zip(status["group"].tolist(), status["status"].tolist(),
                                           status["days"].tolist(), status["persons"].tolist()):
        if state in funnel.FOLLOWED:
            durations, events, weights = by_group.setdefault(group, ([], [], []))
            durations.append(days)
            events.append(state == funnel.RANDOMIZED)
            weights.append(persons)
    out = {}
    for group, (durations, events, weights) in by_group.items():
        km = kaplan_meier(durations, events, weights=weights)
        out["" if group == funnel.UNKNOWN else group] = (km.median(), km.n, km.n - km.n_events)
    return out


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
    table, summary = all_segments(con, f.without("segment"))
    return chosen(table, f), summary


def all_segments(con: duckdb.DuckDBPyConnection, scope: Filters) -> tuple[pd.DataFrame, dict | None]:
    """``segment_report`` of every segment: the indices compare every segment (module
    docstring), so a segment filter only picks rows of this table (``chosen``), and the
    table of all segments, computed once, serves each choice."""
    if scope.segment:
        raise ValueError("all_segments takes a filter without segments")
    counts = stage_counts(con, scope, by="segment_or_unknown")
    stages = {stage: dict(zip(counts["segment_id"].tolist(), counts[stage].tolist())) for stage in STAGES}
    cohort = {segment_id: (leads, eligible) for segment_id, leads, eligible in _cohort_rows(con, scope)}
    spent, summary = _allocation(con, scope) if allocation_applies(scope) else (None, None)
    enrolment = _enrolment(con, scope)
    names = _segment_names(con)
    # every segment with an event or a lead in the period, youngest band first, unknown age last
    ids = sorted(stages["leads"].keys() | cohort.keys(), key=lambda i: (names.get(i, (i, _NO_AGE))[1], i))
    return _segment_rows(ids, stages, cohort, spent, enrolment, names), summary


def chosen(table: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """The rows of ``all_segments``' table of the segments ``f`` chooses (all without a
    segment filter): scored among all segments, shown for the chosen ones."""
    if not f.segment:
        return table
    return table[table["segment_id"].isin(set(f.segment))].reset_index(drop=True)


_NO_AGE = 10_000  # the age band order of a segment without a band: last


def _segment_rows(ids: list[str], stages: dict[str, dict], cohort: dict[str, tuple[int, int]],
                  spent: dict[str, float] | None, enrolment: dict[str, tuple], names: dict[str, tuple]) -> pd.DataFrame:
    """The table of ``segment_report`` (columns ``TABLE_COLUMNS``) for the segments ``ids``,
    in that order; ``spent`` None when spend cannot be allocated (a site filter)."""
    counted = {stage: np.array([stages[stage].get(i, 0) for i in ids], dtype="int64") for stage in STAGES}
    randomized = counted["randomized"].tolist()
    if spent is None:
        allocated = np.full(len(ids), np.nan)
    else:
        allocated = np.array([spent.get(i, 0.0) for i in ids], dtype=float)
    allocated_list = allocated.tolist()
    per_1000 = np.array(_floats(None if (q := ratio(r, s)) is None else 1000.0 * q
                                for r, s in zip(randomized, allocated_list)), dtype=float)
    medians = np.array([np.nan if (m := enrolment.get(i, (None,))[0]) is None else m for i in ids], dtype=float)
    yield_index, speed_index, score = _indices(per_1000, medians)
    leads_followed = [enrolment[i][1] if i in enrolment else 0 for i in ids]
    frame = {
        "segment_id": ids,
        "segment": [_segment_name(i, names) for i in ids],
        "priority": score.round(0),
        "caution": [f"only {n} randomized: uncertain" if n < MIN_RANDOMIZED else "" for n in randomized],
        "leads": counted["leads"],
        "eligible_rate_pct": np.array([_pct(eligible, leads) for leads, eligible in
                                       (cohort.get(i, (0, 0)) for i in ids)], dtype=float),
        "randomized": counted["randomized"],
        "randomized_per_1000": per_1000.round(3),
        "allocated_cost_per_randomized": np.array(_floats(map(ratio, allocated_list, randomized)),
                                                  dtype=float).round(2),
        "median_days_to_randomization": medians.round(1),
        "eligible": counted["eligible"],
        "consented": counted["consented"],
        "allocated_spend": allocated.round(2),
        "km_leads": np.array(leads_followed, dtype="int64"),
        "open_leads": np.array([enrolment[i][2] if i in enrolment else 0 for i in ids], dtype="int64"),
        "yield_index": yield_index.round(3),
        "speed_index": speed_index.round(3),
    }
    if not ids:  # no segment: the columns are typed as they always were then
        frame.update(segment_id=np.array([], dtype=object), segment=pd.array([], dtype="str"),
                     caution=np.array([], dtype=float))
    return pd.DataFrame(frame)


def _indices(per_1000: np.ndarray, medians: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yield index, speed index, priority) of ``PRIORITY_FORMULA`` from randomized per
    1,000 spend and median days to enrolment (see ``priority``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        known = per_1000[~np.isnan(per_1000)]
        best_yield = known.max() if len(known) else np.nan
        if np.isnan(best_yield) or best_yield <= 0:
            yield_index = np.full(len(per_1000), np.nan)
        else:
            yield_index = per_1000 / best_yield
        # whole days: a median of 0 (randomized on the lead's day) counts as 1 day
        clipped = np.where(np.isnan(medians), np.nan, np.maximum(medians, 1.0))
        reached = clipped[~np.isnan(clipped)]
        fastest = reached.min() if len(reached) else np.nan
        speed_index = fastest / clipped
        speed_index = np.where(np.isnan(speed_index), 0.0, speed_index)
        return yield_index, speed_index, 100.0 * (yield_index + speed_index) / 2.0


def priority(table: pd.DataFrame) -> pd.DataFrame:
    """Add yield_index, speed_index and priority (``PRIORITY_FORMULA``) to a frame with
    randomized_per_1000 and median_days_to_randomization. Without spend (site filter) or
    without any randomized patient the yield index, and so the priority, is empty."""
    table = table.copy()
    table["yield_index"], table["speed_index"], table["priority"] = _indices(
        table["randomized_per_1000"].to_numpy(dtype=float),
        table["median_days_to_randomization"].to_numpy(dtype=float))
    return table


# ---------------------------------------------------------------- helpers


def _cohort_rows(con: duckdb.DuckDBPyConnection, f: Filters) -> list[tuple[str, int, int]]:
    """(segment_id, leads created in the period, of them ever eligible) per segment."""
    where, params = f.where(JOURNEY_COLUMNS, date_column="lead_ts")
    return con.execute(
        f"""SELECT coalesce(segment_id, '') AS segment_id, count(*) AS cohort_leads,
                   count(eligible_ts) AS cohort_eligible
            FROM journey WHERE {where} GROUP BY ALL""",
        params,
    ).fetchall()


def _segment_name(segment_id: str, names: dict[str, tuple[str, float]]) -> str:
    """The name shown for a segment: its band's name, ``UNKNOWN_SEGMENT`` for persons
    without a known age, the id itself for a band without a name."""
    if segment_id == "":
        return UNKNOWN_SEGMENT
    name = names.get(segment_id, (None,))[0]
    return segment_id if name is None else name


def _segment_names(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, float]]:
    """Segment id -> (name, youngest age of the band); a band without a youngest age
    sorts last."""
    return {segment_id: (name, _NO_AGE if min_age is None else min_age)
            for segment_id, name, min_age in con.execute("SELECT segment_id, name, min_age FROM segment").fetchall()}


def _pct(numerator, denominator) -> float:
    r = ratio(numerator, denominator)
    return np.nan if r is None else round(100.0 * r, 1)


def _floats(values) -> list[float]:
    return [np.nan if v is None else float(v) for v in values]
