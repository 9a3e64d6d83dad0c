"""Recruitment forecasts with the Poisson-Gamma model (pure functions, no Dash, no SQL).

Model (Anisimov & Fedorov 2007, "Modelling, prediction and adaptive adjustment of
recruitment in multicentre trials", Stat Med 26:4958-4975): site i recruits as a
Poisson process of rate lambda_i per month, and the rates vary between sites as
lambda_i ~ Gamma(shape alpha, rate beta) (mean alpha / beta, variance alpha / beta^2).

Methods
-------
* Fit (empirical Bayes): given k_i patients in tau_i months of exposure, k_i is
  negative binomial, P(k) = G(a+k) / (G(a) k!) (b/(b+tau))^a (tau/(b+tau))^k.
  (alpha, beta) maximise the sum of these log-likelihoods (SLSQP within bounds on log alpha,
  log beta, analytic gradient, started from the method of moments: mean m = sum k / sum tau, between-site
  variance v = var(k/tau) - m mean(1/tau), alpha = m^2/v, beta = m/v). Their uncertainty
  is the inverse observed information (numerical Hessian) on the log scale.
* Posterior of an active site: Gamma(alpha + k_i, beta + tau_i) (Gamma-Poisson
  conjugacy); a planned site not yet active recruits from its planned activation with
  a rate from the prior Gamma(alpha, beta).
* Prediction (Monte Carlo, fixed seed): per draw, (log alpha, log beta) from their
  normal approximation (so the forecast carries the fit's own uncertainty), then every
  site's rate. Given the rates, the future count is Poisson(Lambda(t)) with
  Lambda(t) = sum_i lambda_i (t - d_i)^+ (d_i = months until site i starts), so
  - the probability of the target by the planned end is the average over draws of the
    exact Poisson tail P(Poisson(Lambda(T)) >= R) (Rao-Blackwellised: less noise than
    counting simulated paths);
  - the time of the R-th further patient is exactly Lambda^{-1}(G_R), G_R ~ Gamma(R, 1)
    (the R-th arrival of a unit-rate process, time-changed);
  - cumulative curves are simulated paths of Poisson increments on a monthly grid.
* Sites needed: the fewest extra sites, opened now and each recruiting at the current
  mean rate alpha / beta, that lift P(on time) to 80% / 90%.
* Declining rates: conditional on each site's total, the count in the second half of
  its exposure is Binomial(k_i, 1/2) under a constant rate, so the pooled second-half
  count is Binomial(sum k_i, 1/2); an exact one-sided binomial test (scipy binomtest)
  flags a decline (the conditional test of a Poisson rate ratio, Przyborowski &
  Wilenski 1940).
* Calculator (closed forms, no simulation): see :func:`calculator`.
* Back-test: :func:`backtest` simulates trials from known parameters and measures how
  often the forecast intervals of the final count cover the realised count.

Time is in months (30.4375 days); t = 0 is the latest day with data.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

DEFAULT_SEED = 20070  # fixed: forecasts are deterministic
DEFAULT_SIMS = 20_000
LOG_ALPHA_BOUNDS = (-7.0, 9.0)  # alpha up to ~8000: indistinguishable from Poisson
LOG_BETA_BOUNDS = (-20.0, 20.0)
DECLINE_LEVEL = 0.05
MIN_DECLINE_COUNT = 10  # fewer patients than this cannot show a decline
MAX_EXTRA_SITES = 100_000


class ForecastInputError(ValueError):
    """Inputs the forecast cannot use; the message names the input."""


# ---------------------------------------------------------------- fit
@dataclass(frozen=True)
class GammaFit:
    """Fitted site-rate distribution Gamma(alpha, beta) per month.

    ``cov_log`` is the 2x2 covariance of (log alpha, log beta) from the inverse
    observed information, or None when the maximum lies on a bound (no spread between
    sites is visible: the Poisson limit) or the information is singular."""

    alpha: float
    beta: float
    loglik: float
    n_sites: int
    cov_log: np.ndarray | None

    @property
    def mean_rate(self) -> float:
        """Mean site rate alpha / beta (patients per site-month)."""
        return self.alpha / self.beta

    @property
    def median_rate(self) -> float:
        """Median site rate, the Gamma quantile at 1/2."""
        return float(stats.gamma.ppf(0.5, self.alpha, scale=1.0 / self.beta))


def _as_counts(counts, exposures) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(counts, dtype=float)
    tau = np.asarray(exposures, dtype=float)
    if k.shape != tau.shape or k.ndim != 1:
        raise ForecastInputError("counts and exposures must be 1-d arrays of equal length")
    if np.any(k < 0) or np.any(tau < 0) or not np.all(np.isfinite(k)) or not np.all(np.isfinite(tau)):
        raise ForecastInputError("counts and exposures must be finite and non-negative")
    keep = tau > 0  # a site with no exposure says nothing about rates
    return k[keep], tau[keep]


def nb_loglik(log_params: np.ndarray, k: np.ndarray, tau: np.ndarray) -> float:
    """Negative-binomial log-likelihood of counts k in exposures tau under
    rates ~ Gamma(exp(log_params[0]), exp(log_params[1]))."""
    a, b = np.exp(log_params)
    return float(np.sum(special.gammaln(a + k) - special.gammaln(a) - special.gammaln(k + 1)
                        + a * np.log(b) - (a + k) * np.log(b + tau) + special.xlogy(k, tau)))


def nb_score(log_params: np.ndarray, k: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Gradient of :func:`nb_loglik` with respect to (log alpha, log beta)."""
    a, b = np.exp(log_params)
    d_a = np.sum(special.digamma(a + k) - special.digamma(a) + np.log(b) - np.log(b + tau))
    d_b = np.sum(a / b - (a + k) / (b + tau))
    return np.array([a * d_a, b * d_b])


def moment_start(k: np.ndarray, tau: np.ndarray) -> tuple[float, float]:
    """Method-of-moments (alpha, beta): the pooled mean rate and the spread of the site
    rates beyond the Poisson noise m * mean(1 / tau)."""
    m = k.sum() / tau.sum()
    excess = np.var(k / tau, ddof=1) - m * np.mean(1.0 / tau) if k.size > 1 else 0.0
    if excess <= m * m / 100.0:  # little visible spread: start near the Poisson limit
        alpha = 100.0
    else:
        alpha = m * m / excess
    return float(alpha), float(alpha / m)


def _hessian(fun, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central finite-difference Hessian of a scalar function of two variables."""
    out = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            out[i, j] = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (4 * h * h)
    return out


def fit_gamma_prior(counts, exposures) -> GammaFit:
    """Empirical-Bayes maximum-likelihood fit of the site-rate Gamma (module docstring).

    Raises ForecastInputError when no site has exposure or nobody was recruited (the
    likelihood has no maximum: every rate fits a zero)."""
    k, tau = _as_counts(counts, exposures)
    if k.size == 0:
        raise ForecastInputError("no active site with exposure: the site rates cannot be fitted")
    if k.sum() == 0:
        raise ForecastInputError("nobody recruited at an active site yet: the site rates cannot be fitted")
    a0, b0 = moment_start(k, tau)
    x0 = np.clip(np.log([a0, b0]), [LOG_ALPHA_BOUNDS[0], LOG_BETA_BOUNDS[0]],
                 [LOG_ALPHA_BOUNDS[1], LOG_BETA_BOUNDS[1]])

    def neg(x):
        return -nb_loglik(x, k, tau)

    def neg_grad(x):
        return -nb_score(x, k, tau)

    res = optimize.minimize(neg, x0, jac=neg_grad, method="SLSQP",
                            bounds=[LOG_ALPHA_BOUNDS, LOG_BETA_BOUNDS], options={"ftol": 1e-12})
    x = res.x
    cov = None
    if LOG_ALPHA_BOUNDS[0] + 1e-3 < x[0] < LOG_ALPHA_BOUNDS[1] - 1e-3:
        hess = _hessian(neg, x)
        if np.all(np.isfinite(hess)) and np.all(np.linalg.eigvalsh(hess) > 1e-8):
            cov = np.linalg.inv(hess)
    return GammaFit(alpha=float(np.exp(x[0])), beta=float(np.exp(x[1])), loglik=-float(res.fun),
                    n_sites=int(k.size), cov_log=cov)


def posterior(fit: GammaFit, counts, exposures) -> tuple[np.ndarray, np.ndarray]:
    """Per active site the posterior Gamma(alpha + k_i, beta + tau_i): (shapes, rates)."""
    k = np.asarray(counts, dtype=float)
    tau = np.asarray(exposures, dtype=float)
    return fit.alpha + k, fit.beta + tau


# ---------------------------------------------------------------- declining rates
def decline_test(first_half, second_half, level: float = DECLINE_LEVEL) -> dict:
    """Pooled conditional test of a rate decline between the first and second half of
    each site's exposure (module docstring). ``rate_ratio`` = second-half / first-half
    patients (equal halves, so it is the ratio of rates); ``p_value`` one-sided exact
    binomial; ``warning`` a sentence when the decline is significant at ``level``."""
    k1 = int(np.sum(first_half))
    k2 = int(np.sum(second_half))
    n = k1 + k2
    out = {"first_half": k1, "second_half": k2,
           "rate_ratio": (k2 / k1) if k1 else None, "p_value": None, "declining": False, "warning": None}
    if n < MIN_DECLINE_COUNT:
        return out
    p = float(stats.binomtest(k2, n, 0.5, alternative="less").pvalue)
    out["p_value"] = p
    if p < level:
        out["declining"] = True
        out["warning"] = (f"Site rates are declining: {k2} patients in the second half of the sites' "
                          f"exposure against {k1} in the first (rate ratio {k2 / k1:.2f}, one-sided "
                          f"p = {p:.3g}). A constant-rate forecast is likely optimistic.")
    return out


# ---------------------------------------------------------------- prediction
def draw_rates(fit: GammaFit, counts, exposures, n_planned: int, n_sims: int,
               rng: np.random.Generator, parameter_uncertainty: bool = True) -> np.ndarray:
    """Monte Carlo site rates, shape (n_sims, active + planned): active sites from their
    posteriors, planned sites from the prior; with ``parameter_uncertainty`` the
    (log alpha, log beta) of each draw come from the fit's normal approximation."""
    k = np.asarray(counts, dtype=float)
    tau = np.asarray(exposures, dtype=float)
    if parameter_uncertainty and fit.cov_log is not None:
        logs = rng.multivariate_normal(np.log([fit.alpha, fit.beta]), fit.cov_log, size=n_sims)
        logs[:, 0] = np.clip(logs[:, 0], *LOG_ALPHA_BOUNDS)
        a, b = np.exp(logs[:, :1]), np.exp(logs[:, 1:])
    else:
        a, b = np.full((n_sims, 1), fit.alpha), np.full((n_sims, 1), fit.beta)
    active = rng.gamma(a + k[None, :], 1.0 / (b + tau[None, :]))
    planned = rng.gamma(np.broadcast_to(a, (n_sims, n_planned)), 1.0 / np.broadcast_to(b, (n_sims, n_planned)))
    return np.hstack([active, planned])


def intensity(rates: np.ndarray, delays: np.ndarray, t) -> np.ndarray:
    """Cumulative intensity Lambda(t) = sum_i lambda_i (t - d_i)^+ for each draw; t a
    scalar or a 1-d grid (result (n_sims,) or (n_sims, len(t)))."""
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    out = rates @ np.clip(t_arr[None, :] - delays[:, None], 0.0, None)
    return out[:, 0] if np.ndim(t) == 0 else out


def time_to_count(rates: np.ndarray, delays: np.ndarray, remaining: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Months until ``remaining`` more patients, per draw: Lambda^{-1}(G), G ~ Gamma(R, 1).

    Lambda is piecewise linear with kinks at the sites' start times, so the inverse is
    found per draw in the segment where Lambda first exceeds G."""
    g = rng.gamma(float(remaining), 1.0, size=rates.shape[0])
    breaks = np.unique(np.concatenate([[0.0], delays]))
    at_breaks = intensity(rates, delays, breaks)                    # (n_sims, n_breaks)
    slopes = rates @ (delays[:, None] <= breaks[None, :]).astype(float)  # slope after each break
    idx = np.sum(at_breaks <= g[:, None], axis=1) - 1
    rows = np.arange(rates.shape[0])
    return breaks[idx] + (g - at_breaks[rows, idx]) / slopes[rows, idx]


def p_at_least(remaining: int, lam: np.ndarray) -> np.ndarray:
    """P(Poisson(lam) >= remaining), elementwise (1 when nothing remains)."""
    if remaining <= 0:
        return np.ones_like(lam)
    # P(Poisson(lam) >= R) is the regularised lower incomplete gamma P(R, lam)
    return special.gammainc(remaining, lam)


def sites_needed(lam_end: np.ndarray, remaining: int, extra_per_site: float, goal: float) -> int | None:
    """Fewest extra sites, each adding ``extra_per_site`` expected patients by the planned
    end, for mean P(Poisson(lam_end + m extra) >= remaining) >= goal (bisection: the
    probability grows with m). None when no finite number suffices (no time left)."""
    def p(m: int) -> float:
        return float(np.mean(p_at_least(remaining, lam_end + m * extra_per_site)))

    if p(0) >= goal:
        return 0
    if extra_per_site <= 0:
        return None
    hi = 1
    while p(hi) < goal:
        hi *= 2
        if hi > MAX_EXTRA_SITES:
            return None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if p(mid) < goal else (lo, mid)
    return hi


QUANTILES = {"q025": 0.025, "q10": 0.10, "median": 0.5, "q90": 0.90, "q975": 0.975}


def _quantiles(x: np.ndarray) -> dict:
    return {name: float(np.quantile(x, q)) for name, q in QUANTILES.items()}


def forecast(counts, exposures, planned_delays, randomized: int, target: int, months_to_end: float,
             first_half=None, second_half=None, n_sims: int = DEFAULT_SIMS, seed: int = DEFAULT_SEED,
             parameter_uncertainty: bool = True, horizon_cap: int = 120) -> dict:
    """Poisson-Gamma forecast of one study (module docstring for the methods).

    Inputs: per active site patients ``counts`` k_i in ``exposures`` tau_i months; per
    planned site the months until its planned activation (``planned_delays``, negative
    means overdue and is taken as now); ``randomized`` so far, ``target``, and the months
    from now to the planned end. Optional per-site first/second-half counts for the
    decline check.

    Returns a dict of plain numbers (months from now):
    - ``alpha``, ``beta``, ``mean_rate``, ``median_rate``: fitted site-rate Gamma;
    - ``remaining`` = target - randomized (at least 0);
    - ``months_to_target``: median and 80% (q10-q90) / 95% (q025-q975) limits of the
      time until the target (all 0 when it is reached);
    - ``p_on_time``: P(target by the planned end), with ``p_on_time_se`` its Monte
      Carlo standard error;
    - ``sites_needed_80`` / ``_90``: extra sites at the mean rate, opened now, for an
      80% / 90% chance (None when the planned end has passed);
    - ``final_count``: quantiles of the cumulative randomized at the planned end;
    - ``curve``: per month m = 0..H, the cumulative randomized median and 80%/95% bands;
    - ``decline``: the declining-rate test; ``warnings``: sentences for the reader.
    """
    k, tau = np.asarray(counts, dtype=float), np.asarray(exposures, dtype=float)
    if randomized < 0 or target < 0:
        raise ForecastInputError("randomized and target must be non-negative")
    fit = fit_gamma_prior(k, tau)
    rng = np.random.default_rng(seed)
    d_planned = np.clip(np.asarray(planned_delays, dtype=float), 0.0, None)
    delays = np.concatenate([np.zeros(k.size), d_planned])
    rates = draw_rates(fit, k, tau, d_planned.size, n_sims, rng, parameter_uncertainty)
    remaining = max(int(target) - int(randomized), 0)
    t_end = max(float(months_to_end), 0.0)
    lam_end = intensity(rates, delays, t_end)
    p_each = p_at_least(remaining, lam_end)
    times = time_to_count(rates, delays, remaining, rng) if remaining else np.zeros(n_sims)
    final = randomized + rng.poisson(lam_end)
    warnings = _warnings(fit, months_to_end, remaining)
    decline = decline_test(first_half if first_half is not None else [],
                           second_half if second_half is not None else [])
    if decline["warning"]:
        warnings.append(decline["warning"])
    mean_rate = fit.mean_rate
    extra = mean_rate * t_end
    horizon = int(min(horizon_cap, math.ceil(max(t_end, np.quantile(times, 0.975))) + 1))
    return {
        "alpha": fit.alpha, "beta": fit.beta, "mean_rate": mean_rate, "median_rate": fit.median_rate,
        "sites_fitted": fit.n_sites, "planned_sites": int(d_planned.size),
        "target": int(target), "randomized": int(randomized), "remaining": remaining,
        "months_to_end": float(months_to_end),
        "months_to_target": _quantiles(times),
        "p_on_time": float(np.mean(p_each)),
        "p_on_time_se": float(np.std(p_each) / math.sqrt(n_sims)),
        "sites_needed_80": sites_needed(lam_end, remaining, extra, 0.80) if t_end > 0 or not remaining else None,
        "sites_needed_90": sites_needed(lam_end, remaining, extra, 0.90) if t_end > 0 or not remaining else None,
        "final_count": _quantiles(final),
        "curve": cumulative_curve(rates, delays, randomized, horizon, rng),
        "decline": decline, "warnings": warnings,
        "method": {"model": "Poisson-Gamma (Anisimov & Fedorov 2007), empirical Bayes",
                   "prediction": f"Monte Carlo, {n_sims} draws, seed {seed}",
                   "parameter_uncertainty": bool(parameter_uncertainty and fit.cov_log is not None)},
    }


def _warnings(fit: GammaFit, months_to_end: float, remaining: int) -> list[str]:
    out = []
    if fit.n_sites < 3:
        out.append(f"Only {fit.n_sites} active site(s) with exposure: the spread of rates between "
                   "sites cannot be estimated, so the bands are too narrow.")
    elif fit.cov_log is None:
        out.append("No spread of rates between sites is visible (Poisson limit); the fit's own "
                   "uncertainty is not propagated.")
    if months_to_end <= 0 and remaining:
        out.append("The planned end has passed with the target not reached.")
    return out


def cumulative_curve(rates: np.ndarray, delays: np.ndarray, randomized: int, horizon: int,
                     rng: np.random.Generator) -> list[dict]:
    """Cumulative randomized per month 0..horizon: simulated paths (Poisson increments
    of Lambda between grid points), summarised by median and 80% / 95% bands."""
    grid = np.arange(horizon + 1, dtype=float)
    lam = intensity(rates, delays, grid)
    paths = randomized + np.cumsum(rng.poisson(np.diff(lam, axis=1, prepend=0.0)), axis=1)
    q = np.quantile(paths, [0.025, 0.10, 0.5, 0.90, 0.975], axis=0)
    return [{"month": int(m), "median": float(q[2, m]), "lo80": float(q[1, m]), "hi80": float(q[3, m]),
             "lo95": float(q[0, m]), "hi95": float(q[4, m])} for m in range(horizon + 1)]


# ---------------------------------------------------------------- calculator
def calculator(remaining: int, centres: int, shape: float, rate: float, months: float) -> dict:
    """Closed-form recruitment calculator: ``centres`` C active sites with rates
    ~ Gamma(shape A, rate B) per month, ``remaining`` N patients, ``months`` T.

    Closed forms (Anisimov & Fedorov 2007):
    - Total rate Lambda = sum of C independent Gamma(A, B) = Gamma(C A, B).
    - Count in T months: Poisson(Lambda T) mixed over Lambda is negative binomial,
      NB(n = C A, p = B / (B + T)) (scipy ``nbinom``: failures before n successes),
      mean C A T / B. ``expected_by_deadline`` is that mean; ``q05_by_deadline`` and
      ``q95_by_deadline`` its 5% and 95% quantiles.
    - Time to the N-th patient: given Lambda the process reaches N at
      T_N = G_N / Lambda, G_N ~ Gamma(N, 1) independent of Lambda. With
      Lambda = G' / B, G' ~ Gamma(C A, 1), T_N = B G_N / G', and G_N / G' (a ratio of
      independent unit-scale Gammas) is BetaPrime(N, C A); so T_N / B ~ BetaPrime(N, C A),
      i.e. T_N ~ betaprime(N, C A, scale B) (B, a Gamma rate of a per-month rate, is in
      months). Mean N B / (C A - 1) when C A > 1, else infinite (``mean_months`` None);
      ``median_months``, ``q05_months``, ``q95_months`` are its quantiles.
    - ``p_by_deadline`` = P(count in T >= N) = nbinom.sf(N - 1) = betaprime.cdf(T)
      (the N-th patient arrives by T exactly when at least N arrive by T).
    N = 0 gives probability 1 and zero times.
    """
    _check_calculator(remaining, centres, shape, rate, months)
    n = centres * shape
    count = stats.nbinom(n, rate / (rate + months))
    if remaining == 0:
        p, mean, med, q05, q95 = 1.0, 0.0, 0.0, 0.0, 0.0
    else:
        time = stats.betaprime(remaining, n, scale=rate)
        p = float(count.sf(remaining - 1)) if months > 0 else 0.0
        mean = remaining * rate / (n - 1) if n > 1 else None
        med, q05, q95 = (float(time.ppf(q)) for q in (0.5, 0.05, 0.95))
    return {"p_by_deadline": p, "mean_months": mean, "median_months": med,
            "q05_months": q05, "q95_months": q95,
            "expected_by_deadline": n * months / rate,
            "q05_by_deadline": int(count.ppf(0.05)) if months > 0 else 0,
            "q95_by_deadline": int(count.ppf(0.95)) if months > 0 else 0}


def _check_calculator(remaining, centres, shape, rate, months) -> None:
    checks = [(remaining, "--remaining", "a whole number >= 0", lambda v: float(v).is_integer() and v >= 0),
              (centres, "--centres", "a whole number >= 1", lambda v: float(v).is_integer() and v >= 1),
              (shape, "--shape", "a number > 0", lambda v: v > 0),
              (rate, "--rate", "a number > 0", lambda v: v > 0),
              (months, "--months", "a number >= 0", lambda v: v >= 0)]
    for value, name, want, ok in checks:
        if value is None or not math.isfinite(float(value)) or not ok(value):
            raise ForecastInputError(f"{name} must be {want}, got {value}")


# ---------------------------------------------------------------- back-test
def simulate_trial(rng: np.random.Generator, alpha: float, beta: float, duration: float,
                   sites_range: tuple[int, int] = (20, 60), spread: float = 0.6) -> dict:
    """One trial from known Poisson-Gamma parameters: a number of sites drawn from
    ``sites_range``, activations uniform over the first ``spread`` of the duration, rates
    Gamma(alpha, beta). Counts are drawn later per window (Poisson increments are
    independent, so observed and future counts are independent given the rates)."""
    n = int(rng.integers(sites_range[0], sites_range[1] + 1))
    return {"activation": np.sort(rng.uniform(0.0, spread * duration, n)),
            "rates": rng.gamma(alpha, 1.0 / beta, n)}


def backtest_one(trial: dict, cutoff: float, duration: float, rng: np.random.Generator,
                 n_sims: int) -> dict:
    """Forecast a simulated trial from its data at ``cutoff`` months and compare the
    realised count at ``duration`` with the 80% and 95% forecast intervals."""
    a, lam = trial["activation"], trial["rates"]
    active = a < cutoff
    tau = cutoff - a[active]
    k = rng.poisson(lam[active] * tau)
    future = rng.poisson(lam * (duration - np.maximum(a, cutoff)))
    realised = int(k.sum() + future.sum())
    fit = fit_gamma_prior(k, tau)
    delays = np.concatenate([np.zeros(k.size), a[~active] - cutoff])
    rates = draw_rates(fit, k, tau, int((~active).sum()), n_sims, rng)
    final = k.sum() + rng.poisson(intensity(rates, delays, duration - cutoff))
    f = _quantiles(final)
    return {"realised": realised, "in80": f["q10"] <= realised <= f["q90"],
            "in95": f["q025"] <= realised <= f["q975"]}


def backtest(n_trials: int = 200, fractions=(0.3, 0.5), alpha: float = 0.8, beta: float = 0.9,
             duration: float = 24.0, n_sims: int = 4000, seed: int = DEFAULT_SEED) -> dict:
    """Coverage of the forecast intervals of the final count over ``n_trials`` simulated
    trials per forecast time (a fraction of the planned duration). Returns per fraction
    the share covered by the 80% and 95% intervals and their binomial standard errors
    sqrt(p (1 - p) / n) at the nominal p."""
    rng = np.random.default_rng(seed)
    trials = [simulate_trial(rng, alpha, beta, duration) for _ in range(n_trials)]
    out = {}
    for frac in fractions:
        rows = [backtest_one(t, frac * duration, duration, rng, n_sims) for t in trials
                if np.any(t["activation"] < frac * duration)]
        m = len(rows)
        out[str(frac)] = {
            "trials": m,
            "coverage80": sum(r["in80"] for r in rows) / m, "se80": math.sqrt(0.8 * 0.2 / m),
            "coverage95": sum(r["in95"] for r in rows) / m, "se95": math.sqrt(0.95 * 0.05 / m),
        }
    return {"alpha": alpha, "beta": beta, "duration": duration, "fractions": out}


def main(argv: list[str] | None = None) -> None:
    """``python -m cockpit.analytics.forecast --backtest [--trials N]``: print the
    back-test coverage as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--backtest", action="store_true")
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--sims", type=int, default=4000)
    args = parser.parse_args(argv)
    if args.backtest:
        print(json.dumps(backtest(n_trials=args.trials, n_sims=args.sims), indent=2))


if __name__ == "__main__":
    main()
