"""The Budget page in real headless Chromium on the demo store: it loads without console
errors, a budget move, a typed budget, the outcome and a filter change the numbers, the
optimiser keeps the total budget, and the CSV export holds the rows the table shows."""
import time

from browser import choose, click, grid_column, read_download, start_signed_in, text_of, wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from cockpit.analytics import optimise as opt
from cockpit.filters import Filters
from cockpit.metrics import mix as mm

FIT_TIMEOUT = 120   # a cold fit on a busy machine


def total_text(fitted, plan, outcome="randomized", weeks=12) -> str:
    return f"{mm.scenario(fitted, plan, weeks, outcome).comparison.plan_total:,.1f}"


def cell(dash_duo, grid_id: str, row_id: str, col: str):
    return dash_duo.driver.find_element(
        By.CSS_SELECTOR, f"#{grid_id} [row-id='{row_id}'] [role=gridcell][col-id='{col}']")


def test_budget_page(dash_duo, cockpit_app, cockpit_users, demo_store):
    con = demo_store.reader()
    started = time.perf_counter()
    fitted = mm.cached_fit(con, Filters())          # the page reuses this cached fit
    cold = time.perf_counter() - started
    start_signed_in(dash_duo, cockpit_app, cockpit_users["admin"], port=58074)   # not the default port, which other suites use
    dash_duo.driver.get(dash_duo.server_url + "/budget")

    table = mm.channel_frame(fitted, "randomized")
    wait_until(lambda: grid_column(dash_duo, "bu-channels", "channel") == table["channel"].tolist(),
               "the channel table", timeout=FIT_TIMEOUT)
    assert text_of(dash_duo, "bu-r2") == f"{fitted.fit.r2:.2f}"
    now = opt.current_budget(fitted.fit)
    expected = total_text(fitted, now)
    assert text_of(dash_duo, "bu-plan-total") == expected
    assert text_of(dash_duo, "bu-difference") == "0.0"
    dash_duo.wait_for_element("#bu-curves .main-svg")
    assert "What the model assumes" in text_of(dash_duo, "bu-assumes")

    # move 10% of the biggest budget to the channel whose next patient is cheapest (the
    # page's suggestion): the prediction follows
    channels = list(fitted.fit.channels)
    source = channels[int(now.argmax())]
    target = table[table["channel_id"] != source].dropna(subset=["marginal_cost"]) \
        .sort_values("marginal_cost")["channel_id"].iloc[0]
    click(dash_duo, "#bu-move-apply")
    moved = opt.move_share(now, channels.index(source), channels.index(target), 10)
    wait_until(lambda: dash_duo.find_element("#bu-plan-total").text == total_text(fitted, moved),
               f"the prediction after moving 10% of {source} to {target}")
    assert text_of(dash_duo, "bu-difference") != "0.0"

    # type a weekly budget: a cell edit changes the prediction
    typed = moved.copy()
    typed[channels.index("facebook")] = 2000.0
    box = cell(dash_duo, "bu-plan", "facebook", "budget")
    click(dash_duo, box)
    editor = wait_until(lambda: box.find_element(By.CSS_SELECTOR, "input"), "the cell editor")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("2000", Keys.ENTER)
    wait_until(lambda: dash_duo.find_element("#bu-plan-total").text == total_text(fitted, typed),
               "the prediction after typing a budget")

    # the optimiser spreads the same total budget
    click(dash_duo, "#bu-optimise")
    wait_until(lambda: "Proposed: the same" in dash_duo.find_element("#bu-plan-note").text, "a proposal")
    shown = [float(t.replace("€", "").replace(",", "")) for t in grid_column(dash_duo, "bu-plan", "budget")]
    assert abs(sum(shown) - typed.sum()) <= len(shown)   # whole euros per channel

    # leads instead of randomized: other numbers in the table
    click(dash_duo, "#bu-outcome input[value='leads']")
    leads = mm.channel_frame(fitted, "leads")
    wait_until(lambda: grid_column(dash_duo, "bu-channels", "contribution")
               == [f"{v:,.1f}" for v in leads["contribution"]], "the leads table")

    # the export holds exactly the rows shown
    click(dash_duo, "#bu-channels-export")
    rows = read_download(dash_duo, "budget_leads_all.csv")
    assert [r["channel_id"] for r in rows] == leads["channel_id"].tolist()
    assert [float(r["contribution"]) for r in rows] == leads["contribution"].tolist()
    assert [float(r["spend"]) for r in rows] == leads["spend"].tolist()

    # one study: its own fit, and the date it reaches its target
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    choose(dash_duo, "f-study", study)
    one = mm.cached_fit(con, Filters.make(study=study))
    wait_until(lambda: grid_column(dash_duo, "bu-channels", "contribution")
               == [f"{v:,.1f}" for v in mm.channel_frame(one, "leads")["contribution"]],
               "the study's table", timeout=FIT_TIMEOUT)
    sc = mm.scenario(one, opt.current_budget(one.fit), 12, "leads")
    if sc.target_plan:
        assert text_of(dash_duo, "bu-target") == sc.target_plan.isoformat()
    assert study in text_of(dash_duo, "bu-target-note")
    assert dash_duo.get_logs() == []
    print(f"cold fit of the portfolio: {cold:.1f} s")
