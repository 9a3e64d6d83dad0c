"""The Poisson-Gamma forecast engine: closed forms against simulation, the fit against
statsmodels, the Monte Carlo pieces against exact values, and the back-test coverage.

Simulation tolerances: with n independent draws an estimated probability p has standard
error sqrt(p (1 - p) / n) and an estimated mean sd / sqrt(n); every comparison allows
4 standard errors (a false alarm about once in 16,000 comparisons), and the seeds are
fixed, so the tests are deterministic."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import statsmodels.api as sm
from click.testing import CliRunner
from scipy import stats

from cockpit.analytics.forecast import (ForecastInputError, backtest, calculator, decline_test,
                                        draw_rates, fit_gamma_prior, forecast, intensity,
                                        p_at_least, posterior, sites_needed, time_to_count)
from cockpit.commands.forecast import forecast as forecast_command

KEYS = {"p_by_deadline", "mean_months", "median_months", "q05_months", "q95_months",
        "expected_by_deadline", "q05_by_deadline", "q95_by_deadline"}
N_SIM = 400_000
Z = 4.0  # standard errors allowed


def _simulate_calculator(remaining, centres, shape, rate, months, seed=11):
    """The calculator's situation simulated directly: C site rates, their sum, the count
    in T months, and the time of the N-th patient as N exponential gaps."""
    rng = np.random.default_rng(seed)
    total = rng.gamma(shape, 1.0 / rate, size=(N_SIM, centres)).sum(axis=1)
    count = rng.poisson(total * months)
    time = rng.gamma(remaining, 1.0, N_SIM) / total  # sum of N Exp(total) gaps
    return count, time


def _p_close(estimate_share, p):
    return abs(estimate_share - p) <= Z * math.sqrt(p * (1 - p) / N_SIM)


@pytest.mark.parametrize("args", [(50, 10, 0.8, 0.9, 6.0), (12, 4, 2.0, 1.5, 5.0)])
def test_calculator_closed_forms_match_simulation(args):
    remaining, centres, shape, rate, months = args
    r = calculator(*args)
    assert set(r) == KEYS
    count, time = _simulate_calculator(*args)
    assert _p_close(np.mean(count >= remaining), r["p_by_deadline"])
    assert _p_close(np.mean(time <= months), r["p_by_deadline"])
    # quantiles: the simulated CDF at the closed-form quantile is the nominal level
    for key, level in (("median_months", 0.5), ("q05_months", 0.05), ("q95_months", 0.95)):
        assert _p_close(np.mean(time <= r[key]), level), key
    # the mean of the time exists (C A > 1); its variance too when C A > 2
    n = centres * shape
    sd_time = math.sqrt(stats.betaprime(remaining, n, scale=rate).var())
    assert abs(time.mean() - r["mean_months"]) <= Z * sd_time / math.sqrt(N_SIM)
    assert abs(count.mean() - r["expected_by_deadline"]) <= Z * count.std() / math.sqrt(N_SIM)
    # discrete quantiles: P(X <= q) reaches the level, P(X <= q - 1) does not
    for key, level in (("q05_by_deadline", 0.05), ("q95_by_deadline", 0.95)):
        q = r[key]
        se = math.sqrt(level * (1 - level) / N_SIM)
        assert np.mean(count <= q) >= level - Z * se, key
        assert np.mean(count <= q - 1) < level + Z * se, key


def test_calculator_worked_example():
    # 10 sites, rates ~ Gamma(0.8, 0.9): total rate Gamma(8, 0.9), mean 8.89 a month.
    # 50 still to recruit, 6 months: count ~ NB(8, 0.9 / 6.9), mean 8 x 6 / 0.9 = 53.33.
    # Time to 50: T = 0.9 x G_50 / G_8 ~ betaprime(50, 8, scale 0.9),
    # mean 50 x 0.9 / (8 - 1) = 6.4286 months (1 / Lambda has mean B / (CA - 1)).
    r = calculator(50, 10, 0.8, 0.9, 6)
    assert r["expected_by_deadline"] == pytest.approx(53.3333, abs=1e-4)
    assert r["mean_months"] == pytest.approx(6.4286, abs=1e-4)
    assert r["p_by_deadline"] == pytest.approx(0.52982, abs=1e-5)
    assert r["median_months"] == pytest.approx(5.8284, abs=1e-4)
    assert r["q05_months"] == pytest.approx(3.2223, abs=1e-4)
    assert r["q95_months"] == pytest.approx(11.6351, abs=1e-4)
    assert (r["q05_by_deadline"], r["q95_by_deadline"]) == (25, 90)
    # the two closed forms agree: N-th patient by T <=> at least N by T
    assert r["p_by_deadline"] == pytest.approx(stats.betaprime(50, 8, scale=0.9).cdf(6), abs=1e-12)


def test_calculator_mean_does_not_exist_when_total_shape_at_most_one():
    r = calculator(5, 1, 0.8, 1.0, 3)
    assert r["mean_months"] is None and math.isfinite(r["median_months"])
    assert json.loads(json.dumps(r, allow_nan=False))["mean_months"] is None


def test_calculator_nothing_remaining_and_bad_inputs():
    r = calculator(0, 3, 1.0, 1.0, 2)
    assert r["p_by_deadline"] == 1.0 and r["median_months"] == 0.0
    for bad, name in (((-1, 3, 1, 1, 2), "--remaining"), ((5, 0, 1, 1, 2), "--centres"),
                      ((5, 3, 0, 1, 2), "--shape"), ((5, 3, 1, -1, 2), "--rate"),
                      ((5, 3, 1, 1, -2), "--months")):
        with pytest.raises(ForecastInputError, match=name):
            calculator(*bad)


# ---------------------------------------------------------------- fit
def _sites(n=300, alpha=0.8, beta=0.9, seed=3):
    rng = np.random.default_rng(seed)
    tau = rng.uniform(1, 12, n)
    return rng.poisson(rng.gamma(alpha, 1 / beta, n) * tau), tau


def test_fit_matches_statsmodels_negative_binomial():
    # NB2 with exposure: mean m tau_i, variance mu + mu^2 / alpha, so statsmodels'
    # dispersion is 1 / alpha and its intercept log(alpha / beta)
    k, tau = _sites()
    fit = fit_gamma_prior(k, tau)
    sm_fit = sm.NegativeBinomial(k, np.ones((k.size, 1)), exposure=tau).fit(disp=0)
    const, disp = sm_fit.params
    assert fit.alpha == pytest.approx(1 / disp, rel=1e-3)
    assert fit.mean_rate == pytest.approx(math.exp(const), rel=1e-4)
    assert fit.loglik == pytest.approx(sm_fit.llf, abs=1e-4)


def test_fit_recovers_the_parameters_within_their_standard_errors():
    k, tau = _sites(n=2000)
    fit = fit_gamma_prior(k, tau)
    se = np.sqrt(np.diag(fit.cov_log))
    assert abs(math.log(fit.alpha) - math.log(0.8)) <= Z * se[0]
    assert abs(math.log(fit.beta) - math.log(0.9)) <= Z * se[1]


def test_fit_needs_recruitment():
    with pytest.raises(ForecastInputError):
        fit_gamma_prior([0, 0], [3.0, 4.0])
    with pytest.raises(ForecastInputError):
        fit_gamma_prior([], [])


def test_posterior_is_conjugate():
    k, tau = _sites(n=20)
    fit = fit_gamma_prior(k, tau)
    shape, rate = posterior(fit, k, tau)
    assert np.allclose(shape, fit.alpha + k) and np.allclose(rate, fit.beta + tau)


# ---------------------------------------------------------------- decline
def test_decline_is_flagged_only_when_significant():
    flat = decline_test([10, 12, 8], [11, 9, 9])
    assert not flat["declining"] and flat["warning"] is None
    falling = decline_test([20, 15, 18], [6, 5, 7])
    # 18 of 71 in the second half: one-sided binomial p
    assert falling["p_value"] == pytest.approx(stats.binom.cdf(18, 71, 0.5))
    assert falling["declining"] and "declining" in falling["warning"]
    assert decline_test([3], [0])["p_value"] is None  # too few to judge


def test_forecast_warns_on_declining_rates():
    k, tau = _sites(n=30)
    first = np.round(k * 0.75).astype(int)
    r = forecast(k, tau, [], int(k.sum()), int(k.sum()) + 50, 6, first_half=first,
                 second_half=k - first, n_sims=2000)
    assert r["decline"]["declining"] and any("declining" in w for w in r["warnings"])


# ---------------------------------------------------------------- Monte Carlo pieces
def test_time_to_count_inverts_the_intensity():
    rates = np.array([[0.5, 1.0, 2.0], [1.5, 0.2, 0.3]])
    delays = np.array([0.0, 1.5, 4.0])
    times = time_to_count(rates, delays, 7, np.random.default_rng(5))
    g = np.random.default_rng(5).gamma(7.0, 1.0, size=2)
    assert np.allclose(intensity(rates, delays, times).diagonal(), g)  # Lambda_i(T_i) = G_i


def test_tail_probability_agrees_with_simulated_times():
    # P(T_R <= T) counted over simulated times equals the mean exact Poisson tail
    k, tau = _sites(n=25)
    fit = fit_gamma_prior(k, tau)
    rng = np.random.default_rng(8)
    n = 40_000
    rates = draw_rates(fit, k, tau, 2, n, rng)
    delays = np.array([0.0] * k.size + [2.0, 5.0])
    remaining, t_end = 120, 6.0
    p_exact = p_at_least(remaining, intensity(rates, delays, t_end)).mean()
    p_times = np.mean(time_to_count(rates, delays, remaining, rng) <= t_end)
    assert 0.05 < p_exact < 0.95
    assert abs(p_times - p_exact) <= Z * math.sqrt(p_exact * (1 - p_exact) / n)


def test_forecast_shapes_and_determinism():
    k, tau = _sites(n=25)
    args = (k, tau, [1.0], int(k.sum()), int(k.sum()) + 100, 8.0)
    a, b = forecast(*args, n_sims=3000), forecast(*args, n_sims=3000)
    assert json.dumps(a) == json.dumps(b)
    c = a["curve"]
    assert c[0]["median"] == k.sum() and c[0]["lo95"] == k.sum()
    for row in c:
        assert row["lo95"] <= row["lo80"] <= row["median"] <= row["hi80"] <= row["hi95"]
    assert all(x["median"] <= y["median"] for x, y in zip(c, c[1:]))


def test_sites_needed_is_the_smallest_number():
    k, tau = _sites(n=10)
    r = forecast(k, tau, [], int(k.sum()), int(k.sum()) + 150, 6.0, n_sims=5000)
    assert r["p_on_time"] < 0.8
    m80, m90 = r["sites_needed_80"], r["sites_needed_90"]
    assert 0 < m80 <= m90
    lam = np.array([30.0, 60.0, 90.0])  # a small hand case: 3 draws of Lambda(T)
    m = sites_needed(lam, 100, 10.0, 0.8)
    p = lambda n: np.mean(stats.poisson.sf(99, lam + n * 10.0))  # noqa: E731
    assert p(m) >= 0.8 > p(m - 1)


def test_forecast_when_target_reached():
    k, tau = _sites(n=10)
    r = forecast(k, tau, [], 50, 40, 3.0, n_sims=1000)
    assert r["remaining"] == 0 and r["p_on_time"] == 1.0 and r["sites_needed_80"] == 0
    assert r["months_to_target"]["median"] == 0.0


# ---------------------------------------------------------------- back-test
def test_backtest_coverage_is_close_to_nominal():
    # 150 trials per forecast time: binomial SE of the coverage sqrt(p (1 - p) / 150)
    # = 0.033 at 80% and 0.018 at 95%; allow 3 SE (a larger run is in the report)
    res = backtest(n_trials=150, n_sims=2000, seed=1)
    for frac, row in res["fractions"].items():
        assert abs(row["coverage80"] - 0.80) <= 3 * row["se80"], (frac, row)
        assert abs(row["coverage95"] - 0.95) <= 3 * row["se95"], (frac, row)


# ---------------------------------------------------------------- command (calculator)
def _run(*args):
    return CliRunner().invoke(forecast_command, list(args))


def test_command_calculator_json():
    res = _run("--remaining", "50", "--centres", "10", "--shape", "0.8", "--rate", "0.9",
               "--months", "6", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == KEYS and out == calculator(50, 10, 0.8, 0.9, 6)
    res = _run("--remaining", "5", "--centres", "1", "--shape", "0.8", "--rate", "1", "--months", "3", "--json")
    assert json.loads(res.output)["mean_months"] is None
    text = _run("--remaining", "50", "--centres", "10", "--shape", "0.8", "--rate", "0.9", "--months", "6")
    assert text.exit_code == 0 and "P(50 within 6 months)" in text.output


@pytest.mark.parametrize("option,value", [("--remaining", "-1"), ("--centres", "0"),
                                          ("--shape", "0"), ("--rate", "-0.5"), ("--months", "-1")])
def test_command_calculator_bad_input_names_the_option(option, value):
    values = {"--remaining": "5", "--centres": "3", "--shape": "1", "--rate": "1", "--months": "2"}
    values[option] = value
    res = _run(*[x for kv in values.items() for x in kv], "--json")
    assert res.exit_code != 0 and option in res.output


def test_command_calculator_needs_every_option():
    res = _run("--remaining", "5", "--centres", "3")
    assert res.exit_code != 0 and "--shape" in res.output and "--months" in res.output
