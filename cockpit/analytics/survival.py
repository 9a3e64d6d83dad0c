"""Kaplan-Meier estimation for time-to-event data with right censoring (pure numpy/scipy).

Used for time-to-enrolment: days from lead to randomization, where leads that are
still open are censored rather than dropped (DESIGN.md, "Time-to-enrolment").

Methods and references
----------------------
* Survival function: product-limit estimator, Kaplan & Meier (1958), "Nonparametric
  estimation from incomplete observations", JASA 53:457-481. At a time where events
  and censorings tie, the censored subjects count as at risk for the events
  (the usual convention; also ``scipy.stats.ecdf`` and R ``survival``).
* Variance: Greenwood (1926) formula,
  Var S(t) = S(t)^2 * sum_{t_i <= t} d_i / (n_i (n_i - d_i)).
* 95% pointwise band: log-log ("exponential Greenwood") transform, Kalbfleisch &
  Prentice (1980) section 1.3; Sawyer, "The Greenwood and exponential Greenwood
  confidence intervals in survival analysis". With
  se = sqrt(sum d_i / (n_i (n_i - d_i))) / |log S(t)|, the band is
  S(t) ** exp(+z se) (lower) to S(t) ** exp(-z se) (upper). It always stays inside
  [0, 1]; it equals ``scipy.stats.ecdf(...).sf.confidence_interval(method='log-log')``.
* Median: the smallest time at which S(t) <= 0.5 (undefined, "not reached", when the
  curve stays above 0.5).
* Median CI: Brookmeyer & Crowley (1982), "A confidence interval for the median
  survival time", Biometrics 38:29-41, read off the pointwise band: the lower limit
  is the first time the lower band falls to 0.5 or below, the upper limit the first
  time the upper band does (None = not reached). This is the interval R
  ``survfit(..., conf.type = "log-log")`` reports.
* Number at risk at time t: subjects whose time is >= t (still followed just
  before t), as printed under KM plots.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import stats

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class KaplanMeier:
    """The estimate at each distinct event time (ascending).

    ``time``: distinct times with at least one event; ``at_risk``: subjects at risk
    just before each time; ``events``: events at it; ``survival``: S(t) just after
    it; ``std_err``: Greenwood standard error of S(t); ``lower``/``upper``: the
    pointwise log-log band at ``confidence``. ``n`` subjects in all, ``n_events``
    events; ``durations``/``weights`` keep the data for the number at risk."""

    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    survival: np.ndarray
    std_err: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    confidence: float
    n: int
    n_events: int
    durations: np.ndarray
    weights: np.ndarray

    def survival_at(self, t: ArrayLike) -> np.ndarray:
        """S(t) at arbitrary times (a right-continuous step function, 1 before the
        first event)."""
        return _step(self.time, self.survival, t, before=1.0)

    def band_at(self, t: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the pointwise band at arbitrary times."""
        return (_step(self.time, self.lower, t, before=1.0),
                _step(self.time, self.upper, t, before=1.0))

    def at_risk_at(self, t: ArrayLike) -> np.ndarray:
        """Number at risk at each time: subjects with duration >= t."""
        return number_at_risk(self.durations, t, self.weights)

    def median(self) -> float | None:
        """Median time: the first time with S(t) <= 0.5; None when not reached."""
        return _first_at_or_below(self.time, self.survival, 0.5)

    def median_ci(self) -> tuple[float | None, float | None]:
        """Brookmeyer-Crowley interval of the median from the log-log band
        (None for a limit that is not reached)."""
        return (_first_at_or_below(self.time, self.lower, 0.5),
                _first_at_or_below(self.time, self.upper, 0.5))


def kaplan_meier(
    durations: ArrayLike,
    observed: ArrayLike,
    weights: ArrayLike | None = None,
    confidence: float = 0.95,
) -> KaplanMeier:
    """Kaplan-Meier estimate with Greenwood standard errors and a log-log band.

    ``durations``: time of each subject (event or censoring), >= 0; ``observed``:
    True where the event happened at that time, False where the subject was
    censored then. ``weights``: optional whole-number counts, so that rows already
    grouped by (time, observed) in SQL need not be expanded.
    """
    t = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=float)
    _check(t, e, w)
    keep = w > 0
    t, e, w = t[keep], e[keep], w[keep]

    times, inverse = np.unique(t, return_inverse=True)
    deaths = np.bincount(inverse, weights=w * e, minlength=len(times))
    leaving = np.bincount(inverse, weights=w, minlength=len(times))
    # at risk just before each time: everybody whose time is >= it
    at_risk = np.cumsum(leaving[::-1])[::-1]
    has_event = deaths > 0
    times, deaths, at_risk = times[has_event], deaths[has_event], at_risk[has_event]

    surv = np.cumprod(1.0 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        # an all-events step (d = n) makes the sum infinite and S zero: no band there
        greenwood = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
        std_err = surv * np.sqrt(greenwood)
    lower, upper = _loglog_band(surv, greenwood, confidence)
    return KaplanMeier(
        time=times, at_risk=at_risk, events=deaths, survival=surv, std_err=std_err,
        lower=lower, upper=upper, confidence=confidence,
        n=int(round(w.sum())), n_events=int(round((w * e).sum())),
        durations=t, weights=w,
    )


def number_at_risk(durations: ArrayLike, times: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
    """Subjects still followed just before each of ``times`` (duration >= time)."""
    d = np.asarray(durations, dtype=float)
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(d)
    d, w = d[order], w[order]
    after = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])
    idx = np.searchsorted(d, np.asarray(times, dtype=float), side="left")
    return np.rint(after[idx]).astype(np.int64)


def _loglog_band(surv: np.ndarray, greenwood: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise band on log(-log S): S ** exp(+-z * sqrt(greenwood) / |log S|)."""
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(surv)
        se = np.sqrt(greenwood) / np.abs(log_s)
        lower = surv ** np.exp(z * se)
        upper = surv ** np.exp(-z * se)
    # S = 1 (no information yet) and S = 0 (everybody had the event) have no band
    undefined = (surv >= 1.0) | (surv <= 0.0) | ~np.isfinite(greenwood)
    lower = np.where(undefined, np.nan, lower)
    upper = np.where(undefined, np.nan, upper)
    return lower, upper


@lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    """The two-sided standard normal quantile of a confidence level (1.96 for 0.95);
    computed once per level, as scipy's ``norm.ppf`` costs far more than the band."""
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _step(x: np.ndarray, y: np.ndarray, t: ArrayLike, before: float) -> np.ndarray:
    idx = np.searchsorted(x, np.asarray(t, dtype=float), side="right") - 1
    values = np.concatenate([[before], y])
    return values[idx + 1]


def _first_at_or_below(time: np.ndarray, values: np.ndarray, level: float) -> float | None:
    hit = np.flatnonzero(values <= level)  # NaN compares False: skipped
    return float(time[hit[0]]) if len(hit) else None


def _check(t: np.ndarray, e: np.ndarray, w: np.ndarray) -> None:
    if not (t.shape == e.shape == w.shape) or t.ndim != 1:
        raise ValueError("durations, observed and weights must be 1-D and of equal length")
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError("durations must be finite and >= 0")
    if np.any(w < 0) or np.any(~np.isfinite(w)):
        raise ValueError("weights must be finite and >= 0")
