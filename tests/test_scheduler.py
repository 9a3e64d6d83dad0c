"""Scheduled jobs of the serving process, run as the scheduler runs them, against a
real SMTP server on 127.0.0.1."""
from __future__ import annotations

from cockpit.scheduler import Alerting, digest_job
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
