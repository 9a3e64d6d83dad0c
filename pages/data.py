"""Data: what was loaded and when, how fresh each source is, and the rows the loaders
refused, with the way to load them once fixed."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update

from cockpit import context, export, scheduler, ui
from cockpit.metrics import data

dash.register_page(__name__, path="/data", name="Data", order=90, roles=("admin",))

STALE_BG = "#fff3cd"  # Bootstrap's warning tint
FAILED_BG = "#f8d7da"
REFRESH_MS = 30_000

SOURCE_HEADERS = {
    "source": "Source", "type": "Type", "location": "Location", "last_run_at": "Last run (UTC)",
    "last_run_status": "Last run status", "last_new_data_at": "Last new data (UTC)",
    "hours_since_new_data": "Hours since new data", "stale_after_hours": "Stale after (hours)",
    "stale": "Stale",
}
RUN_HEADERS = {
    "run_id": "Run", "source": "Source", "status": "Status", "started_at": "Started (UTC)",
    "finished_at": "Finished (UTC)", "seconds": "Seconds", "files_seen": "Files seen",
    "files_loaded": "Loaded", "files_skipped": "Already loaded", "files_rejected": "Rejected",
    "files_deferred": "Deferred", "rows_read": "Rows read", "rows_accepted": "Accepted",
    "rows_quarantined": "Quarantined", "rows_erased": "Erased persons", "rows_ignored": "Not data",
    "message": "Message",
}
QUARANTINE_HEADERS = {
    "quarantine_id": "Entry", "run_id": "Run", "source": "Source", "file": "File",
    "kind": "Kind", "row": "Row", "field": "Field", "reason": "Reason",
    "raw": "Row content (no contacts)", "quarantined_at": "Quarantined (UTC)",
    "resolved_by_run": "Resolved by run",
}

HOW_TO_FIX = [
    html.Li("A row refused for its content (a negative spend, a malformed line, a missing "
            "field): fix the export and drop it again under the same name. The next load reads "
            "the new bytes, updates the rows it already had (nothing is counted twice) and "
            "closes the file's old entries; rows still wrong get new ones."),
    html.Li("A row refused because the setup did not know something (an unknown campaign, QR "
            "code or channel): fix the setup export and drop it, then press Re-process. Files "
            "with open entries are read again even though their bytes did not change."),
    html.Li("A row of a SQL source: correct it in the source database. Its watermark moves, "
            "the next run reads it again, and the entry with the same id is closed."),
    html.Li("Row numbers count data rows from 1 (row 0 is the whole file); for a SQL source "
            "they count the rows of that run in watermark order, and the row's id is in its "
            "content."),
]


# Columns that need room to be read (pixels), and the timestamps.
WIDTHS = {"reason": 340, "raw": 300, "message": 380, "file": 230, "location": 260, "source": 130,
          "field": 170}
TIMES = {"last_run_at", "last_new_data_at", "started_at", "finished_at", "quarantined_at"}


def _columns(frame, headers: dict[str, str]) -> list[dict]:
    """Column definitions with room for the long texts and the timestamps."""
    defs = ui.column_defs(frame, headers)
    for spec in defs:
        width = WIDTHS.get(spec["field"]) or (175 if spec["field"] in TIMES else None)
        if width:
            spec["minWidth"] = width
        if spec["field"] in TIMES:
            spec["valueFormatter"] = {"function": "params.value ? params.value.replace('T', ' ') : ''"}
    return defs


def _table(table_id: str, title: str) -> html.Div:
    """A table block whose grid renders every column (they are many; cells scrolled out
    of view would otherwise not exist until scrolled to)."""
    block = ui.table_block(table_id, title)
    grid = block.children[1]
    grid.dashGridOptions = {**grid.dashGridOptions, "suppressColumnVirtualisation": True}
    return block


def layout(**_query) -> html.Div:
    sources = _table("data-sources", "Sources")
    sources.children[1].getRowStyle = {"styleConditions": [
        {"condition": "params.data.last_run_status === 'failed'", "style": {"backgroundColor": FAILED_BG}},
        {"condition": "params.data.stale", "style": {"backgroundColor": STALE_BG}},
    ]}
    runs = _table("data-runs", "Load runs")
    runs.children[1].getRowStyle = {"styleConditions": [
        {"condition": "params.data.status === 'failed'", "style": {"backgroundColor": FAILED_BG}},
    ]}
    return html.Div([
        html.H3("Data"),
        html.P(
            "What the loaders did, and how fresh each source is. A source is stale when it "
            "brought no new data (a file or SQL batch with at least one accepted row) within "
            "its window (stale_after_hours in the configuration; 48 hours by default). Times "
            "are UTC. This page is not filtered by the filter bar.",
            className="page-note",
        ),
        sources,
        html.Div([
            dbc.Switch(id="data-runs-idle", label="Show runs that found nothing new", value=False,
                       className="me-3"),
            html.Span(id="data-runs-note", className="page-note"),
        ], className="d-flex align-items-center mb-1"),
        runs,
        html.Div([
            html.H5("Quarantine", className="mb-2"),
            html.P(id="data-quarantine-note", className="page-note"),
            html.Ul(HOW_TO_FIX, className="page-note small"),
            html.Div([
                dbc.Switch(id="data-q-resolved", label="Show resolved entries too", value=False,
                           className="me-3"),
                dbc.Button("Re-process quarantined files", id="data-retry", size="sm",
                           color="primary"),
            ], className="d-flex align-items-center mb-2"),
            dcc.Loading(html.Div(id="data-retry-status"), type="dot"),
        ]),
        _table("data-quarantine", "Quarantined rows"),
        dcc.Store(id="data-reloaded", data=0),
        dcc.Interval(id="data-tick", interval=REFRESH_MS),
    ])


@callback(
    Output("data-sources", "rowData"), Output("data-sources", "columnDefs"),
    Output("data-runs", "rowData"), Output("data-runs", "columnDefs"),
    Output("data-runs-note", "children"),
    Input("url", "pathname"), Input("data-tick", "n_intervals"), Input("data-reloaded", "data"),
    Input("data-runs-idle", "value"),
)
def refresh_runs(_path, _tick, _reloaded, include_idle):
    con = context.reader()
    sources = data.freshness(con)
    runs = data.load_runs(con, include_idle=bool(include_idle))
    idle = data.idle_runs(con)
    note = "" if include_idle or not idle else f"{idle:,} runs that found nothing new are hidden."
    return (ui.records(sources), _source_columns(sources),
            ui.records(runs), _columns(runs, RUN_HEADERS), note)


def _source_columns(sources) -> list[dict]:
    """Column definitions of the sources grid: the stale flag in words, not a checkbox."""
    defs = _columns(sources, SOURCE_HEADERS)
    for spec in defs:
        if spec["field"] == "stale":
            spec.update(cellDataType="text", filter=True,
                        valueFormatter={"function": "params.value ? 'stale' : 'fresh'"})
    return defs


@callback(
    Output("data-quarantine", "rowData"), Output("data-quarantine", "columnDefs"),
    Output("data-quarantine-note", "children"),
    Input("url", "pathname"), Input("data-q-resolved", "value"), Input("data-tick", "n_intervals"),
    Input("data-reloaded", "data"),
)
def refresh_quarantine(_path, include_resolved, _tick, _reloaded):
    con = context.reader()
    table = data.quarantine(con, bool(include_resolved))
    total = data.quarantine_count(con, bool(include_resolved))
    what = "entries" if include_resolved else "open entries"
    note = f"{total:,} {what}."
    if total > len(table):
        note += f" The newest {len(table):,} are shown (and exported)."
    return ui.records(table), _columns(table, QUARANTINE_HEADERS), note


def _download(name: str, frame):
    return export.send(frame, name)


@callback(Output("data-quarantine-download", "data"), Input("data-quarantine-export", "n_clicks"),
          State("data-q-resolved", "value"), prevent_initial_call=True)
def download_quarantine(_clicks, include_resolved):
    table = data.quarantine(context.reader(), bool(include_resolved))
    return _download("quarantine_all" if include_resolved else "quarantine_open", table)


@callback(Output("data-runs-download", "data"), Input("data-runs-export", "n_clicks"),
          State("data-runs-idle", "value"), prevent_initial_call=True)
def download_runs(_clicks, include_idle):
    return _download("load_runs", data.load_runs(context.reader(), include_idle=bool(include_idle)))


@callback(Output("data-sources-download", "data"), Input("data-sources-export", "n_clicks"),
          prevent_initial_call=True)
def download_sources(_clicks):
    return _download("sources", data.freshness(context.reader()))


@callback(Output("data-retry-status", "children"), Output("data-reloaded", "data"),
          Input("data-retry", "n_clicks"), State("data-reloaded", "data"),
          prevent_initial_call=True)
def retry(_clicks, reloaded):
    """Load every source now, reading again the files with open quarantine entries."""
    try:
        outcomes = scheduler.run_now(retry_quarantined=True)
    except RuntimeError as exc:
        return dbc.Alert(f"{exc} From the command line: cockpit load --retry-quarantined.",
                         color="warning"), no_update
    lines = []
    failed = False
    for name, summary, error in outcomes:
        if error:
            failed = True
            lines.append(html.Li(f"{name}: failed: {error}"))
        else:
            lines.append(html.Li(f"{name}: {summary.text().splitlines()[0]}; "
                                 f"{summary.rows_quarantined:,} rows quarantined"))
    return dbc.Alert([html.Div("Re-processed:"), html.Ul(lines, className="mb-0")],
                     color="danger" if failed else "success"), (reloaded or 0) + 1
