"""The cockpit's Dash application: navbar, global filter bar, and the pages of ``pages/``.

The filter bar writes its state into the URL query string (``?study=ST-101&...``);
every page reads the filter from the URL on the server, so a view can be shared by
its link and survives navigation between pages.
"""
from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from cockpit import context
from cockpit.filters import FilterError, Filters
from cockpit.metrics import dimensions
from cockpit.metrics.overview import data_as_of
from cockpit.store import Store

HERE = Path(__file__).resolve().parent
FILTER_IDS = ("study", "phase", "site", "segment", "channel")

_app: dash.Dash | None = None


def _filter_bar() -> dbc.Card:
    con = context.reader()
    options = dimensions.filter_options(con)
    dropdowns = [
        dbc.Col(
            dcc.Dropdown(id=f"f-{dim}", options=options[dim], multi=True,
                         placeholder=f"All {label}", persistence=False),
            xs=12, md=6, lg=2, className="mb-2",
        )
        for dim, label in (("study", "studies"), ("phase", "phases"), ("site", "sites"),
                           ("segment", "segments"), ("channel", "channels"))
    ]
    dates = dbc.Col(
        dcc.DatePickerRange(id="f-dates", display_format="YYYY-MM-DD", clearable=True,
                            start_date_placeholder_text="From", end_date_placeholder_text="To"),
        xs=12, lg=2, className="mb-2",
    )
    return dbc.Card(dbc.CardBody(dbc.Row(dropdowns + [dates], className="g-2")),
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


def _nav_pages() -> list[dict]:
    """Pages in the navbar, in their registered order."""
    return sorted(dash.page_registry.values(), key=lambda p: (p.get("order") or 0, p["name"]))


def serve_layout() -> html.Div:
    """The shell, built per page load so that filter options and freshness are current."""
    navbar = dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand("Recruitment cockpit", href="/"),
            dbc.Nav([dbc.NavLink(page["name"], id={"type": "nav", "path": page["path"]},
                                 href=page["path"], active="exact")
                     for page in _nav_pages()], navbar=True),
            _as_of(),
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
        [Output("url", "search"), Output("filter-error", "children")] + filter_outputs,
        [Input("url", "search")] + filter_inputs,
    )
    def sync_filters(search, *values):
        """URL -> filter bar on navigation; filter bar -> URL on a change."""
        keep = [no_update] * len(filter_outputs)
        if ctx.triggered_id == "url" or ctx.triggered_id is None:
            try:
                f = Filters.from_query(search)
            except FilterError as exc:
                return "", dbc.Alert(f"Ignored an invalid filter in the link: {exc}",
                                     color="warning", dismissable=True), *keep
            shown = [list(getattr(f, d)) or None for d in FILTER_IDS]
            return no_update, None, *shown, (f.start.isoformat() if f.start else None), \
                (f.end.isoformat() if f.end else None)
        *dims, start, end = values
        try:
            f = Filters.make(*dims, start=start, end=end)
        except FilterError as exc:
            return no_update, dbc.Alert(str(exc), color="danger", dismissable=True), *keep
        return f.to_query(), None, *keep

    @app.callback(Output({"type": "nav", "path": ALL}, "href"), Input("url", "search"),
                  State({"type": "nav", "path": ALL}, "id"))
    def keep_filters_in_nav(search, ids):
        """Navbar links carry the filter, so it survives navigation."""
        return [i["path"] + (search or "") for i in ids]


def create_app(store: Store) -> dash.Dash:
    """The Dash app serving ``store``. One per process (Dash registers pages globally)."""
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
    _app = app
    return app
