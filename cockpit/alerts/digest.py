"""The weekly digest e-mail: the Weekly review page's content (one line per study, the
portfolio total, each study's forecast and its three biggest changes of the week), queued
in the alerts' outbox so that it goes out by the same SMTP path as alert e-mails
(``cockpit.alerts.smtp.flush_outbox``: retried while the server is down, marked sent once
accepted).

A digest is queued once per as-of day and list of recipients: its Message-ID is made from
both, so queuing it again (a scheduler firing twice) sends nothing more.
"""
from __future__ import annotations

import hashlib
import html
from datetime import date, datetime

import duckdb
import pandas as pd

from cockpit.alerts.smtp import SmtpConfigError
from cockpit.filters import Filters
from cockpit.metrics import review

DIGEST_RULE_ID = 0  # outbox rows need a rule; 0 is no rule (rule ids start at 1)
DIGEST_KIND = "digest"
_ADDRESS_CHARS = set("<>,;\r\n ")


def _fmt(value, kind: str = "int") -> str:
    """A number as the page shows it ('—' when unknown)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if kind == "pct":
        return f"{value:.0f}%"
    if kind == "money":
        return f"€{value:,.0f}"
    if kind == "signed":
        return f"{value:+.0f}%"
    return f"{int(value):,}"


def study_lines(row: dict) -> list[tuple[str, str]]:
    """The facts of one study (or the total) as (label, value) pairs."""
    forecast = ("—" if row["forecast_date"] is None else
                f"{row['forecast_date']} (80% interval {row['forecast_lo80']} to {row['forecast_hi80']})")
    pairs = [
        ("Phase", row["phase"] or "—"),
        ("Randomized to date", f"{_fmt(row['randomized_to_date'])} of {_fmt(row['target'])}"),
        ("Pace vs plan", _fmt(row["pace_pct"], "pct")),
        ("Target reached (forecast)", forecast),
        ("Chance on time", _fmt(row["p_on_time_pct"], "pct")),
        ("Cost per randomized to date", _fmt(row["cost_per_randomized_to_date"], "money")),
        ("Randomized this week (week before)",
         f"{_fmt(row['randomized_this_week'])} ({_fmt(row['randomized_week_before'])})"),
        ("Leads this week (week before, change)",
         f"{_fmt(row['leads_this_week'])} ({_fmt(row['leads_week_before'])}, "
         f"{_fmt(row['leads_change_pct'], 'signed')})"),
        ("Alerts firing", _fmt(row["alerts_firing"])),
    ]
    if row["study_id"] == review.TOTAL_ID:
        pairs = [p for p in pairs if p[0] not in ("Phase", "Target reached (forecast)", "Chance on time")]
    return pairs


def digest_content(con: duckdb.DuckDBPyConnection, as_of: date | None = None,
                   f: Filters = Filters()) -> dict:
    """What the digest says: ``as_of``, the weeks, the review table's rows, and per study
    its three biggest changes in sentences."""
    as_of = as_of or review.review_day(con)
    table = review.review_table(con, f, as_of=as_of)
    changes = {sid: [review.describe_change(r) for r in
                     review.biggest_changes(con, sid, as_of).to_dict("records")]
               for sid in table["study_id"] if sid != review.TOTAL_ID}
    return {"as_of": as_of, "weeks": review.weeks(as_of) if as_of else None,
            "rows": table.astype(object).where(pd.notna(table), None).to_dict("records"),
            "changes": changes}


def build_digest(con: duckdb.DuckDBPyConnection, as_of: date | None = None, f: Filters = Filters(),
                 base_url: str = "") -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the weekly digest as of ``as_of`` (default: the
    latest day with data)."""
    content = digest_content(con, as_of, f)
    as_of = content["as_of"]
    if as_of is None:
        return "Weekly recruitment review: no data yet", "No data loaded yet.\n", "<p>No data loaded yet.</p>"
    total = next(r for r in content["rows"] if r["study_id"] == review.TOTAL_ID)
    subject = (f"Weekly review {as_of:%d %b %Y}: {total['randomized_to_date']:,} of "
               f"{total['target']:,} randomized, {total['randomized_this_week']} this week")
    link = f"{base_url.rstrip('/')}/review{f.to_query()}" if base_url else ""
    return subject, _text(content, link), _html(content, link)


def _intro(content: dict) -> str:
    this_week, before = content["weeks"]
    return (f"As of {content['as_of']:%d %b %Y}. This week: {this_week[0]:%d %b} to {this_week[1]:%d %b}; "
            f"the week before: {before[0]:%d %b} to {before[1]:%d %b}. Pace vs plan = randomized to date / "
            f"a straight line from study start to the planned end (100% = on plan). Forecasts are per study "
            f"over all channels and sites; the chance on time is that of reaching the target by the "
            f"planned end. Biggest changes: largest relative changes week over week of leads, eligible, "
            f"consented and randomized per study, channel and site, with at least {review.MIN_VOLUME} "
            f"the week before.")


def _text(content: dict, link: str) -> str:
    out = ["Weekly recruitment review", "", _intro(content), ""]
    for row in content["rows"]:
        out.append(f"{row['name']} ({row['study_id']})" if row["study_id"] != review.TOTAL_ID else row["name"])
        out += [f"  {label}: {value}" for label, value in study_lines(row)]
        for sentence in content["changes"].get(row["study_id"], []):
            out.append(f"  * {sentence}")
        out.append("")
    if link:
        out.append(f"Open the review: {link}")
    return "\n".join(out) + "\n"


def _html(content: dict, link: str) -> str:
    e = html.escape
    labels = [label for label, _ in study_lines(content["rows"][0])]
    head = "".join(f"<th style='text-align:right;padding:4px 8px'>{e(x)}</th>" for x in labels)
    body = []
    for row in content["rows"]:
        values = dict(study_lines(row))
        bold = "font-weight:bold;background:#eef1f4;" if row["study_id"] == review.TOTAL_ID else ""
        cells = "".join(f"<td style='text-align:right;padding:4px 8px'>{e(values.get(x, ''))}</td>"
                        for x in labels)
        body.append(f"<tr style='{bold}'><td style='padding:4px 8px'>{e(row['name'])}</td>{cells}</tr>")
    changes = "".join(
        f"<h3 style='font-size:15px'>{e(sid)}: biggest changes of the week</h3><ul>"
        + ("".join(f"<li>{e(s)}</li>" for s in sentences) or "<li>No change on a row with enough volume.</li>")
        + "</ul>" for sid, sentences in content["changes"].items())
    open_link = f"<p><a href='{e(link)}'>Open the review in the cockpit</a></p>" if link else ""
    return (f"<html><body style='font-family:Arial,sans-serif;font-size:14px'>"
            f"<h2>Weekly recruitment review</h2><p>{e(_intro(content))}</p>"
            f"<table style='border-collapse:collapse;border:1px solid #ccc'>"
            f"<tr><th style='text-align:left;padding:4px 8px'>Study</th>{head}</tr>{''.join(body)}</table>"
            f"{changes}{open_link}</body></html>")


def _recipients(recipients) -> list[str]:
    found = [r.strip() for r in (recipients.split(",") if isinstance(recipients, str) else recipients)
             if r and r.strip()]
    bad = [r for r in found if "@" not in r or _ADDRESS_CHARS & set(r)]
    if not found or bad:
        raise SmtpConfigError(f"digest recipients: not valid e-mail addresses: {bad or 'none given'}")
    return sorted(set(found))


def digest_message_id(as_of: date, recipients: list[str], domain: str) -> str:
    """One Message-ID per as-of day and recipient list: the same digest is never queued twice."""
    digest = hashlib.sha256(",".join(recipients).encode()).hexdigest()[:12]
    return f"<digest.{as_of:%Y%m%d}.{digest}@{domain}>"


def queue_digest(store, recipients, as_of: date | None = None, now: datetime | None = None,
                 domain: str = "localhost", base_url: str = "", f: Filters = Filters()) -> str | None:
    """Queue the digest in the alerts' outbox (sent by the next ``flush_outbox``); returns
    its Message-ID, or None when there is no data. Queuing the same digest again does
    nothing."""
    addresses = _recipients(recipients)
    con = store.reader()
    as_of = as_of or review.review_day(con)
    if as_of is None:
        return None
    subject, text, body_html = build_digest(con, as_of, f, base_url)
    message_id = digest_message_id(as_of, addresses, domain)
    when = now or datetime.utcnow()

    def write(w: duckdb.DuckDBPyConnection) -> None:
        if w.execute("SELECT count(*) FROM alert_outbox WHERE message_id = ?", [message_id]).fetchone()[0]:
            return
        w.execute(
            """INSERT INTO alert_outbox (message_id, rule_id, eval_id, kind, created_at, recipients,
                   subject, body_text, body_html, status) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, 'queued')""",
            [message_id, DIGEST_RULE_ID, DIGEST_KIND, when, ", ".join(addresses), subject, text, body_html])

    store.write_sync(write)
    return message_id


__all__ = ["build_digest", "queue_digest", "digest_content", "digest_message_id"]
