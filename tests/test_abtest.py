"""Worked examples for the A/B test engine, checked against published numbers
and against independent implementations in scipy and statsmodels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import betaln
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, normal_power_het
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from cockpit.analytics.abtest import (
    AbTestInputError,
    Arm,
    always_valid,
    analyze,
    benjamini_hochberg,
    chance_to_beat_control,
    cumulative_lift,
    holm,
    minimum_detectable_diff,
    mixing_constant,
    newcombe_interval,
    pooled_z_test,
    ratio_interval,
    read_arms_csv,
    report_from_csv,
    users_per_arm_for,
    wilson_interval,
)

CLOSED_FORM = 1e-9

# (variant conversions, variant users, control conversions, control users)
PAIRS = [
    (80, 1000, 50, 1000),
    (52, 1000, 50, 1000),
    (30, 1000, 50, 1000),
    (7, 34, 1, 34),
    (1, 3, 40, 1000),
    (0, 20, 0, 10),
    (12, 150, 9, 140),
    (2_550, 50_000, 2_400, 50_000),
    (5_010_000, 100_000_000, 5_000_000, 100_000_000),
]


def arms_of(*counts: tuple[int, int]) -> list[Arm]:
    names = ["text", "video", "infographic", "podcast", "letter"]
    return [Arm(names[i], users, conv) for i, (users, conv) in enumerate(counts)]


def variant(result: dict, index: int = 1) -> dict:
    return result["arms"][index]


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------


@pytest.mark.parametrize("conv,users", [(0, 10), (10, 10), (1, 3), (50, 1000), (56, 70), (5_000_000, 10**8)])
def test_wilson_matches_statsmodels(conv: int, users: int) -> None:
    expected = proportion_confint(conv, users, alpha=0.05, method="wilson")
    assert wilson_interval(conv, users) == pytest.approx(expected, abs=CLOSED_FORM)


# Newcombe (1998) Table II, method 10, examples (a)-(h), as printed (4 decimals).
# Example (a): 56/70 = 0.8 and 48/80 = 0.6, so the difference is 0.2.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize("counts,published", NEWCOMBE_TABLE_II)
def test_newcombe_published_table(counts: tuple[int, ...], published: tuple[float, float]) -> None:
    low, high = newcombe_interval(*counts)
    assert low == pytest.approx(published[0], abs=5e-5)
    assert high == pytest.approx(published[1], abs=5e-5)


@pytest.mark.parametrize("counts", PAIRS + [c for c, _ in NEWCOMBE_TABLE_II])
def test_newcombe_matches_statsmodels(counts: tuple[int, ...]) -> None:
    expected = confint_proportions_2indep(*counts, compare="diff", method="newcomb")
    assert newcombe_interval(*counts) == pytest.approx(expected, abs=CLOSED_FORM)


def test_fagerland_2015_worked_example() -> None:
    # Fagerland, Lydersen & Laake (2015), 7/34 vs 1/34 (Perondi et al. 2004):
    # Newcombe hybrid score 0.019 to 0.34; adjusted log risk ratio 0.92 to 27.
    low, high = newcombe_interval(7, 34, 1, 34)
    assert (round(low, 3), round(high, 2)) == (0.019, 0.34)
    low, high = ratio_interval(7, 34, 1, 34)
    assert (round(low, 2), round(high)) == (0.92, 27)


@pytest.mark.parametrize("counts", PAIRS[:5] + PAIRS[6:])
def test_ratio_interval_matches_statsmodels_log_adjusted(counts: tuple[int, ...]) -> None:
    expected = confint_proportions_2indep(*counts, compare="ratio", method="log-adjusted")
    assert ratio_interval(*counts) == pytest.approx(expected, rel=CLOSED_FORM)


# --------------------------------------------------------------------------
# Tests of a difference
# --------------------------------------------------------------------------


@pytest.mark.parametrize("counts", [c for c in PAIRS if c[0] + c[2] > 0])
def test_pooled_z_test_matches_statsmodels(counts: tuple[int, ...]) -> None:
    c_var, n_var, c_ctl, n_ctl = counts
    _, expected = proportions_ztest([c_var, c_ctl], [n_var, n_ctl])
    assert pooled_z_test(*counts) == pytest.approx(expected, rel=CLOSED_FORM, abs=1e-15)


def test_pooled_z_test_is_one_without_variance() -> None:
    assert pooled_z_test(0, 10, 0, 30) == 1.0
    assert pooled_z_test(10, 10, 30, 30) == 1.0


def test_two_arm_chi_square_equals_z_test() -> None:
    # For a 2x2 table, Pearson chi-square without correction is the squared z.
    result = analyze(arms_of((1000, 50), (1000, 80)))
    assert result["chi2_p"] == pytest.approx(variant(result)["p_value"], rel=CLOSED_FORM)


@pytest.mark.parametrize("counts", PAIRS)
def test_analyze_matches_reference_tests(counts: tuple[int, ...]) -> None:
    c_var, n_var, c_ctl, n_ctl = counts
    result = analyze([Arm("control", n_ctl, c_ctl), Arm("variant", n_var, c_var)])
    row = variant(result)
    table = [[c_var, n_var - c_var], [c_ctl, n_ctl - c_ctl]]
    assert row["p_fisher"] == pytest.approx(stats.fisher_exact(table).pvalue, rel=CLOSED_FORM)
    assert row["diff"] == pytest.approx(c_var / n_var - c_ctl / n_ctl, abs=1e-15)
    assert row["diff_ci"] == pytest.approx(
        confint_proportions_2indep(c_var, n_var, c_ctl, n_ctl, compare="diff", method="newcomb"),
        abs=CLOSED_FORM,
    )
    if c_ctl:
        assert row["rel_lift"] == pytest.approx((c_var / n_var) / (c_ctl / n_ctl) - 1, rel=1e-12)


# --------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------


P_VECTORS = [
    [0.01, 0.04, 0.03, 0.2],
    [0.5],
    [0.04, 0.04, 0.04],
    [0.0, 1.0, 0.001, 0.02, 0.02, 0.7],
    list(np.random.default_rng(7).uniform(0, 0.1, 12)),
]


@pytest.mark.parametrize("p_values", P_VECTORS)
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="holm")[1]
    assert holm(p_values) == pytest.approx(list(expected), abs=1e-12)


@pytest.mark.parametrize("p_values", P_VECTORS)
def test_benjamini_hochberg_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="fdr_bh")[1]
    assert benjamini_hochberg(p_values) == pytest.approx(list(expected), abs=1e-12)


def test_holm_worked_example() -> None:
    # Sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> monotone 0.09, 0.2.
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])


def test_multiplicity_rejects_bad_p_values() -> None:
    with pytest.raises(ValueError):
        holm([0.1, float("nan")])
    with pytest.raises(ValueError):
        benjamini_hochberg([1.2])


# --------------------------------------------------------------------------
# Bayesian chance to beat control
# --------------------------------------------------------------------------


def evan_miller(c_var: int, n_var: int, c_ctl: int, n_ctl: int) -> float:
    """Evan Miller's closed form for P(p_var > p_ctl), Beta(1, 1) priors."""
    a_c, b_c = c_ctl + 1, n_ctl - c_ctl + 1
    a_v, b_v = c_var + 1, n_var - c_var + 1
    i = np.arange(a_v)
    terms = betaln(a_c + i, b_c + b_v) - np.log(b_v + i) - betaln(1 + i, b_v) - betaln(a_c, b_c)
    return float(np.exp(terms).sum())


@pytest.mark.parametrize("counts", PAIRS[:7])
def test_chance_to_beat_matches_evan_miller(counts: tuple[int, ...]) -> None:
    assert chance_to_beat_control(*counts) == pytest.approx(evan_miller(*counts), abs=1e-9)


def test_chance_to_beat_exact_small_cases() -> None:
    # Beta(1, 21) vs Beta(1, 11): P = 11 / 32.  Beta(2, 1) vs Beta(1, 2): P = 5 / 6.
    assert chance_to_beat_control(0, 20, 0, 10) == pytest.approx(11 / 32, abs=1e-12)
    assert chance_to_beat_control(1, 1, 0, 1) == pytest.approx(5 / 6, abs=1e-12)
    assert chance_to_beat_control(0, 1, 0, 1) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("counts", [(80, 1000, 50, 1000), (12, 150, 9, 140), (5_010_000, 10**8, 5_000_000, 10**8)])
def test_chance_to_beat_matches_monte_carlo(counts: tuple[int, ...]) -> None:
    c_var, n_var, c_ctl, n_ctl = counts
    rng = np.random.default_rng(2017)
    draws = 2_000_000
    var = rng.beta(c_var + 1, n_var - c_var + 1, draws)
    ctl = rng.beta(c_ctl + 1, n_ctl - c_ctl + 1, draws)
    assert chance_to_beat_control(*counts) == pytest.approx(np.mean(var > ctl), abs=1e-3)


def test_chance_to_beat_is_symmetric() -> None:
    forward = chance_to_beat_control(12, 150, 9, 140)
    backward = chance_to_beat_control(9, 140, 12, 150)
    assert forward + backward == pytest.approx(1.0, abs=1e-10)


# --------------------------------------------------------------------------
# Power and sample size
# --------------------------------------------------------------------------


def test_sample_size_r_power_prop_test_example() -> None:
    # R documentation: power.prop.test(p1 = .50, p2 = .75, power = .90) gives n = 76.7
    # (76.70692 unrounded, as statsmodels' own test against R also states).
    assert users_per_arm_for(0.50, 0.75, alpha=0.05, power=0.90) == pytest.approx(76.70692, abs=1e-5)


@pytest.mark.parametrize("p_ctl,p_var,power", [(0.05, 0.08, 0.8), (0.5, 0.75, 0.9), (0.1, 0.12, 0.8), (0.3, 0.2, 0.8)])
def test_sample_size_matches_statsmodels(p_ctl: float, p_var: float, power: float) -> None:
    fleiss = samplesize_proportions_2indep_onetail(p_var - p_ctl, p_ctl, power, alpha=0.05)
    assert users_per_arm_for(p_ctl, p_var, 0.05, power) == pytest.approx(fleiss, rel=CLOSED_FORM)
    # The arcsine (Cohen's h) approximation is a different formula: loose agreement only.
    arcsine = NormalIndPower().solve_power(proportion_effectsize(p_var, p_ctl), power=power, alpha=0.05)
    assert users_per_arm_for(p_ctl, p_var, 0.05, power) == pytest.approx(arcsine, rel=0.02)


def test_minimum_detectable_diff_worked_example() -> None:
    # (1.959964 + 0.841621) * sqrt(0.05 * 0.95 * (1/1000 + 1/1000)) = 0.0273065
    mde = minimum_detectable_diff(0.05, 1000, 1000, alpha=0.05, power=0.8)
    assert mde == pytest.approx(0.0273065, abs=1e-7)
    # One-sided power at that difference, same variance under H0 and H1, is exactly 0.8.
    sd = math.sqrt(0.05 * 0.95 * 2)
    power = normal_power_het(mde, 1000, 0.025, std_null=sd, std_alternative=sd, alternative="larger")
    assert power == pytest.approx(0.8, abs=1e-9)
    assert minimum_detectable_diff(0.0, 1000, 1000) is None


def test_users_needed_in_analyze() -> None:
    result = analyze(arms_of((1000, 50), (600, 80)))
    row = variant(result)
    expected = math.ceil(samplesize_proportions_2indep_onetail(80 / 600 - 0.05, 0.05, 0.8))
    assert row["users_needed_per_arm"] == expected
    assert row["users_still_needed"] == max(0, expected - 600)
    # A zero difference is sized for a 10 % relative lift instead.
    row = variant(analyze(arms_of((1000, 50), (1000, 50))))
    assert row["users_needed_per_arm"] == math.ceil(users_per_arm_for(0.05, 0.055))


# --------------------------------------------------------------------------
# Always-valid inference (mSPRT)
# --------------------------------------------------------------------------


def mixture_likelihood_ratio(theta_hat: float, theta0: float, variance: float, tau2: float) -> float:
    """Lambda(theta0) by numerical integration over the N(0, tau^2) mixing density."""
    def integrand(delta: float) -> float:
        log_ratio = ((theta_hat - theta0) ** 2 - (theta_hat - theta0 - delta) ** 2) / (2 * variance)
        return math.exp(log_ratio) * stats.norm.pdf(delta, scale=math.sqrt(tau2))

    sd = math.sqrt(tau2)
    return integrate.quad(integrand, -40 * sd, 40 * sd, points=[0.0, theta_hat - theta0], limit=200)[0]


@pytest.mark.parametrize("counts", [(80, 1000, 50, 1000), (520, 5000, 450, 5000), (30, 400, 20, 380)])
def test_always_valid_closed_form_equals_mixture_integral(counts: tuple[int, ...]) -> None:
    c_var, n_var, c_ctl, n_ctl = counts
    av = always_valid(*counts)
    p_v, p_c = (c_var + 1) / (n_var + 2), (c_ctl + 1) / (n_ctl + 2)
    variance = p_v * (1 - p_v) / n_var + p_c * (1 - p_c) / n_ctl
    theta = c_var / n_var - c_ctl / n_ctl
    lam0 = mixture_likelihood_ratio(theta, 0.0, variance, av.mixing_variance)
    assert av.p_value == pytest.approx(min(1.0, 1 / lam0), rel=1e-7)
    # The interval ends are where the mixture likelihood ratio reaches 1 / alpha.
    for bound in (av.low, av.high):
        assert mixture_likelihood_ratio(theta, bound, variance, av.mixing_variance) == pytest.approx(20, rel=1e-7)


def test_mixing_variance_default() -> None:
    # c = 2 log 20 + log(1 + 2 log 20) = 7.93615 at alpha = 0.05
    assert mixing_constant(0.05) == pytest.approx(7.93615, abs=1e-5)
    av = always_valid(50, 1000, 50, 1000, tuning_users_per_arm=1000)
    p = 51 / 1002
    assert av.mixing_variance == pytest.approx(mixing_constant(0.05) * 2 * p * (1 - p) / 1000, rel=1e-12)


@pytest.mark.parametrize("counts", [c for c in PAIRS if c[0] + c[2] > 0])
def test_always_valid_is_more_conservative_than_fixed_horizon(counts: tuple[int, ...]) -> None:
    c_var, n_var, c_ctl, n_ctl = counts
    row = variant(analyze([Arm("control", n_ctl, c_ctl), Arm("variant", n_var, c_var)]))
    assert row["always_valid_p"] >= row["p_value"]
    low, high = row["always_valid_ci"]
    assert low <= row["diff_ci"][0] and high >= row["diff_ci"][1]


@pytest.mark.parametrize("counts", PAIRS + [c for c, _ in NEWCOMBE_TABLE_II])
def test_always_valid_interval_contains_fixed_interval(counts: tuple[int, ...]) -> None:
    c_var, n_var, c_ctl, n_ctl = counts
    row = variant(analyze([Arm("control", n_ctl, c_ctl), Arm("variant", n_var, c_var)]))
    low, high = row["always_valid_ci"]
    assert -1 <= low <= row["diff_ci"][0] <= row["diff_ci"][1] <= high <= 1


def test_always_valid_controls_error_under_daily_peeking() -> None:
    # A/A test, 40 daily looks of 50 users per arm, 10 % conversion, 600 replays.
    rng = np.random.default_rng(1)
    replays, looks, daily_users = 600, 40, 50
    conv = rng.binomial(daily_users, 0.10, size=(replays, looks, 2)).cumsum(axis=1)
    users = daily_users * np.arange(1, looks + 1)
    naive_alarm = av_alarm = 0
    for replay in conv:
        naive = av = False
        for n, (c_a, c_b) in zip(users, replay):
            pooled = (c_a + c_b) / (2 * n)
            z = (c_b - c_a) / n / math.sqrt(pooled * (1 - pooled) * 2 / n)
            naive |= math.erfc(abs(z) / math.sqrt(2)) < 0.05
            av |= always_valid(int(c_b), int(n), int(c_a), int(n)).p_value < 0.05
        naive_alarm += naive
        av_alarm += av
    assert naive_alarm / replays > 0.15  # peeking at the fixed-horizon p-value
    assert av_alarm / replays <= 0.05


# --------------------------------------------------------------------------
# analyze(): whole results
# --------------------------------------------------------------------------


def test_variant_wins() -> None:
    result = analyze(arms_of((1000, 50), (1000, 80)))
    assert result["decision"] == "variant_wins" and result["winner"] == "video"
    assert result["verdict"].startswith("video wins: 8% vs 5%")
    row = variant(result)
    assert row["p_decision"] == row["p_value"] and not row["small_counts"]
    assert row["rel_lift"] == pytest.approx(0.6)


def test_control_wins() -> None:
    result = analyze(arms_of((2000, 120), (2000, 70)))
    assert result["decision"] == "control_wins"
    assert result["verdict"].startswith("Control (text) wins:")


def test_need_more_data() -> None:
    result = analyze(arms_of((1000, 50), (1000, 55)))
    row = variant(result)
    more = min(row["users_needed_per_arm"], row["users_needed_for_mde"]) - 1000
    assert result["verdict"] == f"No difference detectable yet: need about {more:,} more users per arm."


def test_no_meaningful_difference_once_planned_sample_reached() -> None:
    result = analyze(arms_of((1000, 50), (1000, 52)), planned_users_per_arm=1000)
    assert result["decision"] == "no_difference"
    assert result["verdict"].startswith("No meaningful difference:")


def test_no_meaningful_difference_when_large_enough_for_mde() -> None:
    result = analyze(arms_of((40_000, 2000), (40_000, 2010)))
    assert result["decision"] == "no_difference"


def test_peeking_uses_always_valid_p() -> None:
    result = analyze(arms_of((300, 15), (300, 29)), planned_users_per_arm=1000)
    row = variant(result)
    assert row["p_value"] < 0.05 < row["always_valid_p"]
    assert row["p_decision"] == row["always_valid_p"]
    assert result["decision"] == "need_more_data"
    assert "need about 700 more users per arm" in result["verdict"]
    assert "always-valid p-value" in result["verdict"]
    assert any("Planned sample" in note for note in result["notes"])


def test_peeking_with_overwhelming_evidence_still_wins() -> None:
    result = analyze(arms_of((300, 15), (300, 45)), planned_users_per_arm=1000)
    assert result["decision"] == "variant_wins"
    assert "interim look at 300 of 1,000" in result["verdict"]


def test_zero_conversions_everywhere() -> None:
    result = analyze(arms_of((100, 0), (120, 0), (90, 0)))
    json.dumps(result, allow_nan=False)
    assert result["chi2_p"] is None
    assert any("chi-square" in note for note in result["notes"])
    for row in result["arms"][1:]:
        assert row["rel_lift"] is None and row["rel_lift_ci"] is None
        assert row["p_value"] == 1.0 and row["p_fisher"] == 1.0
        assert row["mde_abs"] is None and row["users_needed_per_arm"] is None
    assert result["verdict"].startswith("No difference detectable yet")


def test_everyone_converts() -> None:
    result = analyze(arms_of((40, 40), (50, 50)))
    json.dumps(result, allow_nan=False)
    row = variant(result)
    assert result["chi2_p"] is None and row["p_value"] == 1.0
    assert row["rel_lift"] == 0.0 and row["rel_lift_ci"] is None
    assert row["diff_ci"] == pytest.approx(
        confint_proportions_2indep(50, 50, 40, 40, compare="diff", method="newcomb"), abs=CLOSED_FORM
    )


def test_tiny_arm_with_planned_weights_uses_fisher() -> None:
    arms = [Arm("text", 1000, 40, weight=1000), Arm("video", 3, 1, weight=3)]
    result = analyze(arms)
    row = variant(result)
    assert not result["srm"]
    assert row["small_counts"]
    assert row["p_value"] < 0.05 < row["p_fisher"]
    assert row["p_decision"] == pytest.approx(row["p_fisher"])
    assert result["decision"] == "need_more_data"
    assert any("Fisher" in note for note in result["notes"])


def test_tiny_arm_without_weights_is_a_sample_ratio_mismatch() -> None:
    result = analyze(arms_of((1000, 40), (3, 1)))
    assert result["srm"] and result["decision"] == "srm"


def test_very_large_counts() -> None:
    result = analyze(arms_of((100_000_000, 5_000_000), (100_000_000, 5_010_000)))
    json.dumps(result, allow_nan=False)
    row = variant(result)
    _, p = proportions_ztest([5_010_000, 5_000_000], [100_000_000, 100_000_000])
    assert row["p_value"] == pytest.approx(p, rel=CLOSED_FORM)
    assert row["chance_to_beat_control"] == pytest.approx(stats.norm.cdf(1e-4 / math.sqrt(2 * 0.05 * 0.95 / 1e8)), abs=1e-4)
    assert result["decision"] == "variant_wins"


@pytest.mark.parametrize("counts", [
    ((1000, 50), (1000, 80), (1000, 55)),
    ((2000, 100), (2000, 150), (2000, 90), (2000, 101)),
])
def test_three_and_four_arms(counts: tuple[tuple[int, int], ...]) -> None:
    result = analyze(arms_of(*counts))
    rows = result["arms"][1:]
    assert [r["p_adjusted"] for r in rows] == pytest.approx(
        list(multipletests([r["p_value"] for r in rows], method="holm")[1]), abs=1e-12
    )
    table = [[conv, users - conv] for users, conv in counts]
    assert result["chi2_p"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=CLOSED_FORM)
    assert result["srm_p"] == pytest.approx(stats.chisquare([u for u, _ in counts]).pvalue, rel=CLOSED_FORM)
    assert result["decision"] == "variant_wins" and result["winner"] == "video"
    assert [r["arm"] for r in result["arms"]] == ["text", "video", "infographic", "podcast"][: len(counts)]


def test_sample_ratio_mismatch_against_weights() -> None:
    arms = [Arm("simple", 5000, 250, weight=1), Arm("detailed", 5000, 400, weight=2)]
    result = analyze(arms)
    expected = stats.chisquare([5000, 5000], f_exp=[10000 / 3, 20000 / 3]).pvalue
    assert result["srm_p"] == pytest.approx(expected, rel=CLOSED_FORM)
    assert result["srm"] and result["winner"] is None
    assert result["verdict"].startswith("Sample ratio mismatch (p = ")
    assert result["verdict"].endswith("do not trust this test.")


def test_no_sample_ratio_mismatch_when_weights_fit() -> None:
    arms = [Arm("simple", 3300, 165, weight=1), Arm("detailed", 6700, 400, weight=2)]
    assert not analyze(arms)["srm"]


@pytest.mark.parametrize("arms", [
    arms_of((1000, 50), (1000, 80)),
    arms_of((100, 0), (120, 0)),
    arms_of((40, 40), (50, 50)),
    arms_of((1000, 40), (3, 1)),
    arms_of((10, 0), (10, 10)),
    arms_of((1, 0), (1, 1), (1, 0)),
    arms_of((100_000_000, 5_000_000), (100_000_000, 5_010_000)),
])
def test_output_is_strict_json(arms: list[Arm]) -> None:
    result = analyze(arms, planned_users_per_arm=500)
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert set(result) >= {"arms", "chi2_p", "srm_p", "srm", "verdict", "notes", "method"}
    for row in result["arms"][1:]:
        assert set(row) >= {
            "diff", "diff_ci", "rel_lift", "rel_lift_ci", "p_value", "p_fisher", "p_adjusted",
            "chance_to_beat_control", "small_counts", "mde_abs", "users_needed_per_arm",
            "users_still_needed", "always_valid_p", "always_valid_ci",
        }


@pytest.mark.parametrize("arms,field", [
    ([Arm("a", 10, 1)], None),
    ([Arm("a", 10, 1), Arm("a", 10, 2)], "arm"),
    ([Arm("a", 10, 11), Arm("b", 10, 2)], "conversions"),
    ([Arm("a", -1, 0), Arm("b", 10, 2)], "users"),
    ([Arm("a", 0, 0), Arm("b", 10, 2)], "users"),
    ([Arm("a", 10, 1.5), Arm("b", 10, 2)], "conversions"),
    ([Arm("a", 10, 1, 1.0), Arm("b", 10, 2)], "weight"),
    ([Arm("a", 10, 1, -1.0), Arm("b", 10, 2, 1.0)], "weight"),
])
def test_analyze_rejects_bad_arms(arms: list[Arm], field: str | None) -> None:
    with pytest.raises(AbTestInputError) as error:
        analyze(arms)
    if field:
        assert f"field {field!r}" in str(error.value)
        assert "arm " in str(error.value)


# --------------------------------------------------------------------------
# read_arms_csv
# --------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "arms.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_arms_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffArm, Users ,Conversions,weight\n text ,1000,50,1\n\nvideo,1000,80,1\n")
    assert read_arms_csv(path) == [Arm("text", 1000, 50, 1.0), Arm("video", 1000, 80, 1.0)]


def test_read_arms_csv_without_weights(tmp_path: Path) -> None:
    path = write(tmp_path, "arm,users,conversions,weight\nA,10,1,\nB,12,2,\n")
    assert read_arms_csv(path) == [Arm("A", 10, 1), Arm("B", 12, 2)]


BAD_CSVS = [
    ("arm,users\nA,10\nB,10\n", ["missing column", "field 'conversions'"]),
    ("arm,users,conversions\nA,10,1\nB,ten,2\n", ["row 2", "field 'users'", "whole number"]),
    ("arm,users,conversions\nA,10,1\nB,10.5,2\n", ["row 2", "field 'users'", "whole number"]),
    ("arm,users,conversions\nA,10,1.0\nB,10,2\n", ["row 1", "field 'conversions'", "whole number"]),
    ("arm,users,conversions\nA,10,-1\nB,10,2\n", ["row 1", "field 'conversions'", "negative"]),
    ("arm,users,conversions\nA,-10,1\nB,10,2\n", ["row 1", "field 'users'", "negative"]),
    ("arm,users,conversions\nA,10,1\nB,10,12\n", ["row 2", "field 'conversions'", "exceed"]),
    ("arm,users,conversions\nA,10,1\nB,10,2\nA,5,1\n", ["row 3", "field 'arm'", "duplicate", "row 1"]),
    ("arm,users,conversions\nA,10,1\n", ["at least two arms", "found 1"]),
    ("arm,users,conversions\n", ["at least two arms", "found 0"]),
    ("arm,users,conversions,weight\nA,10,1,1\nB,10,2,0\n", ["row 2", "field 'weight'", "positive"]),
    ("arm,users,conversions,weight\nA,10,1,-1\nB,10,2,1\n", ["row 1", "field 'weight'", "positive"]),
    ("arm,users,conversions,weight\nA,10,1,half\nB,10,2,1\n", ["row 1", "field 'weight'", "positive"]),
    ("arm,users,conversions,weight\nA,10,1,nan\nB,10,2,1\n", ["row 1", "field 'weight'", "positive"]),
    ("arm,users,conversions,weight\nA,10,1,1\nB,10,2,\n", ["row 2", "field 'weight'", "every row"]),
    ("arm,users,conversions\nA,,1\nB,10,2\n", ["row 1", "field 'users'", "empty"]),
    ("arm,users,conversions\nA,10\nB,10,2\n", ["row 1", "field 'conversions'", "empty"]),
    ("arm,users,conversions\n,10,1\nB,10,2\n", ["row 1", "field 'arm'", "empty"]),
    ("arm,users,conversions\nA,0,0\nB,10,2\n", ["row 1", "field 'users'", "at least 1"]),
    ("arm,users,conversions\n\nA,10,1\nB,x,2\n", ["row 2 (line 4)", "field 'users'"]),
    ("", ["empty"]),
]


@pytest.mark.parametrize("text,fragments", BAD_CSVS)
def test_read_arms_csv_errors_name_file_row_and_field(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text, name="creatives.csv")
    with pytest.raises(AbTestInputError) as error:
        read_arms_csv(path)
    message = str(error.value)
    assert "creatives.csv" in message
    for fragment in fragments:
        assert fragment in message


def test_read_arms_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AbTestInputError, match="nope.csv.*cannot read file"):
        read_arms_csv(tmp_path / "nope.csv")


def test_read_arms_csv_error_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, "arm,users,conversions\nA,10,1\nB,10,12\n")
    with pytest.raises(AbTestInputError) as error:
        read_arms_csv(path)
    assert (error.value.row, error.value.field, error.value.file) == (2, "conversions", str(path))
    assert isinstance(error.value, ValueError)


def test_report_from_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "arm,users,conversions\ntext,1000,50\nvideo,1000,80\ninfographic,1000,61\n")
    report = report_from_csv(path)
    assert report == analyze(read_arms_csv(path))
    json.dumps(report, allow_nan=False)
    assert report["control"] == "text"


# --------------------------------------------------------------------------
# cumulative_lift
# --------------------------------------------------------------------------


def daily_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "day": ["2024-03-01", "2024-03-01", "2024-03-02", "2024-03-02", "2024-03-02", "2024-03-03", "2024-03-03"],
        "arm": ["text", "video", "text", "video", "video", "text", "infographic"],
        "users": [100, 90, 120, 60, 50, 110, 40],
        "conversions": [5, 8, 6, 4, 5, 7, 3],
    })


def test_cumulative_lift_counts_and_intervals() -> None:
    out = cumulative_lift(daily_frame())
    assert list(out["arm"]) == ["video", "infographic"] * 3
    last_video = out[(out["day"] == "2024-03-03") & (out["arm"] == "video")].iloc[0]
    assert (last_video["users"], last_video["conversions"]) == (200, 17)
    assert (last_video["control_users"], last_video["control_conversions"]) == (330, 18)
    assert last_video["diff"] == pytest.approx(17 / 200 - 18 / 330)
    assert (last_video["diff_ci_low"], last_video["diff_ci_high"]) == pytest.approx(
        confint_proportions_2indep(17, 200, 18, 330, compare="diff", method="newcomb"), abs=CLOSED_FORM
    )
    # The last day agrees with analyze() on the totals.
    row = variant(analyze([Arm("text", 330, 18), Arm("video", 200, 17)]))
    assert [last_video["always_valid_low"], last_video["always_valid_high"]] == pytest.approx(row["always_valid_ci"])
    assert last_video["always_valid_p"] == pytest.approx(row["always_valid_p"])
    valid = out.dropna()
    assert (valid["always_valid_low"] <= valid["diff_ci_low"]).all()
    assert (valid["always_valid_high"] >= valid["diff_ci_high"]).all()


def test_cumulative_lift_arm_without_users_yet() -> None:
    out = cumulative_lift(daily_frame())
    first = out[(out["day"] == "2024-03-01") & (out["arm"] == "infographic")].iloc[0]
    assert first["users"] == 0 and math.isnan(first["diff"]) and math.isnan(first["always_valid_p"])


def test_cumulative_lift_explicit_control() -> None:
    out = cumulative_lift(daily_frame(), control="video")
    assert set(out["arm"]) == {"text", "infographic"}
    with pytest.raises(AbTestInputError, match="control arm"):
        cumulative_lift(daily_frame(), control="radio")


@pytest.mark.parametrize("change,field", [
    (lambda d: d.drop(columns="users"), "users"),
    (lambda d: d.assign(conversions=[5, 8, -6, 4, 5, 7, 3]), "conversions"),
    (lambda d: d.assign(users=[100, 90, 120.5, 60, 50, 110, 40]), "users"),
    (lambda d: d.assign(conversions=[500, 8, 6, 4, 5, 7, 3]), "conversions"),
])
def test_cumulative_lift_rejects_bad_input(change, field: str) -> None:
    with pytest.raises(AbTestInputError, match=f"field '{field}'"):
        cumulative_lift(change(daily_frame()))
