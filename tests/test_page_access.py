"""In the browser: what a site user sees, and signing out."""
from __future__ import annotations

from browser import click, start_signed_in, wait_until
from selenium.webdriver.common.by import By


def nav_names(dash_duo) -> list[str]:
    return [a.text for a in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".navbar-nav a.nav-link:not(.dropdown-toggle)")]


def test_site_user_sees_their_pages_and_sites_only_then_signs_out(dash_duo, cockpit_app, cockpit_users, demo_scope):
    start_signed_in(dash_duo, cockpit_app, cockpit_users["site"], start="/funnel")
    wait_until(lambda: nav_names(dash_duo) == ["Funnel", "Sites"], "the navbar of a site user")
    click(dash_duo, "#user-menu .dropdown-toggle")
    assert dash_duo.wait_for_element("#signed-in-as").text == "test-site (site)"
    click(dash_duo, "#user-menu .dropdown-toggle")
    # the site filter offers the user's own site and no other
    assert "Your sites" in dash_duo.find_element("#f-site").text
    click(dash_duo, "#f-site")
    options = wait_until(lambda: [o.get_attribute("value") for o in dash_duo.driver.find_elements(
        By.CSS_SELECTOR, "[role=option] input")], "the site options")
    assert options == [demo_scope["own_site"]]
    # a page outside the role renders a notice, not its numbers
    dash_duo.driver.get(dash_duo.server.url + "/channels")
    assert dash_duo.wait_for_element("#page-denied").text == "This page is not available for your role"
    assert not dash_duo.driver.find_elements(By.ID, "ch-table")
    # signing out ends the session: the pages ask for sign-in again
    click(dash_duo, "#user-menu .dropdown-toggle")
    click(dash_duo, dash_duo.wait_for_element("#sign-out"))
    wait_until(lambda: "/login" in dash_duo.driver.current_url, "the sign-in page after signing out")
    dash_duo.driver.get(dash_duo.server.url + "/sites")
    wait_until(lambda: "/login" in dash_duo.driver.current_url, "sign-in to be asked again")


def test_leadership_exports_are_deidentified_by_default(dash_duo, cockpit_app, cockpit_users):
    start_signed_in(dash_duo, cockpit_app, cockpit_users["leadership"])
    switch = dash_duo.wait_for_element("#export-deid")
    assert switch.is_selected()
    assert "Data" not in nav_names(dash_duo)
