"""Weekly data of the mix model and the Budget page, aggregated in DuckDB, and the
fitted models kept in a small in-process cache.

One row per week (weeks start on Monday): spend per channel (platform spend plus
offline costs, ``spend_daily``), leads (on their lead week), randomized (on their
randomization week), active sites and the site capacity open that week, for one study
or summed over the studies of the filter (portfolio).

The filter's study and phase choose the studies and its dates the weeks. Spend is
recorded per study and channel and the model needs every channel's spend, so site,
segment and channel filters are not applied (``ignored_filters`` names them). Weeks
run from the first week with a lead to the last complete week (a week whose Sunday is
on or before the latest day with data).

The control of the fit is the site capacity open each week (``_site_capacity``): leads
grow as sites open, and so does spend planned per active site, so without it the
channels would take the credit for the ramp-up. Offline costs booked on the first or
last day of a month (monthly fees) are spread over their month (``_weekly_spend``).

The Budget page fits the model on weekly leads. Randomized patients are a few per week
(about two in the demo portfolio), too few for a per-channel curve: fitted on them
directly, chance correlations decide (R2 ~0.6, a small channel credited with a quarter
of all patients). So randomized are predicted through leads: each channel's leads turn
into randomized patients at that channel's own rate (randomized per lead of the leads
created in the fitted weeks, the lead's channel being its last consented touch), and
the baseline's leads at the rate of the remaining leads. The command line fits any
outcome column directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from cockpit.analytics import mix as mixmodel
from cockpit.analytics import optimise as opt
from cockpit.cache import LRU
from cockpit.filters import Filters
from cockpit.store import data_version

OUTCOMES = {"randomized": "randomized patients", "leads": "leads"}
FIT_OUTCOME = "leads"
CONTROLS = ("site_capacity",)
CACHE_SIZE = 256  # fits: about 70 KB each; the warm-up keeps one per study still spending
DEFAULT_BOOT = 60


def ignored_filters(f: Filters) -> list[str]:
    """Filter dimensions the mix model does not apply (it needs every channel's spend
    of the chosen studies)."""
    return [d for d in ("site", "segment", "channel") if getattr(f, d)]


def _studies(con: duckdb.DuckDBPyConnection, f: Filters) -> list[str]:
    where, params = f.where({"study": "study_id", "phase": "phase"})
    return [r[0] for r in con.execute(f"SELECT study_id FROM study WHERE {where} ORDER BY 1", params).fetchall()]


def latest_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest day with spend or a funnel event."""
    return con.execute(
        "SELECT greatest((SELECT max(day) FROM spend_daily), (SELECT CAST(max(ts) AS DATE) FROM funnel_event))"
    ).fetchone()[0]


def spending_studies(con: duckdb.DuckDBPyConnection, limit: int) -> list[str]:
    """Up to ``limit`` studies with spend in the ``CURRENT_WEEKS`` weeks up to the latest
    day with data, most spend first: the budgets still being moved, whose models the
    scheduler computes ahead."""
    last = latest_day(con)
    if last is None:
        return []
    rows = con.execute(
        """SELECT study_id FROM spend_daily WHERE day > CAST(? AS DATE) - ?
           GROUP BY study_id HAVING sum(spend) > 0 ORDER BY sum(spend) DESC, study_id LIMIT ?""",
        [last, 7 * mixmodel.CURRENT_WEEKS, limit],
    ).fetchall()
    return [r[0] for r in rows]


def channel_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT channel_id, name FROM channel").fetchall())


def weekly(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """Columns ``week``, ``leads``, ``randomized``, ``active_sites``, ``site_capacity``
    and one spend column per channel with spend (named by channel id; listed in
    ``attrs['channels']``)."""
    studies = _studies(con, f)
    last = latest_day(con)
    empty = pd.DataFrame(columns=["week", "leads", "randomized", "active_sites", "site_capacity"])
    empty.attrs["channels"] = []
    if not studies or last is None:
        return empty
    marks = ", ".join("?" for _ in studies)
    spent = _weekly_spend(con, f, studies)
    events = []
    for name, col in (("leads", "lead_ts"), ("randomized", "randomized_ts")):
        where, params = f.without("site", "segment", "channel").where({"study": "study_id"}, date_column=col)
        events.append(con.execute(
            f"""SELECT CAST(date_trunc('week', {col}) AS DATE) AS week, '{name}' AS stage, count(*) AS n
                FROM journey WHERE {col} IS NOT NULL AND study_id IN ({marks}) AND {where}
                GROUP BY ALL""",
            studies + params,
        ).df())
    counts = pd.concat(events, ignore_index=True)
    leads_weeks = counts.loc[counts["stage"] == "leads", "week"]
    first = leads_weeks.min() if len(leads_weeks) else None
    if first is None or pd.isna(first):
        return empty
    end = last if last.weekday() == 6 else last - timedelta(days=last.weekday() + 1)
    if f.end:
        end = min(end, f.end)
    weeks = pd.date_range(pd.Timestamp(first), pd.Timestamp(end), freq="W-MON")
    if f.start:
        weeks = weeks[weeks >= pd.Timestamp(f.start)]
    # weeks must be whole: a date filter starting mid-week drops that week
    weeks = weeks[weeks + pd.Timedelta(days=6) <= pd.Timestamp(end)]
    frame = pd.DataFrame({"week": weeks})
    for name in OUTCOMES:
        mine = counts[counts["stage"] == name]
        series = pd.Series(mine["n"].to_numpy(), index=pd.to_datetime(mine["week"]))
        frame[name] = series.reindex(weeks, fill_value=0).to_numpy().astype("int64")
    frame["active_sites"] = _active_sites(con, studies, weeks)
    frame["site_capacity"] = _site_capacity(con, studies, weeks, last)
    wide = spent.pivot_table(index="week", columns="channel_id", values="spend", aggfunc="sum", fill_value=0.0)
    wide.index = pd.to_datetime(wide.index)
    wide = wide.reindex(weeks, fill_value=0.0)
    channels = [c for c in sorted(wide.columns) if wide[c].sum() > 0]
    for c in channels:
        frame[c] = wide[c].to_numpy(float).round(2)
    frame["week"] = frame["week"].dt.date
    frame.attrs["channels"] = channels
    return frame


def _weekly_spend(con: duckdb.DuckDBPyConnection, f: Filters, studies: list[str]) -> pd.DataFrame:
    """Spend per week and channel. Offline costs booked on the first or last day of a
    month are monthly fees (sponsorships, liaison, referral fees, distribution): they are
    spread evenly over the days of their month, so that a fee paid for a month does not
    look like a one-week burst of spend. Other costs stay on their day."""
    marks = ", ".join("?" for _ in studies)
    where, params = f.dates("day")  # the studies are the viewer's already
    return con.execute(
        f"""WITH items AS (
                SELECT day, channel_id, spend,
                       source = 'offline' AND (day = CAST(date_trunc('month', day) AS DATE)
                                               OR day = last_day(day)) AS monthly
                FROM spend_daily WHERE study_id IN ({marks})
            ),
            daily AS (
                SELECT day, channel_id, spend FROM items WHERE NOT monthly
                UNION ALL
                SELECT CAST(g.d AS DATE) AS day, channel_id,
                       spend / (date_diff('day', CAST(date_trunc('month', day) AS DATE), last_day(day)) + 1)
                FROM items, unnest(generate_series(CAST(date_trunc('month', day) AS TIMESTAMP),
                                                   CAST(last_day(day) AS TIMESTAMP), INTERVAL 1 DAY)) AS g(d)
                WHERE monthly
            )
            SELECT CAST(date_trunc('week', day) AS DATE) AS week, channel_id, sum(spend) AS spend
            FROM daily WHERE {where} GROUP BY ALL""",
        studies + params,
    ).df()


def _active_sites(con: duckdb.DuckDBPyConnection, studies: list[str], weeks: pd.DatetimeIndex) -> np.ndarray:
    marks = ", ".join("?" for _ in studies)
    act = con.execute(
        f"SELECT activation_date FROM site WHERE activation_date IS NOT NULL AND study_id IN ({marks})",
        studies,
    ).df()["activation_date"]
    act = pd.to_datetime(act).to_numpy()
    week_end = (weeks + pd.Timedelta(days=6)).to_numpy()
    return (act[None, :] <= week_end[:, None]).sum(axis=1).astype("int64")


def _site_capacity(con: duckdb.DuckDBPyConnection, studies: list[str], weeks: pd.DatetimeIndex,
                   last: date) -> np.ndarray:
    """Recruitment capacity open in each week: the sum over sites activated by the end of
    the week of the site's leads per active week (over its whole history). Sites differ a
    lot in how many patients they reach, so this follows the ramp-up of a study better
    than the count of active sites."""
    marks = ", ".join("?" for _ in studies)
    # a matched journey is counted by its lead time, never NULL: its pid, a long string,
    # took twice as long to read
    sites = con.execute(
        f"""SELECT s.activation_date AS act,
                   count(j.lead_ts) / greatest(date_diff('day', s.activation_date, ?::DATE) / 7.0, 1.0) AS rate
            FROM site s LEFT JOIN journey j ON j.site_id = s.site_id AND j.lead_ts >= s.activation_date
            WHERE s.activation_date IS NOT NULL AND s.study_id IN ({marks})
            GROUP BY s.site_id, s.activation_date""",
        [last] + studies,
    ).df()
    act = pd.to_datetime(sites["act"]).to_numpy()
    week_end = (weeks + pd.Timedelta(days=6)).to_numpy()
    return ((act[None, :] <= week_end[:, None]) * sites["rate"].to_numpy(float)[None, :]).sum(axis=1).round(3)


@dataclass(frozen=True)
class StudyStatus:
    """Progress of one study towards its target, for the target-date what-if."""

    study_id: str
    target: int
    randomized_to_date: int
    as_of: date


def study_status(con: duckdb.DuckDBPyConnection, f: Filters, frame: pd.DataFrame) -> StudyStatus | None:
    """The chosen study's target and randomized so far (None unless exactly one study)."""
    studies = _studies(con, f)
    if len(studies) != 1 or frame.empty:
        return None
    study = studies[0]
    target = con.execute("SELECT target_randomized FROM study WHERE study_id = ?", [study]).fetchone()[0]
    done = con.execute(
        "SELECT count(*) FROM journey WHERE study_id = ? AND randomized_ts IS NOT NULL", [study]
    ).fetchone()[0]
    return StudyStatus(study, int(target), int(done), frame["week"].iloc[-1] + timedelta(days=6))


def channel_yields(con: duckdb.DuckDBPyConnection, f: Filters, frame: pd.DataFrame) -> pd.DataFrame:
    """Leads created in the frame's weeks per channel (their last consented touch;
    'unattributed' without one) and how many of them were randomized so far."""
    studies = _studies(con, f)
    if not studies or frame.empty:
        return pd.DataFrame(columns=["channel_id", "leads", "randomized"])
    marks = ", ".join("?" for _ in studies)
    first, last = frame["week"].iloc[0], frame["week"].iloc[-1] + timedelta(days=6)
    return con.execute(
        f"""SELECT channel_id, count(*) AS leads, count(randomized_ts) AS randomized
            FROM journey WHERE study_id IN ({marks})
              AND lead_ts >= ?::DATE AND lead_ts < ?::DATE + INTERVAL 1 DAY
            GROUP BY channel_id ORDER BY channel_id""",
        studies + [first, last],
    ).df()


def model_data(frame: pd.DataFrame, outcome: str = FIT_OUTCOME,
               controls: tuple[str, ...] = CONTROLS) -> mixmodel.MixData:
    """The weekly frame as the mix model's input."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    channels = list(frame.attrs.get("channels", []))
    return mixmodel.make_data(
        frame[outcome].to_numpy(float), frame[channels].to_numpy(float) if channels else np.zeros((len(frame), 0)),
        channels, frame[list(controls)].to_numpy(float), controls,
        dates=pd.to_datetime(frame["week"]).to_numpy().astype("datetime64[D]"),
    )


# ---------------------------------------------------------------- cached fits


_FITS = LRU(CACHE_SIZE)  # fitted models


@dataclass
class FittedMix:
    """A leads fit with the weekly data it came from, the channels' randomized per
    lead, and the study's progress."""

    frame: pd.DataFrame
    fit: mixmodel.MixFit | None
    error: str | None
    status: StudyStatus | None
    names: dict[str, str]
    yields: dict[str, float] = field(default_factory=dict)   # randomized per lead, per channel
    leads: int = 0                                           # leads created in the fitted weeks
    randomized: int = 0                                      # ... of whom randomized so far

    def weights(self, outcome: str) -> opt.Weights:
        """What one fitted lead is worth in ``outcome``: 1 for leads; for randomized, the
        channel's randomized per lead, and for the baseline's leads the rate of the leads
        the channels did not bring."""
        k = len(self.fit.channels)
        if outcome == "leads":
            return opt.Weights(np.ones(k), 1.0)
        overall = self.randomized / self.leads if self.leads else 0.0
        rates = np.array([self.yields.get(c, overall) for c in self.fit.channels])
        credited = self.fit.contributions()
        base_leads = self.leads - credited.sum()
        base_rand = self.randomized - float(rates @ credited)
        base = min(max(base_rand / base_leads, 0.0), 1.0) if base_leads > 0 else overall
        return opt.Weights(rates, base)


def cache_key(con: duckdb.DuckDBPyConnection, f: Filters, n_boot: int = DEFAULT_BOOT) -> tuple:
    """What a fit depends on: the filter it applies and the data version."""
    return (f.without(*ignored_filters(f)), n_boot, data_version(con))


def cached_fit(con: duckdb.DuckDBPyConnection, f: Filters, n_boot: int = DEFAULT_BOOT) -> FittedMix:
    """The leads model of the filter's studies and weeks, fitted once per (filter, data
    version) and kept in an LRU of ``CACHE_SIZE`` fits."""
    key = cache_key(con, f, n_boot)
    hit = _FITS.get(key)
    if hit is not None:
        return hit
    frame = weekly(con, f)
    try:
        fit = mixmodel.fit(model_data(frame), outcome=OUTCOMES[FIT_OUTCOME], n_boot=n_boot)
        error = None
    except mixmodel.MixInputError as exc:
        fit, error = None, str(exc)
    yields = channel_yields(con, f, frame)
    rates = {r.channel_id: r.randomized / r.leads for r in yields.itertuples() if r.leads}
    result = FittedMix(frame, fit, error, study_status(con, f, frame), channel_names(con), rates,
                       int(yields["leads"].sum()), int(yields["randomized"].sum()))
    _FITS.put(key, result)
    return result


def is_cached(con: duckdb.DuckDBPyConnection, f: Filters, n_boot: int = DEFAULT_BOOT) -> bool:
    return _FITS.get(cache_key(con, f, n_boot)) is not None


def clear_cache() -> None:
    _FITS.clear()


# ---------------------------------------------------------------- tables of the Budget page

CHANNEL_COLUMNS = [
    "channel_id", "channel", "spend", "leads_brought", "randomized_per_lead_pct", "contribution",
    "contribution_low", "contribution_high", "share_pct", "cost_per_outcome", "marginal_cost",
    "current_weekly_spend", "saturation_spend", "carry_over_pct",
]
PLAN_COLUMNS = ["channel_id", "channel", "current", "budget", "min", "max"]
DEFAULT_MAX_FACTOR = 2.0


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _div(a: float, b: float) -> float | None:
    return None if b is None or not np.isfinite(b) or b <= 1e-9 else a / b


def channel_frame(fitted: FittedMix, outcome: str = "randomized") -> pd.DataFrame:
    """One row per channel of the fit, over the fitted weeks:

    - spend; leads_brought: leads the channel's spend brought (model);
    - randomized_per_lead_pct: the channel's randomized per lead (funnel, %);
    - contribution (with its 80% bootstrap interval): ``outcome`` brought (leads, or
      leads x randomized per lead); share_pct: its share of all ``outcome`` (%);
    - cost_per_outcome = spend / contribution; marginal_cost: extra weekly spend for
      one more ``outcome`` per week at the current weekly spend;
    - current_weekly_spend (mean of the last 8 weeks), saturation_spend (weekly spend
      at 80% of the channel's maximum), carry_over_pct (weekly adstock decay, %)."""
    if fitted.fit is None:
        return pd.DataFrame(columns=CHANNEL_COLUMNS)
    fit = fitted.fit
    w = fitted.weights(outcome)
    rate = dict(zip(fit.channels, w.channels))
    total = fitted.randomized if outcome == "randomized" else float(fit.data.y.sum())
    rows = []
    for r in fit.channel_table():
        c = r["channel"]
        k = rate.get(c, 0.0)
        brought = r["contribution"] * k
        low = None if r["contribution_low"] is None else r["contribution_low"] * k
        high = None if r["contribution_high"] is None else r["contribution_high"] * k
        marginal = None if r["marginal_cost"] is None or k <= 0 else r["marginal_cost"] / k
        rows.append({
            "channel_id": c, "channel": fitted.names.get(c, c),
            "spend": _round(r["spend"], 0), "leads_brought": _round(r["contribution"], 1),
            "randomized_per_lead_pct": _round(100 * fitted.yields.get(c, 0.0), 2) if c in fitted.yields else None,
            "contribution": _round(brought, 1), "contribution_low": _round(low, 1),
            "contribution_high": _round(high, 1),
            "share_pct": _round(None if not total else 100 * brought / total, 1),
            "cost_per_outcome": _round(_div(r["spend"], brought), 0),
            "marginal_cost": _round(marginal, 0),
            "current_weekly_spend": _round(r["current_weekly_spend"], 0),
            "saturation_spend": _round(r["saturation_spend"], 0),
            "carry_over_pct": _round(None if r["decay"] is None else 100 * r["decay"], 0),
        })
    table = pd.DataFrame(rows, columns=CHANNEL_COLUMNS)
    if outcome == "leads":   # the same numbers as contribution
        table = table.drop(columns=["leads_brought", "randomized_per_lead_pct"])
    return table


def plan_rows(fitted: FittedMix) -> list[dict]:
    """The editable plan: each modelled channel's current weekly budget (mean of the last
    8 weeks), the planned budget (the current one to start with) and the bounds the
    optimiser keeps to (0 to twice the current budget)."""
    if fitted.fit is None:
        return []
    now = opt.current_budget(fitted.fit)
    return [{"channel_id": c, "channel": fitted.names.get(c, c), "current": round(float(x)),
             "budget": round(float(x)), "min": 0, "max": round(DEFAULT_MAX_FACTOR * float(x))}
            for c, x in zip(fitted.fit.channels, now)]


def _number(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) and number >= 0 else default


def plan_vector(fitted: FittedMix, rows: list[dict] | None, column: str = "budget") -> np.ndarray:
    """A column of the plan rows as weekly amounts in the fit's channel order (missing or
    invalid entries: the current budget, 0 for ``min``, twice the current for ``max``)."""
    now = opt.current_budget(fitted.fit)
    by_id = {r.get("channel_id"): r for r in (rows or []) if isinstance(r, dict)}
    out = []
    for c, x in zip(fitted.fit.channels, now):
        default = 0.0 if column == "min" else (DEFAULT_MAX_FACTOR * x if column == "max" else x)
        out.append(_number(by_id.get(c, {}).get(column), default))
    return np.array(out, float)


@dataclass(frozen=True)
class Scenario:
    """Predicted outcome of a plan against the current budget, and the target date."""

    comparison: opt.Comparison
    outcome: str
    weeks: int
    target_current: date | None = None
    target_plan: date | None = None
    target_plan_low: date | None = None
    target_plan_high: date | None = None
    target_note: str = ""


def scenario(fitted: FittedMix, plan: np.ndarray, weeks: int, outcome: str = "randomized") -> Scenario:
    """The plan's predicted ``outcome`` over ``weeks`` weeks (with interval) against the
    current budget, and for one study the date it reaches its target: randomized to date
    plus the predicted weekly randomized (the weeks from lead to randomization are not
    modelled: the pace is that of the leads' eventual randomizations)."""
    comp = opt.compare(fitted.fit, plan, weeks, weights=fitted.weights(outcome))
    status = fitted.status
    if status is None:
        return Scenario(comp, outcome, weeks, target_note="Choose one study in the filter bar to see "
                                                          "when it reaches its target.")
    remaining = status.target - status.randomized_to_date
    if remaining <= 0:
        return Scenario(comp, outcome, weeks, target_note=f"{status.study_id} has reached its target of "
                                                          f"{status.target} randomized.")
    rand = comp if outcome == "randomized" else opt.compare(fitted.fit, plan, weeks,
                                                            weights=fitted.weights("randomized"))
    current = opt.target_date(status.as_of, remaining, rand.current_weekly)
    planned = opt.target_date(status.as_of, remaining, rand.plan_weekly)
    draws = [opt.weeks_to_target(remaining, w) for w in rand.plan_weekly_draws]
    low = high = None
    if draws and all(d is not None for d in draws):
        lo_w, hi_w = np.percentile(draws, (10, 90))
        low, high = (status.as_of + timedelta(days=round(float(x) * 7)) for x in (lo_w, hi_w))
    note = (f"{status.study_id}: {status.randomized_to_date} of {status.target} randomized by "
            f"{status.as_of}; {remaining} to go. The target date adds the predicted weekly "
            "randomized to that; each channel's leads become randomized at its own rate.")
    return Scenario(comp, outcome, weeks, current, planned, low, high, note)


def response_curves(fitted: FittedMix, outcome: str = "randomized", points: int = 61,
                    top: float = 3.0) -> pd.DataFrame:
    """Steady-state weekly ``outcome`` of each channel against its weekly spend, from 0 to
    ``top`` times the current weekly spend (``pct_of_now``: spend as % of the current;
    ``now`` marks the current spend)."""
    if fitted.fit is None:
        return pd.DataFrame(columns=["channel", "spend", "pct_of_now", "weekly_outcome", "now"])
    fit = fitted.fit
    w = fitted.weights(outcome).channels
    now = fit.current_spend()
    frames = []
    for c, name in enumerate(fit.channels):
        if now[c] <= 0:
            continue
        pct = np.r_[np.linspace(0, 100 * top, points), 100.0]
        spend = np.zeros((len(pct), len(fit.channels)))
        spend[:, c] = now[c] * pct / 100
        resp = np.array([w[c] * fit.weekly_response(row)[c] for row in spend])
        frames.append(pd.DataFrame({"channel": fitted.names.get(name, name), "spend": spend[:, c],
                                    "pct_of_now": pct, "weekly_outcome": resp,
                                    "now": [False] * points + [True]}))
    if not frames:
        return pd.DataFrame(columns=["channel", "spend", "pct_of_now", "weekly_outcome", "now"])
    return pd.concat(frames, ignore_index=True)


def propose(fitted: FittedMix, rows: list[dict] | None, outcome: str = "randomized") -> tuple[np.ndarray, str]:
    """The optimiser's allocation of the plan's total weekly budget within each channel's
    [min, max], and a sentence on what it gains (steady state, per week)."""
    plan = plan_vector(fitted, rows)
    lower, upper = plan_vector(fitted, rows, "min"), plan_vector(fitted, rows, "max")
    upper = np.maximum(upper, lower)
    total = float(plan.sum())
    try:
        best = opt.optimise(fitted.fit, total, lower, upper, start=plan, weights=fitted.weights(outcome))
    except ValueError as exc:
        return plan, f"No proposal: {exc}."
    unit = OUTCOMES[outcome]
    gain = best.weekly_outcome - best.start_weekly_outcome
    digits = 2 if outcome == "randomized" else 1
    return best.spend, (f"Proposed: the same €{total:,.0f} per week, split to bring about "
                        f"{best.weekly_outcome:.{digits}f} {unit} per week from the channels once "
                        f"carry-over has built up, {gain:+.{digits}f} against the plan before "
                        f"({best.start_weekly_outcome:.{digits}f}).")
