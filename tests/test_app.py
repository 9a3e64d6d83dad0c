"""The cockpit in real headless Chromium: Overview loads, a filter changes the numbers,
the filter lives in the URL, and the CSV export holds the rows the table shows."""
from datetime import datetime, timezone

from browser import choose, click, read_download, start_signed_in, text_of, wait_for_rows, wait_until

from cockpit.filters import Filters, period_dates
from cockpit.metrics import overview


def test_overview_filter_url_and_export(dash_duo, cockpit_app, cockpit_users, demo_store):
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    con = demo_store.reader()
    everything = overview.kpis(con, Filters())
    assert text_of(dash_duo, "ov-leads") == f"{everything['leads']:,}"
    assert text_of(dash_duo, "ov-randomized") == f"{everything['randomized']:,}"

    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    choose(dash_duo, "f-study", study)
    shown = text_of(dash_duo, "ov-leads", not_in=("", "…", f"{everything['leads']:,}"))
    # independent count, straight from the loaded events
    expected = con.execute(
        "SELECT count(DISTINCT pid) FROM funnel_event WHERE stage = 'lead' AND study_id = ?", [study]
    ).fetchone()[0]
    assert shown == f"{expected:,}"
    assert f"study={study}" in dash_duo.driver.current_url

    # the table shows one row, the chosen study; the export holds exactly that row
    wait_for_rows(dash_duo, "ov-table", "study_id", [study])
    click(dash_duo, "#ov-table-export")
    rows = read_download(dash_duo, f"studies_study-{study}.csv")
    table = overview.study_table(con, Filters.make(study=study))
    assert [r["study_id"] for r in rows] == table["study_id"].tolist() == [study]
    assert int(rows[0]["leads"]) == expected
    assert int(rows[0]["randomized"]) == int(table["randomized"].iloc[0])

    # a shared link opens with the same filter
    dash_duo.driver.get(dash_duo.server_url + f"/?study={study}")
    assert text_of(dash_duo, "ov-leads") == f"{expected:,}"
    assert dash_duo.get_logs() == []


def test_a_period_preset_fills_the_dates_and_the_link(dash_duo, cockpit_app, cockpit_users, demo_store):
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    con = demo_store.reader()
    everything = overview.kpis(con, Filters())
    assert text_of(dash_duo, "ov-leads") == f"{everything['leads']:,}"
    choose(dash_duo, "f-period", "last_quarter")
    start, end = period_dates("last_quarter", datetime.now(timezone.utc).date())
    wait_until(lambda: f"start={start}&end={end}" in dash_duo.driver.current_url,
               "the URL to hold last quarter's dates")
    expected = overview.kpis(con, Filters(start=start, end=end))
    assert text_of(dash_duo, "ov-leads", not_in=("", "…", f"{everything['leads']:,}")) == \
        f"{expected['leads']:,}"
    # the dates are the filter: the picker shows them, the preset menu is free again
    shown = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('.filter-bar input')].map(i => i.value)")
    assert start.isoformat() in shown and end.isoformat() in shown
    assert dash_duo.driver.execute_script(
        "return document.querySelector('#f-period').innerText.trim()") == "Period"
    assert dash_duo.get_logs() == []
