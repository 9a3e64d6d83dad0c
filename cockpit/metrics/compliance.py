"""Numbers of the Compliance page: consent, refusals and withdrawals per purpose, how
fast a withdrawal or an erasure is carried out, and the age of access requests.

Consent (``consent_event``) is an append-only history per person and purpose
(``tracking``, ``contact_research``). Its events are ordered by time, and at equal
times a grant before a withdrawal, as in ``cockpit.derive`` (so the state after the
instant is the withdrawal, and a grant and a withdrawal of the same instant are a
grant followed by a withdrawal).

- Decided persons of a period: persons whose first decision for the purpose falls in
  the period (all persons with a decision when no dates are set).
- Consent rate = decided persons whose state at the end of the period (the latest
  event up to the end date; the latest event of all when no end is set) is granted /
  decided persons, in percent.
- Refusal rate = decided persons whose first decision is a refusal (a withdrawal with
  no grant before it) / decided persons, in percent.
- Withdrawal: a withdrawal event that follows a grant (the state changes from granted
  to withdrawn); a repeated withdrawal is not a new one, a withdrawal after a new grant
  is. Dated by the event's time.
- Time to apply a withdrawal: from the withdrawal (``consent_event.ts``) to the moment
  the cockpit applied it. The loader writes the event, rebuilds the derived tables and
  records the file (``source_file``, keyed by content hash, with its ``path`` and
  ``loaded_at``) in one transaction, and ``consent_event.source_file`` holds the path
  of the file that brought the event. The moment applied is the earliest load of a
  file at that path (status ``loaded``) at or after the withdrawal: a file (or a SQL
  source, path ``sql:<name>``) loaded again under the same path with new content has
  several loads, and the event cannot have been loaded before it happened. A
  withdrawal without such a load (a time after the load, e.g. a clock error) counts
  as not applied and is left out of the median.
- Time to complete an erasure: ``erasure_ledger`` requested_at -> completed_at, in
  days, over the erasures completed; those still open are counted apart.
- Access requests (``subject_request`` of kind ``access``): age in days = completed -
  received, or now - received while open; flagged when over ``LIMIT_DAYS`` days
  (open for longer, or completed after longer): GDPR Art. 12(3) allows one month.
Medians are DuckDB ``quantile_cont(x, 0.5)`` (linear interpolation).

Filters: consent numbers follow the person's journeys (study, phase, site, segment,
and channel: the channel each lead is attributed to), so a person counts where they
are a lead; persons with no journey at all (a decision recorded but no lead yet)
count only in the unfiltered, unconfined view. Dates apply to the first decision
(rates) or the withdrawal (withdrawals, time to apply). Requests of data subjects and
the erasure ledger know no study: they are shown only when no study, phase, site,
segment or channel is set and the viewer may see every study and site
(``requests_visible``); their date filter is the day received or requested.
"""
from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pandas as pd

from cockpit.derive import PURPOSES
from cockpit.filters import DIMENSIONS, Filters

# purposes in the order the page lists them (the same set as ``cockpit.derive.PURPOSES``)
PURPOSE_ORDER = tuple(sorted(PURPOSES))  # contact_research, tracking
PURPOSE_NAMES = {"contact_research": "Contact for research", "tracking": "Tracking"}
LIMIT_DAYS = 30
PERSON_COLUMNS = {"study": "d.study_id", "site": "d.site_id", "segment": "d.segment_id",
                  "channel": "d.channel_id"}

PURPOSE_COLUMNS = ["purpose", "purpose_name", "decided", "granted", "consent_rate_pct", "refused",
                   "refusal_rate_pct", "withdrawals", "withdrawals_applied",
                   "median_hours_to_apply"]
WEEK_COLUMNS = ["week", "withdrawals_contact_research", "withdrawals_tracking", "withdrawals"]
ACCESS_COLUMNS = ["request_id", "received_at", "completed_at", "status", "age_days",
                  "over_30_days", "handled_by"]
ERASURE_COLUMNS = ["requested_at", "completed_at", "status", "days_to_complete", "age_days",
                   "over_30_days"]

HIDDEN_NOTE = ("Requests of data subjects and erasures belong to no study, site, segment or "
               "channel: they are shown only without such a filter, to viewers who may see "
               "every study and site.")

# Hover texts of the page's cards and columns (keys: the columns of the tables above).
DEFINITIONS: dict[str, str] = {
    "decided": "Persons whose first consent decision for the purpose falls in the period.",
    "granted": "Of the decided persons, those whose consent for the purpose stands at the end of "
    "the period (latest event granted).",
    "consent_rate_pct": "Consent rate = persons whose latest decision for the purpose (at the end of "
    "the period) is a grant / persons whose first decision falls in the period, in percent.",
    "refused": "Of the decided persons, those whose first decision was a refusal (no grant before).",
    "refusal_rate_pct": "Refusal rate = persons whose first decision for the purpose is a refusal / "
    "persons whose first decision falls in the period, in percent.",
    "withdrawals": "Withdrawals in the period: a withdrawal that follows a grant of the same purpose "
    "(a repeated withdrawal is not counted again).",
    "withdrawals_applied": "Withdrawals the cockpit has applied: the file that brought the withdrawal "
    "was loaded (the derived tables are rebuilt in the same step).",
    "median_hours_to_apply": "Median hours from a withdrawal to its application: the earliest load, at "
    "or after the withdrawal, of the file that brought it.",
    "withdrawals_contact_research": "Withdrawals of the consent to be contacted for research that week.",
    "withdrawals_tracking": "Withdrawals of the consent to tracking that week.",
    "week": "Week starting Monday.",
    "age_days": f"Days from receipt to completion, or to now while open. Over {LIMIT_DAYS} days is "
    "flagged: GDPR allows one month.",
    "over_30_days": f"Open for more than {LIMIT_DAYS} days, or completed after more than {LIMIT_DAYS} days.",
    "days_to_complete": "Days from the erasure request to its completion.",
    "median_days_to_erase": "Median days from an erasure request (requested in the period) to its "
    "completion, over the erasures completed.",
    "access_over_30_days": f"Access requests received in the period that are open for more than "
    f"{LIMIT_DAYS} days or were completed after more than {LIMIT_DAYS} days.",
}


# ---------------------------------------------------------------- helpers

def requests_visible(f: Filters) -> bool:
    """Whether subject requests and erasures may be shown under ``f``: no dimension
    filter is set, and the viewer's scope is unlimited (they know no study or site)."""
    no_filter = not any(getattr(f, dim) for dim in DIMENSIONS)
    return no_filter and f.scope.studies is None and f.scope.sites is None


def _now(now: datetime | None) -> datetime:
    """``now`` as a naive UTC time, as the store keeps times."""
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def _persons(f: Filters) -> tuple[str, list]:
    """The condition on ``consent_decision d`` of ``f``'s dimensions and the viewer's
    scope: the rows of the journeys they select (TRUE when nothing is set, so that
    persons with no journey count in the unfiltered, unconfined view)."""
    return f.where(PERSON_COLUMNS)


def _withdrawals_sql(f: Filters) -> tuple[str, list]:
    """SQL of the withdrawals of ``f`` (a withdrawal right after a grant, of the persons
    and in the period of ``f``), each once, with ``purpose``, ``ts`` and ``applied_at``,
    the moment the loader applied them (module docstring), or NULL."""
    persons, params = _persons(f)
    dates, date_params = f.dates("ts")
    sql = f"""
        SELECT w.purpose, w.ts,
               (SELECT min(sf.loaded_at) FROM source_file sf
                WHERE sf.path = w.source_file AND sf.status = 'loaded' AND sf.loaded_at >= w.ts)
                   AS applied_at
        FROM (
            WITH found AS (
                SELECT d.purpose, d.shared, unnest(d.withdrawals, recursive := true)
                FROM consent_decision d
                WHERE d.withdrawals IS NOT NULL AND {persons})
            SELECT purpose, consent_id, ts, source_file FROM found WHERE NOT shared AND {dates}
            UNION ALL  -- a person of several journeys: each withdrawal once
            SELECT DISTINCT purpose, consent_id, ts, source_file FROM found WHERE shared AND {dates}
        ) w"""
    return sql, [*params, *date_params, *date_params]


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _round(value, places: int = 1) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), places)


# ---------------------------------------------------------------- consent

def _rates_sql(f: Filters) -> tuple[str, list]:
    """SQL of the CTE ``rates``: per purpose, the decided persons of ``f`` (first
    decision in the period), those granted at the end of the period and those who
    refused at their first decision.

    The state at the end is a decision's current state when no end is set or its latest
    event came before the end. The few decisions that changed after the end (``late``)
    have their state at the end read from their events; those were first made in the
    period, so only the period's events are read. Only those few need the person's id
    (a person of one journey has one decision row per purpose): ids are long strings,
    and reading them for every decision of a long period was most of its cost."""
    persons, person_params = _persons(f)
    dates, date_params = f.dates("d.first_ts")
    rows = f"FROM consent_decision d WHERE {persons} AND {dates}"
    rows_params = [*person_params, *date_params]
    decision = "d.purpose, d.first_granted, d.last_ts, d.granted"
    decided = f"""
        decided AS (
            SELECT {decision} {rows} AND NOT d.shared
            UNION ALL  -- a person of several journeys: once (their rows differ only there)
            SELECT {decision} FROM (SELECT DISTINCT d.pid, {decision} {rows} AND d.shared) d)"""
    if f.end is None:
        return f"""{decided},
        rates AS (
            SELECT purpose, count(*) AS decided, count(*) FILTER (WHERE granted) AS granted,
                   count(*) FILTER (WHERE NOT first_granted) AS refused
            FROM decided GROUP BY purpose)""", [*rows_params, *rows_params]
    since, since_params = ("e.ts >= ?", [f.start]) if f.start else ("TRUE", [])
    end = "CAST(? AS DATE) + INTERVAL 1 DAY"
    return f"""{decided},
        late AS MATERIALIZED (
            SELECT DISTINCT d.pid, d.purpose {rows} AND d.last_ts >= {end}),
        late_granted AS (  -- at equal times a withdrawal wins, as in cockpit.derive
            SELECT purpose, count(*) FILTER (WHERE granted) AS granted FROM (
                SELECT e.pid, e.purpose, arg_max(e.granted, (e.ts, NOT e.granted)) AS granted
                FROM consent_event e
                WHERE {since} AND e.ts < {end} AND (e.pid, e.purpose) IN (SELECT pid, purpose FROM late)
                GROUP BY e.pid, e.purpose)
            GROUP BY purpose),
        rates AS (
            SELECT d.purpose, count(*) AS decided,
                   count(*) FILTER (WHERE d.last_ts < {end} AND d.granted)
                       + coalesce(any_value(l.granted), 0) AS granted,
                   count(*) FILTER (WHERE NOT d.first_granted) AS refused
            FROM decided d LEFT JOIN late_granted l USING (purpose)
            GROUP BY d.purpose)""", \
        [*rows_params, *rows_params, *rows_params, f.end, *since_params, f.end, f.end]


def purpose_table(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """One row per purpose (``PURPOSE_ORDER``): decided persons, granted at the end of
    the period, consent rate, refused at first decision, refusal rate, withdrawals in
    the period, those applied, and the median hours to apply them (module docstring).
    Read from ``consent_decision`` (a person's decision per purpose on a row per journey
    of theirs: a person with several counts once)."""
    rates, rates_params = _rates_sql(f)
    withdrawals, w_params = _withdrawals_sql(f)
    sql = f"""
        WITH {rates},
        wd_agg AS (
            SELECT purpose, count(*) AS withdrawals, count(applied_at) AS withdrawals_applied,
                   quantile_cont(epoch(applied_at - ts) / 3600.0, 0.5) AS median_hours_to_apply
            FROM ({withdrawals}) GROUP BY purpose)
        SELECT p.purpose, coalesce(r.decided, 0) AS decided, coalesce(r.granted, 0) AS granted,
               coalesce(r.refused, 0) AS refused, coalesce(w.withdrawals, 0) AS withdrawals,
               coalesce(w.withdrawals_applied, 0) AS withdrawals_applied, w.median_hours_to_apply
        FROM (SELECT unnest(?::VARCHAR[]) AS purpose) p
        LEFT JOIN rates r USING (purpose) LEFT JOIN wd_agg w USING (purpose)
    """
    params = [*rates_params, *w_params, list(PURPOSE_ORDER)]
    rows = con.execute(sql, params).df()
    rows = rows.set_index("purpose").reindex(list(PURPOSE_ORDER)).reset_index()
    out = pd.DataFrame({
        "purpose": rows["purpose"],
        "purpose_name": rows["purpose"].map(PURPOSE_NAMES),
        "decided": rows["decided"].astype("int64"),
        "granted": rows["granted"].astype("int64"),
    })
    out["consent_rate_pct"] = [_rate(g, d) for g, d in zip(out["granted"], out["decided"])]
    out["refused"] = rows["refused"].astype("int64")
    out["refusal_rate_pct"] = [_rate(r, d) for r, d in zip(out["refused"], out["decided"])]
    out["withdrawals"] = rows["withdrawals"].astype("int64")
    out["withdrawals_applied"] = rows["withdrawals_applied"].astype("int64")
    out["median_hours_to_apply"] = [_round(v) for v in rows["median_hours_to_apply"]]
    return out[PURPOSE_COLUMNS]


def weekly_withdrawals(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Withdrawals per week (Monday) and purpose, weeks with at least one, oldest
    first: one column per purpose and their total."""
    withdrawals, params = _withdrawals_sql(f)
    out = con.execute(f"""
        SELECT CAST(date_trunc('week', ts) AS DATE) AS week,
               count(*) FILTER (WHERE purpose = 'contact_research') AS withdrawals_contact_research,
               count(*) FILTER (WHERE purpose = 'tracking') AS withdrawals_tracking,
               count(*) AS withdrawals
        FROM ({withdrawals}) GROUP BY week ORDER BY week""", params).df()
    if out.empty:
        return pd.DataFrame(columns=WEEK_COLUMNS)
    out["week"] = pd.to_datetime(out["week"]).dt.date
    return out.astype({c: "int64" for c in WEEK_COLUMNS[1:]})[WEEK_COLUMNS]


def median_hours_to_apply(con: duckdb.DuckDBPyConnection, f: Filters) -> dict:
    """Over every purpose: withdrawals in the period, those applied, and the median
    hours from withdrawal to application (None without any applied)."""
    withdrawals, params = _withdrawals_sql(f)
    n, applied, median = con.execute(f"""
        SELECT count(*), count(applied_at), quantile_cont(epoch(applied_at - ts) / 3600.0, 0.5)
        FROM ({withdrawals})""", params).fetchone()
    return {"withdrawals": int(n), "applied": int(applied), "median_hours": _round(median)}


# ---------------------------------------------------------------- requests of data subjects

def _request_dates(f: Filters, column: str) -> tuple[str, list]:
    """The date range of ``f`` on ``column``; the scope is checked by ``requests_visible``."""
    return f.where({}, date_column=column) if requests_visible(f) else ("FALSE", [])


def access_requests(con: duckdb.DuckDBPyConnection, f: Filters,
                    now: datetime | None = None) -> pd.DataFrame:
    """Access requests (GDPR Art. 15) received in the period: one row each, open ones
    first (oldest first), then completed (latest first). ``age_days``: completed -
    received, or ``now`` - received while open, in days (1 decimal); ``over_30_days``
    flags an age over ``LIMIT_DAYS`` days. Empty when ``requests_visible`` is false.
    No subject is shown; ``request_id`` is text (a label, not a count of anything)."""
    where, params = _request_dates(f, "received_at")
    out = con.execute(f"""
        SELECT CAST(r.request_id AS VARCHAR) AS request_id, received_at, completed_at,
               CASE WHEN completed_at IS NULL THEN 'open' ELSE 'completed' END AS status,
               round(epoch(coalesce(completed_at, CAST(? AS TIMESTAMP)) - received_at) / 86400.0, 1)
                   AS age_days,
               coalesce(completed_at, CAST(? AS TIMESTAMP)) - received_at > INTERVAL {LIMIT_DAYS} DAY
                   AS over_30_days,
               handled_by
        FROM subject_request r WHERE kind = 'access' AND {where}
        ORDER BY completed_at IS NULL DESC,
                 CASE WHEN completed_at IS NULL THEN received_at END ASC,
                 received_at DESC, r.request_id""", [_now(now), _now(now), *params]).df()
    if out.empty:
        return pd.DataFrame(columns=ACCESS_COLUMNS)
    return out.astype({"over_30_days": bool})[ACCESS_COLUMNS]


def erasure_requests(con: duckdb.DuckDBPyConnection, f: Filters,
                     now: datetime | None = None) -> pd.DataFrame:
    """Erasure requests of the ledger requested in the period, one row each (no
    subject), open first: ``days_to_complete`` (completed ones), ``age_days`` (as for
    access requests) and ``over_30_days``. Empty when ``requests_visible`` is false."""
    where, params = _request_dates(f, "requested_at")
    out = con.execute(f"""
        SELECT requested_at, completed_at,
               CASE WHEN completed_at IS NULL THEN 'open' ELSE 'completed' END AS status,
               round(epoch(completed_at - requested_at) / 86400.0, 1) AS days_to_complete,
               round(epoch(coalesce(completed_at, CAST(? AS TIMESTAMP)) - requested_at) / 86400.0, 1)
                   AS age_days,
               coalesce(completed_at, CAST(? AS TIMESTAMP)) - requested_at > INTERVAL {LIMIT_DAYS} DAY
                   AS over_30_days
        FROM erasure_ledger WHERE {where}
        ORDER BY completed_at IS NULL DESC, requested_at""", [_now(now), _now(now), *params]).df()
    if out.empty:
        return pd.DataFrame(columns=ERASURE_COLUMNS)
    return out.astype({"over_30_days": bool})[ERASURE_COLUMNS]


def erasure_summary(con: duckdb.DuckDBPyConnection, f: Filters) -> dict | None:
    """Erasures requested in the period: ``requested``, ``completed``, ``open`` and
    ``median_days`` from request to completion over those completed (None without
    any). None when ``requests_visible`` is false."""
    if not requests_visible(f):
        return None
    where, params = _request_dates(f, "requested_at")
    n, done, median = con.execute(
        f"""SELECT count(*), count(completed_at),
                   quantile_cont(epoch(completed_at - requested_at) / 86400.0, 0.5)
            FROM erasure_ledger WHERE {where}""", params).fetchone()
    return {"requested": int(n), "completed": int(done), "open": int(n) - int(done),
            "median_days": _round(median)}


def access_summary(con: duckdb.DuckDBPyConnection, f: Filters,
                   now: datetime | None = None) -> dict | None:
    """Access requests received in the period: ``received``, ``open``, and
    ``over_30_days`` (see ``access_requests``). None when ``requests_visible`` is false."""
    if not requests_visible(f):
        return None
    where, params = _request_dates(f, "received_at")
    n, still_open, late = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE completed_at IS NULL),
                   count(*) FILTER (WHERE coalesce(completed_at, CAST(? AS TIMESTAMP)) - received_at
                                          > INTERVAL {LIMIT_DAYS} DAY)
            FROM subject_request WHERE kind = 'access' AND {where}""", [_now(now), *params]).fetchone()
    return {"received": int(n), "open": int(still_open), "over_30_days": int(late)}


# ---------------------------------------------------------------- the page's cards

def summary(con: duckdb.DuckDBPyConnection, f: Filters, now: datetime | None = None,
            purposes: pd.DataFrame | None = None) -> dict:
    """The cards: consent and refusal rates per purpose (``purpose_table``, or
    ``purposes`` when the caller has it already), withdrawals in the period with the
    median hours to apply them, the median days to complete an erasure and the access
    requests over 30 days (None each when ``requests_visible`` is false)."""
    purposes = (purpose_table(con, f) if purposes is None else purposes).set_index("purpose")
    applied = median_hours_to_apply(con, f)
    erasures = erasure_summary(con, f)
    access = access_summary(con, f, now)
    return {
        "consent_rate_research": _round(purposes.loc["contact_research", "consent_rate_pct"]),
        "refusal_rate_research": _round(purposes.loc["contact_research", "refusal_rate_pct"]),
        "consent_rate_tracking": _round(purposes.loc["tracking", "consent_rate_pct"]),
        "refusal_rate_tracking": _round(purposes.loc["tracking", "refusal_rate_pct"]),
        "withdrawals": applied["withdrawals"],
        "withdrawals_applied": applied["applied"],
        "median_hours_to_apply": applied["median_hours"],
        "requests_visible": requests_visible(f),
        "erasures": erasures,
        "median_days_to_erase": erasures["median_days"] if erasures else None,
        "access": access,
        "access_over_30_days": access["over_30_days"] if access else None,
    }
