"""Segments: yield and speed per age band, and which segment to prioritise."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, html, no_update

from cockpit import cache, context, export, ui
from cockpit.filters import FilterError, Filters
from cockpit.metrics import segments
from cockpit.access import STAFF

dash.register_page(__name__, path="/segments", name="Segments", order=40, roles=STAFF)

HEADERS = {
    "segment_id": "Segment id", "segment": "Segment", "leads": "Leads",
    "eligible_rate_pct": "Eligible rate", "eligible": "Eligible", "consented": "Consented",
    "randomized": "Randomized", "allocated_spend": "Spend (allocated)",
    "allocated_cost_per_randomized": "Cost per randomized (allocated)",
    "randomized_per_1000": "Randomized per €1,000",
    "median_days_to_randomization": "Median days to randomization",
    "km_leads": "Leads followed", "open_leads": "Still open (censored)",
    "yield_index": "Yield index", "speed_index": "Speed index", "priority": "Priority",
    "caution": "Caution",
}
# cell formats (keys of ``ui.CELL_FORMATS``); other numbers are counts: thousands separated
FORMATS = {
    "allocated_spend": "money", "allocated_cost_per_randomized": "money",
    "eligible_rate_pct": "pct1", "randomized_per_1000": "dec2",
    "median_days_to_randomization": "dec1_not_reached",
    "yield_index": "dec2", "speed_index": "dec2", "priority": "dec0",
}
NO_SPEND_NOTE = ("Spend, cost, yield and priority are not shown: spend is recorded per study and "
                 "channel and can be allocated to segments, but not to sites, and a site filter is set.")


def layout(**_query) -> html.Div:
    return html.Div([
        html.H3("Segments"),
        html.P(
            "Which age band to prioritise: how many randomized patients each segment yields per "
            "€1,000 and how fast its leads get randomized. Counts are of the period, each stage on "
            "the day it was reached. Hover a column title for its definition.",
            className="page-note",
        ),
        dbc.Card(dbc.CardBody([
            html.Div([html.B("Priority score. "), segments.PRIORITY_FORMULA]),
            html.Div([html.B("Spend per segment. "), segments.ALLOCATION_METHOD], className="mt-1"),
            html.Div([html.B("Time to enrolment. "), segments.KM_METHOD], className="mt-1"),
        ]), className="page-note mb-3"),
        html.Div(id="sg-spend-note", className="page-note mb-2"),
        dbc.Row([
            dbc.Col([
                html.H5("Yield against speed"),
                html.P("Median days from lead to randomization (left is faster) against randomized "
                       "per €1,000 (up is cheaper); bubble size is leads. Top left is best.",
                       className="page-note"),
                ui.graph("sg-scatter"),
            ], lg=7),
            dbc.Col([
                html.H5("Priority score"),
                html.P(f"100 = cheapest and fastest segment (formula above). Light bars rest on fewer "
                       f"than {segments.MIN_RANDOMIZED} randomized patients.", className="page-note"),
                ui.graph("sg-priority"),
            ], lg=5),
        ], className="mb-3"),
        ui.table_block("sg-table", "Segments"),
    ])


def _scatter_figure(table: pd.DataFrame) -> dict:
    """Median days to randomization against randomized per €1,000, one bubble per
    segment sized by its leads; segments without either are named in the title."""
    segment, leads, randomized = (table[c].tolist() for c in ("segment", "leads", "randomized"))
    median, per_1000 = table["median_days_to_randomization"].tolist(), table["randomized_per_1000"].tolist()
    shown = [i for i in range(len(segment)) if median[i] == median[i] and per_1000[i] == per_1000[i]]
    missing = [segment[i] for i in range(len(segment)) if i not in set(shown)]
    title = ("Not plotted (median not reached or no spend): " + ", ".join(missing)) if missing else None
    largest = max(max((leads[i] for i in shown), default=1), 1)
    bubbles = {
        "type": "scatter", "x": [median[i] for i in shown], "y": [per_1000[i] for i in shown],
        "mode": "markers+text", "text": [segment[i] for i in shown], "textposition": "top center",
        "marker": {"size": [leads[i] for i in shown], "sizemode": "area", "color": "#0d6efd", "opacity": 0.6,
                   "sizeref": 2.0 * largest / 60 ** 2, "sizemin": 6},
        "customdata": [[leads[i], randomized[i]] for i in shown],
        "hovertemplate": "<b>%{text}</b><br>median %{x:.1f} days to randomized<br>"
                         "%{y:.2f} randomized per €1,000<br>leads %{customdata[0]:,}, "
                         "randomized %{customdata[1]:,}<extra></extra>",
    }
    title_spec = {"font": {"size": 12}} if title is None else {"text": title, "font": {"size": 12}}
    return ui.figure([bubbles], {
        "height": 400, "margin": {"l": 50, "r": 10, "t": 40 if title else 10, "b": 40},
        "xaxis": {"title": {"text": "median days from lead to randomized"}},
        "yaxis": {"title": {"text": "randomized per €1,000"}}, "title": title_spec})


def _priority_figure(table: pd.DataFrame) -> dict:
    """Priority score per segment, lowest at the bottom; light bars rest on few randomized."""
    score = table["priority"].to_numpy(dtype=float)
    rows = np.flatnonzero(~np.isnan(score))
    rows = rows[score[rows].argsort(kind="quicksort")]  # as pandas' sort_values orders them
    segment, caution = table["segment"].tolist(), table["caution"].tolist()
    yield_index, speed_index = table["yield_index"].tolist(), table["speed_index"].tolist()
    bars = {
        "type": "bar", "y": [segment[i] for i in rows], "x": [float(score[i]) for i in rows], "orientation": "h",
        "marker": {"color": ["#9ec5fe" if caution[i] != "" else "#0a58ca" for i in rows]},
        "text": [f"{score[i]:.0f}" + (f" ({caution[i]})" if caution[i] else "") for i in rows],
        "textposition": "outside", "cliponaxis": False,
        "customdata": [[yield_index[i], speed_index[i]] for i in rows],
        "hovertemplate": "<b>%{y}</b><br>priority %{x:.0f}<br>yield index %{customdata[0]:.2f}"
                         "<br>speed index %{customdata[1]:.2f}<extra></extra>",
    }
    return ui.figure([bars], {
        "height": 400, "margin": {"l": 10, "r": 30, "t": 30, "b": 40},
        "xaxis": {"title": {"text": "priority score"}, "range": [0, 160], "tickvals": [0, 25, 50, 75, 100]},
        "yaxis": {"automargin": True}})


def _spend_note(summary: dict | None) -> str:
    if summary is None:
        return NO_SPEND_NOTE
    if summary["total"] <= 0:
        return "No spend in the period."
    text = (f"Spend in the period: {_euros(summary['total'])}, of which "
            f"{_euros(summary['by_week'])} allocated by the week's leads and "
            f"{_euros(summary['by_period'])} by the period's leads.")
    if summary["unallocated"] > 0:
        text += (f" {_euros(summary['unallocated'])} is not allocated: its study and channel "
                 "brought no lead in the period.")
    return text


def _euros(value: float) -> str:
    return f"€{value:,.0f}"


def grid_columns(frame: pd.DataFrame) -> list[dict]:
    """Readable titles and number formats; the definitions on hover come from ``ui.column_defs``."""
    defs = ui.column_defs(frame, HEADERS, FORMATS, numbers="int")
    for spec in defs:
        field = spec["field"]
        if field == "segment_id":
            spec["hide"] = True
        if field == "segment":
            spec["pinned"] = "left"
            spec["minWidth"] = 160
        if field == "caution":
            spec["minWidth"] = 200
    return defs


@callback(
    Output("sg-spend-note", "children"), Output("sg-scatter", "figure"), Output("sg-priority", "figure"),
    Output("sg-table", "rowData"), Output("sg-table", "columnDefs"),
    Input("url", "search"),
)
def refresh(search):
    try:
        f = Filters.from_query(search)
    except FilterError:
        return [no_update] * 5
    # every segment's scores, computed once for all segment choices of the filter
    table, summary = cache.cached(context.store(), segments.all_segments, f.without("segment"))
    table = segments.chosen(table, f)
    return (_spend_note(summary), _scatter_figure(table), _priority_figure(table),
            ui.records(table), _shown_columns(table))


_shown_columns = ui.by_shape(grid_columns)


@callback(Output("sg-table-download", "data"), Input("sg-table-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download(_clicks, search):
    """The CSV of exactly the table shown, the filter in the file name."""
    f = Filters.from_query(search)
    table = segments.segment_table(context.reader(), f)
    return export.send(table, "segments", f)
