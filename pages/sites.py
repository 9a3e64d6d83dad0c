"""Sites: which sites enrol at the pace the target needs, which never enrolled, which
are slow to call their leads back, and where screening fails."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, html, no_update

from cockpit import cache, context, export, ui
from cockpit.filters import FilterError, Filters
from cockpit.metrics import sites
from cockpit.access import ROLES

dash.register_page(__name__, path="/sites", name="Sites", order=35, roles=ROLES)

CARDS = [
    ("si-active", "Active sites", "sites_active"),
    ("si-nonenrolling", "Non-enrolling sites", "non_enrolling"),
    ("si-slow", "Slow to contact leads", "slow_contact"),
    ("si-rate", "Randomized per site-month", "randomized_per_site_month"),
    ("si-onpace", "Sites at the needed pace", "sites_on_pace"),
]
HEADERS = {
    "rank": "Rank", "site_id": "Site id", "site_name": "Site", "study_id": "Study",
    "country": "Country", "activation_date": "Activated", "months_active": "Months active",
    "status": "Status", "randomized": "Randomized", "site_months": "Site-months",
    "randomized_per_site_month": "Randomized per site-month", "needed_pace": "Needed pace",
    "pct_of_needed_pace": "% of needed pace", "planned_pace": "Planned pace",
    "randomized_since_activation": "Randomized since activation", "non_enrolling": "Non-enrolling",
    "leads": "Leads", "to_contact": "Leads to call",
    "median_working_days_to_contact": "Median working days to contact",
    "pct_contacted_within_2wd": "% reached within 2 working days",
    "waiting_for_contact": "Waiting for a call", "slow_contact": "Slow contact",
    "screened": "Screened", "screen_failed": "Screen failed", "screen_fail_rate": "Screen-fail rate",
}
PERCENT = {"pct_of_needed_pace": 0, "pct_contacted_within_2wd": 1, "screen_fail_rate": 1}
DECIMALS = {"months_active": 1, "site_months": 1, "randomized_per_site_month": 2,
            "needed_pace": 2, "planned_pace": 2, "median_working_days_to_contact": 1}
# cell formats (keys of ``ui.CELL_FORMATS``); other numbers: thousands separated
FORMATS = {"non_enrolling": "yes", "slow_contact": "yes",
           **{field: f"dec{places}" for field, places in DECIMALS.items()},
           **{field: f"pct{places}" for field, places in PERCENT.items()}}
# colours of the highlighting (Bootstrap's danger / warning tints), also used by the chart
RED, RED_BG = "#dc3545", "#f8d7da"
ORANGE, ORANGE_BG = "#fd7e14", "#ffe5d0"
BLUE, LIGHT_BLUE, GREY = "#3d8bfd", "#9ec5fe", "#adb5bd"
MANY_SITES = 30  # above this the chart shows site ids only
TIPS = {"status": "ok; non-enrolling (active, nobody randomized since activation); slow contact "
        "(median over 2 working days to first contact); or not yet active."}
SLOW_CELLS = {"median_working_days_to_contact", "pct_contacted_within_2wd", "waiting_for_contact"}


def layout(**_query) -> html.Div:
    table = ui.table_block("si-table", "Site ranking")
    grid = table.children[1]
    # a non-enrolling site's whole row is tinted; not-yet-active sites are greyed out
    grid.getRowStyle = {"styleConditions": [
        {"condition": "params.data.non_enrolling", "style": {"backgroundColor": RED_BG}},
        {"condition": "params.data.status === 'not yet active'", "style": {"color": "#999"}},
    ]}
    return html.Div([
        html.H3("Sites"),
        html.P(
            "Enrolment rate = randomized in the period / months the site was active in the period. "
            "The needed pace is what every active site of the study must randomize per month from "
            "now on to reach the target by the planned end: (target - randomized so far) / (active "
            "sites x months left). Contact times count working days (Monday to Friday) from the "
            "lead to the site's first contact. Channel and segment filters restrict the persons "
            "counted; 'non-enrolling' is about the site, over all its data. Hover a title for its "
            "definition; click a column title to sort.",
            className="page-note",
        ),
        dbc.Row([ui.kpi_card(cid, title, key) for cid, title, key in CARDS]),
        html.H5("Randomized per site-month against the pace the target needs"),
        ui.graph("si-pace"),
        html.Div([
            html.Span("Highlighted: ", className="me-2"),
            html.Span("non-enrolling site (active, nobody randomized since activation)",
                      className="px-2 me-2", style={"backgroundColor": RED_BG}),
            html.Span(f"slow contact (median over {sites.CONTACT_STANDARD_WORKING_DAYS} working days "
                      f"on at least {sites.MIN_CONTACTS_TO_JUDGE} contacts)",
                      className="px-2 me-2", style={"backgroundColor": ORANGE_BG}),
            html.Span("below the needed pace", className="px-2", style={"color": RED, "fontWeight": 600}),
        ], className="page-note mb-2"),
        table,
    ])


# ---------------------------------------------------------------- formatting

def grid_columns(frame: pd.DataFrame) -> list[dict]:
    """Readable titles and formats; highlighting of slow contact and pace below need;
    definitions on hover from ``ui.column_defs``."""
    defs = ui.column_defs(frame, HEADERS, FORMATS, numbers="int")
    for spec in defs:
        field = spec["field"]
        if field in TIPS:
            spec.setdefault("headerTooltip", TIPS[field])
        if field in SLOW_CELLS or field == "slow_contact":
            spec["cellStyle"] = {"styleConditions": [
                {"condition": "params.data.slow_contact", "style": {"backgroundColor": ORANGE_BG}}]}
        if field in ("randomized_per_site_month", "pct_of_needed_pace"):
            spec["cellStyle"] = {"styleConditions": [
                {"condition": "params.data.pct_of_needed_pace != null && params.data.pct_of_needed_pace < 100",
                 "style": {"color": RED, "fontWeight": 600}}]}
        if field == "status":
            spec["minWidth"] = 190
            spec["cellStyle"] = {"styleConditions": [
                {"condition": "params.data.slow_contact && !params.data.non_enrolling",
                 "style": {"backgroundColor": ORANGE_BG}}]}
        if spec.get("type") == "rightAligned":
            spec["minWidth"] = 140
        if field == "activation_date":
            spec["minWidth"] = 120
        if field in ("rank", "site_name"):
            spec["pinned"] = "left"
        if field == "rank":
            # rows arrive ranked (sites not yet active last); no filter keeps the column narrow
            spec.update({"filter": False, "minWidth": 80, "maxWidth": 90})
        if field == "site_name":
            spec["minWidth"] = 240
    return defs


def _fmt_rate(value) -> str:
    return "—" if value is None or value != value else f"{value:.2f}"


# (trace name, colour) of the legend entries that explain the bar colours
LEGEND = (("at or above needed pace", BLUE), ("below needed pace", LIGHT_BLUE),
          ("slow contact", ORANGE), ("non-enrolling", RED))


def _pace_figure(table: pd.DataFrame) -> dict:
    """Bars: each active site's rate, coloured by its flag; dashes: its study's needed
    pace (black) and planned pace (grey). Sites grouped by study, fastest first."""
    col = {name: table[name].tolist() for name in (
        "status", "study_id", "site_id", "site_name", "randomized_per_site_month", "randomized",
        "site_months", "needed_pace", "planned_pace", "pct_of_needed_pace", "non_enrolling", "slow_contact")}
    rate = [None if r is None or r != r else r for r in col["randomized_per_site_month"]]
    shown = [i for i, status in enumerate(col["status"]) if status != "not yet active"]
    # by study, then the highest rate first (sites without a rate last); ties keep the ranking
    shown.sort(key=lambda i: (col["study_id"][i], rate[i] is None, -(rate[i] or 0.0)))
    many = len(shown) > MANY_SITES
    names = [f"{col['site_id'][i]} · {col['site_name'][i]}" for i in shown]
    # with many sites the names would overlap: ids on the axis, names on hover
    labels = [col["site_id"][i] for i in shown] if many else names
    colors = [RED if col["non_enrolling"][i] else ORANGE if col["slow_contact"][i]
              else LIGHT_BLUE if _below(col["pct_of_needed_pace"][i]) else BLUE for i in shown]
    hover = [
        f"{name}<br>study {col['study_id'][i]}<br>{_fmt_rate(rate[i])} randomized per site-month "
        f"({col['randomized'][i]} in {_or_zero(col['site_months'][i]):.1f} site-months)<br>needed pace "
        f"{_fmt_rate(col['needed_pace'][i])}, planned {_fmt_rate(col['planned_pace'][i])}"
        f"<br>status: {col['status'][i]}"
        for name, i in zip(names, shown)
    ]
    bars = {"type": "bar", "x": labels, "y": [rate[i] for i in shown], "marker": {"color": colors},
            "name": "randomized per site-month", "hovertext": hover, "hoverinfo": "text",
            "textposition": "outside", "cliponaxis": False, "showlegend": False}
    if not many:
        bars["text"] = [_fmt_rate(rate[i]) for i in shown]
    data = [bars]
    for column, name, color, width in (("needed_pace", "needed pace (study)", "#212529", 3),
                                       ("planned_pace", "planned pace (study)", GREY, 2)):
        data.append({"type": "scatter", "x": labels, "y": [_number(col[column][i]) for i in shown],
                     "mode": "markers", "name": name, "hoverinfo": "skip",
                     "marker": {"symbol": "line-ew-open", "size": 24, "color": color, "line": {"width": width}}})
    data += [{"type": "bar", "x": [None], "y": [None], "marker": {"color": color}, "name": name}
             for name, color in LEGEND]
    annotations, shapes = _study_bands([col["study_id"][i] for i in shown])
    layout = {"margin": {"l": 50, "r": 10, "t": 70, "b": 60 if many else 120}, "height": 480,
              "barmode": "overlay", "yaxis": {"title": {"text": "randomized per site-month"}},
              "xaxis": {"tickangle": -90 if many else -45, "tickfont": {"size": 9 if many else 12}},
              "legend": {"orientation": "h", "y": 1.2, "yanchor": "bottom"}}
    if annotations:
        layout["annotations"] = annotations
    if shapes:
        layout["shapes"] = shapes
    return ui.figure(data, layout)


def _below(pct) -> bool:
    """Below the needed pace (a site without a needed pace is not)."""
    return pct is not None and pct == pct and pct < 100


def _number(value):
    return None if value is None or value != value else value


def _or_zero(value) -> float:
    return 0.0 if value is None or value != value else value


def _study_bands(studies: list[str]) -> tuple[list[dict], list[dict]]:
    """Light separators and a caption per study, so that each study's sites sit together:
    (annotations, shapes) of the chart."""
    annotations, shapes = [], []
    start = 0
    for i in range(1, len(studies) + 1):
        if i == len(studies) or studies[i] != studies[start]:
            annotations.append({"x": (start + i - 1) / 2, "y": 1.0, "yref": "paper", "text": studies[start],
                                "showarrow": False, "font": {"size": 11, "color": "#555"}, "yanchor": "bottom"})
            if i < len(studies):
                shapes.append({"type": "line", "x0": i - 0.5, "x1": i - 0.5, "xref": "x", "y0": 0, "y1": 1,
                               "yref": "y domain", "line": {"color": "#ced4da", "width": 1, "dash": "dot"}})
            start = i
    return annotations, shapes


# ---------------------------------------------------------------- callbacks

@callback(
    [Output(cid, "children") for cid, _, _ in CARDS]
    + [Output("si-pace", "figure"), Output("si-table", "rowData"), Output("si-table", "columnDefs")],
    Input("url", "search"),
)
def refresh(search):
    """Cards, pace chart and the ranking."""
    try:
        f = Filters.from_query(search)
    except FilterError:
        return [no_update] * (len(CARDS) + 3)
    table = cache.cached(context.store(), sites.site_table, f)
    s = sites.summary(table)
    cards = [
        ui.fmt_int(s["active_sites"]), ui.fmt_int(s["non_enrolling"]), ui.fmt_int(s["slow_contact"]),
        _fmt_rate(s["randomized_per_site_month"]),
        f"{s['on_needed_pace']} of {s['with_needed_pace']}" if s["with_needed_pace"] else "—",
    ]
    return [*cards, _pace_figure(table), ui.records(table), _shown_columns(table)]


_shown_columns = ui.by_shape(grid_columns)


@callback(Output("si-table-download", "data"), Input("si-table-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download(_clicks, search):
    f = Filters.from_query(search)
    table = sites.site_table(context.reader(), f)
    return export.send(table, "sites", f)
