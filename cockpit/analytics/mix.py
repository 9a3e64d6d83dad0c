"""A light marketing-mix model: weekly spend per channel -> weekly outcome (randomized
patients or leads), with carry-over, saturation, trend and seasonality.

Model (in the spirit of Jin, Wang, Sun, Chan and Koehler 2017, "Bayesian methods for
media mix modeling with carryover and shape effects", Google Inc., fitted here by
penalised least squares instead of MCMC):

    y_t = b0 + b1 trend_t + sum_j (a_j sin + c_j cos)(2 pi j season_t)
          + sum_m g_m z_mt + sum_c beta_c hill(adstock(x_c, d_c)_t / s_c; K_c, n_c) + e_t

- x_c: weekly spend of channel c (offline costs included); s_c its mean weekly spend over
  the weeks it had spend (a unit, so K_c = 1 means "half of the maximum response at the
  channel's typical spend").
- adstock: geometric, d_c in [0, 0.95] (``cockpit.analytics.adstock``).
- hill: half-saturation K_c in [0.1, 5] typical spends, shape n_c in [0.5, 3].
- beta_c >= 0: the channel's maximum weekly outcome.
- trend_t: weeks, centred and scaled to the window; season_t: fraction of the year
  (from the dates when given, else the week number / 52.18); one Fourier pair below
  two years of data, two from then on. z: optional control columns, standardised.

Fitting: ``scipy.optimize.least_squares`` (trust-region reflective, bounds, exact
Jacobian) from several deterministic starts; the best is kept. The loss is the sum of
squared weekly errors, each divided by the week's noise sd (counts: proportional to the
square root of the local level, as for Poisson counts; scale from the week-to-week
differences, ``noise_weights``), plus penalties that act as weak Gaussian priors:
a small ridge on beta_c (sd ``BETA_SD``) and on the seasonal terms, log K_c towards 0
(half-saturation near the typical spend, sd ``LOG_HALF_SD``), n_c towards 1, and the
weekly carry-over d_c towards 0.3 (sd 0.3; Meta's Robyn suggests 0-0.3 for digital and
0.1-0.4 for print). A further penalty keeps the baseline from going below zero in any
week (otherwise always-on channels can absorb the baseline and a negative intercept
makes up for it).

Uncertainty: a seeded moving-block residual bootstrap (Kuensch 1989, Ann. Stat.
17:1217): weekly residuals are resampled in blocks of ``BLOCK_WEEKS`` (keeping their
autocorrelation), added to the fitted values, and the model is refitted from the point
estimate (warm start). Intervals are the 10th and 90th percentiles over the refits.

Fit quality: R2 of the fit in sample, and MAPE on the last ``holdout`` weeks of a
refit that did not see them (mean of |actual - predicted| / actual over held-out weeks
with a non-zero outcome; 0.12 means 12%).

What each channel number means (``MixFit.channel_table``):
- contribution: outcome the channel's spend produced over the fitted weeks (model sum).
- share: contribution / total outcome.  roas: contribution / spend (outcome per euro).
- cost_per_outcome: spend / contribution.
- marginal_cost: euros of extra weekly spend per extra outcome at the channel's current
  weekly spend (mean of the last ``CURRENT_WEEKS`` weeks), in steady state.
- saturation_spend: weekly spend at which the response reaches 80% of its maximum.

Everything is pure and deterministic (seeded). While fitting, OpenBLAS runs with one
thread (``single_blas_thread``): the matrices are small and extra threads only cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import least_squares, lsq_linear
from threadpoolctl import threadpool_limits

from cockpit.analytics.adstock import adstock, adstock_columns, hill, hill_derivatives, saturation_point

WEEKS_PER_YEAR = 52.1775
DECAY_BOUNDS = (0.0, 0.95)
HALF_BOUNDS = (0.1, 5.0)       # half-saturation, in typical weekly spends of the channel
SHAPE_BOUNDS = (0.5, 3.0)
BETA_MAX = 50.0                # max weekly response, in mean weekly outcomes
# Penalties, as Gaussian priors of these standard deviations (outcome scaled to mean 1);
# the data term is weighted by the noise level, so they stay small next to the data.
BETA_SD = 1.0                  # ridge on beta: a channel at saturation brings about one average week
SEASON_SD = 1.0                # ridge on the seasonal terms
LOG_HALF_SD = 0.5              # pulls log K towards 0 (half-saturation at the typical spend)
SHAPE_SD = 1.0                 # pulls n towards 1
DECAY_MEAN, DECAY_SD = 0.3, 0.3  # weekly carry-over: digital ~0-0.3, print ~0.1-0.4 (Robyn ranges)
BASELINE_FLOOR = 10.0          # weight of the penalty on a negative baseline week
STARTS = ((0.2, 0.6), (0.2, 1.6), (0.6, 0.6), (0.6, 1.6))   # (decay, half) of each start
START_SHAPE = 1.2
BLOCK_WEEKS = 4
MAX_NFEV = 300                 # evaluations per start (a fit from 4 starts stays well under a second)
BOOT_NFEV = 20                 # evaluations per bootstrap refit (warm start)
TOL = 1e-8
BOOT_TOL = 1e-6
CURRENT_WEEKS = 8
MIN_WEEKS = 8
PARAMS_PER_CHANNEL = 4
WEEKS_PER_PARAMETER = 3
INTERVAL = (10.0, 90.0)


class MixInputError(ValueError):
    """Data the mix model cannot be fitted to; the message says what is wrong."""


# ---------------------------------------------------------------- BLAS threads


def single_blas_thread():
    """Run the block with one BLAS thread. The fit works on small matrices, where
    OpenBLAS threads only add synchronisation: on a busy machine a 90 x 41 SVD takes
    ~25 ms with two threads and ~1 ms with one. Results do not depend on it."""
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------- data and design


@dataclass(frozen=True)
class MixData:
    """Weekly rows: outcome ``y``, ``spend[:, c]`` per channel, ``controls[:, m]``,
    ``weeks`` since the first row and ``season`` (fraction of the year, 0..1)."""

    y: np.ndarray
    spend: np.ndarray
    channels: tuple[str, ...]
    controls: np.ndarray
    control_names: tuple[str, ...]
    weeks: np.ndarray
    season: np.ndarray
    dates: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.y)

    def head(self, n: int) -> "MixData":
        """The first ``n`` weeks."""
        return replace(self, y=self.y[:n], spend=self.spend[:n], controls=self.controls[:n],
                       weeks=self.weeks[:n], season=self.season[:n],
                       dates=None if self.dates is None else self.dates[:n])


def make_data(y, spend, channels, controls=None, control_names=(), dates=None) -> MixData:
    """Validate weekly arrays (rows in time order, one per week) into ``MixData``."""
    y = np.asarray(y, float).reshape(-1)
    channels, control_names = tuple(channels), tuple(control_names)
    if len(y) == 0:
        raise MixInputError("no weeks of data")
    spend = np.asarray(spend, float)
    if spend.size != len(y) * len(channels):
        raise MixInputError("one spend column per channel is needed")
    spend = spend.reshape(len(y), len(channels))
    controls = np.zeros((len(y), 0)) if controls is None else \
        np.asarray(controls, float).reshape(len(y), len(control_names))
    for name, values in (("outcome", y), ("spend", spend), ("controls", controls)):
        if not np.all(np.isfinite(values)):
            raise MixInputError(f"{name} has missing or non-finite values")
    if np.any(y < 0):
        raise MixInputError(f"outcome is negative in week {int(np.argmax(y < 0)) + 1}")
    if np.any(spend < 0):
        row, col = np.argwhere(spend < 0)[0]
        raise MixInputError(f"spend of {channels[col]} is negative in week {row + 1}")
    if dates is not None:
        dates = np.asarray(dates, "datetime64[D]")
        days = (dates - dates[0]).astype(float)
        if np.any(np.diff(days) <= 0):
            raise MixInputError("dates must increase from row to row")
        weeks = days / 7.0
        day_of_year = (dates - dates.astype("datetime64[Y]")).astype(float)
        season = day_of_year / 365.25
    else:
        weeks = np.arange(len(y), dtype=float)
        season = (weeks / WEEKS_PER_YEAR) % 1.0
    return MixData(y, spend, channels, controls, control_names, weeks, season, dates)


@dataclass(frozen=True)
class Design:
    """Fixed scalings of one data set: spend units, trend scaling, control standardisation."""

    spend_scale: np.ndarray      # s_c
    week_mid: float
    week_span: float
    n_fourier: int
    control_mean: np.ndarray
    control_sd: np.ndarray

    def baseline(self, weeks: np.ndarray, season: np.ndarray, controls: np.ndarray) -> np.ndarray:
        """Baseline columns: 1, trend, Fourier pairs, standardised controls."""
        cols = [np.ones(len(weeks)), (weeks - self.week_mid) / self.week_span]
        for j in range(1, self.n_fourier + 1):
            cols += [np.sin(2 * np.pi * j * season), np.cos(2 * np.pi * j * season)]
        z = (controls - self.control_mean) / self.control_sd if controls.shape[1] else controls
        return np.column_stack(cols + [z[:, i] for i in range(z.shape[1])])

    @property
    def n_base(self) -> int:
        return 2 + 2 * self.n_fourier + len(self.control_mean)

    def seasonal_slice(self) -> slice:
        return slice(2, 2 + 2 * self.n_fourier)


def make_design(data: MixData, n_fourier: int | None = None) -> Design:
    """Scalings from the data: typical weekly spend per channel over its weeks with spend."""
    scale = np.array([col[col > 0].mean() if np.any(col > 0) else 1.0 for col in data.spend.T])
    if n_fourier is None:
        n_fourier = 2 if data.n >= 2 * WEEKS_PER_YEAR else 1
    span = max(float(data.weeks[-1] - data.weeks[0]), 1.0) if data.n else 1.0
    mean = data.controls.mean(axis=0) if data.controls.shape[1] else np.zeros(0)
    sd = data.controls.std(axis=0) if data.controls.shape[1] else np.zeros(0)
    return Design(scale, float(data.weeks[0]) + span / 2 if data.n else 0.0, span, n_fourier,
                  mean, np.where(sd > 0, sd, 1.0))


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Params:
    """Model parameters; ``beta`` and ``base`` in units of the outcome scale."""

    decay: np.ndarray
    log_half: np.ndarray
    shape: np.ndarray
    beta: np.ndarray
    base: np.ndarray

    def pack(self) -> np.ndarray:
        return np.concatenate([self.decay, self.log_half, self.shape, self.beta, self.base])

    @classmethod
    def unpack(cls, theta: np.ndarray, k: int) -> "Params":
        return cls(theta[:k], theta[k:2 * k], theta[2 * k:3 * k], theta[3 * k:4 * k], theta[4 * k:])

    @property
    def half(self) -> np.ndarray:
        return np.exp(self.log_half)


def _bounds(k: int, n_base: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.concatenate([np.full(k, DECAY_BOUNDS[0]), np.full(k, np.log(HALF_BOUNDS[0])),
                         np.full(k, SHAPE_BOUNDS[0]), np.zeros(k), np.full(n_base, -np.inf)])
    hi = np.concatenate([np.full(k, DECAY_BOUNDS[1]), np.full(k, np.log(HALF_BOUNDS[1])),
                         np.full(k, SHAPE_BOUNDS[1]), np.full(k, BETA_MAX), np.full(n_base, np.inf)])
    return lo, hi


def n_parameters(k: int, design: Design) -> int:
    """Parameters of the model: four per channel plus the baseline's."""
    return PARAMS_PER_CHANNEL * k + design.n_base


# ---------------------------------------------------------------- the model


def channel_responses(p: Params, spend: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Weekly response of each channel (columns), in outcome-scale units."""
    out = np.empty_like(spend, dtype=float)
    for c in range(spend.shape[1]):
        u = adstock(spend[:, c], p.decay[c]) / scale[c]
        out[:, c] = p.beta[c] * hill(u, p.half[c], p.shape[c])
    return out


class _Problem:
    """Residuals and Jacobian of the penalised least-squares problem on one data set."""

    def __init__(self, data: MixData, design: Design, y_scale: float):
        self.data, self.design = data, design
        self.k = data.spend.shape[1]
        self.base_x = design.baseline(data.weeks, data.season, data.controls)
        self.y = data.y / y_scale
        # data term weighted by 1 / noise sd of each week, so that the penalties act like priors
        self.norm = noise_weights(self.y)
        nb = design.n_base
        seasonal = np.zeros(nb, bool)
        seasonal[design.seasonal_slice()] = True
        self.seasonal = seasonal
        # penalty rows: beta (k), seasonal terms, log K (k), n - 1 (k)
        self.n_pen = 4 * self.k + int(seasonal.sum())
        self.n_rows = data.n + self.n_pen + data.n   # data, penalties, baseline floor
        self._last = None

    def _parts(self, theta: np.ndarray):
        """Parameters, prediction and the pieces of the Jacobian at ``theta`` (the last
        one is kept: least_squares asks for the Jacobian right after the residuals)."""
        key = theta.tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        p = Params.unpack(theta, self.k)
        a, g = adstock_columns(self.data.spend, p.decay)
        u = a / self.design.spend_scale
        h, dh_du, dh_dlogk, dh_dn = hill_derivatives(u, p.half, p.shape)
        pred = self.base_x @ p.base + h @ p.beta
        parts = (p, pred, (g / self.design.spend_scale, h, dh_du, dh_dlogk, dh_dn))
        self._last = (key, parts)
        return parts

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        p, pred, _ = self._parts(theta)
        floor = np.minimum(self.base_x @ p.base, 0.0) * self.norm * BASELINE_FLOOR
        return np.concatenate([(pred - self.y) * self.norm, self._penalty(p), floor])

    def _penalty(self, p: Params) -> np.ndarray:
        return np.concatenate([p.beta / BETA_SD, p.base[self.seasonal] / SEASON_SD,
                               p.log_half / LOG_HALF_SD, (p.shape - 1.0) / SHAPE_SD,
                               (p.decay - DECAY_MEAN) / DECAY_SD])

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        p, _, (da, h, dh_du, dh_dlogk, dh_dn) = self._parts(theta)
        k, n = self.k, self.data.n
        jac = np.zeros((self.n_rows, len(theta)))
        jac[:n, :k] = p.beta * dh_du * da
        jac[:n, k:2 * k] = p.beta * dh_dlogk
        jac[:n, 2 * k:3 * k] = p.beta * dh_dn
        jac[:n, 3 * k:4 * k] = h
        jac[:n, 4 * k:] = self.base_x
        jac[:n] *= self.norm[:, None]
        row = n
        for c in range(k):
            jac[row + c, 3 * k + c] = 1.0 / BETA_SD
        row += k
        for i in np.flatnonzero(self.seasonal):
            jac[row, 4 * k + i] = 1.0 / SEASON_SD
            row += 1
        for c in range(k):
            jac[row + c, k + c] = 1.0 / LOG_HALF_SD
            jac[row + k + c, 2 * k + c] = 1.0 / SHAPE_SD
            jac[row + 2 * k + c, c] = 1.0 / DECAY_SD
        below = (self.base_x @ p.base) < 0
        jac[n + self.n_pen:, 4 * k:] = self.base_x * (below * self.norm * BASELINE_FLOOR)[:, None]
        return jac

    def linear_start(self, decay: float, half: float) -> np.ndarray:
        """A start: the given decay and half-saturation for every channel, shape
        ``START_SHAPE``, and the linear terms (beta >= 0, baseline) solved for them."""
        k, nb = self.k, self.design.n_base
        nonlin = Params(np.full(k, decay), np.full(k, np.log(half)), np.full(k, START_SHAPE),
                        np.ones(k), np.zeros(nb))
        h = channel_responses(nonlin, self.data.spend, self.design.spend_scale)
        a = np.column_stack([h, self.base_x]) * self.norm[:, None]
        lo = np.concatenate([np.zeros(k), np.full(nb, -np.inf)])
        hi = np.concatenate([np.full(k, BETA_MAX), np.full(nb, np.inf)])
        sol = lsq_linear(a, self.y * self.norm, bounds=(lo, hi), method="bvls")
        return np.concatenate([nonlin.decay, nonlin.log_half, nonlin.shape, sol.x])

    def solve(self, theta0: np.ndarray, max_nfev: int = MAX_NFEV, tol: float = TOL):
        lo, hi = _bounds(self.k, self.design.n_base)
        theta0 = np.clip(theta0, lo + 1e-9 * (np.isfinite(lo)), hi - 1e-9 * (np.isfinite(hi)))
        return least_squares(self.residuals, theta0, jac=self.jacobian, bounds=(lo, hi),
                             method="trf", x_scale="jac", max_nfev=max_nfev,
                             ftol=tol, xtol=tol, gtol=tol)


def noise_level(y: np.ndarray) -> float:
    """Robust guess of the weekly noise sd without fitting: the median absolute deviation
    of week-to-week differences / sqrt(2) (differences remove the slow baseline)."""
    if len(y) < 3:
        return max(float(np.std(y)), 1e-6)
    diff = np.diff(y)
    mad = 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / np.sqrt(2.0)
    return max(mad, 0.05 * float(np.std(y)), 1e-6)


def noise_weights(y: np.ndarray) -> np.ndarray:
    """1 / noise sd of each week. Counts are noisier where they are larger (Poisson: the
    variance is the mean), so the sd is taken proportional to the square root of the
    local level (a centred 5-week mean, floored at a tenth of the overall mean) and
    scaled by ``noise_level`` of the level-standardised series."""
    mean = float(np.mean(y)) if len(y) else 1.0
    level = np.convolve(np.pad(y, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    level = np.maximum(level, max(0.1 * mean, 1e-9))
    rel = np.sqrt(level / level.mean())
    return 1.0 / (noise_level(y / rel) * rel)


def _fit_params(data: MixData, design: Design, y_scale: float,
                starts: list[np.ndarray] | None = None) -> tuple[Params, float]:
    """Best of several starts: the default grid, plus any given (warm) starts."""
    prob = _Problem(data, design, y_scale)
    candidates = [prob.linear_start(d, h) for d, h in STARTS] + list(starts or [])
    best = None
    for theta0 in candidates:
        sol = prob.solve(theta0)
        if best is None or sol.cost < best.cost:
            best = sol
    return Params.unpack(best.x, prob.k), float(best.cost)


# ---------------------------------------------------------------- the fit


@dataclass
class MixFit:
    """A fitted mix model: data, point estimate, bootstrap refits and diagnostics."""

    data: MixData
    design: Design
    params: Params
    y_scale: float
    fitted: np.ndarray
    r2: float | None
    mape_holdout: float | None
    holdout_weeks: int
    boot: list[Params] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped: tuple[str, ...] = ()
    outcome: str = "outcome"
    all_channels: tuple[str, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        return self.data.channels

    @property
    def residuals(self) -> np.ndarray:
        return self.data.y - self.fitted

    # -- per-channel numbers
    def contributions(self, p: Params | None = None) -> np.ndarray:
        """Outcome each channel produced over the fitted weeks."""
        p = self.params if p is None else p
        resp = channel_responses(p, self.data.spend, self.design.spend_scale)
        return resp.sum(axis=0) * self.y_scale

    def current_spend(self) -> np.ndarray:
        """Mean weekly spend of each channel over the last ``CURRENT_WEEKS`` weeks."""
        return self.data.spend[-CURRENT_WEEKS:].mean(axis=0)

    def weekly_response(self, spend: np.ndarray, p: Params | None = None) -> np.ndarray:
        """Steady-state weekly outcome of each channel at constant weekly ``spend``."""
        p = self.params if p is None else p
        u = np.asarray(spend, float) / self.design.spend_scale
        return self.y_scale * p.beta * np.array([hill(u[c], p.half[c], p.shape[c])
                                                 for c in range(len(u))]).reshape(-1)

    def marginal_response(self, spend: np.ndarray, p: Params | None = None) -> np.ndarray:
        """d(weekly outcome)/d(weekly spend) of each channel at ``spend`` (steady state)."""
        p = self.params if p is None else p
        u = np.asarray(spend, float) / self.design.spend_scale
        slope = np.array([hill_derivatives(np.array([u[c]]), p.half[c], p.shape[c])[1][0]
                          for c in range(len(u))])
        return self.y_scale * p.beta * slope / self.design.spend_scale

    def saturation_spend(self, p: Params | None = None) -> np.ndarray:
        """Weekly spend at which each channel reaches 80% of its maximum response."""
        p = self.params if p is None else p
        return np.array([saturation_point(p.half[c], p.shape[c]) for c in range(len(p.half))]) \
            * self.design.spend_scale

    def channel_table(self) -> list[dict]:
        """One dict per channel (dropped channels included with zeros): spend,
        contribution (with 10-90% bootstrap interval), share, roas, cost per outcome,
        current weekly spend, marginal cost, saturation spend, decay, half-saturation
        spend, shape."""
        total_y = float(self.data.y.sum())
        spend = self.data.spend.sum(axis=0)
        contrib = self.contributions()
        now = self.current_spend()
        marginal = self.marginal_response(now)
        boot = np.array([self.contributions(b) for b in self.boot]) if self.boot else None
        sat = self.saturation_spend()
        rows = []
        for c, name in enumerate(self.channels):
            low = high = None
            if boot is not None:
                low, high = (float(v) for v in np.percentile(boot[:, c], INTERVAL))
            rows.append({
                "channel": name, "spend": float(spend[c]), "contribution": float(contrib[c]),
                "contribution_low": low, "contribution_high": high,
                "share": _div(contrib[c], total_y), "roas": _div(contrib[c], spend[c]),
                "cost_per_outcome": _div(spend[c], contrib[c], tiny=1e-9 * max(total_y, 1.0)),
                "current_weekly_spend": float(now[c]),
                "marginal_cost": _div(1.0, marginal[c], tiny=1e-12),
                "saturation_spend": float(sat[c]),
                "decay": float(self.params.decay[c]),
                "half_saturation_spend": float(self.params.half[c] * self.design.spend_scale[c]),
                "shape": float(self.params.shape[c]),
            })
        for name in self.dropped:
            rows.append({"channel": name, "spend": 0.0, "contribution": 0.0, "contribution_low": None,
                         "contribution_high": None, "share": 0.0, "roas": None, "cost_per_outcome": None,
                         "current_weekly_spend": 0.0, "marginal_cost": None, "saturation_spend": None,
                         "decay": None, "half_saturation_spend": None, "shape": None})
        order = {c: i for i, c in enumerate(self.all_channels or self.channels)}
        return sorted(rows, key=lambda r: order.get(r["channel"], len(order)))

    def baseline_contribution(self) -> float:
        """Outcome not explained by any channel's spend (intercept, trend, season, controls)."""
        return float(self.data.y.sum() - self.contributions().sum())


def _div(a: float, b: float, tiny: float = 0.0) -> float | None:
    if b is None or not np.isfinite(b) or abs(b) <= tiny:
        return None
    return float(a / b)


def _r2(y: np.ndarray, fitted: np.ndarray) -> float | None:
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return None
    return 1.0 - float(((y - fitted) ** 2).sum()) / total


def mape(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    """Mean |actual - predicted| / actual over weeks with a non-zero actual."""
    keep = actual != 0
    if not keep.any():
        return None
    return float(np.mean(np.abs(actual[keep] - predicted[keep]) / np.abs(actual[keep])))


def predict(data: MixData, design: Design, p: Params, y_scale: float) -> np.ndarray:
    """Fitted weekly outcome of ``data``'s weeks under parameters ``p``."""
    base = design.baseline(data.weeks, data.season, data.controls) @ p.base
    return y_scale * (base + channel_responses(p, data.spend, design.spend_scale).sum(axis=1))


def default_holdout(n: int) -> int:
    """Held-out last weeks: a sixth of the data, between 4 and 13 (none below 20 weeks)."""
    return 0 if n < 20 else int(min(13, max(4, n // 6)))


def block_resample(resid: np.ndarray, rng: np.random.Generator, block: int = BLOCK_WEEKS) -> np.ndarray:
    """Moving-block bootstrap sample of ``resid`` (same length): random runs of
    ``block`` consecutive weeks, concatenated."""
    n = len(resid)
    block = max(1, min(block, n))
    starts = rng.integers(0, n - block + 1, size=n // block + 1)
    return np.concatenate([resid[s:s + block] for s in starts])[:n]


def fit(data: MixData, outcome: str = "outcome", n_boot: int = 60, holdout: int | None = None,
        seed: int = 0, n_fourier: int | None = None) -> MixFit:
    """Fit the mix model to weekly ``data``: point estimate, held-out check, bootstrap.

    Channels without any spend are left out (with a warning). Raises MixInputError when
    there are fewer than ``MIN_WEEKS`` weeks or the outcome is zero throughout.
    """
    with single_blas_thread():
        return _fit(data, outcome, n_boot, holdout, seed, n_fourier)


def _fit(data: MixData, outcome: str, n_boot: int, holdout: int | None, seed: int,
         n_fourier: int | None) -> MixFit:
    if data.n < MIN_WEEKS:
        raise MixInputError(f"only {data.n} weeks of data: the mix model needs at least {MIN_WEEKS}")
    if not np.any(data.y > 0):
        raise MixInputError(f"the {outcome} is zero in every week: nothing to explain")
    warnings: list[str] = []
    all_channels = data.channels
    has_spend = data.spend.sum(axis=0) > 0
    dropped = tuple(c for c, keep in zip(data.channels, has_spend) if not keep)
    for name in dropped:
        warnings.append(f"{name} has no spend in these weeks: it is left out of the model.")
    keep_controls = data.controls.std(axis=0) > 0 if data.controls.shape[1] else np.zeros(0, bool)
    for name, keep in zip(data.control_names, keep_controls):
        if not keep:
            warnings.append(f"Control {name} never changes: it is left out of the model.")
    data = replace(data, spend=data.spend[:, has_spend],
                   channels=tuple(c for c, keep in zip(data.channels, has_spend) if keep),
                   controls=data.controls[:, keep_controls],
                   control_names=tuple(c for c, keep in zip(data.control_names, keep_controls) if keep))
    design = make_design(data, n_fourier)
    y_scale = float(data.y.mean())
    params, _ = _fit_params(data, design, y_scale)
    fitted = predict(data, design, params, y_scale)

    h = default_holdout(data.n) if holdout is None else int(holdout)
    if h < 0 or h > data.n - MIN_WEEKS:
        raise MixInputError(f"holdout of {h} weeks leaves fewer than {MIN_WEEKS} weeks to fit")
    mape_h = None
    if h > 0:
        train = data.head(data.n - h)
        train_scale = float(train.y.mean()) or y_scale
        p_train, _ = _fit_params(train, design, train_scale)
        mape_h = mape(data.y[-h:], predict(data, design, p_train, train_scale)[-h:])

    result = MixFit(data, design, params, y_scale, fitted, _r2(data.y, fitted), mape_h, h,
                    warnings=warnings, dropped=dropped, outcome=outcome, all_channels=all_channels)
    result.boot = bootstrap(result, n_boot, seed)
    result.warnings.extend(diagnose(result))
    return result


def bootstrap(result: MixFit, n_boot: int, seed: int = 0, max_nfev: int = BOOT_NFEV) -> list[Params]:
    """Refits on fitted + moving-block resampled residuals, warm-started from the point
    estimate (``max_nfev`` evaluations each, which keeps ~60 refits to about a second)."""
    if n_boot <= 0:
        return []
    rng = np.random.default_rng(seed)
    resid = result.residuals - result.residuals.mean()
    theta0 = result.params.pack()
    out = []
    for _ in range(int(n_boot)):
        y_star = result.fitted + block_resample(resid, rng, BLOCK_WEEKS)
        prob = _Problem(replace(result.data, y=y_star), result.design, result.y_scale)
        sol = prob.solve(theta0, max_nfev=max_nfev, tol=BOOT_TOL)
        out.append(Params.unpack(sol.x, prob.k))
    return out


def diagnose(result: MixFit) -> list[str]:
    """Plain warnings about what the data cannot support."""
    data, out = result.data, []
    k = len(result.channels)
    p = n_parameters(k, result.design)
    if data.n < WEEKS_PER_PARAMETER * p:
        out.append(f"Only {data.n} weeks of data for {p} model parameters (about "
                   f"{WEEKS_PER_PARAMETER * p} weeks would be needed): read the per-channel "
                   "curves as rough, and trust the intervals more than the point values.")
    for c, name in enumerate(result.channels):
        x = data.spend[:, c]
        active = int((x > 0).sum())
        cv = x.std() / x.mean() if x.mean() > 0 else 0.0
        if cv < 0.05:
            out.append(f"Spend on {name} never varies from week to week: its effect cannot be "
                       "told apart from the baseline.")
        elif active < 4:
            out.append(f"{name} had spend in only {active} weeks: its curve rests on very little.")
    mean_y = float(data.y.mean())
    if mean_y < 3:
        out.append(f"Only {mean_y:.1f} {result.outcome} per week on average: weekly counts are "
                   "mostly chance, so per-channel effects are very uncertain.")
    if result.mape_holdout is not None and result.mape_holdout > 0.5:
        out.append(f"On the last {result.holdout_weeks} weeks, held out of the fit, the model was "
                   f"off by {100 * result.mape_holdout:.0f}% on average: predictions are rough.")
    if data.n < WEEKS_PER_YEAR:
        out.append("Less than a year of data: seasonality cannot be told apart from the trend.")
    return out


def report(result: MixFit) -> dict:
    """The ``cockpit mix fit --json`` document."""
    channels = {row["channel"]: {"contribution": row["contribution"], "share": row["share"],
                                 "roas": row["roas"]}
                for row in result.channel_table()}
    return {"channels": channels, "fit": {"r2": result.r2, "mape_holdout": result.mape_holdout}}
