"""Experiments: creative A/B tests, whether a variant wins, how sure we are, and how
much longer to wait. Every number comes from ``cockpit.metrics.experiments``."""
from __future__ import annotations

import re

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from plotly.colors import qualitative

from cockpit import context, export, ui
from cockpit.filters import from_url
from cockpit.metrics import experiments as ex
from cockpit.access import STAFF

dash.register_page(__name__, path="/experiments", name="Experiments", order=30, roles=STAFF)

ALERT_COLOURS = {
    "variant_wins": "success", "control_wins": "warning", "need_more_data": "info",
    "no_difference": "secondary", "srm": "danger", "not_enough_data": "light",
}
LIST_HEADERS = {
    "experiment_id": "Experiment", "study_id": "Study", "channel_id": "Channel",
    "campaign": "Campaign", "arms": "Arms", "status": "Status", "start": "First delivery",
    "end": "Last delivery", "metric": "Metric", "users_per_arm": "Users per arm (smallest)",
    "control": "Control", "control_rate_pct": "Control rate %", "best_variant": "Best variant",
    "best_rate_pct": "Best variant rate %", "best_lift_pct": "Lift vs control %",
    "chance_to_beat_control_pct": "Chance to beat control %", "p_value": "p (verdict)",
    "always_valid_p_holm": "Always-valid p", "srm_p": "Split check p",
    "planned_users_per_arm": "Planned users per arm", "decision": "Decision", "verdict": "Verdict",
}
LIST_TIPS = {
    "status": "Running, ended (planned end passed, or no delivery for a week) or not started.",
    "metric": "The primary metric the verdict is about (CTR unless configured otherwise).",
    "users_per_arm": "Impressions (for CTR), clicks (lead rate) or leads (later rates) of the "
                     "smallest arm in the period.",
    "best_variant": "The variant with the highest observed rate (it may still be no better "
                    "than control: read the verdict).",
    "best_lift_pct": "Relative lift of the best variant: (variant rate - control rate) / "
                     "control rate.",
    "chance_to_beat_control_pct": "Bayesian probability that the best variant's true rate is "
                                  "above control's (Beta(1,1) priors).",
    "p_value": "Holm-adjusted p-value the verdict used for the best variant: z-test, Fisher's "
               "exact test when counts are small, always-valid while the planned sample is "
               "not reached.",
    "always_valid_p_holm": "Always-valid p of the best variant (Holm-adjusted): stays valid "
                           "however often you look. Act on a win during a running test only "
                           "when this is below 0.05.",
    "srm_p": "Sample ratio mismatch check of impressions against the planned split; below "
             "0.001 means the split is broken and the test cannot be trusted.",
    "planned_users_per_arm": "Users per arm expected at the planned end date (known only "
                             "when the campaign has one).",
}
ARM_HEADERS = {
    "arm": "Arm", "creative_id": "Creative", "role": "Role", "planned_share_pct": "Planned share %",
    "impressions": "Impressions", "clicks": "Clicks", "leads": "Leads", "eligible": "Eligible",
    "consented": "Consented", "randomized": "Randomized",
    "rate_pct": "Rate %", "rate_ci_low_pct": "Rate 95% low", "rate_ci_high_pct": "Rate 95% high",
    "diff_pp": "Difference (pp)", "diff_ci_low_pp": "Diff. 95% low", "diff_ci_high_pp": "Diff. 95% high",
    "rel_lift_pct": "Lift %", "rel_lift_ci_low_pct": "Lift 95% low", "rel_lift_ci_high_pct": "Lift 95% high",
    "p_z": "p (z-test)", "p_fisher": "p (Fisher)", "p_holm": "p (Holm)",
    "p_always_valid": "p (always-valid)", "p_verdict": "p used by verdict",
    "always_valid_ci_low_pp": "Always-valid low (pp)", "always_valid_ci_high_pp": "Always-valid high (pp)",
    "chance_to_beat_control_pct": "Chance to beat control %", "mde_pp": "Detectable now (pp)",
    "users_needed_per_arm": "Users per arm to detect this difference",
    "users_still_needed": "More users to detect this difference",
}
ARM_TIPS = {
    "planned_share_pct": "Share of impressions the setup planned for this creative.",
    "rate_pct": "Conversions / users of this arm.",
    "rate_ci_low_pct": "95% Wilson interval of the rate.",
    "diff_pp": "Variant rate minus control rate, in percentage points.",
    "diff_ci_low_pp": "95% Newcombe interval of the difference.",
    "rel_lift_pct": "Difference / control rate; interval from the risk ratio.",
    "p_z": "Pooled two-proportion z-test, two-sided.",
    "p_fisher": "Fisher's exact test against control; used when counts are small.",
    "p_holm": "z-test p adjusted (Holm) for comparing several variants with one control.",
    "p_always_valid": "mSPRT always-valid p: valid however often you look at the test.",
    "p_verdict": "The Holm-adjusted p-value the verdict rests on.",
    "always_valid_ci_low_pp": "Always-valid interval of the difference: valid at every look.",
    "chance_to_beat_control_pct": "Probability that this variant's true rate beats control's "
                                  "(Bayesian, Beta(1,1) priors).",
    "mde_pp": "Smallest difference the test could detect now with 80% power.",
    "users_needed_per_arm": "Users per arm to detect the observed difference with 80% power "
                            "(a 10% relative lift when there is no difference).",
    "users_still_needed": "Users per arm to detect this difference minus the smaller of "
                          "this arm and control. A tiny difference needs very many users: "
                          "the verdict's 'need about N more' also accepts a 10% relative "
                          "lift as worth detecting.",
}
OVERVIEW_HEADERS = {
    "metric": "Metric", "arm": "Variant", "control": "Control",
    "control_rate_pct": "Control rate %", "rate_pct": "Variant rate %",
    "diff_pp": "Difference (pp)", "p_holm": "p (Holm across variants)",
    "p_bh": "p (Holm, then Benjamini-Hochberg across metrics)",
}
OVERVIEW_TIPS = {
    "diff_pp": "Variant rate minus control rate, in percentage points.",
    "p_holm": "Pooled z-test p-value, Holm-adjusted for comparing several variants with "
              "one control (the p (Holm) of the arm table).",
    "p_bh": "The Holm-adjusted p-values of all metrics of this variant, adjusted again "
            "with Benjamini-Hochberg: controls the share of false discoveries among the "
            "metrics called significant.",
}
OVERVIEW_NOTE = (
    "Looking at five metrics raises the chance that one of them looks significant by luck. "
    "Benjamini-Hochberg adjusts the p-values across the metrics so that, among the ones "
    "called significant, the share of false discoveries stays at 5% or less."
)
P_FORMAT = ("params.value == null ? '—' : (params.value < 0.001 ? '< 0.001' "
            ": d3.format('.3f')(params.value))")
SIGNIFICANT_FORMAT = "params.value == null ? '—' : (params.value ? 'yes' : 'no')"
METRIC_OPTIONS = [{"label": f"{m.label} ({m.conversions} / {m.users})", "value": key}
                  for key, m in ex.METRICS.items()]


def layout(**_query) -> html.Div:
    table = ui.table_block("ex-table", "Experiments")
    # the row id is the experiment, so a click on a row names it whatever the sort order
    table.children[1].getRowId = "params.data.experiment_id"
    arms = ui.table_block("ex-arms", "Arms")
    overview = _overview_block()
    for block in (table, arms):
        # render every column (the tables are wide): all of a row is readable and printable
        grid = block.children[1]
        grid.dashGridOptions = {**grid.dashGridOptions, "suppressColumnVirtualisation": True}
    return html.Div([
        html.H3("Experiments"),
        html.P(
            "Creative A/B tests declared in the trial setup: creatives sharing an experiment "
            "id, one of them the control. Counts are of the period in the filter bar. Click a "
            "row, or pick an experiment below, for the detail.",
            className="page-note",
        ),
        html.Div(id="ex-filter-note", className="page-note mb-2"),
        table,
        html.H4("Experiment detail", className="mt-2"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="ex-experiment", clearable=False,
                                 placeholder="Choose an experiment"), md=4, className="mb-2"),
            dbc.Col(dcc.Dropdown(id="ex-metric", options=METRIC_OPTIONS, value=ex.DEFAULT_METRIC,
                                 clearable=False), md=4, className="mb-2"),
            dbc.Col(html.Div(id="ex-metric-meaning", className="page-note"), md=4),
        ], className="align-items-center"),
        html.Div(id="ex-verdict"),
        dbc.Row(id="ex-facts"),
        html.Div(id="ex-notes", className="page-note mb-3"),
        arms,
        overview,
        html.H5("Difference to control over time"),
        html.P(
            "Each day shows the difference to control of everything counted up to that day. "
            "The shaded band is the ordinary 95% interval, valid for one look only; the dotted "
            "lines are the always-valid interval, valid however often you look. A variant is "
            "safely ahead once the dotted lines are both above zero.",
            className="page-note",
        ),
        ui.graph("ex-lift"),
        _explanation(),
    ])


def _overview_block() -> html.Div:
    """The "All metrics" table, its Benjamini-Hochberg switch and the reason for it."""
    block = ui.table_block("ex-overview", "All metrics")
    grid = block.children[1]
    grid.dashGridOptions = {**grid.dashGridOptions, "suppressColumnVirtualisation": True}
    block.children[1:1] = [
        dbc.Switch(id="ex-bh", label="Adjust across metrics (Benjamini-Hochberg)", value=False,
                   className="mb-1"),
        html.P(OVERVIEW_NOTE, className="page-note mb-2"),
    ]
    return block


def _explanation() -> dbc.Card:
    items = [
        ("Metrics", "CTR = clicks / impressions; lead rate = leads / clicks; eligible, consent "
                    "and randomized rate = eligible, consented, randomized / leads. Leads count "
                    "persons whose last touch before the lead was the creative; later stages "
                    "follow the leads of the period (a recent lead may still consent)."),
        ("Rate and 95% interval", "Conversions / users per arm, with the Wilson score interval: "
                                  "the range the true rate lies in with 95% confidence."),
        ("Difference and lift", "Variant minus control in percentage points (Newcombe interval), "
                                "and relative to the control rate (risk-ratio interval). An "
                                "interval that excludes 0 means a real difference."),
        ("p-values", "The chance of a difference at least this large if the creatives were "
                     "equal: z-test; Fisher's exact test when counts are small; Holm-adjusted "
                     "because several variants are compared with one control."),
        ("Peeking protection", "Looking every day and stopping at the first p below 0.05 finds "
                               "'winners' that are not. The always-valid p-value and interval "
                               "(mixture sequential probability ratio test) stay valid however "
                               "often you look. While a planned sample is not reached the "
                               "verdict uses them; without a plan, act on a win during a "
                               "running test only when the always-valid p is below 0.05 too."),
        ("Chance to beat control", "Bayesian probability that the variant's true rate is higher "
                                   "than control's, from Beta(1,1) priors; it is not a p-value."),
        ("Split check (SRM)", "Tests whether impressions were split between the creatives as "
                              "planned. A mismatch (p < 0.001) means delivery was skewed and "
                              "no verdict can be trusted."),
        ("Detectable now and users still needed", "The smallest difference the test could "
                                                  "detect now with 80% power, and how many more "
                                                  "users per arm it needs to detect the observed "
                                                  "difference."),
    ]
    return dbc.Card(dbc.CardBody([
        html.H5("How to read these numbers"),
        html.Dl([part for title, text in items for part in (html.Dt(title), html.Dd(text))],
                className="page-note mb-0"),
    ]), className="mb-4")


# ---------------------------------------------------------------- formatting


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _grid_columns(frame, headers: dict[str, str], tips: dict[str, str]) -> list[dict]:
    defs = ui.column_defs(frame, headers)
    for spec in defs:
        tip = tips.get(spec["field"])
        if tip:
            spec["headerTooltip"] = tip
        if spec["field"] == "verdict":
            spec.update(wrapText=True, autoHeight=True, minWidth=420, flex=4,
                        cellStyle={"lineHeight": "1.4", "paddingTop": "6px",
                                   "paddingBottom": "6px", "wordBreak": "normal"})
        elif spec["field"] in ("experiment_id", "arm"):
            spec.update(pinned="left", minWidth=130)
    return defs


# column definitions depend only on the columns, their types and the titles: made once per
# table shape and shared (Dash only reads them)
_SHOWN_COLUMNS = {table: ui.by_shape(lambda frame, titles=titles: _grid_columns(frame, *titles))
                  for table, titles in (("list", (LIST_HEADERS, LIST_TIPS)), ("arms", (ARM_HEADERS, ARM_TIPS)))}


def _fact(title: str, value: str, sub: str = "", tip: str = "") -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([
        html.Div(title, className="kpi-title", title=tip),
        html.Div(value, className="kpi-value"),
        html.Div(sub, className="kpi-sub"),
    ]), className="kpi-card h-100"), xs=6, md=4, xl=2, className="mb-3")


def _facts(analysis: ex.Analysis) -> list[dbc.Col]:
    exp, result, spec = analysis.experiment, analysis.result, analysis.metric
    dates = f"{exp['start'] or '—'} to {exp['end'] or '—'}"
    facts = [_fact("Status", str(exp["status"]), f"delivery {dates}",
                   "Running, ended (planned end passed, or no delivery for a week) or not started.")]
    if result is None:
        return facts
    smallest = min(a["users"] for a in result["arms"])
    planned = analysis.planned_users_per_arm
    facts.append(_fact(f"{spec.users.capitalize()} per arm", ui.fmt_int(smallest),
                       f"planned {ui.fmt_int(planned)}" if planned else "no planned end",
                       "The smallest arm in the period; the planned size is extrapolated to "
                       "the campaign's planned end date."))
    facts.append(_fact("Split check", "mismatch" if result["srm"] else "as planned",
                       f"p = {_p(result['srm_p'])}",
                       "Chi-square test of impressions against the planned split; a mismatch "
                       "(p < 0.001) means the test cannot be trusted."))
    facts.append(_fact("All arms equal?", _p(result["chi2_p"]), "chi-square p across arms",
                       "Pearson chi-square test that every arm has the same rate."))
    facts.append(_still_needed(analysis))
    safe = analysis.peeking_safe
    facts.append(_fact("Safe against peeking?",
                       {True: "yes", False: "not yet", None: "—"}[safe],
                       "always-valid p " + ", ".join(
                           f"{arm} {_p(p)}" for arm, p in analysis.always_valid_holm.items()),
                       "Does the verdict also hold on the always-valid p-values (Holm-adjusted), "
                       "which stay valid however often you look?"))
    return facts


def _still_needed(analysis: ex.Analysis) -> dbc.Col:
    tip = ("More users per arm before the variants not yet decided can be called (the rule "
           "of the verdict), and the smallest difference the test can detect now.")
    result = analysis.result
    if all(a["p_decision"] <= result["alpha"] for a in result["arms"][1:]):
        return _fact("Users still needed", "none", "every variant differs from control", tip)
    needed = analysis.still_needed
    if needed is None:
        return _fact("Users still needed", "—", "no conversions to estimate from", tip)
    arm, more = needed
    mde = next((a["mde_abs"] for a in result["arms"] if a["arm"] == arm), None)
    detectable = f"; detectable now ±{100 * mde:.2g} pp" if mde else ""
    return _fact("Users still needed", ui.fmt_int(more),
                 f"per arm before {arm} can be called{detectable}", tip)


def _verdict_alert(analysis: ex.Analysis) -> dbc.Alert:
    title = f"{analysis.experiment['experiment_id']} · {analysis.metric.label}: "
    body = [html.Strong(title), analysis.verdict]
    if analysis.peeking_safe is False:
        body += [html.Br(), html.Em(
            "Not yet safe against peeking: the always-valid p-value is above 0.05. If this "
            "test is checked daily, keep it running before acting on the win.")]
    return dbc.Alert(body, color=ALERT_COLOURS.get(analysis.decision, "light"), className="mb-3")


def _lift_figure(lift, problem: str | None) -> dict:
    """Per variant, the cumulative difference to control (solid), its one-look 95%
    interval (shaded) and its always-valid interval (dotted); why not, when it cannot
    be drawn."""
    if lift is None or lift.empty:
        return _lift_layout([], {"annotations": [{"text": problem or "No data in the period.", "showarrow": False,
                                                  "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}]})
    data = []
    palette = qualitative.Plotly
    drawn = lift.dropna(subset=["diff"])
    arms = drawn["arm"].tolist()
    columns = {col: drawn[col].tolist() for col in ("day", "diff", "diff_ci_low", "diff_ci_high",
                                                   "always_valid_low", "always_valid_high")}
    for i, arm in enumerate(dict.fromkeys(arms)):  # the arms in the order they first appear
        rows = [j for j, a in enumerate(arms) if a == arm]
        colour = palette[(i + 1) % len(palette)]
        days = [columns["day"][j] for j in rows]
        pp = {col: [_pp(columns[col][j]) for j in rows] for col in columns if col != "day"}
        data.append({"type": "scatter", "x": days + days[::-1], "y": pp["diff_ci_high"] + pp["diff_ci_low"][::-1],
                     "fill": "toself", "fillcolor": _transparent(colour), "line": {"width": 0},
                     "hoverinfo": "skip", "name": f"{arm}: 95% interval (one look)", "legendgroup": arm})
        for col, label in (("always_valid_high", "always-valid interval"), ("always_valid_low", None)):
            trace = {"type": "scatter", "x": days, "y": pp[col], "mode": "lines",
                     "line": {"dash": "dot", "color": colour}, "showlegend": bool(label), "legendgroup": arm,
                     "hovertemplate": "%{y:.3f} pp<extra></extra>"}
            if label:
                trace["name"] = f"{arm}: {label}"
            data.append(trace)
        data.append({"type": "scatter", "x": days, "y": pp["diff"], "mode": "lines",
                     "line": {"color": colour, "width": 2.5}, "name": f"{arm} minus control", "legendgroup": arm,
                     "hovertemplate": "%{x}: %{y:.3f} pp<extra></extra>"})
    zero = {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": 0, "y1": 0, "yref": "y",
            "line": {"color": "#444", "width": 1}}
    return _lift_layout(data, {"shapes": [zero]}, _y_range(lift))


def _pp(value: float) -> float | None:
    """A difference as percentage points (None where there is none)."""
    return None if value != value else 100 * value


def _y_range(lift) -> list[float] | None:
    """Scale the chart to the intervals after the first tenth of the days: the first
    days' intervals are so wide that they would flatten everything else (zoom out with
    the toolbar to see them)."""
    days = sorted(lift["day"].dropna().unique())
    if len(days) < 10:
        return None
    later = lift[lift["day"] >= days[len(days) // 10]]
    low = 100 * min(later["always_valid_low"].min(), later["diff_ci_low"].min(), 0.0)
    high = 100 * max(later["always_valid_high"].max(), later["diff_ci_high"].max(), 0.0)
    pad = 0.1 * (high - low) or 0.1
    return [low - pad, high + pad]


def _lift_layout(data: list[dict], extra: dict, y_range: list[float] | None = None) -> dict:
    """The lift chart of ``data`` with its axes and legend (``extra``: annotations or shapes)."""
    yaxis = {"title": {"text": "difference to control (percentage points)"}}
    if y_range is not None:
        yaxis["range"] = y_range
    return ui.figure(data, {**extra, "margin": {"l": 50, "r": 10, "t": 10, "b": 40}, "height": 380,
                            "yaxis": yaxis, "legend": {"orientation": "h", "y": -0.2}})


def _transparent(hex_colour: str, alpha: float = 0.15) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"



def _text(value: object) -> str | None:
    """An id sent by the browser, if it is a string at all (it is then looked up, bound)."""
    return value if isinstance(value, str) and value else None


def _adjust(value: object) -> str:
    """'bh' when the switch is on (anything but True counts as off)."""
    return "bh" if value is True else "none"


def _overview_columns(frame, adjust: str) -> list[dict]:
    """Grid columns of the overview: p-values as on the rest of the page, and the
    significance header naming the adjustment it was judged after."""
    after = "Holm, then Benjamini-Hochberg" if adjust == "bh" else "Holm"
    headers = {**OVERVIEW_HEADERS, "significant": f"Significant (p ≤ 0.05 after {after})"}
    defs = _grid_columns(frame, headers, OVERVIEW_TIPS)
    for spec in defs:
        if spec["field"] in ("p_holm", "p_bh"):
            spec["valueFormatter"] = {"function": P_FORMAT}
        elif spec["field"] == "significant":
            # yes/no text rather than the grid's inferred check box
            spec.update(cellDataType=False, valueFormatter={"function": SIGNIFICANT_FORMAT})
        elif spec["field"] == "metric":
            spec.update(pinned="left", minWidth=140)
    return defs


def _metric(value: str | None) -> str:
    """The chosen metric, if it is one of ours (the browser's value is not trusted)."""
    return value if value in ex.METRICS else ex.DEFAULT_METRIC


# ---------------------------------------------------------------- callbacks


@callback(
    Output("ex-table", "rowData"), Output("ex-table", "columnDefs"),
    Output("ex-filter-note", "children"), Output("ex-experiment", "options"),
    Output("ex-experiment", "value"),
    Input("url", "search"), Input("ex-table", "cellClicked"),
    State("ex-experiment", "value"),
)
def refresh_list(search: str | None, clicked: dict | None, chosen: str | None) -> list:
    """The list, its note and the experiment choice; a row click picks that experiment."""
    f = from_url(search)
    if f is None:
        return [no_update] * 5
    con = context.reader()
    if ctx.triggered_id == "ex-table":
        known = set(ex.list_experiments(con, f)["experiment_id"])
        picked = _text((clicked or {}).get("rowId"))
        return [no_update] * 4 + [picked if picked in known else no_update]
    table = ex.summary(con, f)
    ids = table["experiment_id"].tolist()
    options = [{"label": f"{i} · {campaign} ({status})", "value": i}
               for i, campaign, status in zip(ids, table["campaign"].tolist(), table["status"].tolist())]
    notes = [ex.filter_note(f)]
    if table.empty:
        notes.append("No experiment is declared for the chosen studies, phases and channels "
                     "(an experiment is a set of creatives sharing an experiment id in the setup).")
    # keep the chosen experiment while it is still listed (and do not re-fire the detail)
    value = no_update if chosen in ids else (ids[0] if ids else None)
    return [ui.records(table), _SHOWN_COLUMNS["list"](table),
            " ".join(n for n in notes if n), options, value]


@callback(
    Output("ex-metric-meaning", "children"), Output("ex-verdict", "children"),
    Output("ex-facts", "children"), Output("ex-notes", "children"),
    Output("ex-arms", "rowData"), Output("ex-arms", "columnDefs"), Output("ex-lift", "figure"),
    Input("url", "search"), Input("ex-experiment", "value"), Input("ex-metric", "value"),
)
def refresh_detail(search: str | None, experiment_id: str | None, metric: str | None) -> tuple:
    """Verdict, key facts, notes, arm table and lift chart of the chosen experiment."""
    f = from_url(search)
    if f is None:
        return [no_update] * 7
    metric = _metric(metric)
    spec = ex.METRICS[metric]
    meaning = f"{spec.label} = {spec.conversions} / {spec.users}: {spec.meaning}."
    con = context.reader()
    experiment_id = _text(experiment_id)
    analysis = ex.analyse(con, f, experiment_id, metric) if experiment_id else None
    if analysis is None:
        return (meaning, dbc.Alert("Choose an experiment.", color="light"), [], None, [], [],
                _lift_figure(None, "Choose an experiment."))
    arms = ex.arm_table(analysis)
    lift = ex.lift_over_time(con, f, experiment_id, metric, analysis.planned_users_per_arm, analysis.counts)
    notes = html.Ul([html.Li(n) for n in analysis.notes]) if analysis.notes else None
    return (meaning, _verdict_alert(analysis), _facts(analysis), notes, ui.records(arms),
            _SHOWN_COLUMNS["arms"](arms),
            _lift_figure(lift, lift.attrs.get("problem")))


@callback(Output("ex-table-download", "data"), Input("ex-table-export", "n_clicks"),
          State("url", "search"), prevent_initial_call=True)
def download_list(_clicks: int | None, search: str | None) -> dict:
    f = from_url(search)
    if f is None:
        return no_update
    return export.send(ex.summary(context.reader(), f), "experiments", f)


@callback(Output("ex-arms-download", "data"), Input("ex-arms-export", "n_clicks"),
          State("url", "search"), State("ex-experiment", "value"), State("ex-metric", "value"),
          prevent_initial_call=True)
def download_arms(
    _clicks: int | None, search: str | None, experiment_id: str | None, metric: str | None
) -> dict:
    f = from_url(search)
    metric, experiment_id = _metric(metric), _text(experiment_id)
    analysis = ex.analyse(context.reader(), f, experiment_id, metric) if f and experiment_id else None
    if analysis is None:
        return no_update
    name = re.sub(r"[^A-Za-z0-9_.\-]", "", f"experiment-{experiment_id}-{metric}")
    return export.send(ex.arm_table(analysis), name, f)


@callback(
    Output("ex-overview", "rowData"), Output("ex-overview", "columnDefs"),
    Input("url", "search"), Input("ex-experiment", "value"), Input("ex-bh", "value"),
)
def refresh_overview(search: str | None, experiment_id: str | None, bh: object) -> tuple:
    """Every metric of the chosen experiment, Benjamini-Hochberg-adjusted when switched on."""
    f = from_url(search)
    if f is None:
        return no_update, no_update
    experiment_id, adjust = _text(experiment_id), _adjust(bh)
    if experiment_id is None:
        return [], []
    frame = ex.metrics_overview(context.reader(), f, experiment_id, adjust)
    return ui.records(frame), _overview_columns(frame, adjust)


@callback(Output("ex-overview-download", "data"), Input("ex-overview-export", "n_clicks"),
          State("url", "search"), State("ex-experiment", "value"), State("ex-bh", "value"),
          prevent_initial_call=True)
def download_overview(
    _clicks: int | None, search: str | None, experiment_id: str | None, bh: object
) -> dict:
    f, experiment_id, adjust = from_url(search), _text(experiment_id), _adjust(bh)
    if f is None or experiment_id is None:
        return no_update
    frame = ex.metrics_overview(context.reader(), f, experiment_id, adjust)
    suffix = "-bh" if adjust == "bh" else ""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "", f"experiment-{experiment_id}-all-metrics{suffix}")
    return export.send(frame, name, f)
