"""Sending alert e-mails through SMTP from the outbox in the store.

Delivery guarantee, and its one gap:
- A message is written to ``alert_outbox`` (status ``queued``) in the same
  transaction as the state change that calls for it (``cockpit.alerts.evaluate``), with
  its Message-ID fixed then. Nothing is sent inside that transaction.
- ``flush_outbox`` sends queued messages one by one over one SMTP connection and marks
  each ``sent`` right after the server accepted it (``250`` after DATA), through the
  store's writer. A server that is down, refuses the connection, fails TLS or answers
  with a temporary error (4xx) leaves the message queued; the next flush retries it,
  with the same Message-ID and the same bytes. A permanent refusal (5xx: unknown
  recipient, message refused) marks it ``rejected`` with the server's reply, shown on
  the Alerts page: kept, not retried, never silently dropped.
- The only way a message can reach an inbox twice: the process dies (or the store
  write fails) after the server accepted the message and before it is marked sent;
  or the connection breaks after the server took the message but before its ``250``
  reached us (RFC 1047). The next flush then sends it again with the same Message-ID,
  which mail clients and archives use to recognise the copy.
- Flushes in one process never overlap (a lock); DuckDB lets only one process open
  the store read-write, so no other process can flush the same outbox.

Settings: ``SmtpSettings.from_mapping`` reads host, port, security, sender and timeout
from the ``[smtp]`` section of the configuration file; the login comes only from the
environment (``COCKPIT_SMTP_USER``, ``COCKPIT_SMTP_PASSWORD``), never from a file.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Mapping

import duckdb

log = logging.getLogger("cockpit.alerts.smtp")

SECURITY = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
ENV_USER = "COCKPIT_SMTP_USER"
ENV_PASSWORD = "COCKPIT_SMTP_PASSWORD"
_SECRET_KEYS = ("password", "pass", "username", "user", "login")
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_FLUSH_LOCK = threading.Lock()


class SmtpConfigError(ValueError):
    """The SMTP settings are unusable; the message says which setting and why."""


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail server. ``security``: ``none`` (plain SMTP, port 25),
    ``starttls`` (upgrade to TLS, port 587) or ``ssl`` (TLS from the start, port 465);
    TLS certificates are verified against the system's trusted authorities.
    ``timeout`` in seconds for connecting and each SMTP command."""

    host: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "cockpit@localhost"
    timeout: float = 30.0

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> "SmtpSettings":
        """Settings from a config-file section plus the login from ``environ``.

        Raises ``SmtpConfigError`` when a value is wrong, when the section holds a user
        name or password (secrets belong in the environment), or when a login would
        cross the network unencrypted."""
        secrets = [k for k in section if k.lower() in _SECRET_KEYS]
        if secrets:
            raise SmtpConfigError(
                f"[smtp] {', '.join(secrets)}: the SMTP login is read from the environment only "
                f"({ENV_USER}, {ENV_PASSWORD}); remove it from the configuration file.")
        host = str(section.get("host") or "").strip()
        if not host:
            raise SmtpConfigError("[smtp] host: the mail server's name or address is required.")
        security = str(section.get("security") or "starttls").strip().lower()
        if security not in SECURITY:
            raise SmtpConfigError(f"[smtp] security: one of {', '.join(SECURITY)} (got {security!r}).")
        # a missing port follows the security: 25, 587 or 465
        port = _port(_given(section, "port", DEFAULT_PORTS[security]))
        timeout = _timeout(_given(section, "timeout", 30))
        sender = str(section.get("sender") or "").strip()
        if not _ADDRESS.match(sender):
            raise SmtpConfigError("[smtp] sender: the From address of alert e-mails, like cockpit@example.org.")
        user = environ.get(ENV_USER) or None
        password = environ.get(ENV_PASSWORD) or None
        if bool(user) != bool(password):
            raise SmtpConfigError(f"Set both {ENV_USER} and {ENV_PASSWORD} for an SMTP login, or neither.")
        if user and security == "none" and not _loopback(host):
            raise SmtpConfigError(
                "[smtp] security: a login over plain SMTP would send the password unencrypted; "
                "use starttls or ssl (plain SMTP with a login is accepted only to this machine).")
        return cls(host=host, port=port, security=security, username=user, password=password,
                   sender=sender, timeout=timeout)

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of the Message-IDs."""
        return self.sender.rsplit("@", 1)[-1]


def _given(section: Mapping[str, Any], key: str, default: Any) -> Any:
    """The section's value, or ``default`` when the key is absent or empty."""
    value = section.get(key)
    return default if value is None or value == "" else value


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        raise SmtpConfigError(f"[smtp] port: a number from 1 to 65535 (got {value!r}).")
    return port


def _timeout(value: Any) -> float:
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        timeout = 0.0
    if not 0 < timeout <= 600:
        raise SmtpConfigError(f"[smtp] timeout: seconds, above 0 and at most 600 (got {value!r}).")
    return timeout


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- sending


def connect(settings: SmtpSettings) -> smtplib.SMTP:
    """An SMTP session, encrypted as the settings say and logged in when a user is set."""
    context = ssl.create_default_context()
    if settings.security == "ssl":
        server: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                                context=context)
    else:
        server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.security == "starttls":
            server.starttls(context=context)
        if settings.username:
            server.login(settings.username, settings.password or "")
    except BaseException:
        server.close()
        raise
    return server


def build_message(row: Mapping[str, Any], settings: SmtpSettings) -> EmailMessage:
    """The e-mail of an outbox row: text and HTML alternatives, its fixed Message-ID,
    and the date it was queued."""
    msg = EmailMessage()
    msg["Subject"] = row["subject"]
    msg["From"] = settings.sender
    msg["To"] = ", ".join(recipients_of(row))
    created = row["created_at"]
    msg["Date"] = format_datetime(created.replace(tzinfo=timezone.utc))
    msg["Message-ID"] = row["message_id"]
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to alerts
    msg["X-Cockpit-Alert"] = f"rule={row['rule_id']}; notification={row['kind']}"
    msg.set_content(row["body_text"])
    msg.add_alternative(row["body_html"], subtype="html")
    return msg


def recipients_of(row: Mapping[str, Any]) -> list[str]:
    return [r.strip() for r in str(row["recipients"]).split(",") if r.strip()]


@dataclass
class FlushResult:
    """What one flush did: Message-IDs sent, left queued for a retry, or rejected for
    good; ``error``: why sending stopped early (server unreachable, connection lost);
    ``skipped``: another flush was running."""

    sent: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False


def queued(con: duckdb.DuckDBPyConnection, limit: int = 100) -> list[dict]:
    """Queued messages, oldest first."""
    return con.execute(
        "SELECT * FROM alert_outbox WHERE status = 'queued' ORDER BY created_at, message_id LIMIT ?",
        [limit]).df().to_dict("records")


def flush_outbox(store, settings: SmtpSettings, now: datetime | None = None, limit: int = 100) -> FlushResult:
    """Send the queued messages (see the module docstring for the guarantee)."""
    if not _FLUSH_LOCK.acquire(blocking=False):
        return FlushResult(skipped=True)
    try:
        return _flush(store, settings, now, limit)
    finally:
        _FLUSH_LOCK.release()


def _flush(store, settings: SmtpSettings, now: datetime | None, limit: int) -> FlushResult:
    result = FlushResult()
    rows = queued(store.reader(), limit)
    if not rows:
        return result
    try:
        server = connect(settings)
    except (OSError, smtplib.SMTPException) as exc:
        result.error = f"cannot reach the SMTP server {settings.host}:{settings.port}: {_reason(exc)}"
        _attempted(store, [r["message_id"] for r in rows], result.error, now)
        result.deferred = [r["message_id"] for r in rows]
        log.warning("alert e-mails kept for a retry: %s", result.error)
        return result
    try:
        for i, row in enumerate(rows):
            if not _send_one(store, server, row, settings, now, result):
                rest = [r["message_id"] for r in rows[i + 1:]]
                _attempted(store, rest, result.error, now, count=False)
                result.deferred += rest
                break
    finally:
        try:
            server.quit()
        except (OSError, smtplib.SMTPException):
            server.close()
    return result


def _send_one(store, server: smtplib.SMTP, row: dict, settings: SmtpSettings, now: datetime | None,
              result: FlushResult) -> bool:
    """Send one message; False when the connection is no longer usable."""
    message_id = row["message_id"]
    try:
        refused = server.send_message(build_message(row, settings), from_addr=settings.sender,
                                      to_addrs=recipients_of(row))
    except smtplib.SMTPRecipientsRefused as exc:
        _refused(store, result, message_id, exc.recipients, now)
        return True
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if exc.smtp_code >= 500:
            _reject(store, message_id, f"refused by the server: {reply}", now)
            result.rejected.append(message_id)
        else:
            _attempted(store, [message_id], f"temporarily refused: {reply}", now)
            result.deferred.append(message_id)
        return True
    except (OSError, smtplib.SMTPException) as exc:
        result.error = f"connection to {settings.host}:{settings.port} lost: {_reason(exc)}"
        _attempted(store, [message_id], result.error, now)
        result.deferred.append(message_id)
        return False
    # accepted: mark it now, before anything else can fail (see the module docstring)
    note = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in refused.items()) or None
    _mark_sent(store, message_id, note, now)
    result.sent.append(message_id)
    return True


def _refused(store, result: FlushResult, message_id: str, recipients: dict, now: datetime | None) -> None:
    """No recipient accepted: permanent when every refusal is 5xx, else retried."""
    reply = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in recipients.items())
    if all(code >= 500 for code, _ in recipients.values()):
        _reject(store, message_id, f"every recipient refused: {reply}", now)
        result.rejected.append(message_id)
    else:
        _attempted(store, [message_id], f"recipients refused for now: {reply}", now)
        result.deferred.append(message_id)


def _mark_sent(store, message_id: str, note: str | None, now: datetime | None) -> None:
    when = now or datetime.utcnow()
    store.write_sync(lambda con: con.execute(
        "UPDATE alert_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
        "last_attempt_at = ?, last_error = ? WHERE message_id = ? AND status = 'queued'",
        [when, when, note and f"accepted, but some recipients refused: {note}", message_id]))


def _reject(store, message_id: str, reason: str, now: datetime | None) -> None:
    when = now or datetime.utcnow()
    store.write_sync(lambda con: con.execute(
        "UPDATE alert_outbox SET status = 'rejected', attempts = attempts + 1, last_attempt_at = ?, "
        "last_error = ? WHERE message_id = ? AND status = 'queued'", [when, reason, message_id]))


def _attempted(store, message_ids: list[str], reason: str | None, now: datetime | None,
               count: bool = True) -> None:
    """Record a failed try; the messages stay queued."""
    if not message_ids:
        return
    when = now or datetime.utcnow()
    marks = ", ".join("?" for _ in message_ids)
    increment = "attempts + 1" if count else "attempts"
    store.write_sync(lambda con: con.execute(
        f"UPDATE alert_outbox SET attempts = {increment}, last_attempt_at = ?, last_error = ? "
        f"WHERE message_id IN ({marks}) AND status = 'queued'", [when, reason, *message_ids]))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


__all__ = ["SmtpSettings", "SmtpConfigError", "connect", "build_message", "FlushResult", "queued",
           "flush_outbox", "recipients_of", "SECURITY", "DEFAULT_PORTS", "ENV_USER", "ENV_PASSWORD"]
