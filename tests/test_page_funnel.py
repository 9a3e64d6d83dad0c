"""The Funnel page in real headless Chromium on the demo store: it loads without console
errors, a filter changes the numbers, the Kaplan-Meier grouping and question switch
(time to enrolment, or the share of all leads randomized over time), and each CSV
export holds the rows the table shows; one request draws the page, a change of the
curves only the curves."""
from plotly.io.json import to_json_plotly
from selenium.webdriver.common.by import By

from browser import choose, click, grid_column, read_download, start_signed_in, text_of, wait_for_rows, wait_until

from cockpit.filters import Filters
from cockpit.metrics import funnel


def ints(values) -> list[str]:
    return [f"{n:,}" for n in values]


def radio(dash_duo, group_id: str, label: str):
    """The label of one option of a dbc.RadioItems, by its text."""
    return dash_duo.driver.find_element(By.XPATH, f"//*[@id='{group_id}']//label[contains(., '{label}')]")


def left_out_sentence(summary) -> str:
    """The Kaplan-Meier note's count of the leads not in the time-to-enrolment curve."""
    total = summary.set_index("group").loc[funnel.ALL_LEADS]
    left = total["exited"] + total["stale"]
    return f"{left:,} leads left the funnel and are not part of this curve; see drop-off"


def test_funnel_page_filter_km_and_exports(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"])
    dash_duo.driver.set_window_size(1400, 1000)
    dash_duo.driver.get(dash_duo.server_url + "/funnel")

    everything = funnel.stage_conversion(con, Filters())
    leads_all = f"{everything['reached'].iloc[0]:,}"
    assert text_of(dash_duo, "fu-leads") == leads_all
    assert text_of(dash_duo, "fu-randomized") == f"{everything['reached'].iloc[-1]:,}"
    # the median card is time to enrolment, the one definition
    speed = funnel.enrolment_summary(con, Filters())
    assert text_of(dash_duo, "fu-median") == f"{speed['median_days_to_randomization']:,.0f} days"
    # the cohort note or warning is there
    assert "younger than" in text_of(dash_duo, "fu-maturity")
    # beside the curve: how many leads it leaves out
    km_all = funnel.enrolment_curves(con, Filters(), by="channel")
    wait_until(lambda: left_out_sentence(km_all.summary) in text_of(dash_duo, "fu-km-note"),
               "the count of leads left out of the curve")

    # a filter changes the numbers
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    choose(dash_duo, "f-study", study)
    f = Filters.make(study=study)
    stages = funnel.stage_conversion(con, f)
    assert text_of(dash_duo, "fu-leads", not_in=("", "…", leads_all)) == f"{stages['reached'].iloc[0]:,}"
    assert stages["reached"].iloc[0] != everything["reached"].iloc[0]

    # the stage table shows the filtered cohort; its export holds exactly those rows
    wait_for_rows(dash_duo, "fu-stages", "reached", ints(stages["reached"]))
    click(dash_duo, "#fu-stages-export")
    rows = read_download(dash_duo, f"funnel_stages_study-{study}.csv")
    assert [r["label"] for r in rows] == stages["label"].tolist()
    assert [int(r["reached"]) for r in rows] == stages["reached"].tolist()
    assert grid_column(dash_duo, "fu-stages", "label") == [r["label"] for r in rows]

    drops = funnel.dropoff_reasons(con, f)
    wait_for_rows(dash_duo, "fu-dropoff", "persons", ints(drops["persons"]))
    click(dash_duo, "#fu-dropoff-export")
    rows = read_download(dash_duo, f"funnel_dropoff_reasons_study-{study}.csv")
    assert [(r["exit"], r["reason"], int(r["persons"])) for r in rows] == list(
        zip(drops["exit"], drops["reason"], drops["persons"]))

    # time to enrolment by segment: the group table lists the segments and exports the same rows
    km = funnel.enrolment_curves(con, f, by="segment")
    click(dash_duo, radio(dash_duo, "fu-km-by", "Segment"))
    wait_for_rows(dash_duo, "fu-km-summary", "group_name", km.summary["group_name"].tolist())
    wait_for_rows(dash_duo, "fu-km-summary", "km_leads", ints(km.summary["km_leads"]))
    assert left_out_sentence(km.summary) in text_of(dash_duo, "fu-km-note")
    click(dash_duo, "#fu-km-summary-export")
    rows = read_download(dash_duo, f"time_to_enrolment_by_segment_study-{study}.csv")
    assert [r["group_name"] for r in rows] == km.summary["group_name"].tolist()
    assert [int(r["randomized_so_far"]) for r in rows] == km.summary["randomized_so_far"].tolist()
    assert [int(r["exited"]) for r in rows] == km.summary["exited"].tolist()
    wait_for_rows(dash_duo, "fu-risk", "day_0", ints(km.at_risk["day_0"]))
    # one curve per segment with leads followed, each with its band
    assert len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "#fu-km .scatterlayer .trace")) == 3 * (
        km.curves["group"].nunique())

    # the second question: the share of all leads randomized by day d, every lead in it
    share = funnel.enrolment_curves(con, f, by="segment", view="yield")
    click(dash_duo, radio(dash_duo, "fu-km-view", "Yield over time"))
    wait_for_rows(dash_duo, "fu-km-summary", "leads", ints(share.summary["leads"]))
    assert "yield over time, not speed" in text_of(dash_duo, "fu-km-note")
    assert sum(share.summary.set_index("group").drop(funnel.ALL_LEADS)["leads"]) == stages["reached"].iloc[0]
    click(dash_duo, "#fu-km-summary-export")
    rows = read_download(dash_duo, f"share_randomized_over_time_by_segment_study-{study}.csv")
    assert [int(r["leads"]) for r in rows] == share.summary["leads"].tolist()
    assert "median_days_to_randomization" not in rows[0]

    assert dash_duo.get_logs() == []


def test_every_time_to_enrolment_column_has_its_definition_on_hover(cockpit_app, cockpit_users, tiny_con):
    # the page module registers itself with the app, so it is imported after the app
    from pages.funnel import grid_columns

    for view in funnel.VIEWS:
        km = funnel.enrolment_curves(tiny_con, Filters(), by="segment", view=view)
        for spec in grid_columns(km.summary):
            if spec["field"] not in ("group", "group_name"):
                assert spec.get("headerTooltip"), (view, spec["field"])


def test_a_change_of_the_curves_redraws_the_curves_only(cockpit_app):
    from pages.funnel import PARTS, parts_to_draw

    assert parts_to_draw(set()) == parts_to_draw({"url.search"}) == set(PARTS)  # opens, new filter
    assert parts_to_draw({"fu-km-by.value"}) == parts_to_draw({"fu-km-view.value"}) == {"curves"}
    assert parts_to_draw({"url.search", "fu-km-by.value"}) == set(PARTS)


def as_sent(outputs: list) -> str:
    """Callback outputs as Dash sends them to the browser."""
    return to_json_plotly(outputs)


def test_one_request_draws_what_each_part_draws(cockpit_app, demo_store):
    from dash import no_update

    from pages.funnel import FUNNEL_OUTPUTS, page_outputs

    con = demo_store.reader()
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    for search, by, view in [("", None, None), (f"?study={study}", "segment", "yield")]:
        whole = page_outputs(search, by, view)
        cards, curves = page_outputs(search, by, view, {"funnel"}), page_outputs(search, by, view, {"curves"})
        assert as_sent(whole) == as_sent(cards[:FUNNEL_OUTPUTS] + curves[FUNNEL_OUTPUTS:])
        assert curves[:FUNNEL_OUTPUTS] == [no_update] * FUNNEL_OUTPUTS
        # the cards and the group table are those of the metrics
        f = Filters.from_query(search)
        assert whole[0] == f"{funnel.stage_conversion(con, f)['reached'].iloc[0]:,}"
        km = funnel.enrolment_curves(con, f, by=by or "channel", view=view or "speed")
        assert [row["group_name"] for row in whole[-2]] == km.summary["group_name"].tolist()
        assert [row["day_0"] for row in whole[-4]] == km.at_risk["day_0"].tolist()
