"""SQL for resolving the names and ids an export uses to the dimensions of the setup:
channels (by id or by UTM source), campaigns and creatives by the names the ad
platforms print, and the channel of a kind (HCP referral, screening event)."""
from __future__ import annotations

from .sqltext import lit


def channel_joins(alias: str, expr: str) -> str:
    """LEFT JOINs that resolve ``expr`` as a channel id and as a UTM source."""
    return (f" LEFT JOIN channel {alias}_c ON {alias}_c.channel_id = {expr}"
            f" LEFT JOIN channel_utm_source {alias}_u ON {alias}_u.utm_source = lower({expr})")


def channel_id(alias: str, utm_first: bool) -> str:
    """The channel id resolved by ``channel_joins``: a UTM source maps through the setup's
    utm_sources first; a plain channel column names a channel id first."""
    first, second = (f"{alias}_u", f"{alias}_c") if utm_first else (f"{alias}_c", f"{alias}_u")
    return f"coalesce({first}.channel_id, {second}.channel_id)"


def campaigns_by_name() -> str:
    """Campaign names with their id and how many campaigns carry the name."""
    return "(SELECT name, min(campaign_id) AS campaign_id, count(*) AS n FROM campaign GROUP BY name)"


def creatives_by_name() -> str:
    """Creative names within a campaign, with their id and how many carry the name."""
    return ("(SELECT campaign_id, name, min(creative_id) AS creative_id, count(*) AS n "
            "FROM creative GROUP BY campaign_id, name)")


def channel_of_kind(kind: str) -> str:
    """SQL scalar: the channel of a kind, for exports that are a channel themselves (HCP
    referrals, screening events): the channel whose id is the kind, else the first of
    that kind, else the kind's name as EXPORTS.md spells the channel."""
    return (f"(SELECT coalesce(min(channel_id) FILTER (WHERE channel_id = {lit(kind)}), "
            f"min(channel_id) FILTER (WHERE kind = {lit(kind)}), {lit(kind)}) FROM channel)")
