"""Overview: the portfolio at a glance for the weekly review."""
from __future__ import annotations

from itertools import groupby

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from plotly.colors import qualitative
from dash import Input, Output, State, callback, html, no_update

from cockpit import cache, context, export, ui
from cockpit.filters import FilterError, Filters
from cockpit.metrics import overview
from cockpit.access import STAFF

dash.register_page(__name__, path="/", name="Overview", order=0, roles=STAFF)

CARDS = [
    ("ov-leads", "Leads", "leads"),
    ("ov-eligible", "Eligible", "eligible"),
    ("ov-consented", "Consented", "consented"),
    ("ov-randomized", "Randomized", "randomized"),
    ("ov-spend", "Spend", "spend"),
    ("ov-cpr", "Cost per randomized", "cost_per_randomized"),
]
TABLE_HEADERS = {
    "study_id": "Study", "name": "Study name", "phase": "Phase", "target_randomized": "Target",
    "active_sites": "Active sites", "randomized_to_date": "Randomized to date",
    "pct_target": "% of target", "cost_per_randomized": "Cost per randomized",
}
TABLE_FORMATS = {"spend": "money", "cost_per_randomized": "money", "pct_target": "pct1",
                 **{c: "int" for c in ("leads", "eligible", "consented", "randomized", "randomized_to_date")}}


def layout(**_query) -> html.Div:
    return html.Div([
        html.H3("Overview"),
        html.P(
            "Counts are of the period chosen in the filter bar, each stage on the day it was "
            "reached. Enrolment against target counts every randomized patient since study "
            "start. Hover a title for its definition.",
            className="page-note",
        ),
        dbc.Row([ui.kpi_card(cid, title, key) for cid, title, key in CARDS]),
        html.Div(id="ov-spend-note", className="page-note mb-2"),
        dbc.Row([
            dbc.Col([html.H5("Enrolment against target"), ui.graph("ov-enrolment")], lg=6),
            dbc.Col([html.H5("Weekly trend"), ui.graph("ov-trend")], lg=6),
        ], className="mb-3"),
        ui.table_block("ov-table", "Studies"),
    ])


_PALETTE = qualitative.Plotly


def _dates(values) -> list[str]:
    return [v.isoformat() for v in values]


def _enrolment_figure(curve: pd.DataFrame) -> dict:
    """Per study, cumulative randomized (solid) and the target pace (dotted) by week."""
    rows = sorted(zip(curve["study_id"].tolist(), _dates(curve["week"]),
                      curve["cumulative_randomized"].tolist(), curve["target_to_date"].tolist()),
                  key=lambda row: row[0])
    data = []
    for i, (study_id, points) in enumerate(groupby(rows, key=lambda row: row[0])):
        _, weeks, cumulative, target = zip(*points)
        color = _PALETTE[i % len(_PALETTE)]
        data.append({"type": "scatter", "x": list(weeks), "y": list(cumulative), "mode": "lines",
                     "name": f"{study_id} randomized", "line": {"color": color}})
        data.append({"type": "scatter", "x": list(weeks), "y": list(target), "mode": "lines",
                     "name": f"{study_id} target pace", "line": {"dash": "dot", "color": color}})
    return ui.figure(data, {"margin": {"l": 40, "r": 10, "t": 10, "b": 40}, "height": 340,
                          "yaxis": {"title": {"text": "cumulative randomized"}},
                          "legend": {"orientation": "h", "y": -0.2}})


def _trend_figure(trend: pd.DataFrame) -> dict:
    """Persons per week at each stage (lines) and spend (bars, right axis)."""
    weeks = _dates(trend["week"])
    data = [{"type": "scatter", "x": weeks, "y": trend[col].tolist(), "name": col, "mode": "lines"}
            for col in ("leads", "eligible", "consented", "randomized")]
    spend = [None if pd.isna(v) else v for v in trend["spend"].tolist()]
    if any(v is not None for v in spend):
        data.append({"type": "bar", "x": weeks, "y": spend, "name": "spend (€)", "yaxis": "y2",
                     "opacity": 0.25})
    return ui.figure(data, {"margin": {"l": 40, "r": 40, "t": 10, "b": 40}, "height": 340,
                          "yaxis": {"title": {"text": "persons per week"}},
                          # own round ticks in euros (an overlaying axis otherwise copies the
                          # left axis's grid and lands on odd values such as 2,290)
                          "yaxis2": {"title": {"text": "spend (€)"}, "overlaying": "y", "side": "right",
                                     "showgrid": False, "tickmode": "auto", "tickprefix": "€",
                                     "tickformat": ",.0f", "rangemode": "tozero"},
                          "legend": {"orientation": "h", "y": -0.2}})


# column definitions depend only on the columns and their types: made once per table shape
# and shared (Dash only reads them)
_DEFS: dict[tuple, list[dict]] = {}


def _shown_columns(frame: pd.DataFrame) -> list[dict]:
    """``ui.column_defs`` of the frame, from the definitions made for its shape before."""
    shape = tuple(zip(frame.columns, map(str, frame.dtypes)))
    defs = _DEFS.get(shape)
    if defs is None:
        defs = _DEFS[shape] = ui.column_defs(frame, TABLE_HEADERS, TABLE_FORMATS)
    return defs


@callback(
    [Output(cid, "children") for cid, _, _ in CARDS]
    + [Output("ov-spend-note", "children"), Output("ov-enrolment", "figure"),
       Output("ov-trend", "figure"), Output("ov-table", "rowData"), Output("ov-table", "columnDefs")],
    Input("url", "search"),
)
def refresh(search):
    try:
        f = Filters.from_query(search)
    except FilterError:
        return [no_update] * (len(CARDS) + 5)
    numbers = cache.cached(context.store(), overview.snapshot, f)
    k = numbers.kpis
    cards = [ui.fmt_int(k["leads"]), ui.fmt_int(k["eligible"]), ui.fmt_int(k["consented"]),
             ui.fmt_int(k["randomized"]), ui.fmt_money(k["spend"]), ui.fmt_money(k["cost_per_randomized"])]
    note = ("Spend and cost are not shown: spend is recorded per study and channel, and a site "
            "or segment filter is set." if k["spend"] is None else "")
    table = numbers.studies
    return [*cards, note, _enrolment_figure(numbers.curve), _trend_figure(numbers.trend),
            ui.records(table), _shown_columns(table)]


@callback(Output("ov-table-download", "data"), Input("ov-table-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download(_clicks, search):
    f = Filters.from_query(search)
    table = overview.study_table(context.reader(), f)
    return export.send(table, "studies", f)
