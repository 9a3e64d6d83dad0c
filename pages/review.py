"""Weekly review: for leadership, each study's progress against plan, when it will
reach its target and how likely on time, what changed this week; printable."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, clientside_callback, dcc, html, no_update

from cockpit import context, export, ui
from cockpit.filters import Filters, from_url
from cockpit.metrics import review
from cockpit.access import STAFF

dash.register_page(__name__, path="/review", name="Review", title="Weekly review", order=5, roles=STAFF)

HEADERS = {
    "study_id": "Study", "name": "Study name", "phase": "Phase", "target": "Target",
    "randomized_to_date": "Randomized to date", "planned_to_date": "Planned to date",
    "pace_pct": "Pace vs plan", "forecast_date": "Target reached (forecast, 80% interval)",
    "forecast_lo80": "80% interval from", "forecast_hi80": "80% interval to",
    "p_on_time_pct": "Chance on time", "cost_per_randomized_to_date": "Cost per randomized to date",
    "randomized_this_week": "Randomized this week", "randomized_week_before": "Randomized week before",
    "leads_this_week": "Leads this week", "leads_week_before": "Leads week before",
    "leads_change_pct": "Leads change", "alerts_firing": "Alerts firing",
}
FORMATS = {"target": "int", "randomized_to_date": "int", "planned_to_date": "dec1", "pace_pct": "pct1",
           "p_on_time_pct": "pct1", "cost_per_randomized_to_date": "money",
           "randomized_this_week": "int", "randomized_week_before": "int", "leads_this_week": "int",
           "leads_week_before": "int", "alerts_firing": "int"}
RED = "#b02a37"
BLUE, BAND80, BAND95 = "#0d6efd", "rgba(13,110,253,.25)", "rgba(13,110,253,.12)"
# shown inside other columns (interval in the forecast, week before beside this week,
# the id in the study's name) or explained by the pace; the CSV keeps every column
HIDDEN = {"study_id", "forecast_lo80", "forecast_hi80", "planned_to_date", "randomized_week_before",
          "leads_week_before", "leads_change_pct"}
NOT_APPLIED = ("site", "segment", "channel")


def layout(**_query) -> html.Div:
    table = ui.table_block("rv-table", "Studies")
    grid = table.children[1]
    grid.getRowStyle = {"styleConditions": [
        {"condition": f"params.data.study_id === '{review.TOTAL_ID}'",
         "style": {"fontWeight": 700, "backgroundColor": "#eef1f4"}}]}
    grid.dashGridOptions = {**grid.dashGridOptions, "suppressColumnVirtualisation": True}
    return html.Div([
        html.Div([
            html.H3("Weekly review", className="mb-0"),
            dbc.Button("Print", id="rv-print", size="sm", color="primary", className="ms-auto no-print"),
        ], className="d-flex align-items-center mb-2"),
        html.Div(id="rv-asof", className="fw-semibold mb-1"),
        html.P(
            "This week = the 7 days ending on the latest day with data; the week before = the 7 "
            "days before. Pace vs plan = randomized to date / where a straight line from study "
            "start to the planned end would be (100% = on plan). Forecasts are per study over "
            "all its channels and sites (Poisson-Gamma recruitment model): the middle date the "
            "target is reached, with an 80% interval, and the chance of reaching it by the planned "
            "end. Study and phase filters apply; date, site, segment and channel filters do not. "
            "Red: behind plan, or under a 50% chance on time. Hover a column title for its definition.",
            className="page-note",
        ),
        html.Div(id="rv-filter-note", className="page-note text-danger"),
        table,
        html.Div([
            html.H5("Selected study", className="mb-0 me-3"),
            html.Div(dcc.Dropdown(id="rv-study", clearable=False, placeholder="Study"),
                     style={"minWidth": "320px"}),
        ], className="d-flex align-items-center mb-2 rv-study-pick"),
        html.Div(id="rv-summary", className="mb-2"),
        ui.graph("rv-chart"),
        html.Div(id="rv-warnings", className="page-note"),
        html.H5("The three biggest changes of the week", className="mt-3"),
        html.P(
            f"Largest relative changes against the week before among leads, eligible, consented "
            f"and randomized, for the study, each of its channels and each of its sites; only "
            f"rows with at least {review.MIN_VOLUME} in the week before count (smaller numbers "
            f"swing by chance).",
            className="page-note",
        ),
        html.Ul(id="rv-changes"),
        dcc.Store(id="rv-printed"),
    ], className="review-page")


# ---------------------------------------------------------------- formatting

def grid_columns(frame: pd.DataFrame) -> list[dict]:
    """Readable titles, formats, the forecast interval inside its column, red where a
    study is behind plan or unlikely to finish on time; fixed order (no sorting), so
    that the total stays last."""
    defs = ui.column_defs(frame, HEADERS, FORMATS)
    for spec in defs:
        field = spec["field"]
        spec["sortable"] = False
        spec["filter"] = False
        if field in HIDDEN:
            spec["hide"] = True
        if spec.get("type") == "rightAligned":
            spec["minWidth"] = 80
        if field == "phase":
            spec.update({"minWidth": 80, "maxWidth": 90})
        if field == "forecast_date":
            spec["minWidth"] = 300
            spec["valueFormatter"] = {"function": (
                f"params.value == null ? (params.data.study_id === '{review.TOTAL_ID}' ? '' : 'no forecast') : "
                "params.value + ' (' + params.data.forecast_lo80 + ' to ' + params.data.forecast_hi80 + ')'")}
        if field == "randomized_this_week":
            spec["headerName"] = "Randomized this week (week before)"
            spec["minWidth"] = 110
            spec["valueFormatter"] = {"function": "params.value + ' (' + params.data.randomized_week_before + ')'"}
        if field == "leads_this_week":
            spec["headerName"] = "Leads this week (week before, change)"
            spec["minWidth"] = 150
            spec["valueFormatter"] = {"function": (
                "params.value + ' (' + params.data.leads_week_before + (params.data.leads_change_pct == null ? '' "
                ": ', ' + (params.data.leads_change_pct > 0 ? '+' : '') + d3.format('.0f')(params.data.leads_change_pct) "
                "+ '%') + ')'")}
        if field == "pace_pct":
            spec["cellStyle"] = _red_when("params.value != null && params.value < 100")
        if field == "p_on_time_pct":
            spec["cellStyle"] = _red_when("params.value != null && params.value < 50")
        if field == "alerts_firing":
            spec["cellStyle"] = _red_when("params.value > 0")
        if field == "name":
            spec.update({"pinned": "left", "minWidth": 230, "headerName": "Study", "tooltipField": "name"})
    return defs


def _red_when(condition: str) -> dict:
    return {"styleConditions": [{"condition": condition, "style": {"color": RED, "fontWeight": 600}}]}


def forecast_figure(history: pd.DataFrame, fc: dict) -> dict:
    """Cumulative randomized so far (solid), the forecast median (dashed) with its 80% and
    95% bands, the target (horizontal) and the planned end (vertical)."""
    curve = pd.DataFrame(fc["curve"])
    dates = curve["date"].tolist()
    data = [*_band(curve, dates, "lo95", "hi95", BAND95, "95% band"),
            *_band(curve, dates, "lo80", "hi80", BAND80, "80% band"),
            {"type": "scatter", "x": dates, "y": curve["median"].tolist(), "mode": "lines",
             "name": "forecast (median)", "line": {"color": BLUE, "dash": "dash"}},
            {"type": "scatter", "x": np.datetime_as_string(history["day"].to_numpy()).tolist(),
             "y": history["cumulative"].tolist(), "mode": "lines", "name": "randomized so far",
             "line": {"color": "#212529", "width": 2.5, "shape": "hv"}}]
    target, planned_end = fc["target"], fc["planned_end"]
    return ui.figure(data, {
        "shapes": [
            {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": target, "y1": target, "yref": "y",
             "line": {"color": RED, "dash": "dot"}},
            # a shape plus its own label: vline annotations misbehave on date axes
            {"type": "line", "x0": planned_end, "x1": planned_end, "y0": 0, "y1": 1, "yref": "paper",
             "line": {"color": "#6c757d", "dash": "dot"}},
        ],
        "annotations": [
            {"text": f"target {target}", "showarrow": False, "x": 0, "xanchor": "left", "xref": "x domain",
             "y": target, "yanchor": "bottom", "yref": "y"},
            {"x": planned_end, "y": 1, "yref": "paper", "text": "planned end", "showarrow": False,
             "yanchor": "bottom", "font": {"color": "#6c757d"}},
        ],
        "height": 420, "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
        "yaxis": {"title": {"text": "cumulative randomized"}}, "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.15}})


def _band(curve: pd.DataFrame, dates: list[str], lo: str, hi: str, colour: str, name: str) -> list[dict]:
    """The upper edge of a band (no legend) and the lower edge filled up to it."""
    return [{"type": "scatter", "x": dates, "y": curve[hi].tolist(), "mode": "lines", "line": {"width": 0},
             "showlegend": False, "hoverinfo": "skip"},
            {"type": "scatter", "x": dates, "y": curve[lo].tolist(), "mode": "lines", "line": {"width": 0},
             "fill": "tonexty", "fillcolor": colour, "name": name, "hoverinfo": "skip"}]


def summary_line(row: dict, fc: dict | None) -> str:
    """One sentence on the selected study, in leadership's words."""
    if fc is None:
        return f"{row['study_id']}: no forecast yet ({row.get('why') or 'not enough data'})."
    dates = {k: _day(v) for k, v in fc["target_date"].items()}
    if fc["remaining"] == 0:
        return f"{row['study_id']} has reached its target of {fc['target']:,}."
    needed = fc.get("sites_needed_80")
    extra = ""
    if needed:
        extra = f" About {needed} more site(s) at today's average rate would lift the chance on time to 80%."
    return (f"{row['study_id']}: {fc['randomized']:,} of {fc['target']:,} randomized. Target expected "
            f"{dates['median']} (80% interval {dates['q10']} to {dates['q90']}); planned end "
            f"{_day(fc['planned_end'])}; chance on time {100 * fc['p_on_time']:.0f}%.{extra}")


def _day(iso: str | None) -> str:
    """'2027-10-12' as '12 Oct 2027'."""
    return "—" if not iso else pd.Timestamp(iso).strftime("%-d %b %Y")


# ---------------------------------------------------------------- callbacks


@callback(
    Output("rv-asof", "children"), Output("rv-filter-note", "children"),
    Output("rv-table", "rowData"), Output("rv-table", "columnDefs"),
    Output("rv-study", "options"), Output("rv-study", "value"),
    Input("url", "search"), State("rv-study", "value"),
)
def refresh(search, chosen):
    """The study table, the choice of study and the as-of line."""
    f = from_url(search)
    if f is None:
        return [no_update] * 6
    table, as_of = review.snapshot(context.reader(), f)
    this_week, before = review.weeks(as_of) if as_of else (None, None)
    asof_text = (f"As of {as_of:%d %b %Y} · this week {this_week[0]:%d %b} to {this_week[1]:%d %b}, "
                 f"week before {before[0]:%d %b} to {before[1]:%d %b}" if as_of else "No data loaded yet")
    ignored = [dim for dim in NOT_APPLIED if getattr(f, dim)] + (["dates"] if f.start or f.end else [])
    note = (f"Not applied on this page: {', '.join(ignored)} filter." if ignored else "")
    studies = [(s, n) for s, n in zip(table["study_id"].tolist(), table["name"].tolist()) if s != review.TOTAL_ID]
    options = [{"label": f"{s} · {n}", "value": s} for s, n in studies]
    ids = [s for s, _ in studies]
    value = chosen if chosen in ids else (ids[0] if ids else None)
    return asof_text, note, ui.records(table), _shown_columns(table), options, value


_shown_columns = ui.by_shape(grid_columns)


@callback(
    Output("rv-summary", "children"), Output("rv-chart", "figure"), Output("rv-warnings", "children"),
    Output("rv-changes", "children"),
    Input("rv-study", "value"),
)
def study_detail(study_id):
    """Forecast chart and biggest changes of the selected study."""
    if not study_id:
        return "", ui.figure([], {}), "", [html.Li("No study selected.")]
    con = context.reader()
    fc = review.cached_forecast(con, study_id)
    as_of = review.review_day(con)
    if fc is None:
        why = review.forecast_failure(con, study_id)
        summary, fig, warnings = summary_line({"study_id": study_id, "why": why}, None), ui.figure([], {}), ""
    else:
        summary = summary_line({"study_id": study_id}, fc)
        fig = forecast_figure(review.randomized_history(con, study_id, as_of), fc)
        warnings = " ".join(fc["warnings"])
    changes = review.biggest_changes(con, study_id, as_of)
    items = ([html.Li(review.describe_change(r)) for r in changes.to_dict("records")]
             or [html.Li(f"No change this week on a row with at least {review.MIN_VOLUME} the week before.")])
    return summary, fig, warnings, items


@callback(Output("rv-table-download", "data"), Input("rv-table-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download(_clicks, search):
    f = from_url(search) or Filters()
    table = review.review_table(context.reader(), f)
    return export.send(table, "weekly_review", review.study_scope(f))


clientside_callback(
    "function(n) { if (n) { window.print(); } return n || 0; }",
    Output("rv-printed", "data"), Input("rv-print", "n_clicks"), prevent_initial_call=True,
)
