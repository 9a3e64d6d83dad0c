"""Compliance: consent and refusal rates per purpose, withdrawals and how fast they are
applied, erasures and access requests of data subjects with their age."""
from __future__ import annotations

from datetime import datetime, timezone

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, html, no_update

from cockpit import cache, context, export, ui
from cockpit.filters import from_url
from cockpit.metrics import compliance

dash.register_page(__name__, path="/compliance", name="Compliance", order=85,
                   roles=("admin", "leadership"))

# card id, title, definition key, summary key
CARDS = [
    ("co-consent-research", "Consent rate: contact for research", "compliance_consent_rate_research",
     "consent_rate_research"),
    ("co-refusal-research", "Refusal rate: contact for research", "compliance_refusal_rate_research",
     "refusal_rate_research"),
    ("co-consent-tracking", "Consent rate: tracking", "compliance_consent_rate_tracking",
     "consent_rate_tracking"),
    ("co-refusal-tracking", "Refusal rate: tracking", "compliance_refusal_rate_tracking",
     "refusal_rate_tracking"),
    ("co-withdrawals", "Withdrawals", "compliance_withdrawals", "withdrawals"),
    ("co-apply", "Median time to apply a withdrawal", "compliance_median_hours_to_apply",
     "median_hours_to_apply"),
    ("co-erasure", "Median time to complete an erasure", "compliance_median_days_to_erase",
     "median_days_to_erase"),
    ("co-access-late", "Access requests over 30 days", "compliance_access_over_30_days",
     "access_over_30_days"),
]
TABLES = {  # grid id -> (title, export name)
    "co-purposes": ("Consent by purpose", "compliance_consent"),
    "co-weekly": ("Withdrawals per week", "compliance_withdrawals"),
    "co-access": ("Access requests", "compliance_access_requests"),
    "co-erasures": ("Erasure requests", "compliance_erasures"),
}
HEADERS = {
    "purpose": "Purpose id", "purpose_name": "Purpose", "decided": "Persons decided",
    "granted": "Consent stands", "consent_rate_pct": "Consent rate", "refused": "Refused at first",
    "refusal_rate_pct": "Refusal rate", "withdrawals": "Withdrawals", "withdrawals_applied": "Applied",
    "median_hours_to_apply": "Median hours to apply", "week": "Week",
    "withdrawals_contact_research": "Contact for research", "withdrawals_tracking": "Tracking",
    "request_id": "Request", "received_at": "Received (UTC)", "completed_at": "Completed (UTC)",
    "status": "Status", "age_days": "Age (days)", "over_30_days": "Over 30 days",
    "handled_by": "Handled by", "requested_at": "Requested (UTC)", "days_to_complete": "Days to complete",
}
FORMATS = {"consent_rate_pct": "pct1", "refusal_rate_pct": "pct1", "median_hours_to_apply": "dec1",
           "age_days": "dec1", "days_to_complete": "dec1", "over_30_days": "yes"}
RED, RED_BG = "#dc3545", "#f8d7da"
PURPOSE_COLOURS = {"withdrawals_contact_research": "#0a58ca", "withdrawals_tracking": "#9ec5fe"}
HOURS_SHOWN_AS_DAYS = 48  # above two days a delay reads better in days


def _table(table_id: str) -> html.Div:
    block = ui.table_block(table_id, TABLES[table_id][0])
    if table_id in ("co-access", "co-erasures"):
        # a request older than the month GDPR allows is tinted red
        block.children[1].getRowStyle = {"styleConditions": [
            {"condition": "params.data.over_30_days", "style": {"backgroundColor": RED_BG}}]}
    return block


def layout(**_query) -> html.Div:
    return html.Div([
        html.H3("Compliance"),
        html.P(
            "Consent is kept as a history per person and purpose (tracking; contact for research); "
            "the current state is the latest event. Tracking touches of persons without tracking "
            "consent are used nowhere, and a lead who withdraws the consent to be contacted stops "
            "being counted from that moment. Study, site, segment and channel filters keep the "
            "persons with a lead there (channel: the channel the lead is attributed to); dates "
            "apply to first decisions, withdrawals and requests. Hover a title for its definition.",
            className="page-note",
        ),
        dbc.Row([ui.kpi_card(cid, title, key) for cid, title, key, _ in CARDS]),
        dbc.Card(dbc.CardBody([
            html.Div([html.B("Consent and refusal rates. "), compliance.DEFINITIONS["consent_rate_pct"],
                      " ", compliance.DEFINITIONS["refusal_rate_pct"]]),
            html.Div([html.B("Withdrawals. "), compliance.DEFINITIONS["withdrawals"], " The time to "
                      "apply one runs from the withdrawal to the first load, at or after it, of the "
                      "file that brought it: the load rebuilds every count in the same step."],
                     className="mt-1"),
            html.Div([html.B("Requests of data subjects. "), "Erasures: from the request to its "
                      "completion. Access requests: age = completion, or now while open, minus receipt; "
                      f"more than {compliance.LIMIT_DAYS} days is highlighted (GDPR allows one month)."],
                     className="mt-1"),
        ]), className="page-note mb-3"),
        _table("co-purposes"),
        html.H5("Withdrawals per week"),
        ui.graph("co-weekly-chart"),
        _table("co-weekly"),
        html.Div(id="co-requests-note", className="page-note mb-2"),
        html.Div([
            html.Span("Highlighted: ", className="me-2"),
            html.Span(f"open for more than {compliance.LIMIT_DAYS} days, or completed after more than "
                      f"{compliance.LIMIT_DAYS} days", className="px-2", style={"backgroundColor": RED_BG}),
        ], className="page-note mb-2"),
        _table("co-access"),
        _table("co-erasures"),
    ])


# ---------------------------------------------------------------- formatting

def grid_columns(frame: pd.DataFrame) -> list[dict]:
    """Readable titles and formats, each column's definition on hover."""
    defs = ui.column_defs(frame, HEADERS, FORMATS, numbers="int")
    for spec in defs:
        field = spec["field"]
        if field in compliance.DEFINITIONS:
            spec["headerTooltip"] = compliance.DEFINITIONS[field]
        if field == "purpose":
            spec["hide"] = True
        if field == "purpose_name":
            spec["pinned"] = "left"
            spec["minWidth"] = 180
        if field in ("age_days", "over_30_days"):
            spec["cellStyle"] = {"styleConditions": [
                {"condition": "params.data.over_30_days", "style": {"color": RED, "fontWeight": 600}}]}
    return defs


def fmt_pct(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.1f}%"


def fmt_hours(hours: float | None) -> str:
    """Hours up to two days, days beyond."""
    if hours is None or pd.isna(hours):
        return "—"
    if hours > HOURS_SHOWN_AS_DAYS:
        return f"{hours / 24:,.1f} days"
    return f"{hours:,.1f} h"


def fmt_days(days: float | None) -> str:
    return "—" if days is None or pd.isna(days) else f"{days:,.1f} days"


def cards(s: dict) -> list[str]:
    """The cards' texts, in the order of ``CARDS``."""
    access = s["access"]
    return [
        fmt_pct(s["consent_rate_research"]), fmt_pct(s["refusal_rate_research"]),
        fmt_pct(s["consent_rate_tracking"]), fmt_pct(s["refusal_rate_tracking"]),
        ui.fmt_int(s["withdrawals"]), fmt_hours(s["median_hours_to_apply"]),
        fmt_days(s["median_days_to_erase"]) if s["requests_visible"] else "not shown",
        f"{access['over_30_days']:,} of {access['received']:,}" if access else "not shown",
    ]


def requests_note(s: dict) -> str:
    """What the request tables hold, or why they are empty."""
    if not s["requests_visible"]:
        return compliance.HIDDEN_NOTE
    e, a = s["erasures"], s["access"]
    return (f"Erasures requested in the period: {e['requested']:,} ({e['completed']:,} completed, "
            f"{e['open']:,} open). Access requests received: {a['received']:,} ({a['open']:,} open, "
            f"{a['over_30_days']:,} over {compliance.LIMIT_DAYS} days).")


def weekly_figure(weeks: pd.DataFrame) -> dict:
    """Stacked bars: withdrawals per week, by purpose."""
    days = pd.to_datetime(weeks["week"]).dt.strftime("%Y-%m-%d").tolist()
    data = [{"type": "bar", "x": days, "y": weeks[col].astype(int).tolist(), "name": HEADERS[col],
             "marker": {"color": PURPOSE_COLOURS[col]},
             "hovertemplate": "week of %{x}<br>%{y} withdrawals<extra>" + HEADERS[col] + "</extra>"}
            for col in ("withdrawals_contact_research", "withdrawals_tracking")]
    return ui.figure(data, {
        "barmode": "stack", "height": 300, "margin": {"l": 50, "r": 10, "t": 10, "b": 40},
        "yaxis": {"title": {"text": "withdrawals"}}, "legend": {"orientation": "h", "y": 1.1},
        "title": {"text": None if len(weeks) else "No withdrawals in the period"}})


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ---------------------------------------------------------------- callbacks

@callback(
    [Output(cid, "children") for cid, _, _, _ in CARDS]
    + [Output("co-requests-note", "children"), Output("co-weekly-chart", "figure")]
    + [Output(tid, prop) for tid in TABLES for prop in ("rowData", "columnDefs")],
    Input("url", "search"),
)
def refresh(search: str | None) -> list:
    """Cards, note, weekly chart and the four tables."""
    f = from_url(search)
    if f is None:
        return [no_update] * (len(CARDS) + 2 + 2 * len(TABLES))
    con = context.reader()
    now = _now()
    purposes = cache.cached(context.store(), compliance.purpose_table, f)
    s = compliance.summary(con, f, now, purposes)
    weeks = cache.cached(context.store(), compliance.weekly_withdrawals, f)
    frames = [purposes, weeks, compliance.access_requests(con, f, now),
              compliance.erasure_requests(con, f, now)]
    grids = [part for frame in frames for part in (ui.records(frame), grid_columns(frame))]
    return [*cards(s), requests_note(s), weekly_figure(weeks), *grids]


def _send(table_id: str, search: str | None, build) -> dict:
    f = from_url(search)
    if f is None:
        return no_update
    return export.send(build(context.reader(), f), TABLES[table_id][1], f)


@callback(Output("co-purposes-download", "data"), Input("co-purposes-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_purposes(_clicks: int | None, search: str | None) -> dict:
    return _send("co-purposes", search, compliance.purpose_table)


@callback(Output("co-weekly-download", "data"), Input("co-weekly-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_weekly(_clicks: int | None, search: str | None) -> dict:
    return _send("co-weekly", search, compliance.weekly_withdrawals)


@callback(Output("co-access-download", "data"), Input("co-access-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_access(_clicks: int | None, search: str | None) -> dict:
    return _send("co-access", search, lambda con, f: compliance.access_requests(con, f, _now()))


@callback(Output("co-erasures-download", "data"), Input("co-erasures-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_erasures(_clicks: int | None, search: str | None) -> dict:
    return _send("co-erasures", search, lambda con, f: compliance.erasure_requests(con, f, _now()))
