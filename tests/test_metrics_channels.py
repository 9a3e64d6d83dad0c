"""Channel numbers on the tiny store (conftest.TINY_SQL), each worked out by hand, and
the demo's planted cheapest channel found."""
import json
from datetime import date

import pandas as pd
import pytest

from cockpit.filters import Filters
from cockpit.metrics import channels

MARCH = dict(start="2026-03-01", end="2026-03-31")


def rows(table, key="channel_id"):
    return table.set_index(key)


def test_channel_table_all_data(tiny_con):
    t = rows(channels.channel_table(tiny_con, Filters()))
    fb, hcp, un = t.loc["facebook"], t.loc["hcp_referral"], t.loc["unattributed"]
    # facebook: CA 100 + 200 and CB 50; impressions 1000 + 2000 + 500; clicks 50 + 60 + 10
    assert (fb["spend"], fb["impressions"], fb["clicks"]) == (350.0, 3500, 120)
    assert fb["ctr_pct"] == round(100 * 120 / 3500, 2) == 3.43
    # leads p1 (A) and p4 (B); p3's click no longer counts (tracking consent withdrawn)
    assert (fb["leads"], fb["eligible"], fb["consented"], fb["randomized"]) == (2, 2, 2, 2)
    assert (fb["cpl"], fb["cost_per_eligible"], fb["cost_per_randomized"]) == (175.0, 175.0, 175.0)
    assert fb["eligible_rate_pct"] == 100.0
    # value: p1 in study A (10,000) + p4 in study B (12,000); ROI = (22,000 - 350) / 350
    assert fb["value"] == 22000.0
    assert fb["roi_pct"] == round(100 * (22000 - 350) / 350, 1) == 6185.7
    # HCP referral: the liaison cost of 30 (an offline cost), leads p2 and p5, p5 randomized
    assert hcp["spend"] == 30.0
    assert pd.isna(hcp["impressions"]) and pd.isna(hcp["ctr_pct"])  # no reach reported
    assert (hcp["leads"], hcp["eligible"], hcp["consented"], hcp["randomized"]) == (2, 2, 1, 1)
    assert (hcp["cpl"], hcp["cost_per_randomized"], hcp["value"]) == (15.0, 30.0, 10000.0)
    assert hcp["roi_pct"] == round(100 * (10000 - 30) / 30, 1)
    # unattributed: p3, never eligible, and no spend of its own
    assert (un["leads"], un["eligible"], un["eligible_rate_pct"]) == (1, 0, 0.0)
    assert pd.isna(un["spend"]) and pd.isna(un["cpl"]) and pd.isna(un["roi_pct"])
    assert un["channel"] == "Unattributed (no consented touch)"


def test_rows_are_ordered_by_spend_with_unattributed_last(tiny_con):
    table = channels.channel_table(tiny_con, Filters())
    assert table["channel_id"].tolist() == ["facebook", "hcp_referral", "unattributed"]
    assert table.columns.tolist() == channels.table_columns("channel")


def test_eligible_rate_is_cohort_based_counts_are_event_based(tiny_con):
    hcp = rows(channels.channel_table(tiny_con, Filters.make(**MARCH))).loc["hcp_referral"]
    # in March: lead p2 (p5 was a lead in February) but randomized p5 (5 March)
    assert (hcp["leads"], hcp["eligible"], hcp["consented"], hcp["randomized"]) == (1, 1, 0, 1)
    assert hcp["eligible_rate_pct"] == 100.0          # p2, the one March lead, is eligible
    assert (hcp["cpl"], hcp["cost_per_randomized"]) == (30.0, 30.0)


def test_campaign_level(tiny_con):
    t = channels.channel_table(tiny_con, Filters(), "campaign")
    assert t.columns.tolist() == channels.table_columns("campaign")
    t = rows(t, "campaign_id")
    ca, cb = t.loc["CA"], t.loc["CB"]
    assert (ca["spend"], ca["impressions"], ca["clicks"], ca["ctr_pct"]) == (300.0, 3000, 110, 3.67)
    assert (ca["leads"], ca["randomized"], ca["cost_per_randomized"], ca["value"]) == (1, 1, 300.0, 10000.0)
    assert (cb["spend"], cb["leads"], cb["cost_per_randomized"]) == (50.0, 1, 50.0)
    assert cb["roi_pct"] == round(100 * (12000 - 50) / 50, 1) == 23900.0
    assert (t.loc["HA", "leads"], t.loc["HA", "spend"], t.loc["HA", "campaign"]) == (2, 30.0, "A | HCP")
    # the unattributed lead has no campaign: its own row, not merged with another channel's
    assert t.loc["", "channel_id"] == "unattributed" and t.loc["", "campaign"] == "(no campaign)"


def test_creative_level_keeps_campaign_level_spend(tiny_con):
    t = channels.channel_table(tiny_con, Filters(), "creative")
    assert t.columns.tolist() == channels.table_columns("creative")
    # the tiny store reports at campaign level only: one row per campaign, no creative
    assert sorted(t["campaign_id"]) == ["", "CA", "CB", "HA"]
    assert set(t["creative"]) == {"(not by creative)"}
    assert t["spend"].sum() == 380.0 and t["leads"].sum() == 5


def test_filters_apply(tiny_con):
    b = channels.channel_table(tiny_con, Filters.make(study="B"))
    assert b["channel_id"].tolist() == ["facebook"]
    assert (b["spend"].iloc[0], b["leads"].iloc[0], b["cost_per_randomized"].iloc[0]) == (50.0, 1, 50.0)
    un = channels.channel_table(tiny_con, Filters.make(channel="unattributed"))
    assert un["channel_id"].tolist() == ["unattributed"] and un["leads"].tolist() == [1]
    assert channels.channel_table(tiny_con, Filters.make(start="2026-04-01")).empty


@pytest.mark.parametrize("f", [Filters.make(site="A1"), Filters.make(segment="adults")])
def test_site_or_segment_filter_hides_spend(tiny_con, f):
    t = channels.channel_table(tiny_con, f)
    for col in channels.SPEND_BASED:
        assert t[col].isna().all(), col
    if f.site:
        # at A1: p1 (facebook), p5 (HCP) randomized, p3 unattributed
        assert rows(t).loc["facebook", "leads"] == 1 and rows(t).loc["hcp_referral", "randomized"] == 1
    assert channels.budget_shares(t)["share_budget_pct"].isna().all()


def test_budget_shares(tiny_con):
    s = rows(channels.budget_shares(channels.channel_table(tiny_con, Filters())))
    # spend 350 and 30 of 380; leads 2, 2, 1 of 5; eligible 2, 2, 0 of 4; randomized 2, 1, 0 of 3
    assert s.loc["facebook"].tolist()[1:] == [92.1, 40.0, 50.0, 66.7]
    assert s.loc["hcp_referral"].tolist()[1:] == [7.9, 40.0, 50.0, 33.3]
    assert pd.isna(s.loc["unattributed", "share_budget_pct"])
    assert s.loc["unattributed"].tolist()[2:] == [20.0, 0.0, 0.0]


def test_weekly_by_channel(tiny_con):
    w = channels.weekly_by_channel(tiny_con, Filters()).set_index(["week", "channel_id"])
    fb = w.loc[(date(2026, 3, 2), "facebook")]
    assert (fb["leads"], fb["spend"]) == (2, 150.0)       # p1, p4; 100 (CA) + 50 (CB)
    hcp = w.loc[(date(2026, 3, 2), "hcp_referral")]
    assert (hcp["leads"], hcp["randomized"], hcp["spend"]) == (1, 1, 30.0)   # p2; p5
    fb9 = w.loc[(date(2026, 3, 9), "facebook")]
    assert (fb9["leads"], fb9["consented"], fb9["spend"]) == (0, 2, 200.0)  # p1 10 Mar, p4 15 Mar
    # a quiet week between the first and the last is listed as zero, not skipped
    quiet = w.loc[(date(2026, 2, 23), "hcp_referral")]
    assert (quiet["leads"], quiet["spend"]) == (0, 0.0)
    assert pd.isna(w.loc[(date(2026, 3, 9), "unattributed"), "spend"])
    assert w["leads"].sum() == 5 and w["spend"].sum() == 380.0


def test_weekly_by_channel_empty_period(tiny_con):
    assert channels.weekly_by_channel(tiny_con, Filters.make(start="2026-05-01")).empty


def test_planted_cheapest_channel_ranks_first(demo_store, demo_raw):
    truth = json.loads((demo_raw / "ground_truth.json").read_text())
    table = channels.channel_table(demo_store.reader(), Filters())
    ranked = table.dropna(subset=["cost_per_randomized"]).sort_values("cost_per_randomized")
    assert ranked["channel_id"].iloc[0] == truth["cheapest_channel_per_randomized"]
    # offline channels are costed from their cost entries, not left out
    offline = table[table["channel_id"].isin(["paper_brochure", "screening_event"])]
    assert len(offline) == 2 and (offline["spend"] > 0).all()
    assert "unattributed" in set(table["channel_id"])


@pytest.mark.parametrize("f", [Filters(), Filters.make(**MARCH), Filters.make(study="A"), Filters.make(site="A1")])
def test_the_weekly_trend_adds_up_to_the_channel_table(tiny_con, f):
    # both read the same stage events and spend, one grouped by week as well
    table = rows(channels.channel_table(tiny_con, f))
    weekly = channels.weekly_by_channel(tiny_con, f).groupby("channel_id")
    for stage in ("leads", "eligible", "consented", "randomized"):
        assert weekly[stage].sum().to_dict() == table[stage].to_dict(), stage
    spent = weekly["spend"].sum(min_count=1)
    assert spent.round(2).dropna().to_dict() == table["spend"].dropna().to_dict()
    # campaigns and creatives split the channel's numbers without losing any
    for level in ("campaign", "creative"):
        per = channels.channel_table(tiny_con, f, level).groupby("channel_id")
        assert per["leads"].sum().to_dict() == table["leads"].to_dict()
        assert per["value"].sum().to_dict() == table["value"].to_dict()
