"""User accounts in the store: add, change role and assignments, disable, set the
password, list, and the sign-in check.

Every function takes a DuckDB connection; the caller runs it on the store's writer
(``store.write_sync``) or on a connection of its own (the command line). Each change is
one transaction together with its audit entry (``cockpit.audit``), which names the
actor and the old and new values, never a password or its hash.

Assignments follow the role (``cockpit.access``): a manager has studies, a site user
has sites, admin and leadership have neither (they see every study). Without an
assignment a manager or site user sees nothing.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterable, Iterator

import duckdb

from cockpit import audit
from cockpit.access import ROLES, Principal
from cockpit.auth import passwords

USERNAME_RE = re.compile(r"^[a-z0-9._-]{2,64}$")
DEMO_USERNAMES = ("admin", "leadership", "manager", "site")


class UserError(ValueError):
    """A user change that cannot be made; the message says why."""


# ------------------------------------------------------------------ helpers
def _now() -> datetime:
    """Naive UTC, as the store keeps its timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The change and its audit entry commit together (``con`` must be in autocommit
    mode, as the store's writer cursor and a fresh connection are)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise UserError(
            f"Invalid username {username!r}: use 2 to 64 characters from a-z, 0-9, '.', '_' and '-'.")
    return username


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}; the roles are {', '.join(ROLES)}.")
    return role


def _check_password(password: str, username: str) -> None:
    try:
        passwords.check_policy(password, username)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _ids(values: Iterable[str] | None) -> tuple[str, ...]:
    """Distinct ids in sorted order (a lone string counts as one id)."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    return tuple(sorted({str(v) for v in values}))


def _check_exist(con: duckdb.DuckDBPyConnection, table: str, column: str,
                 ids: tuple[str, ...], what: str) -> None:
    if not ids:
        return
    known = {row[0] for row in con.execute(
        f"SELECT {column} FROM {table} WHERE {column} IN (SELECT unnest(?))", [list(ids)]).fetchall()}
    missing = [i for i in ids if i not in known]
    if missing:
        raise UserError(f"Unknown {what} id(s): {', '.join(missing)}.")


def _check_fit(role: str, studies: tuple[str, ...], sites: tuple[str, ...]) -> None:
    """Assignments must match the role: studies for a manager, sites for a site user."""
    if studies and role != "manager":
        raise UserError(f"Only managers are assigned studies; a {role} user "
                        + ("sees every study." if role in ("admin", "leadership") else "is assigned sites."))
    if sites and role != "site":
        raise UserError(f"Only site users are assigned sites; a {role} user "
                        + ("sees every site." if role in ("admin", "leadership") else "is assigned studies."))


def _row(con: duckdb.DuckDBPyConnection, username: str) -> tuple[str, bool, str] | None:
    """(role, disabled, password_hash) of a user, None when there is none."""
    return con.execute("SELECT role, disabled, password_hash FROM app_user WHERE username = ?",
                       [username]).fetchone()


def _existing(con: duckdb.DuckDBPyConnection, username: str) -> tuple[str, bool, str]:
    row = _row(con, username) if isinstance(username, str) else None
    if row is None:
        raise UserError(f"No user named {username!r}.")
    return row


def _assigned(con: duckdb.DuckDBPyConnection, username: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    studies = tuple(r[0] for r in con.execute(
        "SELECT study_id FROM user_study WHERE username = ? ORDER BY study_id", [username]).fetchall())
    sites = tuple(r[0] for r in con.execute(
        "SELECT site_id FROM user_site WHERE username = ? ORDER BY site_id", [username]).fetchall())
    return studies, sites


def _replace_assignments(con: duckdb.DuckDBPyConnection, username: str,
                         studies: tuple[str, ...], sites: tuple[str, ...]) -> None:
    con.execute("DELETE FROM user_study WHERE username = ?", [username])
    con.execute("DELETE FROM user_site WHERE username = ?", [username])
    for study in studies:
        con.execute("INSERT INTO user_study VALUES (?, ?)", [username, study])
    for site in sites:
        con.execute("INSERT INTO user_site VALUES (?, ?)", [username, site])


def _state(role: str, studies: tuple[str, ...], sites: tuple[str, ...]) -> dict:
    return {"role": role, "studies": list(studies), "sites": list(sites)}


# ------------------------------------------------------------------ changes
def add_user(con: duckdb.DuckDBPyConnection, username: str, password: str, role: str,
             studies: Iterable[str] = (), sites: Iterable[str] = (), actor: str = "system") -> None:
    """Create an enabled user with ``role`` and the given assignments (studies for a
    manager, sites for a site user). Raises UserError for a malformed or taken
    username, an unknown role, a weak password, unknown ids or assignments that do not
    fit the role. Audited as ``user.add``."""
    _check_username(username)
    _check_role(role)
    study_ids, site_ids = _ids(studies), _ids(sites)
    _check_fit(role, study_ids, site_ids)
    _check_password(password, username)
    if _row(con, username) is not None:
        raise UserError(f"A user named {username!r} already exists.")
    _check_exist(con, "study", "study_id", study_ids, "study")
    _check_exist(con, "site", "site_id", site_ids, "site")
    stored = passwords.hash_password(password)  # slow (scrypt): outside the transaction
    now = _now()
    with _transaction(con):
        con.execute("INSERT INTO app_user (username, password_hash, role, disabled, created_at, updated_at) "
                    "VALUES (?, ?, ?, FALSE, ?, ?)", [username, stored, role, now, now])
        _replace_assignments(con, username, study_ids, site_ids)
        audit.append(con, actor, "user.add", username, None, _state(role, study_ids, site_ids))


def set_role(con: duckdb.DuckDBPyConnection, username: str, role: str,
             studies: Iterable[str] | None = None, sites: Iterable[str] | None = None,
             actor: str = "system") -> None:
    """Give ``username`` a new role. ``studies`` / ``sites`` replace the assignments of
    the new role when given; when None, the assignments that fit the new role are kept.
    Assignments that do not fit the new role are removed. Audited as ``user.role``."""
    old_role, _, _ = _existing(con, username)
    _check_role(role)
    new_studies, new_sites = _ids(studies), _ids(sites)
    _check_fit(role, new_studies, new_sites)
    _check_exist(con, "study", "study_id", new_studies, "study")
    _check_exist(con, "site", "site_id", new_sites, "site")
    old_studies, old_sites = _assigned(con, username)
    if studies is None:
        new_studies = old_studies if role == "manager" else ()
    if sites is None:
        new_sites = old_sites if role == "site" else ()
    with _transaction(con):
        con.execute("UPDATE app_user SET role = ?, updated_at = ? WHERE username = ?",
                    [role, _now(), username])
        _replace_assignments(con, username, new_studies, new_sites)
        audit.append(con, actor, "user.role", username, _state(old_role, old_studies, old_sites),
                     _state(role, new_studies, new_sites))


def assign(con: duckdb.DuckDBPyConnection, username: str, studies: Iterable[str] = (),
           sites: Iterable[str] = (), actor: str = "system") -> None:
    """Add studies (manager) or sites (site user) to the user's assignments; those
    already assigned stay. To remove assignments, use ``set_role`` with the full list.
    Audited as ``user.assign``."""
    role, _, _ = _existing(con, username)
    add_studies, add_sites = _ids(studies), _ids(sites)
    if not add_studies and not add_sites:
        raise UserError("Name at least one study or site to assign.")
    _check_fit(role, add_studies, add_sites)
    _check_exist(con, "study", "study_id", add_studies, "study")
    _check_exist(con, "site", "site_id", add_sites, "site")
    old_studies, old_sites = _assigned(con, username)
    new_studies = tuple(sorted(set(old_studies) | set(add_studies)))
    new_sites = tuple(sorted(set(old_sites) | set(add_sites)))
    with _transaction(con):
        _replace_assignments(con, username, new_studies, new_sites)
        con.execute("UPDATE app_user SET updated_at = ? WHERE username = ?", [_now(), username])
        audit.append(con, actor, "user.assign", username,
                     {"studies": list(old_studies), "sites": list(old_sites)},
                     {"studies": list(new_studies), "sites": list(new_sites)})


def set_disabled(con: duckdb.DuckDBPyConnection, username: str, disabled: bool,
                 actor: str = "system") -> bool:
    """Disable (signed out on the next request, cannot sign in) or enable a user.
    Returns False, writing nothing, when the user already was in that state. Audited
    as ``user.disable`` / ``user.enable``."""
    _, was, _ = _existing(con, username)
    disabled = bool(disabled)
    if bool(was) == disabled:
        return False
    with _transaction(con):
        con.execute("UPDATE app_user SET disabled = ?, updated_at = ? WHERE username = ?",
                    [disabled, _now(), username])
        audit.append(con, actor, "user.disable" if disabled else "user.enable", username,
                     {"disabled": bool(was)}, {"disabled": disabled})
    return True


def set_password(con: duckdb.DuckDBPyConnection, username: str, password: str,
                 actor: str = "system") -> None:
    """Replace the user's password (policy checked). Sessions signed in with the old
    password end (see ``password_stamp``). Audited as ``user.password``, without values."""
    _existing(con, username)
    _check_password(password, username)
    stored = passwords.hash_password(password)
    with _transaction(con):
        con.execute("UPDATE app_user SET password_hash = ?, updated_at = ? WHERE username = ?",
                    [stored, _now(), username])
        audit.append(con, actor, "user.password", username)


# ------------------------------------------------------------------ reading
def list_users(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every user by name: username, role, disabled, studies, sites (sorted lists) and
    created_at (UTC). Never the password hash."""
    rows = con.execute("""
        SELECT u.username, u.role, u.disabled,
               coalesce((SELECT list(study_id ORDER BY study_id) FROM user_study s
                         WHERE s.username = u.username), []) AS studies,
               coalesce((SELECT list(site_id ORDER BY site_id) FROM user_site t
                         WHERE t.username = u.username), []) AS sites,
               u.created_at
        FROM app_user u ORDER BY u.username""").fetchall()
    return [{"username": r[0], "role": r[1], "disabled": bool(r[2]), "studies": list(r[3]),
             "sites": list(r[4]), "created_at": r[5]} for r in rows]


def principal(con: duckdb.DuckDBPyConnection, username: str) -> Principal | None:
    """The signed-in view of an enabled user: role, the studies of a manager, the sites
    of a site user (None for the dimension a role is not limited on). None when the user
    does not exist or is disabled."""
    row = _row(con, username) if isinstance(username, str) else None
    if row is None or row[1]:
        return None
    return _principal(username, row[0], *_assigned(con, username))


def _principal(username: str, role: str, studies: tuple[str, ...], sites: tuple[str, ...]) -> Principal:
    return Principal(username=username, role=role,
                     studies=studies if role == "manager" else None,
                     sites=sites if role == "site" else None)


def password_stamp(con: duckdb.DuckDBPyConnection, username: str) -> str | None:
    """A value that changes whenever the user's password does (the SHA-256 of the
    stored hash), so a session can be tied to the password it was opened with."""
    row = _row(con, username) if isinstance(username, str) else None
    return _stamp(row[2]) if row else None


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()


def session_user(con: duckdb.DuckDBPyConnection, username: str) -> tuple[Principal | None, str | None]:
    """What a request's session is checked against, read in one query: the user's
    Principal (as ``users.principal``: None when the user does not exist or is
    disabled) and ``users.password_stamp`` (None when the user does not exist).

    The user row and the assignments come back as rows of one UNION ALL (kind 0: the
    user's role, disabled flag and password hash; 1: an assigned study; 2: an
    assigned site), so every request still sees the current role, assignments,
    password and state, at the cost of a single statement."""
    rows = con.execute(_SESSION_USER_SQL, [username]).fetchall()
    user = next((row for row in rows if row[0] == 0), None)
    if user is None:
        return None, None
    _, role, disabled, password_hash = user
    if disabled:
        return None, _stamp(password_hash)
    studies = tuple(sorted(row[1] for row in rows if row[0] == 1))
    sites = tuple(sorted(row[1] for row in rows if row[0] == 2))
    return _principal(username, role, studies, sites), _stamp(password_hash)


_SESSION_USER_SQL = """
    SELECT 0 AS kind, role AS value, disabled, password_hash FROM app_user WHERE username = $1
    UNION ALL SELECT 1, study_id, NULL, NULL FROM user_study WHERE username = $1
    UNION ALL SELECT 2, site_id, NULL, NULL FROM user_site WHERE username = $1
"""


def authenticate(con: duckdb.DuckDBPyConnection, username: str, password: str) -> Principal | None:
    """The user's Principal when the password is right and the user is enabled, else
    None. The scrypt check runs for unknown users too (against a dummy hash), so the
    time taken does not tell which usernames exist."""
    row = _row(con, username) if isinstance(username, str) and USERNAME_RE.match(username) else None
    stored = row[2] if row else passwords.dummy_hash()
    ok = passwords.verify_password(password if isinstance(password, str) else "", stored)
    if not ok or row is None or row[1]:
        return None
    return principal(con, username)


def create_demo_users(con: duckdb.DuckDBPyConnection, actor: str = "system") -> list[tuple[str, str, str]]:
    """Create the demo's four users with generated passwords: admin, leadership, manager
    (assigned to the first study by id) and site (assigned to the first site by id of
    that study). Without studies in the store the manager and site user get no
    assignment (and see nothing). Returns (username, role, password) per user; the
    passwords are not kept anywhere else. Raises UserError when any of them exists."""
    taken = [u for u in DEMO_USERNAMES if _row(con, u) is not None]
    if taken:
        raise UserError(f"Demo user(s) already exist: {', '.join(taken)}.")
    study = con.execute("SELECT min(study_id) FROM study").fetchone()[0]
    site = con.execute("SELECT min(site_id) FROM site WHERE study_id = ?", [study]).fetchone()[0] \
        if study is not None else None
    plan = [("admin", "admin", (), ()), ("leadership", "leadership", (), ()),
            ("manager", "manager", (study,) if study else (), ()),
            ("site", "site", (), (site,) if site else ())]
    created = []
    for username, role, studies, sites in plan:
        password = passwords.generate_password()
        add_user(con, username, password, role, studies=studies, sites=sites, actor=actor)
        created.append((username, role, password))
    return created
