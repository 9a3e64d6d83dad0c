"""Budget: what each channel's spend brings, and what a different budget would bring.

The model (``cockpit.analytics.mix``) is fitted on demand per filter, outcome and data
version and kept in a small cache (``cockpit.metrics.mix.cached_fit``); the what-ifs
and the optimiser (``cockpit.analytics.optimise``) reuse the cached fit."""
from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from cockpit import context, export, ui
from cockpit.filters import Filters, from_url
from cockpit.metrics import mix as mm
from cockpit.access import STAFF

dash.register_page(__name__, path="/budget", name="Budget", order=60, roles=STAFF)

OUTCOME_OPTIONS = [{"label": "Randomized patients", "value": "randomized"},
                   {"label": "Leads", "value": "leads"}]
HOW = ("The model is fitted on weekly leads: randomized patients are too few per week to tell "
       "channels apart directly. A channel's leads become randomized patients at that channel's "
       "own rate (randomized per lead of its leads in the fitted weeks).")
DEFAULT_WEEKS = 12
ASSUMES = ("What the model assumes: each channel's weekly spend brings {unit} along a curve that "
           "flattens as spend grows, part of a week's effect carries into the next weeks, and "
           "everything else (open sites, trend, season) is a baseline that spend does not move; "
           "a channel whose results do not follow its spend gets no credit.")
CHANNEL_HEADERS = {
    "channel": "Channel", "spend": "Spend", "leads_brought": "Leads brought",
    "randomized_per_lead_pct": "Randomized per lead", "share_pct": "Share",
    "current_weekly_spend": "Weekly spend now", "saturation_spend": "Weekly spend at 80% of max",
    "carry_over_pct": "Carry-over",
}
CHANNEL_TIPS = {
    "leads_brought": "Leads the channel's spend brought over the fitted weeks, by the model.",
    "randomized_per_lead_pct": "Of the channel's leads in the fitted weeks (last consented touch), the "
                               "share randomized so far.",
    "spend": "Platform spend plus offline costs over the fitted weeks (monthly fees spread over their month).",
    "contribution": "What the channel's spend brought over the fitted weeks, by the model.",
    "contribution_low": "Lower end of the 80% interval (bootstrap refits of the model).",
    "contribution_high": "Upper end of the 80% interval (bootstrap refits of the model).",
    "share_pct": "What the channel brought as % of the whole outcome of the fitted weeks.",
    "cost_per_outcome": "Spend / what it brought, over the fitted weeks.",
    "marginal_cost": "Extra weekly spend needed for one more per week at today's spend: "
                     "the price of the next one, which rises as the channel saturates.",
    "current_weekly_spend": "Mean weekly spend of the last 8 fitted weeks.",
    "saturation_spend": "Weekly spend at which the channel brings 80% of the most it can.",
    "carry_over_pct": "Share of a week's effect that carries into the next week (adstock).",
}
MONEY = {"spend", "cost_per_outcome", "marginal_cost", "current_weekly_spend", "saturation_spend"}


def layout(**_query) -> html.Div:
    channels = ui.table_block("bu-channels", "What each channel brought in the fitted weeks")
    grid = channels.children[1]
    grid.dashGridOptions = {**grid.dashGridOptions, "suppressColumnVirtualisation": True}
    return html.Div([
        html.H3("Budget what-if"),
        html.P(
            "Weekly spend per channel (ad platforms and offline costs) against weekly randomized "
            "patients or leads, for the study chosen in the filter bar (or all studies in it "
            "together). Change the weekly budget below to see what the next weeks would bring "
            "and when the study would reach its target; let the optimiser spread the same "
            "budget for the most patients. Site, segment and channel filters do not apply "
            "(spend is known per study and channel).",
            className="page-note",
        ),
        dbc.Row([
            dbc.Col([
                html.Span("Outcome: ", className="me-2 fw-semibold"),
                dbc.RadioItems(id="bu-outcome", options=OUTCOME_OPTIONS, value="randomized",
                               inline=True, className="d-inline-block", persistence=True,
                               persistence_type="session"),
            ], md="auto", className="mb-2"),
            dbc.Col([
                html.Label("Weeks ahead", htmlFor="bu-weeks", className="me-2"),
                dcc.Input(id="bu-weeks", type="number", min=1, max=104, step=1, value=DEFAULT_WEEKS,
                          debounce=True, style={"width": "5rem"}, persistence=True,
                          persistence_type="session"),
            ], md="auto", className="mb-2"),
            dbc.Col(html.Div(id="bu-scope", className="page-note"), className="mb-2"),
        ], className="align-items-center"),
        html.Div(id="bu-assumes", className="alert alert-light py-2 page-note mb-2"),
        dcc.Loading(
            [html.Div(id="bu-fit-status", className="page-note mb-2"), dbc.Row(id="bu-quality"),
             html.Div(id="bu-warnings")],
            custom_spinner=html.Div([dbc.Spinner(size="sm", color="primary"),
                                     html.Span(" Fitting the model…", className="ms-2")],
                                    className="d-flex align-items-center"),
            overlay_style={"visibility": "visible", "opacity": 0.4},
        ),
        dcc.Store(id="bu-fit-key"),
        dcc.Store(id="bu-plan-version", data=0),
        channels,
        html.P("A channel at 0 brought nothing the model could tie to its spend: its results do not "
               "rise and fall with what is spent on it (an always-on programme, fees paid per "
               "referral after the fact). That does not mean it brings nobody; the Channels and "
               "Attribution pages count who came through it.", className="page-note"),
        html.H4("Plan the next weeks", className="mt-2"),
        dbc.Row([
            dbc.Col(html.Span("Move"), width="auto"),
            dbc.Col(dcc.Input(id="bu-move-pct", type="number", min=0, max=100, step=1, value=10,
                              style={"width": "5rem"}), width="auto"),
            dbc.Col(html.Span("% of the weekly budget of"), width="auto"),
            dbc.Col(dcc.Dropdown(id="bu-move-from", clearable=False, style={"minWidth": "220px"}), width="auto"),
            dbc.Col(html.Span("to"), width="auto"),
            dbc.Col(dcc.Dropdown(id="bu-move-to", clearable=False, style={"minWidth": "220px"}), width="auto"),
            dbc.Col(dbc.Button("Apply", id="bu-move-apply", size="sm", color="primary"), width="auto"),
        ], className="align-items-center g-2 mb-2"),
        html.P("Or type each channel's weekly budget in the table. Min and max bound what the "
               "optimiser may propose.", className="page-note mb-1"),
        dag.AgGrid(
            id="bu-plan", rowData=[], columnDefs=_plan_columns(), getRowId="params.data.channel_id",
            defaultColDef={"minWidth": 110, "resizable": True}, columnSize="responsiveSizeToFit",
            dashGridOptions={"domLayout": "autoHeight", "singleClickEdit": True,
                             "stopEditingWhenCellsLoseFocus": True},
            style={"width": "100%"},
        ),
        html.Div([
            dbc.Button("Propose the best split of this budget", id="bu-optimise", size="sm",
                       color="success", className="me-2"),
            dbc.Button("Back to the current budget", id="bu-reset", size="sm", color="secondary",
                       outline=True),
        ], className="my-2"),
        html.Div(id="bu-plan-note", className="page-note mb-2"),
        dbc.Row(id="bu-prediction", className="mb-2"),
        html.Div(id="bu-target-note", className="page-note mb-2"),
        dbc.Row([
            dbc.Col([html.H5("Predicted per week"), ui.graph("bu-forecast")], lg=6),
            dbc.Col([html.H5("What a weekly budget brings, per channel"),
                     html.P("Each channel's weekly result at 0% to 300% of its weekly spend "
                            "today, once carry-over has built up: where a curve flattens, more "
                            "money buys little.", className="page-note mb-1"),
                     ui.graph("bu-curves")], lg=6),
        ], className="mb-4"),
    ])


def _plan_columns() -> list[dict]:
    money = {"function": "params.value == null ? '—' : '€' + d3.format(',.0f')(params.value)"}
    editable = {"editable": True, "cellEditor": "agNumberCellEditor",
                "cellStyle": {"backgroundColor": "#fffbe6"}, "type": "rightAligned", "valueFormatter": money}
    return [
        {"field": "channel", "headerName": "Channel", "minWidth": 200},
        {"field": "current", "headerName": "Weekly budget now", "type": "rightAligned",
         "valueFormatter": money, "headerTooltip": "Mean weekly spend of the last 8 fitted weeks."},
        {"field": "budget", "headerName": "Planned weekly budget", **editable,
         "headerTooltip": "Type a weekly amount; the prediction below follows."},
        {"field": "min", "headerName": "Min (optimiser)", **editable},
        {"field": "max", "headerName": "Max (optimiser)", **editable},
    ]


# ---------------------------------------------------------------- helpers



def _outcome(value) -> str:
    return value if value in mm.OUTCOMES else "randomized"


def _weeks(value) -> int:
    try:
        weeks = int(value)
    except (TypeError, ValueError):
        return DEFAULT_WEEKS
    return weeks if 1 <= weeks <= 104 else DEFAULT_WEEKS


def _fitted(search: str | None) -> mm.FittedMix | None:
    f = from_url(search)
    return None if f is None else mm.cached_fit(context.reader(), f)


def _card(title: str, value: str, sub: str = "", tip: str = "", card_id: str | None = None) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([
        html.Div(title, className="kpi-title", title=tip),
        html.Div(value, className="kpi-value", id=card_id) if card_id else html.Div(value, className="kpi-value"),
        html.Div(sub, className="kpi-sub"),
    ]), className="kpi-card h-100"), xs=6, md=3, className="mb-3")


def _scope(f: Filters, fitted: mm.FittedMix) -> str:
    studies = f.study or ()
    everything = "All studies together" if f.scope.studies is None else "All your studies together"
    where = f"Study {studies[0]}" if len(studies) == 1 else (
        "Studies " + ", ".join(studies) if studies else everything)
    ignored = mm.ignored_filters(f)
    extra = f" ({', '.join(ignored)} filter not applied)" if ignored else ""
    frame = fitted.frame
    span = f", weeks {frame['week'].iloc[0]} to {frame['week'].iloc[-1]}" if not frame.empty else ""
    return where + span + extra + "."


def _quality(fitted: mm.FittedMix) -> list[dbc.Col]:
    """Fit quality of the leads model."""
    fit = fitted.fit
    r2 = "—" if fit.r2 is None else f"{fit.r2:.2f}"
    mape = "—" if fit.mape_holdout is None else f"{100 * fit.mape_holdout:.0f}%"
    return [
        _card("Fit (R²)", r2, "share of the week-to-week ups and downs of leads the model explains",
              "R2 in sample: 1 = every week explained, 0 = no better than the average week.", "bu-r2"),
        _card("Error on held-out weeks", mape, f"the last {fit.holdout_weeks} weeks, left out of the fit",
              "Mean absolute percentage error on the last weeks, predicted by a fit that did not see them.",
              "bu-mape"),
        _card("Weeks fitted", f"{fit.data.n}", f"{len(fit.channels)} channels with spend"),
        _card("Baseline", f"{fit.baseline_contribution():,.0f}",
              f"of {fit.data.y.sum():,.0f} {fit.outcome} not credited to spend",
              "Outcome explained by open sites, trend and season rather than by spend."),
    ]


def channel_columns(table: pd.DataFrame, unit: str) -> list[dict]:
    one = unit_singular(unit)
    headers = {**CHANNEL_HEADERS, "contribution": f"{one.capitalize()} brought",
               "contribution_low": "80% low", "contribution_high": "80% high",
               "cost_per_outcome": f"Cost per {one}", "marginal_cost": f"Cost of the next {one}"}
    defs = ui.column_defs(table, headers)
    money = "params.value == null ? '—' : '€' + d3.format(',.0f')(params.value)"
    for spec in defs:
        field = spec["field"]
        spec["minWidth"] = 135
        if field == "channel_id":
            spec["hide"] = True
        elif field == "channel":
            spec.update(pinned="left", minWidth=190)
        if field in CHANNEL_TIPS:
            spec["headerTooltip"] = CHANNEL_TIPS[field]
        if field in MONEY:
            spec["valueFormatter"] = {"function": money}
        elif field in ("contribution", "contribution_low", "contribution_high"):
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : d3.format(',.1f')(params.value)"}
        elif field == "leads_brought":
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : d3.format(',.0f')(params.value)"}
        elif field == "randomized_per_lead_pct":
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : d3.format('.2f')(params.value) + '%'"}
        elif field in ("share_pct", "carry_over_pct"):
            spec["valueFormatter"] = {"function": "params.value == null ? '—' : d3.format('.0f')(params.value) + '%'"}
    return defs


def unit_singular(unit: str) -> str:
    return {"randomized patients": "randomized", "leads": "lead"}.get(unit, unit)


def _signed(value: float) -> str:
    """+1.2 / -1.2, and 0.0 rather than -0.0."""
    return "0.0" if abs(value) < 0.05 else f"{value:+,.1f}"


def _curves_figure(fitted: mm.FittedMix, outcome: str) -> go.Figure:
    curves = mm.response_curves(fitted, outcome)
    if curves.empty:
        return _empty("No model.")
    fig = go.Figure()
    palette = px.colors.qualitative.Plotly
    for i, (name, rows) in enumerate(curves.groupby("channel", sort=False)):
        color = palette[i % len(palette)]
        line, dot = rows[~rows["now"]], rows[rows["now"]]
        fig.add_trace(go.Scatter(x=line["pct_of_now"], y=line["weekly_outcome"], mode="lines", name=name,
                                 line={"color": color}, legendgroup=name, customdata=line["spend"],
                                 hovertemplate=name + "<br>€%{customdata:,.0f} per week (%{x:.0f}% of now)"
                                                      " → %{y:.2f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=dot["pct_of_now"], y=dot["weekly_outcome"], mode="markers", legendgroup=name,
                                 marker={"color": color, "size": 9}, showlegend=False, customdata=dot["spend"],
                                 hovertemplate=name + " now: €%{customdata:,.0f} per week → %{y:.2f}"
                                                      "<extra></extra>"))
    fig.update_layout(height=380, margin={"l": 50, "r": 10, "t": 10, "b": 40},
                      xaxis_title="weekly spend as % of today's (100% = now)",
                      yaxis_title=f"{mm.OUTCOMES[outcome]} per week", legend={"orientation": "h", "y": -0.2})
    return fig


def _forecast_figure(sc: mm.Scenario, unit: str) -> go.Figure:
    comp = sc.comparison
    x = np.arange(1, sc.weeks + 1)
    fig = go.Figure()
    if len(comp.plan_weekly_draws):
        low, high = np.percentile(comp.plan_weekly_draws, (10, 90), axis=0)
        fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                 fillcolor="rgba(25,135,84,0.15)", line={"width": 0}, hoverinfo="skip",
                                 name="plan, 80% of refits"))
    fig.add_trace(go.Scatter(x=x, y=comp.current_weekly, mode="lines", name="current budget",
                             line={"color": "#6c757d", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=x, y=comp.plan_weekly, mode="lines", name="planned budget",
                             line={"color": "#198754"}))
    fig.update_layout(height=380, margin={"l": 50, "r": 10, "t": 10, "b": 40},
                      xaxis_title="weeks from now", yaxis_title=f"{unit} per week (expected)",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _empty(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=300)
    return fig


def _prediction_cards(sc: mm.Scenario, unit: str) -> list[dbc.Col]:
    c = sc.comparison
    cards = [
        _card(f"Planned budget: {unit} in {sc.weeks} weeks", f"{c.plan_total:,.1f}",
              f"80% between {c.plan_low:,.1f} and {c.plan_high:,.1f}",
              "Expected total with the planned weekly budget; the range covers the model's "
              "uncertainty and week-to-week chance.", "bu-plan-total"),
        _card(f"Current budget: {unit} in {sc.weeks} weeks", f"{c.current_total:,.1f}",
              f"80% between {c.current_low:,.1f} and {c.current_high:,.1f}", "", "bu-current-total"),
        _card("Difference", _signed(c.difference),
              f"80% between {_signed(c.difference_low)} and {_signed(c.difference_high)}",
              "Planned minus current, by the same model refits (chance cancels out).", "bu-difference"),
    ]
    if sc.target_plan or sc.target_current:
        shift = ""
        if sc.target_plan and sc.target_current:
            days = (sc.target_plan - sc.target_current).days
            shift = ("same date as now" if days == 0 else
                     f"{abs(days)} days {'sooner' if days < 0 else 'later'} than with the current budget")
        value = sc.target_plan.isoformat() if sc.target_plan else "not within 10 years"
        sub = shift
        if sc.target_plan_low and sc.target_plan_high:
            sub += f" (80%: {sc.target_plan_low} to {sc.target_plan_high})"
        cards.append(_card("Target reached (plan)", value, sub,
                           "Randomized to date plus the predicted weekly randomized with the planned "
                           "budget; with the current budget: "
                           + (sc.target_current.isoformat() if sc.target_current else "not within 10 years"),
                           "bu-target"))
    return cards


# ---------------------------------------------------------------- callbacks


@callback(
    Output("bu-scope", "children"), Output("bu-assumes", "children"), Output("bu-fit-status", "children"),
    Output("bu-quality", "children"), Output("bu-warnings", "children"),
    Output("bu-channels", "rowData"), Output("bu-channels", "columnDefs"),
    Output("bu-move-from", "options"), Output("bu-move-from", "value"),
    Output("bu-move-to", "options"), Output("bu-move-to", "value"),
    Output("bu-curves", "figure"), Output("bu-fit-key", "data"),
    Input("url", "search"), Input("bu-outcome", "value"),
)
def fit_view(search: str | None, outcome: str | None) -> tuple:
    """Fit (or take from the cache) the model of the filter's studies, and show what it found."""
    f = from_url(search)
    if f is None:
        return (no_update,) * 13
    outcome = _outcome(outcome)
    con = context.reader()
    fitted = mm.cached_fit(con, f)
    unit = mm.OUTCOMES[outcome]
    # a new key (new filter or data) resets the plan; a new outcome keeps it
    key = no_update if ctx.triggered_id == "bu-outcome" else repr(mm.cache_key(con, f))
    assumes = ASSUMES.format(unit=unit) + (" " + HOW if outcome == "randomized" else "")
    if fitted.fit is None:
        alert = dbc.Alert(f"The model cannot be fitted here: {fitted.error}.", color="warning")
        return (_scope(f, fitted), assumes, "", [], alert, [], [], [], None, [], None,
                _empty("No model."), key)
    fit = fitted.fit
    table = mm.channel_frame(fitted, outcome)
    options = [{"label": fitted.names.get(c, c), "value": c} for c in fit.channels]
    # suggest moving from the biggest weekly budget to the channel whose next one is cheapest
    source = fit.channels[int(np.argmax(fit.current_spend()))]
    cheapest = table[(table["channel_id"] != source) & table["marginal_cost"].notna()] \
        .sort_values("marginal_cost")["channel_id"].tolist()
    target = cheapest[0] if cheapest else next((c for c in fit.channels if c != source), source)
    status = (f"Fitted on {fit.data.n} weeks of leads, with {len(fit.boot)} bootstrap refits for the "
              "intervals.")
    warnings = (dbc.Alert([html.B("Read with care: "), html.Ul([html.Li(w) for w in fit.warnings], className="mb-0")],
                          color="warning", className="py-2") if fit.warnings else None)
    return (_scope(f, fitted), assumes, status, _quality(fitted), warnings, ui.records(table),
            channel_columns(table, unit), options, source, options, target,
            _curves_figure(fitted, outcome), key)


@callback(
    Output("bu-plan", "rowData"), Output("bu-plan-note", "children"), Output("bu-plan-version", "data"),
    Input("bu-fit-key", "data"), Input("bu-move-apply", "n_clicks"), Input("bu-reset", "n_clicks"),
    Input("bu-optimise", "n_clicks"),
    State("bu-plan", "rowData"), State("bu-move-pct", "value"), State("bu-move-from", "value"),
    State("bu-move-to", "value"), State("url", "search"), State("bu-outcome", "value"),
    State("bu-plan-version", "data"),
)
def plan(_key, _move, _reset, _optimise, rows, pct, source, target, search, outcome, version) -> tuple:
    """The plan table: the current budget after a new fit or a reset, a share moved from
    one channel to another, or the optimiser's proposal."""
    fitted = _fitted(search)
    if fitted is None or fitted.fit is None:
        return [], "", (version or 0) + 1
    trigger = ctx.triggered_id
    fresh = mm.plan_rows(fitted)
    if trigger in (None, "bu-fit-key", "bu-reset") or not rows:
        return fresh, "", (version or 0) + 1
    channels = list(fitted.fit.channels)
    budget = mm.plan_vector(fitted, rows)
    if trigger == "bu-move-apply":
        if source not in channels or target not in channels or source == target:
            return no_update, "Choose two different channels to move budget between.", no_update
        from cockpit.analytics.optimise import move_share

        share = min(max(float(pct or 0), 0.0), 100.0)
        budget = move_share(budget, channels.index(source), channels.index(target), share)
        note = (f"Moved {share:g}% of {fitted.names.get(source, source)}'s weekly budget to "
                f"{fitted.names.get(target, target)}.")
    else:
        budget, note = mm.propose(fitted, rows, _outcome(outcome))
    lower, upper = mm.plan_vector(fitted, rows, "min"), mm.plan_vector(fitted, rows, "max")
    out = [{**row, "budget": round(float(b)), "min": round(float(lo)), "max": round(float(hi))}
           for row, b, lo, hi in zip(fresh, budget, lower, upper)]
    return out, note, (version or 0) + 1


def _edited(rows: list[dict] | None, changed) -> list[dict]:
    """The plan rows with the latest cell edit applied (the edit event may arrive before
    the grid's rowData state catches up)."""
    rows = [dict(r) for r in (rows or []) if isinstance(r, dict)]
    changes = changed if isinstance(changed, list) else ([changed] if isinstance(changed, dict) else [])
    for change in changes:
        row_id, col = change.get("rowId"), change.get("colId")
        if col in ("budget", "min", "max"):
            for r in rows:
                if r.get("channel_id") == row_id:
                    r[col] = change.get("value", change.get("newValue"))
    return rows


@callback(
    Output("bu-prediction", "children"), Output("bu-target-note", "children"), Output("bu-forecast", "figure"),
    Input("bu-plan-version", "data"), Input("bu-plan", "cellValueChanged"), Input("bu-weeks", "value"),
    Input("bu-outcome", "value"), State("bu-plan", "rowData"), State("url", "search"),
)
def predict(_version, changed, weeks, outcome, rows, search) -> tuple:
    """Predicted outcome of the plan against the current budget, and the target date."""
    fitted = _fitted(search)
    if fitted is None or fitted.fit is None or not rows:
        return [], "", _empty("No plan yet.")
    outcome = _outcome(outcome)
    rows = _edited(rows, changed if ctx.triggered_id == "bu-plan" else None)
    sc = mm.scenario(fitted, mm.plan_vector(fitted, rows), _weeks(weeks), outcome)
    unit = mm.OUTCOMES[outcome]
    return _prediction_cards(sc, unit), sc.target_note, _forecast_figure(sc, unit)


@callback(Output("bu-channels-download", "data"), Input("bu-channels-export", "n_clicks"),
          State("url", "search"), State("bu-outcome", "value"), prevent_initial_call=True)
def download(_clicks, search, outcome) -> dict:
    f = from_url(search)
    fitted = _fitted(search)
    if f is None or fitted is None:
        return no_update
    table = mm.channel_frame(fitted, _outcome(outcome))
    return export.send(table, f"budget_{_outcome(outcome)}", f)
