"""The Attribution page in real headless Chromium on the demo store: it loads without
console errors, the toggle and a filter change the numbers, and the CSV export holds
the rows the table shows."""
from browser import choose, click, grid_column, read_download, start_signed_in, text_of, wait_for_rows, wait_until

from cockpit.filters import Filters
from cockpit.metrics import attribution as paths


def shown(values) -> list[str]:
    """Numbers as the grid shows them (one decimal, thousands separated)."""
    return [f"{v:,.1f}" for v in values]


def test_attribution_page(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"], port=58073)   # not the default port, which other suites use
    dash_duo.driver.get(dash_duo.server_url + "/attribution")

    leads = paths.channel_table(con, Filters(), "lead")
    wait_for_rows(dash_duo, "at-table", "channel", leads["channel"].tolist())
    wait_until(lambda: grid_column(dash_duo, "at-table", "markov") == shown(leads["markov"]),
               "the Markov credits up to the lead")
    assert grid_column(dash_duo, "at-table", "last_touch") == shown(leads["last_touch"])
    dash_duo.wait_for_element("#at-chart .main-svg")
    assert "leads" in text_of(dash_duo, "at-note")

    # up to randomization: far fewer conversions, other numbers
    click(dash_duo, "#at-mode input[value='randomized']")
    rand = paths.channel_table(con, Filters(), "randomized")
    assert shown(rand["markov"]) != shown(leads["markov"])
    wait_until(lambda: grid_column(dash_duo, "at-table", "markov") == shown(rand["markov"]),
               "the Markov credits up to randomization")
    assert grid_column(dash_duo, "at-table", "channel") == rand["channel"].tolist()

    # a study filter changes the numbers to those of that study
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    choose(dash_duo, "f-study", study)
    one = paths.channel_table(con, Filters.make(study=study), "randomized")
    assert shown(one["first_touch"]) != shown(rand["first_touch"])
    wait_until(lambda: grid_column(dash_duo, "at-table", "first_touch") == shown(one["first_touch"]),
               "the study's first-touch credits")

    # the export holds exactly the rows shown, with the mode and filter in the file name
    click(dash_duo, "#at-table-export")
    rows = read_download(dash_duo, f"attribution_up-to-randomized_study-{study}.csv")
    assert [r["channel"] for r in rows] == one["channel"].tolist()
    assert [r["channel_id"] for r in rows] == one["channel_id"].tolist()
    for model in paths.TABLE_MODELS:
        assert [float(r[model]) for r in rows] == one[model].tolist(), model
    assert [float(r["removal_effect_pct"]) for r in rows] == one["removal_effect_pct"].tolist()
    assert dash_duo.get_logs() == []
