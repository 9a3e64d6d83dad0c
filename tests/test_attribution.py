"""Attribution models against small published examples worked by hand, the Markov
solution against an independent simulation of the chain, and the input checks."""
from __future__ import annotations

import numpy as np
import pytest

from cockpit.analytics import attribution as attr

ALL = attr.MODEL_NAMES


def approx(expected: dict, tol: float = 1e-12) -> dict:
    return {k: pytest.approx(v, abs=tol) for k, v in expected.items()}


# ---------------------------------------------------------------- published examples

# Bryl 2016, "Marketing Multi-Channel Attribution model with R (part 1: Markov chains
# concept)", analyzecore.com: three journeys
#   C1 > C2 > C3 > conversion,  C1 > null,  C2 > C3 > null.
# Transitions: start->C1 2/3, start->C2 1/3; C1->C2 1/2, C1->null 1/2; C2->C3 1;
# C3->conversion 1/2, C3->null 1/2.
# P(conv) = 2/3 * 1/2 * 1 * 1/2 + 1/3 * 1 * 1/2 = 1/6 + 1/6 = 1/3.
# Without C1: start->C1 goes to null, P = 1/3 * 1/2 = 1/6 -> effect 1 - (1/6)/(1/3) = 0.5.
# Without C2 or C3 no path converts: effect 1. Credits: 1 x (0.5, 1, 1) / 2.5.
BRYL = ([("C1", "C2", "C3"), ("C1",), ("C2", "C3")], [1, 0, 0], [0, 1, 1])


def test_bryl_markov_example():
    result = attr.attribute(*BRYL)
    assert result.conversion_probability == pytest.approx(1 / 3, abs=1e-12)
    assert result.removal_effects == approx({"C1": 0.5, "C2": 1.0, "C3": 1.0})
    assert result.models["markov"] == approx({"C1": 0.2, "C2": 0.4, "C3": 0.4})


def test_bryl_rule_based_models_by_hand():
    m = attr.attribute(*BRYL).models
    # one conversion, path C1 > C2 > C3
    assert m["first_touch"] == approx({"C1": 1.0, "C2": 0.0, "C3": 0.0})
    assert m["last_touch"] == approx({"C1": 0.0, "C2": 0.0, "C3": 1.0})
    assert m["linear"] == approx({"C1": 1 / 3, "C2": 1 / 3, "C3": 1 / 3})
    assert m["position_based"] == approx({"C1": 0.4, "C2": 0.2, "C3": 0.4})
    # half-life one touch: weights 1/4, 1/2, 1 -> 1/7, 2/7, 4/7
    assert m["time_decay"] == approx({"C1": 1 / 7, "C2": 2 / 7, "C3": 4 / 7})


# Puzyrov 2019, "Markov Chain Attribution - Simple Explanation Of Removal Effect",
# serhiipuzyrov.com: google ads 2 conversions, mailing 1, google ads > mailing 1, and
# google ads once without conversion.
# start->ga 4/5, start->mailing 1/5; ga->conv 2/4, ga->mailing 1/4, ga->null 1/4; mailing->conv 1.
# P = 0.8 * (0.5 + 0.25) + 0.2 = 0.8.  Without ga: 0.2 -> effect 0.75.
# Without mailing: 0.8 * 0.5 = 0.4 -> effect 0.5.  Credits: 4 x (0.75, 0.5) / 1.25.
PUZYROV = ([("google ads",), ("mailing",), ("google ads", "mailing"), ("google ads",)],
           [2, 1, 1, 0], [0, 0, 0, 1])


def test_puzyrov_markov_example():
    result = attr.attribute(*PUZYROV)
    assert result.conversion_probability == pytest.approx(0.8, abs=1e-12)
    assert result.removal_effects == approx({"google ads": 0.75, "mailing": 0.5})
    assert result.models["markov"] == approx({"google ads": 2.4, "mailing": 1.6})
    assert result.total_conversions == 4 and result.total_nulls == 1


def test_puzyrov_rule_based_models_by_hand():
    m = attr.attribute(*PUZYROV).models
    # single-touch paths: all to the channel; google ads > mailing: 1 conversion shared
    assert m["first_touch"] == approx({"google ads": 3.0, "mailing": 1.0})
    assert m["last_touch"] == approx({"google ads": 2.0, "mailing": 2.0})
    assert m["linear"] == approx({"google ads": 2.5, "mailing": 1.5})
    assert m["position_based"] == approx({"google ads": 2.5, "mailing": 1.5})   # two touches: 50/50
    assert m["time_decay"] == approx({"google ads": 2 + 1 / 3, "mailing": 1 + 2 / 3})  # 1/3, 2/3


def test_google_position_based_and_time_decay_definitions():
    # Google Ads Help, "About attribution models": position-based gives 40% to the first
    # and the last interaction and spreads 20% over the middle ones; time decay uses a
    # 7-day half-life: an interaction 8 days before the conversion gets half the credit
    # of one 1 day before.
    assert attr.position_weights(4) == pytest.approx([0.4, 0.1, 0.1, 0.4])
    assert attr.position_weights(1) == [1.0]
    assert attr.position_weights(2) == [0.5, 0.5]
    m = attr.time_decay([("search", "display")], np.array([3.0]), half_life=7.0, ages=[[8.0, 1.0]])
    assert m == approx({"search": 1.0, "display": 2.0})  # 3 conversions x (1/3, 2/3)


def test_time_decay_default_half_life_in_days_with_ages():
    ages = [[14.0, 7.0, 0.0]]
    m = attr.time_decay([("a", "b", "c")], np.array([7.0]), ages=ages)  # 7-day default: 1/4, 1/2, 1
    assert m == approx({"a": 1.0, "b": 2.0, "c": 4.0})


# ---------------------------------------------------------------- properties


def random_paths(seed: int, n: int = 60, channels: str = "ABCDEF"):
    rng = np.random.default_rng(seed)
    paths = [tuple(rng.choice(list(channels), size=rng.integers(1, 6))) for _ in range(n)]
    return paths, rng.integers(0, 30, n).astype(float), rng.integers(0, 200, n).astype(float)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_model_sums_to_the_total_conversions(seed):
    paths, conv, null = random_paths(seed)
    result = attr.attribute(paths, conv, null, half_life=2.0)
    for name in ALL:
        assert sum(result.models[name].values()) == pytest.approx(conv.sum(), abs=1e-9), name
        assert min(result.models[name].values()) >= 0, name


def test_self_transitions_do_not_change_the_markov_model():
    once = attr.attribute([("A", "B"), ("B",), ("A",)], [3, 2, 1], [5, 4, 9])
    repeated = attr.attribute([("A", "A", "B"), ("B", "B", "B"), ("A",)], [3, 2, 1], [5, 4, 9])
    assert repeated.removal_effects == approx(once.removal_effects)
    assert repeated.conversion_probability == pytest.approx(once.conversion_probability, abs=1e-12)


def test_identical_paths_are_summed_and_order_of_rows_does_not_matter():
    a = attr.attribute([("A", "B"), ("B",), ("A", "B")], [1, 2, 3], [4, 5, 6])
    b = attr.attribute([("B",), ("A", "B")], [2, 4], [5, 10])
    for name in ALL:
        assert a.models[name] == approx(b.models[name])


def test_no_conversions_credits_nothing():
    result = attr.attribute([("A", "B"), ("B",)], [0, 0], [3, 4])
    assert result.conversion_probability == 0
    for name in ALL:
        assert set(result.models[name].values()) == {0.0}


# ---------------------------------------------------------------- Markov vs simulation


def simulate_chain(paths, conv, null, removed: str | None, walkers: int, seed: int) -> float:
    """P(conversion) by walking the chain: transitions counted here from the paths (each
    path weighted by its persons), walkers stepped until absorbed; a walker entering the
    removed channel is lost."""
    counts: dict[str, dict[str, float]] = {}
    for path, c, n in zip(paths, conv, null):
        steps = ["(start)", *path]
        for a, b in zip(steps[:-1], steps[1:]):
            counts.setdefault(a, {}).setdefault(b, 0.0)
            counts[a][b] += c + n
        last = counts.setdefault(steps[-1], {})
        last["(conversion)"] = last.get("(conversion)", 0.0) + c
        last["(null)"] = last.get("(null)", 0.0) + n
    names = sorted({s for d in counts.values() for s in d} | set(counts))
    index = {s: i for i, s in enumerate(names)}
    cum = np.zeros((len(names), len(names)))
    for a, targets in counts.items():
        row = np.zeros(len(names))
        for b, w in targets.items():
            row[index[b]] = w
        cum[index[a]] = np.cumsum(row / row.sum())
    rng = np.random.default_rng(seed)
    state = np.full(walkers, index["(start)"])
    absorbed = {index["(conversion)"], index["(null)"]} | ({index[removed]} if removed else set())
    alive = np.ones(walkers, bool)
    for _ in range(500):
        if not alive.any():
            break
        u = rng.random(alive.sum())
        rows = cum[state[alive]]
        state[alive] = np.minimum((rows < u[:, None]).sum(axis=1), len(names) - 1)
        alive &= ~np.isin(state, list(absorbed))
    return float(np.mean(state == index["(conversion)"]))


def test_markov_solution_matches_a_simulation_of_the_chain():
    paths = [("A", "B", "C"), ("A", "C"), ("B",), ("B", "A", "B"), ("C", "A"), ("A",), ("C", "C", "B")]
    conv = np.array([30, 20, 10, 15, 5, 0, 8], float)
    null = np.array([70, 40, 90, 25, 45, 60, 12], float)
    exact = attr.attribute(paths, conv, null)
    walkers = 200_000
    # tolerance 0.01: more than 5 standard errors of a proportion estimated from
    # 200,000 walks (sqrt(0.25 / 200000) = 0.0011), and of the ratio behind an effect
    p_sim = simulate_chain(paths, conv, null, None, walkers, seed=11)
    assert p_sim == pytest.approx(exact.conversion_probability, abs=0.01)
    for channel in "ABC":
        p_without = simulate_chain(paths, conv, null, channel, walkers, seed=12)
        effect_sim = 1 - p_without / p_sim
        assert effect_sim == pytest.approx(exact.removal_effects[channel], abs=0.01), channel


# ---------------------------------------------------------------- input


@pytest.mark.parametrize("text, parts", [
    ("facebook > hcp_referral", ("facebook", "hcp_referral")),
    ("a>b>c", ("a", "b", "c")),
    ("  solo  ", ("solo",)),
])
def test_parse_path(text, parts):
    assert attr.parse_path(text) == parts


@pytest.mark.parametrize("text", ["", "   ", "a > > b", "a >", "> a"])
def test_parse_path_rejects_empty_paths_and_channels(text):
    with pytest.raises(attr.AttributionInputError, match="row 4"):
        attr.parse_path(text, row=4)


def write(tmp_path, text: str):
    path = tmp_path / "paths.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("path,conversions\nA,1\n", "missing column.*nulls"),
    ("path,conversions,nulls\nA,1,0\nB,-2,0\n", "row 2: conversions is negative"),
    ("path,conversions,nulls\nA,1,0\nB,1,x\n", "row 2: nulls is not a number"),
    ("path,conversions,nulls\nA,1,0\n,1,0\n", "row 2: empty path"),
    ("path,conversions,nulls\nA > > B,1,0\n", "row 1: empty channel name"),
    ("path,conversions,nulls\nA,,0\n", "row 1: conversions is empty"),
    ("path,conversions,nulls\n", "no rows"),
])
def test_csv_errors_name_the_row(tmp_path, text, message):
    with pytest.raises(attr.AttributionInputError, match=message):
        attr.read_paths_csv(write(tmp_path, text))


def test_report_from_csv_has_the_contract_keys(tmp_path):
    file = write(tmp_path, "path,conversions,nulls\ngoogle ads,2,0\nmailing,1,0\n"
                           "google ads > mailing,1,0\ngoogle ads,0,1\n")
    report = attr.report_from_csv(file)
    assert set(report) == {"models", "removal_effects"}
    assert list(report["models"]) == ["first_touch", "last_touch", "linear", "position_based", "markov"]
    assert report["models"]["markov"] == approx({"google ads": 2.4, "mailing": 1.6})
    with_decay = attr.report_from_csv(file, half_life=1.0)
    assert with_decay["models"]["time_decay"] == approx({"google ads": 7 / 3, "mailing": 5 / 3})
