"""Who may see what: roles, the signed-in user (``Principal``), and the checks the
server applies to every page, callback and download.

Roles (default-deny: a manager or site user with no assignment sees nothing):

- ``admin``: all data, users, erasure and the compliance view;
- ``leadership``: all studies, aggregated views, no person-level rows;
- ``manager``: the assigned studies; may edit their alert rules (budget what-ifs,
  which change nothing stored, are open to every study-level role);
- ``site``: the assigned sites only, and only the pages that can be cut by site.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context

from cockpit.filters import NOTHING, UNLIMITED, Scope

ROLES = ("admin", "leadership", "manager", "site")
STAFF = ("admin", "leadership", "manager")  # may see study-level figures
EDITORS = ("admin", "manager")              # may change alert rules


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


def actor() -> str:
    """Who to name in the audit log for the current action."""
    user = current()
    return user.username if user else "system"
