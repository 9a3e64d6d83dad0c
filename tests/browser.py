"""Helpers for the browser tests (dash[testing] in headless Chromium).

Elements are found by id and ARIA roles, not by the inner class names of Dash 4's
components."""
from __future__ import annotations

import csv
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

TIMEOUT = 30


def wait_until(check, what: str, timeout: float = TIMEOUT):
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    until = time.time() + timeout
    while time.time() < until:
        try:
            value = check()
        except Exception:  # the element is being re-rendered
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def click(dash_duo, element) -> None:
    """Scroll the element to the middle of the window at once (Bootstrap makes scrolling
    smooth, and a click during the animation lands elsewhere), then click."""
    if isinstance(element, str):
        element = dash_duo.find_element(element)
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
    element.click()


def choose(dash_duo, dropdown_id: str, value: str) -> None:
    """Pick an option of a dcc.Dropdown by its value (Dash 4 DOM: role=option + input)."""
    click(dash_duo, f"#{dropdown_id}")
    option = dash_duo.wait_for_element(f"[role=option] input[value='{value}']")
    option.find_element(By.XPATH, "./ancestor::*[@role='option']").click()
    dash_duo.driver.switch_to.active_element.send_keys(Keys.ESCAPE)


def text_of(dash_duo, element_id: str, not_in: tuple[str, ...] = ("", "…")) -> str:
    """The element's text once a callback has filled it (and it is not in ``not_in``)."""
    return wait_until(
        lambda: (t := dash_duo.find_element(f"#{element_id}").text) not in not_in and t,
        f"#{element_id} to show a value other than {not_in}",
    )


def grid_column(dash_duo, grid_id: str, col: str) -> list[str]:
    """The shown texts of one AG Grid column, in row order."""
    cells = dash_duo.driver.find_elements(
        By.CSS_SELECTOR, f"#{grid_id} .ag-center-cols-container [role=gridcell][col-id='{col}'], "
                         f"#{grid_id} .ag-pinned-left-cols-container [role=gridcell][col-id='{col}']")
    return [c.text for c in cells]


def wait_for_rows(dash_duo, grid_id: str, key: str, expected: list[str]) -> None:
    wait_until(lambda: grid_column(dash_duo, grid_id, key) == expected,
               f"{grid_id} to show {expected}")


def read_download(dash_duo, name: str) -> list[dict[str, str]]:
    """Rows of a CSV the page downloaded."""
    target = Path(dash_duo.download_path) / name
    wait_until(target.exists, f"download {name}")
    time.sleep(0.3)  # let the browser finish writing
    return list(csv.DictReader(target.open(encoding="utf-8")))


def sign_in(dash_duo, credentials: tuple[str, str], start: str = "/") -> None:
    """Sign in through the login form, then open ``start``."""
    dash_duo.driver.get(dash_duo.server.url + "/login")
    user = dash_duo.wait_for_element("#login-username")
    user.clear()
    user.send_keys(credentials[0])
    dash_duo.find_element("#login-password").send_keys(credentials[1])
    dash_duo.find_element("#login-submit").click()
    wait_until(lambda: "/login" not in dash_duo.driver.current_url, "the sign-in to finish")
    dash_duo.wait_for_page(dash_duo.server.url + start)


def start_signed_in(dash_duo, app, credentials: tuple[str, str], start: str = "/", **server) -> None:
    """Start the cockpit's server and sign in (every page needs a signed-in user)."""
    dash_duo.start_server(app, navigate=False, **server)
    dash_duo._url = dash_duo.server.url  # server_url without the implicit page load
    sign_in(dash_duo, credentials, start)
