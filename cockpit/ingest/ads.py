"""Ad platform exports (Meta, Google Ads, LinkedIn): daily delivery per ad into
``ad_daily``. Each platform spells its columns and formats its own way; campaign and
ad names map to the setup's campaign and creative names. Key (day, campaign,
creative): a later export of the same key replaces the earlier values."""
from __future__ import annotations

from dataclasses import dataclass

from .context import ACCEPTED, STAGE, LoadContext
from .lookups import campaigns_by_name, creatives_by_name
from .staging import Field
from .sqltext import cat, lit, quoted
from .tabular import TableSpec
from .upsert import upsert
from .validate import (DuplicateKey, Rule, date, date_not_future, integer, known, non_negative,
                       number, one_of, required)


@dataclass(frozen=True)
class _Platform:
    kind: str
    day: str
    campaign: str
    ad: str
    spend: str
    impressions: str
    clicks: str
    date_format: str  # strptime format of the day column
    date_label: str  # the same for people
    platform: str | None = None  # Meta: facebook or instagram
    currency: str | None = None  # Google: must be EUR
    thousands: bool = False  # numbers may carry ',' thousands separators
    total_row: bool = False  # a final 'Total' summary row


META = _Platform("meta_ads", "Day", "Campaign name", "Ad name", "Amount spent (EUR)",
                 "Impressions", "Link clicks", "%Y-%m-%d", "YYYY-MM-DD", platform="Platform")
GOOGLE = _Platform("google_ads", "Day", "Campaign", "Ad", "Cost", "Impr.", "Clicks",
                   "%Y-%m-%d", "YYYY-MM-DD", currency="Currency code", thousands=True,
                   total_row=True)
LINKEDIN = _Platform("linkedin_ads", "Start Date (in UTC)", "Campaign Name", "Creative Name",
                     "Total Spent", "Impressions", "Clicks", "%m/%d/%Y", "MM/DD/YYYY")


def _fields(p: _Platform) -> tuple[Field, ...]:
    fields = [Field("day", p.day), Field("campaign", p.campaign), Field("ad", p.ad),
              Field("spend", p.spend), Field("impressions", p.impressions),
              Field("clicks", p.clicks)]
    if p.platform:
        fields.append(Field("platform", p.platform, required=False))
    if p.currency:
        fields.append(Field("currency", p.currency, required=False))
    return tuple(fields)


def _relation(p: _Platform):
    def clean(expr: str) -> str:
        return f"replace({expr}, ',', '')" if p.thousands else expr

    def relation(ctx: LoadContext) -> str:
        items = [
            "s.rowid AS _rid",
            f"s.day AS day_raw, CAST(try_strptime(s.day, {lit(p.date_format)}) AS DATE) AS day",
            "s.campaign AS campaign_raw, c.campaign_id, c.n AS campaign_matches",
            "s.ad AS ad_raw, CASE WHEN s.ad IS NULL THEN '' ELSE cr.creative_id END AS creative_id",
            "cr.n AS ad_matches",
            f"s.spend AS spend_raw, try_cast({clean('s.spend')} AS DOUBLE) AS spend",
            f"s.impressions AS impressions_raw, {clean('s.impressions')} AS impressions_text",
            f"try_cast({clean('s.impressions')} AS BIGINT) AS impressions",
            f"s.clicks AS clicks_raw, {clean('s.clicks')} AS clicks_text",
            f"try_cast({clean('s.clicks')} AS BIGINT) AS clicks",
        ]
        if p.platform:
            items.append("s.platform AS platform_raw")
        if p.currency:
            items.append("s.currency AS currency_raw")
        return (
            f"SELECT {', '.join(items)} FROM {STAGE} s "
            f"LEFT JOIN {campaigns_by_name()} c ON c.name = s.campaign "
            f"LEFT JOIN {creatives_by_name()} cr ON cr.campaign_id = c.campaign_id AND cr.name = s.ad"
        )
    return relation


def _rules(p: _Platform):
    def rules(ctx: LoadContext) -> list[Rule]:
        found = [
            required(p.day, "day_raw"),
            date(p.day, "day", "day_raw", "day", p.date_label),
            date_not_future(p.day, "day", ctx),
            required(p.campaign, "campaign_raw"),
            known(p.campaign, "campaign", "campaign_raw", "campaign_id"),
            Rule(p.campaign, "campaign_matches > 1",
                 cat(lit("campaign name "), quoted("campaign_raw"), lit(" matches several campaigns"))),
            Rule(p.ad, "ad_raw IS NOT NULL AND creative_id IS NULL",
                 cat(lit("unknown ad "), quoted("ad_raw"), lit(" in campaign "), quoted("campaign_raw"))),
            Rule(p.ad, "ad_matches > 1",
                 cat(lit("ad name "), quoted("ad_raw"), lit(" matches several creatives of campaign "),
                     quoted("campaign_raw"))),
        ]
        if p.platform:
            found.append(one_of(p.platform, "platform", "platform_raw", "lower(trim(platform_raw))",
                                ("facebook", "instagram")))
        if p.currency:
            found.append(Rule(p.currency, "currency_raw IS NOT NULL AND upper(trim(currency_raw)) <> 'EUR'",
                              cat(lit("currency "), quoted("currency_raw"),
                                  lit(" is not EUR (spend must be in EUR)"))))
        found += [
            required(p.spend, "spend_raw"),
            number(p.spend, "spend", "spend_raw", "spend"),
            non_negative(p.spend, "spend", "spend_raw", "spend"),
            required(p.impressions, "impressions_raw"),
            integer(p.impressions, "impressions", "impressions_raw", "impressions_text"),
            non_negative(p.impressions, "impressions", "impressions_raw", "impressions"),
            required(p.clicks, "clicks_raw"),
            integer(p.clicks, "clicks", "clicks_raw", "clicks_text"),
            non_negative(p.clicks, "clicks", "clicks_raw", "clicks"),
            Rule(p.clicks, "clicks > impressions",
                 cat(lit("clicks ("), "CAST(clicks AS VARCHAR)", lit(") exceed impressions ("),
                     "CAST(impressions AS VARCHAR)", lit(")"))),
        ]
        return found
    return rules


def _key(p: _Platform) -> DuplicateKey:
    return DuplicateKey(
        ("day", "campaign_id", "creative_id"), p.day,
        cat(lit("duplicate row for day "), "s.day", lit(", campaign "), quoted("s.campaign"),
            lit(", ad "), quoted("coalesce(s.ad, '')"), lit(" in this file")))


def _write(ctx: LoadContext) -> None:
    upsert(ctx, "ad_daily",
           ["day", "campaign_id", "creative_id", "spend", "impressions", "clicks", "source_file"],
           ["day", "campaign_id", "creative_id"],
           f"SELECT day, campaign_id, creative_id, spend, impressions, clicks, {lit(ctx.file)} "
           f"FROM {ACCEPTED}")


def _spec(p: _Platform) -> TableSpec:
    # A summary line ('Total') is not a day of delivery; only rows whose day did not
    # parse are looked at, which keeps the check off the common path.
    ignore = ("CASE WHEN day IS NULL AND day_raw IS NOT NULL "
              "THEN starts_with(lower(trim(day_raw)), 'total') END" if p.total_row else None)
    return TableSpec(kind=p.kind, fmt="csv", fields=_fields(p), relation=_relation(p),
                     rules=_rules(p), key=_key(p), write=_write, ignore=ignore, trim=False)


SPECS = {p.kind: _spec(p) for p in (META, GOOGLE, LINKEDIN)}
