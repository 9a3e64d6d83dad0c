"""The Experiments page in real headless Chromium on the demo store: it lists the demo's
experiments with the verdicts its ground truth calls for, a filter changes the numbers,
a row click opens the detail, and the CSV exports hold the rows the tables show."""
import json
import math
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from browser import choose, click, grid_column, read_download, start_signed_in, wait_for_rows, wait_until

from cockpit.filters import Filters
from cockpit.metrics import experiments as ex

def grid_rows(dash_duo, grid_id: str, key: str, cols: list[str]) -> dict[str, dict[str, str]]:
    """The shown rows by ``key``, each with the text of ``cols`` (in row order)."""
    keys = grid_column(dash_duo, grid_id, key)
    values = {c: grid_column(dash_duo, grid_id, c) for c in cols}
    if any(len(v) != len(keys) for v in values.values()):
        return {}
    return {k: {c: values[c][i] for c in cols} for i, k in enumerate(keys)}


def p_text(value: float | None) -> str:
    """A p-value as the grid shows it."""
    if value is None or math.isnan(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def ground_truth_ctr(demo_raw: Path) -> dict[str, dict]:
    """The demo's planted experiments on CTR: experiment id -> its ground truth."""
    truth = json.loads((demo_raw / "ground_truth.json").read_text(encoding="utf-8"))
    return {e["experiment_id"]: e for e in truth["experiments"] if e["metric"] == "ctr"}


def test_experiments_page(dash_duo, cockpit_app, cockpit_users, demo_store, demo_raw):
    con = demo_store.reader()
    truth = ground_truth_ctr(demo_raw)
    table = ex.summary(con, Filters())
    ids = table["experiment_id"].tolist()
    assert sorted(truth) == ids

    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.get(dash_duo.server_url + "/experiments")
    wait_for_rows(dash_duo, "ex-table", "experiment_id", ids)

    # the planted effect is found; the experiment without one declares no winner
    shown = wait_until(lambda: grid_rows(dash_duo, "ex-table", "experiment_id",
                                         ["verdict", "best_variant", "users_per_arm"]), "list rows")
    for exp_id, gt in truth.items():
        row = table.set_index("experiment_id").loc[exp_id]
        assert shown[exp_id]["verdict"] == row["verdict"]
        assert shown[exp_id]["users_per_arm"] == str(row["users_per_arm"])
        if gt["has_effect"]:
            best = max(gt["arms"], key=gt["arms"].get)
            assert row["decision"] == "variant_wins"
            assert shown[exp_id]["verdict"].startswith(f"{gt['variants'][best]} wins")
        else:
            assert row["decision"] not in ("variant_wins", "control_wins")
            assert "wins" not in shown[exp_id]["verdict"]

    # the first experiment's detail: verdict, arms with the metric's units, chart
    first = ids[0]
    wait_until(lambda: first in dash_duo.find_element("#ex-verdict").text, "first detail")
    arms = ex.arm_table(ex.analyse(con, Filters(), first, "ctr"))
    wait_for_rows(dash_duo, "ex-arms", "arm", arms["arm"].tolist())
    assert grid_column(dash_duo, "ex-arms", "impressions") == [str(v) for v in arms["impressions"]]
    dash_duo.wait_for_element("#ex-lift .main-svg")

    # the arm table's export holds the rows shown
    click(dash_duo, "#ex-arms-export")
    exported = read_download(dash_duo, f"experiment-{first}-ctr_all.csv")
    assert [r["arm"] for r in exported] == arms["arm"].tolist()
    assert [int(r["clicks"]) for r in exported] == arms["clicks"].tolist()

    # all metrics: Holm p-values; the switch adds Benjamini-Hochberg across metrics
    plain = ex.metrics_overview(con, Filters(), first)
    adjusted = ex.metrics_overview(con, Filters(), first, adjust="bh")
    wait_until(lambda: grid_column(dash_duo, "ex-overview", "p_holm")
               == [p_text(v) for v in plain["p_holm"]], "overview p-values")
    assert grid_column(dash_duo, "ex-overview", "metric") == plain["metric"].tolist()
    assert grid_column(dash_duo, "ex-overview", "p_bh") == []
    assert grid_column(dash_duo, "ex-overview", "significant") == [
        yes_no(v) for v in plain["significant"]]
    click(dash_duo, "#ex-bh")
    wait_until(lambda: grid_column(dash_duo, "ex-overview", "p_bh")
               == [p_text(v) for v in adjusted["p_bh"]], "BH column")
    assert grid_column(dash_duo, "ex-overview", "significant") == [
        yes_no(v) for v in adjusted["significant"]]
    assert "Benjamini-Hochberg" in dash_duo.find_element("#ex-overview").text
    click(dash_duo, "#ex-overview-export")
    exported = read_download(dash_duo, f"experiment-{first}-all-metrics-bh_all.csv")
    assert [r["metric"] for r in exported] == adjusted["metric"].tolist()
    assert [float(r["p_bh"]) for r in exported] == pytest.approx(adjusted["p_bh"].tolist())
    click(dash_duo, "#ex-bh")
    wait_until(lambda: grid_column(dash_duo, "ex-overview", "p_bh") == [], "BH column gone")

    # another metric: the arm table counts leads per click
    choose(dash_duo, "ex-metric", "lead_rate")
    leads = ex.arm_table(ex.analyse(con, Filters(), first, "lead_rate"))
    wait_until(lambda: grid_column(dash_duo, "ex-arms", "leads") == [str(v) for v in leads["leads"]],
               "lead counts")
    assert "Lead rate" in dash_duo.find_element("#ex-verdict").text

    # a row click opens that experiment
    other = ids[-1]
    cell = next(c for c in dash_duo.driver.find_elements(
        By.CSS_SELECTOR, "#ex-table [role=gridcell][col-id='experiment_id']") if c.text == other)
    click(dash_duo, cell)
    wait_until(lambda: f"{other} · Lead rate" in dash_duo.find_element("#ex-verdict").text,
               "detail of the clicked experiment")

    # the list export holds the rows the list shows
    click(dash_duo, "#ex-table-export")
    rows = read_download(dash_duo, "experiments_all.csv")
    assert [r["experiment_id"] for r in rows] == ids
    assert [r["verdict"] for r in rows] == [shown[i]["verdict"] for i in ids]
    assert [r["users_per_arm"] for r in rows] == [shown[i]["users_per_arm"] for i in ids]

    # a date filter in the link changes the numbers
    start = "2026-06-01"
    later = ex.summary(con, Filters.make(start=start)).set_index("experiment_id")
    dash_duo.driver.get(dash_duo.server_url + f"/experiments?start={start}")
    expected = {i: str(later.loc[i, "users_per_arm"]) for i in ids}
    assert expected != {i: shown[i]["users_per_arm"] for i in ids}
    wait_until(lambda: {k: v["users_per_arm"] for k, v in grid_rows(
        dash_duo, "ex-table", "experiment_id", ["users_per_arm"]).items()} == expected,
        "numbers of the later period")

    # a channel filter narrows the list to that channel's experiments
    channel = con.execute(
        "SELECT c.channel_id FROM creative cr JOIN campaign c USING (campaign_id) "
        "WHERE cr.experiment_id = ? LIMIT 1", [first]).fetchone()[0]
    only = ex.summary(con, Filters.make(channel=channel))["experiment_id"].tolist()
    assert first in only and other not in only
    dash_duo.driver.get(dash_duo.server_url + f"/experiments?channel={channel}")
    wait_for_rows(dash_duo, "ex-table", "experiment_id", only)
    # and the detail follows the filter (waiting for it also lets the last callback finish)
    verdict = ex.analyse(con, Filters.make(channel=channel), only[0], "ctr").verdict
    wait_until(lambda: verdict in dash_duo.find_element("#ex-verdict").text, "filtered detail")

    assert dash_duo.get_logs() == []
