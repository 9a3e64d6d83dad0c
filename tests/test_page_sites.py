"""The Sites page in real headless Chromium on the demo store: it loads without console
errors, a filter changes the numbers, non-enrolling sites are highlighted, and the CSV
export holds the rows the table shows."""
import csv
import json
import time
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from cockpit.filters import Filters
from cockpit.metrics import sites


def wait_text(dash_duo, selector: str, unwanted=("", "…"), timeout: float = 20) -> str:
    dash_duo.wait_for_element(selector)
    until = time.time() + timeout
    while time.time() < until:
        text = dash_duo.find_element(selector).text
        if text not in unwanted:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{selector} kept showing {dash_duo.find_element(selector).text!r}")


def choose(dash_duo, dropdown_id: str, value: str) -> None:
    """Pick an option of a dcc.Dropdown by its value (Dash 4 DOM: role=option + checkbox)."""
    dash_duo.find_element(f"#{dropdown_id}").click()
    option = dash_duo.wait_for_element(f"[role=option] input[value='{value}']")
    option.find_element(By.XPATH, "./ancestor::*[@role='option']").click()
    dash_duo.driver.switch_to.active_element.send_keys(Keys.ESCAPE)


def grid_column(dash_duo, grid_id: str, col: str) -> list[str]:
    cells = dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#{grid_id} [role=gridcell][col-id='{col}']")
    return [c.text for c in cells]


def wait_grid(dash_duo, grid_id: str, col: str, expected: list[str], timeout: float = 20) -> None:
    until = time.time() + timeout
    while time.time() < until:
        try:
            if grid_column(dash_duo, grid_id, col) == expected:
                return
        except StaleElementReferenceException:
            pass  # the grid re-rendered while it was read
        time.sleep(0.1)
    assert grid_column(dash_duo, grid_id, col) == expected


def row_background(dash_duo, grid_id: str, site_id: str) -> str:
    """The computed background colour of the grid row that shows ``site_id``."""
    return dash_duo.driver.execute_script(
        """const cell = [...document.querySelectorAll(`#${arguments[0]} [role=gridcell][col-id='site_id']`)]
               .find(c => c.textContent.trim() === arguments[1]);
           return cell ? getComputedStyle(cell.closest('.ag-row')).backgroundColor : null;""",
        grid_id, site_id)


def test_sites_page_filter_highlight_and_export(dash_duo, cockpit_app, demo_store, demo_raw):
    con = demo_store.reader()
    dash_duo.start_server(cockpit_app)
    dash_duo.driver.set_window_size(1400, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/sites")

    everything = sites.site_table(con, Filters())
    summary = sites.summary(everything)
    active_all = str(summary["active_sites"])
    assert wait_text(dash_duo, "#si-active") == active_all
    assert wait_text(dash_duo, "#si-nonenrolling") == str(summary["non_enrolling"])
    assert wait_text(dash_duo, "#si-slow") == str(summary["slow_contact"])
    wait_grid(dash_duo, "si-table", "site_id", everything["site_id"].tolist())

    # the planted non-enrolling sites are tinted red (#f8d7da), an ordinary site is not
    truth = json.loads((demo_raw / "ground_truth.json").read_text(encoding="utf-8"))
    for site in truth["non_enrolling_sites"]:
        assert row_background(dash_duo, "si-table", site) == "rgb(248, 215, 218)"
    ok_site = everything.loc[everything["status"] == "ok", "site_id"].iloc[0]
    assert row_background(dash_duo, "si-table", ok_site) != "rgb(248, 215, 218)"

    # a filter changes the numbers
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    choose(dash_duo, "f-study", study)
    f = Filters.make(study=study)
    table = sites.site_table(con, f)
    shown = wait_text(dash_duo, "#si-active", unwanted=("", "…", active_all))
    assert shown == str(sites.summary(table)["active_sites"])
    wait_grid(dash_duo, "si-table", "site_id", table["site_id"].tolist())

    # the export holds the rows the table shows, in its order
    target = Path(dash_duo.download_path) / f"sites_study-{study}.csv"
    button = dash_duo.find_element("#si-table-export")
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", button)
    button.click()
    until = time.time() + 15
    while not target.exists() and time.time() < until:
        time.sleep(0.1)
    time.sleep(0.2)
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["site_id"] for r in rows] == grid_column(dash_duo, "si-table", "site_id")
    assert [r["site_id"] for r in rows] == table["site_id"].tolist()
    assert [int(r["randomized"]) for r in rows] == table["randomized"].tolist()
    assert list(rows[0]) == list(table.columns)

    assert dash_duo.get_logs() == []
