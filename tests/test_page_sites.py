"""The Sites page in real headless Chromium on the demo store: it loads without console
errors, a filter changes the numbers, non-enrolling sites are highlighted, and the CSV
export holds the rows the table shows."""
import json

from browser import choose, click, grid_column, read_download, start_signed_in, text_of, wait_for_rows

from cockpit.filters import Filters
from cockpit.metrics import sites


def row_background(dash_duo, grid_id: str, site_id: str) -> str:
    """The computed background colour of the grid row that shows ``site_id``."""
    return dash_duo.driver.execute_script(
        """const cell = [...document.querySelectorAll(`#${arguments[0]} [role=gridcell][col-id='site_id']`)]
               .find(c => c.textContent.trim() === arguments[1]);
           return cell ? getComputedStyle(cell.closest('.ag-row')).backgroundColor : null;""",
        grid_id, site_id)


def test_sites_page_filter_highlight_and_export(dash_duo, cockpit_app, cockpit_users, demo_store, demo_raw):
    con = demo_store.reader()
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.set_window_size(1400, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/sites")

    everything = sites.site_table(con, Filters())
    summary = sites.summary(everything)
    active_all = str(summary["active_sites"])
    assert text_of(dash_duo, "si-active") == active_all
    assert text_of(dash_duo, "si-nonenrolling") == str(summary["non_enrolling"])
    assert text_of(dash_duo, "si-slow") == str(summary["slow_contact"])
    wait_for_rows(dash_duo, "si-table", "site_id", everything["site_id"].tolist())

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
    shown = text_of(dash_duo, "si-active", not_in=("", "…", active_all))
    assert shown == str(sites.summary(table)["active_sites"])
    wait_for_rows(dash_duo, "si-table", "site_id", table["site_id"].tolist())

    # the export holds the rows the table shows, in its order
    click(dash_duo, "#si-table-export")
    rows = read_download(dash_duo, f"sites_study-{study}.csv")
    assert [r["site_id"] for r in rows] == grid_column(dash_duo, "si-table", "site_id")
    assert [r["site_id"] for r in rows] == table["site_id"].tolist()
    assert [int(r["randomized"]) for r in rows] == table["randomized"].tolist()
    assert list(rows[0]) == list(table.columns)

    assert dash_duo.get_logs() == []
