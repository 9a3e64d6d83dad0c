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


# ---------------------------------------------------------------- stage conversion

def stage_conversion(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Of the cohort's leads, how many ever reached each stage.

    ``reached``: cohort leads that reached the stage; ``conversion_pct``: reached /
    cohort leads x 100; ``step_conversion_pct``: reached / reached at the stage
    before x 100 (None for the lead row or when the stage before has nobody).
    """
    where, params = _cohort(f)
    reached = reached_sql()
    counts = ", ".join(f"count(*) FILTER (WHERE {reached[name]}) AS {name}" for name, _, _ in STAGES)
    row = con.execute(f"SELECT {counts} FROM journey WHERE {where}", params).fetchone()
    persons = [int(v) for v in row]
    leads = persons[0]
    out = pd.DataFrame({
        "stage": [name for name, _, _ in STAGES],
        "label": [label for _, label, _ in STAGES],
        "reached": persons,
    })
    out["conversion_pct"] = [_pct(p, leads) for p in persons]
    out["step_conversion_pct"] = [None] + [_pct(p, prev) for p, prev in zip(persons[1:], persons[:-1])]
    return out[FUNNEL_COLUMNS]


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
    where, params = _cohort(f)
    stages = ", ".join(f"'{s}'" for s in EXITS)
    sql = f"""
        WITH cohort AS (SELECT pid, study_id, randomized_ts, consent_withdrawn_ts
                        FROM journey WHERE {where}),
        exits AS (
            SELECT e.pid, e.study_id, e.stage, arg_min(e.reason, e.ts) AS reason, min(e.ts) AS ts
            FROM funnel_event e JOIN cohort c USING (pid, study_id)
            WHERE e.stage IN ({stages})
              AND (c.consent_withdrawn_ts IS NULL OR e.ts < c.consent_withdrawn_ts)
            GROUP BY ALL
        )
        SELECT x.stage, coalesce(x.reason, 'not recorded') AS reason, count(*) AS persons
        FROM exits x JOIN cohort c USING (pid, study_id)
        WHERE x.stage <> 'withdrawn' OR c.randomized_ts IS NULL OR x.ts < c.randomized_ts
        GROUP BY ALL
    """
    exits = con.execute(sql, params).df()
    exits["left_after"] = exits["stage"].map(lambda st: EXITS[st][2])
    exits["exit"] = exits["stage"].map(lambda st: EXITS[st][0])
    stalled = _stalled(con, f)
    rows = pd.concat([exits[["left_after", "exit", "reason", "persons"]], stalled], ignore_index=True)
    rows = rows[rows["persons"] > 0]
    if rows.empty:
        return pd.DataFrame(columns=DROPOFF_COLUMNS)
    leads = int(stage_conversion(con, f)["reached"].iloc[0])
    order = {name: i for i, (name, _, _) in enumerate(STAGES)}
    rows["_stage"] = rows["left_after"].map(order)
    rows["_stalled"] = rows["exit"] == STALLED
    per_exit = rows.groupby(["left_after", "exit"])["persons"].transform("sum")
    rows["pct_of_exit"] = (100.0 * rows["persons"] / per_exit).round(1)
    rows["pct_of_leads"] = [_pct(p, leads) for p in rows["persons"]]
    rows["left_after"] = rows["left_after"].map(STAGE_LABELS)
    rows["persons"] = rows["persons"].astype("int64")
    rows = rows.sort_values(["_stage", "_stalled", "exit", "persons", "reason"],
                            ascending=[True, True, True, False, True])
    return rows[DROPOFF_COLUMNS].reset_index(drop=True)


STALLED = "Still open or stalled"
CONSENT_WITHDRAWN = "Withdrew consent to be contacted"


def _stalled(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per stage: cohort leads that reached it, not the next one, and have no exit
    from it; split into those who withdrew their consent to be contacted (the journey
    ends there) and those still open or stalled."""
    where, params = _cohort(f)
    reached = reached_sql()
    parts = []
    for (name, _, _), (nxt, _, _) in zip(STAGES[:-1], STAGES[1:]):
        own_exits = [col for _, col, src in EXITS.values() if src == name]
        no_exit = f" AND coalesce({', '.join(own_exits)}) IS NULL" if own_exits else ""
        stopped = f"{reached[name]} AND NOT ({reached[nxt]}){no_exit}"
        parts.append(f"count(*) FILTER (WHERE {stopped} AND consent_withdrawn_ts IS NULL) AS {name}")
        parts.append(f"count(*) FILTER (WHERE {stopped} AND consent_withdrawn_ts IS NOT NULL) AS {name}_w")
    row = con.execute(f"SELECT {', '.join(parts)} FROM journey WHERE {where}", params).fetchone()
    names = [name for name, _, _ in STAGES[:-1]]
    return pd.DataFrame({
        "left_after": names * 2,
        "exit": [STALLED] * len(names) + [CONSENT_WITHDRAWN] * len(names),
        "reason": ["no outcome recorded"] * len(names) + ["consent to be contacted withdrawn"] * len(names),
        "persons": [int(v) for v in row[0::2]] + [int(v) for v in row[1::2]],
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
    where, params = _cohort(f)
    parts = []
    for (a, _, col_a), (b, _, col_b) in zip(STAGES[:-1], STAGES[1:]):
        gap = f"epoch({col_b} - {col_a}) / 86400.0"
        parts.append(
            f"SELECT '{a}' AS from_stage, '{b}' AS to_stage, count(*) AS persons, "
            f"quantile_cont({gap}, 0.5) AS median_days, quantile_cont({gap}, 0.25) AS p25_days, "
            f"quantile_cont({gap}, 0.75) AS p75_days "
            f"FROM journey WHERE {where} AND {col_a} IS NOT NULL AND {col_b} IS NOT NULL"
        )
    out = con.execute(" UNION ALL ".join(parts), params * len(parts)).df()
    out["persons"] = out["persons"].astype("int64")
    for col in ("median_days", "p25_days", "p75_days"):
        out[col] = out[col].astype(float).round(1)
    out["from_stage"] = out["from_stage"].map(STAGE_LABELS)
    out["to_stage"] = out["to_stage"].map(STAGE_LABELS)
    return out[GAP_COLUMNS]


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
    where, params = _cohort(f)
    sql = f"""
        SELECT {KM_GROUPS[by]} AS "group", {_status_sql()} AS status,
               greatest(0, date_diff('day', CAST(lead_ts AS DATE),
                                     CAST(coalesce(randomized_ts, CAST(? AS TIMESTAMP)) AS DATE))) AS days,
               count(*) AS persons
        FROM journey WHERE {where}
        GROUP BY ALL ORDER BY ALL
    """
    out = con.execute(sql, [end, end, end, *params]).df()
    out["days"] = out["days"].astype("int64")
    out["persons"] = out["persons"].astype("int64")
    return out


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
    durations = enrolment_durations if view == "speed" else randomized_share_durations
    data = durations(con, f, by)
    left_out = enrolment_left_out(con, f, by).set_index("group")  # also lists every group
    horizon = _horizon(data)
    risk_days = list(range(0, horizon + 1, RISK_STEP_DAYS))
    names = _group_names(con, by)
    summaries, curves, risks = [], [], []
    # every group with cohort leads, also one whose leads all left (no curve then)
    for group in sorted(left_out.index) + ([ALL_LEADS] if len(left_out) else []):
        rows = data if group == ALL_LEADS else data[data["group"] == group]
        left = left_out.sum() if group == ALL_LEADS else left_out.loc[group]
        name = names.get(group, group)
        km = kaplan_meier(rows["days"], rows["randomized"], weights=rows["persons"])
        row = _speed_row(km, rows, left) if view == "speed" else _yield_row(km)
        summaries.append({"group": group, "group_name": name} | row)
        if group != ALL_LEADS and km.n:
            curves.append(_curve_rows(km).assign(group=group, group_name=name))
        risks.append({"group": group, "group_name": name,
                      **{f"day_{d}": int(n) for d, n in zip(risk_days, km.at_risk_at(risk_days))}})
    return EnrolmentCurves(
        view=view,
        summary=pd.DataFrame(summaries, columns=SUMMARY_COLUMNS[view]),
        curves=(pd.concat(curves, ignore_index=True)[CURVE_COLUMNS] if curves
                else pd.DataFrame(columns=CURVE_COLUMNS)),
        at_risk=pd.DataFrame(risks, columns=["group", "group_name"] + [f"day_{d}" for d in risk_days]),
        risk_days=risk_days,
        horizon_days=horizon,
    )


def _horizon(data: pd.DataFrame) -> int:
    """One risk-table step past the last randomization, at most the longest follow-up
    (at least one step)."""
    if data.empty:
        return RISK_STEP_DAYS
    longest = int(data["days"].max())
    events = data.loc[data["randomized"].astype(bool), "days"]
    end = min(longest, int(events.max()) + RISK_STEP_DAYS) if len(events) else longest
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
    summary = enrolment_curves(con, f, by="study", view=view).summary
    row = summary[summary["group"] == ALL_LEADS]
    if row.empty:
        counts = {"km_leads", "randomized_so_far", "open_leads", EXITED, STALE, "leads", "censored"}
        empty = {col: (0 if col in counts else None) for col in SUMMARY_COLUMNS[view]}
        return empty | {"group": ALL_LEADS, "group_name": ALL_LEADS}
    return {k: (None if pd.isna(v) else v) for k, v in row.iloc[0].to_dict().items()}


def _speed_row(km, rows: pd.DataFrame, left: pd.Series) -> dict:
    """Summary of time to enrolment: counts, KM median and interval, median of the
    randomized only."""
    low, high = km.median_ci()
    done = rows[rows["randomized"].astype(bool)]
    days = np.repeat(done["days"].to_numpy(), done["persons"].to_numpy())
    return {"km_leads": km.n, "randomized_so_far": km.n_events, "open_leads": km.n - km.n_events,
            EXITED: int(left[EXITED]), STALE: int(left[STALE]),
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


def _curve_rows(km) -> pd.DataFrame:
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
    return pd.DataFrame({
        "days": days,
        "pct_randomized": (100.0 * (1.0 - surv)).round(2),
        "pct_low": (100.0 * (1.0 - low)).round(2),
        "pct_high": (100.0 * (1.0 - high)).round(2),
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
    hist_where, hist_params = f.where(JOURNEY_COLUMNS)
    typical = con.execute(
        f"""SELECT quantile_disc(date_diff('day', CAST(lead_ts AS DATE), CAST(randomized_ts AS DATE)),
                                 {MATURITY_QUANTILE})
            FROM journey WHERE randomized_ts IS NOT NULL AND {hist_where}""",
        hist_params,
    ).fetchone()[0]
    where, params = _cohort(f)
    leads, young = con.execute(
        f"""SELECT count(*),
                   count(*) FILTER (WHERE date_diff('day', CAST(lead_ts AS DATE), CAST(? AS DATE)) < ?)
            FROM journey WHERE {where}""",
        [end, typical if typical is not None else 0, *params],
    ).fetchone()
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
