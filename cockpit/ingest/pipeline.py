"""Site pipeline exports: status changes of a patient at a site (contacted, consented,
screened, randomized, exits) into ``funnel_event``. A late correction re-exports the
same record_id with new values and replaces the event."""
from __future__ import annotations

from .context import ACCEPTED, PIDS, STAGE, LoadContext
from .leads import FUNNEL_COLUMNS, place_rules, ts_items, ts_rules
from .staging import Field
from .sqltext import cat, lit, quoted
from .tabular import TableSpec
from .upsert import upsert
from .validate import Rule, duplicate, one_of, required

STATUSES = ("contacted", "not_reachable", "consented", "declined", "screened", "screen_failed",
            "randomized", "withdrew")

FIELDS = (
    Field("record_id", "record_id"),
    Field("study_id", "study_id"),
    Field("site_id", "site_id"),
    Field("email", "email", contact=True),
    Field("phone", "phone", contact=True),
    Field("status", "status"),
    Field("status_at", "status_at"),
    Field("reason", "reason", required=False),
)


def _relation(ctx: LoadContext) -> str:
    return (
        "SELECT s.rowid AS _rid, s.record_id, s.study_id AS study_raw, st.study_id, "
        "s.site_id AS site_raw, si.site_id, si.study_id AS site_study, k.pid, "
        "s.status AS status_raw, lower(s.status) AS status, "
        f"{ts_items('status_at')}, s.reason AS reason_raw, lower(s.reason) AS reason "
        f"FROM {STAGE} s LEFT JOIN {PIDS} k ON k._rid = s.rowid "
        "LEFT JOIN study st ON st.study_id = s.study_id "
        "LEFT JOIN site si ON si.site_id = s.site_id"
    )


def _rules(ctx: LoadContext) -> list[Rule]:
    return [
        required("record_id", "record_id"),
        *place_rules(site_needed=True),
        Rule("email", "pid IS NULL", lit("no usable e-mail or phone")),
        required("status", "status_raw"),
        one_of("status", "status", "status_raw", "status", STATUSES),
        *ts_rules("status_at", ctx),
        # Reasons are codes; free text could name or describe the patient.
        Rule("reason", "reason_raw IS NOT NULL AND NOT regexp_full_match(reason, '[a-z0-9_]{1,64}')",
             cat(lit("reason "), quoted("reason_raw"),
                 lit(" is not a code (letters, digits and _ only)"))),
    ]


def _write(ctx: LoadContext) -> None:
    upsert(ctx, "funnel_event", FUNNEL_COLUMNS, ["event_id"],
           "SELECT 'pipe:' || record_id, pid, study_id, site_id, "
           "CASE WHEN status = 'withdrew' THEN 'withdrawn' ELSE status END, status_at, reason, "
           f"{lit(ctx.file)} FROM {ACCEPTED}")


SPEC = TableSpec(kind="site_pipeline", fmt="csv", fields=FIELDS, relation=_relation, rules=_rules,
                 key=duplicate("record_id", "record_id"), write=_write, contacts=("email", "phone"))
