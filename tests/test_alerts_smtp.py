"""Alert e-mails through a real SMTP server (aiosmtpd on 127.0.0.1): replaying June to
mid-August over the demo data with its planted CTR drift, the inbox receives exactly
one firing message, reminders no sooner than the repeat interval and one resolved
message for the drifting scope, nothing for a flat one; an SMTP outage loses and
duplicates nothing; refusals, login and STARTTLS; the command line."""
import socket
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from cockpit.alerts import run_alert_cycle
from cockpit.alerts import rules as rl
from cockpit.alerts.smtp import SmtpConfigError, SmtpSettings, flush_outbox
from cockpit.commands.alerts import alerts as alerts_command
from cockpit.store import Store
from test_alerts_evaluate import MAX_DELAY_DAYS, REPLAY, copy_store, days, drift_truth, morning_after

BASE_URL = "https://cockpit.example.org"
RECIPIENTS = ("recruitment@example.org", "cro-lead@example.org")


# ---------------------------------------------------------------- a real SMTP server


class Inbox:
    """aiosmtpd handler: keeps every accepted message; refuses the recipients in ``refuse``."""

    def __init__(self):
        self.messages = []
        self.envelopes = []
        self.refuse: dict[str, str] = {}
        self.logins: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """An aiosmtpd server that can be stopped and started again on the same port."""

    def __init__(self, **smtp_options):
        self.inbox = Inbox()
        self.port = free_port()
        self.options = smtp_options
        self.controller = None

    def start(self) -> "SmtpServer":
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **changes) -> SmtpSettings:
        values = {"host": "127.0.0.1", "port": self.port, "security": "none",
                  "sender": "cockpit@example.org", "timeout": 10.0, **changes}
        return SmtpSettings(**values)


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


def save(store, **data) -> int:
    rule = rl.parse_rule({"recipients": ", ".join(RECIPIENTS), "pending_hours": 24, "repeat_hours": 168,
                          "clear_hours": 72, **data}, rl.Catalog.from_store(store.reader()))
    return rl.save_rule(store, rule, "test")


def alert_header(msg) -> tuple[int, str]:
    parts = dict(p.strip().split("=") for p in msg["X-Cockpit-Alert"].split(";"))
    return int(parts["rule"]), parts["notification"]


def outbox(store, *columns: str) -> list[tuple]:
    return store.reader().execute(
        f"SELECT {', '.join(columns)} FROM alert_outbox ORDER BY created_at, message_id").fetchall()


# ---------------------------------------------------------------- the replay


@dataclass
class Replay:
    store: Store
    server: SmtpServer
    drift_rule: int
    flat_rule: int
    truth: dict


@pytest.fixture(scope="module")
def replay(demo_db, demo_raw, tmp_path_factory):
    """Evaluate every morning from June to mid-August, then send, as the scheduler does."""
    truth = drift_truth(demo_raw)["ctr"]
    store = Store(copy_store(demo_db, tmp_path_factory.mktemp("alerts-replay")))
    server = SmtpServer().start()
    scope = f"?study={truth['study_id']}&channel={truth['channel_id']}"
    other = sorted({s for (s,) in store.reader().execute("SELECT study_id FROM study").fetchall()}
                   - {truth["study_id"]})[0]
    drift_rule = save(store, name="Facebook CTR drift", kind="drift", kpi="ctr_pct", scope=scope,
                      params={"method": "ewma", "direction": "down"})
    flat_rule = save(store, name="Facebook CTR drift, other study", kind="drift", kpi="ctr_pct",
                     scope=f"?study={other}&channel={truth['channel_id']}",
                     params={"method": "ewma", "direction": "down"})
    for day in days(*REPLAY):
        run_alert_cycle(store, server.settings(), BASE_URL, now=morning_after(day), as_of=day)
    yield Replay(store, server, drift_rule, flat_rule, truth)
    server.stop()
    store.close()


def test_the_drift_alert_fires_once_reminds_after_the_interval_and_resolves_once(replay):
    received = [m for m in replay.server.inbox.messages if alert_header(m)[0] == replay.drift_rule]
    kinds = [alert_header(m)[1] for m in received]
    assert kinds[0] == "firing" and kinds[-1] == "resolved"
    assert kinds.count("firing") == 1 and kinds.count("resolved") == 1
    assert set(kinds[1:-1]) <= {"reminder"}
    # the firing message went out for the right day: within the detector's delay after the drift
    start = date.fromisoformat(replay.truth["date"])
    fired_on = replay.store.reader().execute(
        "SELECT as_of FROM alert_evaluation WHERE rule_id = ? AND notification = 'firing'",
        [replay.drift_rule]).fetchone()[0]
    assert start <= fired_on <= start + timedelta(days=MAX_DELAY_DAYS)
    first_pending = replay.store.reader().execute(
        "SELECT min(as_of) FROM alert_evaluation WHERE rule_id = ? AND state_after = 'pending'",
        [replay.drift_rule]).fetchone()[0]
    assert first_pending >= start  # no alarm before the drift
    # reminders no sooner than the repeat interval (7 days) after the message before
    sent_at = [m["Date"].datetime for m in received]
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:-1] + [sent_at[-1]])][: len(received) - 2]
    assert all(gap >= timedelta(hours=168) for gap in gaps)
    # the right scope, to the right people, with the link that opens it
    firing = received[0]
    assert firing["Subject"].startswith("Alert firing: Facebook CTR drift (CTR ")
    assert sorted(a.addr_spec for a in firing["To"].addresses) == sorted(RECIPIENTS)
    text = firing.get_body(("plain",)).get_content()
    html = firing.get_body(("html",)).get_content()
    link = f"{BASE_URL}/channels?study={replay.truth['study_id']}&channel={replay.truth['channel_id']}"
    assert link in text and link.replace("&", "&amp;") in html
    assert f"Data up to        {fired_on}" in text and "has dropped below its normal range" in text
    resolved = received[-1].get_body(("plain",)).get_content()
    assert "is within its normal range" in resolved and "new normal" in resolved
    assert "is the new normal, was" in received[-1]["Subject"]


def test_a_flat_kpi_never_fires_but_every_evaluation_is_logged(replay):
    assert not [m for m in replay.server.inbox.messages if alert_header(m)[0] == replay.flat_rule]
    states, values, conditions = zip(*replay.store.reader().execute(
        "SELECT state_after, value, condition FROM alert_evaluation WHERE rule_id = ? ORDER BY eval_id",
        [replay.flat_rule]).fetchall())
    n_days = (REPLAY[1] - REPLAY[0]).days + 1
    assert len(states) == n_days and set(states) <= {"normal", "pending"}
    # a day without Facebook delivery in that study (a dark flight) is logged with no
    # value and nothing judged; every other day is judged on its value
    assert all((v is None) == (c is None) for v, c in zip(values, conditions))
    assert sum(v is not None for v in values) >= n_days // 2


def test_the_inbox_holds_exactly_the_messages_of_the_outbox_each_once(replay):
    ids = replay.server.inbox.ids()
    assert len(ids) == len(set(ids))
    rows = outbox(replay.store, "message_id", "status", "attempts")
    assert sorted(ids) == sorted(m for m, _, _ in rows)
    assert {(s, a) for _, s, a in rows} == {("sent", 1)}
    for mail_from, rcpt in replay.server.inbox.envelopes:
        assert mail_from == "cockpit@example.org" and sorted(rcpt) == sorted(RECIPIENTS)


# ---------------------------------------------------------------- outages and refusals


@pytest.fixture
def store(demo_db, tmp_path):
    with Store(copy_store(demo_db, tmp_path)) as s:
        yield s


def every_day_rule(store, recipients=RECIPIENTS) -> int:
    """Fires at its first evaluation and reminds every day: one message per evaluation."""
    return save(store, name="Leads ST-101", kind="threshold", kpi="leads", scope="?study=ST-101",
                params={"op": ">", "value": 0, "window_days": 7}, pending_hours=0, repeat_hours=24,
                recipients=", ".join(recipients))


def test_smtp_down_then_up_loses_nothing_and_duplicates_nothing(store, smtp_server):
    every_day_rule(store)
    day = date(2026, 7, 1)
    first = run_alert_cycle(store, smtp_server.settings(), BASE_URL, now=morning_after(day), as_of=day)
    assert len(first.flush.sent) == 1 and smtp_server.inbox.ids() == first.flush.sent

    smtp_server.stop()
    down = []
    for d in (day + timedelta(days=1), day + timedelta(days=2)):
        result = run_alert_cycle(store, smtp_server.settings(), BASE_URL, now=morning_after(d), as_of=d)
        assert result.flush.sent == [] and "cannot reach the SMTP server" in result.flush.error
        down.append(result.outcomes[0].message_id)
    assert [r[1] for r in outbox(store, "message_id", "status")] == ["sent", "queued", "queued"]
    assert [r[0] for r in outbox(store, "attempts")] == [1, 2, 1]  # each flush tried every queued one
    assert len(smtp_server.inbox.messages) == 1

    smtp_server.start()
    again = flush_outbox(store, smtp_server.settings())
    assert again.sent == down  # oldest first, both, once
    assert flush_outbox(store, smtp_server.settings()).sent == []  # nothing left to send twice
    ids = smtp_server.inbox.ids()
    assert len(ids) == 3 and len(set(ids)) == 3 and ids[1:] == down
    assert {s for _, s in outbox(store, "message_id", "status")} == {"sent"}
    # what arrives after the outage is the message queued then: same Message-ID, its own date
    late = smtp_server.inbox.messages[1]
    assert late["Date"].datetime.replace(tzinfo=None) == morning_after(day + timedelta(days=1))


def test_a_permanent_refusal_is_kept_as_rejected_and_a_temporary_one_retried(store, smtp_server):
    smtp_server.inbox.refuse = {"gone@example.org": "550 5.1.1 No such user here",
                                "busy@example.org": "451 4.3.0 Mailbox busy, try later"}
    for name, to in (("gone", "gone@example.org"), ("busy", "busy@example.org"),
                     ("partly", "gone@example.org, ok@example.org")):
        save(store, name=f"Leads {name}", kind="threshold", kpi="leads", scope="?study=ST-101",
             params={"op": ">", "value": 0, "window_days": 7}, pending_hours=0, recipients=to)
    day = date(2026, 7, 1)
    result = run_alert_cycle(store, smtp_server.settings(), BASE_URL, now=morning_after(day), as_of=day)
    status = {row[0]: row[1:] for row in store.reader().execute(
        "SELECT r.name, o.status, o.last_error FROM alert_outbox o JOIN alert_rule r USING (rule_id)").fetchall()}
    assert status["Leads gone"][0] == "rejected" and "550" in status["Leads gone"][1]
    assert status["Leads busy"][0] == "queued" and "451" in status["Leads busy"][1]
    assert status["Leads partly"][0] == "sent" and "gone@example.org: 550" in status["Leads partly"][1]
    assert len(result.flush.sent) == 1 and len(result.flush.rejected) == 1 and len(result.flush.deferred) == 1
    assert [env[1] for env in smtp_server.inbox.envelopes] == [["ok@example.org"]]
    smtp_server.inbox.refuse = {}
    assert len(flush_outbox(store, smtp_server.settings()).sent) == 1  # the busy one, later
    assert len(flush_outbox(store, smtp_server.settings()).sent) == 0  # the rejected one stays rejected


def test_the_one_window_a_crash_after_the_server_accepted_resends_with_the_same_id(store, smtp_server,
                                                                                   monkeypatch):
    """Documented gap: if marking a message sent fails after the server took it, the next
    flush sends it again, with the same Message-ID for mail clients to recognise."""
    from cockpit.alerts import smtp

    every_day_rule(store)
    day = date(2026, 7, 1)
    run_alert_cycle(store, None, BASE_URL, now=morning_after(day), as_of=day)  # queued only
    real_mark = smtp._mark_sent
    monkeypatch.setattr(smtp, "_mark_sent", lambda *a: (_ for _ in ()).throw(SystemError("crash")))
    with pytest.raises(SystemError):
        flush_outbox(store, smtp_server.settings())
    monkeypatch.setattr(smtp, "_mark_sent", real_mark)
    assert flush_outbox(store, smtp_server.settings()).sent == smtp_server.inbox.ids()[1:]
    ids = smtp_server.inbox.ids()
    assert len(ids) == 2 and ids[0] == ids[1]


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    # openssl comes with Debian's base system; .ci/run installs it where missing
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_starttls_and_login_from_the_environment(store, tmp_path, monkeypatch):
    import ssl

    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(tls_context=context, require_starttls=True, auth_required=True)

    def authenticator(smtp, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"cockpit", b"s3cret")
        if ok:
            server.inbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    server.options["authenticator"] = authenticator
    server.start()
    try:
        settings = SmtpSettings.from_mapping(
            {"host": "127.0.0.1", "port": server.port, "security": "starttls", "sender": "cockpit@example.org"},
            environ={"COCKPIT_SMTP_USER": "cockpit", "COCKPIT_SMTP_PASSWORD": "s3cret"})
        every_day_rule(store)
        day = date(2026, 7, 1)
        # a certificate nobody trusts: nothing goes out, the message waits
        untrusted = run_alert_cycle(store, settings, BASE_URL, now=morning_after(day), as_of=day)
        assert untrusted.flush.sent == [] and "CERTIFICATE_VERIFY_FAILED" in untrusted.flush.error
        assert server.inbox.messages == []
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now trusted (as a company CA would be)
        trusted = flush_outbox(store, settings)
        assert trusted.sent == untrusted.flush.deferred and server.inbox.logins == ["cockpit"]
        assert len(server.inbox.messages) == 1
    finally:
        server.stop()


def test_settings_come_from_the_config_section_and_the_login_from_the_environment():
    ok = SmtpSettings.from_mapping({"host": "mail.example.org", "security": "ssl", "sender": "c@example.org"},
                                   environ={"COCKPIT_SMTP_USER": "u", "COCKPIT_SMTP_PASSWORD": "hunter2"})
    assert (ok.port, ok.username, ok.password, ok.timeout) == (465, "u", "hunter2", 30.0)
    assert "hunter2" not in repr(ok)  # the password is not printed in logs
    assert SmtpSettings.from_mapping({"host": "h", "sender": "c@example.org"}, environ={}).port == 587
    refused = [
        ({"host": "h", "sender": "c@example.org", "password": "x"}, {}, "read from the environment only"),
        ({"host": "h", "sender": "c@example.org", "user": "x"}, {}, "read from the environment only"),
        ({"sender": "c@example.org"}, {}, "host: the mail server"),
        ({"host": "h", "sender": "c@example.org", "security": "tls1.0"}, {}, "security: one of none"),
        ({"host": "h", "sender": "c@example.org", "port": 70000}, {}, "port: a number from 1 to 65535"),
        ({"host": "h", "sender": "nobody"}, {}, "sender: the From address"),
        ({"host": "h", "sender": "c@example.org", "timeout": 0}, {}, "timeout: seconds"),
        ({"host": "h", "sender": "c@example.org"}, {"COCKPIT_SMTP_USER": "u"}, "Set both"),
        ({"host": "mail.example.org", "sender": "c@example.org", "security": "none"},
         {"COCKPIT_SMTP_USER": "u", "COCKPIT_SMTP_PASSWORD": "p"}, "password unencrypted"),
    ]
    for section, environ, reason in refused:
        with pytest.raises(SmtpConfigError, match=reason):
            SmtpSettings.from_mapping(section, environ=environ)


# ---------------------------------------------------------------- the command line


def test_alerts_check_dry_run_and_send(demo_db, tmp_path, smtp_server):
    db = copy_store(demo_db, tmp_path)
    with Store(db) as s:
        every_day_rule(s, recipients=("ops@example.org",))
    runner = CliRunner()
    dry = runner.invoke(alerts_command, ["check", "--db", str(db), "--dry-run", "--as-of", "2026-07-03"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run: nothing is written or sent. 1 rule(s) evaluated" in dry.output
    assert "#1 Leads ST-101 [threshold]: normal -> firing." in dry.output
    assert "WOULD SEND firing to ops@example.org: Alert firing: Leads ST-101" in dry.output
    with Store(db) as s:
        assert s.reader().execute("SELECT count(*) FROM alert_evaluation").fetchone()[0] == 0
        assert s.reader().execute("SELECT count(*) FROM alert_outbox").fetchone()[0] == 0

    config = tmp_path / "cockpit.toml"
    config.write_text(f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "none"\n'
                      f'sender = "cockpit@example.org"\n\n[alerts]\nbase_url = "{BASE_URL}"\n')
    sent = runner.invoke(alerts_command, ["check", "--db", str(db), "--as-of", "2026-07-03",
                                          "--config", str(config)])
    assert sent.exit_code == 0, sent.output
    assert "SENT firing to ops@example.org" in sent.output and "E-mail: 1 sent" in sent.output
    assert len(smtp_server.inbox.messages) == 1
    assert f"{BASE_URL}/?study=ST-101" in smtp_server.inbox.messages[0].get_body(("plain",)).get_content()

    smtp_server.stop()
    with Store(db) as s:
        save(s, name="Leads ST-102", kind="threshold", kpi="leads", scope="?study=ST-102",
             params={"op": ">", "value": 0, "window_days": 7}, pending_hours=0, recipients="ops@example.org")
    later = runner.invoke(alerts_command, ["check", "--db", str(db), "--as-of", "2026-07-03",
                                           "--config", str(config)])
    assert later.exit_code == 1, later.output  # the new rule's message waits for the server
    assert "#1 Leads ST-101 [threshold]: firing -> firing." in later.output  # no second message
    assert "QUEUED (the SMTP server did not take it" in later.output and "1 kept for a retry" in later.output
    assert len(smtp_server.inbox.messages) == 1


def test_alerts_check_refuses_a_password_in_the_config_file(tmp_path):
    config = tmp_path / "cockpit.toml"
    config.write_text('[smtp]\nhost = "h"\nsender = "c@example.org"\npassword = "oops"\n')
    result = CliRunner().invoke(alerts_command, ["check", "--db", str(tmp_path / "x.duckdb"),
                                                 "--config", str(config)])
    assert result.exit_code == 2 and "COCKPIT_SMTP_PASSWORD" in result.output
