"""Forecast inputs and results from the store: a hand-built store whose exposures and
counts are worked out by hand, the demo store, and the ``cockpit forecast`` command."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
import numpy as np
from scipy import stats

from cockpit import derive
from cockpit.analytics.forecast import fit_gamma_prior
from cockpit.commands.forecast import forecast as forecast_command
from cockpit.metrics.forecast import (UnknownStudyError, forecast_inputs, study_forecast,
                                      study_ids)
from cockpit.store import open_db

# Study F, target 30, planned end 2026-12-31. Latest event: 2026-03-31 (the "now").
# F1 active 2026-01-01: 90 days -> 90 / 30.4375 = 2.9569 months; middle at day 45 =
#    2026-02-15 00:00; randomized 01-20, 02-10 (first half), 03-01, 03-15, 03-30 -> 5 (2 + 3).
# F2 active 2026-02-01: 28 + 31 = 59 days -> 1.9384 months; middle at 29.5 days =
#    2026-03-02 12:00; randomized 03-02 10:00 (first half), 03-20 (second) -> 2 (1 + 1);
#    one more randomized there on 01-25, before activation: not in k, but in the study's 8.
# F3 planned 2026-05-01, not active: 31 days ahead -> 1.0185 months.
# F4 neither activated nor planned: left out with a warning.
# G1 (study G) randomizes one person: must not leak into F.
FORECAST_SQL = """
INSERT INTO study VALUES
  ('F', 'Forecast study', 'III', 'Cardiology', 30, '2026-01-01', '2026-12-31', 1000, 'EUR'),
  ('G', 'Other study',    'II',  'Cardiology', 10, '2026-01-01', '2026-12-31', 1000, 'EUR');
INSERT INTO site VALUES
  ('F1', 'F', 'One',   'DE', '2025-12-20', '2026-01-01'),
  ('F2', 'F', 'Two',   'DE', '2026-01-15', '2026-02-01'),
  ('F3', 'F', 'Three', 'DE', '2026-05-01', NULL),
  ('F4', 'F', 'Four',  'DE', NULL, NULL),
  ('G1', 'G', 'Gee',   'FR', '2026-01-01', '2026-01-01');
"""

RANDOMIZED = [  # pid, study, site, randomized at
    ("q1", "F", "F1", "2026-01-20 10:00"), ("q2", "F", "F1", "2026-02-10 10:00"),
    ("q3", "F", "F1", "2026-03-01 10:00"), ("q4", "F", "F1", "2026-03-15 10:00"),
    ("q5", "F", "F1", "2026-03-30 10:00"), ("q6", "F", "F2", "2026-03-02 10:00"),
    ("q7", "F", "F2", "2026-03-20 10:00"), ("q8", "F", "F2", "2026-01-25 10:00"),
    ("q9", "G", "G1", "2026-02-01 10:00"),
]


def _build(path: Path) -> None:
    con = open_db(path)
    con.execute(FORECAST_SQL)
    for i, (pid, study, site, ts) in enumerate(RANDOMIZED):
        con.execute("INSERT INTO person VALUES (?, 1970, NULL, '2026-01-01')", [pid])
        con.execute("INSERT INTO funnel_event VALUES (?, ?, ?, ?, 'lead', '2026-01-02 09:00', NULL, 'f')",
                    [f"l{i}", pid, study, site])
        con.execute("INSERT INTO funnel_event VALUES (?, ?, ?, ?, 'randomized', ?, NULL, 'f')",
                    [f"r{i}", pid, study, site, ts])
    # the latest day with data: an open lead on 2026-03-31
    con.execute("INSERT INTO person VALUES ('q0', 1980, NULL, '2026-03-31')")
    con.execute("INSERT INTO funnel_event VALUES ('open', 'q0', 'F', 'F1', 'lead', '2026-03-31 08:00', NULL, 'f')")
    derive.refresh(con)
    con.close()


@pytest.fixture
def forecast_db(tmp_path: Path) -> Path:
    path = tmp_path / "forecast.duckdb"
    _build(path)
    return path


@pytest.fixture
def forecast_con(forecast_db: Path):
    con = open_db(forecast_db, read_only=True)
    yield con
    con.close()


def test_inputs_by_hand(forecast_con):
    inp = forecast_inputs(forecast_con, "F")
    assert inp["target"] == 30 and inp["randomized"] == 8
    assert inp["as_of"].isoformat() == "2026-03-31"
    assert inp["months_to_end"] == pytest.approx(275 / 30.4375)  # 03-31 -> 12-31
    sites = inp["sites"].set_index("site_id")
    assert list(sites.index) == ["F1", "F2", "F3", "F4"]
    assert sites.loc["F1", "exposure_months"] == pytest.approx(90 / 30.4375)
    assert sites.loc["F2", "exposure_months"] == pytest.approx(59 / 30.4375)
    assert (sites.loc["F1", "randomized"], sites.loc["F1", "first_half"], sites.loc["F1", "second_half"]) == (5, 2, 3)
    assert (sites.loc["F2", "randomized"], sites.loc["F2", "first_half"], sites.loc["F2", "second_half"]) == (2, 1, 1)
    assert not sites.loc["F3", "active"]
    assert sites.loc["F3", "start_in_months"] == pytest.approx(31 / 30.4375)
    assert math.isnan(sites.loc["F4", "start_in_months"])
    assert inp["unplaced_sites"] == ["F4"]


def test_study_forecast_on_the_hand_built_store(forecast_con):
    r = study_forecast(forecast_con, "F", n_sims=4000)
    assert (r["target"], r["randomized"], r["remaining"]) == (30, 8, 22)
    assert (r["active_sites"], r["sites_fitted"], r["planned_sites"]) == (2, 2, 1)
    assert r["as_of"] == "2026-03-31" and r["planned_end"] == "2026-12-31"
    # two sites show no spread: near the Poisson limit the mean rate is the pooled rate
    assert r["mean_rate"] == pytest.approx(7 / (149 / 30.4375), rel=1e-3)
    assert any("F4" in w for w in r["warnings"])
    assert any("Only 2 active site" in w for w in r["warnings"])
    d = r["target_date"]
    assert d["q025"] <= d["q10"] <= d["median"] <= d["q90"] <= d["q975"]
    assert r["curve"][0]["date"] == "2026-03-31" and r["curve"][0]["median"] == 8
    assert 0.0 <= r["p_on_time"] <= 1.0
    assert json.loads(json.dumps(r, allow_nan=False)) == r  # JSON-ready


def test_unknown_study(forecast_con):
    with pytest.raises(UnknownStudyError):
        study_forecast(forecast_con, "NOPE")
    assert study_ids(forecast_con) == ["F", "G"]


# ---------------------------------------------------------------- demo store
def test_demo_forecast_runs_for_every_study_and_recovers_the_site_rates(demo_store, demo_raw):
    truth = json.loads((demo_raw / "ground_truth.json").read_text(encoding="utf-8"))["site_rates"]
    planted_median = stats.gamma.ppf(0.5, truth["shape"], scale=truth["scale"]) * truth["rate_multiplier"]
    con = demo_store.reader()
    ids = study_ids(con)
    assert ids
    counts, exposures = [], []
    for sid in ids:
        r = study_forecast(con, sid, n_sims=2000)
        assert 0.0 <= r["p_on_time"] <= 1.0, sid
        assert r["curve"] and r["alpha"] > 0 and r["beta"] > 0, sid
        assert r["sites_needed_80"] <= r["sites_needed_90"], sid
        # per study (about 6 active sites): the fitted mean rate against the mean of the
        # rates planted at its active sites (0 at planted non-enrolling sites)
        planted = [0.0 if s["non_enrolling"] else s["planted_rate_per_month"]
                   for s in truth["sites"].values() if s["study_id"] == sid and s["activation_date"]]
        assert np.mean(planted) / 2 <= r["mean_rate"] <= np.mean(planted) * 2, (sid, r["mean_rate"])
        sites = forecast_inputs(con, sid)["sites"]
        active = sites[sites["active"]]
        counts += active["randomized"].tolist()
        exposures += active["exposure_months"].tolist()
    # all sites together: the fitted median against the planted Gamma's median, within a
    # factor 2 (the demo lifts low rates to a floor, plants non-enrolling sites, and
    # randomization lags the lead by weeks, so no closer agreement is expected)
    pooled = fit_gamma_prior(counts, exposures)
    assert planted_median / 2 <= pooled.median_rate <= planted_median * 2, pooled


# ---------------------------------------------------------------- command
def _run(*args):
    return CliRunner().invoke(forecast_command, list(args))


def test_command_store_json(forecast_db):
    res = _run("--db", str(forecast_db), "--study", "F", "--json", "--sims", "2000")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("target", "randomized", "alpha", "beta", "target_date", "p_on_time",
                "sites_needed_80", "sites_needed_90", "warnings", "curve"):
        assert key in out
    assert {"month", "date", "median", "lo80", "hi80", "lo95", "hi95"} <= set(out["curve"][0])
    again = _run("--db", str(forecast_db), "--study", "F", "--json", "--sims", "2000")
    assert again.output == res.output  # seeded: the same numbers every time


def test_command_store_text(forecast_db):
    res = _run("--db", str(forecast_db), "--study", "F", "--sims", "500")
    assert res.exit_code == 0 and "Target reached" in res.output


def test_command_store_errors(forecast_db, tmp_path):
    res = _run("--db", str(forecast_db), "--study", "NOPE")
    assert res.exit_code != 0 and "--study" in res.output and "NOPE" in res.output
    res = _run("--db", str(tmp_path / "missing.duckdb"), "--study", "F")
    assert res.exit_code != 0 and "--db" in res.output and "no store" in res.output
    bad = tmp_path / "bad.duckdb"
    bad.write_text("not a database")
    res = _run("--db", str(bad), "--study", "F")
    assert res.exit_code != 0 and "--db" in res.output
    res = _run("--db", str(forecast_db))
    assert res.exit_code != 0 and "--study" in res.output
