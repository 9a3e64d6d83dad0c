"""Numbers of the Sites page: which sites enrol at the pace the study needs, which
never enrolled, which are slow to call their leads back, where screening fails.

Definitions (DESIGN.md, "Enrolment rate"):
- A site is active from its activation date; it is *non-enrolling* when it is active
  and nobody has been randomized there since its activation (all dates, all channels
  and segments: the flag is about the site, not about the filter).
- Enrolment rate: persons randomized at the site in the period / active site-months
  in the period (days from activation, or the period's start if later, to the
  latest day with data, or the period's end if earlier, both days included, over
  30.4375 days a month).
- The pace the target needs, per study, two ways:
  * planned pace = target randomized / (sites of the study x planned months from
    study start to planned end): the rate every site had to keep from day one;
  * needed pace = (target - randomized so far) / (active sites x months left until
    the planned end): the rate every active site must keep from now on. This is the
    yardstick of the ranking, because it accounts for what is already done.
- Responsiveness: of the period's leads at the site that needed a call (pre-screen
  eligible or any later stage), working days (Monday to Friday; public holidays are
  not known) from the lead's date to the date of first contact by the site.
"""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from cockpit.filters import Filters
from cockpit.metrics.counts import JOURNEY_COLUMNS
from cockpit.metrics.funnel import last_day, reached_sql

DAYS_PER_MONTH = 30.4375  # 365.25 / 12
CONTACT_STANDARD_WORKING_DAYS = 2
# a site is flagged slow only on enough contacts to judge (demo choice, stated on page)
MIN_CONTACTS_TO_JUDGE = 5

SITE_COLUMNS = {"study": "s.study_id", "site": "s.site_id"}

TABLE_COLUMNS = [  # what a manager reads first comes first
    "rank", "site_name", "site_id", "study_id", "status", "randomized_per_site_month",
    "pct_of_needed_pace", "needed_pace", "planned_pace", "randomized", "site_months",
    "median_working_days_to_contact", "pct_contacted_within_2wd", "waiting_for_contact",
    "screen_fail_rate", "screened", "screen_failed", "leads", "to_contact",
    "randomized_since_activation", "non_enrolling", "slow_contact", "activation_date",
    "months_active", "country",
]


def working_days_sql(start: str, end: str) -> str:
    """SQL for the number of Monday-to-Friday days in [start, end) of two DATE
    expressions (numpy ``busday_count`` without holidays; 0 when end <= start).

    Whole weeks give 5 each; the remaining r < 7 days starting on weekday d
    (0 = Monday) hold max(0, min(d + r, 5) - d) weekdays in the first week and
    max(0, d + r - 7) in the next.
    """
    n = f"greatest(date_diff('day', {start}, {end}), 0)"
    d = f"(isodow({start}) - 1)"
    r = f"({n} % 7)"
    return (f"(5 * ({n} // 7) + greatest(0, least({d} + {r}, 5) - {d}) "
            f"+ greatest(0, {d} + {r} - 7))")


def _pace_sql(f: Filters) -> tuple[str, list]:
    """Per study: planned pace and needed pace (see module docstring), as the body of
    a CTE over ``p`` (the latest day with data); the study filter and the viewer's
    scope apply to it as to a query of its own."""
    where, params = f.where({"study": "st.study_id"})
    return f"""
        SELECT st.study_id,
               st.target_randomized / nullif(s.n_sites * date_diff('day', st.start_date, st.planned_end)
                                             / {DAYS_PER_MONTH}, 0) AS planned_pace,
               CASE WHEN date_diff('day', p.last_day, st.planned_end) > 0 AND s.active_sites > 0
                    THEN greatest(st.target_randomized - coalesce(d.randomized_to_date, 0), 0)
                         / (s.active_sites * date_diff('day', p.last_day, st.planned_end) / {DAYS_PER_MONTH})
               END AS needed_pace
        FROM study st
        LEFT JOIN (SELECT study_id, count(*) AS n_sites,
                          count(*) FILTER (WHERE activation_date <= (SELECT last_day FROM p)) AS active_sites
                   FROM site GROUP BY study_id) s USING (study_id)
        LEFT JOIN (SELECT study_id, count(*) AS randomized_to_date FROM journey
                   WHERE randomized_ts IS NOT NULL GROUP BY study_id) d USING (study_id),
             p
        WHERE {where}""", params


def _site_rows(con: duckdb.DuckDBPyConnection, f: Filters, end) -> pd.DataFrame:
    """Per site: activation, site-months in the period, randomized (period and since
    activation), contact times, screening and its study's paces, each aggregated in
    DuckDB, in one query."""
    site_where, site_params = f.where(SITE_COLUMNS)
    rand_where, rand_params = f.where(JOURNEY_COLUMNS, date_column="randomized_ts")
    lead_where, lead_params = f.where(JOURNEY_COLUMNS, date_column="lead_ts")
    screen_date = "coalesce(screened_ts, screen_failed_ts)"
    screen_where, screen_params = f.where(JOURNEY_COLUMNS, date_column=screen_date)
    pace_sql, pace_params = _pace_sql(f)
    needs_call = reached_sql()["eligible"]
    lead_day, contact_day = "CAST(lead_ts AS DATE)", "CAST(contacted_ts AS DATE)"
    wd = working_days_sql(lead_day, contact_day)
    wd_open = working_days_sql(lead_day, "p.last_day")
    # a lead who withdrew consent to be contacted is no longer waiting for a call
    closed = ("coalesce(contacted_ts, not_reachable_ts, declined_ts, consented_ts, screened_ts, "
              "screen_failed_ts, randomized_ts, withdrawn_ts, consent_withdrawn_ts)")
    # p: the latest day with data and the period, bound once and joined where needed
    sql = f"""
        WITH p AS (SELECT CAST(? AS DATE) AS last_day, CAST(? AS DATE) AS p_start,
                          CAST(? AS DATE) AS p_end),
        sites AS (
            SELECT s.site_id, s.name AS site_name, s.study_id, s.country, s.activation_date,
                   coalesce(s.activation_date <= p.last_day, FALSE) AS active,
                   greatest(s.activation_date, coalesce(p.p_start, s.activation_date)) AS w_start,
                   least(p.last_day, coalesce(p.p_end, p.last_day)) AS w_end,
                   p.last_day
            FROM site s, p WHERE {site_where}),
        rand AS (
            SELECT site_id, count(*) AS randomized FROM journey
            WHERE randomized_ts IS NOT NULL AND {rand_where} GROUP BY site_id),
        ever AS (
            SELECT j.site_id, count(*) AS randomized_since_activation
            FROM journey j JOIN site s USING (site_id)
            WHERE j.randomized_ts >= s.activation_date GROUP BY j.site_id),
        lead_rows AS (  -- the period's leads, each expression worked out once
            SELECT site_id, {needs_call} AS needs_call, contacted_ts IS NOT NULL AS reached,
                   {wd} AS wd, {wd_open} >= {CONTACT_STANDARD_WORKING_DAYS} AS due,
                   {closed} IS NULL AS still_open
            FROM journey, p WHERE {lead_where}),
        calls AS (
            SELECT site_id, count(*) AS leads,
                   count(*) FILTER (WHERE needs_call) AS to_contact,
                   quantile_cont(wd, 0.5) FILTER (WHERE needs_call AND reached)
                       AS median_working_days_to_contact,
                   count(*) FILTER (WHERE needs_call AND reached) AS contacted,
                   count(*) FILTER (WHERE needs_call AND due) AS due,
                   count(*) FILTER (WHERE needs_call AND due AND reached
                                    AND wd <= {CONTACT_STANDARD_WORKING_DAYS}) AS within,
                   count(*) FILTER (WHERE needs_call AND still_open) AS waiting_for_contact
            FROM lead_rows GROUP BY site_id),
        screening AS (
            SELECT site_id, count(*) AS screened,
                   count(*) FILTER (WHERE screen_failed_ts IS NOT NULL) AS screen_failed
            FROM journey WHERE {screen_date} IS NOT NULL AND {screen_where} GROUP BY site_id),
        pace AS ({pace_sql})
        SELECT s.* EXCLUDE (last_day),
               CASE WHEN s.active THEN (date_diff('day', s.activation_date, s.last_day) + 1)
                    / {DAYS_PER_MONTH} END AS months_active,
               CASE WHEN s.active THEN greatest(date_diff('day', s.w_start, s.w_end) + 1, 0)
                    / {DAYS_PER_MONTH} END AS site_months,
               coalesce(r.randomized, 0) AS randomized,
               coalesce(e.randomized_since_activation, 0) AS randomized_since_activation,
               coalesce(c.leads, 0) AS leads, coalesce(c.to_contact, 0) AS to_contact,
               c.median_working_days_to_contact, coalesce(c.contacted, 0) AS contacted,
               coalesce(c.due, 0) AS due, coalesce(c.within, 0) AS within,
               coalesce(c.waiting_for_contact, 0) AS waiting_for_contact,
               coalesce(x.screened, 0) AS screened, coalesce(x.screen_failed, 0) AS screen_failed,
               pace.planned_pace, pace.needed_pace
        FROM sites s
        LEFT JOIN rand r USING (site_id) LEFT JOIN ever e USING (site_id)
        LEFT JOIN calls c USING (site_id) LEFT JOIN screening x USING (site_id)
        LEFT JOIN pace ON pace.study_id = s.study_id
    """
    # bound in the order the markers appear: p, then each filter fragment
    params = [end, f.start, f.end, *site_params, *rand_params, *lead_params, *screen_params, *pace_params]
    return con.execute(sql, params).df()


def site_table(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """One row per site of the filtered studies and sites, ranked by enrolment rate.

    Columns (channel and segment filters restrict the persons counted; the date filter
    sets the period):
    - ``months_active``: months from activation to the latest day with data;
      ``site_months``: active months within the period;
    - ``randomized``: randomized at the site in the period;
      ``randomized_per_site_month`` = randomized / site_months;
    - ``needed_pace``, ``planned_pace``: the study's paces (module docstring);
      ``pct_of_needed_pace`` = rate / needed pace x 100;
    - ``randomized_since_activation`` and ``non_enrolling`` (all data);
    - ``leads``: leads of the period at the site; ``to_contact``: those that needed a
      call; ``median_working_days_to_contact``: median (``quantile_cont``) over those
      contacted; ``pct_contacted_within_2wd``: contacted within 2 working days of the
      lead / leads that needed a call and are at least 2 working days old;
      ``waiting_for_contact``: needed a call, no contact nor outcome yet, and the
      consent to be contacted not withdrawn;
      ``slow_contact``: median above 2 working days on at least 5 contacts;
    - ``screened``: screening visits in the period; ``screen_fail_rate`` = screen
      failed / screened x 100;
    - ``rank``: 1 = highest randomized per site-month among active sites (ties: more
      randomized first); sites not yet active have no rank and come last.
    """
    end = last_day(con)
    if end is None:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    return _finish(_site_rows(con, f, end))


def _finish(t: pd.DataFrame) -> pd.DataFrame:
    """Rates, flags, status and rank, computed on the per-site rows (a few dozen: plain
    lists are far quicker here than pandas operations)."""
    col = {name: t[name].tolist() for name in (
        "site_id", "randomized", "site_months", "needed_pace", "randomized_since_activation",
        "contacted", "within", "due", "screened", "screen_failed")}
    active = t["active"].astype(bool).tolist()
    rate = [r / m if a and m and m > 0 else None
            for r, m, a in zip(col["randomized"], col["site_months"], active)]
    per_site_month = [None if r is None else round(r, 2) for r in rate]
    median = t["median_working_days_to_contact"].to_numpy(dtype=float)
    derived = {
        "randomized_per_site_month": per_site_month,
        "pct_of_needed_pace": [round(100.0 * r / p) if r is not None and p and p > 0 else None
                               for r, p in zip(rate, col["needed_pace"])],
        "non_enrolling": np.array([a and n == 0 for a, n in zip(active, col["randomized_since_activation"])],
                                  dtype=bool),
        # a missing median is no slow contact
        "slow_contact": (t["contacted"].to_numpy() >= MIN_CONTACTS_TO_JUDGE) & (median > CONTACT_STANDARD_WORKING_DAYS),
        "pct_contacted_within_2wd": [round(100.0 * w / d, 1) if d else None for w, d in zip(col["within"], col["due"])],
        "screen_fail_rate": [round(100.0 * x / n, 1) if n else None
                             for x, n in zip(col["screen_failed"], col["screened"])],
    }
    derived["status"] = [_status(a, n, slow) for a, n, slow in
                         zip(active, derived["non_enrolling"].tolist(), derived["slow_contact"].tolist())]
    for name in ("months_active", "site_months", "median_working_days_to_contact"):
        derived[name] = t[name].to_numpy(dtype=float).round(1)
    for name in ("planned_pace", "needed_pace"):
        derived[name] = t[name].to_numpy(dtype=float).round(2)
    order = _ranked(active, per_site_month, col["randomized"], col["site_id"])
    rank = pd.array([i + 1 if active[o] else None for i, o in enumerate(order)], dtype="Int64")
    frame = {}
    for name in TABLE_COLUMNS:
        if name == "rank":
            frame[name] = rank
        elif name == "activation_date":
            frame[name] = pd.to_datetime(t[name].take(order)).dt.date.array
        elif name in derived:
            frame[name] = _take(derived[name], order)
        else:  # a column of the query, of the type it came with
            frame[name] = t[name].array.take(order)
    return pd.DataFrame(frame)


def _take(values: list | np.ndarray, order: list[int]) -> list | np.ndarray:
    """``values`` in ``order``; a list stays a list, so that the frame infers its type
    (floats with None become NaN, all None stays None) as when it was assigned."""
    if isinstance(values, np.ndarray):
        return values[order]
    return [values[i] for i in order]


def _status(active: bool, non_enrolling: bool, slow: bool) -> str:
    if not active:
        return "not yet active"
    flags = [text for on, text in ((non_enrolling, "non-enrolling"), (slow, "slow contact")) if on]
    return ", ".join(flags) or "ok"


def _ranked(active: list[bool], rate: list[float | None], randomized: list[int], site_ids: list[str]) -> list[int]:
    """Row positions by rank: active sites first, then the highest randomized per
    site-month (none counts as -1), then more randomized, then site id."""
    return sorted(range(len(active)), key=lambda i: (
        not active[i], -(-1.0 if rate[i] is None else rate[i]), -randomized[i], site_ids[i]))


def summary(table: pd.DataFrame) -> dict:
    """Headline numbers of a ``site_table``: active sites, non-enrolling and
    slow-contact sites, the enrolment rate of all active sites together (randomized /
    site-months, both summed) and how many active sites keep their study's needed pace."""
    active = np.array([status != "not yet active" for status in table["status"].tolist()], dtype=bool)
    months = table["site_months"].to_numpy(dtype=float)[active]
    site_months = float(np.where(np.isnan(months), 0.0, months).sum())
    randomized = int(table["randomized"].to_numpy(dtype="int64")[active].sum())
    pct = table["pct_of_needed_pace"].to_numpy(dtype=float)[active]
    with np.errstate(invalid="ignore"):  # a site without a needed pace is not on it
        on_pace = int((pct >= 100).sum())
    return {
        "active_sites": int(active.sum()),
        "non_enrolling": int(table["non_enrolling"].to_numpy(dtype=bool)[active].sum()),
        "slow_contact": int(table["slow_contact"].to_numpy(dtype=bool)[active].sum()),
        "randomized": randomized,
        "site_months": round(site_months, 1),
        "randomized_per_site_month": round(randomized / site_months, 2) if site_months > 0 else None,
        "on_needed_pace": on_pace,
        "with_needed_pace": int((~np.isnan(pct)).sum()),
    }
