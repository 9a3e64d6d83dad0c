"""Derived tables, rebuilt in SQL after every load run.

``journey`` holds one row per person and study: when the person became a lead, the
channel the lead is attributed to, and when each later stage was reached. Every funnel
KPI reads it, so pages never scan the event tables.

Consent is an append-only history per person and purpose (``consent_event``); the
current state is the latest event, and at equal times a withdrawal wins over a grant
(the cautious reading). Two purposes shape the journey:

- ``tracking``: tracking touchpoints (ad clicks, page views, QR scans, UTM-tagged
  forms) count only while the person's current tracking consent is granted; a
  referral or an event sign-up is the person's own act of contact and always counts.
- ``contact_research``: when the current state is a withdrawal that follows a grant,
  the person stops being counted from the moment of the withdrawal
  (``consent_withdrawn_ts``: the first withdrawal after the latest grant). Funnel
  events at or after that moment are not used: the journey keeps the stages reached
  before it and nothing later, and a lead first made after it has no journey. A first
  decision that is a refusal (no grant before) is not a withdrawal and changes nothing
  here; the Compliance page counts refusals.

What "stops being counted from that moment" means for each family of metrics:

- counts of a period (leads, eligible, consented, randomized per day, week or period,
  the costs per stage built on them, enrolment rates, randomized to date, the daily
  KPIs alerts watch): each stage counts on its day only if it came before the
  withdrawal, so a lead of a period before the withdrawal keeps counting there, and
  nothing dated at or after the withdrawal is counted. Follows from the journey alone.
- cohort conversion (Funnel page): the withdrawn lead stays in its lead cohort with the
  stages reached before the withdrawal and reaches none after it.
- counts "as of now" (open pipeline, leads waiting for a site's call, open leads of
  time to enrolment): a withdrawn lead is not open, whatever its last step. Applied by
  ``metrics.funnel`` (lead status: exited unless randomized before the withdrawal) and
  ``metrics.sites`` (not waiting for a call).
- forecasts: the recruitment forecast runs on randomized patients and site exposure,
  so a randomization before the withdrawal keeps counting and no open lead feeds it.
- attribution paths (``journey_path``, read by ``metrics.attribution``) end at the
  withdrawal as well.

Attribution of a lead (DESIGN.md, "Channel of a lead"): the last usable touchpoint of
the person at or before the lead, within ``LOOKBACK_DAYS``, for the same study (or for
no particular study). A lead without a usable touch is attributed to ``unattributed``.

``journey_path`` holds, per person and study of the journey, with the journey's site,
segment, lead time and whether the person was randomized (what the page filters and
counts by), the touchpoint path the Attribution page credits, once per conversion mode
(``PATH_ENDS``): the channels of the
usable touches (as above) from ``LOOKBACK_DAYS`` before the lead up to the end of the
path, oldest first, consecutive touches of one channel being one step dated by the
latest of them, and the age of each step in whole days before the end. A path depends
on the page's filter only through which persons it selects, so it is walked here once
per load rather than on every filter change.

``consent_decision`` holds, per person and purpose, the first decision, the current
state and the withdrawals that follow a grant, for the Compliance page
(``metrics.compliance``), on one row per journey of the person with what the page
filters by, instead of every consent event.
"""
from __future__ import annotations

import duckdb

LOOKBACK_DAYS = 90
TRACKING_KINDS = ("ad_click", "page_view", "qr_scan", "form")
UNATTRIBUTED = "unattributed"
PURPOSES = ("tracking", "contact_research")

# Where a person's path ends, per conversion mode of the Attribution page: a journey
# column expression. Up to the lead; or up to the randomization, and for persons not
# randomized up to now, or up to the withdrawal of the consent to be contacted (the
# journey holds no randomization after a withdrawal, so the earlier of the two ends it).
PATH_ENDS = {
    "lead": "lead_ts",
    "randomized": "coalesce(randomized_ts, consent_withdrawn_ts, TIMESTAMP '9999-12-31')",
}

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

# (journey column, exit stage): the coded reason of the exit (of the person's events of
# that stage, the earliest with a reason), beside the exit's time in ``STAGE_COLUMNS``.
EXIT_REASON_COLUMNS = (
    ("ineligible_reason", "prescreen_ineligible"),
    ("not_reachable_reason", "not_reachable"),
    ("declined_reason", "declined"),
    ("screen_failed_reason", "screen_failed"),
    ("withdrawn_reason", "withdrawn"),
)


def consent_state_sql(purpose: str) -> str:
    """SQL of one row per person with a decision for ``purpose``: ``pid`` and
    ``granted``, the current state (the latest event; at equal times a withdrawal wins)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown consent purpose {purpose!r}")
    # the key (ts, NOT granted) orders a withdrawal after a grant of the same instant
    return (f"SELECT pid, arg_max(granted, (ts, NOT granted)) AS granted "
            f"FROM consent_event WHERE purpose = '{purpose}' GROUP BY pid")


def research_withdrawal_sql() -> str:
    """SQL of one row per person whose current ``contact_research`` consent is withdrawn
    after a grant: ``pid`` and ``consent_withdrawn_ts``, the first withdrawal at or after the
    latest grant (a repeated withdrawal does not move the moment)."""
    return """
        SELECT c.pid, min(c.ts) AS consent_withdrawn_ts
        FROM consent_event c
        JOIN (SELECT pid, max(ts) AS last_grant FROM consent_event
              WHERE purpose = 'contact_research' AND granted GROUP BY pid) g USING (pid)
        WHERE c.purpose = 'contact_research' AND NOT c.granted AND c.ts >= g.last_grant
        GROUP BY c.pid"""


def usable_touch_sql() -> str:
    """SQL of the touchpoints of known persons that may be used: every referral and
    event sign-up, and tracking touches of persons whose current tracking consent is
    granted."""
    tracking_kinds = ", ".join(f"'{k}'" for k in TRACKING_KINDS)
    return f"""
        SELECT t.* FROM touchpoint t
        LEFT JOIN ({consent_state_sql('tracking')}) c USING (pid)
        WHERE t.pid IS NOT NULL
          AND (t.kind NOT IN ({tracking_kinds}) OR coalesce(c.granted, FALSE))"""


def _journey_sql() -> str:
    stage_cols = ",\n        ".join(
        f"min(ts) FILTER (WHERE stage = '{stage}') AS {col}" for col, stage in STAGE_COLUMNS
    )
    stage_cols += "".join(
        f",\n        arg_min(reason, ts) FILTER (WHERE stage = '{stage}') AS {col}"
        for col, stage in EXIT_REASON_COLUMNS
    )
    stage_names = ", ".join(col for col, _ in STAGE_COLUMNS + EXIT_REASON_COLUMNS)
    return f"""
    WITH withdrawal AS ({research_withdrawal_sql()}),
    events AS (  -- funnel events before the person withdrew consent to be contacted
        SELECT e.* FROM funnel_event e LEFT JOIN withdrawal w USING (pid)
        WHERE w.consent_withdrawn_ts IS NULL OR e.ts < w.consent_withdrawn_ts
    ),
    leads AS (
        SELECT pid, study_id, min(ts) AS lead_ts
        FROM events WHERE stage = 'lead' GROUP BY pid, study_id
    ),
    stages AS (
        SELECT pid, study_id,
        arg_max(site_id, ts) FILTER (WHERE site_id IS NOT NULL) AS site_id,
        {stage_cols}
        FROM events GROUP BY pid, study_id
    ),
    usable_touch AS ({usable_touch_sql()}),
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
           {stage_names},
           w.consent_withdrawn_ts
    FROM leads l
    JOIN stages s USING (pid, study_id)
    LEFT JOIN person p USING (pid)
    LEFT JOIN last_touch lt USING (pid, study_id)
    LEFT JOIN withdrawal w USING (pid)
    """


def rebuild_journey(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute ``journey`` from the facts; returns its row count. The caller owns the
    transaction, so readers never see the table half rebuilt."""
    con.execute("DELETE FROM journey")
    # By name: the columns added by later migrations sit at the end of the table. In
    # study, site and lead order: DuckDB keeps each row group's minimum and maximum per
    # column, so a page filtered to a study or a site reads only that study's groups.
    con.execute(f"INSERT INTO journey BY NAME SELECT * FROM ({_journey_sql()}) "
                f"ORDER BY study_id, site_id, lead_ts")
    return con.execute("SELECT count(*) FROM journey").fetchone()[0]


def _step_positions_sql(mode: str) -> str:
    """SQL of the positions (1-based) in ``walk`` of the steps of the path of ``mode``:
    the touches up to the mode's end whose next touch has another channel or lies past
    the end (a run of one channel is one step, dated by its latest touch)."""
    until = f"{mode}_until"
    return (f"list_filter(range(1, len(walk) + 1), lambda i: walk[i].ts <= {until} AND "
            f"(i = len(walk) OR walk[i + 1].channel_id <> walk[i].channel_id "
            f"OR walk[i + 1].ts > {until}))")


def journey_path_sql() -> str:
    """SQL of the ``journey_path`` rows: per person and study of ``journey`` with a
    usable touch, for each mode of ``PATH_ENDS``, ``<mode>_channels`` (the channels of
    the path's steps, oldest first) and ``<mode>_ages`` (each step's age in whole days
    before the path's end, rounded down); both NULL when no usable touch lies between
    ``LOOKBACK_DAYS`` before the lead and that end.

    The touches are read once for every mode, up to the latest end, into one list per
    person and study ordered by time, then id (``walk``): each mode's touches are the
    first ones of that list, those up to its end."""
    ends = ", ".join(f"{expr} AS {mode}_until" for mode, expr in PATH_ENDS.items())
    reach = ", ".join(f"p.{mode}_until" for mode in PATH_ENDS)
    carried = ", ".join(f"any_value({mode}_until) AS {mode}_until" for mode in PATH_ENDS)
    positions = ",\n               ".join(
        f"{_step_positions_sql(mode)} AS {mode}_steps" for mode in PATH_ENDS)
    columns = ",\n           ".join(
        f"CASE WHEN len({mode}_steps) > 0 THEN list_transform({mode}_steps, lambda i: "
        f"walk[i].channel_id) END AS {mode}_channels,\n           "
        f"CASE WHEN len({mode}_steps) > 0 THEN list_transform({mode}_steps, lambda i: "
        f"CAST(floor(epoch({mode}_until - walk[i].ts) / 86400) AS INTEGER)) END AS {mode}_ages"
        for mode in PATH_ENDS)
    return f"""
    WITH persons AS (
        SELECT pid, study_id, lead_ts, {ends} FROM journey
    ),
    touches AS (
        SELECT p.*, t.ts, t.touch_id, t.channel_id
        FROM persons p
        JOIN ({usable_touch_sql()}) t
          ON t.pid = p.pid
         AND (t.study_id IS NULL OR t.study_id = p.study_id)
         AND t.ts <= greatest({reach})
         AND t.ts >= p.lead_ts - INTERVAL {LOOKBACK_DAYS} DAY
    ),
    walks AS (  -- sorting each list is cheaper than an ordered aggregate
        SELECT pid, study_id, {carried},
               list_sort(list({{'ts': ts, 'touch_id': touch_id, 'channel_id': channel_id}})) AS walk
        FROM touches GROUP BY pid, study_id
    ),
    steps AS (
        SELECT *,
               {positions}
        FROM walks
    )
    SELECT pid, study_id, j.site_id, j.segment_id, j.lead_ts,
           j.randomized_ts IS NOT NULL AS randomized,
           {columns}
    FROM steps JOIN journey j USING (pid, study_id)  -- what the page filters paths by
    """


def rebuild_journey_path(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute ``journey_path`` from ``journey`` and the touchpoints (run it after
    ``rebuild_journey``); returns its row count. The caller owns the transaction."""
    con.execute("DELETE FROM journey_path")
    # in study, site and lead order, as the journey: a page filtered to a study or a site
    # reads only its groups
    con.execute(f"INSERT INTO journey_path BY NAME SELECT * FROM ({journey_path_sql()}) "
                f"ORDER BY study_id, site_id, lead_ts")
    return con.execute("SELECT count(*) FROM journey_path").fetchone()[0]


def consent_decision_sql() -> str:
    """SQL of the ``consent_decision`` rows: per person and purpose with a consent event,
    ``first_ts`` and ``first_granted`` (the first decision; at equal times a grant comes
    first), ``last_ts`` and ``granted`` (the latest event; at equal times a withdrawal
    wins, as in ``consent_state_sql``), and ``withdrawals``: the withdrawals that follow a
    grant (the event before it, in the order time, grant before withdrawal, id, is a
    grant), oldest first, or NULL when there is none. The decision is repeated for each
    journey of the person, with the journey's study, site, segment and channel (one row
    with NULL ones when the person has none); ``shared`` marks persons with several."""
    return """
    WITH ordered AS (
        SELECT pid, purpose, consent_id, ts, granted, source_file,
               lag(granted) OVER (PARTITION BY pid, purpose
                                  ORDER BY ts, NOT granted, consent_id) AS before
        FROM consent_event),
    decisions AS (
        SELECT pid, purpose,
               min(ts) AS first_ts, arg_min(granted, (ts, NOT granted)) AS first_granted,
               max(ts) AS last_ts, arg_max(granted, (ts, NOT granted)) AS granted,
               list({'consent_id': consent_id, 'ts': ts, 'source_file': source_file}
                    ORDER BY ts, consent_id) FILTER (WHERE NOT granted AND before) AS withdrawals
        FROM ordered GROUP BY pid, purpose),
    journeys AS (
        SELECT pid, study_id, site_id, segment_id, channel_id,
               count(*) OVER (PARTITION BY pid) > 1 AS shared
        FROM journey)
    SELECT d.pid, d.purpose, j.study_id, j.site_id, j.segment_id, j.channel_id,
           coalesce(j.shared, FALSE) AS shared,
           d.first_ts, d.first_granted, d.last_ts, d.granted, d.withdrawals
    FROM decisions d LEFT JOIN journeys j USING (pid)"""


def rebuild_consent_decision(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute ``consent_decision`` from the consent events; returns its row count.
    The caller owns the transaction."""
    con.execute("DELETE FROM consent_decision")
    # by quarter of the first decision, then study and site: the Compliance page filters
    # by that date, and a period then reads the row groups of its quarters (a study's,
    # one or two per quarter). In study and site order alone, six weeks read every row
    # group and their person ids: 2.2x as long at large, where a study is 1.2x faster.
    con.execute(f"INSERT INTO consent_decision BY NAME SELECT * FROM ({consent_decision_sql()}) "
                f"ORDER BY date_trunc('quarter', first_ts), study_id, site_id")
    return con.execute("SELECT count(*) FROM consent_decision").fetchone()[0]


def refresh(con: duckdb.DuckDBPyConnection) -> None:
    """Everything derived from the facts. The loader calls it after each run that loaded
    a file, inside the run's closing transaction."""
    rebuild_journey(con)
    rebuild_journey_path(con)
    rebuild_consent_decision(con)
