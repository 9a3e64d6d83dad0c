"""Alert e-mails: a plain-text and an HTML body saying what happened in words a manager
reads at a glance, the value against its threshold or normal level, a small trend, the
rule, and a link that opens the cockpit on the right page with the right filters.

The trend is drawn with plain HTML table cells (bars), which every mail client shows,
and as a Unicode sparkline in the text part; no image, no script, no external request.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Sequence
from urllib.parse import urlencode

from cockpit.alerts.rules import Rule, describe, format_value
from cockpit.filters import Filters

NOTIFICATIONS = {
    "firing": ("Firing", "#b02a37", "started firing"),
    "reminder": ("Still firing", "#b02a37", "is still firing"),
    "resolved": ("Resolved", "#146c43", "has resolved"),
}
SPARK = "▁▂▃▄▅▆▇█"
BAR_MAX_PX = 48


@dataclass(frozen=True)
class Trend:
    """Values to draw: ``points`` (day, value or None), oldest first. ``flag`` tells
    which points are beyond the rule's limit (drawn red); ``watched_from`` is the first
    day the rule judges (earlier days are the baseline, drawn lighter); ``lines``:
    horizontal reference lines (value, colour, label); ``period``: the days the points
    cover (for the cockpit link; default: first to last point); ``note``: what red
    means when it is not "beyond the limit"."""

    title: str
    points: Sequence[tuple[date, float | None]]
    unit: str
    decimals: int
    flag: Sequence[bool] = ()
    watched_from: date | None = None
    lines: Sequence[tuple[float, str, str]] = ()
    period: tuple[date, date] | None = None
    note: str = "Red: beyond the alert's limit."


@dataclass(frozen=True)
class Facts:
    """What the message reports, computed by the evaluation: the ``headline`` in plain
    words, the ``rows`` of the facts table (label, value), where to look (``page``
    and ``period``), and ``subject_value``, the value in a few words for the subject."""

    headline: str
    rows: Sequence[tuple[str, str]]
    page: str
    period: tuple[date, date] | None
    subject_value: str = ""


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    recipients: tuple[str, ...]


def page_link(base_url: str, page: str, scope: Filters, period: tuple[date, date] | None) -> str:
    """The cockpit URL of ``page`` filtered to the rule's scope and the trend's period."""
    f = scope if period is None else replace(scope, start=period[0], end=period[1])
    return base_url.rstrip("/") + page + f.to_query()


def alerts_link(base_url: str, rule_id: int | None) -> str:
    query = "?" + urlencode({"rule": rule_id}) if rule_id is not None else ""
    return base_url.rstrip("/") + "/alerts" + query


def compose(rule: Rule, notification: str, facts: Facts, trend: Trend | None, *,
            firing_since: datetime | None, now: datetime, base_url: str) -> Message:
    """The e-mail for ``notification`` (firing, reminder or resolved) of ``rule``."""
    word, _, _ = NOTIFICATIONS[notification]
    # no leading bracket: Python's header folding would start such a subject on a new line
    subject = f"Alert {word.lower()}: {rule.name}"
    if facts.subject_value:
        subject += f" ({facts.subject_value})"
    link = page_link(base_url, facts.page, rule.scope, facts.period)
    manage = alerts_link(base_url, rule.rule_id)
    rows = list(facts.rows) + _timing_rows(rule, notification, firing_since, now)
    return Message(subject=subject,
                   text=_text(rule, notification, facts, rows, trend, link, manage),
                   html=_html(rule, notification, facts, rows, trend, link, manage),
                   recipients=rule.recipients)


def _timing_rows(rule: Rule, notification: str, firing_since: datetime | None,
                 now: datetime) -> list[tuple[str, str]]:
    rows = []
    if firing_since is not None:
        label = "Was firing since" if notification == "resolved" else "Firing since"
        rows.append((label, f"{firing_since:%Y-%m-%d %H:%M} UTC"))
    if notification == "resolved":
        rows.append(("Resolved at", f"{now:%Y-%m-%d %H:%M} UTC"))
    rows.append(("Alert rule", f"#{rule.rule_id}: {describe(rule)}"))
    return rows


def _page_name(page: str) -> str:
    return {"/": "Overview", "/channels": "Channels", "/sites": "Sites", "/funnel": "Funnel"}.get(page, "cockpit")


def _why_text(rule: Rule) -> str:
    return (f"You receive this because you are a recipient of the alert rule \"{rule.name}\". "
            f"A message goes out when the alert starts firing, again every "
            f"{_hours(rule.repeat_hours)} while it keeps firing (unless someone acknowledges it), "
            f"and once when it resolves. Acknowledge or silence it on the Alerts page.")


def _hours(hours: float) -> str:
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return "day" if days == 1 else f"{days} days"
    return f"{hours:g} hours" if hours != 1 else "hour"


# ---------------------------------------------------------------- plain text


def _text(rule: Rule, notification: str, facts: Facts, rows, trend: Trend | None,
          link: str, manage: str) -> str:
    word, _, verb = NOTIFICATIONS[notification]
    width = max(len(label) for label, _ in rows)
    lines = [f"{word.upper()}: {rule.name} {verb}.", "", facts.headline, ""]
    lines += [f"{label.ljust(width)}  {value}" for label, value in rows]
    if trend is not None and trend.points:
        lines += ["", f"{trend.title}:", sparkline([v for _, v in trend.points]), _trend_caption(trend)]
        lines += [f"{name.capitalize()}: {format_value(v, trend.unit, trend.decimals)}"
                  for v, _, name in trend.lines if v is not None and math.isfinite(v)]
    lines += ["", f"Open the {_page_name(facts.page)} page with these filters:", link,
              "Acknowledge, silence or edit this alert:", manage, "", _why_text(rule)]
    return "\n".join(lines) + "\n"


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per value, scaled from the lowest to the highest (a space
    for a missing value)."""
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    out = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(" ")
        else:
            out.append(SPARK[min(len(SPARK) - 1, int((v - low) / span * (len(SPARK) - 1) + 0.5))])
    return "".join(out)


def _trend_caption(trend: Trend) -> str:
    known = [(d, v) for d, v in trend.points if v is not None and not math.isnan(v)]
    if not known:
        return "no data"
    low = min(known, key=lambda p: p[1])
    high = max(known, key=lambda p: p[1])
    last = known[-1]
    fmt = lambda v: format_value(v, trend.unit, trend.decimals)  # noqa: E731
    return (f"Lowest {fmt(low[1])} ({low[0]}), highest {fmt(high[1])} ({high[0]}), "
            f"latest {fmt(last[1])} ({last[0]})")


# ---------------------------------------------------------------- HTML


def _html(rule: Rule, notification: str, facts: Facts, rows, trend: Trend | None,
          link: str, manage: str) -> str:
    word, colour, verb = NOTIFICATIONS[notification]
    e = html.escape
    table = "".join(
        f'<tr><td style="padding:4px 12px 4px 0;color:#555;vertical-align:top;white-space:nowrap">'
        f'{e(label)}</td><td style="padding:4px 0;vertical-align:top">{e(value)}</td></tr>'
        for label, value in rows)
    chart = _html_trend(trend) if trend is not None and trend.points else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{e(rule.name)}</title></head>
<body style="margin:0;padding:0;background:#f5f6f8;font-family:Arial,Helvetica,sans-serif;color:#212529">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f5f6f8">
<tr><td align="center" style="padding:16px">
<table role="presentation" width="640" cellpadding="0" cellspacing="0"
       style="max-width:640px;background:#ffffff;border:1px solid #dee2e6;border-radius:6px">
<tr><td style="background:{colour};color:#ffffff;padding:14px 20px;border-radius:6px 6px 0 0">
  <div style="font-size:13px;letter-spacing:.05em;text-transform:uppercase">Recruitment cockpit · alert {e(word.lower())}</div>
  <div style="font-size:20px;font-weight:bold;margin-top:4px">{e(rule.name)} {e(verb)}</div>
</td></tr>
<tr><td style="padding:16px 20px 4px 20px;font-size:15px;line-height:1.45">{e(facts.headline)}</td></tr>
<tr><td style="padding:8px 20px"><table role="presentation" cellpadding="0" cellspacing="0"
  style="font-size:14px;line-height:1.35">{table}</table></td></tr>
{chart}
<tr><td style="padding:12px 20px">
  <a href="{e(link, quote=True)}" style="display:inline-block;background:#0d6efd;color:#ffffff;
     text-decoration:none;padding:9px 16px;border-radius:4px;font-size:14px">Open the {e(_page_name(facts.page))} page</a>
  &nbsp;<a href="{e(manage, quote=True)}" style="font-size:14px;color:#0d6efd">Acknowledge, silence or edit this alert</a>
</td></tr>
<tr><td style="padding:8px 20px 16px 20px;font-size:12px;color:#6c757d;line-height:1.4">{e(_why_text(rule))}</td></tr>
</table></td></tr></table>
</body></html>
"""


def _html_trend(trend: Trend) -> str:
    """Bars in table cells, one per point, scaled from a little below the lowest value
    (or reference line) to the highest; red beyond the rule's limit, light grey for
    baseline days; reference lines drawn as a 1-pixel band across every column."""
    values = [v for _, v in trend.points]
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return ""
    refs = [value for value, _, _ in trend.lines if value is not None and math.isfinite(value)]
    low, high = min(known + refs), max(known + refs)
    low = low - 0.15 * ((high - low) or abs(high) or 1.0)  # the lowest bar stays visible
    span = (high - low) or 1.0
    height = lambda v: max(2, round(BAR_MAX_PX * (v - low) / span))  # noqa: E731
    lines = [(height(value), colour) for value, colour, _ in trend.lines
             if value is not None and math.isfinite(value)]
    flags = list(trend.flag) or [False] * len(values)
    width = max(3, min(14, 560 // max(len(values), 1) - 2))
    cells = []
    for (day, v), flagged in zip(trend.points, flags):
        if v is None or math.isnan(v):
            bar, colour, label = 0, "#ffffff", f"{day}: no data"
        else:
            bar = height(v)
            colour = "#dc3545" if flagged else (
                "#ced4da" if trend.watched_from and day < trend.watched_from else "#6c8ebf")
            label = f"{day}: {format_value(v, trend.unit, trend.decimals)}"
        cells.append(f'<td valign="bottom" style="padding:0 1px" title="{html.escape(label, quote=True)}">'
                     f'{_column(bar, colour, lines, width)}</td>')
    fmt = lambda v: format_value(v, trend.unit, trend.decimals)  # noqa: E731
    legend = [f'<span style="color:{c}">&#9644;</span> {html.escape(name)} {html.escape(fmt(v))}'
              for v, c, name in trend.lines if v is not None and math.isfinite(v)]
    note = trend.note
    if trend.watched_from:
        note = f"Light grey: the normal period the rule compares with; blue: the days it watches. {note}"
    return (f'<tr><td style="padding:10px 20px 0 20px;font-size:14px;font-weight:bold">'
            f'{html.escape(trend.title)}</td></tr>'
            f'<tr><td style="padding:6px 20px 0 20px"><table role="presentation" cellpadding="0" '
            f'cellspacing="0"><tr>{"".join(cells)}</tr></table></td></tr>'
            f'<tr><td style="padding:4px 20px 0 20px;font-size:12px;color:#6c757d;line-height:1.4">'
            f'{" &nbsp; ".join(legend)}{"<br>" if legend else ""}'
            f'{html.escape(_trend_caption(trend))}. {html.escape(note)}</td></tr>')


def _column(bar: int, colour: str, lines: list[tuple[int, str]], width: int) -> str:
    """One column of the chart, top to bottom, as stacked 1-colour blocks: blank above
    the bar, the bar, and the reference lines painted over both."""
    pixels = ["" for _ in range(BAR_MAX_PX + 1)]  # index 0 = bottom
    for y in range(bar):
        pixels[y] = colour
    for y, line_colour in lines:
        pixels[min(y, BAR_MAX_PX)] = line_colour
    blocks: list[list] = []
    for y in range(BAR_MAX_PX, -1, -1):  # merge runs of one colour, from the top
        if blocks and blocks[-1][0] == pixels[y]:
            blocks[-1][1] += 1
        else:
            blocks.append([pixels[y], 1])
    return "".join(
        f'<div style="width:{width}px;height:{n}px;font-size:0;line-height:0;'
        f'background:{c or "transparent"}"></div>' for c, n in blocks)


def trend_period(trend: Trend | None, as_of: date, days: int = 42) -> tuple[date, date]:
    """The period the cockpit link shows: the trend's days, else the last six weeks."""
    if trend is not None and trend.period is not None:
        return trend.period
    if trend is not None and trend.points:
        return trend.points[0][0], trend.points[-1][0]
    return as_of - timedelta(days=days - 1), as_of


__all__ = ["Trend", "Facts", "Message", "compose", "page_link", "alerts_link", "sparkline",
           "trend_period"]
