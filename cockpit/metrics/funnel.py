"""Numbers of the Funnel page: where leads go after they arrive, and how fast.

Everything here is cohort based (DESIGN.md, "Stage conversion is cohort based"): the
cohort is the leads created in the filter's period (``journey.lead_ts``), with the
study, phase, site, segment and channel filters applied to the lead; each later
stage is followed to the latest day with data, whatever the period's end.

Time to enrolment (``enrolment_durations``, the one definition every page uses):
days from lead to randomization, Kaplan-Meier, over the leads that enrol or still
can: randomized leads are events, open leads are censored at the latest day with
data; leads that left the funnel (an exit recorded, or no step for ``STALE_DAYS``
days) are left out and counted beside the curve. A second question, the share of
all leads randomized by day d (``randomized_share_durations``), keeps every lead.

Reaching a stage: a person who reached a later stage, or left the funnel from a later
stage, has passed the earlier ones even when the site did not record them (a
randomized person was screened; a screen fail had consented), so counts never rise
from one stage to the next.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from cockpit import derive
from cockpit.analytics.survival import kaplan_meier
from cockpit.filters import Filters
from cockpit.metrics.counts import JOURNEY_COLUMNS

# (name, label, journey column): the path from lead to randomized, in order
STAGES: tuple[tuple[str, str, str], ...] = (
    ("lead", "Lead", "lead_ts"),
    ("prescreen_started", "Pre-screen started", "prescreen_started_ts"),
    ("eligible", "Pre-screen eligible", "eligible_ts"),
    ("contacted", "Contacted by site", "contacted_ts"),
    ("consented", "Consented", "consented_ts"),
    ("screened", "Screened", "screened_ts"),
    ("randomized", "Randomized", "randomized_ts"),
)
STAGE_LABELS = {name: label for name, label, _ in STAGES}

# exit stage of funnel_event -> (label, journey column, stage it leaves from)
EXITS: dict[str, tuple[str, str, str]] = {
    "prescreen_ineligible": ("Pre-screen ineligible", "ineligible_ts", "prescreen_started"),
    "not_reachable": ("Not reachable", "not_reachable_ts", "eligible"),
    "declined": ("Declined consent", "declined_ts", "contacted"),
    "withdrawn": ("Withdrew before randomization", "withdrawn_ts", "consented"),
    "screen_failed": ("Screen fail", "screen_failed_ts", "screened"),
}

# exit stage -> journey column of its reason
_EXIT_REASONS = {stage: col for col, stage in derive.EXIT_REASON_COLUMNS}

# group of leads without a segment or site in the time-to-enrolment frames
UNKNOWN = "unknown"
# group key of the time-to-enrolment curves -> journey expression (never user input)
KM_GROUPS = {
    "channel": "channel_id",
    "segment": f"coalesce(segment_id, '{UNKNOWN}')",
    "study": "study_id",
    "site": f"coalesce(site_id, '{UNKNOWN}')",
}
# A lead without any step for longer than this before the latest day with data is
# lost, not open (an abandoned pre-screener, a site that never called back): steps
# follow each other within days to weeks.
STALE_DAYS = 60
# A pre-screener takes minutes: one started and not completed within two weeks was
# abandoned, whatever its age.
PRESCREEN_STALE_DAYS = 14
# status of a cohort lead for time to enrolment (``lead_status``)
RANDOMIZED, OPEN, EXITED, STALE = "randomized", "open", "exited", "stale"
FOLLOWED = (RANDOMIZED, OPEN)  # the leads that enrol or still can
# speed: time to enrolment (``enrolment_durations``); yield: share of all leads
# randomized by day d (``randomized_share_durations``)
VIEWS = ("speed", "yield")
RISK_STEP_DAYS = 30
# "too young to judge": typical time = this quantile of lead -> randomized days
MATURITY_QUANTILE = 0.9

FUNNEL_COLUMNS = ["stage", "label", "reached", "conversion_pct", "step_conversion_pct"]
DROPOFF_COLUMNS = ["exit", "left_after", "reason", "persons", "pct_of_exit", "pct_of_leads"]
GAP_COLUMNS = ["from_stage", "to_stage", "persons", "median_days", "p25_days", "p75_days"]
# days at which the yield view reads the curve off
SUMMARY_DAYS = (30, 60, 90)
SUMMARY_COLUMNS = {
    "speed": ["group", "group_name", "km_leads", "randomized_so_far", "open_leads", EXITED, STALE,
              "median_days_to_randomization", "median_ci_low", "median_ci_high",
              "median_days_randomized_only"],
    "yield": ["group", "group_name", "leads", "randomized_so_far", "censored"]
             + [f"pct_randomized_{d}d" for d in SUMMARY_DAYS],
}


# ---------------------------------------------------------------- helpers

def last_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest day with a funnel event: open leads are followed up to it."""
    return con.execute("SELECT CAST(max(ts) AS DATE) FROM funnel_event").fetchone()[0]


def _cohort(f: Filters) -> tuple[str, list]:
    """WHERE of the cohort: leads created in the period, all dimension filters."""
    return f.where(JOURNEY_COLUMNS, date_column="lead_ts")


def _union_over_cohort(f: Filters, columns: list[str], parts: list[str]) -> tuple[str, list]:
    """One query, the UNION ALL of ``parts``, each a SELECT whose rows come from
    ``{rows}``, followed by a condition of its own: SQL and parameters.

    The journey is stored by study and site, so a date range alone reads every row group
    of it, once per part: its cohort's ``columns`` are then read once into a
    materialized CTE, which the parts read. A study or site filter reads only its own row
    groups, and reading them again is cheaper than materializing them."""
    where, params = _cohort(f)
    if (f.start or f.end) and not (f.study or f.site):
        prefix = f"WITH cohort AS MATERIALIZED (SELECT {', '.join(columns)} FROM journey WHERE {where}) "
        return prefix + " UNION ALL ".join(p.replace("{rows}", "cohort WHERE") for p in parts), params
    union = " UNION ALL ".join(p.replace("{rows}", f"journey WHERE {where} AND") for p in parts)
    return union, params * len(parts)


def reached_sql() -> dict[str, str]:
    """Per stage, the condition "reached it or anything that implies it"."""
    exits_from = {src: col for _, (_, col, src) in EXITS.items()}
    implied: dict[str, list[str]] = {}
    later: list[str] = []
    for name, _, col in reversed(STAGES):
        own = [col] + ([exits_from[name]] if name in exits_from else [])
        later = own + later
        implied[name] = list(later)
    return {
        name: "TRUE" if name == "lead" else f"coalesce({', '.join(cols)}) IS NOT NULL"
        for name, cols in implied.items()
    }


def _pct(part: float, whole: float) -> float | None:
    return None if not whole else round(100.0 * part / whole, 1)


# ---------------------------------------------------------------- cohort counts

def _cohort_counts(con: duckdb.DuckDBPyConnection, f: Filters, parts: tuple[str, ...],
                   end: date | None = None) -> dict:
    """Counts over the cohort's leads, in one pass, for each of ``parts``:

    - ``reached``: per stage of ``STAGES``, the leads that reached it (``reached_sql``);
    - ``stalled``: per stage but the last, the leads that reached it, not the next one,
      and have no exit from it, without and with the consent to be contacted withdrawn
      (in pairs, stage by stage);
    - ``maturity``: ``typical`` (the ``MATURITY_QUANTILE`` of whole days from lead to
      randomization over every randomized person of the filter, all dates), ``leads``,
      and ``young``: leads fewer than ``typical`` days before ``end`` (see
      ``cohort_maturity``).

    "Reached" holds for every earlier stage of a stage reached, so each lead is
    classified once: its furthest stage, whether it has an exit from that stage, whether
    it withdrew the consent, whether it is young. DuckDB counts the leads per class and
    the counts above are sums of those."""
    return _cohort_pass(con, f, parts, end)[0]


def _cohort_pass(con: duckdb.DuckDBPyConnection, f: Filters, parts: tuple[str, ...],
                 end: date | None, status_group: str | None = None) -> tuple[dict, "_Leads"]:
    """``_cohort_counts`` of ``parts`` and, given ``status_group`` (one of
    ``KM_GROUPS``), the rows of ``_status_rows`` grouped by it, from one read of the
    cohort: the leads per class and per (group, status, days) are two groupings of the
    same rows (GROUPING SETS). At large, a study's: 41 -> 17 ms; six weeks': 140 -> 110 ms."""
    where, params = _cohort(f)
    classes, before, prefix = _lead_classes_sql(), [], ""
    typical, young, young_params = "(SELECT NULL AS days)", "FALSE", []
    if "maturity" in parts:
        hist_where, hist_params = f.where(JOURNEY_COLUMNS)
        prefix = f"""WITH typical AS (
            SELECT quantile_disc(date_diff('day', CAST(lead_ts AS DATE), CAST(randomized_ts AS DATE)),
                                 {MATURITY_QUANTILE}) AS days
            FROM journey WHERE randomized_ts IS NOT NULL AND {hist_where}) """
        typical, before = "typical", hist_params
        young = ("date_diff('day', CAST(lead_ts AS DATE), CAST(? AS DATE)) "
                 "< coalesce((SELECT days FROM typical), 0)")
        young_params = [end]
    status, status_params, sets = "", [], "(key)"
    if status_group is not None:
        columns, status_params = _status_columns_sql(status_group, end)
        status, sets = f", {columns}", '(key), ("group", status, days)'
    carried = ('"group", status, days' if status_group is not None
               else 'NULL AS "group", NULL AS status, NULL AS days')
    # class key: furthest stage x 8 + own exit x 4 + withdrawn x 2 + young; the typical
    # days come on every row, and alone when the cohort is empty
    rows = con.execute(
        f"""{prefix}SELECT t.days AS typical, r.by_status, r.key, r."group", r.status, r.days, r.n
            FROM {typical} t LEFT JOIN (
                SELECT grouping(key) AS by_status, key, {carried}, count(*) AS n
                FROM (SELECT level * 8 + CAST({classes['own_exit']} AS INTEGER) * 4
                             + CAST(withdrawn AS INTEGER) * 2 + CAST(young AS INTEGER) AS key{
                             ', "group", status, days' if status_group is not None else ''}
                      FROM (SELECT {classes['level']} AS level, consent_withdrawn_ts IS NOT NULL AS withdrawn,
                                   {young} AS young, {classes['exits']}{status}
                            FROM journey WHERE {where}))
                GROUP BY GROUPING SETS ({sets})) r ON TRUE
            ORDER BY ALL""",
        [*before, *young_params, *status_params, *params],
    ).df()  # as arrays: a portfolio's 2,000 sites give 1.8 million status rows
    typical_days = None if rows.empty or pd.isna(rows["typical"].iloc[0]) else int(rows["typical"].iloc[0])
    classes_rows = rows[rows["by_status"] == 0]
    per_class = [(key // 8, bool(key & 4), bool(key & 2), bool(key & 1), n) for key, n in
                 zip(classes_rows["key"].astype("int64").tolist(), classes_rows["n"].astype("int64").tolist())]
    status_rows = rows[rows["by_status"] == 1]
    leads = _Leads.from_arrays(status_rows["group"].to_numpy(dtype=object),
                               status_rows["status"].to_numpy(dtype=object),
                               status_rows["days"].to_numpy(dtype="int64"), status_rows["n"].to_numpy(dtype="int64"))
    out: dict = {}
    if "reached" in parts:
        out["reached"] = [sum(n for level, *_, n in per_class if level >= k) for k in range(len(STAGES))]
    if "stalled" in parts:
        out["stalled"] = [sum(n for level, exited, withdrawn, _, n in per_class
                              if level == k and not exited and withdrawn == gone)
                          for k in range(len(STAGES) - 1) for gone in (False, True)]
    if "maturity" in parts:
        out["typical"] = typical_days
        out["leads"] = sum(n for *_, n in per_class)
        out["young"] = sum(n for *_, young_lead, n in per_class if young_lead)
    return out, leads


def _lead_classes_sql() -> dict[str, str]:
    """SQL of a lead's class over a journey row: ``level``, the index in ``STAGES`` of
    the furthest stage it reached (``reached_sql``); ``exits``, the exit columns to
    carry; and ``own_exit`` (over ``level`` and those columns), whether it has an exit
    from that stage."""
    reached = reached_sql()
    names = [name for name, _, _ in STAGES]
    level = " ".join(f"WHEN {reached[name]} THEN {i}" for i, name in reversed(list(enumerate(names))) if i)
    own = {i: [col for _, col, src in EXITS.values() if src == name] for i, name in enumerate(names)}
    own_exit = " ".join(f"WHEN {i} THEN coalesce({', '.join(cols)}) IS NOT NULL"
                        for i, cols in own.items() if cols)
    return {"level": f"CASE {level} ELSE 0 END",
            "exits": ", ".join(col for _, col, _ in EXITS.values()),
            "own_exit": f"CASE level {own_exit} ELSE FALSE END"}


# ---------------------------------------------------------------- stage conversion

def stage_conversion(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Of the cohort's leads, how many ever reached each stage.

    ``reached``: cohort leads that reached the stage; ``conversion_pct``: reached /
    cohort leads x 100; ``step_conversion_pct``: reached / reached at the stage
    before x 100 (None for the lead row or when the stage before has nobody).
    """
    return _stage_frame(_cohort_counts(con, f, ("reached",))["reached"])


def _stage_frame(persons: list[int]) -> pd.DataFrame:
    """The stage conversion table of the leads reaching each stage."""
    leads = persons[0]
    return pd.DataFrame({
        "stage": [name for name, _, _ in STAGES],
        "label": [label for _, label, _ in STAGES],
        "reached": persons,
        "conversion_pct": [_pct(p, leads) for p in persons],
        "step_conversion_pct": [None] + [_pct(p, prev) for p, prev in zip(persons[1:], persons[:-1])],
    })


# ---------------------------------------------------------------- drop-off reasons

def dropoff_reasons(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Where the cohort's leads left the funnel, and why.

    One row per exit and coded reason: ``persons`` who left that way (each person
    once per exit, with the reason of the first such event; a missing code shows as
    "not recorded"). A withdrawal after randomization is not a recruitment drop-off
    and is left out, as is an exit recorded at or after the person withdrew the consent
    to be contacted for research (the journey ends there). After the exits of each
    stage come the persons who reached the stage, went no further and have no exit
    recorded: ``CONSENT_WITHDRAWN``, those who withdrew their consent to be contacted,
    and ``STALLED``, leads still in progress or silently lost (an abandoned
    pre-screener, a site that never called back), which the data cannot tell apart.

    ``pct_of_exit``: share of that exit's (or the stalled row's) persons with this
    reason; ``pct_of_leads``: persons / cohort leads x 100.
    """
    return _dropoff(_exits(con, f), _cohort_counts(con, f, ("reached", "stalled")))


def _exits(con: duckdb.DuckDBPyConnection, f: Filters) -> list[tuple]:
    """(exit stage, reason, persons) of the cohort's leads that left the funnel: each
    exit the journey records, with its reason (``derive.EXIT_REASON_COLUMNS``); a
    withdrawal counts only when it came before any randomization."""
    parts, columns = [], ["randomized_ts"]
    for stage, (_, ts_col, _) in EXITS.items():
        after_randomized = (f" AND (randomized_ts IS NULL OR {ts_col} < randomized_ts)"
                            if stage == "withdrawn" else "")
        parts.append(f"SELECT '{stage}', coalesce({_EXIT_REASONS[stage]}, 'not recorded') AS reason, count(*) "
                     f"FROM {{rows}} {ts_col} IS NOT NULL{after_randomized} GROUP BY reason")
        columns += [ts_col, _EXIT_REASONS[stage]]
    return con.execute(*_union_over_cohort(f, columns, parts)).fetchall()


STALLED = "Still open or stalled"
CONSENT_WITHDRAWN = "Withdrew consent to be contacted"


def _dropoff(exits: list[tuple], counts: dict) -> pd.DataFrame:
    """The drop-off table of the exits and the cohort's ``reached`` and ``stalled``
    counts: exits, then per stage the stalled and the withdrawn (rows without persons
    left out), ordered by stage, stalled last, exit, most persons first, reason."""
    rows = [(EXITS[stage][2], EXITS[stage][0], reason, persons) for stage, reason, persons in exits]
    names = [name for name, _, _ in STAGES[:-1]]
    stalled = counts["stalled"]
    rows += [(name, STALLED, "no outcome recorded", n) for name, n in zip(names, stalled[0::2])]
    rows += [(name, CONSENT_WITHDRAWN, "consent to be contacted withdrawn", n)
             for name, n in zip(names, stalled[1::2])]
    rows = [row for row in rows if row[3] > 0]
    if not rows:
        return pd.DataFrame(columns=DROPOFF_COLUMNS)
    leads = counts["reached"][0]
    order = {name: i for i, (name, _, _) in enumerate(STAGES)}
    per_exit: dict[tuple[str, str], int] = {}
    for left_after, exit_, _, persons in rows:
        per_exit[left_after, exit_] = per_exit.get((left_after, exit_), 0) + persons
    rows.sort(key=lambda r: (order[r[0]], r[1] == STALLED, r[1], -r[3], r[2]))
    persons = np.array([r[3] for r in rows], dtype="int64")
    return pd.DataFrame({
        "exit": [r[1] for r in rows],
        "left_after": [STAGE_LABELS[r[0]] for r in rows],
        "reason": [r[2] for r in rows],
        "persons": persons,
        "pct_of_exit": (100.0 * persons / np.array([per_exit[r[0], r[1]] for r in rows])).round(1),
        "pct_of_leads": [_pct(p, leads) for p in persons.tolist()],
    })


# ---------------------------------------------------------------- time between stages

def stage_gaps(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Days between consecutive stages for the cohort's leads.

    For each step (lead -> pre-screen started, ..., screened -> randomized): the
    ``persons`` with both stages recorded, and the median, 25th and 75th percentile
    (linear interpolation, DuckDB ``quantile_cont``) of the days between them, to
    one decimal. These are times of the persons who made the step; persons still
    waiting are not in them (time-to-enrolment below handles those with
    Kaplan-Meier).
    """
    parts = []
    for (a, _, col_a), (b, _, col_b) in zip(STAGES[:-1], STAGES[1:]):
        gap = f"epoch({col_b} - {col_a}) / 86400.0"
        # the three quantiles from one sort of the gaps
        parts.append(
            f"SELECT '{a}' AS from_stage, '{b}' AS to_stage, count(*) AS persons, "
            f"quantile_cont({gap}, [0.5, 0.25, 0.75]) AS days "
            f"FROM {{rows}} {col_a} IS NOT NULL AND {col_b} IS NOT NULL"
        )
    rows = con.execute(*_union_over_cohort(f, [col for _, _, col in STAGES], parts)).fetchall()
    steps, nexts, persons, quantiles = zip(*rows)
    days = zip(*(q or (None, None, None) for q in quantiles))
    return pd.DataFrame({
        "from_stage": [STAGE_LABELS[s] for s in steps],
        "to_stage": [STAGE_LABELS[s] for s in nexts],
        "persons": np.array(persons, dtype="int64"),
        **{col: np.array([np.nan if v is None else v for v in values], dtype=float).round(1)
           for col, values in zip(("median_days", "p25_days", "p75_days"), days)},
    })


# ---------------------------------------------------------------- time to enrolment

def lead_status(con: duckdb.DuckDBPyConnection, f: Filters, by: str = "channel") -> pd.DataFrame:
    """Every cohort lead, classified for time to enrolment and grouped.

    One row per (group, status, days) with the number of ``persons``. ``status``:
    - ``randomized``: an event, ``days`` = whole calendar days from the lead's date to
      the randomization date (a withdrawal after it changes nothing);
    - ``exited``: not randomized, an exit recorded (pre-screen ineligible, not
      reachable, declined, screen fail, withdrawn; without a randomization every
      withdrawal came before it), or the consent to be contacted for research
      withdrawn (``journey.consent_withdrawn_ts``: the lead stops being counted from
      then on, so it is no longer open);
    - ``stale``: not randomized, no exit, and its latest stage timestamp more than
      ``STALE_DAYS`` days before the latest day with data (``last_day``), or more than
      ``PRESCREEN_STALE_DAYS`` days when the pre-screener was never passed (abandoned);
    - ``open``: the rest, still in process.
    For all but ``randomized``, ``days`` = lead's date to the latest day with data.
    """
    if by not in KM_GROUPS:
        raise ValueError(f"cannot group time-to-enrolment by {by!r}")
    end = last_day(con)
    if end is None:
        return pd.DataFrame(columns=["group", "status", "days", "persons"])
    groups, status, days, persons = _status_rows(con, f, KM_GROUPS[by], end)
    text = "str" if groups else object  # as DuckDB hands over text columns, and no rows
    return pd.DataFrame({"group": pd.Series(groups, dtype=text), "status": pd.Series(status, dtype=text),
                         "days": np.array(days, dtype="int64"), "persons": np.array(persons, dtype="int64")})


def _status_rows(con: duckdb.DuckDBPyConnection, f: Filters, group_sql: str,
                 end: date | None) -> tuple[tuple, tuple, tuple, tuple]:
    """The rows of ``lead_status`` grouped by ``group_sql`` (one of ``KM_GROUPS``, or a
    constant for all leads together) as columns: group, status, days, persons; none
    without a latest day with data."""
    if end is None:
        return (), (), (), ()
    where, params = _cohort(f)
    columns, column_params = _status_columns_sql(group_sql, end)
    rows = con.execute(
        f"""SELECT {columns}, count(*) AS persons FROM journey WHERE {where}
            GROUP BY ALL ORDER BY ALL""",
        [*column_params, *params],
    ).fetchall()
    return tuple(zip(*rows)) if rows else ((), (), (), ())


def _status_columns_sql(group_sql: str, end: date) -> tuple[str, list]:
    """The columns "group", status and days of a journey row for ``lead_status``, and
    their parameters."""
    return f"""{group_sql} AS "group", {_status_sql()} AS status,
               greatest(0, date_diff('day', CAST(lead_ts AS DATE),
                                     CAST(coalesce(randomized_ts, CAST(? AS TIMESTAMP)) AS DATE))) AS days""", \
        [end, end, end]


def _status_sql() -> str:
    """The CASE of ``lead_status`` (two ``?``: the latest day with data)."""
    exits = ", ".join(col for _, col, _ in EXITS.values())
    steps = ", ".join(col for _, _, col in STAGES)  # greatest() skips the stages not reached
    return f"""CASE
        WHEN randomized_ts IS NOT NULL THEN '{RANDOMIZED}'
        WHEN coalesce({exits}, consent_withdrawn_ts) IS NOT NULL THEN '{EXITED}'
        WHEN eligible_ts IS NULL
             AND date_diff('day', CAST(greatest({steps}) AS DATE), CAST(? AS DATE)) > {PRESCREEN_STALE_DAYS}
             THEN '{STALE}'
        WHEN date_diff('day', CAST(greatest({steps}) AS DATE), CAST(? AS DATE)) > {STALE_DAYS}
             THEN '{STALE}'
        ELSE '{OPEN}' END"""


def enrolment_durations(con: duckdb.DuckDBPyConnection, f: Filters, by: str = "channel") -> pd.DataFrame:
    """Time to enrolment, the one definition used by every page.

    Measured over the cohort's leads that enrol or still can: randomized leads are
    events at their days from lead to randomization; open leads (no exit recorded, a
    step within the last ``STALE_DAYS`` days before the latest day with data) are
    censored at the latest day with data (right censoring for Kaplan-Meier,
    ``cockpit.analytics.survival``). Leads that left the funnel (an exit recorded, or
    stale: no step for ``STALE_DAYS`` days) are left out: they will not be randomized,
    so they are no delay; ``enrolment_left_out`` counts them, and the stage conversion
    and drop-off tables show where they went.

    One row per (group, days, randomized) with the number of ``persons``; days are
    whole calendar days (see ``lead_status``).
    """
    rows = lead_status(con, f, by)
    return _durations(rows[rows["status"].isin(FOLLOWED)])


def randomized_share_durations(
    con: duckdb.DuckDBPyConnection, f: Filters, by: str = "channel",
) -> pd.DataFrame:
    """Yield over time, a different question from time to enrolment: of all the
    cohort's leads, the share randomized by day d since the lead.

    Every lead stays at risk up to the latest day with data, whether open, exited or
    stale (it is known not to have been randomized up to then), so 1 - Kaplan-Meier
    is the cumulative share of all leads randomized by day d, with leads of
    different ages followed for different times (an exit is a competing event whose
    time is infinite; Kalbfleisch & Prentice 2002, ch. 8). Its height is a yield, not
    a speed: a channel with few but fast randomizations stays low.

    Same rows as ``enrolment_durations``.
    """
    return _durations(lead_status(con, f, by))


def enrolment_left_out(
    con: duckdb.DuckDBPyConnection, f: Filters, by: str = "channel",
) -> pd.DataFrame:
    """Per group, the cohort leads not part of time to enrolment: ``exited`` (an exit
    recorded) and ``stale`` (no step for ``STALE_DAYS`` days); see ``lead_status``."""
    return _left_out(lead_status(con, f, by))


def _durations(rows: pd.DataFrame) -> pd.DataFrame:
    """(group, days, randomized, persons) of status rows: Kaplan-Meier input."""
    out = rows.assign(randomized=rows["status"] == RANDOMIZED)
    out = out.groupby(["group", "days", "randomized"], as_index=False, sort=True)["persons"].sum()
    return out[["group", "days", "randomized", "persons"]].astype(
        {"days": "int64", "randomized": bool, "persons": "int64"})


def _left_out(rows: pd.DataFrame) -> pd.DataFrame:
    """(group, exited, stale) of status rows, every group of the rows."""
    counts = rows.pivot_table(index="group", columns="status", values="persons", aggfunc="sum",
                              fill_value=0)
    out = pd.DataFrame({"group": counts.index.astype(str)})
    for status in (EXITED, STALE):
        out[status] = counts[status].to_numpy() if status in counts else 0
    return out.astype({EXITED: "int64", STALE: "int64"})


@dataclass(frozen=True)
class EnrolmentCurves:
    """Kaplan-Meier curves per group for one of ``VIEWS``.

    ``summary``: per group (id and readable name), plus an "All leads" row; the
    columns of ``SUMMARY_COLUMNS[view]``:
    - speed (``enrolment_durations``): leads followed (``km_leads``), randomized so
      far, still open (censored), left out because ``exited`` or ``stale``; the KM
      median days to randomization with its 95% Brookmeyer-Crowley interval (None =
      not reached: fewer than half of the leads followed randomized yet); and the
      plain median days of the leads randomized so far (not KM: young cohorts look
      faster), which tells the speed while the median is not reached;
    - yield (``randomized_share_durations``): leads, randomized so far, censored,
      and the share of all leads randomized by 30, 60 and 90 days (1 - KM, None
      beyond the longest follow-up).
    ``curves``: per group the step points (days, share randomized = 1 - S, and its
    95% log-log band); ``at_risk``: per group the number at risk at 0, 30, 60, ...
    days (the table printed under the chart) up to ``horizon_days``: one step past the
    last randomization (the curves are flat after it), at most the longest follow-up."""

    view: str
    summary: pd.DataFrame
    curves: pd.DataFrame
    at_risk: pd.DataFrame
    risk_days: list[int]
    horizon_days: int
    latest_day: date | None = None  # the leads are followed up to it (``last_day``)


ALL_LEADS = "All leads"
CURVE_COLUMNS = ["group", "group_name", "days", "pct_randomized", "pct_low", "pct_high"]


def enrolment_curves(
    con: duckdb.DuckDBPyConnection, f: Filters, by: str = "channel", view: str = "speed",
) -> EnrolmentCurves:
    """Kaplan-Meier curves of days from lead to randomization per group: time to
    enrolment (``view="speed"``, ``enrolment_durations``) or the share of all leads
    randomized by day d (``view="yield"``, ``randomized_share_durations``); see
    ``cockpit.analytics.survival`` for the estimator, band and median interval."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}")
    if by not in KM_GROUPS:
        raise ValueError(f"cannot group time-to-enrolment by {by!r}")
    end = last_day(con)
    leads = _Leads.from_rows(_status_rows(con, f, KM_GROUPS[by], end))
    return _curves(leads, _group_names(con, by), view, end)


def _curves(leads: "_Leads", names: dict[str, str], view: str, end: date | None) -> EnrolmentCurves:
    """``enrolment_curves`` of the cohort's status rows per group."""
    data = leads.followed() if view == "speed" else leads
    horizon = _horizon_of(data.days, data.randomized)
    risk_days = list(range(0, horizon + 1, RISK_STEP_DAYS))
    summaries, curves, risks = [], [], []
    # every group with cohort leads, also one whose leads all left (no curve then)
    groups = sorted(set(leads.group))
    followed, everyone = data.by_group(), leads.by_group()
    nobody = data._where(np.zeros(data.group.size, dtype=bool))
    for group in groups + ([ALL_LEADS] if groups else []):
        rows = data if group == ALL_LEADS else followed.get(group, nobody)
        left = leads if group == ALL_LEADS else everyone[group]
        name = names.get(group, group)
        km = kaplan_meier(rows.days, rows.randomized, weights=rows.persons)
        row = _speed_row(km, rows, left) if view == "speed" else _yield_row(km)
        summaries.append({"group": group, "group_name": name} | row)
        if group != ALL_LEADS and km.n:
            curves.append((group, name, _curve_points(km)))
        risks.append({"group": group, "group_name": name,
                      **{f"day_{d}": int(n) for d, n in zip(risk_days, km.at_risk_at(risk_days))}})
    return EnrolmentCurves(
        view=view,
        summary=pd.DataFrame(summaries, columns=SUMMARY_COLUMNS[view]),
        curves=_curve_frame(curves),
        at_risk=pd.DataFrame(risks, columns=["group", "group_name"] + [f"day_{d}" for d in risk_days]),
        risk_days=risk_days,
        horizon_days=horizon,
        latest_day=end,
    )


@dataclass(frozen=True)
class _Leads:
    """Status rows of cohort leads (``lead_status``) as arrays: group, status, days,
    randomized (status is randomized) and persons, the Kaplan-Meier input."""

    group: np.ndarray
    status: np.ndarray
    days: np.ndarray
    randomized: np.ndarray
    persons: np.ndarray

    @classmethod
    def from_rows(cls, rows: tuple[tuple, tuple, tuple, tuple]) -> "_Leads":
        groups, status, days, persons = rows
        return cls.from_arrays(np.array(groups, dtype=object), np.array(status, dtype=object),
                               np.array(days, dtype="int64"), np.array(persons, dtype="int64"))

    @classmethod
    def from_arrays(cls, group: np.ndarray, status: np.ndarray, days: np.ndarray,
                    persons: np.ndarray) -> "_Leads":
        return cls(group, status, days, status == RANDOMIZED, persons)

    def _where(self, keep: np.ndarray) -> "_Leads":
        return _Leads(self.group[keep], self.status[keep], self.days[keep], self.randomized[keep],
                      self.persons[keep])

    def by_group(self) -> dict[str, "_Leads"]:
        """The rows of each group, split in one pass (selecting each group's rows from
        all of them took a minute for 2,000 sites)."""
        index = pd.Series(np.arange(self.group.size)).groupby(self.group, sort=False, dropna=False).indices
        return {group: self._where(rows) for group, rows in index.items()}

    def followed(self) -> "_Leads":
        """The leads that enrol or still can (time to enrolment)."""
        return self._where(np.isin(self.status, FOLLOWED))

    def left(self, status: str) -> int:
        """Persons with ``status`` (exited or stale)."""
        return int(self.persons[self.status == status].sum())


def _horizon_of(days: np.ndarray, randomized: np.ndarray) -> int:
    """One risk-table step past the last randomization, at most the longest follow-up
    (at least one step)."""
    if not days.size:
        return RISK_STEP_DAYS
    longest = int(days.max())
    events = days[randomized]
    end = min(longest, int(events.max()) + RISK_STEP_DAYS) if events.size else longest
    return max(end, RISK_STEP_DAYS)


def _group_names(con: duckdb.DuckDBPyConnection, by: str) -> dict[str, str]:
    """Readable names of the groups (channel, segment, study, site names)."""
    sql = {
        "channel": "SELECT channel_id, name FROM channel",
        "segment": "SELECT segment_id, name FROM segment",
        "study": "SELECT study_id, name FROM study",
        "site": "SELECT site_id, name FROM site",
    }[by]
    names = dict(con.execute(sql).fetchall())
    names.update({"unattributed": "Unattributed", UNKNOWN: "Unknown", ALL_LEADS: ALL_LEADS})
    return names


def enrolment_summary(con: duckdb.DuckDBPyConnection, f: Filters, view: str = "speed") -> dict:
    """The "All leads" row of ``enrolment_curves`` for the view (one Kaplan-Meier over
    the cohort); counts 0 and the rest None without any lead."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}")
    return _summary(_Leads.from_rows(_status_rows(con, f, f"'{ALL_LEADS}'", last_day(con))), view)


def _summary(leads: _Leads, view: str) -> dict:
    """The "All leads" row of a view from the status rows of all cohort leads."""
    if not leads.group.size:
        counts = {"km_leads", "randomized_so_far", "open_leads", EXITED, STALE, "leads", "censored"}
        empty = {col: (0 if col in counts else None) for col in SUMMARY_COLUMNS[view]}
        return empty | {"group": ALL_LEADS, "group_name": ALL_LEADS}
    rows = leads.followed() if view == "speed" else leads
    km = kaplan_meier(rows.days, rows.randomized, weights=rows.persons)
    row = {"group": ALL_LEADS, "group_name": ALL_LEADS}
    row |= _speed_row(km, rows, leads) if view == "speed" else _yield_row(km)
    # plain numbers, as a row of ``enrolment_curves``' summary reads
    return {col: _plain(row[col]) for col in SUMMARY_COLUMNS[view]}


def _plain(value):
    """A Python int, float or text; None for a missing number."""
    if value is None or (isinstance(value, (float, np.floating)) and value != value):
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _speed_row(km, rows: _Leads, left: _Leads) -> dict:
    """Summary of time to enrolment: counts, KM median and interval, median of the
    randomized only."""
    low, high = km.median_ci()
    days = np.repeat(rows.days[rows.randomized], rows.persons[rows.randomized])
    return {"km_leads": km.n, "randomized_so_far": km.n_events, "open_leads": km.n - km.n_events,
            EXITED: left.left(EXITED), STALE: left.left(STALE),
            "median_days_to_randomization": km.median(), "median_ci_low": low, "median_ci_high": high,
            "median_days_randomized_only": float(np.median(days)) if days.size else None}


def _yield_row(km) -> dict:
    """Summary of the share of all leads randomized: counts, 1 - KM at 30, 60, 90 days
    (None past the longest follow-up: the curve says nothing there)."""
    row = {"leads": km.n, "randomized_so_far": km.n_events, "censored": km.n - km.n_events}
    longest = float(km.durations.max()) if km.durations.size else 0.0
    for day in SUMMARY_DAYS:
        share = 100.0 * (1.0 - float(km.survival_at([day])[0]))
        row[f"pct_randomized_{day}d"] = round(share, 1) if day <= longest else None
    return row


def _curve_points(km) -> dict[str, np.ndarray]:
    """Step points of 1 - S(t): from (0 days, 0%) through each event time, flat on to
    the group's longest follow-up."""
    days = np.concatenate([[0.0], km.time])
    surv = np.concatenate([[1.0], km.survival])
    low = np.concatenate([[1.0], km.upper])  # share randomized: 1 - upper band is its lower limit
    high = np.concatenate([[1.0], km.lower])
    longest = float(km.durations.max()) if km.durations.size else 0.0
    if longest > days[-1]:
        days, surv = np.append(days, longest), np.append(surv, surv[-1])
        low, high = np.append(low, low[-1]), np.append(high, high[-1])
    return {
        "days": days,
        "pct_randomized": (100.0 * (1.0 - surv)).round(2),
        "pct_low": (100.0 * (1.0 - low)).round(2),
        "pct_high": (100.0 * (1.0 - high)).round(2),
    }


def _curve_frame(curves: list[tuple[str, str, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """The ``CURVE_COLUMNS`` frame of (group, name, step points) per group."""
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.DataFrame({
        "group": [g for g, _, points in curves for _ in range(len(points["days"]))],
        "group_name": [n for _, n, points in curves for _ in range(len(points["days"]))],
        **{col: np.concatenate([points[col] for _, _, points in curves])
           for col in ("days", "pct_randomized", "pct_low", "pct_high")},
    })


# ---------------------------------------------------------------- cohort maturity

def cohort_maturity(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Is the cohort old enough for its conversion to randomized to be judged?

    Typical time: the 90th percentile (``quantile_disc``, a day count that occurred)
    of whole days from lead to randomization over every randomized person matching
    the filter's study, phase, site, segment and channel (all dates: history says how
    long randomization takes). A cohort lead is "young" when fewer days than that
    have passed between its lead day and the latest day with data. The cohort is
    too young to judge when more than half of its leads are young: most of its
    randomizations cannot have happened yet.

    Returns leads, young, pct_young, typical_days, last_day, too_young (None when
    nobody was ever randomized under the filter, so there is no typical time) and a
    sentence saying so with the numbers.
    """
    end = last_day(con)
    return _maturity(_cohort_counts(con, f, ("maturity",), end), end)


def _maturity(counts: dict, end: date | None) -> dict:
    """``cohort_maturity`` of the cohort's ``maturity`` counts."""
    typical, leads, young = counts["typical"], counts["leads"], counts["young"]
    out = {"leads": int(leads), "young": int(young), "pct_young": _pct(young, leads),
           "typical_days": None if typical is None else int(typical), "last_day": end,
           "too_young": None, "message": ""}
    if typical is None:
        out["message"] = ("Nobody matching this filter has been randomized yet, so there is no "
                          "typical lead-to-randomization time to judge this cohort against.")
        return out
    out["too_young"] = bool(leads) and young * 2 > leads
    if out["too_young"]:
        out["message"] = (
            f"Cohort too young to judge: {young:,} of its {leads:,} leads ({out['pct_young']}%) "
            f"are younger than {typical} days, the time within which 90% of randomizations "
            f"happen (data up to {end}). Their conversion to randomized is not final yet."
        )
    return out


# ---------------------------------------------------------------- the page's numbers

@dataclass(frozen=True)
class Snapshot:
    """What the Funnel page shows for one filter and the curves chosen: ``stages`` as
    ``stage_conversion``, ``speed`` and ``share`` as ``enrolment_summary`` of the two
    views, ``maturity`` as ``cohort_maturity``, ``gaps`` as ``stage_gaps``, ``dropoff``
    as ``dropoff_reasons`` and ``curves`` as ``enrolment_curves``."""

    stages: pd.DataFrame
    speed: dict
    share: dict
    maturity: dict
    gaps: pd.DataFrame
    dropoff: pd.DataFrame
    curves: EnrolmentCurves


def snapshot(con: duckdb.DuckDBPyConnection, f: Filters, by: str = "channel", view: str = "speed") -> Snapshot:
    """The numbers of the Funnel page, in five queries: the latest day with data; the
    cohort's counts (stages reached, stalled, maturity) with its leads by group, status
    and days (the curves and both summaries of time to enrolment: the "All leads" row
    is the same Kaplan-Meier whatever the grouping), from one read of the cohort
    (``_cohort_pass``); the names of the groups; the days between stages; the exits."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}")
    if by not in KM_GROUPS:
        raise ValueError(f"cannot group time-to-enrolment by {by!r}")
    end = last_day(con)
    # without data there is nothing to follow the leads to: no status rows
    counts, leads = _cohort_pass(con, f, ("reached", "stalled", "maturity"), end,
                                 KM_GROUPS[by] if end is not None else None)
    return Snapshot(
        stages=_stage_frame(counts["reached"]),
        speed=_summary(leads, "speed"),
        share=_summary(leads, "yield"),
        maturity=_maturity(counts, end),
        gaps=stage_gaps(con, f),
        dropoff=_dropoff(_exits(con, f), counts),
        curves=_curves(leads, _group_names(con, by), view, end),
    )
