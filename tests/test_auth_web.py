"""Sign-in, sessions, the request guard and security headers, through Flask's test
client on a small Flask app (and once on a Dash app) with ``install`` on a real DuckDB
store holding two users: ada (admin) and max (manager of study A)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import flask
import pytest
from flask import g, jsonify

from cockpit import audit
from cockpit.auth import users
from cockpit.auth.users import session_user
from cockpit.auth.web import COOKIE_NAME, CONTENT_SECURITY_POLICY, csrf_token, install, safe_next
from cockpit.privacy import load_key
from cockpit.store import Store, open_db

PW = "ada's long password"
MAX_PW = "max's long password"


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "auth.duckdb"
    con = open_db(path)
    con.execute("INSERT INTO study VALUES ('A', 'Atopic study', 'II', 'Dermatology', 10, "
                "'2026-01-01', '2026-12-31', 10000, 'EUR')")
    users.add_user(con, "ada", PW, "admin")
    users.add_user(con, "max", MAX_PW, "manager", studies=["A"])
    con.close()
    with Store(path) as s:
        yield s


def make_app(store, **options) -> flask.Flask:
    """Pages that show who is signed in and their scope, a stand-in for Dash's callback
    route, and an asset."""
    server = flask.Flask("auth_test")

    @server.route("/")
    @server.route("/data")
    def data():
        return jsonify(user=g.principal.username, role=g.principal.role,
                       studies=g.scope.studies, sites=g.scope.sites)

    @server.route("/budget")
    def budget():
        return "budget page"

    @server.route("/form")
    def form():
        return csrf_token()

    @server.route("/_dash-update-component", methods=["POST"])
    def update():
        return jsonify(user=g.principal.username)

    @server.route("/assets/<path:name>")
    def asset(name):
        return "body{}", 200, {"Content-Type": "text/css"}

    install(server, store, **options)
    return server


@pytest.fixture
def app(store):
    return make_app(store)


def form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, username="ada", password=PW, next_path=None, ip="10.0.0.1"):
    page = client.get("/login" + (f"?next={next_path}" if next_path else ""),
                      environ_overrides={"REMOTE_ADDR": ip})
    data = {"csrf_token": form_token(page.get_data(as_text=True)), "username": username,
            "password": password, "next": next_path or ""}
    return client.post("/login", data=data, environ_overrides={"REMOTE_ADDR": ip})


def audit_actions(store):
    return [(r[0], r[1], r[2], r[3]) for r in store.reader().execute(
        "SELECT actor, action, target, new_value FROM audit_log WHERE action NOT LIKE 'user.%' "
        "ORDER BY entry_id").fetchall()]


# ------------------------------------------------------------------ the page and the guard
def test_login_page_is_a_plain_form(app):
    page = app.test_client().get("/login")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "<title>Recruitment cockpit</title>" in html
    assert 'href="/assets/00-bootstrap-5.3.9.min.css"' in html
    for element_id in ("login-username", "login-password", "login-submit"):
        assert f'id="{element_id}"' in html
    assert 'id="login-error"' not in html  # only shown after a failure
    assert '<form method="post" action="/login"' in html and "<script" not in html
    assert len(form_token(html)) >= 40
    assert page.headers["Cache-Control"] == "no-store"


def test_signed_out_requests(app):
    client = app.test_client()
    page = client.get("/data?study=A&site=A1")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=%2Fdata%3Fstudy%3DA%26site%3DA1"
    callback = client.post("/_dash-update-component", json={"output": "x.children"})
    assert callback.status_code == 401 and callback.get_json() == {"error": "signed out"}
    assert client.get("/assets/cockpit.css").status_code == 200
    assert client.get("/_favicon.ico").status_code == 404  # let through (no such route here)
    signed_out = client.post("/logout")  # nothing to sign out of
    assert signed_out.status_code == 303 and signed_out.headers["Location"] == "/login?next=%2F"


def test_sign_in_success_rotates_the_session(app, store):
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as s:
        before = dict(s)
    answer = sign_in(client, next_path="/data")
    assert answer.status_code == 303 and answer.headers["Location"] == "/data"
    with client.session_transaction() as s:
        after = dict(s)
    assert set(after) == {"user", "nonce", "login", "seen", "stamp", "csrf"}
    assert after["user"] == "ada" and after["csrf"] != before["csrf"]
    assert len(after["nonce"]) == 32 and abs(after["login"] - time.time()) < 60
    assert client.get("/data").get_json() == {"user": "ada", "role": "admin", "studies": None, "sites": None}
    # a signed-in visit to the sign-in page goes on to the app
    assert client.get("/login").headers["Location"] == "/"
    (entry,) = audit_actions(store)
    assert entry[:3] == ("ada", "login", "ada")
    assert json.loads(entry[3]) == {"ip": "10.0.0.1",
                                    "session": hashlib.sha256(after["nonce"].encode()).hexdigest()[:32]}


def test_manager_scope_is_set_from_the_store(app):
    client = app.test_client()
    sign_in(client, "max", MAX_PW)
    assert client.get("/data").get_json() == {"user": "max", "role": "manager",
                                              "studies": ["A"], "sites": None}
    assert client.post("/_dash-update-component", json={}).get_json() == {"user": "max"}


def test_sign_in_failure(app, store):
    client = app.test_client()
    for username, password in (("ada", "not the password"), ("nobody", PW), ("ADA ", "still wrong!")):
        answer = sign_in(client, username, password, ip="10.0.0.9")
        html = answer.get_data(as_text=True)
        assert answer.status_code == 401
        assert ('<div id="login-error" class="alert alert-danger" role="alert">'
                'Unknown user or wrong password.</div>') in html
    assert client.get("/data").status_code == 302
    assert audit_actions(store) == [("anonymous", "login.failed", "ada", "10.0.0.9"),
                                    ("anonymous", "login.failed", "nobody", "10.0.0.9"),
                                    ("anonymous", "login.failed", "ada", "10.0.0.9")]


def test_csrf_refusal(app, store):
    client = app.test_client()
    client.get("/login")
    no_token = client.post("/login", data={"username": "ada", "password": PW})
    wrong = client.post("/login", data={"username": "ada", "password": PW, "csrf_token": "forged"})
    for answer in (no_token, wrong):
        assert answer.status_code == 400 and "form had expired" in answer.get_data(as_text=True)
    assert client.get("/data").status_code == 302
    # a fresh client (a cross-site form post carries no session cookie) is refused too
    stranger = app.test_client().post("/login", data={"username": "ada", "password": PW, "csrf_token": "x"})
    assert stranger.status_code == 400
    assert audit_actions(store) == []
    # signing out needs the token as well
    sign_in(client)
    assert client.post("/logout").status_code == 400
    assert client.get("/data").status_code == 200


# ------------------------------------------------------------------ throttle
def test_throttle_after_five_failures_for_a_username(app, store):
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "ada", "wrong password!", ip="10.0.0.1").status_code == 401
    locked = sign_in(client, "ada", PW, ip="10.0.0.1")
    html = locked.get_data(as_text=True)
    assert locked.status_code == 429
    assert "Try again in 15 minutes (after" in html and 'id="login-error"' in html
    assert locked.headers["Retry-After"] == "900"
    assert client.get("/data").status_code == 302
    # the same username from another address: still locked
    assert sign_in(app.test_client(), "ada", PW, ip="10.0.0.2").status_code == 429
    # another user from another address: unaffected
    assert sign_in(app.test_client(), "max", MAX_PW, ip="10.0.0.2").status_code == 303
    actions = [a[1] for a in audit_actions(store)]
    assert actions == ["login.failed"] * 5 + ["login.throttled"] * 2 + ["login"]
    # a restarted server reads the failures from the audit log: still locked
    assert sign_in(make_app(store).test_client(), "ada", PW, ip="10.0.0.3").status_code == 429


def test_throttle_per_address(app):
    client = app.test_client()
    for name in ("u1", "u2", "u3", "u4", "u5"):
        assert sign_in(client, name, "wrong password!", ip="192.0.2.7").status_code == 401
    assert sign_in(app.test_client(), "max", MAX_PW, ip="192.0.2.7").status_code == 429
    assert sign_in(app.test_client(), "max", MAX_PW, ip="192.0.2.8").status_code == 303


def test_a_successful_sign_in_resets_the_username_count(app):
    ips = iter(f"10.1.0.{i}" for i in range(1, 20))  # one address per attempt
    for _ in range(4):
        assert sign_in(app.test_client(), "ada", "wrong password!", ip=next(ips)).status_code == 401
    assert sign_in(app.test_client(), "ada", PW, ip=next(ips)).status_code == 303
    for _ in range(4):
        assert sign_in(app.test_client(), "ada", "wrong password!", ip=next(ips)).status_code == 401
    # 8 failures within the period, but only 4 since the last success
    assert sign_in(app.test_client(), "ada", PW, ip=next(ips)).status_code == 303


def test_the_lock_lifts_after_the_period(store):
    app = make_app(store, max_failures=2, lockout_minutes=0.03)  # 1.8 seconds
    client = app.test_client()
    sign_in(client, "ada", "wrong password!")
    sign_in(client, "ada", "wrong password!")
    assert sign_in(client, "ada", PW).status_code == 429
    time.sleep(2.0)
    assert sign_in(client, "ada", PW).status_code == 303


# ------------------------------------------------------------------ session life
def test_idle_expiry(app):
    client = app.test_client()
    sign_in(client)
    with client.session_transaction() as s:
        s["seen"] = int(time.time()) - 29 * 60
    assert client.get("/data").status_code == 200
    with client.session_transaction() as s:
        assert abs(s["seen"] - time.time()) < 60  # refreshed by the request
        s["seen"] = int(time.time()) - 31 * 60
    answer = client.get("/data")
    assert answer.status_code == 302 and answer.headers["Location"] == "/login?next=%2Fdata"
    assert "signed out after 30 minutes without activity" in client.get("/login").get_data(as_text=True)
    assert client.get("/data").status_code == 302  # the session is gone, not just refused once


def test_timer_callbacks_do_not_keep_a_session_alive(app):
    client = app.test_client()
    sign_in(client)
    old = int(time.time()) - 10 * 60
    with client.session_transaction() as s:
        s["seen"] = old
    tick = {"output": "x.children", "changedPropIds": ["data-tick.n_intervals"]}
    assert client.post("/_dash-update-component", json=tick).status_code == 200
    with client.session_transaction() as s:
        assert s["seen"] == old
    click = {"output": "x.children", "changedPropIds": ["f-study.value"]}
    assert client.post("/_dash-update-component", json=click).status_code == 200
    with client.session_transaction() as s:
        assert s["seen"] > old + 9 * 60


def test_disabled_user_is_signed_out_on_the_next_request(app, store):
    client = app.test_client()
    sign_in(client, "max", MAX_PW)
    assert client.get("/data").status_code == 200
    store.write_sync(lambda con: users.set_disabled(con, "max", True, actor="ada"))
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/data").status_code == 302
    store.write_sync(lambda con: users.set_disabled(con, "max", False, actor="ada"))
    assert client.get("/data").status_code == 302  # enabling again does not revive the session


def test_role_change_applies_on_the_next_request(app, store):
    client = app.test_client()
    sign_in(client, "max", MAX_PW)
    store.write_sync(lambda con: users.set_role(con, "max", "leadership", actor="ada"))
    assert client.get("/data").get_json()["role"] == "leadership"


def test_assignment_change_applies_on_the_next_request(app, store):
    client = app.test_client()
    sign_in(client, "max", MAX_PW)
    store.write_sync(lambda con: con.execute(
        "INSERT INTO study VALUES ('B', 'Bullous study', 'III', 'Dermatology', 20, "
        "'2026-01-01', '2026-12-31', 10000, 'EUR')"))
    store.write_sync(lambda con: users.assign(con, "max", studies=["B"], actor="ada"))
    assert client.get("/data").get_json()["studies"] == ["A", "B"]
    store.write_sync(lambda con: users.set_role(con, "max", "manager", studies=["B"], actor="ada"))
    assert client.get("/data").get_json()["studies"] == ["B"]


def test_session_user_reads_principal_and_stamp_in_one_query(store):
    """The guard's one read of the user is what ``users.principal`` and
    ``users.password_stamp`` say, for every kind of user."""
    def set_up(con):
        con.execute("INSERT INTO study VALUES ('B', 'Bullous study', 'III', 'Dermatology', 20, "
                    "'2026-01-01', '2026-12-31', 10000, 'EUR')")
        users.add_user(con, "mia", MAX_PW, "manager", studies=["B", "A"])
        users.add_user(con, "leo", MAX_PW, "leadership")
        users.add_user(con, "dan", MAX_PW, "manager", studies=["A"])
        users.set_disabled(con, "dan", True)
    store.write_sync(set_up)
    con = store.reader()
    for name in ("ada", "max", "mia", "leo", "dan", "nobody"):
        assert session_user(con, name) == (users.principal(con, name), users.password_stamp(con, name)), name
    assert session_user(con, "mia")[0].studies == ("A", "B")
    assert session_user(con, "dan") == (None, users.password_stamp(con, "dan"))


class _Counting:
    """A read cursor that counts the statements sent through it."""

    def __init__(self, cursor):
        self.cursor, self.statements = cursor, 0

    def execute(self, *args, **kwargs):
        self.statements += 1
        return self.cursor.execute(*args, **kwargs)


def test_a_signed_in_request_reads_the_store_once(app, store, monkeypatch):
    client = app.test_client()
    sign_in(client, "max", MAX_PW)
    counting = _Counting(store.reader())
    monkeypatch.setattr(store, "reader", lambda: counting)
    assert client.get("/data").get_json()["studies"] == ["A"]
    assert client.post("/_dash-update-component", json={"output": "x.children"}).status_code == 200
    assert counting.statements == 2


def test_the_cookie_is_signed_again_only_when_the_second_changes(app, monkeypatch):
    client = app.test_client()
    sign_in(client)
    now = time.time()
    with client.session_transaction() as s:
        s["seen"] = int(now)
    monkeypatch.setattr(time, "time", lambda: now)
    assert "Set-Cookie" not in client.get("/data").headers  # same second: nothing to send
    monkeypatch.setattr(time, "time", lambda: now + 1)
    assert "Set-Cookie" in client.get("/data").headers
    with client.session_transaction() as s:
        assert s["seen"] == int(now + 1)


def test_password_change_ends_open_sessions(app, store):
    client = app.test_client()
    sign_in(client, "max", MAX_PW)
    store.write_sync(lambda con: users.set_password(con, "max", "a brand new password", actor="ada"))
    assert client.get("/data").status_code == 302
    assert sign_in(client, "max", "a brand new password").status_code == 303


def test_logout_and_replaying_the_old_cookie(app, store):
    client = app.test_client()
    sign_in(client)
    cookie = client.get_cookie(COOKIE_NAME).value
    token = client.get("/form").get_data(as_text=True)
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    assert client.get("/data").status_code == 302
    # the copied cookie of the signed-out session is refused, also after a restart
    for server in (app, make_app(store)):
        thief = server.test_client()
        thief.set_cookie(COOKIE_NAME, cookie)
        assert thief.get("/data").status_code == 302
    assert [a[1] for a in audit_actions(store)] == ["login", "logout"]


def test_sessions_survive_a_restart(store):
    client = make_app(store).test_client()
    sign_in(client)
    cookie = client.get_cookie(COOKIE_NAME).value
    again = make_app(store)
    expected = hmac.new(load_key(store.path), b"session", hashlib.sha256).digest()
    assert again.secret_key == expected
    other = again.test_client()
    other.set_cookie(COOKIE_NAME, cookie)
    assert other.get("/data").get_json()["user"] == "ada"


# ------------------------------------------------------------------ redirects
@pytest.mark.parametrize("target, expected", [
    ("/data?study=A", "/data?study=A"),
    ("/", "/"),
    ("//evil.example", "/"),
    ("//evil.example/data", "/"),
    ("/\\evil.example", "/"),
    ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"),
    ("data", "/"),
    ("/data\r\nSet-Cookie: x=1", "/"),
    ("/login?next=/data", "/"),
    ("", "/"),
    (None, "/"),
])
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_open_redirect_is_ignored(app):
    client = app.test_client()
    answer = sign_in(client, next_path="//evil.example")
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    assert sign_in(app.test_client(), next_path="https://evil.example").headers["Location"] == "/"


# ------------------------------------------------------------------ hook, headers, cookie
def test_authorize_hook(store):
    def only_admins_on_budget(principal, request):
        if request.path == "/budget" and principal.role != "admin":
            return 403, "Your role may not open the budget page."
        return None

    app = make_app(store, authorize=only_admins_on_budget)
    manager = app.test_client()
    sign_in(manager, "max", MAX_PW)
    refused = manager.get("/budget")
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "Your role may not open the budget page."}
    assert manager.get("/data").status_code == 200
    admin = app.test_client()
    sign_in(admin)
    assert admin.get("/budget").get_data(as_text=True) == "budget page"


EXPECTED_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def test_security_headers_on_every_response(app):
    client = app.test_client()
    answers = [client.get("/login"), client.get("/data"), client.post("/_dash-update-component", json={}),
               client.get("/assets/x.css")]
    sign_in(client)
    answers += [client.get("/data"), client.post("/_dash-update-component", json={})]
    for answer in answers:
        for name, value in EXPECTED_HEADERS.items():
            assert answer.headers[name] == value
        csp = answer.headers["Content-Security-Policy"]
        assert csp == CONTENT_SECURITY_POLICY
        for part in ("default-src 'self'", "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
                     "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:",
                     "font-src 'self' data:", "connect-src 'self'", "frame-ancestors 'none'",
                     "base-uri 'self'", "form-action 'self'"):
            assert part in csp.split("; ")
        assert "Strict-Transport-Security" not in answer.headers
    assert answers[-1].headers["Cache-Control"] == "no-store"   # callback answers
    assert "no-store" not in answers[-2].headers.get("Cache-Control", "")


def test_cookie_flags(store):
    answer = sign_in(make_app(store).test_client())
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Expires" not in cookie  # ends with the browser session

    secure_app = make_app(store, https=True)
    assert secure_app.config["PREFERRED_URL_SCHEME"] == "https"
    client = secure_app.test_client()
    page = client.get("/login", base_url="https://cockpit.example")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    data = {"csrf_token": form_token(page.get_data(as_text=True)), "username": "ada", "password": PW}
    answer = client.post("/login", data=data, base_url="https://cockpit.example")
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_audit_trail_of_a_session_verifies(app, store):
    client = app.test_client()
    sign_in(client, "ada", "wrong password!", ip="10.9.9.9")
    sign_in(client, ip="10.9.9.9")
    client.post("/logout", data={"csrf_token": client.get("/form").get_data(as_text=True)},
                environ_overrides={"REMOTE_ADDR": "10.9.9.9"})
    trail = audit_actions(store)
    assert [(a, b, c) for a, b, c, _ in trail] == [("anonymous", "login.failed", "ada"),
                                                    ("ada", "login", "ada"), ("ada", "logout", "ada")]
    assert trail[0][3] == "10.9.9.9" and json.loads(trail[2][3])["ip"] == "10.9.9.9"
    verdict = audit.verify(store.reader())
    assert verdict.ok and verdict.entries == 2 + 3  # two user.add entries from the fixture
    assert PW not in repr(store.reader().execute("SELECT * FROM audit_log").fetchall())


# ------------------------------------------------------------------ mounted on Dash
@pytest.fixture
def dash_globals():
    """Dash keeps callbacks registered with ``dash.callback`` and the current app in
    module globals; a second app in this process must leave them as it found them."""
    from dash import _callback, _get_app

    saved = (dict(_callback.GLOBAL_CALLBACK_MAP), list(_callback.GLOBAL_CALLBACK_LIST),
             list(_callback.GLOBAL_INLINE_SCRIPTS), dict(_callback.GLOBAL_API_PATHS), _get_app.APP)
    for container in (_callback.GLOBAL_CALLBACK_MAP, _callback.GLOBAL_CALLBACK_LIST,
                      _callback.GLOBAL_INLINE_SCRIPTS, _callback.GLOBAL_API_PATHS):
        container.clear()
    yield
    for container, value in zip((_callback.GLOBAL_CALLBACK_MAP, _callback.GLOBAL_CALLBACK_LIST,
                                 _callback.GLOBAL_INLINE_SCRIPTS, _callback.GLOBAL_API_PATHS), saved):
        container.clear()
        container.update(value) if isinstance(container, dict) else container.extend(value)
    _get_app.APP = saved[4]


def test_on_a_dash_app(store, dash_globals):
    import dash
    from dash import html

    app = dash.Dash("auth_dash_test", server=flask.Flask("auth_dash_test"), use_pages=False,
                    title="Recruitment cockpit")
    app.layout = html.Div("only for signed-in users", id="secret")
    install(app.server, store)
    client = app.server.test_client()
    page = client.get("/login")
    assert page.status_code == 200 and 'id="login-submit"' in page.get_data(as_text=True)
    assert client.get("/").headers["Location"] == "/login?next=%2F"
    assert client.get("/some/page").headers["Location"] == "/login?next=%2Fsome%2Fpage"
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/_dash-dependencies").status_code == 401
    assert sign_in(client).headers["Location"] == "/"
    index = client.get("/")
    assert index.status_code == 200 and "_dash-config" in index.get_data(as_text=True)
    assert index.headers["X-Frame-Options"] == "DENY"
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200 and "only for signed-in users" in layout.get_data(as_text=True)
    assert layout.headers["Cache-Control"] == "no-store"
