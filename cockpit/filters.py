"""The one filter value that travels from the filter bar to every query.

A ``Filters`` is validated once when it is made (from the URL or the filter bar).
Queries turn it into a WHERE fragment with bound parameters; the column each
dimension maps to is chosen by the query from a fixed set, never from user input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Iterable, Mapping
from urllib.parse import parse_qs, urlencode

from flask import g, has_request_context

DIMENSIONS = ("study", "phase", "site", "segment", "channel")
# Ids and codes as the setup gives them; "/" for phases such as "I/II".
_ID = re.compile(r"^[A-Za-z0-9_.:/\- ]{1,64}$")
_MAX_VALUES = 500


class FilterError(ValueError):
    """A filter value is malformed; the message names the field."""


@dataclass(frozen=True)
class Scope:
    """What the viewer may see: the studies and the sites (None: no limit on that
    dimension; empty: nothing). It is decided on the server from the signed-in user,
    never from the request, and every query built with ``Filters.where`` is confined to it."""

    studies: tuple[str, ...] | None = None
    sites: tuple[str, ...] | None = None


UNLIMITED = Scope()
NOTHING = Scope(studies=(), sites=())


def current_scope() -> Scope:
    """The scope of the request being served: the signed-in user's (set by
    ``cockpit.auth.web``), nothing for a request without one, and no limit outside a web
    request (command line, scheduler), whose callers already hold the database file."""
    if not has_request_context():
        return UNLIMITED
    return g.get("scope", NOTHING)


@dataclass(frozen=True)
class Filters:
    """Study, phase, site, segment and channel (each: empty means all) and a date range
    (inclusive; None means open)."""

    study: tuple[str, ...] = ()
    phase: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    segment: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None
    # Set at construction from the request being served, so that cached results keyed by
    # a Filters are never shared between viewers of different scopes.
    scope: Scope = field(default_factory=current_scope, repr=False)

    def __post_init__(self) -> None:
        for dim in DIMENSIONS:
            values = getattr(self, dim)
            if len(values) > _MAX_VALUES:
                raise FilterError(f"{dim}: more than {_MAX_VALUES} values")
            for value in values:
                if not isinstance(value, str) or not _ID.match(value):
                    raise FilterError(f"{dim}: not a valid id: {value!r}")
        if self.start and self.end and self.start > self.end:
            raise FilterError(f"date range: start {self.start} is after end {self.end}")

    # -- construction
    @classmethod
    def make(
        cls,
        study: Iterable[str] | str | None = None,
        phase: Iterable[str] | str | None = None,
        site: Iterable[str] | str | None = None,
        segment: Iterable[str] | str | None = None,
        channel: Iterable[str] | str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
    ) -> "Filters":
        """Build from loose values (None, a string, or a list), as the filter bar sends them."""
        return cls(
            study=_values(study),
            phase=_values(phase),
            site=_values(site),
            segment=_values(segment),
            channel=_values(channel),
            start=_date(start, "start"),
            end=_date(end, "end"),
        )

    @classmethod
    def from_query(cls, query: str | None) -> "Filters":
        """Parse a URL query string (``?study=ST-101&channel=facebook&start=2026-01-01``)."""
        parsed = parse_qs((query or "").lstrip("?"), keep_blank_values=False)
        loose: dict[str, object] = {dim: parsed.get(dim) for dim in DIMENSIONS}
        loose["start"] = (parsed.get("start") or [None])[0]
        loose["end"] = (parsed.get("end") or [None])[0]
        return cls.make(**loose)  # type: ignore[arg-type]

    def to_query(self) -> str:
        """The URL query string of this filter ('' when nothing is set)."""
        pairs: list[tuple[str, str]] = []
        for dim in DIMENSIONS:
            pairs.extend((dim, v) for v in getattr(self, dim))
        if self.start:
            pairs.append(("start", self.start.isoformat()))
        if self.end:
            pairs.append(("end", self.end.isoformat()))
        return ("?" + urlencode(pairs)) if pairs else ""

    def without(self, *names: str) -> "Filters":
        """The same filter with the named dimensions cleared."""
        cleared = {n: (None if n in ("start", "end") else ()) for n in names}
        return replace(self, **cleared)

    # -- description
    def slug(self) -> str:
        """A short, file-name-safe description, for export file names."""
        parts = []
        for dim in DIMENSIONS:
            values = getattr(self, dim)
            if values:
                parts.append(dim + "-" + "+".join(values))
        if self.start or self.end:
            parts.append(f"{self.start or 'begin'}_to_{self.end or 'today'}")
        text = "_".join(parts) or "all"
        return re.sub(r"[^A-Za-z0-9_.+\-]", "", text.replace(" ", "-").replace("/", "-"))[:150]

    def label(self) -> str:
        """A human description, for page subtitles and e-mails."""
        parts = [f"{dim}: {', '.join(getattr(self, dim))}" for dim in DIMENSIONS if getattr(self, dim)]
        if self.start or self.end:
            parts.append(f"dates: {self.start or 'beginning'} to {self.end or 'today'}")
        return "; ".join(parts) or "all data"

    # -- SQL
    def where(
        self,
        columns: Mapping[str, str],
        date_column: str | None = None,
        ignore: Iterable[str] = (),
    ) -> tuple[str, list]:
        """A SQL condition (``TRUE`` when nothing applies) and its bound parameters.

        ``columns`` maps each dimension the query can filter on to a column expression
        chosen by the query's author. ``phase`` filters through the study table unless
        the query maps it. Dimensions the query cannot filter on are left out; callers
        that must say so use ``unsupported``.
        """
        clauses: list[str] = []
        params: list = []
        skip = set(ignore)
        for dim in DIMENSIONS:
            values = getattr(self, dim)
            if not values or dim in skip:
                continue
            if dim in columns:
                marks = ", ".join("?" for _ in values)
                clauses.append(f"{columns[dim]} IN ({marks})")
                params.extend(values)
            elif dim == "phase" and "study" in columns:
                marks = ", ".join("?" for _ in values)
                clauses.append(
                    f"{columns['study']} IN (SELECT study_id FROM study WHERE phase IN ({marks}))"
                )
                params.extend(values)
        clauses.extend(self._scope_clauses(columns, params))
        if date_column and "date" not in skip and (self.start or self.end):
            # inclusive end date also for timestamp columns
            dates, date_params = self.dates(date_column)
            clauses.append(dates)
            params.extend(date_params)
        return (" AND ".join(clauses) or "TRUE"), params

    def dates(self, date_column: str) -> tuple[str, list]:
        """Only the date range, as a SQL condition: for a part of a query whose rows are
        already confined by another condition built with ``where`` (the viewer's scope
        is applied there, not here)."""
        clauses, params = [], []
        if self.start:
            clauses.append(f"{date_column} >= ?")
            params.append(self.start)
        if self.end:
            clauses.append(f"{date_column} < ? + INTERVAL 1 DAY")
            params.append(self.end)
        return (" AND ".join(clauses) or "TRUE"), params

    def _scope_clauses(self, columns: Mapping[str, str], params: list) -> list[str]:
        """The viewer's confinement: a query that cannot apply it returns nothing."""
        clauses: list[str] = []
        studies, sites = self.scope.studies, self.scope.sites
        if studies is not None:
            marks = ", ".join("?" for _ in studies)
            if not studies:
                clauses.append("FALSE")
            elif "study" in columns:
                clauses.append(f"{columns['study']} IN ({marks})")
                params.extend(studies)
            elif "site" in columns:
                clauses.append(f"{columns['site']} IN (SELECT site_id FROM site WHERE study_id IN ({marks}))")
                params.extend(studies)
            else:
                clauses.append("FALSE")
        if sites is not None:
            if sites and "site" in columns:
                clauses.append(f"{columns['site']} IN ({', '.join('?' for _ in sites)})")
                params.extend(sites)
            else:
                clauses.append("FALSE")
        return clauses

    def unsupported(self, columns: Mapping[str, str]) -> list[str]:
        """Dimensions set in this filter that a query with ``columns`` cannot apply."""
        usable = set(columns) | ({"phase"} if "study" in columns else set())
        return [dim for dim in DIMENSIONS if getattr(self, dim) and dim not in usable]


def _values(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(sorted({str(v) for v in value if v not in (None, "")}))


# The filter bar's period presets, in the order it offers them.
PERIODS = {
    "last_4_weeks": "Last 4 weeks",
    "this_quarter": "This quarter",
    "last_quarter": "Last quarter",
    "year_to_date": "Year to date",
}


def quarter_start(day: date) -> date:
    """The first day of the calendar quarter that holds ``day``."""
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def period_dates(name: str, today: date) -> tuple[date, date | None]:
    """The date range of a period preset on ``today``: its first day and its last
    (None: up to today, so that days loaded later join it). "Last 4 weeks" is the 28
    days ending today; quarters are calendar quarters."""
    if name == "last_4_weeks":
        return today - timedelta(days=27), None
    if name == "this_quarter":
        return quarter_start(today), None
    if name == "last_quarter":
        last_day = quarter_start(today) - timedelta(days=1)
        return quarter_start(last_day), last_day
    if name == "year_to_date":
        return date(today.year, 1, 1), None
    raise FilterError(f"period: unknown preset {name!r}")


def _date(value: date | str | None, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise FilterError(f"{name}: not a date (YYYY-MM-DD): {value!r}") from exc


def from_url(search: str | None) -> Filters | None:
    """The filter of a page's URL query, or None when the link holds an invalid one (the
    shell shows the reason; a page then leaves its numbers as they were)."""
    try:
        return Filters.from_query(search)
    except FilterError:
        return None

