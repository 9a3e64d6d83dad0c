"""The weekly digest: the review's content in text and HTML, queued in the alerts' outbox
and delivered by the alerts' SMTP path to a real SMTP server (aiosmtpd on 127.0.0.1):
exactly one message, and queuing it again sends nothing more."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from cockpit import derive
from cockpit.alerts.digest import build_digest, queue_digest
from cockpit.alerts.smtp import SmtpConfigError, flush_outbox
from cockpit.store import Store, open_db
from test_alerts_smtp import SmtpServer
from test_metrics_review import AS_OF, review_sql

RECIPIENTS = ["ceo@example.org", "cro-lead@example.org"]


@pytest.fixture
def review_store(tmp_path: Path):
    path = tmp_path / "review.duckdb"
    con = open_db(path)
    con.execute(review_sql())
    derive.refresh(con)
    con.close()
    store = Store(path)
    yield store
    store.close()


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


def test_digest_content(review_store):
    subject, text, body = build_digest(review_store.reader(), base_url="https://cockpit.example.org")
    assert subject == "Weekly review 31 Mar 2026: 9 of 120 randomized, 2 this week"
    # the numbers worked out in test_metrics_review
    assert "Atopic study (A)" in text and "Pace vs plan: 33%" in text
    assert "Leads this week (week before, change): 24 (30, -20%)" in text
    assert "Cost per randomized to date: €50" in text and "Alerts firing: 1" in text
    assert "* Leads for site Berlin (A1): 10 this week, 20 the week before (-50%)." in text
    assert "https://cockpit.example.org/review" in text
    assert "Portfolio (2 studies)" in body and "Leads for site Berlin (A1)" in body
    assert "<script" not in body


def test_digest_through_a_real_smtp_server(review_store, smtp_server):
    now = datetime(2026, 4, 1, 7, 0)
    first = queue_digest(review_store, RECIPIENTS, now=now, domain="example.org")
    again = queue_digest(review_store, ", ".join(reversed(RECIPIENTS)), now=now, domain="example.org")
    assert first == again and first.startswith("<digest.20260331.")

    result = flush_outbox(review_store, smtp_server.settings(), now=now)
    assert result.sent == [first] and not result.deferred and not result.rejected
    assert flush_outbox(review_store, smtp_server.settings(), now=now).sent == []  # nothing left

    inbox = smtp_server.inbox
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Message-ID"] == first
    assert msg["Subject"] == f"Weekly review {AS_OF:%d %b %Y}: 9 of 120 randomized, 2 this week"
    assert sorted(inbox.envelopes[0][1]) == sorted(RECIPIENTS)
    text = msg.get_body(("plain",)).get_content()
    html_part = msg.get_body(("html",)).get_content()
    assert "Leads this week (week before, change): 24 (30, -20%)" in text
    assert "Portfolio (2 studies)" in html_part
    status = review_store.reader().execute(
        "SELECT status FROM alert_outbox WHERE message_id = ?", [first]).fetchone()[0]
    assert status == "sent"


def test_bad_recipients_are_refused(review_store):
    with pytest.raises(SmtpConfigError):
        queue_digest(review_store, ["not-an-address"])
    with pytest.raises(SmtpConfigError):
        queue_digest(review_store, [])
