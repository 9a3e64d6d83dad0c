"""Kaplan-Meier against scipy.stats.ecdf and against the 6-MP leukemia example
worked out by hand."""
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from cockpit.analytics.survival import kaplan_meier, number_at_risk

# Freireich et al. (1963) 6-MP arm, as in Gehan (1965) and Kalbfleisch & Prentice:
# weeks in remission, False = censored (still in remission).
SIX_MP = [(6, True), (6, True), (6, True), (6, False), (7, True), (9, False), (10, True),
          (10, False), (11, False), (13, True), (16, True), (17, False), (19, False),
          (20, False), (22, True), (23, True), (25, False), (32, False), (32, False),
          (34, False), (35, False)]


def _six_mp():
    t, e = zip(*SIX_MP)
    return kaplan_meier(t, e)


def test_six_mp_by_hand():
    km = _six_mp()
    # event times, at risk n and events d, read off the data above
    assert km.time.tolist() == [6, 7, 10, 13, 16, 22, 23]
    assert km.at_risk.tolist() == [21, 17, 15, 12, 11, 7, 6]
    assert km.events.tolist() == [3, 1, 1, 1, 1, 1, 1]
    # S = product of (1 - d/n): 18/21, *16/17, *14/15, *11/12, *10/11, *6/7, *5/6
    by_hand = [Fraction(6, 7), Fraction(96, 119), Fraction(64, 85), Fraction(176, 255),
               Fraction(32, 51), Fraction(64, 119), Fraction(160, 357)]
    assert km.survival == pytest.approx([float(s) for s in by_hand], abs=1e-15)
    # Greenwood: sum d/(n(n-d)) = 3/(21*18) at week 6, + 1/(17*16) at week 7, ...
    terms = [Fraction(3, 21 * 18), Fraction(1, 17 * 16), Fraction(1, 15 * 14), Fraction(1, 12 * 11),
             Fraction(1, 11 * 10), Fraction(1, 7 * 6), Fraction(1, 6 * 5)]
    sums = np.cumsum([float(x) for x in terms])
    assert km.std_err == pytest.approx([float(s) * np.sqrt(g) for s, g in zip(by_hand, sums)], abs=1e-15)
    # the published standard errors (Kalbfleisch & Prentice, table 1.1)
    assert km.std_err.round(4).tolist() == [0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346]


def test_six_mp_median_and_its_interval():
    km = _six_mp()
    # S(22) = 0.538 > 0.5, S(23) = 0.448 <= 0.5
    assert km.median() == 23.0
    # log-log band: lower limit first <= 0.5 at week 13 (0.432; at week 10 it is 0.503),
    # the upper limit never (0.680 at the end): R survfit(conf.type="log-log") says 13, NA
    assert km.lower.round(3).tolist() == [0.620, 0.563, 0.503, 0.432, 0.368, 0.268, 0.188]
    assert km.median_ci() == (13.0, None)


def test_six_mp_number_at_risk():
    km = _six_mp()
    # at week 0 all 21; at week 10 everybody with time >= 10 (15); at 30: 32, 32, 34, 35
    assert km.at_risk_at([0, 10, 11, 30, 35, 36]).tolist() == [21, 15, 13, 4, 1, 0]


def _scipy(t, e):
    data = stats.CensoredData.right_censored(t, ~np.asarray(e, dtype=bool))
    return stats.ecdf(data).sf


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_scipy_ecdf_on_censored_data(seed):
    rng = np.random.default_rng(seed)
    n = 400
    event_time = rng.gamma(1.5, 30, n)
    censor_time = rng.uniform(0, 120, n)
    # whole days, so that events and censorings tie, as they do in the cockpit
    t = np.floor(np.minimum(event_time, censor_time))
    e = event_time <= censor_time
    km = kaplan_meier(t, e)
    sf = _scipy(t, e)
    grid = np.arange(0, 125, 0.5)
    assert km.survival_at(grid) == pytest.approx(sf.evaluate(grid), abs=1e-12)
    assert km.survival == pytest.approx(sf.evaluate(km.time), abs=1e-12)
    ci = sf.confidence_interval(0.95, method="log-log")
    lo, hi = km.band_at(km.time)
    ok = np.isfinite(lo)
    assert ok.sum() > 20
    assert lo[ok] == pytest.approx(ci.low.evaluate(km.time)[ok], abs=1e-12)
    assert hi[ok] == pytest.approx(ci.high.evaluate(km.time)[ok], abs=1e-12)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.8, 0.95])
def test_band_at_each_confidence_level_matches_scipy(confidence):
    """The normal quantile is worked out once per level: levels asked for in turn each
    keep their own band."""
    t, e = zip(*SIX_MP)
    km = kaplan_meier(t, e, confidence=confidence)
    ci = _scipy(t, e).confidence_interval(confidence, method="log-log")
    lo, hi = km.band_at(km.time)
    assert lo == pytest.approx(ci.low.evaluate(km.time), abs=1e-12)
    assert hi == pytest.approx(ci.high.evaluate(km.time), abs=1e-12)


def test_weights_equal_repeated_rows():
    t = [0, 1, 1, 2, 3, 3, 5]
    e = [True, True, False, True, False, True, False]
    w = [2, 3, 1, 4, 2, 1, 5]
    grouped = kaplan_meier(t, e, weights=w)
    expanded = kaplan_meier(np.repeat(t, w), np.repeat(e, w))
    assert grouped.survival == pytest.approx(expanded.survival, abs=1e-15)
    assert grouped.lower == pytest.approx(expanded.lower, abs=1e-15, nan_ok=True)
    assert grouped.n == 18 and grouped.n_events == 10
    assert grouped.at_risk_at([0, 2, 6]).tolist() == [18, 12, 0]


def test_everybody_has_the_event_at_the_end():
    km = kaplan_meier([1, 2, 3], [True, True, True])
    assert km.survival.tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert km.median() == 2.0
    assert np.isnan(km.lower[-1]) and np.isnan(km.upper[-1])


def test_no_events_means_median_not_reached():
    km = kaplan_meier([4, 5, 9], [False, False, False])
    assert km.time.size == 0 and km.median() is None and km.median_ci() == (None, None)
    assert km.survival_at([0, 100]).tolist() == [1.0, 1.0]


def test_number_at_risk_plain():
    assert number_at_risk([3, 1, 2, 2], [0, 2, 2.5, 4]).tolist() == [4, 3, 1, 0]


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        kaplan_meier([-1, 2], [True, False])
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [True])
