"""Access is enforced on the server, in every callback and download.

A site user (or a manager) who sends a crafted callback request for another site's (or
study's) data gets exactly what a request for a site that does not exist gets: nothing.
Every callback the app registers is tried, straight through the HTTP endpoint Dash's
browser code posts to, with the inputs a crafted request would use."""
from __future__ import annotations

import json

import dash
import pytest

from conftest import sign_in

NOBODY = "XX-NOSUCH"


def _outputs(key: str) -> list[dict] | dict:
    """Dash's ``outputs`` field for an output key (``a.b`` or ``..a.b...c.d..``)."""
    def one(spec: str) -> dict:
        cid, prop = spec.rsplit(".", 1)
        return {"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop}

    if key.startswith(".."):
        return [one(s) for s in key[2:-2].split("...")]
    return one(key)


def _value(dep: dict, search: str, path: str):
    prop = dep["property"]
    if dep["id"] == "url":
        return {"search": search, "pathname": path, "href": "http://localhost" + path + search}.get(prop)
    if prop in ("n_clicks", "n_intervals"):
        return 1
    return None


def _payload(key: str, cb: dict, search: str, path: str) -> dict:
    def deps(items):
        out = []
        for dep in items:
            if isinstance(dep["id"], dict):  # pattern-matching (ALL): no matches sent
                out.append([])
            else:
                out.append({**dep, "value": _value(dep, search, path)})
        return out

    inputs = deps(cb["inputs"])
    return {"output": key, "outputs": _outputs(key), "inputs": inputs, "state": deps(cb["state"]),
            "changedPropIds": [f"{d['id']}.{d['property']}" for d in inputs if isinstance(d, dict)]}


def _page_path(cb: dict) -> str:
    fn = cb["callback"]
    module = getattr(fn, "__wrapped__", fn).__module__
    page = dash.page_registry.get(module)
    return page["path"] if page else "/"


def _server_callbacks(app, client) -> dict:
    client.get("/_dash-layout")  # the app registers page callbacks on its first request
    return {k: cb for k, cb in app.callback_map.items() if cb.get("callback") is not None}


def _answer(client, key, cb, search) -> tuple[int, str]:
    response = client.post("/_dash-update-component", json=_payload(key, cb, search, _page_path(cb)))
    return response.status_code, response.get_data(as_text=True)


CASES = [
    # (user, dimension asked for, the user's own value, a value of someone else)
    ("site", "site", "own_site", "foreign_site"),
    ("site", "site", "own_site", "foreign_site_same_study"),
    ("manager", "study", "own_study", "foreign_study"),
]


@pytest.mark.parametrize("user,dim,own,foreign", CASES)
def test_no_callback_answers_with_foreign_rows(cockpit_app, cockpit_users, demo_scope, user, dim, own, foreign):
    client = sign_in(cockpit_app, cockpit_users[user])
    callbacks = _server_callbacks(cockpit_app, client)
    assert len(callbacks) > 40
    foreign_id = demo_scope[foreign]
    answered_with_data = 0
    for key, cb in callbacks.items():
        status, body = _answer(client, key, cb, f"?{dim}={foreign_id}")
        nothing_status, nothing = _answer(client, key, cb, f"?{dim}={NOBODY}")
        assert status == nothing_status, key
        assert body.replace(foreign_id, NOBODY) == nothing, f"{key} answers differently for {foreign_id}"
        own_status, own_body = _answer(client, key, cb, f"?{dim}={demo_scope[own]}")
        answered_with_data += own_status == 200 and own_body != nothing
    # the comparison has teeth: the same callbacks do show the user's own data
    assert answered_with_data >= 5


def test_an_admin_does_see_the_other_site(cockpit_app, cockpit_users, demo_scope):
    """The check above would pass for an app that shows nothing to anyone; the admin's
    answers for the same site differ from those for a site that does not exist."""
    client = sign_in(cockpit_app, cockpit_users["admin"])
    callbacks = _server_callbacks(cockpit_app, client)
    differs = 0
    for key, cb in callbacks.items():
        site = demo_scope["foreign_site"]
        status, body = _answer(client, key, cb, f"?site={site}")
        _, nothing = _answer(client, key, cb, f"?site={NOBODY}")
        differs += status == 200 and body.replace(site, NOBODY) != nothing
    assert differs >= 10


def test_a_user_without_assignment_sees_nothing(cockpit_app, cockpit_users, demo_scope):
    """Default-deny: a manager with no study assigned sees of every study what they see
    of one that does not exist."""
    client = sign_in(cockpit_app, cockpit_users["unassigned"])
    callbacks = _server_callbacks(cockpit_app, client)
    for study in (demo_scope["own_study"], demo_scope["foreign_study"]):
        for key, cb in callbacks.items():
            status, body = _answer(client, key, cb, f"?study={study}")
            nothing_status, nothing = _answer(client, key, cb, f"?study={NOBODY}")
            assert (status, body.replace(study, NOBODY)) == (nothing_status, nothing), key


def test_pages_outside_the_role_refuse_their_callbacks(cockpit_app, cockpit_users):
    client = sign_in(cockpit_app, cockpit_users["site"])
    callbacks = _server_callbacks(cockpit_app, client)
    refused = {key for key, cb in callbacks.items()
               if _answer(client, key, cb, "")[0] == 403}
    modules = {getattr(cb["callback"], "__wrapped__", cb["callback"]).__module__
               for key, cb in callbacks.items() if key in refused}
    assert modules == {"pages.overview", "pages.review", "pages.channels", "pages.experiments",
                       "pages.segments", "pages.attribution", "pages.budget", "pages.alerts",
                       "pages.data", "pages.compliance"} - ({"pages.compliance"} - set(dash.page_registry))


def test_signed_out_requests_get_nothing(cockpit_app):
    client = cockpit_app.server.test_client()
    callbacks = {k: cb for k, cb in cockpit_app.callback_map.items() if cb.get("callback")}
    for key, cb in list(callbacks.items())[:5]:
        response = client.post("/_dash-update-component", json=_payload(key, cb, "", "/"))
        assert response.status_code == 401
    page = client.get("/sites")
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]


# Where a confined user's answer rightly differs from an admin's for the same filter:
# the Alerts page lists only the rules and form choices of the manager's own studies;
# the Sites page's needed pace comes from the whole study's progress, which is not a
# site user's to see.
ROLE_DIFFERENCES = {"manager": {"pages.alerts"}, "site": {"pages.sites"}}


@pytest.mark.parametrize("user,dim,own", [("manager", "study", "own_study"), ("site", "site", "own_site")])
def test_own_data_is_shown_in_full(cockpit_app, cockpit_users, demo_scope, user, dim, own):
    """Confinement takes nothing else from a user's own data: for their own study (or
    site) every callback they may use answers as it answers an admin asking for it."""
    confined = sign_in(cockpit_app, cockpit_users[user])
    admin = sign_in(cockpit_app, cockpit_users["admin"])
    callbacks = _server_callbacks(cockpit_app, confined)
    search = f"?{dim}={demo_scope[own]}"
    compared, differ = 0, set()
    for key, cb in callbacks.items():
        status, body = _answer(confined, key, cb, search)
        if status == 403:
            continue
        if (status, body) != _answer(admin, key, cb, search):
            differ.add(getattr(cb["callback"], "__wrapped__", cb["callback"]).__module__)
        compared += status == 200
    assert differ <= ROLE_DIFFERENCES[user]
    assert compared >= 10
