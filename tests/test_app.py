"""The cockpit in real headless Chromium: Overview loads, a filter changes the numbers,
the filter lives in the URL, and the CSV export holds the rows the table shows."""
from browser import choose, click, read_download, start_signed_in, text_of, wait_for_rows

from cockpit.filters import Filters
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
