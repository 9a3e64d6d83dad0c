"""Exports that bring persons in (leads): pre-screener responses, HCP referrals and
screening-event sign-ups. Each produces the person (pseudonymous), its lead funnel
events and a touchpoint of the channel the lead came through."""
from __future__ import annotations

from .context import ACCEPTED, PIDS, STAGE, LoadContext
from .lookups import channel_id, channel_joins, channel_of_kind
from .people import link_visitors, upsert_persons
from .staging import Field
from .sqltext import cat, lit, quoted
from .tabular import TableSpec
from .upsert import upsert
from .validate import (Rule, birth_year, duplicate, known, one_of, parse_timestamp, required,
                       site_of_study, timestamp, timestamp_not_future)
from .web import creative_in_campaign

INELIGIBLE_REASONS = ("age", "diagnosis", "medication", "comorbidity", "distance")
FUNNEL_COLUMNS = ["event_id", "pid", "study_id", "site_id", "stage", "ts", "reason", "source_file"]
TOUCH_COLUMNS = ["touch_id", "pid", "visitor_id", "ts", "kind", "channel_id", "campaign_id",
                 "creative_id", "study_id", "site_id", "hcp_pid", "source_file"]


# ---------------------------------------------------------------- shared parts

def ts_items(name: str) -> str:
    """Raw and parsed columns of a timestamp field."""
    return f"s.{name} AS {name}_raw, {parse_timestamp('s.' + name)} AS {name}"


def ts_rules(name: str, ctx: LoadContext, needed: bool = True) -> list[Rule]:
    """A timestamp field: present (when ``needed``), parseable, not in the future."""
    found = [required(name, f"{name}_raw")] if needed else []
    return found + [timestamp(name, name, f"{name}_raw", name),
                    timestamp_not_future(name, f"{name}_raw", name, ctx)]


PLACE_ITEMS = ("s.study_id AS study_raw, st.study_id, "
               "s.site_id AS site_raw, si.site_id, si.study_id AS site_study")
PERSON_ITEMS = ("k.pid, k.hcp_pid, s.birth_year AS birth_raw, "
                "try_cast(s.birth_year AS INTEGER) AS birth_year")
BASE_JOINS = (f"LEFT JOIN {PIDS} k ON k._rid = s.rowid "
              "LEFT JOIN study st ON st.study_id = s.study_id "
              "LEFT JOIN site si ON si.site_id = s.site_id")


def place_rules(site_needed: bool = False) -> list[Rule]:
    """Study present and known; site known (and present when ``site_needed``) and of
    that study."""
    found = [required("study_id", "study_raw"), known("study_id", "study", "study_raw", "study_id")]
    if site_needed:
        found.append(required("site_id", "site_raw"))
    return found + [known("site_id", "site", "site_raw", "site_id"),
                    site_of_study("site_id", "site_raw", "site_study", "study_id")]


def person_rules(email_src: str, ctx: LoadContext) -> list[Rule]:
    """A usable contact (made into pid) and a plausible birth year."""
    return [Rule(email_src, "pid IS NULL", lit("no usable e-mail or phone"))] + \
        birth_year("birth_year", "birth_raw", "birth_year", ctx)


def write_lead(ctx: LoadContext, prefix: str, id_col: str, ts: str) -> None:
    """Persons and the ``lead`` funnel event of each accepted row."""
    upsert_persons(ctx, ts)
    upsert(ctx, "funnel_event", FUNNEL_COLUMNS, ["event_id"],
           f"SELECT '{prefix}:' || {id_col} || ':lead', pid, study_id, site_id, 'lead', {ts}, NULL, "
           f"{lit(ctx.file)} FROM {ACCEPTED}")


def write_channel_touch(ctx: LoadContext, prefix: str, id_col: str, ts: str, kind: str,
                        channel_kind: str) -> None:
    """The touchpoint of a lead that is its own channel (referral, event sign-up)."""
    upsert(ctx, "touchpoint", TOUCH_COLUMNS, ["touch_id"],
           f"SELECT '{prefix}:' || {id_col}, pid, NULL, {ts}, '{kind}', "
           f"{channel_of_kind(channel_kind)}, NULL, NULL, study_id, site_id, hcp_pid, "
           f"{lit(ctx.file)} FROM {ACCEPTED}")


# ---------------------------------------------------------------- pre-screener

PRESCREENER_FIELDS = (
    Field("response_id", "response_id"),
    Field("started_at", "started_at"),
    Field("completed_at", "completed_at"),
    Field("study_id", "study_id"),
    Field("site_id", "site_id", required=False),
    Field("email", "email", contact=True),
    Field("phone", "phone", contact=True),
    Field("birth_year", "birth_year", required=False),
    Field("eligible", "eligible"),
    Field("ineligible_reason", "ineligible_reason", required=False),
    Field("visitor_id", "visitor_id", required=False),
    Field("utm_source", "utm_source", required=False),
    Field("utm_campaign", "utm_campaign", required=False),
    Field("utm_content", "utm_content", required=False),
    Field("qr_code", "qr_code", required=False),
    Field("referral_id", "referral_id", required=False),
    Field("signup_id", "signup_id", required=False),
)


def _prescreener_relation(ctx: LoadContext) -> str:
    return (
        f"SELECT s.rowid AS _rid, s.response_id, {ts_items('started_at')}, "
        f"{ts_items('completed_at')}, {PLACE_ITEMS}, {PERSON_ITEMS}, "
        "s.eligible AS eligible_raw, lower(s.eligible) AS eligible, "
        "s.ineligible_reason AS reason_raw, lower(s.ineligible_reason) AS reason, s.visitor_id, "
        f"s.utm_source, {channel_id('ch', utm_first=True)} AS utm_channel, "
        "s.utm_campaign, c.campaign_id, s.utm_content, cr.creative_id, "
        "cr.campaign_id AS creative_campaign, s.qr_code AS qr_raw, q.code AS qr_code, "
        "q.channel_id AS qr_channel, q.campaign_id AS qr_campaign, q.site_id AS qr_site "
        f"FROM {STAGE} s {BASE_JOINS} {channel_joins('ch', 's.utm_source')} "
        "LEFT JOIN campaign c ON c.campaign_id = s.utm_campaign "
        "LEFT JOIN creative cr ON cr.creative_id = s.utm_content "
        "LEFT JOIN qr_code q ON q.code = s.qr_code"
    )


def _prescreener_rules(ctx: LoadContext) -> list[Rule]:
    reason_if_no = "CASE WHEN eligible = 'no' THEN reason_raw END"
    return [
        required("response_id", "response_id"),
        *ts_rules("started_at", ctx),
        *ts_rules("completed_at", ctx, needed=False),
        Rule("completed_at", "completed_at < started_at",
             cat(lit("completed_at "), "completed_at_raw", lit(" is before started_at "),
                 "started_at_raw")),
        *place_rules(),
        *person_rules("email", ctx),
        one_of("eligible", "eligible", "eligible_raw", "eligible", ("yes", "no"), empty_ok=True),
        Rule("completed_at", "eligible IS NOT NULL AND completed_at IS NULL",
             cat(lit("completed_at is empty but eligible is "), quoted("eligible_raw"))),
        one_of("ineligible_reason", "ineligible_reason", reason_if_no, "reason", INELIGIBLE_REASONS),
        known("utm_source", "channel", "utm_source", "utm_channel", where="utm_source"),
        known("utm_campaign", "campaign", "utm_campaign", "campaign_id", where="utm_campaign"),
        known("utm_content", "creative", "utm_content", "creative_id", where="utm_content"),
        creative_in_campaign("utm_content"),
        known("qr_code", "QR code", "qr_raw", "qr_code"),
    ]


def _prescreener_write(ctx: LoadContext) -> None:
    file = lit(ctx.file)
    upsert_persons(ctx, "started_at")
    link_visitors(ctx, "started_at")
    head = "'pre:' || response_id || "
    upsert(ctx, "funnel_event", FUNNEL_COLUMNS, ["event_id"],
           f"SELECT {head}':lead', pid, study_id, site_id, 'lead', started_at, NULL, {file} "
           f"FROM {ACCEPTED} UNION ALL "
           f"SELECT {head}':started', pid, study_id, site_id, 'prescreen_started', started_at, NULL, "
           f"{file} FROM {ACCEPTED} UNION ALL "
           f"SELECT {head}':outcome', pid, study_id, site_id, CASE WHEN eligible = 'yes' "
           "THEN 'prescreen_eligible' ELSE 'prescreen_ineligible' END, completed_at, "
           f"CASE WHEN eligible = 'no' THEN reason END, {file} FROM {ACCEPTED} WHERE eligible IS NOT NULL")
    # A corrected response without an outcome (abandoned after all) loses the old one.
    # On a file's first attempt every response is new (the plain insert of their lead
    # events above would have refused a stored one), so there is nothing to remove.
    if ctx.keys_may_exist:
        ctx.con.execute(f"DELETE FROM funnel_event WHERE event_id IN "
                        f"(SELECT {head}':outcome' FROM {ACCEPTED} WHERE eligible IS NULL)")
    channel = "coalesce(utm_channel, qr_channel)"
    upsert(ctx, "touchpoint", TOUCH_COLUMNS, ["touch_id"],
           f"SELECT {head}':form', pid, visitor_id, started_at, 'form', {channel}, "
           "CASE WHEN utm_channel IS NOT NULL THEN coalesce(campaign_id, creative_campaign) "
           "ELSE qr_campaign END, CASE WHEN utm_channel IS NOT NULL THEN creative_id END, "
           f"study_id, coalesce(site_id, qr_site), NULL, {file} FROM {ACCEPTED} "
           f"WHERE {channel} IS NOT NULL")
    if ctx.keys_may_exist:  # as above: a corrected response that lost its channel
        ctx.con.execute(f"DELETE FROM touchpoint WHERE touch_id IN "
                        f"(SELECT {head}':form' FROM {ACCEPTED} WHERE {channel} IS NULL)")


PRESCREENER_SPEC = TableSpec(
    kind="prescreener", fmt="csv", fields=PRESCREENER_FIELDS, relation=_prescreener_relation,
    rules=_prescreener_rules, key=duplicate("response_id", "response_id"),
    write=_prescreener_write, contacts=("email", "phone"))


# ---------------------------------------------------------------- HCP referrals

REFERRAL_FIELDS = (
    Field("referral_id", "referral_id"),
    Field("referred_at", "referred_at"),
    Field("study_id", "study_id"),
    Field("site_id", "site_id", required=False),
    Field("hcp_id", "hcp_id", required=False, contact=True),
    Field("patient_email", "patient_email", contact=True),
    Field("patient_phone", "patient_phone", contact=True),
    Field("birth_year", "birth_year", required=False),
)


def _referral_relation(ctx: LoadContext) -> str:
    return (f"SELECT s.rowid AS _rid, s.referral_id, {ts_items('referred_at')}, {PLACE_ITEMS}, "
            f"{PERSON_ITEMS} FROM {STAGE} s {BASE_JOINS}")


def _referral_rules(ctx: LoadContext) -> list[Rule]:
    return [required("referral_id", "referral_id"), *ts_rules("referred_at", ctx), *place_rules(),
            *person_rules("patient_email", ctx)]


def _referral_write(ctx: LoadContext) -> None:
    write_lead(ctx, "ref", "referral_id", "referred_at")
    write_channel_touch(ctx, "ref", "referral_id", "referred_at", "referral", "hcp_referral")


REFERRAL_SPEC = TableSpec(
    kind="hcp_referrals", fmt="csv", fields=REFERRAL_FIELDS, relation=_referral_relation,
    rules=_referral_rules, key=duplicate("referral_id", "referral_id"), write=_referral_write,
    contacts=("patient_email", "patient_phone"), hcp="hcp_id")


# ---------------------------------------------------------------- screening-event sign-ups

SIGNUP_FIELDS = (
    Field("signup_id", "signup_id"),
    Field("signed_up_at", "signed_up_at"),
    Field("event_name", "event_name", required=False),
    Field("study_id", "study_id"),
    Field("site_id", "site_id", required=False),
    Field("email", "email", contact=True),
    Field("phone", "phone", contact=True),
    Field("birth_year", "birth_year", required=False),
)


def _signup_relation(ctx: LoadContext) -> str:
    return (f"SELECT s.rowid AS _rid, s.signup_id, {ts_items('signed_up_at')}, {PLACE_ITEMS}, "
            f"{PERSON_ITEMS} FROM {STAGE} s {BASE_JOINS}")


def _signup_rules(ctx: LoadContext) -> list[Rule]:
    return [required("signup_id", "signup_id"), *ts_rules("signed_up_at", ctx), *place_rules(),
            *person_rules("email", ctx)]


def _signup_write(ctx: LoadContext) -> None:
    write_lead(ctx, "sig", "signup_id", "signed_up_at")
    write_channel_touch(ctx, "sig", "signup_id", "signed_up_at", "event_signup", "screening_event")


SIGNUP_SPEC = TableSpec(
    kind="screening_events", fmt="csv", fields=SIGNUP_FIELDS, relation=_signup_relation,
    rules=_signup_rules, key=duplicate("signup_id", "signup_id"), write=_signup_write,
    contacts=("email", "phone"))
