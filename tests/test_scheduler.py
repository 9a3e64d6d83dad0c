"""Scheduled jobs of the serving process, run as the scheduler runs them, against a
real SMTP server on 127.0.0.1."""
from __future__ import annotations

import threading
from datetime import date, datetime, timezone

from cockpit.filters import UNLIMITED, Filters, Scope
from cockpit import cache
from cockpit.metrics import funnel, mix, review, segments
from cockpit.scheduler import Alerting, Warmup, default_views, digest_job, filters_ahead, warm_job
from cockpit.store import Store
from test_alerts_smtp import SmtpServer
from test_digest import review_store  # noqa: F401  (the fixture: the review's hand-built store)


def test_weekly_digest_job_sends_once_per_week(review_store):
    server = SmtpServer().start()
    try:
        alerting = Alerting(settings=server.settings(), base_url="https://cockpit.example.org",
                            digest_recipients=("lead@example.org",))
        digest_job(review_store, alerting)
        digest_job(review_store, alerting)  # a second run in the same week: nothing new
        ids = server.inbox.ids()
    finally:
        server.stop()
    assert len(ids) == 1 and ids[0].startswith("<digest.20260331.")


def test_weekly_digest_job_keeps_the_message_while_smtp_is_down(review_store):
    server = SmtpServer().start()
    settings = server.settings()
    server.stop()
    alerting = Alerting(settings=settings, base_url="", digest_recipients=("lead@example.org",))
    digest_job(review_store, alerting)  # logged, not raised
    queued = review_store.reader().execute(
        "SELECT count(*) FROM alert_outbox WHERE kind = 'digest' AND status = 'queued'").fetchone()[0]
    assert queued == 1


def test_forecasts_the_portfolio_model_and_default_views_are_computed_ahead(review_store):
    review.clear_cache()
    warm_job(review_store)
    con = review_store.reader()
    key = review._data_key(con, review.review_day(con))
    studies = [s for (s,) in con.execute("SELECT study_id FROM study ORDER BY study_id").fetchall()]
    assert len(studies) >= 2
    assert sorted(k[0] for k in review._CACHE.keys() if k[1:] == (*key, review.PAGE_SIMS)) == studies
    # the page reads them from the cache: the very objects computed ahead
    first = review._CACHE.get((studies[0], *key, review.PAGE_SIMS))
    assert first is not None and review.cached_forecast(con, studies[0]) is first
    # and the Budget page's model of the whole portfolio, for a viewer who sees it all
    assert mix.is_cached(con, Filters(scope=UNLIMITED))
    assert not mix.is_cached(con, Filters(scope=Scope(studies=(studies[0],))))
    # and each page's view without a filter, as the pages ask for it
    assert all(cache.is_cached(review_store, fn, Filters(scope=UNLIMITED)) for fn in default_views())
    assert cache.is_cached(review_store, funnel.snapshot, Filters(scope=UNLIMITED), by="channel", view="speed")
    assert not cache.is_cached(review_store, funnel.snapshot, Filters(scope=UNLIMITED), by="site", view="speed")
    # and the Budget model of each study still spending: A (liaison fees), not B (none)
    assert mix.is_cached(con, Filters(study=("A",), scope=UNLIMITED))
    assert not mix.is_cached(con, Filters(study=("B",), scope=UNLIMITED))


def test_the_studies_still_spending_most_first(review_store):
    con = review_store.reader()
    # the latest day with data is 5 April (A's fee of 1,000), so the eight weeks since
    # 8 February count: A's 400 on 5 March and 1,000 on 5 April
    assert mix.spending_studies(con, 10) == ["A"]
    review_store.write_sync(lambda c: c.execute(
        "INSERT INTO offline_cost VALUES ('b1', '2026-02-07', 'hcp_referral', NULL, 'B', NULL, 5000, 'old', 'f'),"
        " ('b2', '2026-03-20', 'hcp_referral', NULL, 'B', NULL, 1500, 'fee', 'f')"))
    # B: 1,500 in the eight weeks (the 5,000 of 7 February is older), more than A's 1,400
    assert mix.spending_studies(con, 10) == ["B", "A"]
    assert mix.spending_studies(con, 1) == ["B"]


def test_the_warm_up_runs_once_at_a_time_and_once_more_for_what_was_asked_meanwhile(tmp_path):
    started, release, seen = threading.Event(), threading.Event(), []

    def job(store):
        seen.append(store)
        started.set()
        release.wait(10)

    warmup = Warmup(job)
    with Store(tmp_path / "a.duckdb") as a, Store(tmp_path / "b.duckdb") as b:
        warmup.request(a)
        assert started.wait(10)
        warmup.request(a)
        warmup.request(b)  # while the first run is under way: one more run, of the latest
        assert not warmup.wait(0.1)
        release.set()
        assert warmup.wait(10)
        assert seen == [a, b] and warmup.runs == 2
        warmup.request(a)  # idle again: a run of its own
        assert warmup.wait(10) and seen == [a, b, a] and warmup.runs == 3


def test_each_phase_segment_and_period_view_is_computed_ahead(review_store):
    warm_job(review_store)
    con = review_store.reader()
    phases = [p for (p,) in con.execute("SELECT DISTINCT phase FROM study ORDER BY phase").fetchall()]
    segment_ids = [s for (s,) in con.execute("SELECT segment_id FROM segment ORDER BY segment_id").fetchall()]
    assert len(phases) >= 2 and segment_ids
    today = datetime.now(timezone.utc).date()
    quarter = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    ahead = filters_ahead(con, today)
    assert ahead[0] == Filters(scope=UNLIMITED)
    assert Filters(start=quarter, scope=UNLIMITED) in ahead  # this quarter, up to today
    assert Filters(start=date(today.year, 1, 1), scope=UNLIMITED) in ahead  # the year to date
    coarse = [Filters(phase=(p,), scope=UNLIMITED) for p in phases] + [
        Filters(segment=(s,), scope=UNLIMITED) for s in segment_ids]
    assert ahead[1:1 + len(coarse)] == coarse and len(ahead) == 1 + len(coarse) + 4
    views = [fn for fn in default_views() if fn is not segments.all_segments]
    assert all(cache.is_cached(review_store, fn, f) for fn in views for f in ahead)
    assert all(mix.is_cached(con, f) for f in ahead)
    # a phase and a segment together, or one phase for a viewer of one study, are left
    # for their first viewer
    assert not cache.is_cached(review_store, funnel.snapshot,
                               Filters(phase=(phases[0],), segment=(segment_ids[0],), scope=UNLIMITED))
    assert not cache.is_cached(review_store, funnel.snapshot,
                               Filters(phase=(phases[0],), scope=Scope(studies=("ST-101",))))
