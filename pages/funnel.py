"""Funnel: where the period's leads went, where they leaked, and how fast they were
randomized (Kaplan-Meier by channel or segment: time to enrolment, or the share of all
leads randomized over time)."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from plotly.colors import qualitative
from dash import Input, Output, State, callback, ctx, html, no_update

from cockpit import cache, context, export, ui
from cockpit.filters import FilterError, Filters
from cockpit.metrics import funnel
from cockpit.access import ROLES

dash.register_page(__name__, path="/funnel", name="Funnel", order=20, roles=ROLES)

CARDS = [
    ("fu-leads", "Leads (cohort)", "leads"),
    ("fu-randomized", "Randomized so far", "randomized_so_far"),
    ("fu-conversion", "Lead to randomized", "lead_to_randomized_pct"),
    ("fu-within90", "Randomized within 90 days", "pct_randomized_90d"),
    ("fu-median", "Median days to randomization", "median_days_to_randomization"),
    ("fu-typical", "90% randomized within", "typical_days_to_randomization"),
]
HEADERS = {
    "label": "Stage", "reached": "Reached", "conversion_pct": "% of leads",
    "step_conversion_pct": "% of stage before", "exit": "Exit", "left_after": "Left after",
    "reason": "Reason", "persons": "Persons", "pct_of_exit": "% of this exit",
    "pct_of_leads": "% of leads", "from_stage": "From", "to_stage": "To",
    "median_days": "Median days", "p25_days": "25th pct days", "p75_days": "75th pct days",
    "group": "Group id", "group_name": "Group", "leads": "Leads", "randomized_so_far": "Randomized",
    "censored": "Censored", "pct_randomized_30d": "By 30 days", "pct_randomized_60d": "By 60 days",
    "pct_randomized_90d": "By 90 days", "median_days_to_randomization": "Median days (KM)",
    "km_leads": "Leads followed", "open_leads": "Still open (censored)",
    "exited": "Left: exit recorded", "stale": "Left: stalled",
    "median_ci_low": "95% CI low", "median_ci_high": "95% CI high",
    "median_days_randomized_only": "Median days, randomized only",
}
# hover texts of columns whose meaning depends on the table (the rest: KPI_DEFINITIONS)
TIPS = {
    "exit": "How the person left the funnel; 'Still open or stalled': reached the stage, went "
    "no further and has no exit recorded (in progress or silently lost).",
    "left_after": "The last stage the person reached before leaving.",
    "reason": "The coded reason recorded with the exit (never free text).",
    "persons": "Persons of the period's leads (the cohort) in this row.",
    "p25_days": "25th percentile of the days between the two stages.",
    "p75_days": "75th percentile of the days between the two stages.",
    "exited": "Leads of the period that left the funnel with an exit recorded (ineligible, not "
    "reachable, declined, screen fail, withdrew before randomization): not part of the time to "
    "enrolment; the drop-off table shows why they left.",
    "stale": f"Leads of the period not randomized, without an exit, and without any step in the "
    f"{funnel.STALE_DAYS} days before the latest day with data, or with a pre-screener started and "
    f"not passed for {funnel.PRESCREEN_STALE_DAYS} days: taken as lost, not open, and not part of "
    f"the time to enrolment.",
}
PERCENT = {"conversion_pct", "step_conversion_pct", "pct_of_exit", "pct_of_leads",
           "pct_randomized_30d", "pct_randomized_60d", "pct_randomized_90d"}
HIDDEN = {"group"}  # ids: in the export, not on screen
# with more groups than this the bands would hide each other: lighter shading
MANY_GROUPS = 4
DAYS = {"median_days", "p25_days", "p75_days", "median_days_to_randomization", "median_ci_low",
        "median_ci_high", "median_days_randomized_only"}
# a KM median or limit that is missing was not reached (the curve stays below 50%)
NOT_REACHED = {"median_days_to_randomization", "median_ci_low", "median_ci_high"}
# cell formats (keys of ``ui.CELL_FORMATS``); other numbers: thousands separated
FORMATS = {**{field: "dec1_not_reached" if field in NOT_REACHED else "dec1" for field in DAYS},
           **{field: "pct1" for field in PERCENT}, "reason": "code"}
KM_BY = [("channel", "Channel"), ("segment", "Segment")]
# two questions, two curves: how fast the leads that enrol get there, and what share of
# all leads is randomized by a given day
KM_VIEWS = [
    ("speed", "Speed: time to enrolment of the leads that enrol or still can"),
    ("yield", "Yield over time: share of all leads randomized by day d"),
]
TABLES = ("fu-stages", "fu-gaps", "fu-dropoff", "fu-km-summary", "fu-risk")


def layout(**_query) -> html.Div:
    return html.Div([
        html.H3("Funnel"),
        html.P(
            "The cohort is the leads created in the period of the filter bar; each is followed "
            "through the funnel up to the latest day with data, whenever its later steps happened "
            "(cohort conversion). A person who reached a later step counts as having passed the "
            "earlier ones. Hover a title for its definition.",
            className="page-note",
        ),
        html.Div(id="fu-maturity", className="mb-2"),
        dbc.Row([ui.kpi_card(cid, title, key) for cid, title, key in CARDS]),
        dbc.Row([
            dbc.Col([html.H5("How far the period's leads got"), ui.graph("fu-funnel")], lg=6),
            dbc.Col([
                ui.table_block("fu-stages", "Stage conversion"),
                ui.table_block("fu-gaps", "Days between stages (persons who made the step)"),
            ], lg=6),
        ]),
        ui.table_block("fu-dropoff", "Where leads left the funnel, and why"),
        html.H5("Time to enrolment, and yield over time (Kaplan-Meier)", className="mt-2"),
        dbc.Row([
            dbc.Col([html.Span("Curves by ", className="me-2 page-note"),
                     dbc.RadioItems(id="fu-km-by", options=[{"label": l, "value": v} for v, l in KM_BY],
                                    value="channel", inline=True)], md="auto", className="d-flex"),
            dbc.Col(dbc.RadioItems(id="fu-km-view",
                                   options=[{"label": l, "value": v} for v, l in KM_VIEWS],
                                   value="speed", inline=True), md="auto"),
        ], className="mb-1 g-4"),
        html.P(id="fu-km-note", className="page-note"),
        ui.graph("fu-km"),
        ui.table_block("fu-risk", "Number at risk: leads not yet randomized and still followed, "
                                  "by days since the lead"),
        ui.table_block("fu-km-summary", "Per group, for the curves chosen above"),
    ])


# ---------------------------------------------------------------- frames shown (and exported)

def stages_frame(con, f: Filters) -> pd.DataFrame:
    """The stage table (the internal stage key left out)."""
    return funnel.stage_conversion(con, f).drop(columns=["stage"])


def km_key(by: str | None) -> str:
    """The grouping chosen, from a fixed list (anything else: channel)."""
    return by if by in dict(KM_BY) else "channel"


def km_view(view: str | None) -> str:
    """The curves chosen, from a fixed list (anything else: time to enrolment)."""
    return view if view in dict(KM_VIEWS) else "speed"


def km_frames(con, f: Filters, by: str | None, view: str | None) -> funnel.EnrolmentCurves:
    """Curves, number at risk and per-group summary for the radio choices."""
    return funnel.enrolment_curves(con, f, by=km_key(by), view=km_view(view))


def km_file(by: str | None, view: str | None, prefix: str = "") -> str:
    """Export name of a Kaplan-Meier table: the question and the grouping in it."""
    question = "time_to_enrolment" if km_view(view) == "speed" else "share_randomized_over_time"
    return f"{prefix}{question}_by_{km_key(by)}"


# ---------------------------------------------------------------- formatting

def grid_columns(frame: pd.DataFrame) -> list[dict]:
    """Readable titles, percent and day formats; definitions on hover from ``ui.column_defs``."""
    defs = ui.column_defs(frame, HEADERS, FORMATS, numbers="int")
    for spec in defs:
        field = spec["field"]
        if field in TIPS:
            spec.setdefault("headerTooltip", TIPS[field])
        if spec.get("type") == "rightAligned":
            spec["minWidth"] = 120
        if field.startswith("day_"):
            days = field.removeprefix("day_")
            spec["headerName"] = f"{days} days"
            spec["headerTooltip"] = (f"Leads followed at least {days} days after their lead and not "
                                     f"randomized before: the number the curve rests on there.")
        if field in ("label", "exit", "group_name", "from_stage"):
            spec["pinned"] = "left"
            spec["minWidth"] = 170
        if field in ("to_stage", "left_after", "reason"):
            spec["minWidth"] = 160
        if field in HIDDEN:
            spec["hide"] = True
    return defs


_shown_columns = ui.by_shape(grid_columns)


def _pct(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.1f}%"


def _days(value, missing: str = "not reached") -> str:
    return missing if value is None or pd.isna(value) else f"{value:,.0f} days"


_PALETTE = qualitative.Plotly


def _funnel_figure(stages: pd.DataFrame) -> dict:
    """Funnel of the cohort; the numbers sit in the stage labels, so that narrow bars
    stay readable."""
    label, reached = stages["label"].tolist(), stages["reached"].tolist()
    conversion, step = stages["conversion_pct"].tolist(), stages["step_conversion_pct"].tolist()
    labels = [f"<b>{lab}</b><br>{n:,} · {_pct(c)} of leads" for lab, n, c in zip(label, reached, conversion)]
    hover = [f"{lab}: {n:,} persons<br>{_pct(c)} of leads" + (f", {_pct(s)} of stage before" if i else "")
             for i, (lab, n, c, s) in enumerate(zip(label, reached, conversion, step))]
    steps = ["", *[f"{_pct(s)} of stage before" for s in step[1:]]]
    return ui.figure([{"type": "funnel", "y": labels, "x": reached, "text": steps, "textinfo": "text",
                     "textposition": "auto", "marker": {"color": "#3d8bfd"},
                     "connector": {"fillcolor": "#dbe7fb"}, "hovertext": hover, "hoverinfo": "text"}],
                   {"margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "height": 460})


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _steps(x: list, y: list) -> tuple[list, list]:
    """Coordinates of a right-continuous step function (a KM curve)."""
    xs, ys = [], []
    for i, (xi, yi) in enumerate(zip(x, y)):
        if i:
            xs.append(xi)
            ys.append(ys[-1])
        xs.append(xi)
        ys.append(yi)
    return xs, ys


def _legend_name(name: str, row: dict, view: str) -> str:
    """The group with its median time to enrolment (speed) or its share of leads
    randomized by 90 days (yield)."""
    if view == "yield":
        return f"{name} · {_pct(row['pct_randomized_90d'])} by 90 days"
    median = row["median_days_to_randomization"]
    if median is not None and not pd.isna(median):
        return f"{name} · median {median:.0f} days"
    return f"{name} · median not reached ({row['randomized_so_far']:,} of {row['km_leads']:,} randomized)"


def _km_figure(km: funnel.EnrolmentCurves) -> dict:
    """Per group, the curve with its 95% band (two invisible lines, filled between)."""
    curves = km.curves
    summary = _rows_by_group(km.summary, ["pct_randomized_90d"] if km.view == "yield" else
                             ["median_days_to_randomization", "randomized_so_far", "km_leads"])
    points: dict[str, list[tuple]] = {}
    for point in zip(curves["group"].tolist(), curves["group_name"].tolist(), curves["days"].tolist(),
                     curves["pct_randomized"].tolist(), curves["pct_low"].tolist(),
                     curves["pct_high"].tolist()):
        points.setdefault(point[0], []).append(point)
    alpha = 0.15 if len(points) <= MANY_GROUPS else 0.05
    data = []
    for i, group in enumerate(sorted(points)):
        color = _PALETTE[i % len(_PALETTE)]
        _, names, days, est, low, high = zip(*points[group])
        # where the band is undefined (everyone randomized) it collapses onto the estimate
        low = [e if v != v else v for v, e in zip(low, est)]
        high = [e if v != v else v for v, e in zip(high, est)]
        x, y_low = _steps(days, low)
        _, y_high = _steps(days, high)
        _, y = _steps(days, est)
        name = names[0]
        data += [
            {"type": "scatter", "x": x, "y": y_low, "mode": "lines", "line": {"width": 0},
             "showlegend": False, "legendgroup": group, "hoverinfo": "skip"},
            {"type": "scatter", "x": x, "y": y_high, "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "fillcolor": _rgba(color, alpha), "showlegend": False, "legendgroup": group, "hoverinfo": "skip"},
            {"type": "scatter", "x": x, "y": y, "mode": "lines",
             "name": _legend_name(name, summary[group], km.view), "legendgroup": group,
             "line": {"color": color, "width": 2},
             "hovertemplate": f"{name}: %{{y:.1f}}% randomized by day %{{x}}<extra></extra>"},
        ]
    ytitle = ("% randomized (leads that enrol or still can)" if km.view == "speed"
              else "% of all leads randomized")
    return ui.figure(data, {
        "margin": {"l": 50, "r": 10, "t": 10, "b": 40}, "height": 420,
        "xaxis": {"title": {"text": "days since the lead"}, "range": [0, km.horizon_days]},
        "yaxis": {"title": {"text": ytitle}, "rangemode": "tozero"},
        "legend": {"orientation": "v", "x": 1.01, "y": 1, "title": {"text": "click to hide"}}})


def _rows_by_group(summary: pd.DataFrame, columns: list[str]) -> dict[str, dict]:
    """Group -> its row of a Kaplan-Meier summary, the named columns only."""
    values = [summary[col].tolist() for col in columns]
    return {group: dict(zip(columns, row)) for group, *row in zip(summary["group"].tolist(), *values)}


def _maturity_note(m: dict):
    if m["too_young"]:
        return dbc.Alert(m["message"], color="warning", className="mb-0")
    if m["too_young"] is None:
        return dbc.Alert(m["message"], color="info", className="mb-0") if m["leads"] else None
    return html.Div(
        f"Cohort old enough to judge: {m['pct_young']}% of its {m['leads']:,} leads are younger than "
        f"{m['typical_days']} days, the time within which 90% of randomizations happen "
        f"(data up to {m['last_day']}).", className="page-note")


def _km_note(km: funnel.EnrolmentCurves, end) -> str:
    """What the curves measure, and for time to enrolment which leads are not in it."""
    band = "Shaded: 95% confidence band (Greenwood, log-log). Click a legend entry to hide a group."
    if km.view == "yield":
        return (f"A different question from time to enrolment: yield over time, not speed. Every "
                f"lead of the period stays in: leads not randomized (open or out of the funnel) "
                f"count as not randomized up to the latest day with data ({end}). The curve is the "
                f"share of all leads randomized by each day since the lead. {band}")
    total = _rows_by_group(km.summary, [funnel.EXITED, funnel.STALE]).get(funnel.ALL_LEADS)
    exited, stale = (int(total[c]) if total else 0 for c in (funnel.EXITED, funnel.STALE))
    return (f"Days from lead to randomization of the leads that enrol or still can: randomized leads, "
            f"and open leads (no exit, a step within the last {funnel.STALE_DAYS} days, the pre-screener "
            f"passed or started within {funnel.PRESCREEN_STALE_DAYS} days), censored at "
            f"the latest day with data ({end}). {exited + stale:,} leads left the funnel and are not "
            f"part of this curve; see drop-off ({exited:,} with an exit recorded, {stale:,} stalled). "
            f"The median is 'not reached' while fewer than half "
            f"of the leads followed are randomized; the median of the randomized only then tells the "
            f"speed. {band}")


# ---------------------------------------------------------------- callbacks

# the parts of the page: cards, cohort note, funnel chart and the stage, gap and drop-off
# tables; and the Kaplan-Meier curves with their tables; with the inputs whose change alone
# redraws the part
PARTS: dict[str, set[str]] = {"funnel": set(), "curves": {"fu-km-by.value", "fu-km-view.value"}}
FUNNEL_OUTPUTS = len(CARDS) + 8


def parts_to_draw(changed: set[str]) -> set[str]:
    """The parts of the page to draw for the inputs that changed (``ui.parts_to_draw``)."""
    return ui.parts_to_draw(PARTS, changed)


@callback(
    [Output(cid, "children") for cid, _, _ in CARDS]
    + [Output("fu-maturity", "children"), Output("fu-funnel", "figure")]
    + [Output(t, prop) for t in ("fu-stages", "fu-gaps", "fu-dropoff") for prop in ("rowData", "columnDefs")]
    + [Output("fu-km", "figure"), Output("fu-km-note", "children"),
       Output("fu-risk", "rowData"), Output("fu-risk", "columnDefs"),
       Output("fu-km-summary", "rowData"), Output("fu-km-summary", "columnDefs")],
    Input("url", "search"), Input("fu-km-by", "value"), Input("fu-km-view", "value"),
)
def refresh(search, by, view):
    """The whole page on a change of filter, in one request; a change of the curves'
    grouping or question redraws the curves and their tables only."""
    return page_outputs(search, by, view, parts_to_draw(set(ctx.triggered_prop_ids)))


def page_outputs(search: str | None, by: str | None, view: str | None,
                 parts: set[str] = frozenset(PARTS)) -> list:
    """The outputs of ``refresh`` (``no_update`` for a part not in ``parts``): cards,
    cohort note, funnel chart, stage, gap and drop-off tables; then Kaplan-Meier chart,
    its note, number at risk and per-group summary by channel or segment."""
    out = [no_update] * (FUNNEL_OUTPUTS + 6)
    try:
        f = Filters.from_query(search)
    except FilterError:
        return out
    con = context.reader()
    if "funnel" in parts:
        numbers = cache.cached(context.store(), funnel.snapshot, f, by=km_key(by), view=km_view(view))
        out[:FUNNEL_OUTPUTS] = _funnel_outputs(numbers)
        km = numbers.curves
    elif "curves" in parts:
        km = km_frames(con, f, by, view)
    if "curves" in parts:
        out[FUNNEL_OUTPUTS:] = [_km_figure(km), _km_note(km, km.latest_day),
                                ui.records(km.at_risk), _shown_columns(km.at_risk),
                                ui.records(km.summary), _shown_columns(km.summary)]
    return out


def _funnel_outputs(numbers: funnel.Snapshot) -> list:
    """Cards, cohort warning, funnel chart, stage, gap and drop-off tables."""
    stages = numbers.stages.drop(columns=["stage"])
    speed, share, maturity = numbers.speed, numbers.share, numbers.maturity
    reached, conversion = stages["reached"].tolist(), stages["conversion_pct"].tolist()
    cards = [
        ui.fmt_int(reached[0]), ui.fmt_int(reached[-1]),
        _pct(conversion[-1]), _pct(share["pct_randomized_90d"]),
        _days(speed["median_days_to_randomization"]),
        _days(maturity["typical_days"], missing="—"),
    ]
    tables = []
    for frame in (stages, numbers.gaps, numbers.dropoff):
        tables += [ui.records(frame), _shown_columns(frame)]
    return [*cards, _maturity_note(maturity), _funnel_figure(stages), *tables]


def _send(frame: pd.DataFrame, name: str, f: Filters):
    return export.send(frame, name, f)


@callback(Output("fu-stages-download", "data"), Input("fu-stages-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_stages(_clicks, search):
    f = Filters.from_query(search)
    return _send(stages_frame(context.reader(), f), "funnel_stages", f)


@callback(Output("fu-gaps-download", "data"), Input("fu-gaps-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_gaps(_clicks, search):
    f = Filters.from_query(search)
    return _send(funnel.stage_gaps(context.reader(), f), "funnel_days_between_stages", f)


@callback(Output("fu-dropoff-download", "data"), Input("fu-dropoff-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_dropoff(_clicks, search):
    f = Filters.from_query(search)
    return _send(funnel.dropoff_reasons(context.reader(), f), "funnel_dropoff_reasons", f)


@callback(Output("fu-risk-download", "data"), Input("fu-risk-export", "n_clicks"),
          State("url", "search"), State("fu-km-by", "value"), State("fu-km-view", "value"),
          prevent_initial_call=True)
def download_risk(_clicks, search, by, view):
    f = Filters.from_query(search)
    km = km_frames(context.reader(), f, by, view)
    return _send(km.at_risk, km_file(by, view, prefix="number_at_risk_"), f)


@callback(Output("fu-km-summary-download", "data"), Input("fu-km-summary-export", "n_clicks"),
          State("url", "search"), State("fu-km-by", "value"), State("fu-km-view", "value"),
          prevent_initial_call=True)
def download_km_summary(_clicks, search, by, view):
    f = Filters.from_query(search)
    km = km_frames(context.reader(), f, by, view)
    return _send(km.summary, km_file(by, view), f)
