"""Alert rules: the kinds, their parameters, validation with reasons a manager can act
on, and storage (writes through the store's writer only).

Kinds (each scoped by a ``Filters`` value without dates, with recipients):
- ``threshold``: a KPI over the trailing ``window_days`` above (``>``) or below (``<``)
  a fixed ``value`` (e.g. cost per randomized > 5,000 €, CTR < 0.5%).
- ``change``: the KPI over the last ``window_days`` changed by at least ``pct`` percent
  ``down``, ``up`` or ``either`` way against its value over the ``baseline_days``
  before (e.g. CTR of the last 7 days down 30% against the 4 weeks before). Both
  values are pooled over their days (DESIGN.md: CTR = clicks / impressions).
- ``drift``: a control chart on the KPI's daily values (``cockpit.alerts.evaluate``):
  EWMA (``lambda``, ``L``) or tabular CUSUM (``k``, ``h``), the normal level and
  spread taken from the ``baseline_days`` before the last ``monitor_days``.
- ``pace``: randomized to date below ``min_pct`` percent of the straight-line target
  curve of the studies in scope.
- ``stale``: no new record of export ``source`` for more than ``max_hours``.

Timing, the same for every kind: the condition must hold ``pending_hours`` before the
alert fires; while it fires a reminder goes out every ``repeat_hours`` unless it is
acknowledged; it resolves once the condition has been gone ``clear_hours`` (this stops
an alert that hovers at its limit from resolving and firing again day after day).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Mapping

import duckdb

from cockpit import audit
from cockpit.filters import DIMENSIONS, UNLIMITED, FilterError, Filters
from cockpit.metrics import daily, dimensions
from cockpit.metrics.counts import SPEND_COLUMNS

KINDS: dict[str, str] = {
    "threshold": "KPI above or below a fixed value",
    "change": "KPI changed against its trailing baseline",
    "drift": "statistical drift of a daily KPI (control chart)",
    "pace": "enrolment behind the target curve",
    "stale": "no new data from a source",
}
KPI_KINDS = ("threshold", "change", "drift")

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "threshold": {"op": ">", "value": None, "window_days": 28},
    "change": {"direction": "down", "pct": 30.0, "window_days": 7, "baseline_days": 28},
    "drift": {"method": "ewma", "direction": "either", "lambda": 0.2, "L": 3.0, "k": 0.5, "h": 5.0,
              "baseline_days": 28, "monitor_days": 14},
    "pace": {"min_pct": 80.0},
    "stale": {"source": None, "max_hours": 48.0},
}
DEFAULT_TIMING = {"pending_hours": 24.0, "repeat_hours": 168.0, "clear_hours": 72.0}

DIRECTIONS = ("down", "up", "either")
METHODS = ("ewma", "cusum")
MAX_RECIPIENTS = 50
MAX_HOURS = 24.0 * 90
MIN_BASELINE_DAYS = 14  # fewer daily values give no usable standard deviation

# one address, no display name: letters, digits and the usual punctuation before the
# @, a dotted domain after it; nothing that could break a mail header (, ; < > newline)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class RuleError(ValueError):
    """A rule was refused; ``reasons`` says why, one sentence per problem."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Rule:
    """A validated alert rule (make it with ``parse_rule``)."""

    name: str
    kind: str
    kpi: str | None
    scope: Filters
    params: Mapping[str, Any]
    recipients: tuple[str, ...]
    pending_hours: float = DEFAULT_TIMING["pending_hours"]
    repeat_hours: float = DEFAULT_TIMING["repeat_hours"]
    clear_hours: float = DEFAULT_TIMING["clear_hours"]
    enabled: bool = True
    rule_id: int | None = None

    def to_row(self) -> dict[str, Any]:
        """The rule as the columns of ``alert_rule`` (and of the form)."""
        return {"rule_id": self.rule_id, "name": self.name, "kind": self.kind, "kpi": self.kpi,
                "params": json.dumps(dict(self.params), sort_keys=True),
                "scope": self.scope.to_query(), "recipients": ", ".join(self.recipients),
                "pending_hours": self.pending_hours, "repeat_hours": self.repeat_hours,
                "clear_hours": self.clear_hours, "enabled": self.enabled}


# ---------------------------------------------------------------- validation


@dataclass(frozen=True)
class Catalog:
    """The ids a scope may name (studies, phases, sites, segments, channels)."""

    ids: Mapping[str, frozenset[str]]

    @classmethod
    def from_store(cls, con: duckdb.DuckDBPyConnection) -> "Catalog":
        options = dimensions.filter_options(con)
        return cls({dim: frozenset(o["value"] for o in opts) for dim, opts in options.items()})


def parse_rule(data: Mapping[str, Any], catalog: Catalog | None = None) -> Rule:
    """A ``Rule`` from loose values (the form, a config file, a database row).

    Raises ``RuleError`` with every reason the rule is refused, so a manager can fix
    them all at once. ``catalog`` (ids known to the store) lets the scope be checked
    against real studies, sites, channels and segments.
    """
    reasons: list[str] = []
    name = _name(data.get("name"), reasons)
    kind = str(data.get("kind") or "").strip()
    if kind not in KINDS:
        reasons.append(f"Kind: choose one of {', '.join(KINDS)}.")
        raise RuleError(reasons)
    scope = _scope(data.get("scope"), catalog, reasons)
    kpi = _kpi(kind, data.get("kpi"), reasons)
    params = _params(kind, kpi, data.get("params"), reasons)
    if scope is not None:
        _scope_fits(kind, kpi, params, scope, reasons)
    recipients = _recipients(data.get("recipients"), reasons)
    timing = {key: _hours(key, data.get(key, default), reasons)
              for key, default in DEFAULT_TIMING.items()}
    if timing["repeat_hours"] is not None and timing["repeat_hours"] < 1:
        reasons.append("Repeat interval: at least 1 hour (reminders more often than that are noise).")
    if reasons:
        raise RuleError(reasons)
    rule_id = data.get("rule_id")
    return Rule(name=name, kind=kind, kpi=kpi, scope=scope, params=params, recipients=recipients,
                enabled=_flag(data.get("enabled", True)),
                rule_id=int(rule_id) if rule_id not in (None, "") else None, **timing)


def _name(value: Any, reasons: list[str]) -> str:
    name = str(value or "").strip()
    if not name:
        reasons.append("Name: give the rule a name (it is the subject of the e-mails).")
    elif len(name) > 100:
        reasons.append("Name: at most 100 characters.")
    elif any(c in name for c in "\r\n\t") or not name.isprintable():
        reasons.append("Name: one line of text, without tabs or control characters.")
    return name


def _scope(value: Any, catalog: Catalog | None, reasons: list[str]) -> Filters | None:
    """The scope from a Filters, a URL query or a mapping of dimension -> ids."""
    try:
        if isinstance(value, Filters):
            scope = value
        elif isinstance(value, Mapping):
            scope = Filters.make(**{d: value.get(d) for d in DIMENSIONS},
                                 start=value.get("start"), end=value.get("end"))
        else:
            scope = Filters.from_query(str(value or ""))
    except (FilterError, TypeError) as exc:
        reasons.append(f"Scope: {exc}.")
        return None
    if scope.start or scope.end:
        reasons.append("Scope: a rule has no date range; its window is part of the rule "
                       "(remove the dates).")
    if catalog is not None:
        for dim in DIMENSIONS:
            unknown = [v for v in getattr(scope, dim) if v not in catalog.ids.get(dim, ())]
            if unknown:
                reasons.append(f"Scope: unknown {dim} {', '.join(unknown)}.")
    # A rule watches the scope it states, whoever saved it or triggers its evaluation;
    # who may see the rule is decided where it is shown.
    return replace(scope, start=None, end=None, scope=UNLIMITED)


def _kpi(kind: str, value: Any, reasons: list[str]) -> str | None:
    if kind not in KPI_KINDS:
        return None
    kpi = str(value or "").strip()
    if not kpi:
        reasons.append(f"KPI: a {kind} rule watches a KPI; choose one.")
        return None
    if kpi not in daily.KPIS:
        reasons.append(f"KPI: unknown KPI {kpi!r}; choose one of {', '.join(daily.KPIS)}.")
        return None
    return kpi


def _scope_fits(kind: str, kpi: str | None, params: Mapping[str, Any], scope: Filters,
                reasons: list[str]) -> None:
    """The scope's dimensions must be ones the watched numbers can be split by."""
    if kind in KPI_KINDS and kpi:
        columns = daily.KPIS[kpi].columns
        cannot = scope.unsupported(columns)
        if cannot and columns is SPEND_COLUMNS:
            reasons.append(f"Scope: {daily.KPIS[kpi].label} needs spend, which is recorded per study "
                           f"and channel; it cannot be split by {' or '.join(cannot)}.")
        elif cannot:
            reasons.append(f"Scope: {daily.KPIS[kpi].label} cannot be split by {' or '.join(cannot)}.")
    elif kind == "pace":
        cannot = [d for d in ("site", "segment", "channel") if getattr(scope, d)]
        if cannot:
            reasons.append(f"Scope: enrolment targets are set per study; a pace rule cannot be "
                           f"limited to a {' or '.join(cannot)}.")
    elif kind == "stale" and params.get("source") in daily.SOURCES:
        columns = daily.source_columns(params["source"])
        cannot = scope.unsupported(columns)
        if cannot:
            name = daily.SOURCES[params["source"]][0]
            reasons.append(f"Scope: the {name} cannot be split by {' or '.join(cannot)}.")


def _params(kind: str, kpi: str | None, given: Any, reasons: list[str]) -> dict[str, Any]:
    if isinstance(given, str):
        try:
            given = json.loads(given or "{}")
        except ValueError:
            reasons.append("Parameters: not valid JSON.")
            given = {}
    given = dict(given or {})
    raw = {**DEFAULT_PARAMS[kind], **{k: v for k, v in given.items() if k in DEFAULT_PARAMS[kind]}}
    return {"threshold": _threshold_params, "change": _change_params, "drift": _drift_params,
            "pace": _pace_params, "stale": _stale_params}[kind](raw, kpi, reasons)


def _threshold_params(p: dict, kpi: str | None, reasons: list[str]) -> dict:
    out = {"op": str(p["op"]).strip()}
    if out["op"] not in (">", "<"):
        reasons.append("Comparison: '>' (alert when above) or '<' (alert when below).")
    value = _number("Threshold", p["value"], reasons)
    if value is not None and value < 0:
        reasons.append("Threshold: must not be negative (no KPI here can be).")
    elif value is not None and kpi and daily.KPIS[kpi].unit == "%" and value > 100:
        reasons.append(f"Threshold: {daily.KPIS[kpi].label} is a percentage; give a value from 0 to 100.")
    elif value == 0 and out["op"] == "<":
        reasons.append("Threshold: no KPI here is below 0, so '< 0' would never fire.")
    out["value"] = value
    out["window_days"] = _int("Window", p["window_days"], 1, 365, reasons)
    return out


def _change_params(p: dict, kpi: str | None, reasons: list[str]) -> dict:
    out = {"direction": _choice("Direction", p["direction"], DIRECTIONS, reasons),
           "pct": _number("Change", p["pct"], reasons),
           "window_days": _int("Window", p["window_days"], 1, 90, reasons),
           "baseline_days": _int("Baseline", p["baseline_days"], 7, 365, reasons)}
    pct = out["pct"]
    if pct is not None and not 1 <= pct <= 1000:
        reasons.append("Change: a percentage from 1 to 1000.")
    elif pct is not None and pct >= 100 and out["direction"] == "down":
        reasons.append("Change: a KPI can fall by less than 100% only; a fall of 100% or more never happens.")
    return out


def _drift_params(p: dict, kpi: str | None, reasons: list[str]) -> dict:
    out = {"method": _choice("Method", p["method"], METHODS, reasons),
           "direction": _choice("Direction", p["direction"], DIRECTIONS, reasons),
           "baseline_days": _int("Baseline", p["baseline_days"], MIN_BASELINE_DAYS, 365, reasons),
           "monitor_days": _int("Monitored days", p["monitor_days"], 1, 90, reasons)}
    if out["method"] == "ewma":
        lam = _number("EWMA lambda", p["lambda"], reasons)
        if lam is not None and not 0 < lam <= 1:
            reasons.append("EWMA lambda: the weight of the newest day, above 0 and at most 1 "
                           "(0.2 is usual).")
        limit = _number("EWMA L", p["L"], reasons)
        if limit is not None and not 1 <= limit <= 6:
            reasons.append("EWMA L: the width of the control limits in standard deviations, "
                           "from 1 to 6 (3 is usual).")
        out.update({"lambda": lam, "L": limit})
    elif out["method"] == "cusum":
        k = _number("CUSUM k", p["k"], reasons)
        if k is not None and not 0 <= k <= 3:
            reasons.append("CUSUM k: the allowance in standard deviations, from 0 to 3 (0.5 is usual).")
        h = _number("CUSUM h", p["h"], reasons)
        if h is not None and not 1 <= h <= 20:
            reasons.append("CUSUM h: the decision limit in standard deviations, from 1 to 20 "
                           "(4 or 5 is usual).")
        out.update({"k": k, "h": h})
    return out


def _pace_params(p: dict, kpi: str | None, reasons: list[str]) -> dict:
    pct = _number("Minimum pace", p["min_pct"], reasons)
    if pct is not None and not 1 <= pct <= 100:
        reasons.append("Minimum pace: a percentage of the target curve from 1 to 100.")
    return {"min_pct": pct}


def _stale_params(p: dict, kpi: str | None, reasons: list[str]) -> dict:
    source = str(p["source"] or "").strip()
    if source not in daily.SOURCES:
        reasons.append(f"Source: choose one of {', '.join(daily.SOURCES)}.")
    hours = _number("Maximum age", p["max_hours"], reasons)
    if hours is not None and not 1 <= hours <= 24 * 365:
        reasons.append("Maximum age: hours from 1 to 8760.")
    return {"source": source, "max_hours": hours}


def _recipients(value: Any, reasons: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = re.split(r"[,;\s]+", value)
    else:
        parts = [str(v) for v in (value or [])]
    found, seen = [], set()
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if len(part) > 254 or not _EMAIL.match(part):
            reasons.append(f"Recipients: {part!r} is not an e-mail address (name@example.org).")
        elif part.lower() not in seen:
            seen.add(part.lower())
            found.append(part)
    if not found and not any(r.startswith("Recipients") for r in reasons):
        reasons.append("Recipients: at least one e-mail address.")
    if len(found) > MAX_RECIPIENTS:
        reasons.append(f"Recipients: at most {MAX_RECIPIENTS} addresses (use a mailing list).")
    return tuple(found)


def _hours(key: str, value: Any, reasons: list[str]) -> float | None:
    label = {"pending_hours": "Pending period", "repeat_hours": "Repeat interval",
             "clear_hours": "Clear period"}[key]
    hours = _number(label, value, reasons)
    if hours is not None and not 0 <= hours <= MAX_HOURS:
        reasons.append(f"{label}: hours from 0 to {MAX_HOURS:.0f}.")
    return hours


def _number(label: str, value: Any, reasons: list[str]) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        reasons.append(f"{label}: a number is required.")
        return None
    if not math.isfinite(number):
        reasons.append(f"{label}: a number is required.")
        return None
    return number


def _int(label: str, value: Any, low: int, high: int, reasons: list[str]) -> int | None:
    number = _number(label, value, reasons)
    if number is None:
        return None
    if number != int(number) or not low <= number <= high:
        reasons.append(f"{label}: whole days from {low} to {high}.")
        return None
    return int(number)


def _choice(label: str, value: Any, allowed: tuple[str, ...], reasons: list[str]) -> str:
    text = str(value or "").strip()
    if text not in allowed:
        reasons.append(f"{label}: one of {', '.join(allowed)}.")
    return text


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


# ---------------------------------------------------------------- description


def describe(rule: Rule) -> str:
    """The rule's condition in words, e.g. 'CTR over the last 7 days down 30% or more
    against the 28 days before'."""
    p = rule.params
    if rule.kind == "pace":
        return f"randomized to date below {p['min_pct']:g}% of the target curve"
    if rule.kind == "stale":
        return f"no new {daily.SOURCES[p['source']][0]} data for more than {p['max_hours']:g} hours"
    kpi = daily.KPIS[rule.kpi]
    if rule.kind == "threshold":
        word = "above" if p["op"] == ">" else "below"
        return (f"{kpi.label} over the last {_days(p['window_days'])} {word} "
                f"{format_value(p['value'], kpi.unit, kpi.decimals)}")
    if rule.kind == "change":
        way = {"down": "down", "up": "up", "either": "up or down"}[p["direction"]]
        return (f"{kpi.label} over the last {_days(p['window_days'])} {way} {p['pct']:g}% or more "
                f"against the {_days(p['baseline_days'])} before")
    way = {"down": "downward", "up": "upward", "either": "upward or downward"}[p["direction"]]
    return f"{way} drift of the daily {kpi.label} ({method_text(p)})"


def method_text(p: Mapping[str, Any]) -> str:
    """The control chart and its parameters, as shown to managers."""
    base = (f"normal level and spread from the {p['baseline_days']} days before the last "
            f"{p['monitor_days']} days")
    if p["method"] == "ewma":
        return f"EWMA chart, λ = {p['lambda']:g}, limits ± {p['L']:g} σ; {base}"
    return f"CUSUM chart, k = {p['k']:g} σ, h = {p['h']:g} σ; {base}"


def scope_text(scope: Filters) -> str:
    """The scope in words ('all data' when nothing is set)."""
    return scope.label()


def format_value(value: float | None, unit: str, decimals: int = 0) -> str:
    """A KPI value with its unit, e.g. '0.58%', '€4,210', '3.5 working days'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if unit == "%":
        return f"{value:,.{decimals}f}%"
    if unit == "€":
        return f"€{value:,.{decimals}f}"
    if unit == "persons":
        return f"{value:,.0f}"
    return f"{value:,.{decimals}f} {unit}"


def _days(n: int) -> str:
    return "day" if n == 1 else f"{n} days"


# ---------------------------------------------------------------- storage


def load_rules(con: duckdb.DuckDBPyConnection, enabled_only: bool = False) -> list[Rule]:
    """Every stored rule, by id. Rows are validated again without the catalog (a study
    removed since keeps its rules readable); a row that no longer validates is skipped
    and reported by ``broken_rules``."""
    return [rule for rule in _stored(con, enabled_only) if isinstance(rule, Rule)]


def broken_rules(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """Stored rules that no longer validate (for example after a KPI was renamed), with why."""
    return [item for item in _stored(con, False) if not isinstance(item, Rule)]


def _stored(con: duckdb.DuckDBPyConnection, enabled_only: bool) -> list:
    where = "WHERE enabled" if enabled_only else ""
    rows = con.execute(f"SELECT * FROM alert_rule {where} ORDER BY rule_id").df()
    out: list = []
    for row in rows.to_dict("records"):
        try:
            out.append(parse_rule(row))
        except RuleError as exc:
            out.append((int(row["rule_id"]), str(exc)))
    return out


def get_rule(con: duckdb.DuckDBPyConnection, rule_id: int) -> Rule | None:
    rows = con.execute("SELECT * FROM alert_rule WHERE rule_id = ?", [rule_id]).df()
    if rows.empty:
        return None
    return parse_rule(rows.to_dict("records")[0])


def save_rule(store, rule: Rule, actor: str, now: datetime | None = None) -> int:
    """Insert (``rule_id`` None) or update the rule through the store's writer; returns
    its id. Editing keeps the rule's state, so an alert that is firing still resolves
    (with its message) when the changed condition no longer holds."""
    now = now or datetime.utcnow()
    row = rule.to_row()

    def write(con: duckdb.DuckDBPyConnection) -> int:
        con.execute("BEGIN TRANSACTION")
        try:
            if rule.rule_id is None:
                rule_id = con.execute(
                    """INSERT INTO alert_rule (name, kind, kpi, params, scope, recipients,
                           pending_hours, repeat_hours, clear_hours, enabled,
                           created_at, created_by, updated_at, updated_by)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rule_id""",
                    [row["name"], row["kind"], row["kpi"], row["params"], row["scope"], row["recipients"],
                     row["pending_hours"], row["repeat_hours"], row["clear_hours"], row["enabled"],
                     now, actor, now, actor]).fetchone()[0]
                action = "created"
            else:
                before = con.execute("SELECT * EXCLUDE (rule_id, created_at, created_by, updated_at, updated_by) "
                                     "FROM alert_rule WHERE rule_id = ?", [rule.rule_id]).df()
                old = before.to_dict("records")[0] if not before.empty else None
                found = con.execute(
                    """UPDATE alert_rule SET name = ?, kind = ?, kpi = ?, params = ?, scope = ?,
                           recipients = ?, pending_hours = ?, repeat_hours = ?, clear_hours = ?,
                           enabled = ?, updated_at = ?, updated_by = ?
                       WHERE rule_id = ? RETURNING rule_id""",
                    [row["name"], row["kind"], row["kpi"], row["params"], row["scope"], row["recipients"],
                     row["pending_hours"], row["repeat_hours"], row["clear_hours"], row["enabled"],
                     now, actor, rule.rule_id]).fetchall()
                if not found:
                    raise RuleError([f"Rule {rule.rule_id} does not exist (deleted meanwhile?)."])
                rule_id, action = rule.rule_id, "edited"
            log_action(con, rule_id, actor, action, json.dumps(row, sort_keys=True, default=str), now,
                       old=None if action == "created" else old)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return int(rule_id)

    return store.write_sync(write)


def log_action(con: duckdb.DuckDBPyConnection, rule_id: int, actor: str, action: str,
               detail: str | None, now: datetime, old: Any = None) -> None:
    """Record what a person did with a rule (inside the caller's transaction), in the
    rule's history and in the audit log."""
    con.execute("INSERT INTO alert_action (rule_id, ts, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
                [rule_id, now, actor, action, detail])
    audit.append(con, actor, f"alert_rule.{action}", f"rule {rule_id}", old_value=old, new_value=detail)


__all__ = ["KINDS", "DEFAULT_PARAMS", "DEFAULT_TIMING", "Rule", "RuleError", "Catalog", "parse_rule",
           "describe", "method_text", "scope_text", "format_value", "load_rules", "broken_rules",
           "get_rule", "save_rule", "log_action"]
