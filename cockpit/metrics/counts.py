"""Stage counts and spend, grouped by an allow-listed key; the building blocks of the
KPI tables.

Counts are event based: each stage is counted on the day it was reached (leads on
their lead day, randomized on their randomization day), so a week's row says what
happened that week. Cohort conversion (of the leads of a period, how many ever
reached a stage) is a different question and lives with the funnel metrics.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from cockpit.filters import Filters

# output name -> journey timestamp column
STAGES: dict[str, str] = {
    "leads": "lead_ts",
    "eligible": "eligible_ts",
    "consented": "consented_ts",
    "randomized": "randomized_ts",
}

JOURNEY_COLUMNS = {"study": "study_id", "site": "site_id", "segment": "segment_id", "channel": "channel_id"}
SPEND_COLUMNS = {"study": "study_id", "channel": "channel_id"}

# group key -> SQL expression over the event row (e) or spend row (s); never user input
_EVENT_KEYS = {
    "study": "study_id",
    "channel": "channel_id",
    "site": "site_id",
    "segment": "segment_id",
    "campaign": "campaign_id",
    "creative": "creative_id",
    "week": "CAST(date_trunc('week', ts) AS DATE)",
    # composite keys: parts joined by chr(31) (never in an id), split by the caller
    "channel_campaign": "channel_id || chr(31) || coalesce(campaign_id, '')",
    "channel_creative": "channel_id || chr(31) || coalesce(campaign_id, '') || chr(31) "
                        "|| coalesce(creative_id, '')",
    "channel_week": "channel_id || chr(31) || CAST(CAST(date_trunc('week', ts) AS DATE) AS VARCHAR)",
    # persons without a known age band kept as '' rather than dropped
    "segment_or_unknown": "coalesce(segment_id, '')",
}
# group key -> name of the output column
KEY_NAMES = {"study": "study_id", "channel": "channel_id", "site": "site_id",
             "segment": "segment_id", "campaign": "campaign_id", "creative": "creative_id",
             "week": "week", "channel_campaign": "channel_campaign",
             "channel_creative": "channel_creative", "channel_week": "channel_week",
             "segment_or_unknown": "segment_id"}

_SPEND_KEYS = {
    "study": "study_id",
    "channel": "channel_id",
    "campaign": "campaign_id",
    "creative": "creative_id",
    "week": "CAST(date_trunc('week', day) AS DATE)",
    "channel_campaign": "channel_id || chr(31) || coalesce(campaign_id, '')",
    "channel_creative": "channel_id || chr(31) || coalesce(campaign_id, '') || chr(31) "
                        "|| coalesce(creative_id, '')",
    "channel_week": "channel_id || chr(31) || CAST(CAST(date_trunc('week', day) AS DATE) AS VARCHAR)",
}


STAGE_PIVOT = ", ".join(f"count(*) FILTER (WHERE stage = '{name}') AS {name}" for name in STAGES)


def events_sql(stages: dict[str, str]) -> str:
    parts = [
        f"SELECT study_id, site_id, segment_id, channel_id, campaign_id, creative_id, "
        f"'{name}' AS stage, {col} AS ts "
        f"FROM journey WHERE {col} IS NOT NULL"
        for name, col in stages.items()
    ]
    return " UNION ALL ".join(parts)


def stage_counts(con: duckdb.DuckDBPyConnection, f: Filters, by: str | None = None) -> pd.DataFrame:
    """Persons reaching each stage in the period, one column per stage of ``STAGES``.

    ``by`` is one of study, channel, site, segment, campaign, creative, week, or None
    for one total row. Rows are ordered by the key; a key that is empty (NULL: a lead
    without a campaign, say) is left out.
    """
    key = _EVENT_KEYS[by] if by else "'all'"
    where, params = f.where(JOURNEY_COLUMNS, date_column="ts")
    # one row per key, a column per stage: pivoted by DuckDB while it counts
    sql = (
        f"SELECT {key} AS key, {STAGE_PIVOT} FROM ({events_sql(STAGES)}) "
        f"WHERE {where} AND ({key}) IS NOT NULL GROUP BY ALL ORDER BY key"
    )
    wide = con.execute(sql, params).df()
    if by is None and wide.empty:
        wide = pd.DataFrame({"key": ["all"], **{stage: [0] for stage in STAGES}})
    return _named(wide, by)


def spend_applies(f: Filters) -> bool:
    """Spend is recorded per study and channel: a site or segment filter cannot split it."""
    return not f.unsupported(SPEND_COLUMNS)


def spend(con: duckdb.DuckDBPyConnection, f: Filters, by: str | None = None) -> pd.DataFrame:
    """Spend, impressions and clicks in the period (platform spend plus offline costs).

    Site and segment filters do not apply (see ``spend_applies``).
    """
    key = _SPEND_KEYS[by] if by else "'all'"
    where, params = f.where(SPEND_COLUMNS, date_column="day")
    sql = (
        f"SELECT {key} AS key, sum(spend) AS spend, sum(impressions) AS impressions, "
        f"sum(clicks) AS clicks FROM spend_daily WHERE {where} GROUP BY ALL"
    )
    out = con.execute(sql, params).df()
    if by is None and out.empty:
        out = pd.DataFrame({"key": ["all"], "spend": [0.0], "impressions": [0], "clicks": [0]})
    out["spend"] = out["spend"].fillna(0.0).astype(float)
    return _named(out, by)


def _named(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Name the key column after the group (weeks as plain dates)."""
    if by == "week":
        frame["key"] = pd.to_datetime(frame["key"]).dt.date
    return frame.rename(columns={"key": KEY_NAMES.get(by, "key")})


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when undefined."""
    if numerator is None or denominator in (None, 0) or pd.isna(numerator) or pd.isna(denominator):
        return None
    return float(numerator) / float(denominator)
