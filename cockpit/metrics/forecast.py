"""Inputs and results of the recruitment forecast per study, from the store.

Definitions (same month and activity rules as the Sites page, cockpit/metrics/sites.py):
- as of: the latest day with a funnel event (``last_day``); the forecast starts there.
- Active site: activation date on or before that day. Its exposure tau_i = (days
  from activation to the latest day, both included) / 30.4375 months; its count k_i =
  persons randomized at the site from activation to the latest day.
- Decline check: k_i split at the middle of the site's exposure (activation +
  exposure days / 2) into first-half and second-half counts.
- Planned site: not active (no activation date, or one after the latest day), with
  the months from the latest day to its planned activation (activation date if known,
  else planned activation); a site with neither is left out, with a warning.
- Randomized so far: every randomized person of the study (the study's progress).
- Months to the planned end: days from the latest day to the planned end / 30.4375.
"""
from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd

from cockpit.analytics.forecast import DEFAULT_SEED, DEFAULT_SIMS, forecast
from cockpit.metrics.funnel import last_day
from cockpit.metrics.sites import DAYS_PER_MONTH


class UnknownStudyError(LookupError):
    """The study is not in the store."""


class NoDataError(LookupError):
    """The store holds no funnel events yet: there is no 'now' to forecast from."""


def study_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every study in the store, sorted."""
    return [r[0] for r in con.execute("SELECT study_id FROM study ORDER BY study_id").fetchall()]


def study_row(con: duckdb.DuckDBPyConnection, study_id: str) -> dict:
    """Target, start, planned end and randomized so far of one study."""
    row = con.execute(
        """SELECT st.study_id, st.target_randomized, st.start_date, st.planned_end,
                  (SELECT count(*) FROM journey j WHERE j.study_id = st.study_id
                     AND j.randomized_ts IS NOT NULL) AS randomized
           FROM study st WHERE st.study_id = ?""", [study_id]).fetchone()
    if row is None:
        raise UnknownStudyError(f"unknown study {study_id!r}")
    keys = ("study_id", "target", "start_date", "planned_end", "randomized")
    return dict(zip(keys, row))


def site_exposure(con: duckdb.DuckDBPyConnection, study_id: str, as_of: date) -> pd.DataFrame:
    """One row per site of the study: ``active``, ``exposure_months`` and
    ``randomized`` (active sites; since activation, up to ``as_of``),
    ``first_half`` / ``second_half`` counts, and ``start_in_months`` (planned sites:
    months from ``as_of`` to the expected activation; None when unknown)."""
    return con.execute(
        f"""
        WITH s AS (
            SELECT site_id, activation_date, planned_activation,
                   coalesce(activation_date <= CAST(? AS DATE), FALSE) AS active,
                   date_diff('day', activation_date, CAST(? AS DATE)) + 1 AS days
            FROM site WHERE study_id = ?),
        r AS (
            SELECT s.site_id,
                   count(j.randomized_ts) AS randomized,
                   count(j.randomized_ts) FILTER (WHERE j.randomized_ts
                       < s.activation_date + to_microseconds(CAST(s.days * 86400e6 / 2 AS BIGINT)))
                       AS first_half
            FROM s JOIN journey j ON j.site_id = s.site_id AND j.study_id = ?
            WHERE s.active AND j.randomized_ts >= s.activation_date
              AND CAST(j.randomized_ts AS DATE) <= CAST(? AS DATE)
            GROUP BY s.site_id)
        SELECT s.site_id, s.active,
               CASE WHEN s.active THEN s.days / {DAYS_PER_MONTH} END AS exposure_months,
               coalesce(r.randomized, 0) AS randomized,
               coalesce(r.first_half, 0) AS first_half,
               coalesce(r.randomized, 0) - coalesce(r.first_half, 0) AS second_half,
               CASE WHEN NOT s.active THEN date_diff('day', CAST(? AS DATE),
                        coalesce(s.activation_date, s.planned_activation)) / {DAYS_PER_MONTH}
                    END AS start_in_months
        FROM s LEFT JOIN r USING (site_id) ORDER BY s.site_id
        """, [as_of, as_of, study_id, study_id, as_of, as_of]).df()


def forecast_inputs(con: duckdb.DuckDBPyConnection, study_id: str) -> dict:
    """Everything the forecast of one study needs, read from the store (module
    docstring): the study row, ``as_of``, ``months_to_end``, the site table and the
    sites left out for want of a planned activation."""
    study = study_row(con, study_id)
    as_of = last_day(con)
    if as_of is None:
        raise NoDataError("the store holds no funnel events yet: nothing to forecast from")
    sites = site_exposure(con, study_id, as_of)
    unplaced = sites[~sites["active"] & sites["start_in_months"].isna()]["site_id"].tolist()
    return {**study, "as_of": as_of,
            "months_to_end": (study["planned_end"] - as_of).days / DAYS_PER_MONTH,
            "sites": sites, "unplaced_sites": unplaced}


def _day(as_of: date, months: float | None) -> str | None:
    """The calendar day ``months`` after ``as_of`` (ISO), None for None."""
    if months is None:
        return None
    return (as_of + timedelta(days=round(months * DAYS_PER_MONTH))).isoformat()


def study_forecast(con: duckdb.DuckDBPyConnection, study_id: str, n_sims: int = DEFAULT_SIMS,
                   seed: int = DEFAULT_SEED) -> dict:
    """The Poisson-Gamma forecast of one study (cockpit.analytics.forecast.forecast)
    with months turned into dates: ``target_date`` (median and 80% / 95% limits of the
    day the target is reached), ``curve`` rows with their ``date``; plus the inputs'
    summary (``as_of``, ``active_sites``, ``planned_end``)."""
    inp = forecast_inputs(con, study_id)
    sites = inp["sites"]
    active = sites[sites["active"]]
    planned = sites[~sites["active"] & sites["start_in_months"].notna()]
    res = forecast(active["randomized"].to_numpy(), active["exposure_months"].to_numpy(dtype=float),
                   planned["start_in_months"].to_numpy(dtype=float), int(inp["randomized"]),
                   int(inp["target"]), inp["months_to_end"],
                   first_half=active["first_half"].to_numpy(), second_half=active["second_half"].to_numpy(),
                   n_sims=n_sims, seed=seed)
    as_of = inp["as_of"]
    if inp["unplaced_sites"]:
        res["warnings"].append(f"Left out, no activation planned: {', '.join(inp['unplaced_sites'])}.")
    res["target_date"] = {name: _day(as_of, m) for name, m in res["months_to_target"].items()}
    for row in res["curve"]:
        row["date"] = _day(as_of, row["month"])
    return {"study_id": study_id, "as_of": as_of.isoformat(),
            "planned_end": inp["planned_end"].isoformat(), "active_sites": int(len(active)),
            **res}
