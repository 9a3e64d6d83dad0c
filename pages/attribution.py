"""Attribution: which channel earned the patient, by six models side by side.

Every number comes from ``cockpit.metrics.attribution`` (paths per person in DuckDB)
and ``cockpit.analytics.attribution`` (the models)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from cockpit import cache, context, export, ui
from cockpit.analytics import attribution as attr
from cockpit.derive import LOOKBACK_DAYS
from cockpit.filters import Filters, from_url
from cockpit.metrics import attribution as paths
from cockpit.access import STAFF

dash.register_page(__name__, path="/attribution", name="Attribution", order=50, roles=STAFF)

MODES = [{"label": "Up to the lead", "value": "lead"},
         {"label": "Up to randomization", "value": "randomized"}]
HEADERS = {
    "channel_id": "Channel id", "channel": "Channel", "persons_on_path": "Persons with a touch",
    **{m: attr.LABELS[m] for m in paths.TABLE_MODELS}, "removal_effect_pct": "Removal effect",
}
TIPS = {
    "persons_on_path": "Persons whose path (consented touches up to the conversion) includes the channel.",
    **{m: attr.ASSUMPTIONS[m] for m in paths.TABLE_MODELS},
    "removal_effect_pct": "Markov removal effect: the share of all conversions that would be lost if "
                          "the channel were removed from every path.",
}
COLOURS = {"first_touch": "#9ec5fe", "last_touch": "#0a58ca", "linear": "#6ea8fe",
           "position_based": "#3d8bfd", "time_decay": "#adb5bd", "markov": "#fd7e14"}
DEFAULT_HALF_LIFE = attr.DEFAULT_HALF_LIFE_DAYS


def layout(**_query) -> html.Div:
    table = ui.table_block("at-table", "Conversions credited to each channel, per model")
    return html.Div([
        html.H3("Attribution"),
        html.P(
            "Which channel earned the patient? Each person's path is the channels of their "
            "touches the person consented to track (and their referrals and event sign-ups), "
            f"from {LOOKBACK_DAYS} days before the lead up to the lead or up to the "
            "randomization, in order; repeated touches of one channel in a row count once. "
            "Each model shares every conversion among the channels of its path, so each "
            "model's column adds up to the same total. Where the models agree, the answer does "
            "not depend on the model.",
            className="page-note",
        ),
        dbc.Row([
            dbc.Col([
                html.Span("Conversion: ", className="me-2 fw-semibold"),
                dbc.RadioItems(id="at-mode", options=MODES, value="lead", inline=True,
                               className="d-inline-block", persistence=True,
                               persistence_type="session"),
            ], md="auto", className="mb-2"),
            dbc.Col([
                html.Label("Time-decay half-life (days)", htmlFor="at-half-life", className="me-2"),
                dcc.Input(id="at-half-life", type="number", min=0.5, max=365, step=0.5,
                          value=DEFAULT_HALF_LIFE, debounce=True, style={"width": "6rem"},
                          persistence=True, persistence_type="session"),
            ], md="auto", className="mb-2"),
        ], className="align-items-center"),
        html.Div(id="at-note", className="page-note mb-2"),
        ui.graph("at-chart"),
        table,
        _assumptions(),
    ])


def _assumptions() -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.H5("What each model assumes"),
        html.Ul([html.Li([html.B(attr.LABELS[m] + ": "), attr.ASSUMPTIONS[m].split(": ", 1)[1]])
                 for m in paths.TABLE_MODELS], className="page-note mb-2"),
        html.P("Up to the lead, every path ends in a lead (the cockpit knows a person only from "
               "their first form, referral or sign-up), so the Markov model credits a channel by "
               "the share of paths that pass through it. Up to randomization, leads not "
               "randomized (yet) are the paths that did not convert; recent leads may still be "
               "randomized.", className="page-note mb-0"),
    ]), className="mb-4")


# ---------------------------------------------------------------- formatting


def _half_life(value) -> float:
    """The half-life the user typed, if it is a sensible number of days."""
    try:
        h = float(value)
    except (TypeError, ValueError):
        return DEFAULT_HALF_LIFE
    return h if 0.5 <= h <= 365 else DEFAULT_HALF_LIFE


def _mode(value) -> str:
    return value if value in paths.MODES else "lead"


def grid_columns(table: pd.DataFrame) -> list[dict]:
    defs = ui.column_defs(table, HEADERS)
    for spec in defs:
        field = spec["field"]
        if field in TIPS:
            spec["headerTooltip"] = TIPS[field]
        if field == "channel_id":
            spec["hide"] = True
        elif field == "channel":
            spec.update(pinned="left", minWidth=190)
        elif field == "persons_on_path":
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : d3.format(',')(params.value)"}
        elif field == "removal_effect_pct":
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : "
                                                  "d3.format('.1f')(params.value) + '%'"}
        elif field in paths.TABLE_MODELS:
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : "
                                                  "d3.format(',.1f')(params.value)"}
    return defs


def _figure(table: pd.DataFrame, mode: str) -> dict:
    unit = "leads" if mode == "lead" else "randomized patients"
    layout = {"barmode": "group", "height": 400, "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
              "yaxis": {"title": {"text": f"{unit} credited"}},
              "legend": {"orientation": "h", "y": -0.15}}
    if table.empty:
        layout["annotations"] = [{"text": "No person with a consented touch under this filter.",
                                  "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}]
        layout["xaxis"] = {"visible": False}
        layout["yaxis"]["visible"] = False
    channels = table["channel"].tolist()
    return ui.figure([{"type": "bar", "x": channels, "y": table[model].astype(float).tolist(),
                       "name": attr.LABELS[model], "marker": {"color": COLOURS[model]},
                       "hovertemplate": "%{x}<br>" + attr.LABELS[model] + ": %{y:,.1f}<extra></extra>"}
                      for model in paths.TABLE_MODELS], layout)


def _note(cov: dict, mode: str, f: Filters) -> str:
    what = "leads" if mode == "lead" else "randomized patients"
    parts = [f"{cov['persons']:,} persons ({f.label()}); {cov['conversions']:,} {what}."]
    if cov["without_touch"] and mode == "lead":
        parts.append(f"{cov['without_touch']:,} of the leads had no consented touch and are not "
                     f"attributed, so each model's column adds up to the other "
                     f"{cov['conversions'] - cov['without_touch']:,}.")
    elif cov["without_touch"]:
        parts.append(f"{cov['without_touch']:,} of the persons ({cov['without_touch_conversions']:,} of "
                     f"the {what}) had no consented touch and are not attributed, so each model's "
                     f"column adds up to the other {cov['conversions'] - cov['without_touch_conversions']:,}.")
    parts.append(f"{cov['multi_step']:,} paths touch more than one channel: only there do the "
                 "models differ.")
    if f.channel:
        parts.append("The channel filter keeps persons whose path touches one of the chosen channels.")
    return " ".join(parts)


# ---------------------------------------------------------------- callbacks



@callback(
    Output("at-note", "children"), Output("at-chart", "figure"),
    Output("at-table", "rowData"), Output("at-table", "columnDefs"),
    Input("url", "search"), Input("at-mode", "value"), Input("at-half-life", "value"),
)
def refresh(search: str | None, mode: str | None, half_life) -> tuple:
    """Note, grouped bars and table of the credited conversions per channel and model."""
    f = from_url(search)
    if f is None:
        return (no_update,) * 4
    mode = _mode(mode)
    store = context.store()
    table = cache.cached(store, paths.channel_table, f, mode, _half_life(half_life))
    return (_note(cache.cached(store, paths.coverage, f, mode), mode, f), _figure(table, mode),
            ui.records(table), grid_columns(table))


@callback(Output("at-table-download", "data"), Input("at-table-export", "n_clicks"),
          State("url", "search"), State("at-mode", "value"), State("at-half-life", "value"),
          prevent_initial_call=True)
def download(_clicks: int | None, search: str | None, mode: str | None, half_life) -> dict:
    f = from_url(search)
    if f is None:
        return no_update
    mode = _mode(mode)
    table = paths.channel_table(context.reader(), f, mode, _half_life(half_life))
    return export.send(table, f"attribution_up-to-{mode}", f)
