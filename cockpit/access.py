"""Who may see what: roles, the signed-in user (``Principal``), and the checks the
server applies to every page, callback and download.

Roles (default-deny: a manager or site user with no assignment sees nothing):

- ``admin``: all data, users, erasure and the compliance view;
- ``leadership``: all studies, aggregated views, no person-level rows;
- ``manager``: the assigned studies; may edit alert rules and budgets;
- ``site``: the assigned sites only, and only the pages that can be cut by site.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context

from cockpit.filters import NOTHING, UNLIMITED, Scope

ROLES = ("admin", "leadership", "manager", "site")
ALL_ROLES = ROLES
STAFF = ("admin", "leadership", "manager")  # may see study-level figures
EDITORS = ("admin", "manager")              # may change alert rules and budgets


class AccessDenied(PermissionError):
    """The signed-in user may not do this; the message says what was refused."""


@dataclass(frozen=True)
class Principal:
    """A signed-in user: name, role, and the studies / sites assigned (managers and
    site users; None for roles that see every study)."""

    username: str
    role: str
    studies: tuple[str, ...] | None = None
    sites: tuple[str, ...] | None = None

    @property
    def scope(self) -> Scope:
        if self.role in ("admin", "leadership"):
            return UNLIMITED
        if self.role == "manager":
            return Scope(studies=tuple(self.studies or ()))
        if self.role == "site":
            return Scope(sites=tuple(self.sites or ()))
        return NOTHING

    def may(self, roles: tuple[str, ...]) -> bool:
        return self.role in roles


def current() -> Principal | None:
    """The user of the request being served (None outside a request or signed out)."""
    if not has_request_context():
        return None
    return g.get("principal")


def require(roles: tuple[str, ...], what: str) -> Principal:
    """The current user when their role is one of ``roles``; else ``AccessDenied``."""
    user = current()
    if user is None or user.role not in roles:
        raise AccessDenied(f"Your role may not {what}.")
    return user


def actor() -> str:
    """Who to name in the audit log for the current action."""
    user = current()
    return user.username if user else "system"
