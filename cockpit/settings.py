"""Settings of the serving process that pages read: the small-cell threshold of
de-identified exports (``[privacy] small_cell_threshold`` in the configuration) and the
signed-in user's choice of de-identified exports (kept in their session)."""
from __future__ import annotations

from flask import has_request_context, session

from cockpit.access import current
from cockpit.export import DEFAULT_SMALL_CELL

_threshold = DEFAULT_SMALL_CELL
SESSION_KEY = "deidentified_exports"


def set_small_cell_threshold(value: int) -> None:
    global _threshold
    if int(value) < 2:
        raise ValueError("small_cell_threshold must be at least 2")
    _threshold = int(value)


def small_cell_threshold() -> int:
    return _threshold


def deidentified_exports() -> bool:
    """Whether this user's exports are de-identified: their choice, by default on for
    leadership (who see aggregates only) and off for the study team."""
    if not has_request_context():
        return False
    if SESSION_KEY in session:
        return bool(session[SESSION_KEY])
    user = current()
    return bool(user and user.role == "leadership")


def choose_deidentified(value: bool) -> None:
    session[SESSION_KEY] = bool(value)
