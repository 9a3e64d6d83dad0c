"""Channels: which channel, campaign and creative turns spend into randomized patients."""
from __future__ import annotations

from dataclasses import replace

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from cockpit import cache, context, export, ui
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


# the volume/quality scatter: bubble area of the largest spend, in px
BUBBLE_MAX = 50


def _numbers(column: pd.Series) -> list:
    """A column for a chart: numbers, None where empty."""
    return [None if v is None or v != v else v for v in column.tolist()]


def _no_data(text: str) -> dict:
    return {"text": text, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}


def _shares_figure(names: list[str], shares: dict[str, np.ndarray]) -> dict:
    """Per channel, its share of spend, leads, eligible pre-screens and randomized
    (``channels.share_columns``)."""
    names = names[::-1]  # biggest spender on top
    data = []
    # horizontal groups stack their first trace at the bottom: add in reverse, so that
    # budget is the top bar of each channel
    for col, label, color in reversed(SHARE_SERIES):
        values = [None if v != v else v for v in shares[col].tolist()][::-1]
        data.append({
            "type": "bar", "y": names, "x": values, "name": label, "orientation": "h",
            "marker": {"color": color}, "text": ["" if v is None else f"{v:.0f}%" for v in values],
            "textposition": "outside", "hovertemplate": "%{y}<br>" + label + ": %{x:.1f}%<extra></extra>",
        })
    return ui.figure(data, {
        "barmode": "group", "height": max(320, 56 * len(names) + 110),
        "margin": {"l": 10, "r": 30, "t": 30, "b": 90}, "xaxis": {"title": {"text": "% of total"}},
        "legend": {"orientation": "h", "y": -0.08, "yanchor": "top", "traceorder": "reversed"},
        "yaxis": {"automargin": True}, "bargap": 0.25})


def _cost_figure(table: pd.DataFrame) -> dict:
    """Cost per randomized per channel, cheapest on top, ROI in the label."""
    costs = table["cost_per_randomized"].to_numpy()
    rows = np.flatnonzero(~np.isnan(costs))
    # most expensive first, ties in the order of the table (as a descending sort_values)
    backwards = costs[rows][::-1]
    order = rows[np.arange(len(backwards))[::-1][backwards.argsort(kind="quicksort")][::-1]]
    cost = costs[order].tolist()
    roi = table["roi_pct"].to_numpy()[order].tolist()
    randomized = table["randomized"].to_numpy()[order].tolist()
    spent = table["spend"].to_numpy()[order].tolist()
    labels = [f"{ui.fmt_money(c)} · ROI {r:,.0f}%" if r == r else ui.fmt_money(c) for c, r in zip(cost, roi)]
    layout: dict = {"height": max(240, 30 * len(cost) + 80), "margin": {"l": 10, "r": 150, "t": 10, "b": 40},
                    "xaxis": {"title": {"text": "€ per randomized patient"}}, "yaxis": {"automargin": True}}
    if not cost:
        layout["annotations"] = [_no_data("No cost per randomized: no spend or nobody randomized in the "
                                          "period, or a site or segment filter is set.")]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
    return ui.figure([{
        "type": "bar", "y": table["channel"].to_numpy()[order].tolist(), "x": cost, "orientation": "h",
        "marker": {"color": "#0a58ca"}, "text": labels, "textposition": "outside", "cliponaxis": False,
        "customdata": [[float(n), s] for n, s in zip(randomized, spent)],
        "hovertemplate": "<b>%{y}</b><br>cost per randomized €%{x:,.0f}<br>randomized %{customdata[0]:,}"
                         "<br>spend €%{customdata[1]:,.0f}<extra></extra>",
    }], layout)


def _scatter_figure(table: pd.DataFrame) -> dict:
    """Leads against eligible rate, one bubble per row, its area the row's spend."""
    spent = _numbers(table["spend"])
    bubble = [0.0 if v is None else float(v) for v in spent]
    cpr = _numbers(table["cost_per_randomized"])
    return ui.figure([{
        "type": "scatter", "x": table["leads"].tolist(), "y": _numbers(table["eligible_rate_pct"]),
        "text": table[_label_column(table)].tolist(), "mode": "markers+text", "name": "",
        "legendgroup": "", "showlegend": False, "orientation": "v", "xaxis": "x", "yaxis": "y",
        "customdata": [[ui.fmt_money(s), ui.fmt_money(c), n]
                       for s, c, n in zip(spent, cpr, table["randomized"].tolist())],
        "marker": {"color": "#0d6efd", "size": bubble, "sizemode": "area", "symbol": "circle",
                   "sizeref": max(bubble) / BUBBLE_MAX ** 2 if bubble else None,
                   "sizemin": 6, "opacity": 0.6},
        "textposition": "top center", "textfont": {"size": 10}, "cliponaxis": False,
        "hovertemplate": "<b>%{text}</b><br>leads %{x:,}<br>eligible rate %{y:.1f}%<br>"
                         "spend %{customdata[0]}<br>randomized %{customdata[2]}<br>"
                         "cost per randomized %{customdata[1]}<extra></extra>",
    }], {"height": 420, "margin": {"t": 40, "l": 40, "r": 10, "b": 40},
         "xaxis": {"anchor": "y", "domain": [0.0, 1.0], "title": {"text": "leads in the period"}},
         "yaxis": {"anchor": "x", "domain": [0.0, 1.0], "title": {"text": "eligible rate (%)"}},
         "legend": {"tracegroupgap": 0, "itemsizing": "constant"}})


def _trend_figure(weekly: pd.DataFrame, metric: str) -> dict:
    """One line per channel (in order of its name) of the metric per week."""
    label = dict(TREND_METRICS)[metric]
    lines: dict[str, tuple[list, list]] = {}
    for name, week, value in zip(weekly["channel"].tolist(), weekly["week"].tolist(), _numbers(weekly[metric])):
        weeks, values = lines.setdefault(name, ([], []))
        weeks.append(week.isoformat())
        values.append(value)
    data = [{"type": "scatter", "x": weeks, "y": values, "name": name, "mode": "lines"}
            for name, (weeks, values) in sorted(lines.items()) if any(v is not None for v in values)]
    layout = {"height": 380, "margin": {"l": 40, "r": 10, "t": 10, "b": 40},
              "yaxis": {"title": {"text": f"{label.lower()} per week"}},
              "xaxis": {"title": {"text": "week (Monday)"}}, "legend": {"orientation": "h", "y": -0.2}}
    if not data:
        why = NO_SPEND_NOTE if metric == "spend" and not weekly.empty else "No data in the period."
        layout["annotations"] = [_no_data(why)]
    return ui.figure(data, layout)


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


_shown_columns = ui.by_shape(grid_columns)


# ---------------------------------------------------------------- callbacks


def _scope(search: str | None, drill: str | None) -> Filters:
    """The page's filter: the global one, narrowed to the drilled-into channel."""
    f = Filters.from_query(search)
    return replace(f, channel=(drill,)) if drill else f


# the parts of the page: the charts per channel (with the drill-down choices), the table
# with its scatter, and the weekly trend; with the inputs whose change alone redraws the part
PARTS: dict[str, set[str]] = {
    "charts": set(),
    "table": {"ch-level.value", "ch-drill.value"},
    "trend": {"ch-trend-metric.value"},
}


def parts_to_draw(changed: set[str]) -> set[str]:
    """The parts of the page to draw for the inputs that changed (``ui.parts_to_draw``)."""
    return ui.parts_to_draw(PARTS, changed)


@callback(
    Output("ch-spend-note", "children"), Output("ch-shares", "figure"), Output("ch-cpr", "figure"),
    Output("ch-drill", "options"),
    Output("ch-table", "rowData"), Output("ch-table", "columnDefs"), Output("ch-scatter", "figure"),
    Output("ch-trend", "figure"),
    Input("url", "search"), Input("ch-level", "value"), Input("ch-drill", "value"),
    Input("ch-trend-metric", "value"),
)
def refresh(search, level, drill, metric):
    """The whole page on a change of filter, in one request; a change of level,
    drill-down or trend metric redraws its own part only."""
    return page_outputs(search, level, drill, metric, parts_to_draw(set(ctx.triggered_prop_ids)))


def page_outputs(search: str | None, level: str | None, drill: str | None, metric: str | None,
                 parts: set[str] = frozenset(PARTS)) -> list:
    """The outputs of ``refresh`` (``no_update`` for a part not in ``parts``): spend note,
    shares and cost charts, drill-down options; table rows, table columns, scatter;
    trend. The channel table is read once when the table shows all channels."""
    out = [no_update] * 8
    try:
        f = Filters.from_query(search)
        scoped = _scope(search, drill)
    except FilterError:
        return out
    level, metric = level or "channel", metric or "leads"
    table = None
    # a level or metric the page does not offer (a crafted request) leaves its part as it was
    if "table" in parts and level in channels.LEVELS:
        table = cache.cached(context.store(), channels.channel_table, scoped, level)
        out[4:7] = [ui.records(table), _shown_columns(table), _scatter_figure(table)]
    if "charts" in parts:
        same = table is not None and scoped == f and level == "channel"
        out[0:4] = _channel_charts(f, table if same else cache.cached(context.store(), channels.channel_table, f, "channel"))
    if "trend" in parts and metric in dict(TREND_METRICS):
        out[7] = _trend_figure(cache.cached(context.store(), channels.weekly_by_channel, f), metric)
    return out


def _channel_charts(f: Filters, table: pd.DataFrame) -> list:
    """Spend note, shares chart, cost chart and drill-down options of the channel table."""
    names = table["channel"].tolist()
    options = [{"label": name, "value": cid} for cid, name in zip(table["channel_id"].tolist(), names)]
    note = "" if spend_applies(f) else NO_SPEND_NOTE
    return [note, _shares_figure(names, channels.share_columns(table)), _cost_figure(table), options]


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
