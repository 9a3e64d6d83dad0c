"""Command-line contracts of ``cockpit attribution FILE --json`` and ``cockpit mix fit FILE
... --json``: through click's CliRunner on the command objects, and through
``python -m cockpit.cli`` once the commands are registered in the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cockpit.analytics.adstock import adstock, hill
from cockpit.commands.attribution import attribution
from cockpit.commands.mix import mix

ROOT = Path(__file__).resolve().parents[1]
# Puzyrov 2019 (see test_attribution.py): Markov 2.4 / 1.6, removal effects 0.75 / 0.5
PATHS_CSV = "path,conversions,nulls\ngoogle ads,2,0\nmailing,1,0\ngoogle ads > mailing,1,0\ngoogle ads,0,1\n"


def run(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def paths_csv(tmp_path) -> Path:
    file = tmp_path / "paths.csv"
    file.write_text(PATHS_CSV, encoding="utf-8")
    return file


def test_attribution_json_contract(paths_csv):
    code, out, _ = run(attribution, [paths_csv, "--json"])
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"models", "removal_effects"}
    assert set(doc["models"]) == {"first_touch", "last_touch", "linear", "position_based", "markov"}
    for model, credits in doc["models"].items():
        assert set(credits) == {"google ads", "mailing"}
        assert sum(credits.values()) == pytest.approx(4.0, abs=1e-9), model
    assert doc["models"]["markov"] == {"google ads": pytest.approx(2.4), "mailing": pytest.approx(1.6)}
    assert doc["removal_effects"] == {"google ads": pytest.approx(0.75), "mailing": pytest.approx(0.5)}


def test_attribution_time_decay_on_request_and_human_output(paths_csv):
    code, out, _ = run(attribution, [paths_csv, "--json", "--half-life", "1"])
    assert code == 0
    assert json.loads(out)["models"]["time_decay"]["mailing"] == pytest.approx(5 / 3)
    code, out, _ = run(attribution, [paths_csv])
    assert code == 0 and "Markov" in out and "google ads" in out and "total" in out


@pytest.mark.parametrize("text, message", [
    ("path,conversions\nA,1\n", "missing column(s) nulls"),
    ("path,conversions,nulls\nA,1,0\nB,-1,0\n", "row 2: conversions is negative"),
    ("path,conversions,nulls\nA,1,0\n  ,1,0\n", "row 2: empty path"),
    ("path,conversions,nulls\nA >  > B,1,0\n", "row 1: empty channel name"),
    ("path,conversions,nulls\nA,one,0\n", "row 1: conversions is not a number"),
])
def test_attribution_bad_input_exits_non_zero_naming_the_row(tmp_path, text, message):
    file = tmp_path / "bad.csv"
    file.write_text(text, encoding="utf-8")
    code, out, err = run(attribution, [file, "--json"])
    assert code != 0 and out == ""
    assert message in err


def test_attribution_missing_file(tmp_path):
    code, _, err = run(attribution, [tmp_path / "nope.csv", "--json"])
    assert code != 0 and "cannot read" in err


# ---------------------------------------------------------------- mix fit


def weekly_csv(tmp_path, weeks: int = 130, seed: int = 3) -> tuple[Path, np.ndarray]:
    """Two channels with known curves; returns the file and their true contributions."""
    rng = np.random.default_rng(seed)
    # flights of 4 and 3 weeks, so that the channels move independently; some weeks off
    spend = np.column_stack([np.repeat(rng.uniform(0.2, 2.5, weeks // 4 + 1) * 800.0, 4)[:weeks],
                             np.repeat(rng.uniform(0.2, 2.5, weeks // 3 + 1) * 300.0, 3)[:weeks]])
    spend[rng.random((weeks, 2)) < 0.08] = 0.0
    contrib = np.column_stack([30 * hill(adstock(spend[:, 0], 0.4), 800, 1.4),
                               20 * hill(adstock(spend[:, 1], 0.2), 300, 1.0)])
    t = np.arange(weeks)
    y = 40 + 0.05 * t + 5 * np.sin(2 * np.pi * t / 52.1775) + contrib.sum(axis=1) + rng.normal(0, 1.5, weeks)
    days = np.datetime64("2024-01-01") + 7 * t
    lines = ["week,leads,social,referral,sites"] + [
        f"{d},{yv:.3f},{a:.2f},{b:.2f},{1 + i // 20}" for i, (d, yv, a, b) in enumerate(zip(days, y, *spend.T))]
    file = tmp_path / "weekly.csv"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return file, contrib.sum(axis=0)


def test_mix_fit_json_contract(tmp_path):
    file, truth = weekly_csv(tmp_path)
    code, out, _ = run(mix, ["fit", file, "--outcome", "leads", "--spend", "social,referral",
                             "--date", "week", "--json"])
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"channels", "fit"}
    assert set(doc["fit"]) == {"r2", "mape_holdout"}
    assert set(doc["channels"]) == {"social", "referral"}
    total = sum(float(line.split(",")[1]) for line in file.read_text().splitlines()[1:])
    spend = {"social": 0.0, "referral": 0.0}
    for line in file.read_text().splitlines()[1:]:
        parts = line.split(",")
        spend["social"] += float(parts[2])
        spend["referral"] += float(parts[3])
    for i, name in enumerate(("social", "referral")):
        ch = doc["channels"][name]
        assert set(ch) == {"contribution", "share", "roas"}
        assert ch["share"] == pytest.approx(ch["contribution"] / total, rel=1e-6)
        assert ch["roas"] == pytest.approx(ch["contribution"] / spend[name], rel=1e-3)
        assert ch["contribution"] == pytest.approx(truth[i], rel=0.3)
    assert doc["fit"]["r2"] > 0.9 and 0 <= doc["fit"]["mape_holdout"] < 0.1


def test_mix_fit_with_controls_and_table_output(tmp_path):
    file, _ = weekly_csv(tmp_path)
    code, out, _ = run(mix, ["fit", file, "--outcome", "leads", "--spend", "social,referral",
                             "--controls", "sites", "--bootstrap", "10"])
    assert code == 0 and "social" in out and "80%:" in out and "R2" in out


@pytest.mark.parametrize("args, message", [
    (["--spend", "social,tv"], "missing column(s) tv"),
    (["--spend", "social", "--controls", "leads"], "used for more than one role"),
    (["--spend", "social,,referral"], "empty column name"),
])
def test_mix_fit_bad_options(tmp_path, args, message):
    file, _ = weekly_csv(tmp_path)
    code, out, err = run(mix, ["fit", file, "--outcome", "leads", *args, "--json"])
    assert code != 0 and out == "" and message in err


@pytest.mark.parametrize("row, message", [
    ("2024-01-08,5,-10,3,1", "row 2: social is negative"),
    ("2024-01-08,5,,3,1", "row 2: social is empty"),
    ("2024-01-08,-5,10,3,1", "row 2: leads is negative"),
    ("2024-01-01,5,10,3,1", "row 2: week 2024-01-01 is not after the row before"),
    ("soon,5,10,3,1", "row 2: week is not a date"),
])
def test_mix_fit_bad_rows_name_the_row(tmp_path, row, message):
    file = tmp_path / "bad.csv"
    file.write_text("week,leads,social,referral,sites\n2024-01-01,4,10,3,1\n" + row + "\n", encoding="utf-8")
    code, out, err = run(mix, ["fit", file, "--outcome", "leads", "--spend", "social,referral",
                               "--date", "week", "--json"])
    assert code != 0 and out == "" and message in err


def test_mix_fit_too_few_weeks(tmp_path):
    file = tmp_path / "short.csv"
    file.write_text("leads,social\n1,2\n3,4\n", encoding="utf-8")
    code, _, err = run(mix, ["fit", file, "--outcome", "leads", "--spend", "social", "--json"])
    assert code != 0 and "only 2 weeks" in err


# ---------------------------------------------------------------- through the real CLI


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_attribution_through_the_cli(paths_csv, tmp_path):
    done = cli("attribution", paths_csv, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["models"]["markov"]["google ads"] == pytest.approx(2.4)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,conversions,nulls\nA,1,-3\n", encoding="utf-8")
    done = cli("attribution", bad, "--json")
    assert done.returncode != 0 and "row 1: nulls is negative" in done.stderr


def test_mix_fit_through_the_cli(tmp_path):
    file, _ = weekly_csv(tmp_path)
    done = cli("mix", "fit", file, "--outcome", "leads", "--spend", "social,referral", "--date", "week", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["channels"]) == {"social", "referral"} and doc["fit"]["r2"] > 0.9
