"""Scheduled jobs of the serving process, run as the scheduler runs them, against a
real SMTP server on 127.0.0.1."""
from __future__ import annotations

from datetime import date, datetime, timezone

from cockpit.filters import UNLIMITED, Filters, Scope
from cockpit import cache
from cockpit.metrics import funnel, mix, review, segments
from cockpit.scheduler import Alerting, default_views, digest_job, filters_ahead, warm_job
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
    review._CACHE.clear()
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
