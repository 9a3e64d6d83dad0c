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
import pandas as pd

from cockpit.derive import UNATTRIBUTED
from cockpit.filters import Filters
from cockpit.metrics.counts import (
    _EVENT_KEYS as EVENT_KEYS,  # the same grouping expressions as the stage counts
    JOURNEY_COLUMNS,
    STAGES,
    ratio,
    spend,
    spend_applies,
    stage_counts,
)

SEP = chr(31)  # separator of the composite keys of counts (channel_campaign, ...)

# level -> (group key of counts, the id columns the composite key splits into)
LEVELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "channel": ("channel", ("channel_id",)),
    "campaign": ("channel_campaign", ("channel_id", "campaign_id")),
    "creative": ("channel_creative", ("channel_id", "campaign_id", "creative_id")),
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
    """
    key, ids = LEVELS[level]
    counts = _split(stage_counts(con, f, by=key), key, ids)
    cohort = _split(_cohort_eligible(con, f, key), "key", ids)
    value = _split(_value(con, f, key), "key", ids)
    table = counts.merge(cohort, on=list(ids), how="outer").merge(value, on=list(ids), how="outer")
    with_spend = spend_applies(f)
    if with_spend:
        spent = _split(spend(con, f, by=key), key, ids)
        table = table.merge(spent, on=list(ids), how="outer")
    else:
        table = table.assign(spend=float("nan"), impressions=pd.NA, clicks=pd.NA)
    for col in list(STAGES) + ["cohort_leads", "cohort_eligible"]:
        table[col] = table[col].fillna(0).astype("int64")
    table["value"] = table["value"].fillna(0.0).astype(float)
    if with_spend:
        table = _spend_kpis(table)
    else:
        for col in SPEND_BASED:
            table[col] = float("nan")  # empty: spend cannot be split by site or segment
        for col in ("impressions", "clicks"):
            table[col] = table[col].astype("Int64")
    table["eligible_rate_pct"] = [_pct(e, n, 1) for e, n in zip(table["cohort_eligible"], table["cohort_leads"])]
    table["value"] = table["value"].round(2)
    table = _names(con, table, level)
    table = _order(table)
    return table[table_columns(level)].reset_index(drop=True)


def _spend_kpis(table: pd.DataFrame) -> pd.DataFrame:
    """Spend-based columns; spend stays empty for rows no cost can belong to."""
    table = table.copy()
    table["spend"] = table["spend"].fillna(0.0).astype(float)
    unattributed = table["channel_id"] == UNATTRIBUTED
    no_reach = table["impressions"].fillna(0).eq(0)  # offline channels report no reach
    table["impressions"] = table["impressions"].where(~no_reach, None)
    table["clicks"] = table["clicks"].where(~no_reach, None)
    table["ctr_pct"] = [_pct(c, i, 2) for c, i in zip(table["clicks"], table["impressions"])]
    table["cpl"] = _money(map(ratio, table["spend"], table["leads"]))
    table["cost_per_eligible"] = _money(map(ratio, table["spend"], table["eligible"]))
    table["cost_per_randomized"] = _money(map(ratio, table["spend"], table["randomized"]))
    roi = [ratio(v - s, s) for v, s in zip(table["value"], table["spend"])]
    table["roi_pct"] = [None if r is None else round(100.0 * r, 1) for r in roi]
    table["spend"] = table["spend"].round(2)
    for col in SPEND_BASED:
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float).where(~unattributed)
    for col in ("impressions", "clicks"):
        table[col] = table[col].round().astype("Int64")
    return table


def budget_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Share of budget, leads, eligible pre-screens and randomized per row of a
    ``channel_table``, in percent of the table's totals (unattributed leads count in
    the totals of persons; they have no budget). Shows at a glance a channel that
    brings many patients for little money, or the reverse. Budget shares are empty
    when spend is unknown (site or segment filter)."""
    ids = [c for c in table.columns if c in ("channel_id", "channel", "campaign_id", "campaign",
                                              "creative_id", "creative")]
    out = table[ids].copy()
    budget = pd.to_numeric(table["spend"], errors="coerce")
    total_budget = budget.sum(min_count=1)
    out["share_budget_pct"] = [float("nan") if pd.isna(b) else _pct(b, total_budget, 1) for b in budget]
    out["share_budget_pct"] = out["share_budget_pct"].astype(float)
    for share, col in (("share_leads_pct", "leads"), ("share_eligible_pct", "eligible"),
                       ("share_randomized_pct", "randomized")):
        total = table[col].sum()
        out[share] = [_pct(v, total, 1) for v in table[col]]
    return out


def weekly_by_channel(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Per week (Monday) and channel: leads, eligible, consented, randomized (each on
    its own day) and spend (empty when a site or segment filter is set, and for
    unattributed leads). Every week from the first to the last with data is listed for
    every channel, quiet weeks as zero, so that trend lines do not skip them."""
    ids = ("channel_id", "week")
    counts = _split(stage_counts(con, f, by="channel_week"), "channel_week", ids)
    with_spend = spend_applies(f)
    if with_spend:
        spent = _split(spend(con, f, by="channel_week"), "channel_week", ids)[["channel_id", "week", "spend"]]
        out = counts.merge(spent, on=list(ids), how="outer")
    else:
        out = counts.assign(spend=float("nan"))
    out["week"] = pd.to_datetime(out["week"])
    if not out.empty:
        weeks = pd.date_range(out["week"].min(), out["week"].max(), freq="W-MON")
        grid = pd.MultiIndex.from_product([sorted(out["channel_id"].unique()), weeks], names=list(ids))
        out = out.set_index(list(ids)).reindex(grid).reset_index()
    for col in STAGES:
        out[col] = out[col].fillna(0).astype("int64")
    out["spend"] = out["spend"].astype(float)
    if with_spend:
        out["spend"] = out["spend"].fillna(0.0).round(2).where(out["channel_id"] != UNATTRIBUTED)
    out["week"] = out["week"].dt.date
    names = _channel_names(con)
    out["channel"] = out["channel_id"].map(names).fillna(out["channel_id"])
    out = out[["week", "channel_id", "channel", *STAGES, "spend"]]
    return out.sort_values(["week", "channel_id"]).reset_index(drop=True)


# ---------------------------------------------------------------- queries


def _cohort_eligible(con: duckdb.DuckDBPyConnection, f: Filters, key: str) -> pd.DataFrame:
    """Leads created in the period, and how many of them were ever pre-screened eligible."""
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    return con.execute(
        f"""SELECT {EVENT_KEYS[key]} AS key, count(*) AS cohort_leads,
                   count(eligible_ts) AS cohort_eligible
            FROM (SELECT *, lead_ts AS ts FROM journey) WHERE {where} GROUP BY ALL""",
        params,
    ).df()


def _value(con: duckdb.DuckDBPyConnection, f: Filters, key: str) -> pd.DataFrame:
    """Value of the persons randomized in the period: each at its study's value."""
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    return con.execute(
        f"""SELECT {EVENT_KEYS[key]} AS key, sum(value_per_randomized) AS value
            FROM (SELECT j.*, j.randomized_ts AS ts, s.value_per_randomized
                  FROM journey j JOIN study s ON s.study_id = j.study_id
                  WHERE j.randomized_ts IS NOT NULL)
            WHERE {where} GROUP BY ALL""",
        params,
    ).df()


def _channel_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    names = dict(con.execute("SELECT channel_id, name FROM channel").fetchall())
    names[UNATTRIBUTED] = UNATTRIBUTED_NAME
    return names


def _names(con: duckdb.DuckDBPyConnection, table: pd.DataFrame, level: str) -> pd.DataFrame:
    """Add the readable names of channel, campaign and creative (ids stay)."""
    channels = con.execute("SELECT channel_id, name AS channel, kind FROM channel").df()
    table = table.merge(channels, on="channel_id", how="left")
    unattributed = table["channel_id"] == UNATTRIBUTED
    table.loc[unattributed, "channel"] = UNATTRIBUTED_NAME
    table.loc[unattributed, "kind"] = "none"
    table["channel"] = table["channel"].fillna(table["channel_id"])
    if level in ("campaign", "creative"):
        campaigns = con.execute("SELECT campaign_id, name AS campaign FROM campaign").df()
        table = table.merge(campaigns, on="campaign_id", how="left")
        table["campaign"] = table["campaign"].where(table["campaign_id"] != "", "(no campaign)")
        table["campaign"] = table["campaign"].fillna(table["campaign_id"])
    if level == "creative":
        creatives = con.execute("SELECT creative_id, name AS creative, variant FROM creative").df()
        table = table.merge(creatives, on="creative_id", how="left")
        table["creative"] = table["creative"].where(table["creative_id"] != "", "(not by creative)")
        table["creative"] = table["creative"].fillna(table["creative_id"])
    return table


def _split(frame: pd.DataFrame, column: str, ids: tuple[str, ...]) -> pd.DataFrame:
    """Split a composite key column (parts joined by ``SEP``) into the id columns."""
    frame = frame.copy()
    if len(ids) == 1:
        return frame.rename(columns={column: ids[0]})
    parts = frame[column].astype(str).str.split(SEP, n=len(ids) - 1, expand=True)
    parts = parts.reindex(columns=range(len(ids)))
    for i, name in enumerate(ids):
        frame[name] = parts[i].astype(object) if len(frame) else pd.Series(dtype=object)
    return frame.drop(columns=[column])


def _order(table: pd.DataFrame) -> pd.DataFrame:
    """Biggest spend first, then most leads; unattributed last."""
    key = pd.to_numeric(table["spend"], errors="coerce").fillna(-1.0)
    return (table.assign(_last=table["channel_id"] == UNATTRIBUTED, _spend=key)
            .sort_values(["_last", "_spend", "leads"], ascending=[True, False, False])
            .drop(columns=["_last", "_spend"]))


def _pct(numerator, denominator, digits: int) -> float | None:
    r = ratio(numerator, denominator)
    return None if r is None else round(100.0 * r, digits)


def _money(values) -> list[float | None]:
    return [None if v is None else round(v, 2) for v in values]
