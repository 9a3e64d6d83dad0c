"""The cockpit's Dash application: navbar, global filter bar, and the pages of ``pages/``.

The filter bar writes its state into the URL query string (``?study=ST-101&...``);
every page reads the filter from the URL on the server, so a view can be shared by
its link and survives navigation between pages.
"""
from __future__ import annotations

import atexit
import gc
from datetime import datetime, timezone
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from cockpit import access, cache, context, guard, settings
from cockpit.auth import web as auth_web
from cockpit.filters import PERIODS, UNLIMITED, FilterError, Filters, period_dates
from cockpit.metrics import dimensions
from cockpit.metrics.overview import data_as_of
from cockpit.store import Store

HERE = Path(__file__).resolve().parent
FILTER_IDS = ("study", "phase", "site", "segment", "channel")

_app: dash.Dash | None = None


def _filter_bar() -> dbc.Card:
    viewer = Filters()
    options = cache.cached(context.store(), dimensions.filter_options, viewer)
    # "All" would overstate what a confined user sees
    confined = viewer.scope != UNLIMITED
    dropdowns = [
        dbc.Col(
            dcc.Dropdown(id=f"f-{dim}", options=options[dim], multi=True,
                         placeholder=f"{'Your' if confined and dim in ('study', 'site') else 'All'} {label}",
                         persistence=False),
            xs=12, md=6, lg=True, className="mb-2",
        )
        for dim, label in (("study", "studies"), ("phase", "phases"), ("site", "sites"),
                           ("segment", "segments"), ("channel", "channels"))
    ]
    dates = dbc.Col(
        dcc.DatePickerRange(id="f-dates", display_format="YYYY-MM-DD", clearable=True,
                            start_date_placeholder_text="From", end_date_placeholder_text="To"),
        xs=12, md=6, lg="auto", className="mb-2",
    )
    # A preset fills the dates (and is cleared again: the dates are the filter)
    period = dbc.Col(
        dcc.Dropdown(id="f-period", options=[{"label": label, "value": name}
                                             for name, label in PERIODS.items()],
                     placeholder="Period", clearable=False, searchable=False, persistence=False),
        xs=12, md=6, lg=True, className="mb-2",
    )
    threshold = settings.small_cell_threshold()
    deid = html.Div([
        dbc.Switch(id="export-deid", value=settings.deidentified_exports(),
                   label=f"De-identified CSV exports (counts under {threshold} suppressed)",
                   className="small mb-0"),
        html.Span(id="export-deid-saved", className="visually-hidden"),
    ], className="d-flex justify-content-end", title=(
        "Exports for sharing outside the study team: counts from 1 to "
        f"{threshold - 1} and the numbers derived from them are replaced by 'suppressed', "
        "and one more cell where a total would give a suppressed one away."))
    return dbc.Card(dbc.CardBody([dbc.Row(dropdowns + [dates, period], className="g-2"), deid]),
                    className="filter-bar mb-3")


def _as_of() -> html.Span:
    """The latest day with data; when the last load finished is on hover."""
    info = data_as_of(context.reader())
    if info["last_load"] is None:
        text, hover = "No data loaded yet", "Load exports with 'cockpit load' or drop them in the folder"
    else:
        text = f"Data to {info['latest_day']}"
        hover = f"Last load finished {info['last_load']:%Y-%m-%d %H:%M} UTC"
    return html.Span(text, title=hover, id="data-as-of",
                     className="navbar-text small ms-auto text-nowrap")


def _user_menu() -> dbc.DropdownMenu:
    """Who is signed in, and the sign-out form (a POST with the session's CSRF token)."""
    user = access.current()
    name = f"{user.username} ({user.role})" if user else ""
    sign_out = html.Form([
        dcc.Input(type="hidden", name="csrf_token", value=auth_web.csrf_token()),
        html.Button("Sign out", id="sign-out", type="submit", className="dropdown-item"),
    ], action="/logout", method="POST", className="mb-0")
    return dbc.DropdownMenu(
        [html.Div(name, id="signed-in-as", className="dropdown-header"), sign_out],
        label=user.username if user else "", id="user-menu", nav=True, align_end=True,
        toggle_class_name="small text-nowrap",
    )


def serve_layout() -> html.Div:
    """The shell, built per page load so that filter options and freshness are current."""
    navbar = dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("Recruitment cockpit", href="/"),
            dbc.Nav([dbc.NavLink(page["name"], id={"type": "nav", "path": page["path"]},
                                 href=page["path"], active="exact")
                     for page in guard.visible_pages(access.current())], navbar=True),
            _as_of(),
            dbc.Nav([_user_menu()], navbar=True, className="ms-2"),
        ], fluid=True),
        color="dark", dark=True, className="mb-3",
    )
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        navbar,
        dbc.Container([_filter_bar(), html.Div(id="filter-error"), dash.page_container], fluid=True),
    ])


def _register_shell_callbacks(app: dash.Dash) -> None:
    filter_outputs = [Output(f"f-{d}", "value") for d in FILTER_IDS] + [
        Output("f-dates", "start_date"), Output("f-dates", "end_date")]
    filter_inputs = [Input(f"f-{d}", "value") for d in FILTER_IDS] + [
        Input("f-dates", "start_date"), Input("f-dates", "end_date")]

    @app.callback(
        [Output("url", "search"), Output("filter-error", "children")] + filter_outputs
        + [Output("f-period", "value")],
        [Input("url", "search")] + filter_inputs + [Input("f-period", "value")],
    )
    def sync_filters(search, *values):
        """URL -> filter bar on navigation; filter bar -> URL on a change; a period
        preset -> its dates (today's, in UTC) in the bar and the URL."""
        keep = [no_update] * len(filter_outputs)
        if ctx.triggered_id == "url" or ctx.triggered_id is None:
            try:
                f = Filters.from_query(search)
            except FilterError as exc:
                return "", dbc.Alert(f"Ignored an invalid filter in the link: {exc}",
                                     color="warning", dismissable=True), *keep, no_update
            shown = [list(getattr(f, d)) or None for d in FILTER_IDS]
            return no_update, None, *shown, (f.start.isoformat() if f.start else None), \
                (f.end.isoformat() if f.end else None), no_update
        *dims, start, end, preset = values
        dates = keep[-2:]
        try:
            if ctx.triggered_id == "f-period":
                if not preset:
                    raise PreventUpdate
                start, end = period_dates(preset, datetime.now(timezone.utc).date())
                dates = [start.isoformat(), end.isoformat() if end else None]
            f = Filters.make(*dims, start=start, end=end)
        except FilterError as exc:
            return no_update, dbc.Alert(str(exc), color="danger", dismissable=True), *keep, None
        return f.to_query(), None, *keep[:-2], *dates, None

    @app.callback(Output("export-deid-saved", "children"), Input("export-deid", "value"),
                  prevent_initial_call=True)
    def choose_deidentified(value):
        """The choice is kept in the user's session, where every download reads it."""
        settings.choose_deidentified(bool(value))
        return "de-identified" if value else "full"

    @app.callback(Output({"type": "nav", "path": ALL}, "href"), Input("url", "search"),
                  State({"type": "nav", "path": ALL}, "id"))
    def keep_filters_in_nav(search, ids):
        """Navbar links carry the filter, so it survives navigation."""
        return [i["path"] + (search or "") for i in ids]


def create_app(store: Store, *, https: bool = False, idle_minutes: int = 30) -> dash.Dash:
    """The Dash app serving ``store`` behind sign-in. One per process (Dash registers
    pages globally). ``https``: the cockpit is reached over HTTPS (Secure cookies, HSTS);
    ``idle_minutes``: a session idle this long is signed out."""
    global _app
    context.set_store(store)
    if _app is not None:
        return _app
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        suppress_callback_exceptions=True,
        title="Recruitment cockpit",
    )
    app.layout = serve_layout
    _register_shell_callbacks(app)
    guard.protect_pages()
    auth_web.install(app.server, context.store, https=https, idle_minutes=idle_minutes,
                     authorize=guard.Guard(app).authorize)
    _app = app
    # Dash, Plotly and the pages leave about 190,000 objects that live as long as the
    # process. A full pass of the garbage collector walked them all, about 130 ms during
    # which every request waited; kept out of its passes, a pass takes about 10 ms.
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)  # so that they are finalized at exit, as before
    return app
