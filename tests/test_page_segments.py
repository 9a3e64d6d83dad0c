"""The Segments page in real headless Chromium on the demo store: it loads without
console errors and shows its formula, a filter changes the numbers, and the CSV export
holds the rows the table shows."""
import pandas as pd

from browser import choose, click, grid_column, read_download, start_signed_in, wait_for_rows, wait_until

from cockpit.filters import Filters
from cockpit.metrics import segments


def ints(table, col: str) -> list[str]:
    return [f"{n:,}" for n in table[col]]


def days(median) -> str:
    """A median as the CSV holds it (empty: not reached)."""
    return "" if pd.isna(median) else str(median)


def test_segments_page(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.get(dash_duo.server_url + "/segments")

    everything = segments.segment_table(con, Filters())
    wait_for_rows(dash_duo, "sg-table", "segment", everything["segment"].tolist())
    wait_for_rows(dash_duo, "sg-table", "leads", ints(everything, "leads"))
    wait_for_rows(dash_duo, "sg-table", "priority", [f"{p:.0f}" for p in everything["priority"]])
    page = dash_duo.find_element("#_pages_content").text
    assert "Priority = 100 × (yield index + speed index) ÷ 2" in page
    assert segments.KM_METHOD in page  # which leads the median follows, and which it leaves out
    dash_duo.wait_for_element("#sg-scatter .main-svg")
    dash_duo.wait_for_element("#sg-priority .main-svg")
    wait_until(lambda: "allocated" in dash_duo.find_element("#sg-spend-note").text, "the spend note")

    # a channel filter changes the numbers
    choose(dash_duo, "f-channel", "hcp_referral")
    hcp = segments.segment_table(con, Filters.make(channel="hcp_referral"))
    assert ints(hcp, "leads") != ints(everything, "leads")
    wait_for_rows(dash_duo, "sg-table", "leads", ints(hcp, "leads"))
    wait_for_rows(dash_duo, "sg-table", "randomized", ints(hcp, "randomized"))

    # the export holds exactly the rows shown, the filter in the file name
    click(dash_duo, "#sg-table-export")
    rows = read_download(dash_duo, "segments_channel-hcp_referral.csv")
    assert [r["segment"] for r in rows] == hcp["segment"].tolist()
    assert [int(r["leads"]) for r in rows] == hcp["leads"].tolist()
    assert [float(r["priority"]) for r in rows] == hcp["priority"].tolist()
    # the median column is time to enrolment, under the one name it has on every page
    assert [r["median_days_to_randomization"] for r in rows] == [
        days(m) for m in hcp["median_days_to_randomization"]]

    # a site filter: spend cannot be split by site, and the page says so
    site = con.execute("SELECT min(site_id) FROM site").fetchone()[0]
    choose(dash_duo, "f-site", site)
    wait_until(lambda: "site filter" in dash_duo.find_element("#sg-spend-note").text, "the no-spend note")
    at_site = segments.segment_table(con, Filters.make(channel="hcp_referral", site=site))
    wait_for_rows(dash_duo, "sg-table", "leads", ints(at_site, "leads"))
    assert set(grid_column(dash_duo, "sg-table", "priority")) == {"—"}
    assert dash_duo.get_logs() == []


def test_every_kpi_column_has_its_definition_on_hover(cockpit_app, cockpit_users, tiny_con):
    # the page module registers itself with the app, so it is imported after the app
    from pages.segments import grid_columns

    defs = grid_columns(segments.segment_table(tiny_con, Filters()))
    for spec in defs:
        if spec["field"] not in ("segment_id", "segment"):
            assert spec.get("headerTooltip"), spec["field"]
