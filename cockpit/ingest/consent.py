"""Consent exports: an append-only history of consents granted or withdrawn per person
and purpose, into ``consent_event`` keyed by consent_id."""
from __future__ import annotations

from .context import ACCEPTED, PIDS, STAGE, LoadContext
from .leads import ts_items, ts_rules
from .lookups import channel_id, channel_joins
from .staging import Field
from .sqltext import lit
from .tabular import TableSpec
from .upsert import upsert
from .validate import Rule, duplicate, known, one_of, required

PURPOSES = ("tracking", "contact_research")
ACTIONS = ("granted", "withdrawn")

FIELDS = (
    Field("consent_id", "consent_id"),
    Field("ts", "ts"),
    Field("email", "email", contact=True),
    Field("phone", "phone", contact=True),
    Field("purpose", "purpose"),
    Field("action", "action"),
    Field("channel", "channel"),
    Field("notice_version", "notice_version"),
)


def _relation(ctx: LoadContext) -> str:
    return (
        f"SELECT s.rowid AS _rid, s.consent_id, {ts_items('ts')}, k.pid, "
        "s.purpose AS purpose_raw, lower(s.purpose) AS purpose, "
        "s.action AS action_raw, lower(s.action) AS action, "
        f"s.channel AS channel_raw, {channel_id('ch', utm_first=False)} AS channel_id, "
        "s.notice_version "
        f"FROM {STAGE} s LEFT JOIN {PIDS} k ON k._rid = s.rowid {channel_joins('ch', 's.channel')}"
    )


def _rules(ctx: LoadContext) -> list[Rule]:
    return [
        required("consent_id", "consent_id"),
        *ts_rules("ts", ctx),
        Rule("email", "pid IS NULL", lit("no usable e-mail or phone")),
        required("purpose", "purpose_raw"),
        one_of("purpose", "purpose", "purpose_raw", "purpose", PURPOSES),
        required("action", "action_raw"),
        one_of("action", "action", "action_raw", "action", ACTIONS),
        known("channel", "channel", "channel_raw", "channel_id", where="channel"),
    ]


def _write(ctx: LoadContext) -> None:
    upsert(ctx, "consent_event",
           ["consent_id", "pid", "purpose", "granted", "ts", "channel_id", "notice_version",
            "source_file"],
           ["consent_id"],
           "SELECT consent_id, pid, purpose, action = 'granted', ts, channel_id, notice_version, "
           f"{lit(ctx.file)} FROM {ACCEPTED}")


SPEC = TableSpec(kind="consent", fmt="jsonl", fields=FIELDS, relation=_relation, rules=_rules,
                 key=duplicate("consent_id", "consent_id"), write=_write,
                 contacts=("email", "phone"))
