"""Channels: which channel, campaign and creative turns spend into randomized patients."""
from __future__ import annotations

from dataclasses import replace

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update

from cockpit import context, export, ui
from cockpit.derive import LOOKBACK_DAYS
from cockpit.filters import FilterError, Filters
from cockpit.metrics import channels
from cockpit.metrics.counts import spend_applies
from cockpit.access import STAFF

dash.register_page(__name__, path="/channels", name="Channels", order=10, roles=STAFF)

HEADERS = {
    "channel_id": "Channel id", "channel": "Channel", "kind": "Kind", "campaign_id": "Campaign id",
    "campaign": "Campaign", "creative_id": "Creative id", "creative": "Creative", "variant": "Variant",
    "spend": "Spend", "impressions": "Impressions", "clicks": "Clicks", "ctr_pct": "CTR",
    "leads": "Leads", "cpl": "Cost per lead", "eligible_rate_pct": "Eligible rate",
    "eligible": "Eligible", "cost_per_eligible": "Cost per eligible", "consented": "Consented",
    "randomized": "Randomized", "cost_per_randomized": "Cost per randomized",
    "value": "Value of randomized", "roi_pct": "ROI",
}
MONEY = {"spend", "cpl", "cost_per_eligible", "cost_per_randomized", "value"}
PERCENT = {"ctr_pct": 2, "eligible_rate_pct": 1, "roi_pct": 0}
# the grid's display formats (keys of ``ui.CELL_FORMATS``; the data and the export stay raw
# numbers), other numbers thousands separated; value, large sums: 1.6M rather than 1,595,000
FORMATS = {"kind": "code", **{field: f"pct{places}g" for field, places in PERCENT.items()},
           **{field: "money" for field in MONEY}, "value": "money_short"}
HIDDEN = {"channel_id", "campaign_id", "creative_id"}  # in the export, not on screen
NAME_WIDTHS = {"channel": 170, "campaign": 230, "creative": 230}
TREND_METRICS = [("leads", "Leads"), ("eligible", "Eligible"), ("randomized", "Randomized"),
                 ("spend", "Spend (€)")]
SHARE_SERIES = [("share_budget_pct", "Budget", "#adb5bd"), ("share_leads_pct", "Leads", "#6ea8fe"),
                ("share_eligible_pct", "Eligible pre-screens", "#3d8bfd"),
                ("share_randomized_pct", "Randomized", "#0a58ca")]
NO_SPEND_NOTE = ("Spend, cost and ROI are not shown: spend is recorded per study and channel, "
                 "and a site or segment filter is set.")


def layout(**_query) -> html.Div:
    return html.Div([
        html.H3("Channels"),
        html.P(
            "Which channel turns spend into randomized patients. A lead belongs to the last "
            f"touch the person consented to track (or their referral / event sign-up) in the "
            f"{LOOKBACK_DAYS} days before it (last-touch model); leads without one are "
            "'Unattributed' and have no spend. Counts are of the period, each stage on the day "
            "it was reached. Spend includes offline costs (print runs, event fees, referral "
            "programme). Hover a column title for its definition.",
            className="page-note",
        ),
        html.Div(id="ch-spend-note", className="page-note text-danger mb-2"),
        dbc.Row([
            dbc.Col([
                html.H5("Budget against results"),
                html.P("Each channel's share of all spend, leads, eligible pre-screens and "
                       "randomized patients: a bar of results longer than the grey budget bar "
                       "means the channel brings more than it costs.", className="page-note"),
                ui.graph("ch-shares"),
            ], lg=6),
            dbc.Col([
                html.H5("Cost per randomized patient"),
                html.P("Spend over randomized in the period, cheapest first, with the ROI at the "
                       "studies' value per randomized patient. Cost per randomized needs no "
                       "assumed value.", className="page-note"),
                ui.graph("ch-cpr"),
                html.H5("Volume against quality", className="mt-3"),
                html.P("Leads (volume) against eligible rate (quality) at the level chosen below; "
                       "bubble size is spend. Top right: many leads that qualify.",
                       className="page-note"),
                ui.graph("ch-scatter"),
            ], lg=6),
        ], className="mb-3"),
        dbc.Row([
            dbc.Col([
                html.Span("Show per ", className="me-2"),
                dbc.RadioItems(
                    id="ch-level",
                    options=[{"label": "Channel", "value": "channel"},
                             {"label": "Campaign", "value": "campaign"},
                             {"label": "Creative", "value": "creative"}],
                    value="channel", inline=True, className="d-inline-block",
                ),
            ], md="auto", className="mb-2"),
            dbc.Col([
                dcc.Dropdown(id="ch-drill", placeholder="All channels", clearable=True,
                             style={"minWidth": "260px"}),
            ], md=3, className="mb-2"),
            dbc.Col(html.Span("Click a channel's row to see its campaigns.",
                              className="page-note"), md="auto", className="mb-2"),
        ], className="align-items-center"),
        ui.table_block("ch-table", "Performance per channel, campaign or creative"),
        html.Div([
            html.Div([
                html.H5("Weekly trend per channel", className="mb-0 me-3"),
                dbc.RadioItems(id="ch-trend-metric", options=[{"label": l, "value": v} for v, l in TREND_METRICS],
                               value="leads", inline=True),
            ], className="d-flex align-items-center flex-wrap mb-2"),
            ui.graph("ch-trend"),
        ], className="mb-4"),
    ])


# ---------------------------------------------------------------- figures


def _shares_figure(shares: pd.DataFrame) -> go.Figure:
    rows = shares.iloc[::-1]  # biggest spender on top
    fig = go.Figure()
    # horizontal groups stack their first trace at the bottom: add in reverse, so that
    # budget is the top bar of each channel
    for col, label, color in reversed(SHARE_SERIES):
        fig.add_trace(go.Bar(
            y=rows["channel"], x=rows[col], name=label, orientation="h", marker_color=color,
            text=[("" if pd.isna(v) else f"{v:.0f}%") for v in rows[col]], textposition="outside",
            hovertemplate="%{y}<br>" + label + ": %{x:.1f}%<extra></extra>",
        ))
    fig.update_layout(barmode="group", height=max(320, 56 * len(rows) + 110),
                      margin={"l": 10, "r": 30, "t": 30, "b": 90}, xaxis_title="% of total",
                      legend={"orientation": "h", "y": -0.08, "yanchor": "top", "traceorder": "reversed"},
                      yaxis={"automargin": True}, bargap=0.25)
    return fig


def _cost_figure(table: pd.DataFrame) -> go.Figure:
    """Cost per randomized per channel, cheapest on top, ROI in the label."""
    rows = table.dropna(subset=["cost_per_randomized"]).sort_values("cost_per_randomized", ascending=False)
    fig = go.Figure()
    if rows.empty:
        fig.add_annotation(text="No cost per randomized: no spend or nobody randomized in the period, "
                                "or a site or segment filter is set.",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    labels = [f"{ui.fmt_money(c)} · ROI {r:,.0f}%" if pd.notna(r) else ui.fmt_money(c)
              for c, r in zip(rows["cost_per_randomized"], rows["roi_pct"])]
    fig.add_trace(go.Bar(
        y=rows["channel"], x=rows["cost_per_randomized"], orientation="h", marker_color="#0a58ca",
        text=labels, textposition="outside", cliponaxis=False,
        customdata=rows[["randomized", "spend"]].to_numpy(),
        hovertemplate="<b>%{y}</b><br>cost per randomized €%{x:,.0f}<br>randomized %{customdata[0]:,}"
                      "<br>spend €%{customdata[1]:,.0f}<extra></extra>",
    ))
    fig.update_layout(height=max(240, 30 * len(rows) + 80), margin={"l": 10, "r": 150, "t": 10, "b": 40},
                      xaxis_title="€ per randomized patient", yaxis={"automargin": True})
    return fig


def _scatter_figure(table: pd.DataFrame) -> go.Figure:
    label = _label_column(table)
    data = table.assign(
        bubble=pd.to_numeric(table["spend"], errors="coerce").fillna(0.0),
        spend_text=[ui.fmt_money(None if pd.isna(v) else v) for v in table["spend"]],
        cpr_text=[ui.fmt_money(None if pd.isna(v) else v) for v in table["cost_per_randomized"]],
    )
    fig = px.scatter(
        data, x="leads", y="eligible_rate_pct", size="bubble", size_max=50, text=label,
        custom_data=["spend_text", "cpr_text", "randomized"],
    )
    fig.update_traces(
        textposition="top center", textfont={"size": 10}, cliponaxis=False,
        marker={"sizemin": 6, "color": "#0d6efd", "opacity": 0.6},
        hovertemplate="<b>%{text}</b><br>leads %{x:,}<br>eligible rate %{y:.1f}%<br>"
                      "spend %{customdata[0]}<br>randomized %{customdata[2]}<br>"
                      "cost per randomized %{customdata[1]}<extra></extra>",
    )
    fig.update_layout(height=420, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      xaxis_title="leads in the period", yaxis_title="eligible rate (%)")
    return fig


def _trend_figure(weekly: pd.DataFrame, metric: str) -> go.Figure:
    fig = go.Figure()
    label = dict(TREND_METRICS)[metric]
    for channel, rows in weekly.groupby("channel", sort=True):
        if rows[metric].notna().any():
            fig.add_trace(go.Scatter(x=rows["week"], y=rows[metric], name=channel, mode="lines"))
    if not fig.data:
        why = NO_SPEND_NOTE if metric == "spend" and not weekly.empty else "No data in the period."
        fig.add_annotation(text=why, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(height=380, margin={"l": 40, "r": 10, "t": 10, "b": 40},
                      yaxis_title=f"{label.lower()} per week", xaxis_title="week (Monday)",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _label_column(table: pd.DataFrame) -> str:
    for col in ("creative", "campaign", "channel"):
        if col in table.columns:
            return col
    return table.columns[0]


def grid_columns(frame: pd.DataFrame) -> list[dict]:
    """Column definitions with readable titles, money and percent formats, ids hidden,
    the name columns pinned; definitions on hover come from ``ui.column_defs``."""
    defs = ui.column_defs(frame, HEADERS, FORMATS, numbers="int")
    for spec in defs:
        field = spec["field"]
        if field in HIDDEN:
            spec["hide"] = True
        if field in NAME_WIDTHS:  # names stay in view while scrolling the numbers
            spec.update(pinned="left", minWidth=NAME_WIDTHS[field], tooltipField=field)
    return defs


# ---------------------------------------------------------------- callbacks


def _scope(search: str | None, drill: str | None) -> Filters:
    """The page's filter: the global one, narrowed to the drilled-into channel."""
    f = Filters.from_query(search)
    return replace(f, channel=(drill,)) if drill else f


@callback(
    Output("ch-spend-note", "children"), Output("ch-shares", "figure"), Output("ch-cpr", "figure"),
    Output("ch-drill", "options"),
    Input("url", "search"),
)
def refresh_overview(search):
    """Budget shares and cost per randomized per channel, and the channels to drill into."""
    try:
        f = Filters.from_query(search)
    except FilterError:
        return no_update, no_update, no_update, no_update
    table = channels.channel_table(context.reader(), f, "channel")
    shares = channels.budget_shares(table)
    options = [{"label": name, "value": cid} for cid, name in zip(table["channel_id"], table["channel"])]
    note = "" if spend_applies(f) else NO_SPEND_NOTE
    return note, _shares_figure(shares), _cost_figure(table), options


@callback(
    Output("ch-table", "rowData"), Output("ch-table", "columnDefs"), Output("ch-scatter", "figure"),
    Input("url", "search"), Input("ch-level", "value"), Input("ch-drill", "value"),
)
def refresh_table(search, level, drill):
    """The performance table and the volume/quality scatter at the chosen level."""
    try:
        f = _scope(search, drill)
    except FilterError:
        return no_update, no_update, no_update
    table = channels.channel_table(context.reader(), f, level or "channel")
    return ui.records(table), grid_columns(table), _scatter_figure(table)


@callback(Output("ch-trend", "figure"), Input("url", "search"), Input("ch-trend-metric", "value"))
def refresh_trend(search, metric):
    try:
        f = Filters.from_query(search)
    except FilterError:
        return no_update
    return _trend_figure(channels.weekly_by_channel(context.reader(), f), metric or "leads")


@callback(
    Output("ch-level", "value"), Output("ch-drill", "value"),
    Input("ch-table", "cellClicked"),
    State("ch-table", "virtualRowData"), State("ch-level", "value"),
    prevent_initial_call=True,
)
def drill_down(clicked, rows, level):
    """A click on a channel's row opens its campaigns."""
    if not clicked or level != "channel" or not rows:
        return no_update, no_update
    index = clicked.get("rowIndex")
    if index is None or not 0 <= index < len(rows):
        return no_update, no_update
    return "campaign", rows[index]["channel_id"]


@callback(
    Output("ch-table-download", "data"), Input("ch-table-export", "n_clicks"),
    State("url", "search"), State("ch-level", "value"), State("ch-drill", "value"),
    prevent_initial_call=True,
)
def download(_clicks, search, level, drill):
    """The CSV of exactly the table shown, the filter (and drill-down) in the file name."""
    f = _scope(search, drill)
    level = level or "channel"
    table = channels.channel_table(context.reader(), f, level)
    return export.send(table, f"channels_by_{level}", f)
