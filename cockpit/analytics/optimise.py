"""Budget what-ifs on a fitted mix model: predicted outcome of a weekly budget over the
next weeks (with a bootstrap interval), the date a study reaches its target, and the
allocation of a fixed budget that maximises the outcome.

- ``project``: weekly outcome for the next N weeks if every channel spends its planned
  amount each week. Carry-over continues from the last fitted week (adstock), the
  baseline stays at its last fitted level (intercept + trend of the last week, controls
  at their last values) while the yearly seasonality goes on.
- ``compare``: a plan against the current budget (mean weekly spend of the last weeks),
  both under the point estimate and under every bootstrap refit. The interval of a
  total (10th-90th percentile) adds to each refit's prediction a moving-block resample
  of the fit's weekly residuals, so it covers week-to-week chance as well as the
  uncertainty of the curves; the interval of the difference between two plans uses the
  same refits for both and no residual noise (chance cancels between plans).
- ``optimise``: maximises the steady-state weekly outcome sum_c response_c(x_c) subject to
  sum_c x_c = budget and per-channel bounds, with SLSQP (Kraft 1988) from several
  starts, one of them a greedy marginal allocation (each small slice of budget goes to
  the channel whose next euro brings most), which copes with S-shaped curves.
- ``weeks_to_target``: weeks until cumulative predicted randomized reach the remaining
  number; beyond the projected weeks the last week's rate continues.

``Weights`` turn the fitted outcome into the one reported, per channel and for the
baseline: the Budget page fits leads and reports randomized patients by weighting each
channel's leads with its randomized per lead. The optimiser then maximises the weighted
sum, so a channel whose leads rarely reach randomization gets less.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from scipy.optimize import minimize

from cockpit.analytics.adstock import adstock, adstock_from, hill
from cockpit.analytics.mix import (
    CURRENT_WEEKS,
    INTERVAL,
    WEEKS_PER_YEAR,
    MixFit,
    Params,
    block_resample,
    single_blas_thread,
)

GREEDY_STEPS = 400
MAX_TARGET_WEEKS = 520   # ten years: beyond that the target is "not reached"


# ---------------------------------------------------------------- projection


def _future_baseline(fit: MixFit, p: Params, weeks: int) -> np.ndarray:
    data, design = fit.data, fit.design
    last_week = data.weeks[-1]
    if data.dates is not None:
        days = data.dates[-1] + np.arange(1, weeks + 1) * 7
        season = (days - days.astype("datetime64[Y]")).astype(float) / 365.25
    else:
        season = ((last_week + np.arange(1, weeks + 1)) / WEEKS_PER_YEAR) % 1.0
    controls = np.repeat(data.controls[-1:], weeks, axis=0)
    frozen = np.full(weeks, last_week)   # trend held at the last fitted week
    return design.baseline(frozen, season, controls) @ p.base


@dataclass(frozen=True)
class Weights:
    """What one unit of the fitted outcome is worth in the outcome reported: per channel
    and for the baseline (e.g. randomized per lead). ``None`` means 1 throughout."""

    channels: np.ndarray
    baseline: float = 1.0


def _weights(fit: MixFit, weights: Weights | None) -> Weights:
    return Weights(np.ones(len(fit.channels))) if weights is None else weights


def project(fit: MixFit, plan: np.ndarray, weeks: int, p: Params | None = None,
            weights: Weights | None = None) -> np.ndarray:
    """Expected weekly outcome of the next ``weeks`` weeks when channel c spends
    ``plan[c]`` every week (never below zero); ``weights`` turn the fitted outcome into
    the reported one."""
    p = fit.params if p is None else p
    w = _weights(fit, weights)
    plan = np.asarray(plan, float)
    out = _future_baseline(fit, p, weeks) * w.baseline
    for c in range(len(plan)):
        last = adstock(fit.data.spend[:, c], p.decay[c])[-1]
        future = adstock_from(np.full(weeks, plan[c]), p.decay[c], last)
        out = out + w.channels[c] * p.beta[c] * hill(future / fit.design.spend_scale[c], p.half[c], p.shape[c])
    return np.maximum(out * fit.y_scale, 0.0)


@dataclass(frozen=True)
class Comparison:
    """A plan against the current budget over ``weeks`` weeks.

    ``plan_total`` / ``current_total``: expected outcome over the weeks (point estimate)
    with 10-90% intervals; ``difference`` = plan - current with its interval;
    ``plan_weekly`` / ``current_weekly``: expected outcome per week."""

    weeks: int
    plan: np.ndarray
    current: np.ndarray
    plan_total: float
    plan_low: float
    plan_high: float
    current_total: float
    current_low: float
    current_high: float
    difference: float
    difference_low: float
    difference_high: float
    plan_weekly: np.ndarray
    current_weekly: np.ndarray
    plan_weekly_draws: np.ndarray      # refits x weeks (empty without bootstrap)


def current_budget(fit: MixFit) -> np.ndarray:
    """Mean weekly spend of each modelled channel over the last weeks."""
    return fit.data.spend[-CURRENT_WEEKS:].mean(axis=0)


def compare(fit: MixFit, plan: np.ndarray, weeks: int, seed: int = 0,
            weights: Weights | None = None) -> Comparison:
    """Predicted outcome of ``plan`` and of the current budget over ``weeks`` weeks."""
    plan = np.maximum(np.asarray(plan, float), 0.0)
    now = current_budget(fit)
    point_plan = project(fit, plan, weeks, weights=weights)
    point_now = project(fit, now, weeks, weights=weights)
    rng = np.random.default_rng(seed)
    # week-to-week chance in the reported unit: residuals scaled like the baseline
    resid = (fit.residuals - fit.residuals.mean()) * _weights(fit, weights).baseline
    tot_plan, tot_now, diff, draws = [], [], [], []
    for b in fit.boot:
        wp, wn = project(fit, plan, weeks, b, weights), project(fit, now, weeks, b, weights)
        noise = block_resample(resid, rng, 4) if weeks <= len(resid) else \
            np.concatenate([block_resample(resid, rng, 4) for _ in range(weeks // len(resid) + 1)])
        noise = float(noise[:weeks].sum())
        tot_plan.append(max(wp.sum() + noise, 0.0))
        tot_now.append(max(wn.sum() + noise, 0.0))
        diff.append(wp.sum() - wn.sum())
        draws.append(wp)

    def band(values: list[float], point: float) -> tuple[float, float]:
        if not values:
            return point, point
        low, high = np.percentile(values, INTERVAL)
        return float(min(low, point)), float(max(high, point))

    plan_total, now_total = float(point_plan.sum()), float(point_now.sum())
    pl, ph = band(tot_plan, plan_total)
    cl, ch = band(tot_now, now_total)
    dl, dh = band(diff, plan_total - now_total)
    return Comparison(weeks, plan, now, plan_total, pl, ph, now_total, cl, ch, plan_total - now_total,
                      dl, dh, point_plan, point_now, np.array(draws) if draws else np.zeros((0, weeks)))


def move_share(plan: np.ndarray, source: int, target: int, percent: float) -> np.ndarray:
    """``percent`` % of channel ``source``'s weekly budget moved to channel ``target``."""
    out = np.asarray(plan, float).copy()
    moved = out[source] * min(max(percent, 0.0), 100.0) / 100.0
    out[source] -= moved
    out[target] += moved
    return out


# ---------------------------------------------------------------- optimiser


@dataclass(frozen=True)
class Allocation:
    """The proposed weekly budget per channel and the steady-state weekly outcome of it
    and of the starting plan."""

    spend: np.ndarray
    weekly_outcome: float
    start_weekly_outcome: float


def _weekly_total(fit: MixFit, x: np.ndarray, w: np.ndarray) -> float:
    return float(w @ fit.weekly_response(x))


def _greedy(fit: MixFit, budget: float, lower: np.ndarray, upper: np.ndarray, w: np.ndarray) -> np.ndarray:
    x = lower.copy()
    step = max(budget - lower.sum(), 0.0) / GREEDY_STEPS
    if step <= 0:
        return x
    for _ in range(GREEDY_STEPS):
        room = upper - x
        size = np.minimum(step, room)
        if not np.any(size > 0):
            break
        gain = w * (fit.weekly_response(x + size) - fit.weekly_response(x))
        gain = np.where(size > 0, gain / np.where(size > 0, size, 1.0), -np.inf)
        c = int(np.argmax(gain))
        x[c] += size[c]
    return x


def _feasible_start(x: np.ndarray, budget: float, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Scale ``x`` into the bounds so that it spends the budget."""
    x = np.clip(x, lower, upper)
    for _ in range(50):
        gap = budget - x.sum()
        if abs(gap) < 1e-9 * max(budget, 1.0):
            break
        free = (x < upper) if gap > 0 else (x > lower)
        if not free.any():
            break
        x = np.clip(x + gap * free / free.sum(), lower, upper)
    return x


def optimise(fit: MixFit, budget: float, lower: np.ndarray, upper: np.ndarray,
             start: np.ndarray | None = None, weights: Weights | None = None) -> Allocation:
    """The weekly allocation of ``budget`` within [lower, upper] per channel that
    maximises the steady-state weekly outcome (channel responses times ``weights``).
    Raises ValueError when the bounds cannot hold the budget."""
    w = _weights(fit, weights).channels
    lower = np.maximum(np.asarray(lower, float), 0.0)
    upper = np.asarray(upper, float)
    if np.any(upper < lower):
        raise ValueError("a channel's maximum is below its minimum")
    if lower.sum() > budget + 1e-6 or upper.sum() < budget - 1e-6:
        raise ValueError(f"the bounds hold between {lower.sum():,.0f} and {upper.sum():,.0f} per week, "
                         f"not the budget of {budget:,.0f}")
    start = current_budget(fit) if start is None else np.asarray(start, float)
    with single_blas_thread():
        candidates = [_greedy(fit, budget, lower, upper, w),
                      _feasible_start(start, budget, lower, upper),
                      _feasible_start((lower + upper) / 2, budget, lower, upper)]
        scale = max(budget, 1.0)
        best = max(candidates, key=lambda x: _weekly_total(fit, x, w))
        for x0 in candidates:
            res = minimize(lambda z: -_weekly_total(fit, z * scale, w),
                           x0 / scale, jac=lambda z: -w * fit.marginal_response(z * scale) * scale,
                           method="SLSQP", bounds=list(zip(lower / scale, upper / scale)),
                           constraints=[{"type": "eq", "fun": lambda z: z.sum() - budget / scale,
                                         "jac": lambda z: np.ones_like(z)}],
                           options={"maxiter": 200, "ftol": 1e-12})
            x = _feasible_start(res.x * scale, budget, lower, upper)
            if _weekly_total(fit, x, w) > _weekly_total(fit, best, w):
                best = x
    return Allocation(best, _weekly_total(fit, best, w),
                      _weekly_total(fit, _feasible_start(start, budget, lower, upper), w))


# ---------------------------------------------------------------- target date


def weeks_to_target(remaining: float, weekly: np.ndarray) -> float | None:
    """Weeks (fractional) until the cumulative ``weekly`` outcome reaches ``remaining``;
    after the given weeks the last week's rate goes on. None when not within
    ``MAX_TARGET_WEEKS``."""
    if remaining <= 0:
        return 0.0
    weekly = np.maximum(np.asarray(weekly, float), 0.0)
    if len(weekly) == 0:
        return None
    tail = np.full(max(MAX_TARGET_WEEKS - len(weekly), 0), weekly[-1])
    cum = np.cumsum(np.concatenate([weekly, tail]))
    if cum[-1] < remaining:
        return None
    i = int(np.searchsorted(cum, remaining))
    before = cum[i - 1] if i > 0 else 0.0
    step = cum[i] - before
    return float(i + (remaining - before) / step) if step > 0 else float(i + 1)


def target_date(as_of: date, remaining: float, weekly: np.ndarray) -> date | None:
    """The day the study reaches its target at the predicted weekly pace."""
    weeks = weeks_to_target(remaining, weekly)
    return None if weeks is None else as_of + timedelta(days=round(weeks * 7))
