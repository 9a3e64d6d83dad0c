"""The Weekly review page in real headless Chromium on the demo store: it loads without
console errors with one row per study plus the portfolio total, a study filter changes
the rows, the forecast chart and the changes of the week show, and the CSV export holds
the rows the table shows."""
from browser import choose, click, grid_column, read_download, start_signed_in, text_of, wait_for_rows, wait_until

from cockpit.filters import Filters
from cockpit.metrics import review


def test_review_page(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    table = review.review_table(con, Filters())
    names = table["name"].tolist()
    assert names[-1].startswith("Portfolio") and len(names) == 4  # 3 demo studies + total

    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.get(dash_duo.server_url + "/review")
    wait_for_rows(dash_duo, "rv-table", "name", names)
    assert text_of(dash_duo, "rv-asof").startswith("As of")
    # the selected study's forecast sentence and its (up to three) biggest changes
    first = table["study_id"].iloc[0]
    assert text_of(dash_duo, "rv-summary").startswith(f"{first}:")
    wait_until(lambda: dash_duo.find_elements("#rv-chart .scatterlayer .trace"), "the forecast chart")
    shown = wait_until(lambda: [li.text for li in dash_duo.find_elements("#rv-changes li")], "changes")
    expected = [review.describe_change(r) for r in review.biggest_changes(con, first).to_dict("records")]
    assert shown == expected and 1 <= len(expected) <= 3

    # a study filter: that study and the total
    study = table["study_id"].iloc[1]
    choose(dash_duo, "f-study", study)
    one = review.review_table(con, Filters.make(study=study))
    wait_for_rows(dash_duo, "rv-table", "name", one["name"].tolist())
    assert len(one) == 2 and f"study={study}" in dash_duo.driver.current_url
    assert text_of(dash_duo, "rv-summary").startswith(f"{study}:")

    # the export holds the rows shown, every column
    click(dash_duo, "#rv-table-export")
    rows = read_download(dash_duo, f"weekly_review_study-{study}.csv")
    assert [r["name"] for r in rows] == grid_column(dash_duo, "rv-table", "name") == one["name"].tolist()
    assert list(rows[0]) == review.REVIEW_COLUMNS
    assert int(rows[0]["randomized_to_date"]) == int(one["randomized_to_date"].iloc[0])
    assert rows[0]["forecast_date"] == one["forecast_date"].iloc[0]
    assert float(rows[1]["pace_pct"]) == float(one["pace_pct"].iloc[1])
    assert dash_duo.get_logs() == []
