"""Numbers of the Channels page: which channel (campaign, creative) turns spend into
randomized patients.

Every count is that of ``counts.stage_counts`` (each stage on the day it was reached)
and every spend that of ``counts.spend`` (platform spend plus offline costs, so paper,
events, newsletters, community and HCP programmes are costed too). Two numbers are
added here, both computed in DuckDB:

- eligible rate, cohort based (DESIGN.md "Stage conversion"): of the leads created in
  the period, the share whose pre-screen came out eligible, whenever that was;
- value of the randomized patients: each randomized patient is worth its study's
  ``value_per_randomized``; across studies the values are summed. ROI is
  (value - spend) / spend.

Leads without a consented touch are attributed to ``unattributed``: they appear as
their own row with no spend. Spend is recorded per study and channel, so a site or
segment filter leaves every spend-based number empty (``counts.spend_applies``).
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from cockpit.derive import UNATTRIBUTED
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

# level -> the id columns of its rows
LEVELS: dict[str, tuple[str, ...]] = {
    "channel": ("channel_id",),
    "campaign": ("channel_id", "campaign_id"),
    "creative": ("channel_id", "campaign_id", "creative_id"),
}

NAME_COLUMNS: dict[str, list[str]] = {
    "channel": ["channel_id", "channel"],
    "campaign": ["channel_id", "channel", "campaign_id", "campaign"],
    "creative": ["channel_id", "channel", "campaign_id", "campaign", "creative_id", "creative", "variant"],
}
# the answer first (what a patient costs, what it returns), then what it is made of
KPI_COLUMNS = [
    "spend", "leads", "cpl", "eligible_rate_pct", "randomized", "cost_per_randomized", "roi_pct",
    "value", "eligible", "cost_per_eligible", "consented", "impressions", "clicks", "ctr_pct",
]
TAIL_COLUMNS = {"channel": ["kind"], "campaign": [], "creative": []}
SPEND_BASED = ["spend", "impressions", "clicks", "ctr_pct", "cpl", "cost_per_eligible",
               "cost_per_randomized", "roi_pct"]
SHARE_COLUMNS = ["share_budget_pct", "share_leads_pct", "share_eligible_pct", "share_randomized_pct"]
UNATTRIBUTED_NAME = "Unattributed (no consented touch)"


def table_columns(level: str) -> list[str]:
    """The columns of ``channel_table`` at ``level``, in display order."""
    return NAME_COLUMNS[level] + KPI_COLUMNS + TAIL_COLUMNS[level]


def channel_table(con: duckdb.DuckDBPyConnection, f: Filters, level: str = "channel") -> pd.DataFrame:
    """One row per channel, campaign or creative (``level``) that had spend or leads in
    the period.

    - spend, impressions, clicks: ``counts.spend`` (platform plus offline costs);
      empty for ``unattributed`` and for every row when a site or segment filter is set;
      impressions and clicks are empty where the channel reports none (offline).
    - ctr_pct = 100 x clicks / impressions; cpl = spend / leads.
    - leads, eligible, consented, randomized: ``counts.stage_counts``, each stage on its day.
    - eligible_rate_pct: cohort based, 100 x (leads of the period ever pre-screened
      eligible) / (leads of the period).
    - cost_per_eligible = spend / eligible; cost_per_randomized = spend / randomized.
    - value: randomized x value per randomized of their study, summed over studies;
      roi_pct = 100 x (value - spend) / spend.
    Undefined ratios (nothing to divide by) are empty, never zero.

    Rows come in order of spend (largest first), then leads; unattributed last; ties
    in the order of the ids.
    """
    with_spend = spend_applies(f)
    rows = _level_rows(con, f, level, with_spend)
    n_ids = len(LEVEL_KEYS[level])
    rows.sort(key=lambda row: row[:n_ids])  # ties keep the order of the ids
    columns = list(zip(*rows)) if rows else [()] * (n_ids + 10 + len(_NAME_FIELDS[level]))
    ids = columns[:n_ids]
    leads, eligible, consented, randomized, cohort_leads, cohort_eligible = (
        _ints(c) for c in columns[n_ids:n_ids + 6])
    value, spent, impressions, clicks = (_floats(c) for c in columns[n_ids + 6:n_ids + 10])
    names = dict(zip(_NAME_FIELDS[level], columns[n_ids + 10:]))
    unattributed = np.array([c == UNATTRIBUTED for c in ids[0]], dtype=bool)
    table = {"leads": leads, "eligible": eligible, "consented": consented, "randomized": randomized}
    value = np.nan_to_num(value, nan=0.0)
    if with_spend:
        table.update(_spend_kpis(spent, impressions, clicks, value, leads, eligible, randomized, unattributed))
    else:  # empty: spend cannot be split by site or segment
        table.update({col: np.full(len(rows), np.nan) for col in SPEND_BASED})
        table["impressions"] = pd.array(table["impressions"], dtype="Int64")
        table["clicks"] = pd.array(table["clicks"], dtype="Int64")
    table["eligible_rate_pct"] = _floats([_pct(e, n, 1) for e, n in zip(cohort_eligible.tolist(),
                                                                         cohort_leads.tolist())])
    table["value"] = value.round(2)
    table.update(_names(level, ids, names))
    order = _order(unattributed, table["spend"], leads)
    text = NAME_COLUMNS[level] + TAIL_COLUMNS[level]
    return pd.DataFrame({col: _text_column(col, [table[col][i] for i in order], level) if col in text
                         else table[col][order] for col in table_columns(level)})


def _spend_kpis(spent: np.ndarray, impressions: np.ndarray, clicks: np.ndarray, value: np.ndarray,
                leads: np.ndarray, eligible: np.ndarray, randomized: np.ndarray,
                unattributed: np.ndarray) -> dict:
    """Spend-based columns; spend stays empty for rows no cost can belong to."""
    spent = np.nan_to_num(spent, nan=0.0)
    no_reach = np.nan_to_num(impressions, nan=0.0) == 0  # offline channels report no reach
    impressions = np.where(no_reach, np.nan, impressions)
    clicks = np.where(no_reach, np.nan, clicks)
    spend_list = spent.tolist()
    out = {
        "ctr_pct": [_pct(c, i, 2) for c, i in zip(clicks.tolist(), impressions.tolist())],
        "cpl": _money(map(ratio, spend_list, leads.tolist())),
        "cost_per_eligible": _money(map(ratio, spend_list, eligible.tolist())),
        "cost_per_randomized": _money(map(ratio, spend_list, randomized.tolist())),
        "roi_pct": [None if r is None else round(100.0 * r, 1)
                    for r in (ratio(v - s, s) for v, s in zip(value.tolist(), spend_list))],
        "spend": spent.round(2),
        "impressions": impressions,
        "clicks": clicks,
    }
    for col in SPEND_BASED:
        out[col] = np.where(unattributed, np.nan, _floats(out[col]))
    for col in ("impressions", "clicks"):
        out[col] = pd.array(np.round(out[col]), dtype="Int64")
    return out


def budget_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Share of budget, leads, eligible pre-screens and randomized per row of a
    ``channel_table``, in percent of the table's totals (unattributed leads count in
    the totals of persons; they have no budget). Shows at a glance a channel that
    brings many patients for little money, or the reverse. Budget shares are empty
    when spend is unknown (site or segment filter)."""
    ids = [c for c in table.columns if c in ("channel_id", "channel", "campaign_id", "campaign",
                                              "creative_id", "creative")]
    out = table[ids].copy()
    for share, values in share_columns(table).items():
        out[share] = values
    return out


def share_columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns ``SHARE_COLUMNS`` of ``budget_shares``, without the ids."""
    budget = table["spend"].astype(float)
    total_budget = budget.sum(min_count=1)  # empty when no row has a known spend
    out = {"share_budget_pct": _floats([float("nan") if b != b else _pct(b, total_budget, 1)
                                        for b in budget.tolist()])}
    for share, col in (("share_leads_pct", "leads"), ("share_eligible_pct", "eligible"),
                       ("share_randomized_pct", "randomized")):
        values = table[col].tolist()
        total = sum(values)
        out[share] = _floats([_pct(v, total, 1) for v in values])
    return out


def weekly_by_channel(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per week (Monday) and channel: leads, eligible, consented, randomized (each on
    its own day) and spend (empty when a site or segment filter is set, and for
    unattributed leads). Every week from the first to the last with data is listed for
    every channel, quiet weeks as zero, so that trend lines do not skip them."""
    with_spend = spend_applies(f)
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    parts = [f"""SELECT channel_id, CAST(date_trunc('week', ts) AS DATE) AS week, {STAGE_PIVOT}
                 FROM ({events_sql(STAGES)}) WHERE {where} GROUP BY ALL"""]
    if with_spend:
        spend_where, spend_params = f.where(SPEND_COLUMNS, date_column="day")
        parts.append(f"""SELECT channel_id, CAST(date_trunc('week', day) AS DATE) AS week,
                                sum(spend) AS spend
                         FROM spend_daily WHERE {spend_where} GROUP BY ALL""")
        params = [*params, *spend_params]
    rows = con.execute(
        f"""WITH found AS (
                SELECT channel_id, week, {', '.join(f'sum({s}) AS {s}' for s in STAGES)},
                       {'sum(spend)' if with_spend else 'CAST(NULL AS DOUBLE)'} AS spend
                FROM ({' UNION ALL BY NAME '.join(f'({p})' for p in parts)}) GROUP BY ALL),
            grid AS (
                SELECT c.channel_id, CAST(w.week AS DATE) AS week
                FROM (SELECT DISTINCT channel_id FROM found) c,
                     (SELECT unnest(generate_series(CAST(min(week) AS TIMESTAMP),
                                                    CAST(max(week) AS TIMESTAMP), INTERVAL 7 DAY)) AS week
                      FROM found) w)
            SELECT g.week, g.channel_id, coalesce(ch.name, g.channel_id),
                   {', '.join(f'coalesce(x.{s}, 0)' for s in STAGES)}, x.spend
            FROM grid g LEFT JOIN found x USING (channel_id, week)
            LEFT JOIN channel ch ON ch.channel_id = g.channel_id
            ORDER BY g.week, g.channel_id""",
        params,
    ).fetchall()
    columns = list(zip(*rows)) if rows else [()] * (4 + len(STAGES))
    weeks, channel_ids, names = columns[:3]
    out = {"week": pd.Series(weeks, dtype=object),
           "channel_id": pd.Series(channel_ids, dtype="str" if rows else object),
           "channel": pd.Series([UNATTRIBUTED_NAME if c == UNATTRIBUTED else n
                                 for c, n in zip(channel_ids, names)], dtype="str")}
    for stage, counts in zip(STAGES, columns[3:3 + len(STAGES)]):
        out[stage] = _ints(counts)
    spent = _floats(columns[-1])
    if with_spend:
        unattributed = np.array([c == UNATTRIBUTED for c in channel_ids], dtype=bool)
        spent = np.where(unattributed, np.nan, np.nan_to_num(spent, nan=0.0).round(2))
    out["spend"] = spent
    return pd.DataFrame(out)


# ---------------------------------------------------------------- queries

# level -> the ids of its rows, as SQL over a journey or spend row (never user input): the
# grouping expressions of ``counts.stage_counts`` and ``counts.spend``, one column per id
LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    "channel": ("channel_id",),
    "campaign": ("channel_id", "coalesce(campaign_id, '')"),
    "creative": ("channel_id", "coalesce(campaign_id, '')", "coalesce(creative_id, '')"),
}
_NAME_FIELDS = {"channel": ("channel", "kind"), "campaign": ("channel", "kind", "campaign"),
                "creative": ("channel", "kind", "campaign", "creative", "variant")}
_NAME_JOINS = {
    "channel": "LEFT JOIN channel ch ON ch.channel_id = t.k0",
    "campaign": "LEFT JOIN channel ch ON ch.channel_id = t.k0 "
                "LEFT JOIN campaign ca ON ca.campaign_id = t.k1",
    "creative": "LEFT JOIN channel ch ON ch.channel_id = t.k0 "
                "LEFT JOIN campaign ca ON ca.campaign_id = t.k1 "
                "LEFT JOIN creative cr ON cr.creative_id = t.k2",
}
_NAME_SQL = {"channel": "ch.name, ch.kind", "campaign": "ch.name, ch.kind, ca.name",
             "creative": "ch.name, ch.kind, ca.name, cr.name, cr.variant"}


def _level_rows(con: duckdb.DuckDBPyConnection, f: Filters, level: str, with_spend: bool) -> list[tuple]:
    """Per row of the level, in one query: its ids; leads, eligible, consented and
    randomized (``counts.stage_counts``); the period's leads and how many of them were
    ever pre-screened eligible (cohort); the value of the persons randomized in the
    period (each at its study's value); spend, impressions and clicks
    (``counts.spend``, None without ``with_spend``); and the names of channel (with
    its kind), campaign and creative. A number is None where its source has no row."""
    keys = LEVEL_KEYS[level]
    ids = ", ".join(f"{key} AS k{i}" for i, key in enumerate(keys))
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    parts = [
        f"SELECT {ids}, {STAGE_PIVOT} FROM ({events_sql(STAGES)}) WHERE {where} GROUP BY ALL",
        f"""SELECT {ids}, count(*) AS cohort_leads, count(eligible_ts) AS cohort_eligible
            FROM (SELECT *, lead_ts AS ts FROM journey) WHERE {where} GROUP BY ALL""",
        f"""SELECT {ids}, sum(value_per_randomized) AS value
            FROM (SELECT j.*, j.randomized_ts AS ts, s.value_per_randomized
                  FROM journey j JOIN study s ON s.study_id = j.study_id
                  WHERE j.randomized_ts IS NOT NULL)
            WHERE {where} GROUP BY ALL""",
    ]
    params = params * 3
    if with_spend:
        spend_where, spend_params = f.where(SPEND_COLUMNS, date_column="day")
        parts.append(f"""SELECT {ids}, sum(spend) AS spend, sum(impressions) AS impressions,
                                sum(clicks) AS clicks
                         FROM spend_daily WHERE {spend_where} GROUP BY ALL""")
        params += spend_params
    numbers = [*STAGES, "cohort_leads", "cohort_eligible", "value"]
    if with_spend:
        numbers += ["spend", "impressions", "clicks"]
        empty = ""
    else:
        empty = ", NULL, NULL, NULL"
    k = ", ".join(f"t.k{i}" for i in range(len(keys)))
    return con.execute(
        f"""SELECT {k}, {', '.join(f't.{n}' for n in numbers)}{empty}, {_NAME_SQL[level]}
            FROM (SELECT {', '.join(f'k{i}' for i in range(len(keys)))},
                         {', '.join(f'sum({n}) AS {n}' for n in numbers)}
                  FROM ({' UNION ALL BY NAME '.join(f'({p})' for p in parts)}) GROUP BY ALL) t
            {_NAME_JOINS[level]}""",
        params,
    ).fetchall()


# ---------------------------------------------------------------- columns

def _names(level: str, ids: list[tuple], names: dict[str, tuple]) -> dict:
    """The id columns and the readable names of channel (with its kind), campaign and
    creative: unattributed by its own name, an empty campaign or creative said so, an
    id without a name as itself."""
    channel_ids = ids[0]
    unattributed = [c == UNATTRIBUTED for c in channel_ids]
    out: dict[str, list] = {"channel_id": list(channel_ids)}
    out["channel"] = [UNATTRIBUTED_NAME if u else (c if n is None else n)
                      for u, c, n in zip(unattributed, channel_ids, names["channel"])]
    if level == "channel":
        out["kind"] = ["none" if u else k for u, k in zip(unattributed, names["kind"])]
    if level in ("campaign", "creative"):
        out["campaign_id"] = list(ids[1])
        out["campaign"] = ["(no campaign)" if c == "" else (c if n is None else n)
                           for c, n in zip(ids[1], names["campaign"])]
    if level == "creative":
        out["creative_id"] = list(ids[2])
        out["creative"] = ["(not by creative)" if c == "" else (c if n is None else n)
                           for c, n in zip(ids[2], names["creative"])]
        out["variant"] = list(names["variant"])
    return out


def _order(unattributed: np.ndarray, spent: np.ndarray, leads: np.ndarray) -> list[int]:
    """Biggest spend first, then most leads; unattributed last (a stable sort: ties keep
    the order the rows came in)."""
    spend_key = np.nan_to_num(spent, nan=-1.0).tolist()
    return sorted(range(len(leads)), key=lambda i: (bool(unattributed[i]), -spend_key[i], -int(leads[i])))


def _text_column(name: str, values: list, level: str) -> pd.Series:
    """Names are text; ids are text at the channel level, and at the campaign and
    creative levels plain objects, as they come out of a composite key."""
    if name.endswith("_id"):
        return pd.Series(values, dtype="str" if level == "channel" and values else object)
    return pd.Series(values, dtype="str")


def _ints(values) -> np.ndarray:
    return np.array([0 if v is None else v for v in values], dtype="int64")


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _pct(numerator, denominator, digits: int) -> float | None:
    r = ratio(numerator, denominator)
    return None if r is None else round(100.0 * r, digits)


def _money(values) -> list[float | None]:
    return [None if v is None else round(v, 2) for v in values]
