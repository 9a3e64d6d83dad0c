"""Site numbers on a hand-built store; the expected numbers are worked out by hand
in the comments from the PATHS table below (latest day with data: Tue 30 June 2026)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cockpit import derive
from cockpit.filters import Filters
from cockpit.metrics import sites
from cockpit.store import open_db

M = 30.4375  # days per month

DIMENSIONS_SQL = """
INSERT INTO study VALUES
  ('A', 'Atopic study', 'II',  'Dermatology', 10, '2026-01-01', '2026-12-31', 10000, 'EUR'),
  ('B', 'Bone study',   'III', 'Rheumatology', 4, '2026-01-01', '2026-04-30', 12000, 'EUR');
INSERT INTO site VALUES
  ('A1', 'A', 'Berlin',  'DE', '2026-01-10', '2026-01-15'),
  ('A2', 'A', 'Hamburg', 'DE', '2026-01-20', '2026-02-01'),
  ('A3', 'A', 'Munich',  'DE', '2026-02-20', '2026-03-01'),
  ('A4', 'A', 'Cologne', 'DE', '2026-08-01', NULL),
  ('B1', 'B', 'Lyon',    'FR', '2026-01-20', '2026-02-01');
INSERT INTO channel VALUES ('facebook', 'Facebook', 'paid_social', TRUE),
                           ('hcp_referral', 'HCP referral', 'hcp_referral', FALSE);
INSERT INTO segment VALUES ('adults', 'Adults 18-64', 18, 64), ('seniors', 'Seniors 65+', 65, 120);
INSERT INTO campaign VALUES ('CA', 'A', 'facebook', 'A | FB', '2026-03-01', NULL),
                            ('HA', 'A', 'hcp_referral', 'A | HCP', '2026-01-01', NULL);
"""

# pid, study, site, channel, segment, [(stage, MM-DD, reason)]; every event at 09:00.
# Working days lead -> contact written after each contact (Mon-Fri, numpy busday_count).
PATHS = [
    # A1: slow to call back -- contacts after 5, 7, 2, 0, 3 working days
    ("s1", "A", "A1", "facebook", "seniors", [("lead", "03-02"), ("prescreen_eligible", "03-02"),
        ("contacted", "03-09"), ("consented", "03-12"), ("screened", "03-20"), ("randomized", "04-01")]),  # Mon->Mon 5
    ("s2", "A", "A1", "facebook", "adults", [("lead", "03-03"), ("prescreen_eligible", "03-03"),
        ("contacted", "03-12"), ("consented", "03-16"), ("screened", "03-25"),
        ("screen_failed", "03-27", "lab_values")]),  # Tue->Thu next week 7
    ("s3", "A", "A1", "facebook", "adults", [("lead", "03-06"), ("prescreen_eligible", "03-06"),
        ("contacted", "03-10"), ("declined", "03-12", "travel_distance")]),  # Fri->Tue 2
    ("s4", "A", "A1", "facebook", "adults", [("lead", "03-07"), ("prescreen_eligible", "03-07"),
        ("contacted", "03-09")]),  # Sat->Mon 0
    ("s5", "A", "A1", "facebook", "adults", [("lead", "03-11"), ("prescreen_eligible", "03-11"),
        ("contacted", "03-16")]),  # Wed->Mon 3
    ("s6", "A", "A1", "facebook", "adults", [("lead", "06-29"), ("prescreen_eligible", "06-29")]),  # 1 day old
    ("s7", "A", "A1", "facebook", "adults", [("lead", "06-22"), ("prescreen_eligible", "06-22")]),  # 6 days old
    ("s8", "A", "A1", "facebook", "adults", [("lead", "03-16"), ("prescreen_ineligible", "03-16", "age")]),
    # A2: quick
    ("u1", "A", "A2", "facebook", "adults", [("lead", "03-02"), ("prescreen_eligible", "03-02"),
        ("contacted", "03-03"), ("consented", "03-10"), ("screened", "03-20"), ("randomized", "04-10")]),  # 1
    ("u2", "A", "A2", "hcp_referral", "adults", [("lead", "03-04"), ("prescreen_eligible", "03-04"),
        ("contacted", "03-04"), ("consented", "03-11"), ("screened", "03-25"), ("randomized", "04-20")]),  # 0
    ("u3", "A", "A2", "facebook", "adults", [("lead", "03-05"), ("prescreen_eligible", "03-05"),
        ("not_reachable", "03-20", "no_answer")]),
    # A3: active since 1 March, screens but never randomizes
    ("w1", "A", "A3", "facebook", "adults", [("lead", "04-01"), ("prescreen_eligible", "04-01"),
        ("contacted", "04-02"), ("consented", "04-08"), ("screened", "04-20"),
        ("screen_failed", "04-22", "inclusion_criteria")]),  # Wed->Thu 1
    ("b1", "B", "B1", "facebook", "adults", [("lead", "03-02"), ("prescreen_eligible", "03-02"),
        ("contacted", "03-03"), ("consented", "03-09"), ("screened", "03-16"), ("randomized", "03-30")]),
    # the latest event: sets the latest day with data to 30 June
    ("z1", "B", "B1", "facebook", "adults", [("lead", "06-30"), ("prescreen_ineligible", "06-30", "age")]),
]


def build(con) -> None:
    con.execute(DIMENSIONS_SQL)
    for pid, study, site, channel, segment, events in PATHS:
        lead = f"2026-{events[0][1]} 09:00"
        con.execute("INSERT INTO person VALUES (?, 1970, ?, ?)", [pid, segment, lead])
        kind, campaign = ("ad_click", "CA") if channel == "facebook" else ("referral", "HA")
        con.execute("INSERT INTO touchpoint VALUES (?, ?, NULL, ?, ?, ?, ?, NULL, NULL, ?, NULL, 'f')",
                    [f"t-{pid}", pid, lead, kind, channel, campaign, site])
        con.execute("INSERT INTO consent_event VALUES (?, ?, 'tracking', TRUE, ?::TIMESTAMP - INTERVAL 1 HOUR, "
                    "NULL, 'v1', 'f')", [f"c-{pid}", pid, lead])
        for i, (stage, day, *reason) in enumerate(events):
            con.execute("INSERT INTO funnel_event VALUES (?, ?, ?, ?, ?, ?, ?, 'f')",
                        [f"{pid}-{i}", pid, study, site, stage, f"2026-{day} 09:00",
                         reason[0] if reason else None])
    derive.refresh(con)


@pytest.fixture
def con(tmp_path: Path):
    con = open_db(tmp_path / "sites.duckdb")
    build(con)
    yield con
    con.close()


def test_working_days_sql_matches_numpy_busday_count(con):
    rng = np.random.default_rng(5)
    start = np.datetime64("2026-01-01") + rng.integers(0, 400, 300)
    end = start + rng.integers(-3, 40, 300)
    frame = pd.DataFrame({"a": start.astype("datetime64[s]"), "b": end.astype("datetime64[s]")})
    cur = con.cursor()
    cur.register("pairs", frame)
    expr = sites.working_days_sql("CAST(a AS DATE)", "CAST(b AS DATE)")
    got = [n for (n,) in cur.execute(f"SELECT {expr} FROM pairs").fetchall()]
    want = np.maximum(np.busday_count(start, end), 0)
    assert got == want.tolist()


def test_site_table_all_data(con):
    t = sites.site_table(con, Filters()).set_index("site_id")
    assert t.index.tolist() == ["A2", "B1", "A1", "A3", "A4"]  # by randomized per site-month
    assert t["rank"].tolist()[:4] == [1, 2, 3, 4] and pd.isna(t.loc["A4", "rank"])

    # A1: active 15 Jan - 30 Jun = 167 days, one randomized
    a1 = t.loc["A1"]
    assert a1["months_active"] == round(167 / M, 1) == 5.5
    assert a1["randomized"] == 1 and a1["randomized_per_site_month"] == round(1 / (167 / M), 2) == 0.18
    # study A needs (10 - 3 randomized) / (3 active sites x 184 days left / M) per site-month
    needed_a = 7 / (3 * 184 / M)
    assert a1["needed_pace"] == round(needed_a, 2) == 0.39
    assert a1["pct_of_needed_pace"] == round(100 * (1 / (167 / M)) / needed_a) == 47
    # planned: 10 / (4 sites x 364 days / M)
    assert a1["planned_pace"] == round(10 / (4 * 364 / M), 2) == 0.21

    # A1 contacts: 5, 7, 2, 0, 3 working days -> median 3 on 5 contacts: slow.
    # Needed a call: s1-s7 (7); at least 2 working days old: all but s6 (6); within 2: s3, s4
    assert a1["leads"] == 8 and a1["to_contact"] == 7
    assert a1["median_working_days_to_contact"] == 3.0
    assert a1["pct_contacted_within_2wd"] == round(100 * 2 / 6, 1) == 33.3
    assert a1["waiting_for_contact"] == 2  # s6, s7
    assert bool(a1["slow_contact"]) and a1["status"] == "slow contact"
    # screened s1, s2; s2 failed
    assert (a1["screened"], a1["screen_failed"], a1["screen_fail_rate"]) == (2, 1, 50.0)

    # A2: 149 days active, 2 randomized; contacts after 1 and 0 days (too few to judge)
    a2 = t.loc["A2"]
    assert a2["randomized_per_site_month"] == round(2 / (150 / M), 2) == 0.41
    assert a2["pct_of_needed_pace"] == round(100 * (2 / (150 / M)) / needed_a) == 105
    assert a2["median_working_days_to_contact"] == 0.5
    assert a2["pct_contacted_within_2wd"] == round(100 * 2 / 3, 1)  # u3 never reached
    assert not a2["slow_contact"] and a2["status"] == "ok"
    assert a2["screen_fail_rate"] == 0.0

    # A3: active, nobody randomized since activation: non-enrolling
    a3 = t.loc["A3"]
    assert (a3["randomized"], a3["randomized_since_activation"]) == (0, 0)
    assert a3["randomized_per_site_month"] == 0.0 and a3["pct_of_needed_pace"] == 0
    assert bool(a3["non_enrolling"]) and a3["status"] == "non-enrolling"
    assert a3["screen_fail_rate"] == 100.0

    # A4 not active: no months, no rate, not non-enrolling
    a4 = t.loc["A4"]
    assert a4["status"] == "not yet active" and not a4["non_enrolling"]
    assert pd.isna(a4["months_active"]) and pd.isna(a4["randomized_per_site_month"])
    assert pd.isna(a4["activation_date"]) and pd.isna(a4["screen_fail_rate"])

    # B ended on 30 April: no needed pace; planned 4 / (1 site x 119 days / M)
    b1 = t.loc["B1"]
    assert pd.isna(b1["needed_pace"]) and pd.isna(b1["pct_of_needed_pace"])
    assert b1["planned_pace"] == round(4 / (119 / M), 2) == 1.02
    assert b1["randomized_per_site_month"] == round(1 / (150 / M), 2) == 0.2


def test_site_table_in_a_period(con):
    t = sites.site_table(con, Filters.make(start="2026-03-01", end="2026-03-31")).set_index("site_id")
    # March: 31 site-days at every site active by then; only b1 was randomized in March
    assert t.loc["A1", "site_months"] == round(31 / M, 1)
    assert t.loc["B1", "randomized_per_site_month"] == round(1 / (31 / M), 2) == 0.98
    assert t.loc["A2", "randomized"] == 0
    # non-enrolling is about all data: A1 and A2 randomized in April, so not flagged
    assert not t.loc["A1", "non_enrolling"] and not t.loc["A2", "non_enrolling"]
    assert bool(t.loc["A3", "non_enrolling"])
    # A1's March leads s1-s5, s8: 5 needed a call, 2 of 5 within 2 working days
    a1 = t.loc["A1"]
    assert (a1["leads"], a1["to_contact"], a1["pct_contacted_within_2wd"], a1["waiting_for_contact"]) == (6, 5, 40.0, 0)
    # A3 became active on 1 March: the whole of March
    assert t.loc["A3", "site_months"] == round(31 / M, 1)


def test_site_table_filters(con):
    # hcp_referral persons only: u2 at A2
    t = sites.site_table(con, Filters.make(channel="hcp_referral")).set_index("site_id")
    assert t["randomized"].to_dict() == {"A2": 1, "A1": 0, "A3": 0, "B1": 0, "A4": 0}
    assert not t.loc["A1", "non_enrolling"]  # the flag does not follow the channel filter
    # study and phase filters choose the sites listed
    assert sorted(sites.site_table(con, Filters.make(study="B"))["site_id"]) == ["B1"]
    assert sorted(sites.site_table(con, Filters.make(phase="II"))["site_id"]) == ["A1", "A2", "A3", "A4"]
    assert sites.site_table(con, Filters.make(site="A3"))["site_id"].tolist() == ["A3"]
    # segment: s1 is the only senior; randomized at A1
    seniors = sites.site_table(con, Filters.make(segment="seniors")).set_index("site_id")
    assert seniors.loc["A1", "randomized"] == 1 and seniors.loc["A2", "randomized"] == 0


def test_summary(con):
    s = sites.summary(sites.site_table(con, Filters()))
    assert (s["active_sites"], s["non_enrolling"], s["slow_contact"], s["randomized"]) == (4, 1, 1, 4)
    # site-months: A1 167, A2 150, A3 122, B1 150 days (each rounded to 0.1 month)
    months = round(167 / M, 1) + round(150 / M, 1) + round(122 / M, 1) + round(150 / M, 1)
    assert s["site_months"] == pytest.approx(months)
    assert s["randomized_per_site_month"] == round(4 / months, 2)
    # on the needed pace: A2 only (B has none, A1 47%, A3 0%)
    assert (s["on_needed_pace"], s["with_needed_pace"]) == (1, 3)


def test_empty_store(tmp_path):
    con = open_db(tmp_path / "empty.duckdb")
    assert sites.site_table(con, Filters()).empty
    con.close()


# ---------------------------------------------------------------- the demo's planted truths

def _truth(demo_raw):
    import json
    return json.loads((demo_raw / "ground_truth.json").read_text(encoding="utf-8"))


def test_demo_non_enrolling_sites_show_zero_and_are_flagged(demo_raw, demo_store):
    planted = set(_truth(demo_raw)["non_enrolling_sites"])
    assert planted
    t = sites.site_table(demo_store.reader(), Filters()).set_index("site_id")
    for site in planted:
        assert t.loc[site, "randomized_since_activation"] == 0 and t.loc[site, "randomized"] == 0
        assert bool(t.loc[site, "non_enrolling"]) and "non-enrolling" in t.loc[site, "status"]
    # and only they: every other active site has randomized someone
    assert set(t.index[t["non_enrolling"]]) == planted


def test_demo_slow_contact_site_is_flagged(demo_raw, demo_store):
    truth = _truth(demo_raw)
    t = sites.site_table(demo_store.reader(), Filters()).set_index("site_id")
    for slow in truth["slow_contact_sites"]:
        row = t.loc[slow["site_id"]]
        assert bool(row["slow_contact"]) and "slow contact" in row["status"]
        assert row["median_working_days_to_contact"] == slow["median_contact_days"]
        # the slowest of all sites that are judged
        judged = t[t["to_contact"] >= sites.MIN_CONTACTS_TO_JUDGE]
        assert judged["median_working_days_to_contact"].idxmax() == slow["site_id"]


def test_demo_site_rates_match_the_generator(demo_raw, demo_store):
    planted = _truth(demo_raw)["site_rates"]["sites"]
    t = sites.site_table(demo_store.reader(), Filters()).set_index("site_id")
    for site, want in planted.items():
        if want["activation_date"] is None:
            assert t.loc[site, "status"] == "not yet active"
            continue
        assert t.loc[site, "randomized"] == want["randomized"]
        assert str(t.loc[site, "activation_date"]) == want["activation_date"]


def test_a_lead_who_withdrew_consent_is_not_waiting_for_a_call(con):
    # s7 (A1, eligible 06-22, never called) withdraws consent to be contacted on 06-25:
    # A1 waits for s6 only; s7 still counts among the period's leads that needed a call
    con.execute("INSERT INTO consent_event VALUES "
                "('rg', 's7', 'contact_research', TRUE,  '2026-06-22 08:00', NULL, 'v1', 'f'), "
                "('rw', 's7', 'contact_research', FALSE, '2026-06-25 08:00', NULL, 'v1', 'f')")
    derive.refresh(con)
    a1 = sites.site_table(con, Filters()).set_index("site_id").loc["A1"]
    assert (a1["waiting_for_contact"], a1["to_contact"]) == (1, 7)
