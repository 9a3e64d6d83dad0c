"""Scheduled jobs of the serving process, run as the scheduler runs them, against a
real SMTP server on 127.0.0.1."""
from __future__ import annotations

from cockpit.filters import UNLIMITED, Filters, Scope
from cockpit import cache
from cockpit.metrics import funnel, mix, review
from cockpit.scheduler import Alerting, default_views, digest_job, warm_job
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
