"""Evaluating alert rules: the control charts against hand computations and their
stated run lengths, the state machine, the daily KPIs against the page metrics, the
planted drifts of the demo found on the right day for the right scope (and a flat KPI
never), and one evaluation = one transaction (log, state, outbox)."""
import json
import math
import shutil
import statistics
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cockpit.alerts import evaluate as ev
from cockpit.alerts import notify
from cockpit.alerts import rules as rl
from cockpit.filters import Filters
from cockpit.metrics import daily
from cockpit.metrics.counts import spend, stage_counts
from cockpit.store import Store

REPLAY = (date(2026, 6, 1), date(2026, 8, 15))
MAX_DELAY_DAYS = 7  # EWMA(0.2, 3): a 1.5-sigma step is signalled after 4.7 days on average


def days(start: date, end: date):
    while start <= end:
        yield start
        start += timedelta(days=1)


def morning_after(day: date) -> datetime:
    """Evaluations of a day's data happen the next morning."""
    return datetime.combine(day + timedelta(days=1), time(6))


def copy_store(demo_db: Path, tmp_path: Path) -> Path:
    """A private copy of the session's demo store (its WAL too, if any)."""
    target = tmp_path / "alerts.duckdb"
    shutil.copy(demo_db, target)
    wal = Path(str(demo_db) + ".wal")
    if wal.exists():
        shutil.copy(wal, Path(str(target) + ".wal"))
    return target


def drift_truth(demo_raw: Path) -> dict:
    truth = json.loads((demo_raw / "ground_truth.json").read_text(encoding="utf-8"))
    return {d["kpi"]: d for d in truth["drifts"]}


def rule(**data) -> rl.Rule:
    return rl.parse_rule({"recipients": "ops@example.org", **data})


# ---------------------------------------------------------------- control charts


def test_ewma_follows_the_recursion_with_exact_limits():
    baseline = np.array([10, 12, 8, 11, 9, 10, 12, 8.0])
    monitored = np.array([9.0, np.nan, 7.0, 6.0])
    chart = ev.ewma_chart(baseline, monitored, lam=0.2, L=3.0)
    sd = statistics.stdev(baseline)
    assert chart.mean == pytest.approx(10.0) and chart.sd == pytest.approx(sd)
    # z_0 = mean, then z_t = 0.2 x_t + 0.8 z_{t-1}; the day without data is skipped
    expected = pd.Series([10.0, 9.0, 7.0, 6.0]).ewm(alpha=0.2, adjust=False).mean().tolist()[1:]
    assert chart.statistic == pytest.approx(expected)
    assert expected == pytest.approx([9.8, 9.24, 8.592])
    # exact limits after 3 days: 3 sd sqrt(0.2/1.8 (1 - 0.8^6)); after 1 day they are 3 sd 0.2
    width = 3 * sd * math.sqrt(0.2 / 1.8 * (1 - 0.8 ** 6))
    assert (chart.lower, chart.upper) == pytest.approx((10 - width, 10 + width))
    assert chart.signals == [None, None, None, "down"] and chart.signal == "down" and chart.days == 3
    first = ev.ewma_chart(baseline, monitored[:1], 0.2, 3.0)
    assert first.lower == pytest.approx(10 - 3 * sd * 0.2)


def test_cusum_accumulates_standardized_deviations():
    baseline = np.array([9.0, 11.0, 9.0, 11.0])  # mean 10, sd 2/sqrt(3)
    sd = statistics.stdev(baseline)
    monitored = np.array([8.0, 7.0, 12.0, 6.0])
    chart = ev.cusum_chart(baseline, monitored, k=0.5, h=4.0)
    low = high = 0.0
    path = []
    for x in monitored:  # Page's tabular CUSUM, by hand
        u = (x - 10.0) / sd
        high, low = max(0.0, high + u - 0.5), max(0.0, low - u - 0.5)
        path.append((low, high))
    assert np.asarray(chart.statistic, dtype=float) == pytest.approx(np.asarray(path))
    assert path[-1][0] > 4.0 and chart.signal == "down"
    assert [s for s in chart.signals] == [("down" if lo > 4 else None) for lo, _ in path]


def _run_lengths(shift: float, runs: int, horizon: int, rng) -> np.ndarray:
    """Days until a two-sided EWMA(0.2, 3) on N(shift, 1) days signals (known mean and sd)."""
    lam, L = 0.2, 3.0
    x = rng.normal(shift, 1.0, size=(runs, horizon))
    z = np.zeros(runs)
    length = np.full(runs, horizon)
    alive = np.ones(runs, dtype=bool)
    for t in range(1, horizon + 1):
        z = lam * x[:, t - 1] + (1 - lam) * z
        width = L * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * t)))
        hit = alive & (np.abs(z) > width)
        length[hit] = t
        alive &= ~hit
    return length


def test_ewma_run_lengths_are_the_ones_stated():
    rng = np.random.default_rng(20260701)
    assert 4.2 < _run_lengths(1.5, 4000, 60, rng).mean() < 5.2  # stated: 4.7 days
    assert 2.6 < _run_lengths(2.0, 4000, 60, rng).mean() < 3.2  # stated: 2.9 days
    assert 430 < _run_lengths(0.0, 2000, 4000, rng).mean() < 700  # stated: about 560 days


# ---------------------------------------------------------------- state machine

T0 = datetime(2026, 7, 1, 6)
DRIFT = rule(name="r", kind="drift", kpi="ctr_pct", params={}, pending_hours=24, repeat_hours=168,
             clear_hours=72)


def run(conditions, r=DRIFT, state=None, hours=24):
    """Step through one evaluation per ``hours``; returns (states, notifications)."""
    state = state or ev.AlertState()
    states, sent = [], []
    for i, c in enumerate(conditions):
        st = ev.step(state, c, r, T0 + timedelta(hours=hours * i))
        state = st.after
        states.append(state.state)
        sent.append(st.notification)
    return states, sent, state


def test_pending_then_firing_once_then_resolved_once():
    states, sent, _ = run([False, True, True, True, False, False, False, False, False])
    assert states == ["normal", "pending", "firing", "firing", "firing", "firing", "firing", "resolved",
                      "resolved"]
    assert sent == [None, None, "firing", None, None, None, None, "resolved", None]


def test_a_blip_shorter_than_the_pending_period_never_fires():
    states, sent, _ = run([True, False, True, False, True, False])
    assert set(states) == {"pending", "normal"} and not any(sent)


def test_reminders_only_after_the_repeat_interval():
    _, sent, _ = run([True] * 20)  # daily evaluations, weekly reminders
    assert [i for i, s in enumerate(sent) if s] == [1, 8, 15]
    assert sent[1] == "firing" and sent[8] == sent[15] == "reminder"


def test_a_dip_shorter_than_the_clear_period_does_not_resolve():
    states, sent, _ = run([True, True, False, False, True, True, False, False, False, False])
    assert states[2:6] == ["firing"] * 4 and sent.count("resolved") == 1 and sent.count("firing") == 1


def test_acknowledged_alerts_stop_reminding_but_still_resolve():
    _, _, firing = run([True, True])
    acked = ev.AlertState(**{**firing.__dict__, "acknowledged_at": T0, "acknowledged_by": "maria"})
    states, sent, _ = run([True] * 10 + [False] * 4, state=acked)
    assert "reminder" not in sent and sent[-1] == "resolved" and states[-1] == "resolved"


def test_silence_holds_messages_until_it_ends():
    silenced = ev.AlertState(silenced_until=T0 + timedelta(days=3, hours=1), silenced_by="jon")
    states, sent, _ = run([True] * 6, state=silenced)
    assert states[1:] == ["firing"] * 5
    assert sent == [None, None, None, None, "firing", None]  # announced once the silence is over


def test_a_recovery_during_a_silence_is_reported_only_if_the_firing_was():
    never_told = ev.AlertState(silenced_until=T0 + timedelta(days=30))
    _, sent, _ = run([True, True, False, False, False, False], state=never_told)
    assert not any(sent)
    _, _, told = run([True, True])
    told = ev.AlertState(**{**told.__dict__, "silenced_until": T0 + timedelta(days=30)})
    _, sent, _ = run([False] * 4, state=told)
    assert sent[-1] == "resolved"


def test_no_data_changes_nothing():
    _, _, firing = run([True, True])
    st = ev.step(firing, None, DRIFT, T0 + timedelta(days=30))
    assert st.after == firing and st.notification is None and "nothing to judge" in st.note


def test_zero_pending_fires_at_once():
    r = rule(name="r", kind="stale", params={"source": "meta_ads"}, pending_hours=0)
    assert ev.step(ev.AlertState(), True, r, T0).notification == "firing"


# ---------------------------------------------------------------- daily KPIs


def test_daily_series_and_window_values_agree_with_the_page_metrics(tiny_con):
    march = Filters.make(study="A", start="2026-03-01", end="2026-03-31")
    ctr = daily.window_value(tiny_con, "ctr_pct", march)
    assert ctr.value == pytest.approx(100 * 110 / 3000)  # clicks 50 + 60 over 1,000 + 2,000 impressions
    series = daily.daily_series(tiny_con, "ctr_pct", march)
    assert len(series) == 31 and series["value"].notna().sum() == 2
    assert series.set_index("day").loc[date(2026, 3, 2), "value"] == pytest.approx(5.0)
    assert (series["numerator"].sum(), series["denominator"].sum()) == (110, 3000)
    assert daily.window_value(tiny_con, "cpl", march).value == pytest.approx(330 / 3)  # 3 leads in A
    for key in ("leads", "eligible", "randomized", "spend"):
        total = daily.daily_series(tiny_con, key, march)["numerator"].sum()
        page = (spend(tiny_con, march)["spend"].sum() if key == "spend"
                else stage_counts(tiny_con, march).iloc[0][key])
        assert total == pytest.approx(page) == pytest.approx(daily.window_value(tiny_con, key, march).value)
    # p1 (lead 3 March, randomized 20 March) and p5 (10 February, 5 March): 17 and 23 days
    assert daily.window_value(tiny_con, "days_to_randomization", march).value == pytest.approx(20)
    assert daily.window_value(tiny_con, "contact_delay_wd", march).value is None


def test_enrolment_pace_is_the_overview_straight_line(tiny_con):
    pace = daily.enrolment_pace(tiny_con, Filters.make(study="A"), date(2026, 3, 31))
    target = 10 * 89 / 364  # target 10, 89 of 364 planned days elapsed
    assert pace.randomized == 2 and pace.target_to_date == pytest.approx(round(target, 1))
    assert pace.pct == pytest.approx(100 * 2 / target)
    assert daily.enrolment_pace(tiny_con, Filters.make(study="A"), date(2026, 1, 5)).pct is None  # too early


def test_freshness_of_a_source(demo_store):
    con = demo_store.reader()
    now = datetime(2026, 7, 10, 12)
    fresh = daily.source_freshness(con, "meta_ads", Filters(), now)
    assert fresh.newest_record == datetime(2026, 7, 10)  # data up to the end of 9 July
    assert fresh.age_hours == pytest.approx(12.0)
    by_study = daily.source_freshness(con, "meta_ads", Filters.make(study="ST-101"), now)
    assert by_study.newest_record <= fresh.newest_record


# ---------------------------------------------------------------- the planted drifts


def test_ctr_drift_found_on_the_right_day_for_the_right_scope(demo_store, demo_raw):
    """Replaying June to mid-August, the EWMA rule on the drifting study and channel
    signals from the drift's first days on; the same rule on another study at most on
    one day. (An in-control EWMA with lambda 0.2 and L 3 still signals now and then: its
    average run length is hundreds of days under normal noise, and daily CTR over
    flights of very different reach is not that tidy; one stray day in 76 is chance,
    a run of them would be a fault.)"""
    truth = drift_truth(demo_raw)["ctr"]
    start = date.fromisoformat(truth["date"])
    con = demo_store.reader()
    other = sorted({s for (s,) in con.execute("SELECT study_id FROM study").fetchall()} - {truth["study_id"]})[0]
    drifting = rule(name="d", kind="drift", kpi="ctr_pct", params={"direction": "down"},
                    scope=f"?study={truth['study_id']}&channel={truth['channel_id']}")
    flat = rule(name="f", kind="drift", kpi="ctr_pct", params={"direction": "down"},
                scope=f"?study={other}&channel={truth['channel_id']}")
    hits, flat_hits = [], []
    for day in days(*REPLAY):
        hits += [day] if ev.observe(con, drifting, day, morning_after(day)).condition else []
        flat_hits += [day] if ev.observe(con, flat, day, morning_after(day)).condition else []
    assert len(flat_hits) <= 1
    assert hits and start <= hits[0] <= start + timedelta(days=MAX_DELAY_DAYS)
    assert all(h >= start for h in hits)
    obs = ev.observe(con, drifting, hits[0], morning_after(hits[0]))
    assert obs.value < obs.reference < obs.baseline  # smoothed CTR below the lower limit
    assert obs.baseline == pytest.approx(100 * truth["observed"]["ctr_before"], rel=0.15)


def test_contact_delay_drift_found_at_the_planted_site_only(demo_store, demo_raw):
    truth = drift_truth(demo_raw)["contact_delay_working_days"]
    planted_slow = [s["site_id"] for s in json.loads(
        (demo_raw / "ground_truth.json").read_text(encoding="utf-8"))["slow_contact_sites"]]
    start = date.fromisoformat(truth["date"])
    con = demo_store.reader()
    slow = rule(name="s", kind="threshold", kpi="contact_delay_wd", scope=f"?site={truth['site_id']}",
                params={"op": ">", "value": 3.0, "window_days": 28})
    busiest_other = con.execute(
        "SELECT site_id FROM journey WHERE contacted_ts IS NOT NULL AND NOT list_contains(?, site_id) "
        "GROUP BY site_id ORDER BY count(*) DESC LIMIT 1", [[truth["site_id"], *planted_slow]]).fetchone()[0]
    other = rule(name="o", kind="threshold", kpi="contact_delay_wd", scope=f"?site={busiest_other}",
                 params={"op": ">", "value": 3.0, "window_days": 28})
    hits = [d for d in days(*REPLAY) if ev.observe(con, slow, d, morning_after(d)).condition]
    assert hits and hits[0] > start  # a 28-day median moves once most contacts are after the drift
    assert hits[0] <= start + timedelta(days=35)
    assert not any(ev.observe(con, other, d, morning_after(d)).condition for d in days(*REPLAY))


def test_messages_say_what_happened_with_the_value_trend_and_a_link(demo_store, demo_raw):
    truth = drift_truth(demo_raw)["ctr"]
    r = rl.Rule(**{**rule(name="CTR drop", kind="drift", kpi="ctr_pct", params={"direction": "down"},
                          scope=f"?study={truth['study_id']}&channel={truth['channel_id']}").__dict__,
                   "rule_id": 7})
    day = date.fromisoformat(truth["date"]) + timedelta(days=5)
    con = demo_store.reader()
    obs = ev.observe(con, r, day, morning_after(day))
    trend = ev.trend_for(con, r, obs)
    facts = notify.Facts(obs.headline, obs.rows, obs.page, notify.trend_period(trend, day), obs.short)
    msg = notify.compose(r, "firing", facts, trend, firing_since=morning_after(day), now=morning_after(day),
                         base_url="https://cockpit.example.org/")
    assert msg.subject.startswith("Alert firing: CTR drop (CTR ")
    assert "has dropped below its normal range" in msg.text and "Facebook" in msg.text
    link = (f"https://cockpit.example.org/channels?study={truth['study_id']}&channel={truth['channel_id']}"
            f"&start={day - timedelta(days=41)}&end={day}")
    assert link in msg.text and link.replace("&", "&amp;") in msg.html
    assert "https://cockpit.example.org/alerts?rule=7" in msg.text
    assert "λ = 0.2" in msg.text and f"Data up to        {day}" in msg.text
    assert len(notify.sparkline([v for _, v in trend.points])) == 42
    assert msg.html.count('title="20') == 42  # one bar per day, dated
    assert "<script" not in msg.html and "Normal level" in msg.html


# ---------------------------------------------------------------- one evaluation, one transaction


def test_an_evaluation_logs_the_value_and_queues_its_message_in_one_transaction(demo_db, tmp_path,
                                                                                 monkeypatch):
    with Store(copy_store(demo_db, tmp_path)) as store:
        catalog = rl.Catalog.from_store(store.reader())
        leads = rl.save_rule(store, rl.parse_rule({
            "name": "Leads ST-101", "kind": "threshold", "kpi": "leads", "scope": "?study=ST-101",
            "params": {"op": ">", "value": 0, "window_days": 7}, "recipients": "ops@example.org",
            "pending_hours": 0}, catalog), "test")
        day = date(2026, 7, 3)
        (out,) = ev.evaluate_all(store, now=morning_after(day), as_of=day, base_url="http://c")
        con = store.reader()
        logged = con.execute("SELECT eval_id, value, reference, condition, state_before, state_after, "
                             "notification, message_id FROM alert_evaluation").fetchall()
        queued = con.execute("SELECT eval_id, message_id, kind, status FROM alert_outbox").fetchall()
        expected = daily.window_value(con, "leads", daily.trailing(Filters.make(study="ST-101"), day, 7)).value
        assert logged == [(queued[0][0], expected, 0.0, True, "normal", "firing", "firing", out.message_id)]
        assert queued == [(logged[0][0], out.message_id, "firing", "queued")]
        assert ev.load_state(con, leads).state == "firing"

        # a failure while recording rolls everything back: no log, no state change, no message
        monkeypatch.setattr(ev, "_log", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
        later = day + timedelta(days=8)
        (failed,) = ev.evaluate_all(store, now=morning_after(later), as_of=later)
        assert failed.error == "RuntimeError: disk full"
        assert con.execute("SELECT count(*) FROM alert_evaluation").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM alert_outbox").fetchone()[0] == 1
        assert ev.load_state(con, leads).last_notified_at == morning_after(day)


def test_acknowledge_and_silence(demo_db, tmp_path):
    with Store(copy_store(demo_db, tmp_path)) as store:
        rid = rl.save_rule(store, rl.parse_rule({
            "name": "Stale", "kind": "stale", "params": {"source": "meta_ads", "max_hours": 1},
            "recipients": "ops@example.org", "pending_hours": 0}), "test")
        with pytest.raises(ev.AlertActionError, match="Only a firing alert can be acknowledged"):
            ev.acknowledge(store, rid, "maria")
        day = date(2026, 7, 3)
        ev.evaluate_all(store, now=morning_after(day) + timedelta(hours=30), as_of=day)
        ev.acknowledge(store, rid, "maria", now=datetime(2026, 7, 5))
        with pytest.raises(ev.AlertActionError, match="already acknowledged by maria"):
            ev.acknowledge(store, rid, "jon")
        until = ev.silence(store, rid, 24, "jon", now=datetime(2026, 7, 5))
        state = ev.load_state(store.reader(), rid)
        assert (state.acknowledged_by, state.silenced_until, state.silenced_by) == ("maria", until, "jon")
        ev.silence(store, rid, 0, "jon")
        assert ev.load_state(store.reader(), rid).silenced_until is None
        table = ev.rules_table(store.reader())
        assert table.loc[0, "state"] == "firing" and table.loc[0, "acknowledged"].startswith("maria")
        actions = [a for (a,) in store.reader().execute(
            "SELECT action FROM alert_action ORDER BY action_id").fetchall()]
        assert actions == ["created", "acknowledged", "silenced", "unsilenced"]


def test_a_cycle_refuses_to_run_inside_a_store_write(tmp_path):
    from cockpit.alerts import run_alert_cycle

    with Store(tmp_path / "w.duckdb") as store:
        with pytest.raises(RuntimeError, match="must not run inside a store write"):
            store.write_sync(lambda con: run_alert_cycle(store, None, "http://c"))
        assert run_alert_cycle(store, None, "http://c").outcomes == []
