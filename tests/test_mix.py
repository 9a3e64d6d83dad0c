"""The mix model: carry-over and saturation transforms, the fit's exact Jacobian, recovery
of known curves on simulated data, the demo's planted curves, warnings, the what-if
projection, the optimiser and the target date."""
from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest

from cockpit.analytics import adstock as ad
from cockpit.analytics import mix
from cockpit.analytics import optimise as opt
from cockpit.filters import Filters

# ---------------------------------------------------------------- transforms


def test_adstock_is_the_geometric_recursion_with_a_steady_start():
    x = np.array([10.0, 0.0, 0.0, 20.0, 5.0])
    a = ad.adstock(x, 0.5)
    expected = [10.0]  # steady state before the first week: A_-1 = x_0
    for v in x[1:]:
        expected.append(0.5 * v + 0.5 * expected[-1])
    assert a == pytest.approx(expected)
    assert ad.adstock(np.full(6, 7.0), 0.8) == pytest.approx(np.full(6, 7.0))   # constant spend
    assert ad.adstock_from(np.array([0.0, 0.0]), 0.5, start=8.0) == pytest.approx([4.0, 2.0])


def test_adstock_derivative_and_column_version():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, (30, 3))
    d = np.array([0.2, 0.5, 0.9])
    a, g = ad.adstock_columns(x, d)
    for c in range(3):
        assert a[:, c] == pytest.approx(ad.adstock(x[:, c], d[c]))
        assert g[:, c] == pytest.approx(ad.adstock_ddecay(x[:, c], a[:, c], d[c]))
        step = 1e-6
        numeric = (ad.adstock(x[:, c], d[c] + step) - ad.adstock(x[:, c], d[c] - step)) / (2 * step)
        assert g[:, c] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_hill_curve_derivatives_and_saturation_point():
    u = np.array([0.0, 0.3, 1.0, 2.5])
    h, du, dlogk, dn = ad.hill_derivatives(u, 1.3, 1.7)
    assert ad.hill(np.array([1.3]), 1.3, 1.7)[0] == pytest.approx(0.5)   # K is half-saturation
    step = 1e-6
    assert du[0] == 0   # shape > 1: the first euro brings nothing
    assert du[1:] == pytest.approx((ad.hill(u[1:] + step, 1.3, 1.7) - ad.hill(u[1:] - step, 1.3, 1.7))
                                   / (2 * step), rel=1e-4)
    k = np.log(1.3)
    assert dlogk == pytest.approx((ad.hill(u, np.exp(k + step), 1.7) - ad.hill(u, np.exp(k - step), 1.7))
                                  / (2 * step), rel=1e-4, abs=1e-8)
    assert dn == pytest.approx((ad.hill(u, 1.3, 1.7 + step) - ad.hill(u, 1.3, 1.7 - step)) / (2 * step),
                               rel=1e-4, abs=1e-8)
    s = ad.saturation_point(1.3, 1.7)
    assert ad.hill(np.array([s]), 1.3, 1.7)[0] == pytest.approx(0.8)


# ---------------------------------------------------------------- simulated data

TRUE_DECAY = np.array([0.5, 0.3, 0.7])
TRUE_HALF = np.array([1000.0, 350.0, 3000.0])     # EUR per week
TRUE_SHAPE = np.array([1.5, 1.0, 2.0])
TRUE_BETA = np.array([40.0, 25.0, 30.0])          # outcome per week at saturation
TYPICAL = np.array([1000.0, 500.0, 2000.0])


def simulate(seed: int, weeks: int = 156, noise: float = 2.0):
    """Weekly spend in flights of 3-8 weeks (0.2x-2.5x the typical level, sometimes
    paused), known adstock and Hill curves, baseline with trend and yearly season,
    Gaussian noise of sd ``noise`` on an outcome of about 100 a week."""
    rng = np.random.default_rng(seed)
    spend = np.zeros((weeks, 3))
    for c in range(3):
        t = 0
        while t < weeks:
            length = int(rng.integers(3, 9))
            level = TYPICAL[c] * np.exp(rng.uniform(np.log(0.2), np.log(2.5)))
            if rng.random() < 0.1:
                level = 0.0
            n = min(length, weeks - t)
            spend[t:t + n, c] = level * np.exp(0.1 * rng.standard_normal(n))
            t += length
    w = np.arange(weeks)
    base = 50 + 0.1 * w + 8 * np.sin(2 * np.pi * w / 52.1775) + 4 * np.cos(2 * np.pi * w / 52.1775)
    contrib = np.column_stack([TRUE_BETA[c] * ad.hill(ad.adstock(spend[:, c], TRUE_DECAY[c]), TRUE_HALF[c],
                                                      TRUE_SHAPE[c]) for c in range(3)])
    y = base + contrib.sum(axis=1) + noise * rng.standard_normal(weeks)
    return mix.make_data(y, spend, ["a", "b", "c"]), contrib.sum(axis=0)


@pytest.fixture(scope="module")
def simulated():
    return [(simulate(seed), mix.fit(simulate(seed)[0], n_boot=0)) for seed in (1, 2, 3)]


def test_jacobian_is_exact():
    data, _ = simulate(5, weeks=60)
    design = mix.make_design(data)
    prob = mix._Problem(data, design, float(data.y.mean()))
    theta = prob.linear_start(0.4, 0.9)
    theta[2 * 3:3 * 3] = [1.3, 0.8, 2.1]   # shapes off 1, so every derivative matters
    jac = prob.jacobian(theta)
    numeric = np.empty_like(jac)
    for i in range(len(theta)):
        step = 1e-6 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        numeric[:, i] = (prob.residuals(up) - prob.residuals(down)) / (2 * step)
    assert jac == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_recovers_known_curves_on_simulated_data(simulated):
    """156 weeks, 3 channels, noise sd 2 on ~100 a week. Stated tolerances: contribution
    within 30% of the true one, weekly carry-over within 0.1, half-saturation spend
    within a factor 1.7; R2 above 0.95 and held-out error below 5%."""
    for (data, true_contrib), fitted in simulated:
        est = fitted.contributions()
        assert est == pytest.approx(true_contrib, rel=0.30)
        assert fitted.params.decay == pytest.approx(TRUE_DECAY, abs=0.10)
        half = fitted.params.half * fitted.design.spend_scale
        assert np.all(np.abs(np.log(half / TRUE_HALF)) < np.log(1.7))
        assert fitted.r2 > 0.95
        assert fitted.mape_holdout < 0.05
        assert not fitted.warnings


def test_ranks_channels_by_cost_per_outcome_on_simulated_data(simulated):
    for (data, true_contrib), fitted in simulated:
        true_cost = data.spend.sum(axis=0) / true_contrib
        est_cost = [row["cost_per_outcome"] for row in fitted.channel_table()]
        assert np.argsort(est_cost).tolist() == np.argsort(true_cost).tolist()


def test_channel_numbers_are_consistent(simulated):
    (data, _), fitted = simulated[0]
    rows = fitted.channel_table()
    total = data.y.sum()
    for c, row in enumerate(rows):
        assert row["share"] == pytest.approx(row["contribution"] / total)
        assert row["roas"] == pytest.approx(row["contribution"] / row["spend"])
        assert row["cost_per_outcome"] == pytest.approx(row["spend"] / row["contribution"])
        # marginal cost at the current spend: 1 / slope of the weekly response there
        now = fitted.current_spend()
        step = 1e-3 * now[c]
        up, down = now.copy(), now.copy()
        up[c] += step
        down[c] -= step
        slope = (fitted.weekly_response(up)[c] - fitted.weekly_response(down)[c]) / (2 * step)
        assert row["marginal_cost"] == pytest.approx(1 / slope, rel=1e-4)
        sat = row["saturation_spend"]
        assert fitted.weekly_response(np.where(np.arange(3) == c, sat, 0.0))[c] == pytest.approx(
            0.8 * fitted.y_scale * fitted.params.beta[c])
    report = mix.report(fitted)
    assert set(report) == {"channels", "fit"} and set(report["fit"]) == {"r2", "mape_holdout"}
    assert set(report["channels"]["a"]) == {"contribution", "share", "roas"}


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    data, _ = simulate(4, weeks=104)
    one = mix.fit(data, n_boot=20, seed=3)
    two = mix.fit(data, n_boot=20, seed=3)
    assert [r["contribution_low"] for r in one.channel_table()] == [r["contribution_low"] for r in two.channel_table()]
    for row in one.channel_table():
        assert row["contribution_low"] <= row["contribution"] * 1.05
        assert row["contribution_high"] >= row["contribution"] * 0.95
    assert len(one.boot) == 20


# ---------------------------------------------------------------- warnings and bad input


def test_plain_warnings_when_the_data_cannot_support_the_model():
    data, _ = simulate(6, weeks=40)
    spend = np.column_stack([data.spend, np.full(40, 500.0), np.zeros(40)])
    result = mix.fit(mix.make_data(data.y, spend, ["a", "b", "c", "flat", "none"]), n_boot=0)
    text = " ".join(result.warnings)
    # 4 channels with spend x 4 + intercept, trend, one Fourier pair
    assert "Only 40 weeks of data for 20 model parameters" in text
    assert "Spend on flat never varies" in text
    assert "none has no spend in these weeks" in text
    assert "Less than a year of data" in text
    rows = {r["channel"]: r for r in result.channel_table()}
    assert rows["none"]["contribution"] == 0 and rows["none"]["roas"] is None
    assert [r["channel"] for r in result.channel_table()] == ["a", "b", "c", "flat", "none"]


def test_sparse_counts_are_flagged():
    rng = np.random.default_rng(2)
    data, _ = simulate(7, weeks=80)
    counts = mix.make_data(rng.poisson(1.5, 80).astype(float), data.spend, data.channels)
    assert any("per week on average" in w for w in mix.fit(counts, n_boot=0).warnings)


@pytest.mark.parametrize("y, spend, message", [
    (np.ones(5), np.ones((5, 1)), "only 5 weeks"),
    (np.zeros(20), np.ones((20, 1)), "zero in every week"),
])
def test_unfittable_data(y, spend, message):
    with pytest.raises(mix.MixInputError, match=message):
        mix.fit(mix.make_data(y, spend, ["a"]), n_boot=0)


def test_make_data_rejects_negative_and_missing_values():
    with pytest.raises(mix.MixInputError, match="spend of b is negative in week 2"):
        mix.make_data([1, 2], [[1, 1], [1, -1]], ["a", "b"])
    with pytest.raises(mix.MixInputError, match="non-finite"):
        mix.make_data([1, np.nan], [[1], [1]], ["a"])
    with pytest.raises(mix.MixInputError, match="dates must increase"):
        mix.make_data([1, 2], [[1], [1]], ["a"], dates=["2026-01-12", "2026-01-05"])


# ---------------------------------------------------------------- what-ifs and optimiser


@pytest.fixture(scope="module")
def booted():
    data, _ = simulate(1, weeks=130)
    return mix.fit(data, n_boot=30, seed=1)


def test_projection_of_the_current_budget_and_a_shift(booted):
    now = opt.current_budget(booted)
    same = opt.compare(booted, now, 8)
    assert same.difference == pytest.approx(0.0, abs=1e-9)
    assert same.plan_low <= same.plan_total <= same.plan_high
    more = opt.compare(booted, now * np.array([1.5, 1.0, 1.0]), 8)
    assert more.difference > 0 and more.difference_low >= 0
    moved = opt.move_share(now, 0, 1, 10)
    assert moved.sum() == pytest.approx(now.sum()) and moved[0] == pytest.approx(0.9 * now[0])
    # steady state: a long horizon's last week equals baseline + steady responses
    far = opt.project(booted, now, 200)
    assert far[-1] > 0


def test_optimiser_beats_every_point_of_a_grid(booted):
    budget = float(opt.current_budget(booted).sum())
    lower, upper = np.zeros(3), np.full(3, budget)
    best = opt.optimise(booted, budget, lower, upper)
    assert best.spend.sum() == pytest.approx(budget, rel=1e-6)
    assert np.all(best.spend >= -1e-9) and np.all(best.spend <= budget + 1e-6)
    grid = np.linspace(0, budget, 61)
    brute = max(booted.weekly_response(np.array([a, b, budget - a - b])).sum()
                for a in grid for b in grid if a + b <= budget)
    assert best.weekly_outcome >= brute - 1e-6
    assert best.weekly_outcome >= best.start_weekly_outcome - 1e-9


def test_optimiser_keeps_to_bounds_and_weights(booted):
    budget = float(opt.current_budget(booted).sum())
    lower = np.array([0.3, 0.1, 0.1]) * budget
    upper = np.array([0.4, 0.5, 0.5]) * budget
    best = opt.optimise(booted, budget, lower, upper)
    assert np.all(best.spend >= lower - 1e-6) and np.all(best.spend <= upper + 1e-6)
    # a channel worth nothing gets only its minimum
    weighted = opt.optimise(booted, budget, lower, upper, weights=opt.Weights(np.array([1.0, 1.0, 0.0])))
    assert weighted.spend[2] == pytest.approx(lower[2], rel=1e-3)
    with pytest.raises(ValueError, match="bounds hold"):
        opt.optimise(booted, budget, lower, lower * 1.5)


def test_weeks_to_target_by_hand():
    assert opt.weeks_to_target(10, np.array([2.0, 2.0, 2.0])) == pytest.approx(5.0)   # 6 after 3, then 2/week
    assert opt.weeks_to_target(3, np.array([2.0, 2.0])) == pytest.approx(1.5)
    assert opt.weeks_to_target(0, np.array([1.0])) == 0
    assert opt.weeks_to_target(5, np.array([0.0, 0.0])) is None
    assert opt.target_date(date(2026, 1, 4), 4, np.array([2.0, 2.0])) == date(2026, 1, 18)   # 2 weeks


# ---------------------------------------------------------------- the demo's planted curves
#
# The demo plants every channel's response on its spend (cockpit.demo.media): the
# channel's expected leads per week over all studies are a Hill curve of the geometric
# adstock of its weekly spend, offline channels included (HCP outreach, community and
# newsletter sponsorships, brochure batches, event fees). The ground truth holds each
# channel's expected leads and its cost per randomized. The checks fit weekly leads as
# the Budget page does (randomized are a few per week: fitted directly, chance
# correlations decide) and turn leads into randomized at each channel's randomized per
# lead, so cost per randomized = spend / (leads credited x randomized per lead).


def _kendall_discordant(order: list[str], planted: list[str]) -> int:
    """Pairs of channels the two orders put the other way round."""
    pos = {c: i for i, c in enumerate(planted)}
    seq = [pos[c] for c in order]
    return sum(1 for i in range(len(seq)) for j in range(i + 1, len(seq)) if seq[i] > seq[j])


def _budget_table(con) -> tuple:
    from cockpit.metrics import mix as mm

    # the fit cache is keyed by the store's data version, not by the store: two demo
    # stores in one process can share a key, so the cache is emptied before and after
    mm.clear_cache()
    fitted = mm.cached_fit(con, Filters(), n_boot=0)
    table = mm.channel_frame(fitted, "randomized").set_index("channel_id")
    mm.clear_cache()
    # a channel credited with nothing has no cost per randomized: it ranks last
    order = table["cost_per_outcome"].fillna(np.inf).sort_values(kind="stable").index.tolist()
    return fitted, table, order


def test_kendall_discordant_by_hand():
    assert _kendall_discordant(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert _kendall_discordant(["b", "a", "c"], ["a", "b", "c"]) == 1
    assert _kendall_discordant(["c", "b", "a"], ["a", "b", "c"]) == 3


def test_demo_small_ranks_hcp_referral_first(demo_store, demo_raw):
    """Small demo (seed 7): ranking by cost per randomized, as the Budget page shows it.

    HCP referral, the planted cheapest per randomized (~650 EUR against ~1,700 for the
    next channel), ranks first. The small demo cannot rank all nine channels: about 92
    leads a week over 60 weeks, so a channel with 5-7% of the leads brings ~6 a week
    against a weekly noise sd of ~10. Refitted on Poisson redraws of the planted weeks,
    the leads credited to such a channel scatter by 25-60% (sd; some get none) and even
    HCP referral's, 30% of all leads, by 15%, while the planted costs per randomized are
    1.3-1.6x apart from one channel to the next. What the small demo does support, with
    the tolerance stated: HCP referral's credited leads within 40% of its planted
    expected leads (2.5 sd); the leads credited to all channels together within 15% of
    the planted total; the three planted cheapest channels ranked ahead of the three
    planted dearest; and at most 8 of the 36 pairs of channels ordered the other way round
    (Kendall's tau >= 0.55). The full ranking is checked on the medium demo."""
    truth = json.loads((demo_raw / "ground_truth.json").read_text())
    fitted, table, order = _budget_table(demo_store.reader())
    planted = truth["channel_order_by_cost_per_randomized"]
    assert planted[0] == truth["cheapest_channel_per_randomized"] == "hcp_referral"
    assert set(planted) == set(table.index) and len(planted) == 9
    assert order[0] == "hcp_referral"
    expected = {c: v["hill"]["expected_leads"] for c, v in truth["channels"].items()}
    assert table.loc["hcp_referral", "leads_brought"] == pytest.approx(expected["hcp_referral"], rel=0.40)
    assert table["leads_brought"].sum() == pytest.approx(sum(expected.values()), rel=0.15)
    top, bottom = planted[:3], planted[-3:]
    assert max(order.index(c) for c in top) < min(order.index(c) for c in bottom)
    assert _kendall_discordant(order, planted) <= 8
    assert fitted.fit.r2 > 0.9 and fitted.fit.mape_holdout < 0.35


@pytest.fixture(scope="module")
def medium_demo(tmp_path_factory):
    """The medium demo (seed 7: 12 studies, 120 sites, ~96,000 leads over 71 weeks),
    generated and loaded through the real loaders once for this module (~1 minute)."""
    from cockpit import derive
    from cockpit.demo import generate
    from cockpit.ingest import load_folder
    from cockpit.store import Store, open_db

    raw = tmp_path_factory.mktemp("demo-medium")
    generate(raw, seed=7, scale="medium", end=date(2026, 11, 15))
    path = tmp_path_factory.mktemp("demo-medium-db") / "medium.duckdb"
    con = open_db(path)
    load_folder(con, raw, b"test-key-for-the-medium-demo", after_load=derive.refresh)
    con.close()
    store = Store(path)
    yield raw, store
    store.close()


def test_demo_medium_recovers_the_planted_ranking_and_contributions(medium_demo):
    """Medium demo (seed 7): all nine channels, each with a planted response to its spend,
    rank by cost per randomized in the planted order, HCP referral first.

    Randomized are enough here (~2,600, 100-1,300 per channel) for cost per randomized
    to rank on. Stated tolerance: each channel's credited leads are within 25% of its
    planted expected leads, and its cost per randomized within 25% of the planted one
    (spend / randomized as generated). The planted costs per randomized are 1.3-1.6x apart
    from one channel to the next, so these tolerances leave the order decided by what was
    planted."""
    raw, store = medium_demo
    truth = json.loads((raw / "ground_truth.json").read_text())
    fitted, table, order = _budget_table(store.reader())
    planted = truth["channel_order_by_cost_per_randomized"]
    assert len(planted) == 9 and planted[0] == "hcp_referral"
    assert order == planted
    for channel, entry in truth["channels"].items():
        row = table.loc[channel]
        assert row["leads_brought"] == pytest.approx(entry["hill"]["expected_leads"], rel=0.25), channel
        assert row["cost_per_outcome"] == pytest.approx(entry["planted_cost_per_randomized"], rel=0.25), channel
    assert fitted.fit.r2 > 0.97 and fitted.fit.mape_holdout < 0.1
