"""The server's check of every Dash request: which page a callback belongs to, and
whether the signed-in user's role may use that page.

Pages declare the roles that may open them (``dash.register_page(..., roles=...)``;
without it, the study-level roles). A callback defined in a page's module answers only
users of those roles; a callback of the app shell answers every signed-in user, and
its data is confined by ``Filters.scope``. A page a role may not open renders a notice
instead of its layout, so nothing of it is ever computed for that user.
"""
from __future__ import annotations

import functools
import json
from typing import Callable

import dash
from dash import html
from flask import Request

from cockpit.access import STAFF, Principal

DASH_UPDATE = "/_dash-update-component"


def _roles(page: dict) -> tuple[str, ...]:
    return tuple(page.get("roles") or STAFF)


def page_roles(module: str) -> tuple[str, ...] | None:
    """Roles that may use the page defined in ``module``; None when it is not a page."""
    page = dash.page_registry.get(module)
    return None if page is None else _roles(page)


def visible_pages(principal: Principal | None) -> list[dict]:
    """The registered pages this user may open, in navbar order."""
    pages = sorted(dash.page_registry.values(), key=lambda p: (p.get("order") or 0, p["name"]))
    if principal is None:
        return []
    return [p for p in pages if principal.role in _roles(p)]


def _module_of(callback: dict) -> str | None:
    fn = callback.get("callback")
    if fn is None:  # a clientside callback: runs in the browser, reads no data
        return None
    return getattr(fn, "__wrapped__", fn).__module__


class Guard:
    """Maps Dash callback outputs to the module that defined them, once the app has
    registered them all, and answers whether a request may run."""

    def __init__(self, app: dash.Dash):
        self.app = app
        self._modules: dict[str, str | None] | None = None

    def _callback_modules(self) -> dict[str, str | None]:
        if self._modules is None or len(self._modules) != len(self.app.callback_map):
            self._modules = {key: _module_of(cb) for key, cb in self.app.callback_map.items()}
        return self._modules

    def authorize(self, principal: Principal, request: Request) -> tuple[int, str] | None:
        """None when the request may run; else (HTTP status, reason)."""
        if request.path != DASH_UPDATE:
            return None
        try:
            # a JSON body is parsed once per request: the sign-in check and Dash read the
            # same parse
            body = request.get_json(silent=True) if request.is_json else None
            if body is None:
                body = json.loads(request.get_data(cache=True) or b"{}")
            output = body["output"]
        except (ValueError, KeyError, TypeError):
            return 400, "Malformed callback request."
        modules = self._callback_modules()
        if output not in modules:
            return 404, "No such callback."
        roles = page_roles(modules[output] or "")
        if roles is not None and principal.role not in roles:
            return 403, "Your role may not use this page."
        return None


def restricted_layout(module: str, layout: Callable | object, notice: Callable[[], object]):
    """The page's layout for users of its roles, ``notice()`` for everyone else."""
    from cockpit.access import current

    @functools.wraps(layout if callable(layout) else (lambda **_: layout))
    def render(**query):
        user = current()
        if user is None or user.role not in (page_roles(module) or STAFF):
            return notice()
        return layout(**query) if callable(layout) else layout

    return render


def not_available() -> html.Div:
    """What a user sees on a page their role may not open."""
    from cockpit.access import current

    user = current()
    links = [html.Li(html.A(p["name"], href=p["path"])) for p in visible_pages(user)]
    return html.Div([
        html.H4("This page is not available for your role", id="page-denied"),
        html.P("Pages you can open:"),
        html.Ul(links),
    ], className="mt-3")


def protect_pages() -> None:
    """Wrap every registered page's layout in the role check (idempotent)."""
    for module, page in dash.page_registry.items():
        if not getattr(page["layout"], "_cockpit_guarded", False):
            wrapped = restricted_layout(module, page["layout"], not_available)
            wrapped._cockpit_guarded = True  # type: ignore[attr-defined]
            page["layout"] = wrapped
