"""Derived tables, rebuilt in SQL after every load run.

``journey`` holds one row per person and study: when the person became a lead, the
channel the lead is attributed to, and when each later stage was reached. Every funnel
KPI reads it, so pages never scan the event tables.

Attribution of a lead (DESIGN.md, "Channel of a lead"): the last touchpoint of the
person at or before the lead, within ``LOOKBACK_DAYS``, for the same study (or for no
particular study). Tracking touchpoints (ad clicks, page views, QR scans, UTM-tagged
forms) count only while the person's current tracking consent is granted; a referral
or an event sign-up is the person's own act of contact and always counts. A lead
without a usable touch is attributed to ``unattributed``.
"""
from __future__ import annotations

import duckdb

LOOKBACK_DAYS = 90
TRACKING_KINDS = ("ad_click", "page_view", "qr_scan", "form")
UNATTRIBUTED = "unattributed"

# (journey column, funnel stage): the first time the person reached the stage.
STAGE_COLUMNS = (
    ("prescreen_started_ts", "prescreen_started"),
    ("eligible_ts", "prescreen_eligible"),
    ("ineligible_ts", "prescreen_ineligible"),
    ("contacted_ts", "contacted"),
    ("not_reachable_ts", "not_reachable"),
    ("consented_ts", "consented"),
    ("declined_ts", "declined"),
    ("screened_ts", "screened"),
    ("screen_failed_ts", "screen_failed"),
    ("randomized_ts", "randomized"),
    ("withdrawn_ts", "withdrawn"),
)


def _journey_sql() -> str:
    stage_cols = ",\n        ".join(
        f"min(ts) FILTER (WHERE stage = '{stage}') AS {col}" for col, stage in STAGE_COLUMNS
    )
    stage_names = ", ".join(col for col, _ in STAGE_COLUMNS)
    tracking_kinds = ", ".join(f"'{k}'" for k in TRACKING_KINDS)
    return f"""
    WITH tracking AS (
        SELECT pid, arg_max(granted, ts) AS granted
        FROM consent_event WHERE purpose = 'tracking' GROUP BY pid
    ),
    leads AS (
        SELECT pid, study_id, min(ts) AS lead_ts
        FROM funnel_event WHERE stage = 'lead' GROUP BY pid, study_id
    ),
    stages AS (
        SELECT pid, study_id,
        arg_max(site_id, ts) FILTER (WHERE site_id IS NOT NULL) AS site_id,
        {stage_cols}
        FROM funnel_event GROUP BY pid, study_id
    ),
    usable_touch AS (
        SELECT t.* FROM touchpoint t
        LEFT JOIN tracking c USING (pid)
        WHERE t.pid IS NOT NULL
          AND (t.kind NOT IN ({tracking_kinds}) OR coalesce(c.granted, FALSE))
    ),
    last_touch AS (
        SELECT l.pid, l.study_id,
               arg_max(t.channel_id, (t.ts, t.touch_id)) AS channel_id,
               arg_max(t.campaign_id, (t.ts, t.touch_id)) AS campaign_id,
               arg_max(t.creative_id, (t.ts, t.touch_id)) AS creative_id
        FROM leads l
        JOIN usable_touch t
          ON t.pid = l.pid
         AND (t.study_id IS NULL OR t.study_id = l.study_id)
         AND t.ts <= l.lead_ts
         AND t.ts >= l.lead_ts - INTERVAL {LOOKBACK_DAYS} DAY
        GROUP BY l.pid, l.study_id
    )
    SELECT l.pid, l.study_id, s.site_id, p.segment_id,
           coalesce(lt.channel_id, '{UNATTRIBUTED}') AS channel_id,
           lt.campaign_id, lt.creative_id, l.lead_ts,
           {stage_names}
    FROM leads l
    JOIN stages s USING (pid, study_id)
    LEFT JOIN person p USING (pid)
    LEFT JOIN last_touch lt USING (pid, study_id)
    """


def rebuild_journey(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute ``journey`` from the facts; returns its row count. The caller owns the
    transaction, so readers never see the table half rebuilt."""
    con.execute("DELETE FROM journey")
    con.execute("INSERT INTO journey " + _journey_sql())
    return con.execute("SELECT count(*) FROM journey").fetchone()[0]


def refresh(con: duckdb.DuckDBPyConnection) -> None:
    """Everything derived from the facts. The loader calls it after each run that loaded
    a file, inside the run's closing transaction."""
    rebuild_journey(con)
