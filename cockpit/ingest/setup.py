"""The trial setup export (``setup_*.json``): studies, sites, channels (with the UTM
sources that mean them), segments, campaigns with their creatives, and QR codes. A
later setup replaces the rows with the same ids. Items are checked one by one; a
refused item is quarantined (row = its position in its list, field = its path) and
the others load."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from .context import FileCounts, FileRejected, Issue, LoadContext
from .frames import python_rows
from .quarantine import quarantine_items
from .upsert import upsert

CHANNEL_KINDS = ("paid_social", "hcp_referral", "community", "newsletter", "paper",
                 "screening_event")


@dataclass(frozen=True)
class Attr:
    """An attribute of a setup item."""

    name: str
    type: str  # text, int, number, date, bool, list
    required: bool = True
    choices: tuple[str, ...] | None = None


STUDY = (Attr("study_id", "text"), Attr("name", "text"), Attr("phase", "text"),
         Attr("therapeutic_area", "text", False), Attr("target_randomized", "int"),
         Attr("start_date", "date"), Attr("planned_end", "date"),
         Attr("value_per_randomized", "number"), Attr("currency", "text", False))
SITE = (Attr("site_id", "text"), Attr("study_id", "text"), Attr("name", "text"),
        Attr("country", "text"), Attr("planned_activation", "date", False),
        Attr("activation_date", "date", False))
CHANNEL = (Attr("channel_id", "text"), Attr("name", "text"),
           Attr("kind", "text", choices=CHANNEL_KINDS), Attr("online", "bool"),
           Attr("utm_sources", "list", False))
SEGMENT = (Attr("segment_id", "text"), Attr("name", "text"), Attr("min_age", "int"),
           Attr("max_age", "int"))
CAMPAIGN = (Attr("campaign_id", "text"), Attr("study_id", "text"), Attr("channel_id", "text"),
            Attr("name", "text"), Attr("start_date", "date", False), Attr("end_date", "date", False),
            Attr("creatives", "list", False))
CREATIVE = (Attr("creative_id", "text"), Attr("name", "text"), Attr("variant", "text"),
            Attr("experiment_id", "text", False), Attr("is_control", "bool", False),
            Attr("planned_share", "number", False))
QR_CODE = (Attr("code", "text"), Attr("channel_id", "text"), Attr("campaign_id", "text", False),
           Attr("site_id", "text", False))

SECTIONS = ("studies", "sites", "channels", "segments", "campaigns", "qr_codes")


class _Refused(Exception):
    def __init__(self, attr: str | None, reason: str):
        super().__init__(reason)
        self.attr = attr
        self.reason = reason


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _check_value(attr: Attr, value: Any) -> Any:
    """The value of ``attr`` in a form the store takes, or _Refused."""
    if value is None or value == "":
        if attr.required:
            raise _Refused(attr.name, f"missing field '{attr.name}'")
        return None
    kind = attr.type
    if kind == "text":
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise _Refused(attr.name, f"{attr.name} is not a text ({_shown(value)})")
        value = str(value).strip()
        if attr.choices and value not in attr.choices:
            raise _Refused(attr.name, f"{attr.name} '{value}' is not one of {', '.join(attr.choices)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Refused(attr.name, f"{attr.name} is not an integer ({_shown(value)})")
        if value < 0:
            raise _Refused(attr.name, f"{attr.name} is negative ({value})")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Refused(attr.name, f"{attr.name} is not a number ({_shown(value)})")
        if value < 0:
            raise _Refused(attr.name, f"{attr.name} is negative ({value})")
        return float(value)
    if kind == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise _Refused(attr.name, f"{attr.name} is not a date ({_shown(value)}, expected YYYY-MM-DD)")
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Refused(attr.name, f"{attr.name} is not true or false ({_shown(value)})")
        return value
    if not isinstance(value, list):
        raise _Refused(attr.name, f"{attr.name} is not a list")
    return value


def _check_item(item: Any, attrs: tuple[Attr, ...]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _Refused(None, "item is not a JSON object")
    return {a.name: _check_value(a, item.get(a.name)) for a in attrs}


def _refer(values: dict, attr: str, what: str, known: set[str]) -> None:
    ref = values.get(attr)
    if ref is not None and ref not in known:
        raise _Refused(attr, f"unknown {what} '{ref}'")


class _Reader:
    """Walks the setup document, collecting accepted items per table and issues."""

    def __init__(self, ctx: LoadContext, doc: dict):
        self.ctx = ctx
        self.doc = doc
        self.issues: list[Issue] = []
        self.read = 0
        self.rows: dict[str, list[dict]] = {}
        self.seen: dict[str, set[str]] = {}  # ids per table: one id once per file
        con = ctx.con
        self.known = {
            "study": {r[0] for r in con.execute("SELECT study_id FROM study").fetchall()},
            "site": {r[0] for r in con.execute("SELECT site_id FROM site").fetchall()},
            "channel": {r[0] for r in con.execute("SELECT channel_id FROM channel").fetchall()},
            "campaign": {r[0] for r in con.execute("SELECT campaign_id FROM campaign").fetchall()},
        }

    def section(self, name: str) -> list:
        items = self.doc.get(name)
        if items is None:
            return []
        if not isinstance(items, list):
            raise FileRejected(f"'{name}' in the setup is not a list")
        return items

    def accept(self, table: str, section: str, items: list, attrs: tuple[Attr, ...], id_attr: str,
               checks=None, path=None, row=None) -> list[tuple[int, dict]]:
        """Check ``items``; keep the valid ones under ``table``. Returns (position, values)
        of the kept ones."""
        kept = []
        seen = self.seen.setdefault(table, set())
        for i, item in enumerate(items, 1):
            self.read += 1
            where = path(i) if path else f"{section}[{i}]"
            try:
                values = _check_item(item, attrs)
                if values[id_attr] in seen:
                    raise _Refused(id_attr, f"duplicate {id_attr} '{values[id_attr]}' in this file")
                if checks:
                    checks(values)
            except _Refused as refused:
                field = f"{where}.{refused.attr}" if refused.attr else where
                raw = json.dumps(item, ensure_ascii=False, default=str)
                self.issues.append(Issue(row or i, field, refused.reason, raw))
                continue
            seen.add(values[id_attr])
            self.rows.setdefault(table, []).append(values)
            kept.append((i, values))
        return kept

    def run(self) -> None:
        for _, values in self.accept("study", "studies", self.section("studies"), STUDY,
                                     "study_id", checks=_study_dates):
            self.known["study"].add(values["study_id"])
        for _, values in self.accept("channel", "channels", self.section("channels"), CHANNEL,
                                     "channel_id", checks=_utm_sources):
            self.known["channel"].add(values["channel_id"])
        self.accept("segment", "segments", self.section("segments"), SEGMENT, "segment_id",
                    checks=_age_band)
        for _, values in self.accept(
                "site", "sites", self.section("sites"), SITE, "site_id",
                checks=lambda v: _refer(v, "study_id", "study", self.known["study"])):
            self.known["site"].add(values["site_id"])
        campaigns = self.accept("campaign", "campaigns", self.section("campaigns"), CAMPAIGN,
                                "campaign_id", checks=self._campaign_refs)
        for _, values in campaigns:
            self.known["campaign"].add(values["campaign_id"])
        for position, values in campaigns:
            # Creatives are numbered within their campaign; the row is the campaign's.
            for _, creative in self.accept(
                    "creative", "creatives", values["creatives"] or [], CREATIVE, "creative_id",
                    checks=_share, row=position,
                    path=lambda j, p=position: f"campaigns[{p}].creatives[{j}]"):
                creative["campaign_id"] = values["campaign_id"]
        self.accept("qr_code", "qr_codes", self.section("qr_codes"), QR_CODE, "code",
                    checks=self._qr_refs)

    def _campaign_refs(self, values: dict) -> None:
        _refer(values, "study_id", "study", self.known["study"])
        _refer(values, "channel_id", "channel", self.known["channel"])

    def _qr_refs(self, values: dict) -> None:
        _refer(values, "channel_id", "channel", self.known["channel"])
        _refer(values, "campaign_id", "campaign", self.known["campaign"])
        _refer(values, "site_id", "site", self.known["site"])


def _study_dates(values: dict) -> None:
    if values["planned_end"] < values["start_date"]:
        raise _Refused("planned_end", f"planned_end {values['planned_end']} is before "
                                      f"start_date {values['start_date']}")


def _age_band(values: dict) -> None:
    if values["max_age"] < values["min_age"]:
        raise _Refused("max_age", f"max_age {values['max_age']} is below min_age {values['min_age']}")


def _utm_sources(values: dict) -> None:
    sources = values.get("utm_sources") or []
    if not all(isinstance(s, str) and s.strip() for s in sources):
        raise _Refused("utm_sources", "utm_sources must be a list of non-empty texts")


def _share(values: dict) -> None:
    share = values.get("planned_share")
    if share is not None and share > 1:
        raise _Refused("planned_share", f"planned_share is not between 0 and 1 ({share})")


# ---------------------------------------------------------------- writing

# Table -> (column, SQL type) in store order, and key.
_TABLES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "study": ([("study_id", "VARCHAR"), ("name", "VARCHAR"), ("phase", "VARCHAR"),
               ("therapeutic_area", "VARCHAR"), ("target_randomized", "INTEGER"),
               ("start_date", "DATE"), ("planned_end", "DATE"),
               ("value_per_randomized", "DOUBLE"), ("currency", "VARCHAR")], ["study_id"]),
    "site": ([("site_id", "VARCHAR"), ("study_id", "VARCHAR"), ("name", "VARCHAR"),
              ("country", "VARCHAR"), ("planned_activation", "DATE"), ("activation_date", "DATE")],
             ["site_id"]),
    "channel": ([("channel_id", "VARCHAR"), ("name", "VARCHAR"), ("kind", "VARCHAR"),
                 ("online", "BOOLEAN")], ["channel_id"]),
    "segment": ([("segment_id", "VARCHAR"), ("name", "VARCHAR"), ("min_age", "INTEGER"),
                 ("max_age", "INTEGER")], ["segment_id"]),
    "campaign": ([("campaign_id", "VARCHAR"), ("study_id", "VARCHAR"), ("channel_id", "VARCHAR"),
                  ("name", "VARCHAR"), ("start_date", "DATE"), ("end_date", "DATE")],
                 ["campaign_id"]),
    "creative": ([("creative_id", "VARCHAR"), ("campaign_id", "VARCHAR"), ("name", "VARCHAR"),
                  ("variant", "VARCHAR"), ("experiment_id", "VARCHAR"), ("is_control", "BOOLEAN"),
                  ("planned_share", "DOUBLE")], ["creative_id"]),
    "qr_code": ([("code", "VARCHAR"), ("channel_id", "VARCHAR"), ("campaign_id", "VARCHAR"),
                 ("site_id", "VARCHAR")], ["code"]),
}
_DEFAULTS = {("study", "currency"): "EUR", ("creative", "is_control"): False}


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _write_table(ctx: LoadContext, table: str, rows: list[dict]) -> None:
    columns, key = _TABLES[table]
    values = {name: ("VARCHAR", [_as_text(r[name] if r.get(name) is not None
                                          else _DEFAULTS.get((table, name))) for r in rows])
              for name, _ in columns}
    select = ", ".join(f"CAST({name} AS {sql_type})" for name, sql_type in columns)
    with python_rows(ctx.con, values) as source:
        upsert(ctx, table, [c for c, _ in columns], key, f"SELECT {select} FROM {source}")


def _write_utm_sources(ctx: LoadContext, channels: list[dict]) -> None:
    """Map each channel's UTM sources to it (lower-case); sources a channel no longer
    lists are dropped."""
    mapping: dict[str, str] = {}
    for values in channels:
        for source in values.get("utm_sources") or []:
            mapping[source.strip().lower()] = values["channel_id"]
    con = ctx.con
    if mapping:
        columns = {"utm_source": ("VARCHAR", list(mapping)),
                   "channel_id": ("VARCHAR", list(mapping.values()))}
        with python_rows(con, columns) as source:
            upsert(ctx, "channel_utm_source", ["utm_source", "channel_id"], ["utm_source"],
                   f"SELECT utm_source, channel_id FROM {source}")
    for values in channels:
        keep = [s for s, c in mapping.items() if c == values["channel_id"]]
        placeholders = ", ".join("?" for _ in keep)
        con.execute(
            "DELETE FROM channel_utm_source WHERE channel_id = ?"
            + (f" AND utm_source NOT IN ({placeholders})" if keep else ""),
            [values["channel_id"], *keep])


def load_setup(ctx: LoadContext, text: str) -> FileCounts:
    """Load a setup document within the caller's transaction."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRejected(f"setup is not valid JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno}") from exc
    if not isinstance(doc, dict):
        raise FileRejected("setup is not a JSON object")
    reader = _Reader(ctx, doc)
    reader.run()
    quarantine_items(ctx, reader.issues)
    for table in _TABLES:
        if reader.rows.get(table):
            _write_table(ctx, table, reader.rows[table])
    _write_utm_sources(ctx, reader.rows.get("channel", []))
    accepted = sum(len(rows) for rows in reader.rows.values())
    return FileCounts(read=reader.read, accepted=accepted, quarantined=len(reader.issues))
