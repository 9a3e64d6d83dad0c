"""Overview: the portfolio at a glance for the weekly review."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.express as px
import plotly.graph_objects as go
from dash import Input, Output, State, callback, html, no_update

from cockpit import context, export, ui
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


def _enrolment_figure(curve) -> go.Figure:
    fig = go.Figure()
    palette = px.colors.qualitative.Plotly
    for i, (study_id, rows) in enumerate(curve.groupby("study_id", sort=True)):
        color = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=rows["week"], y=rows["cumulative_randomized"], mode="lines",
                                 name=f"{study_id} randomized", line={"color": color}))
        fig.add_trace(go.Scatter(x=rows["week"], y=rows["target_to_date"], mode="lines",
                                 name=f"{study_id} target pace", line={"dash": "dot", "color": color}))
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 40}, height=340,
                      yaxis_title="cumulative randomized", legend={"orientation": "h", "y": -0.2})
    return fig


def _trend_figure(trend) -> go.Figure:
    fig = go.Figure()
    for col in ("leads", "eligible", "consented", "randomized"):
        fig.add_trace(go.Scatter(x=trend["week"], y=trend[col], name=col, mode="lines"))
    if trend["spend"].notna().any():
        fig.add_trace(go.Bar(x=trend["week"], y=trend["spend"], name="spend (€)", yaxis="y2",
                             opacity=0.25))
    fig.update_layout(margin={"l": 40, "r": 40, "t": 10, "b": 40}, height=340,
                      yaxis={"title": "persons per week"},
                      yaxis2={"title": "spend (€)", "overlaying": "y", "side": "right", "showgrid": False},
                      legend={"orientation": "h", "y": -0.2})
    return fig


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
    con = context.reader()
    k = overview.kpis(con, f)
    cards = [ui.fmt_int(k["leads"]), ui.fmt_int(k["eligible"]), ui.fmt_int(k["consented"]),
             ui.fmt_int(k["randomized"]), ui.fmt_money(k["spend"]), ui.fmt_money(k["cost_per_randomized"])]
    note = ("Spend and cost are not shown: spend is recorded per study and channel, and a site "
            "or segment filter is set." if k["spend"] is None else "")
    table = overview.study_table(con, f)
    return [*cards, note,
            _enrolment_figure(overview.enrolment_curve(con, f)),
            _trend_figure(overview.weekly_trend(con, f)),
            ui.records(table), ui.column_defs(table, TABLE_HEADERS, TABLE_FORMATS)]


@callback(Output("ov-table-download", "data"), Input("ov-table-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download(_clicks, search):
    f = Filters.from_query(search)
    table = overview.study_table(context.reader(), f)
    return export.send(table, "studies", f)
