"""Alerts: the rules that watch the KPIs, their current state, every evaluation with the
value seen, the e-mails, and the form managers create and edit rules with. Every
number comes from ``cockpit.alerts``; writes go through the store's writer."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import flask
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from cockpit import cache, context, export, ui
from cockpit.alerts import evaluate as ev
from cockpit.alerts import rules as rl
from cockpit.filters import DIMENSIONS, Filters, from_url
from cockpit.metrics import daily, dimensions
from cockpit import access
from cockpit.access import STAFF

dash.register_page(__name__, path="/alerts", name="Alerts", order=70, roles=STAFF)

RULE_HEADERS = {
    "rule_id": "Rule", "name": "Name", "kind": "Kind", "condition": "Alerts when", "scope": "Scope",
    "state": "State", "since": "State since (UTC)", "last_value": "Last value",
    "compared_with": "Compared with", "data_up_to": "Data up to", "last_evaluated": "Evaluated (UTC)",
    "acknowledged": "Acknowledged", "silenced_until": "Silenced until (UTC)", "recipients": "Recipients",
    "pending_hours": "Pending (h)", "repeat_hours": "Reminder every (h)", "clear_hours": "Clear after (h)",
    "enabled": "Active",
}
RULE_TIPS = {
    "state": "normal; pending (the condition holds, waiting for the pending period); firing (e-mail "
             "sent); resolved (the condition has been gone for the clear period; e-mail sent).",
    "last_value": "The value the rule compared at its last evaluation (KPI, smoothed KPI, CUSUM in "
                  "standard deviations, % of target pace, or data age in hours).",
    "compared_with": "The threshold, control limit, minimum pace or maximum age it was compared with.",
    "pending_hours": "The condition must hold this long before the alert fires.",
    "repeat_hours": "While firing and not acknowledged, a reminder goes out this often.",
    "clear_hours": "The condition must be gone this long before the alert resolves.",
}
HISTORY_HEADERS = {
    "evaluated_at": "Evaluated (UTC)", "rule_id": "Rule", "rule": "Name", "data_up_to": "Data up to",
    "value": "Value seen", "compared_with": "Compared with", "baseline": "Normal level",
    "unit": "Unit", "condition_met": "Condition met", "state_before": "State before", "state_after": "State after",
    "message": "E-mail", "summary": "What was seen", "note": "Note", "message_id": "Message-ID",
}
OUTBOX_HEADERS = {
    "created_at": "Queued (UTC)", "rule_id": "Rule", "kind": "E-mail", "subject": "Subject",
    "recipients": "Recipients", "status": "Status", "attempts": "Attempts",
    "last_attempt_at": "Last attempt (UTC)", "sent_at": "Sent (UTC)", "last_error": "Last error",
    "message_id": "Message-ID",
}
STATE_STYLES = [
    {"condition": "params.value === 'firing'", "style": {"backgroundColor": "#f8d7da", "fontWeight": 600}},
    {"condition": "params.value === 'pending'", "style": {"backgroundColor": "#ffe5d0"}},
    {"condition": "params.value === 'resolved'", "style": {"backgroundColor": "#d1e7dd"}},
    {"condition": "params.value === 'disabled'", "style": {"color": "#999"}},
]
CARDS = [("al-n-rules", "Rules", "Rules listed (the filter bar limits them to its studies, sites, "
                                 "channels and segments)."),
         ("al-n-firing", "Firing", "Alerts whose condition holds now, after their pending period."),
         ("al-n-pending", "Pending", "Conditions that hold, waiting for the pending period before firing."),
         ("al-n-queued", "E-mails waiting", "Messages not yet accepted by the mail server: they are "
                                            "retried on every check until it takes them."),
         ("al-n-rejected", "E-mails refused", "Messages the mail server refused for good (for example an "
                                              "unknown address); see the E-mails table for the reason.")]
SILENCE_OPTIONS = [{"label": "1 hour", "value": "1"}, {"label": "4 hours", "value": "4"},
                   {"label": "1 day", "value": "24"}, {"label": "1 week", "value": "168"}]
# form field -> the kinds (and drift methods) it belongs to
PARAM_FIELDS = {
    "op": ("threshold",), "value": ("threshold",), "window": ("threshold", "change"),
    "direction": ("change", "drift"), "pct": ("change",), "baseline": ("change", "drift"),
    "method": ("drift",), "lambda": ("drift:ewma",), "L": ("drift:ewma",), "k": ("drift:cusum",),
    "h": ("drift:cusum",), "monitor": ("drift",), "minpct": ("pace",), "source": ("stale",),
    "maxhours": ("stale",),
}
PARAM_NAMES = {  # form field -> parameter name of the rule
    "op": "op", "value": "value", "window": "window_days", "direction": "direction", "pct": "pct",
    "baseline": "baseline_days", "method": "method", "lambda": "lambda", "L": "L", "k": "k", "h": "h",
    "monitor": "monitor_days", "minpct": "min_pct", "source": "source", "maxhours": "max_hours",
}
SCOPE_DIMS = ("study", "site", "channel", "segment")


# ---------------------------------------------------------------- layout


def layout(rule: str | None = None, **_query) -> html.Div:
    selected = int(rule) if rule and str(rule).isdigit() else None
    rules_block = ui.table_block("al-rules", "Rules")
    grid = rules_block.children[1]
    grid.getRowId = "params.data.rule_id"
    grid.dashGridOptions = {**grid.dashGridOptions, "suppressColumnVirtualisation": True}
    history = ui.table_block("al-history", "History: every evaluation with the value seen (newest first)")
    outbox = ui.table_block("al-outbox", "E-mails")
    for block in (history, outbox):  # long logs: pages of 20 rows
        table = block.children[1]
        table.dashGridOptions = {**table.dashGridOptions, "pagination": True, "paginationPageSize": 20,
                                 "paginationPageSizeSelector": [20, 50, 100]}
    return html.Div([
        dcc.Store(id="al-selected", data=selected),
        dcc.Store(id="al-editing", data=None),
        dcc.Store(id="al-refresh", data=0),
        html.H3("Alerts"),
        html.P(
            "Each rule watches one KPI (or enrolment pace, or the freshness of a data source) for a "
            "study, site, channel or segment. It is checked on an interval and after every data load. "
            "When its condition holds for the pending period the alert fires and its recipients get "
            "one e-mail; while it keeps firing they get a reminder after the reminder interval unless "
            "someone acknowledges it; once the condition has been gone for the clear period it "
            "resolves, with one more e-mail. Silencing stops firing e-mails and reminders for a while. "
            "Click a rule to select it. The filter bar limits the list to rules about the chosen "
            "studies, sites, channels and segments.",
            className="page-note"),
        dbc.Row([_card(cid, title, tip) for cid, title, tip in CARDS]),
        rules_block,
        _actions(),
        html.Div(id="al-feedback"),
        _form(),
        history,
        outbox,
        _methods_note(),
    ])


def _card(card_id: str, title: str, tip: str) -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([html.Div(title, className="kpi-title", title=tip),
                                          html.Div("…", id=card_id, className="kpi-value")]),
                            className="kpi-card h-100"), xs=6, md=4, xl=2, className="mb-3")


def _actions() -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.Div("No rule selected: click a rule in the table.", id="al-selected-label", className="mb-2"),
        html.Div([
            dbc.Button("Edit in the form", id="al-edit", size="sm", color="primary", outline=True,
                       className="me-2"),
            dbc.Button("Acknowledge", id="al-ack", size="sm", color="warning", className="me-2"),
            dbc.Select(id="al-silence-hours", options=SILENCE_OPTIONS, value="24", size="sm",
                       style={"width": "8rem"}, className="me-2 d-inline-block"),
            dbc.Button("Silence", id="al-silence", size="sm", color="secondary", className="me-2"),
            dbc.Button("Lift silence", id="al-unsilence", size="sm", color="secondary", outline=True,
                       className="me-4"),
            dbc.Button("Evaluate all rules now", id="al-evaluate", size="sm", color="dark", outline=True),
        ], className="d-flex flex-wrap align-items-center gap-1"),
    ]), className="mb-3")


def _field(field: str, label: str, control, help_text: str = "", width: int = 3) -> dbc.Col:
    parts = [dbc.Label(label, html_for=f"al-p-{field}", className="small mb-1"), control]
    if help_text:
        parts.append(dbc.FormText(help_text))
    return dbc.Col(html.Div(parts, id=f"al-g-{field}"), md=width, className="mb-2")


def _select(field: str, options: list[tuple[str, str]], value: str) -> dbc.Select:
    return dbc.Select(id=f"al-p-{field}", options=[{"label": lab, "value": val} for val, lab in options],
                      value=value)


def _number(field: str, value: float | int | None, step: float | str = "any") -> dbc.Input:
    return dbc.Input(id=f"al-p-{field}", type="number", value=value, step=step)


def _form() -> dbc.Card:
    d = rl.DEFAULT_PARAMS
    kpis = [(k.key, f"{k.label} ({k.unit})") for k in daily.KPIS.values()]
    sources = [(key, name) for key, (name, _) in daily.SOURCES.items()]
    # the viewer's studies, sites, segments and channels: they change with a load, not
    # with the filter, so the page gets them once
    options = _scope_options()
    scope = [dbc.Col([dbc.Label(dim.capitalize(), className="small mb-1"),
                      dcc.Dropdown(id=f"al-scope-{dim}", multi=True, options=options[dim],
                                   placeholder="All studies" if dim == "study" else f"All {dim}s")],
                     md=3, className="mb-2") for dim in SCOPE_DIMS]
    return dbc.Card(dbc.CardBody([
        html.H5("Rule", id="al-form-title"),
        dbc.Row([
            dbc.Col([dbc.Label("Name", html_for="al-name", className="small mb-1"),
                     dbc.Input(id="al-name", placeholder="e.g. Facebook CTR drop ST-102", maxLength=100)],
                    md=4, className="mb-2"),
            dbc.Col([dbc.Label("Kind", html_for="al-kind", className="small mb-1"),
                     dbc.Select(id="al-kind", value="threshold",
                                options=[{"label": f"{k}: {text}", "value": k} for k, text in rl.KINDS.items()])],
                    md=4, className="mb-2"),
            dbc.Col(html.Div([dbc.Label("KPI", html_for="al-kpi", className="small mb-1"),
                              _select("kpi", kpis, "ctr_pct")], id="al-g-kpi"), md=4, className="mb-2"),
        ]),
        dbc.Row(scope),
        dbc.Row([
            _field("op", "Alert when the KPI is", _select("op", [(">", "above (>)"), ("<", "below (<)")], ">")),
            _field("value", "Threshold", _number("value", None), "in the KPI's unit"),
            _field("window", "Over the last (days)", _number("window", d["threshold"]["window_days"], 1)),
            _field("direction", "Direction", _select("direction", [("down", "down"), ("up", "up"),
                                                                   ("either", "either way")], "down")),
            _field("pct", "Change of at least (%)", _number("pct", d["change"]["pct"])),
            _field("baseline", "Compared with the days before (days)",
                   _number("baseline", d["change"]["baseline_days"], 1)),
            _field("method", "Control chart", _select("method", [("ewma", "EWMA"), ("cusum", "CUSUM")], "ewma")),
            _field("lambda", "EWMA λ", _number("lambda", d["drift"]["lambda"]), "weight of the newest day"),
            _field("L", "EWMA L", _number("L", d["drift"]["L"]), "limit width in standard deviations"),
            _field("k", "CUSUM k", _number("k", d["drift"]["k"]), "allowance in standard deviations"),
            _field("h", "CUSUM h", _number("h", d["drift"]["h"]), "decision limit in standard deviations"),
            _field("monitor", "Watched days", _number("monitor", d["drift"]["monitor_days"], 1),
                   "the chart runs over these last days"),
            _field("minpct", "Alert below (% of the target curve)", _number("minpct", d["pace"]["min_pct"])),
            _field("source", "Data source", _select("source", sources, "meta_ads")),
            _field("maxhours", "Alert when older than (hours)", _number("maxhours", d["stale"]["max_hours"])),
        ]),
        dbc.Row([
            dbc.Col([dbc.Label("Recipients (e-mail addresses, comma-separated)", html_for="al-recipients",
                               className="small mb-1"),
                     dbc.Textarea(id="al-recipients", rows=2, placeholder="name@example.org")],
                    md=6, className="mb-2"),
            dbc.Col([dbc.Label("Pending (hours)", className="small mb-1"),
                     dbc.Input(id="al-pending", type="number", value=rl.DEFAULT_TIMING["pending_hours"])],
                    md=2, className="mb-2"),
            dbc.Col([dbc.Label("Reminder every (hours)", className="small mb-1"),
                     dbc.Input(id="al-repeat", type="number", value=rl.DEFAULT_TIMING["repeat_hours"])],
                    md=2, className="mb-2"),
            dbc.Col([dbc.Label("Clear after (hours)", className="small mb-1"),
                     dbc.Input(id="al-clear", type="number", value=rl.DEFAULT_TIMING["clear_hours"])],
                    md=2, className="mb-2"),
        ]),
        dbc.Checkbox(id="al-enabled", label="Active (evaluated by the scheduler)", value=True,
                     className="mb-2"),
        html.Div([
            dbc.Button("Save rule", id="al-save", color="primary", className="me-2"),
            dbc.Button("New rule (clear the form)", id="al-new", color="secondary", outline=True),
        ]),
    ]), className="mb-4")


def _methods_note() -> dbc.Card:
    items = [
        ("Threshold", "The KPI over the last N days (ratios pooled: CTR = all clicks / all impressions "
                      "of those days) compared with a fixed value."),
        ("Change", "The KPI over the last N days against the same KPI over the days before; the "
                   "alert fires on a change of at least the percentage set."),
        ("Drift, EWMA", "An exponentially weighted moving average of the daily KPI (the newest day "
                        "weighs λ) against control limits of ± L standard deviations, with normal level "
                        "and spread from the baseline days before the watched days (Roberts 1959; Lucas & "
                        "Saccucci 1990). λ = 0.2, L = 3: about one false alarm in 560 days; a shift of 1.5 "
                        "standard deviations is signalled after about 5 days. Once a shift is older than "
                        "the watched days it enters the baseline, becomes the new normal, and the alert "
                        "resolves."),
        ("Drift, CUSUM", "Cumulative sums of the daily deviations from the normal level, in standard "
                         "deviations, less an allowance k; signal when a sum passes h (Page 1954). "
                         "k = 0.5, h = 5: about one false alarm in 465 days per direction."),
        ("Pace", "Randomized since study start against the straight-line target curve (target x "
                 "elapsed share of the planned duration), as on the Overview page."),
        ("Stale data", "Hours since the newest record of an export kind (end of day for daily "
                       "exports); the message also names the last file loaded."),
    ]
    return dbc.Card(dbc.CardBody([
        html.H5("How the rules judge"),
        html.Dl([part for title, text in items for part in (html.Dt(title), html.Dd(text))],
                className="page-note mb-0"),
    ]), className="mb-4")


# ---------------------------------------------------------------- helpers



def _actor() -> str:
    """Who acts: the signed-in user (never a name the browser sends)."""
    return access.actor()


def _within_scope(rule: rl.Rule, f: Filters) -> bool:
    """The rule watches only studies the viewer may see (a rule over every study is the
    portfolio's, not a manager's)."""
    studies = f.scope.studies
    if f.scope.sites is not None:
        return False
    return studies is None or (bool(rule.scope.study) and set(rule.scope.study) <= set(studies))


def _visible(rules: list[rl.Rule], f: Filters) -> set[int]:
    """Rules the viewer may see whose scope overlaps the filter: for every dimension set
    in the filter the rule covers all of it or shares an id with it."""
    out = set()
    for rule in rules:
        if _within_scope(rule, f) and all(not getattr(f, dim) or not getattr(rule.scope, dim)
               or set(getattr(f, dim)) & set(getattr(rule.scope, dim)) for dim in DIMENSIONS):
            out.add(rule.rule_id)
    return out


def _rules_frame(con, f: Filters, rules: list[rl.Rule] | None = None) -> pd.DataFrame:
    rules = rl.load_rules(con) if rules is None else rules
    table = ev.rules_table(con, rules)
    shown = _visible(rules, f)
    return table[table["rule_id"].isin(shown)].reset_index(drop=True)


RULE_WIDTHS = {"name": 220, "kind": 110, "condition": 340, "scope": 190, "state": 110, "since": 150,
               "last_value": 150, "compared_with": 150, "data_up_to": 120, "last_evaluated": 150,
               "acknowledged": 220, "silenced_until": 150, "recipients": 240}
HISTORY_WIDTHS = {"evaluated_at": 150, "rule": 200, "data_up_to": 120, "unit": 120, "state_before": 120,
                  "state_after": 120, "note": 260, "message_id": 300}


def _rule_columns(frame: pd.DataFrame) -> list[dict]:
    defs = ui.column_defs(frame, RULE_HEADERS)
    for spec in defs:
        field = spec["field"]
        spec["minWidth"] = RULE_WIDTHS.get(field, 120)
        if field in RULE_TIPS:
            spec["headerTooltip"] = RULE_TIPS[field]
        if field == "state":
            spec["cellStyle"] = {"styleConditions": STATE_STYLES}
        if field in ("condition", "scope"):
            spec.update(wrapText=True, autoHeight=True,
                        cellStyle={"lineHeight": "1.35", "wordBreak": "normal"})
        if field in ("rule_id",):
            spec.update(pinned="left", maxWidth=90)
        if field == "name":
            spec.update(pinned="left", wrapText=True, autoHeight=True,
                        cellStyle={"lineHeight": "1.35", "wordBreak": "normal"})
    return defs


def _history_columns(frame: pd.DataFrame) -> list[dict]:
    defs = ui.column_defs(frame, HISTORY_HEADERS)
    for spec in defs:
        spec["minWidth"] = HISTORY_WIDTHS.get(spec["field"], 110)
        if spec["field"] == "summary":
            spec.update(wrapText=True, autoHeight=True, minWidth=420,
                        cellStyle={"lineHeight": "1.35", "wordBreak": "normal"})
        if spec["field"] == "state_after":
            spec["cellStyle"] = {"styleConditions": STATE_STYLES}
    return defs


def _outbox_columns(frame: pd.DataFrame) -> list[dict]:
    defs = ui.column_defs(frame, OUTBOX_HEADERS)
    widths = {"created_at": 150, "subject": 380, "recipients": 220, "last_attempt_at": 150, "sent_at": 150,
              "last_error": 300, "message_id": 320}
    for spec in defs:
        spec["minWidth"] = widths.get(spec["field"], 100)
        if spec["field"] == "status":
            spec["cellStyle"] = {"styleConditions": [
                {"condition": "params.value === 'rejected'", "style": {"backgroundColor": "#f8d7da"}},
                {"condition": "params.value === 'queued'", "style": {"backgroundColor": "#ffe5d0"}}]}
    return defs


def _scope_options() -> dict[str, list[dict]]:
    options = cache.cached(context.store(), dimensions.filter_options, Filters())
    return {dim: options[dim] for dim in SCOPE_DIMS}


# ---------------------------------------------------------------- callbacks


@callback(
    [Output(cid, "children") for cid, _, _ in CARDS]
    + [Output("al-rules", "rowData"), Output("al-rules", "columnDefs"),
       Output("al-history", "rowData"), Output("al-history", "columnDefs"),
       Output("al-outbox", "rowData"), Output("al-outbox", "columnDefs"),
       Output("al-selected-label", "children")],
    Input("url", "search"), Input("al-refresh", "data"), Input("al-selected", "data"),
)
def refresh(search: str | None, _refresh: int, selected: int | None) -> list:
    """Cards, rules, history (of the selected rule, else all shown rules) and e-mails."""
    f = from_url(search)
    if f is None:
        return [no_update] * (len(CARDS) + 7)
    con = context.reader()
    rules = rl.load_rules(con)
    table = _rules_frame(con, f, rules)
    history = ev.history_table(con, selected if selected in set(table["rule_id"]) else None, limit=500,
                               rules=rules)
    history = history[history["rule_id"].isin(table["rule_id"])].reset_index(drop=True)
    outbox = ev.outbox_table(con)
    outbox = outbox[outbox["rule_id"].isin(table["rule_id"])].reset_index(drop=True)
    cards = [len(table), int((table["state"] == "firing").sum()), int((table["state"] == "pending").sum()),
             int((outbox["status"] == "queued").sum()), int((outbox["status"] == "rejected").sum())]
    label = _selected_label(table, selected)
    return ([str(c) for c in cards]
            + [ui.records(table), _rule_columns(table), ui.records(history), _history_columns(history),
               ui.records(outbox), _outbox_columns(outbox), label])


def _selected_label(table: pd.DataFrame, selected: int | None):
    row = table[table["rule_id"] == selected]
    if row.empty:
        return "No rule selected: click a rule in the table. The history shows every rule listed."
    r = row.iloc[0]
    return [html.Strong(f"Selected: #{r['rule_id']} {r['name']}"), f" · state {r['state']}",
            " · the history below shows this rule only."]


@callback(Output("al-selected", "data"), Input("al-rules", "cellClicked"), prevent_initial_call=True)
def select(clicked: dict | None):
    """A click on a row selects its rule (the row id is the rule id)."""
    row_id = (clicked or {}).get("rowId")
    return int(row_id) if isinstance(row_id, str) and row_id.isdigit() else no_update


@callback([Output(f"al-g-{field}", "style") for field in PARAM_FIELDS] + [Output("al-g-kpi", "style")],
          Input("al-kind", "value"), Input("al-p-method", "value"))
def show_fields(kind: str | None, method: str | None) -> list[dict]:
    """Only the parameters of the chosen kind (and control chart) are shown."""
    keys = {kind, f"{kind}:{method}"}
    shown = [{} if keys & set(kinds) else {"display": "none"} for kinds in PARAM_FIELDS.values()]
    return shown + [{} if kind in rl.KPI_KINDS else {"display": "none"}]


FORM_OUTPUTS = ([Output("al-editing", "data"), Output("al-form-title", "children"), Output("al-name", "value"),
                 Output("al-kind", "value"), Output("al-p-kpi", "value")]
                + [Output(f"al-scope-{dim}", "value") for dim in SCOPE_DIMS]
                + [Output(f"al-p-{field}", "value") for field in PARAM_FIELDS]
                + [Output("al-recipients", "value"), Output("al-pending", "value"), Output("al-repeat", "value"),
                   Output("al-clear", "value"), Output("al-enabled", "value")])


@callback(FORM_OUTPUTS, Input("al-edit", "n_clicks"), Input("al-new", "n_clicks"),
          State("al-selected", "data"), prevent_initial_call=True)
def fill_form(_edit: int | None, _new: int | None, selected: int | None) -> list:
    """"Edit" loads the selected rule into the form; "New rule" resets it."""
    rule = None
    if ctx.triggered_id == "al-edit" and selected is not None:
        rule = rl.get_rule(context.reader(), int(selected))
    if rule is None:
        return _form_values(None, "New rule", "", "threshold", "ctr_pct", Filters(),
                            {}, "", rl.DEFAULT_TIMING, True)
    timing = {"pending_hours": rule.pending_hours, "repeat_hours": rule.repeat_hours,
              "clear_hours": rule.clear_hours}
    return _form_values(rule.rule_id, f"Edit rule #{rule.rule_id}", rule.name, rule.kind,
                        rule.kpi or "ctr_pct", rule.scope, dict(rule.params), ", ".join(rule.recipients),
                        timing, rule.enabled)


def _form_values(rule_id, title, name, kind, kpi, scope: Filters, params: dict, recipients: str,
                 timing: dict, enabled: bool) -> list:
    merged = {}
    for defaults in rl.DEFAULT_PARAMS.values():
        merged.update({k: v for k, v in defaults.items() if k not in merged})
    merged.update({"window_days": rl.DEFAULT_PARAMS["threshold"]["window_days"], "direction": "down"})
    merged.update(params)
    values = [merged.get(PARAM_NAMES[field]) for field in PARAM_FIELDS]
    return ([rule_id, title, name, kind, kpi] + [list(getattr(scope, dim)) or None for dim in SCOPE_DIMS]
            + values + [recipients, timing["pending_hours"], timing["repeat_hours"], timing["clear_hours"],
                        enabled])


@callback(
    Output("al-feedback", "children"), Output("al-refresh", "data"),
    Output("al-selected", "data", allow_duplicate=True), Output("al-editing", "data", allow_duplicate=True),
    Input("al-save", "n_clicks"), Input("al-ack", "n_clicks"), Input("al-silence", "n_clicks"),
    Input("al-unsilence", "n_clicks"), Input("al-evaluate", "n_clicks"),
    State("al-refresh", "data"), State("al-selected", "data"), State("al-editing", "data"),
    State("al-silence-hours", "value"), State("al-name", "value"), State("al-kind", "value"),
    State("al-p-kpi", "value"),
    [State(f"al-scope-{dim}", "value") for dim in SCOPE_DIMS],
    [State(f"al-p-{field}", "value") for field in PARAM_FIELDS],
    State("al-recipients", "value"), State("al-pending", "value"), State("al-repeat", "value"),
    State("al-clear", "value"), State("al-enabled", "value"),
    prevent_initial_call=True,
)
def act(_save, _ack, _silence, _unsilence, _evaluate, refresh_count, selected, editing, silence_hours,
        name, kind, kpi, *form):
    """Save a rule (refused with every reason), acknowledge, silence, lift a silence, or
    evaluate every rule now."""
    # Dash passes the grouped States flat: scope, parameters, then recipients and timing
    n = len(SCOPE_DIMS) + len(PARAM_FIELDS)
    scope_values, param_values = form[:len(SCOPE_DIMS)], form[len(SCOPE_DIMS):n]
    recipients, pending, repeat, clear, enabled = form[n:]
    trigger = ctx.triggered_id
    bump = (refresh_count or 0) + 1
    store = context.store()
    viewer = Filters()
    user = access.current()
    if user is None or not user.may(access.EDITORS):
        return (dbc.Alert("Your role may view alerts but not change them.", color="warning",
                          dismissable=True, id="al-refused"), no_update, no_update, no_update)
    visible = _visible(rl.load_rules(context.reader()), viewer)
    if (editing is not None and editing not in visible) or (
            trigger not in ("al-save", "al-evaluate") and selected is not None and selected not in visible):
        return (dbc.Alert("No such rule.", color="warning", dismissable=True), no_update, no_update, no_update)
    try:
        if trigger == "al-save":
            data = {"rule_id": editing, "name": name, "kind": kind, "kpi": kpi,
                    "scope": dict(zip(SCOPE_DIMS, scope_values)),
                    "params": {PARAM_NAMES[f]: v for f, v in zip(PARAM_FIELDS, param_values)
                               if v not in (None, "")},
                    "recipients": recipients, "pending_hours": pending, "repeat_hours": repeat,
                    "clear_hours": clear, "enabled": bool(enabled)}
            rule = rl.parse_rule(data, rl.Catalog.from_store(context.reader()))
            if not _within_scope(rule, viewer):
                raise rl.RuleError(["Scope: choose one or more of your studies; a rule over "
                                    "other studies or the whole portfolio is not yours to set."])
            rule_id = rl.save_rule(store, rule, _actor())
            verb = "saved" if editing else "created"
            return (dbc.Alert(f"Rule #{rule_id} {verb}: {rl.describe(rule)}.", color="success",
                              dismissable=True, id="al-ok"), bump, rule_id, rule_id)
        if trigger == "al-evaluate":
            outcomes = [o for o in ev.evaluate_all(store, base_url=flask.request.host_url)
                        if o.rule.rule_id in visible]
            firing = sum(1 for o in outcomes if o.step and o.step.after.state == "firing")
            queued = sum(1 for o in outcomes if o.message_id)
            return (dbc.Alert(f"Evaluated {len(outcomes)} rule(s): {firing} firing, {queued} e-mail(s) "
                              f"queued (the scheduler sends them).", color="info", dismissable=True),
                    bump, no_update, no_update)
        if selected is None:
            return (dbc.Alert("Select a rule first: click it in the table.", color="warning",
                              dismissable=True), no_update, no_update, no_update)
        if trigger == "al-ack":
            ev.acknowledge(store, int(selected), _actor())
            text = f"Rule #{selected} acknowledged: no more reminders until it resolves."
        elif trigger == "al-silence":
            until = ev.silence(store, int(selected), float(silence_hours or 24), _actor())
            text = f"Rule #{selected} silenced until {until:%Y-%m-%d %H:%M} UTC."
        else:
            ev.silence(store, int(selected), 0, _actor())
            text = f"Silence of rule #{selected} lifted."
        return dbc.Alert(text, color="success", dismissable=True), bump, no_update, no_update
    except rl.RuleError as exc:
        return (dbc.Alert([html.Strong("The rule was not saved:"),
                           html.Ul([html.Li(r) for r in exc.reasons], className="mb-0")],
                          color="danger", id="al-refused"), no_update, no_update, no_update)
    except ev.AlertActionError as exc:
        return dbc.Alert(str(exc), color="warning", dismissable=True), no_update, no_update, no_update


def _download(frame: pd.DataFrame, name: str, search: str | None) -> dict:
    f = from_url(search) or Filters()
    return export.send(frame, name, f)


@callback(Output("al-rules-download", "data"), Input("al-rules-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_rules(_clicks: int | None, search: str | None) -> dict:
    f = from_url(search) or Filters()
    return _download(_rules_frame(context.reader(), f), "alert-rules", search)


@callback(Output("al-history-download", "data"), Input("al-history-export", "n_clicks"),
          State("url", "search"), State("al-selected", "data"), prevent_initial_call=True)
def download_history(_clicks: int | None, search: str | None, selected: int | None) -> dict:
    f = from_url(search) or Filters()
    con = context.reader()
    shown = set(_rules_frame(con, f)["rule_id"])
    history = ev.history_table(con, selected if selected in shown else None, limit=500)
    return _download(history[history["rule_id"].isin(shown)], "alert-history", search)


@callback(Output("al-outbox-download", "data"), Input("al-outbox-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_outbox(_clicks: int | None, search: str | None) -> dict:
    f = from_url(search) or Filters()
    con = context.reader()
    shown = set(_rules_frame(con, f)["rule_id"])
    outbox = ev.outbox_table(con)
    return _download(outbox[outbox["rule_id"].isin(shown)], "alert-emails", search)
