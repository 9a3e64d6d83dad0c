"""Offline costs (print runs, event fees, sponsorships, referral programme fees) into
``offline_cost``, keyed by cost_id."""
from __future__ import annotations

from .context import ACCEPTED, STAGE, LoadContext
from .lookups import channel_id, channel_joins
from .staging import Field
from .sqltext import cat, lit, quoted
from .tabular import TableSpec
from .upsert import upsert
from .validate import (Rule, date, date_not_future, duplicate, known, non_negative, number,
                       required, site_of_study)

FIELDS = (
    Field("cost_id", "cost_id"),
    Field("date", "date"),
    Field("channel", "channel"),
    Field("campaign_id", "campaign_id", required=False),
    Field("study_id", "study_id", required=False),
    Field("site_id", "site_id", required=False),
    Field("amount", "amount"),
    Field("currency", "currency", required=False),
    Field("description", "description", required=False),
)


def _relation(ctx: LoadContext) -> str:
    return (
        "SELECT s.rowid AS _rid, s.cost_id, s.date AS date_raw, try_cast(s.date AS DATE) AS day, "
        f"s.channel AS channel_raw, {channel_id('ch', utm_first=False)} AS channel_id, "
        "s.campaign_id AS campaign_raw, c.campaign_id, c.study_id AS campaign_study, "
        "s.study_id AS study_raw, st.study_id, "
        "s.site_id AS site_raw, si.site_id, si.study_id AS site_study, "
        "s.amount AS amount_raw, try_cast(s.amount AS DOUBLE) AS amount, "
        "s.currency AS currency_raw, s.description "
        f"FROM {STAGE} s {channel_joins('ch', 's.channel')} "
        "LEFT JOIN campaign c ON c.campaign_id = s.campaign_id "
        "LEFT JOIN study st ON st.study_id = s.study_id "
        "LEFT JOIN site si ON si.site_id = s.site_id"
    )


def _rules(ctx: LoadContext) -> list[Rule]:
    return [
        required("cost_id", "cost_id"),
        required("date", "date_raw"),
        date("date", "date", "date_raw", "day", "YYYY-MM-DD"),
        date_not_future("date", "day", ctx),
        required("channel", "channel_raw"),
        known("channel", "channel", "channel_raw", "channel_id", where="channel"),
        known("campaign_id", "campaign", "campaign_raw", "campaign_id"),
        known("study_id", "study", "study_raw", "study_id"),
        known("site_id", "site", "site_raw", "site_id"),
        site_of_study("site_id", "site_raw", "site_study", "coalesce(study_id, campaign_study)"),
        required("amount", "amount_raw"),
        number("amount", "amount", "amount_raw", "amount"),
        non_negative("amount", "amount", "amount_raw", "amount"),
        Rule("currency", "currency_raw IS NOT NULL AND upper(currency_raw) <> 'EUR'",
             cat(lit("currency "), quoted("currency_raw"), lit(" is not EUR (amounts must be in EUR)"))),
    ]


def _write(ctx: LoadContext) -> None:
    upsert(ctx, "offline_cost",
           ["cost_id", "day", "channel_id", "campaign_id", "study_id", "site_id", "amount",
            "description", "source_file"],
           ["cost_id"],
           "SELECT cost_id, day, channel_id, campaign_id, "
           "coalesce(study_id, campaign_study, site_study), site_id, amount, description, "
           f"{lit(ctx.file)} FROM {ACCEPTED}")


SPEC = TableSpec(kind="offline_costs", fmt="csv", fields=FIELDS, relation=_relation, rules=_rules,
                 key=duplicate("cost_id", "cost_id"), write=_write)
