"""Web tracking (page views with UTM, ad clicks) and QR scans of brochures: anonymous
touchpoints of a visitor, linked to a person once the visitor submits the
pre-screener (through ``visitor_link``)."""
from __future__ import annotations

from .context import ACCEPTED, STAGE, LoadContext
from .lookups import channel_id, channel_joins
from .staging import Field
from .sqltext import cat, lit, quoted
from .tabular import TableSpec
from .upsert import upsert
from .validate import (Rule, duplicate, known, one_of, parse_timestamp, required, timestamp,
                       timestamp_not_future)

_TOUCH_COLUMNS = ["touch_id", "pid", "visitor_id", "ts", "kind", "channel_id", "campaign_id",
                  "creative_id", "study_id", "site_id", "hcp_pid", "source_file"]
# A re-export of an event carries no person; keep the one learnt since.
_KEEP_PID = {"pid": "coalesce(excluded.pid, touchpoint.pid)"}

WEB_FIELDS = (
    Field("event_id", "event_id"),
    Field("ts", "ts"),
    Field("visitor_id", "visitor_id"),
    Field("event", "event"),
    Field("study_id", "study_id"),
    Field("utm_source", "utm.source"),
    Field("utm_medium", "utm.medium"),
    Field("utm_campaign", "utm.campaign"),
    Field("utm_content", "utm.content"),
)


def _web_relation(ctx: LoadContext) -> str:
    return (
        "SELECT s.rowid AS _rid, s.event_id, s.ts AS ts_raw, "
        f"{parse_timestamp('s.ts')} AS ts, s.visitor_id, s.event AS event_raw, "
        "lower(s.event) AS event, s.study_id AS study_raw, st.study_id, "
        f"s.utm_source, {channel_id('ch', utm_first=True)} AS channel_id, "
        "s.utm_campaign, c.campaign_id, c.study_id AS campaign_study, "
        "s.utm_content, cr.creative_id, cr.campaign_id AS creative_campaign "
        f"FROM {STAGE} s {channel_joins('ch', 's.utm_source')} "
        "LEFT JOIN study st ON st.study_id = s.study_id "
        "LEFT JOIN campaign c ON c.campaign_id = s.utm_campaign "
        "LEFT JOIN creative cr ON cr.creative_id = s.utm_content"
    )


def creative_in_campaign(src: str) -> Rule:
    """A creative given with a campaign must belong to it."""
    return Rule(src, "creative_campaign IS NOT NULL AND campaign_id IS NOT NULL "
                     "AND creative_campaign <> campaign_id",
                cat(lit("creative "), quoted("utm_content"), lit(" belongs to campaign "),
                    quoted("creative_campaign"), lit(", not "), quoted("campaign_id")))


def _web_rules(ctx: LoadContext) -> list[Rule]:
    return [
        required("event_id", "event_id"),
        required("ts", "ts_raw"),
        timestamp("ts", "ts", "ts_raw", "ts"),
        timestamp_not_future("ts", "ts_raw", "ts", ctx),
        required("event", "event_raw"),
        one_of("event", "event", "event_raw", "event", ("ad_click", "page_view")),
        required("visitor_id", "visitor_id"),
        known("study_id", "study", "study_raw", "study_id"),
        known("utm.source", "channel", "utm_source", "channel_id", where="utm.source"),
        known("utm.campaign", "campaign", "utm_campaign", "campaign_id", where="utm.campaign"),
        known("utm.content", "creative", "utm_content", "creative_id", where="utm.content"),
        creative_in_campaign("utm.content"),
    ]


def _web_write(ctx: LoadContext) -> None:
    upsert(ctx, "touchpoint", _TOUCH_COLUMNS, ["touch_id"],
           "SELECT 'web:' || a.event_id, v.pid, a.visitor_id, a.ts, a.event, a.channel_id, "
           "coalesce(a.campaign_id, a.creative_campaign), a.creative_id, "
           "coalesce(a.study_id, a.campaign_study), NULL, NULL, "
           f"{lit(ctx.file)} FROM {ACCEPTED} a LEFT JOIN visitor_link v ON v.visitor_id = a.visitor_id",
           merge=_KEEP_PID)


# Events without a UTM source are not touchpoints of a channel.
WEB_SPEC = TableSpec(kind="web_events", fmt="jsonl", fields=WEB_FIELDS, relation=_web_relation,
                     rules=_web_rules, key=duplicate("event_id", "event_id"), write=_web_write,
                     ignore="utm_source IS NULL", visitor="visitor_id")

QR_FIELDS = (
    Field("scan_id", "scan_id"),
    Field("scanned_at", "scanned_at"),
    Field("code", "code"),
    Field("visitor_id", "visitor_id", required=False),
)


def _qr_relation(ctx: LoadContext) -> str:
    return (
        "SELECT s.rowid AS _rid, s.scan_id, s.scanned_at AS scanned_raw, "
        f"{parse_timestamp('s.scanned_at')} AS scanned_at, s.code AS code_raw, q.code, "
        "q.channel_id, q.campaign_id, q.site_id, coalesce(c.study_id, si.study_id) AS study_id, "
        "s.visitor_id "
        f"FROM {STAGE} s LEFT JOIN qr_code q ON q.code = s.code "
        "LEFT JOIN campaign c ON c.campaign_id = q.campaign_id "
        "LEFT JOIN site si ON si.site_id = q.site_id"
    )


def _qr_rules(ctx: LoadContext) -> list[Rule]:
    return [
        required("scan_id", "scan_id"),
        required("scanned_at", "scanned_raw"),
        timestamp("scanned_at", "scanned_at", "scanned_raw", "scanned_at"),
        timestamp_not_future("scanned_at", "scanned_raw", "scanned_at", ctx),
        required("code", "code_raw"),
        known("code", "QR code", "code_raw", "code"),
    ]


def _qr_write(ctx: LoadContext) -> None:
    upsert(ctx, "touchpoint", _TOUCH_COLUMNS, ["touch_id"],
           "SELECT 'qr:' || a.scan_id, v.pid, a.visitor_id, a.scanned_at, 'qr_scan', a.channel_id, "
           "a.campaign_id, NULL, a.study_id, a.site_id, NULL, "
           f"{lit(ctx.file)} FROM {ACCEPTED} a LEFT JOIN visitor_link v ON v.visitor_id = a.visitor_id",
           merge=_KEEP_PID)


QR_SPEC = TableSpec(kind="qr_scans", fmt="csv", fields=QR_FIELDS, relation=_qr_relation,
                    rules=_qr_rules, key=duplicate("scan_id", "scan_id"), write=_qr_write,
                    visitor="visitor_id")
