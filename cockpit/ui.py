"""Building blocks shared by the pages: KPI cards with their definition on hover,
tables with a CSV export button, number formatting."""
from __future__ import annotations

import math
from typing import Callable

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from cockpit.metrics.definitions import KPI_DEFINITIONS


def fmt_int(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{int(round(value)):,}"


def fmt_money(value: float | None, currency: str = "€") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 100_000:
        return f"{currency}{value / 1000:,.0f}k"
    return f"{currency}{value:,.0f}"


def kpi_card(card_id: str, title: str, definition_key: str) -> dbc.Col:
    """A card whose value is filled by a callback (``<card_id>``), with the KPI's
    definition as a tooltip on its title."""
    title_id = f"{card_id}-title"
    return dbc.Col(
        dbc.Card(
            dbc.CardBody([
                html.Div(title, id=title_id, className="kpi-title"),
                html.Div("…", id=card_id, className="kpi-value"),
                dbc.Tooltip(KPI_DEFINITIONS[definition_key], target=title_id, placement="bottom"),
            ]),
            className="kpi-card h-100",
        ),
        xs=6, md=4, xl=2, className="mb-3",
    )


# Named cell formats (d3-format, run in the browser on the numbers the server sent).
CELL_FORMATS: dict[str, str] = {
    "int": "params.value == null ? '—' : d3.format(',')(params.value)",
    "money": "params.value == null ? '—' : '€' + d3.format(',.0f')(params.value)",
    "money2": "params.value == null ? '—' : '€' + d3.format(',.2f')(params.value)",
    "money_short": "params.value == null ? '—' : '€' + d3.format(',.3~s')(params.value)",  # €1.6M
    "pct0": "params.value == null ? '—' : d3.format('.0f')(params.value) + '%'",
    "pct1": "params.value == null ? '—' : d3.format('.1f')(params.value) + '%'",
    # percents with thousands separated (1,250%)
    "pct0g": "params.value == null ? '—' : d3.format(',.0f')(params.value) + '%'",
    "pct1g": "params.value == null ? '—' : d3.format(',.1f')(params.value) + '%'",
    "pct2g": "params.value == null ? '—' : d3.format(',.2f')(params.value) + '%'",
    "dec0": "params.value == null ? '—' : d3.format('.0f')(params.value)",
    "dec1": "params.value == null ? '—' : d3.format('.1f')(params.value)",
    "dec2": "params.value == null ? '—' : d3.format('.2f')(params.value)",
    # a Kaplan-Meier median or limit that is missing was not reached
    "dec1_not_reached": "params.value == null ? 'not reached' : d3.format('.1f')(params.value)",
    "yes": "params.value ? 'yes' : ''",
    "code": "params.value == null ? '' : String(params.value).replace(/_/g, ' ')",
}


def column_defs(frame: pd.DataFrame, headers: dict[str, str] | None = None,
                formats: dict[str, str] | None = None, *, numbers: str | None = None) -> list[dict]:
    """AG Grid column definitions for a frame: numbers right-aligned and sortable, each
    KPI's definition as its header tooltip, and ``formats`` (column -> a key of
    ``CELL_FORMATS``) for display; ``numbers`` is the format of the numeric columns
    not in ``formats``."""
    headers = headers or {}
    formats = formats or {}
    defs = []
    for col in frame.columns:
        spec: dict = {"field": col, "headerName": headers.get(col, col.replace("_", " ").capitalize()),
                      "sortable": True, "filter": True, "resizable": True}
        if pd.api.types.is_numeric_dtype(frame[col]):
            spec["type"] = "rightAligned"
            spec["filter"] = "agNumberColumnFilter"
        elif col == "name" or col.endswith("_name"):
            spec["minWidth"] = 220  # names are what a reader scans for
        fmt = formats.get(col, numbers if spec.get("type") == "rightAligned" else None)
        if fmt:
            spec["valueFormatter"] = {"function": CELL_FORMATS[fmt]}
        tip = KPI_DEFINITIONS.get(col)
        if tip:
            spec["headerTooltip"] = tip
        defs.append(spec)
    return defs


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows for the grid: JSON-safe (missing values as None, numbers as Python
    numbers, dates and times as ISO text). Built column by column: a table of a few
    hundred cells costs well under a millisecond."""
    names = list(frame.columns)
    if not names:
        return [{} for _ in range(len(frame))]
    columns = [_cells(column) for _, column in frame.items()]
    return [dict(zip(names, row)) for row in zip(*columns)]


def _cells(column: pd.Series) -> list:
    """One column's values for ``records``."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iub":  # plain ints and bools: never missing
            return column.tolist()
        if dtype.kind == "f":  # NaN is the only missing float
            return [None if v != v else v for v in column.tolist()]
        missing = pd.isna(column.to_numpy())
    else:
        missing = pd.isna(column.array)
    return [None if gone else _native(v) for v, gone in zip(column.tolist(), missing.tolist())]


def _native(value: object) -> object:
    """A numpy scalar as the Python number it holds; a date, time or timestamp as ISO text."""
    if type(value) is str:
        return value
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    elif isinstance(value, np.timedelta64):
        value = pd.Timedelta(value)
    elif isinstance(value, np.generic):
        value = value.item()
    return value.isoformat() if hasattr(value, "isoformat") else value


def parts_to_draw(parts: dict[str, set[str]], changed: set[str]) -> set[str]:
    """Of a page drawn in ``parts`` (name -> the ids of its own inputs, as
    'id.property'): every part when the page opens or the filter changed; otherwise
    the parts whose own inputs changed."""
    own = set().union(*parts.values())
    if not changed or not changed <= own:
        return set(parts)
    return {part for part, inputs in parts.items() if inputs & changed}


def by_shape(columns: Callable[[pd.DataFrame], list[dict]]) -> Callable[[pd.DataFrame], list[dict]]:
    """``columns`` (a page's grid column definitions of a frame), made once per table
    shape (column names and types) and shared after: Dash only reads them."""
    made: dict[tuple, list[dict]] = {}

    def shown(frame: pd.DataFrame) -> list[dict]:
        shape = tuple(zip(frame.columns, map(str, frame.dtypes)))
        defs = made.get(shape)
        if defs is None:
            defs = made[shape] = columns(frame)
        return defs

    return shown


def table_block(table_id: str, title: str) -> html.Div:
    """A titled grid with an "Export CSV" button and its download target."""
    return html.Div([
        html.Div([
            html.H5(title, className="mb-0"),
            dbc.Button("Export CSV", id=f"{table_id}-export", size="sm", color="secondary",
                       outline=True, className="ms-auto"),
            dcc.Download(id=f"{table_id}-download"),
        ], className="d-flex align-items-center mb-2"),
        dag.AgGrid(
            id=table_id,
            rowData=[],
            columnDefs=[],
            defaultColDef={"minWidth": 100, "wrapHeaderText": True, "autoHeaderHeight": True},
            columnSize="responsiveSizeToFit",
            dashGridOptions={"domLayout": "autoHeight", "tooltipShowDelay": 200},
            style={"width": "100%"},
        ),
    ], className="mb-4")


# the default look of every chart, as ``go.Figure`` adds it; charts built as plain dicts
# (which Dash sends as they are, without plotly's validation) carry it too
_TEMPLATE = go.Figure().layout.template.to_plotly_json()


def figure(data: list[dict], layout: dict) -> dict:
    """A chart as a plain Plotly dict: its traces and layout, with the default template."""
    return {"data": data, "layout": {**layout, "template": _TEMPLATE}}


def graph(graph_id: str) -> dcc.Graph:
    """A chart that downloads as PNG from its toolbar."""
    return dcc.Graph(
        id=graph_id,
        config={"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": graph_id}},
    )
