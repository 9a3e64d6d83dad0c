"""The Channels page in real headless Chromium on the demo store: it loads without
console errors, a filter changes the numbers, a row click drills into campaigns, and
the CSV export holds the rows the table shows; one request draws the page, a change of
level, drill-down or trend metric only its own part."""
from plotly.io.json import to_json_plotly
from selenium.webdriver.common.by import By

from browser import choose, click, read_download, start_signed_in, wait_until

from cockpit.filters import Filters
from cockpit.metrics import channels

# cell texts of one column, in the order the grid shows its rows
_COLUMN_JS = """
const [grid, col] = arguments;
const cells = [...document.querySelectorAll(`#${grid} [role=gridcell][col-id='${col}']`)];
return cells.map(c => [Number(c.closest('[row-index]').getAttribute('row-index')), c.innerText])
            .sort((a, b) => a[0] - b[0]).map(p => p[1]);
"""


def column(dash_duo, grid_id: str, col: str) -> list[str]:
    return dash_duo.driver.execute_script(_COLUMN_JS, grid_id, col)


def shown(dash_duo, grid_id: str, expected: list[str], col: str) -> None:
    wait_until(lambda: column(dash_duo, grid_id, col) == expected,
               f"{grid_id}.{col} to show {expected}")


def leads_text(table) -> list[str]:
    return [f"{n:,}" for n in table["leads"]]


def test_channels_page(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.get(dash_duo.server_url + "/channels")

    everything = channels.channel_table(con, Filters())
    shown(dash_duo, "ch-table", everything["channel"].tolist(), "channel")
    shown(dash_duo, "ch-table", leads_text(everything), "leads")
    assert "Unattributed (no consented touch)" in column(dash_duo, "ch-table", "channel")
    dash_duo.wait_for_element("#ch-shares .main-svg")
    dash_duo.wait_for_element("#ch-scatter .main-svg")
    dash_duo.wait_for_element("#ch-trend .main-svg")
    assert dash_duo.find_element("#ch-spend-note").text == ""

    # another trend metric redraws the trend alone: the table keeps its rows
    click(dash_duo, dash_duo.driver.find_element(
        By.XPATH, "//*[@id='ch-trend-metric']//label[contains(., 'Randomized')]"))
    wait_until(lambda: "randomized per week" in dash_duo.find_element("#ch-trend .g-ytitle").text,
               "the trend of randomized patients")
    assert column(dash_duo, "ch-table", "channel") == everything["channel"].tolist()

    # a study filter changes the numbers to those of that study
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    choose(dash_duo, "f-study", study)
    one = channels.channel_table(con, Filters.make(study=study))
    assert leads_text(one) != leads_text(everything)
    shown(dash_duo, "ch-table", leads_text(one), "leads")
    shown(dash_duo, "ch-table", one["channel"].tolist(), "channel")

    # the export holds exactly the rows shown, the filter in the file name
    click(dash_duo, "#ch-table-export")
    rows = read_download(dash_duo, f"channels_by_channel_study-{study}.csv")
    assert [r["channel"] for r in rows] == one["channel"].tolist()
    assert [int(r["leads"]) for r in rows] == one["leads"].tolist()
    assert [r["cost_per_randomized"] for r in rows] == [
        "" if v != v else str(v) for v in one["cost_per_randomized"]]

    # a site filter: spend cannot be split by site, and the page says so
    site = con.execute("SELECT min(site_id) FROM site WHERE study_id = ?", [study]).fetchone()[0]
    choose(dash_duo, "f-site", site)
    wait_until(lambda: "site or segment filter" in dash_duo.find_element("#ch-spend-note").text,
               "the note that spend is not shown")
    at_site = channels.channel_table(con, Filters.make(study=study, site=site))
    shown(dash_duo, "ch-table", leads_text(at_site), "leads")
    assert set(column(dash_duo, "ch-table", "spend")) == {"—"}
    assert dash_duo.get_logs() == []


def test_channels_drill_down_to_campaigns(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.get(dash_duo.server_url + "/channels")
    everything = channels.channel_table(con, Filters())
    shown(dash_duo, "ch-table", everything["channel"].tolist(), "channel")

    target = "facebook"
    name = everything.set_index("channel_id").loc[target, "channel"]
    cell = wait_until(lambda: [c for c in dash_duo.driver.find_elements(
        By.CSS_SELECTOR, "#ch-table [role=gridcell][col-id='leads']")
        if c.find_element(By.XPATH, "./ancestor::*[@row-index]").get_attribute("row-index")
        == str(column(dash_duo, "ch-table", "channel").index(name))], "the facebook row")[0]
    click(dash_duo, cell)
    campaigns = channels.channel_table(con, Filters.make(channel=target), "campaign")
    shown(dash_duo, "ch-table", campaigns["campaign"].tolist(), "campaign")
    shown(dash_duo, "ch-table", leads_text(campaigns), "leads")
    assert dash_duo.find_element("#ch-level input[value='campaign']").is_selected()

    click(dash_duo, "#ch-table-export")
    rows = read_download(dash_duo, f"channels_by_campaign_channel-{target}.csv")
    assert [r["campaign_id"] for r in rows] == campaigns["campaign_id"].tolist()
    assert [int(r["leads"]) for r in rows] == campaigns["leads"].tolist()
    assert dash_duo.get_logs() == []


def test_every_kpi_column_has_its_definition_on_hover(cockpit_app, cockpit_users, tiny_con):
    # the page module registers itself with the app, so it is imported after the app
    from pages.channels import grid_columns

    for level in channels.LEVELS:
        defs = {d["field"]: d for d in grid_columns(channels.channel_table(tiny_con, Filters(), level))}
        for col in channels.KPI_COLUMNS:
            assert defs[col].get("headerTooltip"), col


def test_a_change_of_level_or_trend_metric_redraws_its_own_part_only(cockpit_app):
    from pages.channels import PARTS, parts_to_draw

    everything = set(PARTS)
    assert parts_to_draw(set()) == everything  # the page opens
    assert parts_to_draw({"url.search"}) == everything
    assert parts_to_draw({"url.search", "ch-level.value"}) == everything
    assert parts_to_draw({"ch-level.value"}) == parts_to_draw({"ch-level.value", "ch-drill.value"}) == {"table"}
    assert parts_to_draw({"ch-trend-metric.value"}) == {"trend"}


def as_sent(outputs: list) -> str:
    """Callback outputs as Dash sends them to the browser."""
    return to_json_plotly(outputs)


def test_one_request_draws_what_each_part_draws(cockpit_app, demo_store):
    from dash import no_update

    from pages.channels import page_outputs

    con = demo_store.reader()
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    site = con.execute("SELECT min(site_id) FROM site WHERE study_id = ?", [study]).fetchone()[0]
    for search, level, drill in [("", None, None), (f"?study={study}", "campaign", "facebook"),
                                 (f"?site={site}", "channel", None)]:
        whole = page_outputs(search, level, drill, "spend")
        charts, table, trend = (page_outputs(search, level, drill, "spend", {part})
                                for part in ("charts", "table", "trend"))
        assert as_sent(whole) == as_sent(charts[:4] + table[4:7] + trend[7:])
        assert charts[4:] == [no_update] * 4 and table[:4] + table[7:] == [no_update] * 5
        assert trend[:7] == [no_update] * 7
        # the table is the channel table at the level, drilled into the channel
        f = Filters.from_query(search)
        shown = channels.channel_table(con, Filters.make(study=f.study, site=f.site, channel=drill),
                                       level or "channel")
        assert [row["leads"] for row in whole[4]] == shown["leads"].tolist()
        assert [row["cost_per_randomized"] for row in whole[4]] == [
            None if v != v else v for v in shown["cost_per_randomized"]]


def test_a_level_or_metric_the_page_does_not_offer_leaves_its_part_alone(cockpit_app, demo_store):
    # a crafted request: the other parts are still drawn, as for a valid one
    from dash import no_update

    from pages.channels import page_outputs

    crafted = page_outputs("", "bogus", None, "nonsense")
    valid = page_outputs("", "channel", None, "leads")
    assert crafted[4:8] == [no_update] * 4
    assert as_sent(crafted[:4]) == as_sent(valid[:4])
