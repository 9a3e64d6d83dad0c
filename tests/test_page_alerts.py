"""The Alerts page in real headless Chromium, on a private copy of the demo store: it
loads without console errors, a rule is created through the form, an invalid one is
refused with its reasons, a firing alert is acknowledged, and the CSV export holds the
rows the table shows."""
from datetime import date

import pytest
from browser import choose, click, grid_column, read_download, start_signed_in, text_of, wait_until
from conftest import add_admin
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from test_alerts_evaluate import copy_store, morning_after

from cockpit import context
from cockpit.alerts import evaluate as ev
from cockpit.alerts import rules as rl
from cockpit.store import Store


@pytest.fixture
def alerts_app(demo_db, tmp_path):
    """The cockpit app serving a copy of the demo store with one firing alert (the
    shared demo store is never written to); the previous store is put back after."""
    from app import create_app

    previous = context._store
    store = Store(copy_store(demo_db, tmp_path))
    rule = rl.parse_rule({"name": "Leads ST-101", "kind": "threshold", "kpi": "leads", "scope": "?study=ST-101",
                          "params": {"op": ">", "value": 0, "window_days": 7}, "pending_hours": 0,
                          "recipients": "ops@example.org"})
    rl.save_rule(store, rule, "test")
    day = date(2026, 7, 3)
    ev.evaluate_all(store, now=morning_after(day), as_of=day, base_url="http://cockpit")
    app = create_app(store)
    yield app, store, add_admin(store)
    context.set_store(previous)
    store.close()


def fill(dash_duo, element_id: str, text: str) -> None:
    field = dash_duo.find_element(f"#{element_id}")
    field.clear()
    field.send_keys(text)


def select(dash_duo, element_id: str, value: str) -> None:
    Select(dash_duo.find_element(f"#{element_id}")).select_by_value(value)


def click_row(dash_duo, grid_id: str, col: str, text: str) -> None:
    cells = dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#{grid_id} [role=gridcell][col-id='{col}']")
    click(dash_duo, next(c for c in cells if c.text == text))


def test_alerts_page_create_refuse_acknowledge_export(dash_duo, alerts_app):
    app, store, admin = alerts_app
    start_signed_in(dash_duo, app, admin)
    dash_duo.driver.set_window_size(1400, 1200)
    dash_duo.driver.get(dash_duo.server_url + "/alerts")
    wait_until(lambda: grid_column(dash_duo, "al-rules", "name") == ["Leads ST-101"], "the firing rule")
    assert grid_column(dash_duo, "al-rules", "state") == ["firing"]
    assert text_of(dash_duo, "al-n-firing") == "1"

    # a rule made through the form
    fill(dash_duo, "al-name", "Facebook CTR drop ST-102")
    select(dash_duo, "al-kind", "drift")
    select(dash_duo, "al-p-kpi", "ctr_pct")
    choose(dash_duo, "al-scope-study", "ST-102")
    choose(dash_duo, "al-scope-channel", "facebook")
    select(dash_duo, "al-p-direction", "down")
    fill(dash_duo, "al-recipients", "recruitment@example.org, cro@example.org")
    click(dash_duo, "#al-save")
    assert "Rule #2 created: downward drift of the daily CTR (EWMA chart, λ = 0.2" in text_of(dash_duo, "al-feedback")
    wait_until(lambda: grid_column(dash_duo, "al-rules", "name") == ["Leads ST-101", "Facebook CTR drop ST-102"],
               "the new rule in the table")
    saved = rl.get_rule(store.reader(), 2)
    assert saved.scope.study == ("ST-102",) and saved.scope.channel == ("facebook",)
    assert saved.recipients == ("recruitment@example.org", "cro@example.org")
    assert saved.params["lambda"] == 0.2 and saved.params["direction"] == "down"

    # an invalid rule is refused with every reason, and nothing is saved
    click(dash_duo, "#al-new")
    wait_until(lambda: dash_duo.find_element("#al-name").get_attribute("value") == "", "a cleared form")
    fill(dash_duo, "al-name", "Cost per lead at one site")
    select(dash_duo, "al-kind", "threshold")
    select(dash_duo, "al-p-kpi", "cpl")
    choose(dash_duo, "al-scope-site", "S-018")
    fill(dash_duo, "al-recipients", "not-an-address")
    click(dash_duo, "#al-save")
    refused = wait_until(lambda: (t := dash_duo.find_element("#al-feedback").text)
                         and "The rule was not saved:" in t and t, "the refusal")
    assert "Threshold: a number is required." in refused
    assert "Cost per lead needs spend, which is recorded per study and channel; it cannot be split by site" in refused
    assert "Recipients: 'not-an-address' is not an e-mail address" in refused
    assert len(rl.load_rules(store.reader())) == 2

    # acknowledge: only a firing alert can be; then the table says who did it
    click_row(dash_duo, "al-rules", "name", "Facebook CTR drop ST-102")
    wait_until(lambda: "Selected: #2" in dash_duo.find_element("#al-selected-label").text, "rule 2 selected")
    click(dash_duo, "#al-ack")
    wait_until(lambda: "Only a firing alert can be acknowledged; rule 2 is normal."
               in dash_duo.find_element("#al-feedback").text, "the refusal to acknowledge")
    click_row(dash_duo, "al-rules", "name", "Leads ST-101")
    wait_until(lambda: "Selected: #1" in dash_duo.find_element("#al-selected-label").text, "rule 1 selected")
    click(dash_duo, "#al-ack")
    wait_until(lambda: "acknowledged" in dash_duo.find_element("#al-feedback").text, "the acknowledgement")
    wait_until(lambda: grid_column(dash_duo, "al-rules", "acknowledged")[0].startswith(admin[0]),
               "the acknowledgement in the table")
    assert ev.load_state(store.reader(), 1).acknowledged_by == admin[0]
    # the history shows the selected rule's evaluation with the value it saw
    wait_until(lambda: grid_column(dash_duo, "al-history", "rule_id") == ["1"], "rule 1's history")

    # evaluating on demand reports what it did
    click(dash_duo, "#al-evaluate")
    wait_until(lambda: "Evaluated 2 rule(s)" in dash_duo.find_element("#al-feedback").text, "the evaluation")

    # the export holds the rows and values the table shows
    click(dash_duo, "#al-rules-export")
    rows = read_download(dash_duo, "alert-rules_all.csv")
    for col in ("rule_id", "name", "state", "last_value", "compared_with", "acknowledged", "recipients"):
        assert [r[col] for r in rows] == grid_column(dash_duo, "al-rules", col), col
    assert [r["state"] for r in rows] == ["firing", "normal"]
    assert dash_duo.get_logs() == []
