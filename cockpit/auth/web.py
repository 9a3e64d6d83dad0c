"""Sign-in, sessions and the request guard on the cockpit's Flask server.

``install(server, store)`` adds:

- ``GET/POST /login``: a plain HTML form (no JavaScript needed) with a CSRF token kept
  in the session; ``POST /logout``.
- A guard before every request: only the sign-in page, ``/assets/...`` and the favicon
  are served without a valid session. A session is valid while its user exists and is
  enabled, its password is unchanged since sign-in, it was not signed out, and the last
  request was less than ``idle_minutes`` ago (checked on the server). The user is
  re-read from the store on every request (one query: ``users.session_user``), so disabling
  a user or changing a role or an assignment takes effect on the next click. The
  guard sets ``flask.g.principal`` and ``flask.g.scope``, which ``cockpit.access`` and
  ``cockpit.filters`` read.
- Security headers on every response (CSP, frame and type-sniffing protection, HSTS
  behind HTTPS).

The session is Flask's signed cookie, keyed by an HMAC of the store's pseudonymization
key, so restarts keep sessions valid without another secret file. Failed sign-ins are
counted from the audit log (so a restart does not reset the throttle): after
``max_failures`` failures for one username or from one address within
``lockout_minutes``, further attempts are refused with 429 without checking the
password. The client address is ``request.remote_addr``; behind a reverse proxy, wrap
the WSGI app in ``werkzeug.middleware.proxy_fix.ProxyFix`` so it is the client's.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import urlencode, urlsplit

import flask
from flask import g, jsonify, redirect, render_template_string, request, session

from cockpit import audit
from cockpit.access import Principal
from cockpit.auth import passwords, users
from cockpit.privacy import load_key
from cockpit.store import Store

COOKIE_NAME = "cockpit_session"
SESSION_LABEL = b"session"
OPEN_PATHS = frozenset({"/login", "/_favicon.ico", "/favicon.ico"})
OPEN_PREFIXES = ("/assets/",)
NO_STORE_PATHS = frozenset({"/login", "/logout", "/_dash-update-component", "/_dash-layout"})
MAX_USERNAME_CHARS = 64  # longer input cannot be a username; also bounds the audit entry
FAILED_MESSAGE = "Unknown user or wrong password."

# Dash's renderer evaluates callback code and Plotly compiles functions at run time,
# hence 'unsafe-eval'; Dash writes its config as an inline script, hence 'unsafe-inline'.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"

Authorize = Callable[[Principal, flask.Request], "tuple[int, str] | None"]

LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recruitment cockpit</title>
<link rel="stylesheet" href="/assets/00-bootstrap-5.3.9.min.css">
</head>
<body class="bg-light">
<main class="container" style="max-width: 24rem">
  <h1 class="h4 text-center mt-5 mb-4">Recruitment cockpit</h1>
  {% if notice %}<div id="login-notice" class="alert alert-info" role="status">{{ notice }}</div>{% endif %}
  {% if error %}<div id="login-error" class="alert alert-danger" role="alert">{{ error }}</div>{% endif %}
  <form method="post" action="/login" class="card card-body shadow-sm">
    <input type="hidden" name="csrf_token" value="{{ csrf }}">
    <input type="hidden" name="next" value="{{ next }}">
    <div class="mb-3">
      <label for="login-username" class="form-label">Username</label>
      <input id="login-username" name="username" class="form-control" value="{{ username }}"
             autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
    </div>
    <div class="mb-3">
      <label for="login-password" class="form-label">Password</label>
      <input id="login-password" name="password" type="password" class="form-control"
             autocomplete="current-password" required>
    </div>
    <button id="login-submit" type="submit" class="btn btn-primary w-100">Sign in</button>
  </form>
</main>
</body>
</html>
"""


# ------------------------------------------------------------------ small pieces
def session_secret(key: bytes) -> bytes:
    """The key signing session cookies: HMAC-SHA256 of the label "session" under the
    store's pseudonymization key (a separate key for a separate purpose)."""
    return hmac.new(key, SESSION_LABEL, hashlib.sha256).digest()


def csrf_token() -> str:
    """The session's CSRF token (created on first use), for the hidden ``csrf_token``
    field of forms posting to the server, such as the sign-out form."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return isinstance(expected, str) and bool(expected) and hmac.compare_digest(
        expected.encode("utf-8"), given.encode("utf-8"))


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site (``/...``), else ``/``: no scheme, no
    host, no protocol-relative ``//host`` or ``/\\host`` (which browsers read as a host),
    no control characters, and never the sign-in page itself."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return target


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _now_utc() -> datetime:
    """Naive UTC, as the audit log stores its times."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _tag(nonce: str) -> str:
    """The name of a session in the audit log (a hash: the nonce stays in the cookie)."""
    return hashlib.sha256(nonce.encode("utf-8")).hexdigest()[:32]


def _passive() -> bool:
    """A callback fired only by a timer (``dcc.Interval``): it must not count as
    activity, or an open page with a refresh timer would never go idle."""
    if request.method != "POST" or not request.path.endswith("/_dash-update-component"):
        return False
    body = request.get_json(silent=True)
    changed = body.get("changedPropIds") if isinstance(body, dict) else None
    return bool(changed) and all(str(c).endswith(".n_intervals") for c in changed)


# ------------------------------------------------------------------ the guard
@dataclass
class _Auth:
    store_of: Callable[[], Store]
    https: bool
    idle_seconds: int
    max_failures: int
    lockout: timedelta
    authorize: Authorize | None
    secret: bytes
    # session tag -> time signed out (epoch seconds); a copied cookie of a signed-out
    # session stays refused until it would have expired anyway
    revoked: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> Store:
        return self.store_of()

    # -- audit and throttle
    def record(self, actor: str, action: str, target: str | None, new_value: object = None) -> None:
        self.store.write_sync(lambda con: audit.append(con, actor, action, target, None, new_value))

    def locked_until(self, username: str, ip: str) -> datetime | None:
        """When the throttle lets ``username`` / ``ip`` try again (None: not locked).

        Failures are the ``login.failed`` audit entries of the last ``lockout`` period;
        for a username only those after its last successful sign-in. With at least
        ``max_failures`` of them, the lock lifts when the ``max_failures``-th newest
        leaves the period (then fewer than ``max_failures`` remain)."""
        con = self.store.reader()
        cutoff = _now_utc() - self.lockout
        by_user = con.execute(
            "SELECT ts FROM audit_log WHERE action = 'login.failed' AND target = ? AND ts >= ? "
            "AND ts > coalesce((SELECT max(ts) FROM audit_log WHERE action = 'login' AND target = ?), "
            "TIMESTAMP '1970-01-01') ORDER BY ts", [username, cutoff, username]).fetchall()
        by_ip = con.execute(
            "SELECT ts FROM audit_log WHERE action = 'login.failed' AND new_value = ? AND ts >= ? "
            "ORDER BY ts", [ip, cutoff]).fetchall()
        until = None
        for rows in (by_user, by_ip):
            if len(rows) >= self.max_failures:
                at = rows[len(rows) - self.max_failures][0] + self.lockout
                until = at if until is None else max(until, at)
        return until

    # -- sessions
    def stamp(self, con, username: str) -> str | None:
        """Ties a session to the password it was opened with (an HMAC, since the
        cookie's contents are readable by its holder)."""
        return self._sealed(users.password_stamp(con, username))

    def _sealed(self, raw: str | None) -> str | None:
        """The session's stamp of a ``users.password_stamp`` value."""
        return hmac.new(self.secret, raw.encode("ascii"), hashlib.sha256).hexdigest()[:32] if raw else None

    def load_revoked(self) -> None:
        """Sessions signed out recently, from the audit log (they outlive a restart)."""
        cutoff = _now_utc() - timedelta(seconds=self.idle_seconds)
        rows = self.store.reader().execute(
            "SELECT ts, new_value FROM audit_log WHERE action = 'logout' AND ts >= ?", [cutoff]).fetchall()
        for ts, value in rows:
            try:
                tag = json.loads(value or "{}").get("session")
            except (ValueError, AttributeError):
                continue
            if tag:
                self.revoked[tag] = ts.replace(tzinfo=timezone.utc).timestamp()

    def revoke(self, nonce: str) -> None:
        now = time.time()
        with self.lock:
            self.revoked[_tag(nonce)] = now
            for tag, at in list(self.revoked.items()):
                if now - at > self.idle_seconds:
                    del self.revoked[tag]

    def current(self) -> tuple[Principal | None, str | None]:
        """The signed-in Principal of this request and, when there is none, why
        ("expired" after idling; None otherwise). Updates the last-seen time."""
        username, nonce, seen = session.get("user"), session.get("nonce"), session.get("seen")
        if not (isinstance(username, str) and isinstance(nonce, str) and isinstance(seen, (int, float))):
            return None, None
        now = time.time()
        if now - seen > self.idle_seconds:
            return None, "expired"
        if _tag(nonce) in self.revoked:
            return None, None
        principal, raw_stamp = users.session_user(self.store.reader(), username)
        if principal is None or session.get("stamp") != self._sealed(raw_stamp):
            return None, None
        # the cookie is signed and sent again only when the second changes: the callbacks
        # of one click share it
        if seen != int(now) and not _passive():
            session["seen"] = int(now)
        return principal, None

    def sign_in(self, principal: Principal) -> None:
        """A fresh session for ``principal`` (the old one is dropped: no fixation). The
        session is not "permanent", so its cookie ends with the browser session."""
        nonce = secrets.token_hex(16)
        now = int(time.time())
        session.clear()
        session.update(user=principal.username, nonce=nonce, login=now, seen=now,
                       stamp=self.stamp(self.store.reader(), principal.username),
                       csrf=secrets.token_urlsafe(32))
        self.record(principal.username, "login", principal.username,
                    {"ip": _client_ip(), "session": _tag(nonce)})

    # -- views
    def page(self, status: int = 200, error: str | None = None, notice: str | None = None,
             username: str = "", next_path: str = "/") -> flask.Response:
        html = render_template_string(LOGIN_PAGE, csrf=csrf_token(), error=error, notice=notice,
                                      username=username, next=next_path)
        return flask.Response(html, status=status, mimetype="text/html")

    def login_get(self) -> flask.Response:
        next_path = safe_next(request.args.get("next"))
        principal, _ = self.current()
        if principal is not None:
            return redirect(next_path, code=303)
        return self.page(notice=session.pop("notice", None), next_path=next_path)

    def login_post(self) -> flask.Response:
        next_path = safe_next(request.form.get("next"))
        username = (request.form.get("username") or "").strip().lower()[:MAX_USERNAME_CHARS]
        password = request.form.get("password") or ""
        if not _csrf_ok():
            session.pop("csrf", None)
            return self.page(400, "The sign-in form had expired. Please try again.",
                             username=username, next_path=next_path)
        if not username or not password:
            return self.page(400, "Enter your username and password.", username=username,
                             next_path=next_path)
        ip = _client_ip()
        until = self.locked_until(username, ip)
        if until is not None:
            wait = max(1, int((until - _now_utc()).total_seconds() + 59) // 60)
            self.record("anonymous", "login.throttled", username, ip)
            response = self.page(
                429, f"Too many failed sign-ins for this user or from this address. "
                     f"Try again in {wait} minute{'s' if wait != 1 else ''} (after {until:%H:%M} UTC).",
                username=username, next_path=next_path)
            response.headers["Retry-After"] = str(wait * 60)
            return response
        principal = users.authenticate(self.store.reader(), username, password)
        if principal is None:
            self.record("anonymous", "login.failed", username, ip)
            return self.page(401, FAILED_MESSAGE, username=username, next_path=next_path)
        self.sign_in(principal)
        return redirect(next_path, code=303)

    def logout(self) -> flask.Response:
        if not _csrf_ok():
            return flask.Response("The sign-out form had expired; reload the page and try again.",
                                  status=400, mimetype="text/plain")
        username, nonce = session.get("user"), session.get("nonce")
        if isinstance(nonce, str):
            self.revoke(nonce)
        if isinstance(username, str):
            self.record(username, "logout", username,
                        {"ip": _client_ip(), "session": _tag(nonce) if isinstance(nonce, str) else None})
        session.clear()
        return redirect("/login", code=303)

    def guard(self) -> flask.Response | tuple | None:
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        principal, reason = self.current()
        if principal is None:
            session.clear()
            if reason == "expired":
                minutes = self.idle_seconds // 60
                session["notice"] = (f"You were signed out after {minutes} minute"
                                     f"{'s' if minutes != 1 else ''} without activity.")
            if path.startswith("/_dash-"):
                return jsonify(error="signed out"), 401
            query = request.query_string.decode("utf-8", "replace")
            wanted = path + ("?" + query if query else "")
            # 303 turns a POST into a GET of the sign-in page
            return redirect("/login?" + urlencode({"next": safe_next(wanted)}),
                            code=302 if request.method == "GET" else 303)
        g.principal = principal
        g.scope = principal.scope
        if self.authorize is not None and path != "/logout":
            refused = self.authorize(principal, request)
            if refused is not None:
                status, message = refused
                return jsonify(error=message), status
        return None

    def headers(self, response: flask.Response) -> flask.Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if request.path in NO_STORE_PATHS:
            response.headers["Cache-Control"] = "no-store"
        if self.https:
            response.headers["Strict-Transport-Security"] = HSTS
        return response


def install(server: flask.Flask, store: Store | Callable[[], Store], *, https: bool = False, idle_minutes: int = 30,
            max_failures: int = 5, lockout_minutes: int = 15,
            authorize: Authorize | None = None) -> None:
    """Require sign-in on every route of ``server`` except the sign-in page and static
    assets, serving ``/login`` and ``/logout`` and adding security headers.

    ``store`` is the serving process's ``cockpit.store.Store`` (or a function returning
    the current one): users are read through ``store.reader()``, audit entries written
    through ``store.write_sync``.
    ``https``: cookies only over HTTPS, plus HSTS. ``idle_minutes``: a session ends after
    this long without a request. ``max_failures`` failed sign-ins for one username or
    from one address within ``lockout_minutes`` lock further attempts for the rest of
    that period. ``authorize(principal, request)`` runs after the session check on every
    guarded request; returning ``(status, message)`` refuses it with that status and
    ``{"error": message}``."""
    store_of = store if callable(store) else (lambda: store)
    secret = session_secret(load_key(store_of().path))
    server.secret_key = secret
    server.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(https),
    )
    if https:
        server.config["PREFERRED_URL_SCHEME"] = "https"
    auth = _Auth(store_of=store_of, https=bool(https), idle_seconds=int(idle_minutes * 60),
                 max_failures=int(max_failures), lockout=timedelta(minutes=lockout_minutes),
                 authorize=authorize, secret=secret)
    auth.load_revoked()
    passwords.dummy_hash()  # computed now, so the first unknown-user sign-in is not slower
    server.add_url_rule("/login", "cockpit_login", auth.login_get, methods=["GET"])
    server.add_url_rule("/login", "cockpit_login_post", auth.login_post, methods=["POST"])
    server.add_url_rule("/logout", "cockpit_logout", auth.logout, methods=["POST"])
    # first in line: nothing else runs for a request that is not signed in
    server.before_request_funcs.setdefault(None, []).insert(0, auth.guard)
    server.after_request(auth.headers)
    server.extensions["cockpit_auth"] = auth
