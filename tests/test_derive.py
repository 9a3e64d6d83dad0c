"""The journey table: one row per person and study, attributed by last consented touch."""


def journeys(con):
    return {row[0]: row[1:] for row in con.execute(
        "SELECT pid, study_id, site_id, segment_id, channel_id, campaign_id FROM journey ORDER BY pid"
    ).fetchall()}


def test_one_row_per_person_and_study(tiny_con):
    assert tiny_con.execute("SELECT count(*), count(DISTINCT (pid, study_id)) FROM journey").fetchone() == (5, 5)


def test_last_touch_before_the_lead_wins(tiny_con):
    # p1 clicked again after becoming a lead: the earlier click keeps the credit
    assert journeys(tiny_con)["p1"] == ("A", "A1", "adults", "facebook", "CA")


def test_withdrawn_tracking_consent_removes_the_touch(tiny_con):
    assert journeys(tiny_con)["p3"][3] == "unattributed"


def test_referral_counts_without_tracking_consent(tiny_con):
    # p2 and p5 never gave tracking consent; a referral is not tracking
    assert journeys(tiny_con)["p2"][3] == "hcp_referral"
    assert journeys(tiny_con)["p5"][3] == "hcp_referral"


def test_rebuild_is_idempotent(tiny_con):
    from cockpit import derive

    before = tiny_con.execute("SELECT * FROM journey ORDER BY pid").fetchall()
    assert derive.rebuild_journey(tiny_con) == 5
    assert tiny_con.execute("SELECT * FROM journey ORDER BY pid").fetchall() == before
