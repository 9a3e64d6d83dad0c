"""Touchpoint paths per person from the store: consent gating, the lead and
randomization cut-offs, runs of one channel, filters, and the table the page shows."""
from __future__ import annotations

import pytest

from cockpit.analytics import attribution as attr
from cockpit.filters import Filters
from cockpit.metrics import attribution as m

# tiny_con (tests/conftest.py), by hand:
# p1 (A): facebook click 03-02 (tracking granted 09:59), lead 03-03, another facebook click
#         03-04, randomized 03-20.
# p2 (A): HCP referral 03-04 (no tracking consent needed), lead 03-04; not randomized.
# p3 (A): facebook click 03-09, tracking withdrawn 03-11: the click is not usable.
# p4 (B): facebook click 03-05, lead 03-05, randomized 03-25.
# p5 (A): HCP referral 02-10, lead 02-10, randomized 03-05.


def as_dict(frame):
    return {r.path: (r.conversions, r.nulls) for r in frame.itertuples()}


def test_paths_up_to_the_lead(tiny_con):
    paths = m.path_counts(tiny_con, Filters(), "lead")
    assert as_dict(paths) == {"facebook": (2, 0), "hcp_referral": (2, 0)}
    assert m.coverage(tiny_con, Filters(), "lead") == {
        "persons": 5, "conversions": 5, "without_touch": 1, "without_touch_conversions": 1, "multi_step": 0}


def test_paths_up_to_randomization(tiny_con):
    paths = m.path_counts(tiny_con, Filters(), "randomized")
    # p1's two facebook clicks are one step; p2 was not randomized (a null)
    assert as_dict(paths) == {"facebook": (2, 0), "hcp_referral": (1, 1)}
    assert paths.set_index("path").loc["facebook", "steps"] == 1
    cov = m.coverage(tiny_con, Filters(), "randomized")
    assert (cov["persons"], cov["conversions"], cov["without_touch"]) == (5, 3, 1)


def test_markov_on_the_tiny_store_by_hand(tiny_con):
    # start->facebook 2, start->hcp 2; facebook->conv 2; hcp->conv 1, hcp->null 1.
    # P = 0.5 + 0.5 * 0.5 = 0.75; without facebook 0.25 (effect 2/3), without hcp 0.5
    # (effect 1/3); 3 conversions x (2/3, 1/3) / 1.
    result = m.attribution(tiny_con, Filters(), "randomized")
    assert result.conversion_probability == pytest.approx(0.75)
    assert result.removal_effects == {"facebook": pytest.approx(2 / 3), "hcp_referral": pytest.approx(1 / 3)}
    assert result.models["markov"] == {"facebook": pytest.approx(2.0), "hcp_referral": pytest.approx(1.0)}


def test_filters_apply_to_persons(tiny_con):
    assert as_dict(m.path_counts(tiny_con, Filters.make(study="B"), "lead")) == {"facebook": (1, 0)}
    assert as_dict(m.path_counts(tiny_con, Filters.make(segment="seniors"), "lead")) == {"facebook": (1, 0)}
    assert as_dict(m.path_counts(tiny_con, Filters.make(channel="hcp_referral"), "lead")) == {"hcp_referral": (2, 0)}
    # lead date in the range: p1 (03-03) and p2 (03-04) only
    march = Filters.make(start="2026-03-01", end="2026-03-04")
    assert as_dict(m.path_counts(tiny_con, march, "lead")) == {"facebook": (1, 0), "hcp_referral": (1, 0)}
    assert m.path_counts(tiny_con, Filters.make(start="2027-01-01"), "lead").empty


def add_multi_touch(con):
    """p2 grants tracking and clicks a facebook ad three days before the referral (the
    paths are derived, so they are rebuilt as after a load)."""
    from cockpit import derive

    con.execute("""
        INSERT INTO consent_event VALUES ('c2', 'p2', 'tracking', TRUE, '2026-03-01 08:00', NULL, 'v1', 'f');
        INSERT INTO touchpoint VALUES
          ('t7', 'p2', 'v2', '2026-03-01 10:00', 'ad_click', 'facebook', 'CA', NULL, 'A', NULL, NULL, 'f');
    """)
    derive.refresh(con)


def test_multi_step_path_and_time_decay_ages(tiny_con):
    add_multi_touch(tiny_con)
    paths = m.path_counts(tiny_con, Filters(), "lead")
    assert as_dict(paths) == {"facebook": (2, 0), "hcp_referral": (1, 0), "facebook > hcp_referral": (1, 0)}
    ages = m.conversion_ages(tiny_con, Filters(), "lead").set_index("path")
    # click 03-01 10:00, lead 03-04 09:00: 2.96 days -> 2 whole days; the referral is the lead
    assert ages.loc["facebook > hcp_referral", "ages"] == [2, 0]
    table = m.channel_table(tiny_con, Filters(), "lead", half_life_days=7).set_index("channel_id")
    w = 2 ** (-2 / 7)
    assert table.loc["facebook", "time_decay"] == pytest.approx(round(2 + w / (1 + w), 2))
    assert table.loc["facebook", "first_touch"] == 3 and table.loc["facebook", "last_touch"] == 2
    assert table.loc["facebook", "linear"] == 2.5 and table.loc["hcp_referral", "linear"] == 1.5
    # no nulls up to the lead: without facebook only the lone referral path converts
    # (P 1/4, effect 3/4); without HCP the two facebook-only paths (P 1/2, effect 1/2)
    # (4 persons with a path)
    assert table.loc["facebook", "markov"] == pytest.approx(4 * 0.75 / 1.25, abs=0.01)
    assert table.loc["facebook", "removal_effect_pct"] == 75.0
    assert table.loc["facebook", "persons_on_path"] == 3
    assert m.model_sums(table) == {name: pytest.approx(4.0, abs=0.02) for name in m.TABLE_MODELS}


def test_channel_table_columns_and_empty_filter(tiny_con):
    table = m.channel_table(tiny_con, Filters(), "lead")
    assert list(table.columns) == m.TABLE_COLUMNS
    # equal Markov credit (2 each): ties in channel id order
    assert table["channel"].tolist() == ["Facebook", "HCP referral"]
    assert table["markov"].tolist() == [2.0, 2.0]
    empty = m.channel_table(tiny_con, Filters.make(start="2027-01-01"), "lead")
    assert empty.empty and list(empty.columns) == m.TABLE_COLUMNS
    with pytest.raises(ValueError):
        m.path_counts(tiny_con, Filters(), "consent")


def test_demo_last_touch_equals_the_journey_attribution(demo_store):
    """Up to the lead, the last touch of each path is the journey's attributed channel:
    an independent count straight from the journey table."""
    con = demo_store.reader()
    table = m.channel_table(con, Filters(), "lead").set_index("channel_id")
    journey = dict(con.execute(
        "SELECT channel_id, count(*) FROM journey WHERE channel_id <> 'unattributed' GROUP BY 1").fetchall())
    assert table["last_touch"].astype(int).to_dict() == journey
    cov = m.coverage(con, Filters(), "lead")
    assert cov["without_touch"] == con.execute(
        "SELECT count(*) FROM journey WHERE channel_id = 'unattributed'").fetchone()[0]
    total = cov["conversions"] - cov["without_touch_conversions"]
    for name, value in m.model_sums(table).items():
        assert value == pytest.approx(total, abs=0.01 * len(table)), name


def test_demo_randomized_mode_and_models_agree_on_totals(demo_store):
    con = demo_store.reader()
    f = Filters.make(study=con.execute("SELECT min(study_id) FROM study").fetchone()[0])
    result = m.attribution(con, f, "randomized")
    cov = m.coverage(con, f, "randomized")
    assert result.total_conversions == cov["conversions"] - cov["without_touch_conversions"]
    for name in m.TABLE_MODELS:
        assert sum(result.models[name].values()) == pytest.approx(result.total_conversions, abs=1e-9)
    assert 0 < result.conversion_probability < 1
    assert set(result.removal_effects) == set(result.channels)
    assert all(0 <= e <= 1 for e in result.removal_effects.values())
    assert attr.ASSUMPTIONS.keys() >= set(m.TABLE_MODELS)


def test_paths_end_when_consent_to_be_contacted_is_withdrawn(tiny_con):
    from cockpit import derive

    # p1 withdraws consent to be contacted on 03-12 (before its randomization of 03-20, which
    # no longer counts) and is referred by a doctor on 03-15, after the withdrawal
    tiny_con.execute("""
        INSERT INTO consent_event VALUES
          ('r1a', 'p1', 'contact_research', TRUE,  '2026-03-03 11:00', NULL, 'v1', 'f'),
          ('r1b', 'p1', 'contact_research', FALSE, '2026-03-12 00:00', NULL, 'v1', 'f');
        INSERT INTO touchpoint VALUES
          ('t7', 'p1', NULL, '2026-03-15 09:00', 'referral', 'hcp_referral', 'HA', NULL, 'A', 'A1', 'h1', 'f');
    """)
    derive.refresh(tiny_con)
    # p1 is now a null whose path stops at the withdrawal: facebook only, not facebook > hcp_referral
    assert as_dict(m.path_counts(tiny_con, Filters(), "randomized")) == {
        "facebook": (1, 1), "hcp_referral": (1, 1)}
