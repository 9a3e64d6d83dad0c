"""User accounts on the tiny store (studies A and B; sites A1, A2 of A and B1 of B):
validation, assignments by role, the sign-in check, demo users, and the audit trail."""
from __future__ import annotations

import json

import pytest

from cockpit import audit
from cockpit.access import Principal
from cockpit.auth import users
from cockpit.auth.passwords import verify_password
from cockpit.auth.users import UserError
from cockpit.filters import UNLIMITED, Scope

PW = "a long enough password"


def audit_rows(con, action=None):
    sql = "SELECT actor, action, target, old_value, new_value FROM audit_log"
    rows = con.execute(sql + (" WHERE action = ?" if action else "") + " ORDER BY entry_id",
                       [action] if action else []).fetchall()
    return rows


def test_add_and_principal_per_role(tiny_con):
    users.add_user(tiny_con, "ada", PW, "admin")
    users.add_user(tiny_con, "lea", PW, "leadership")
    users.add_user(tiny_con, "max", PW, "manager", studies=["B", "A", "A"])
    users.add_user(tiny_con, "sam", PW, "site", sites=["A2"])
    assert users.principal(tiny_con, "ada") == Principal("ada", "admin", None, None)
    assert users.principal(tiny_con, "lea").scope == UNLIMITED
    mgr = users.principal(tiny_con, "max")
    assert mgr == Principal("max", "manager", ("A", "B"), None)
    assert mgr.scope == Scope(studies=("A", "B"))
    site = users.principal(tiny_con, "sam")
    assert site == Principal("sam", "site", None, ("A2",))
    assert site.scope == Scope(sites=("A2",))
    assert users.principal(tiny_con, "nobody") is None


def test_the_hash_is_scrypt_of_the_password_and_never_listed(tiny_con):
    users.add_user(tiny_con, "ada", PW, "admin", actor="cli:root")
    stored = tiny_con.execute("SELECT password_hash FROM app_user WHERE username = 'ada'").fetchone()[0]
    assert stored.startswith("scrypt$") and verify_password(PW, stored)
    listed = users.list_users(tiny_con)
    assert [set(r) for r in listed] == [{"username", "role", "disabled", "studies", "sites", "created_at"}]
    assert stored not in repr(listed) and PW not in repr(listed)


@pytest.mark.parametrize("kwargs, message", [
    (dict(username="Ada"), "Invalid username"),
    (dict(username="a"), "Invalid username"),
    (dict(username="ada smith"), "Invalid username"),
    (dict(username="x" * 65), "Invalid username"),
    (dict(role="owner"), "Unknown role 'owner'"),
    (dict(password="short"), "at least 12 characters"),
    (dict(username="ada.lovelace", password="ada.lovelace"), "not be the username"),
    (dict(role="manager", studies=["Z"]), "Unknown study id"),
    (dict(role="site", sites=["A1", "Q9"]), r"Unknown site id\(s\): Q9"),
    (dict(role="admin", studies=["A"]), "Only managers are assigned studies"),
    (dict(role="manager", sites=["A1"]), "Only site users are assigned sites"),
    (dict(role="site", studies=["A"]), "Only managers are assigned studies"),
])
def test_add_refuses(tiny_con, kwargs, message):
    args = dict(username="ada", password=PW, role="admin") | kwargs
    with pytest.raises(UserError, match=message):
        users.add_user(tiny_con, args.pop("username"), args.pop("password"), args.pop("role"), **args)
    assert tiny_con.execute("SELECT count(*) FROM app_user").fetchone()[0] == 0
    assert audit_rows(tiny_con) == []


def test_duplicate_username(tiny_con):
    users.add_user(tiny_con, "ada", PW, "admin")
    with pytest.raises(UserError, match="already exists"):
        users.add_user(tiny_con, "ada", PW, "leadership")
    assert users.principal(tiny_con, "ada").role == "admin"


def test_set_role_keeps_what_fits_and_drops_the_rest(tiny_con):
    users.add_user(tiny_con, "max", PW, "manager", studies=["A"])
    users.set_role(tiny_con, "max", "manager", studies=["B"])  # replaces
    assert users.principal(tiny_con, "max").studies == ("B",)
    users.set_role(tiny_con, "max", "site", sites=["B1"])      # studies no longer fit
    assert users.principal(tiny_con, "max") == Principal("max", "site", None, ("B1",))
    assert tiny_con.execute("SELECT count(*) FROM user_study").fetchone()[0] == 0
    users.set_role(tiny_con, "max", "site")                    # None keeps the sites
    assert users.principal(tiny_con, "max").sites == ("B1",)
    users.set_role(tiny_con, "max", "leadership")
    assert users.principal(tiny_con, "max") == Principal("max", "leadership", None, None)
    assert tiny_con.execute("SELECT count(*) FROM user_site").fetchone()[0] == 0
    with pytest.raises(UserError, match="Only managers"):
        users.set_role(tiny_con, "max", "leadership", studies=["A"])
    with pytest.raises(UserError, match="No user named 'zed'"):
        users.set_role(tiny_con, "zed", "admin")
    rows = audit_rows(tiny_con, "user.role")
    assert len(rows) == 4
    assert json.loads(rows[1][3]) == {"role": "manager", "studies": ["B"], "sites": []}
    assert json.loads(rows[1][4]) == {"role": "site", "studies": [], "sites": ["B1"]}


def test_assign_adds(tiny_con):
    users.add_user(tiny_con, "sam", PW, "site", sites=["A1"])
    users.assign(tiny_con, "sam", sites=["B1", "A1"], actor="ada")
    assert users.principal(tiny_con, "sam").sites == ("A1", "B1")
    with pytest.raises(UserError, match="Only managers"):
        users.assign(tiny_con, "sam", studies=["A"])
    with pytest.raises(UserError, match="at least one"):
        users.assign(tiny_con, "sam")
    with pytest.raises(UserError, match="Unknown site"):
        users.assign(tiny_con, "sam", sites=["nope"])
    (row,) = audit_rows(tiny_con, "user.assign")
    assert row[:3] == ("ada", "user.assign", "sam")
    assert json.loads(row[3]) == {"studies": [], "sites": ["A1"]}
    assert json.loads(row[4]) == {"studies": [], "sites": ["A1", "B1"]}


def test_disable_enable(tiny_con):
    users.add_user(tiny_con, "ada", PW, "admin")
    assert users.set_disabled(tiny_con, "ada", True) is True
    assert users.principal(tiny_con, "ada") is None
    assert users.authenticate(tiny_con, "ada", PW) is None
    assert users.set_disabled(tiny_con, "ada", True) is False  # already: nothing written
    assert users.list_users(tiny_con)[0]["disabled"] is True
    assert users.set_disabled(tiny_con, "ada", False) is True
    assert users.authenticate(tiny_con, "ada", PW) == Principal("ada", "admin")
    actions = [r[1] for r in audit_rows(tiny_con)]
    assert actions == ["user.add", "user.disable", "user.enable"]


def test_set_password_and_authenticate(tiny_con):
    users.add_user(tiny_con, "ada", PW, "admin")
    stamp = users.password_stamp(tiny_con, "ada")
    assert users.authenticate(tiny_con, "ada", PW) == Principal("ada", "admin")
    assert users.authenticate(tiny_con, "ada", "wrong password here") is None
    assert users.authenticate(tiny_con, "nobody", PW) is None
    assert users.authenticate(tiny_con, "BAD NAME", PW) is None
    with pytest.raises(UserError, match="at least 12"):
        users.set_password(tiny_con, "ada", "short")
    users.set_password(tiny_con, "ada", "another long password", actor="cli:ops")
    assert users.password_stamp(tiny_con, "ada") != stamp
    assert users.authenticate(tiny_con, "ada", PW) is None
    assert users.authenticate(tiny_con, "ada", "another long password") is not None
    (row,) = audit_rows(tiny_con, "user.password")
    assert row == ("cli:ops", "user.password", "ada", None, None)


def test_unknown_user_costs_a_scrypt_check(tiny_con):
    """The dummy hash is checked for unknown users: both paths take one scrypt
    computation (tens of milliseconds; a dictionary lookup alone takes microseconds), so
    timing does not reveal known names."""
    import time

    users.add_user(tiny_con, "ada", PW, "admin")
    users.authenticate(tiny_con, "ghost", PW)  # warm the dummy hash
    start = time.perf_counter()
    users.authenticate(tiny_con, "ghost", PW)
    unknown = time.perf_counter() - start
    start = time.perf_counter()
    users.authenticate(tiny_con, "ada", "wrong password here")
    known = time.perf_counter() - start
    assert unknown > 0.02 and known > 0.02


def test_list_users(tiny_con):
    users.add_user(tiny_con, "zoe", PW, "manager", studies=["A"])
    users.add_user(tiny_con, "ada", PW, "admin")
    listed = users.list_users(tiny_con)
    assert [(r["username"], r["role"], r["disabled"], r["studies"], r["sites"]) for r in listed] == [
        ("ada", "admin", False, [], []), ("zoe", "manager", False, ["A"], [])]
    assert listed[0]["created_at"].year >= 2025


def test_demo_users(tiny_con):
    made = users.create_demo_users(tiny_con)
    assert [(u, r) for u, r, _ in made] == [("admin", "admin"), ("leadership", "leadership"),
                                            ("manager", "manager"), ("site", "site")]
    for username, _, password in made:
        assert len(password) == 20
        assert users.authenticate(tiny_con, username, password) is not None
    assert users.principal(tiny_con, "manager").studies == ("A",)   # first study by id
    assert users.principal(tiny_con, "site").sites == ("A1",)       # first site of study A
    assert len({p for _, _, p in made}) == 4
    with pytest.raises(UserError, match="already exist: admin, leadership, manager, site"):
        users.create_demo_users(tiny_con)


def test_audit_entries_name_no_secret_and_chain_verifies(tiny_con):
    users.add_user(tiny_con, "max", PW, "manager", studies=["A"], actor="ada")
    users.set_password(tiny_con, "max", "second long password", actor="ada")
    users.set_role(tiny_con, "max", "site", sites=["A1"], actor="ada")
    users.assign(tiny_con, "max", sites=["A2"], actor="ada")
    users.set_disabled(tiny_con, "max", True, actor="ada")
    users.set_disabled(tiny_con, "max", False, actor="ada")
    rows = audit_rows(tiny_con)
    assert [r[1] for r in rows] == ["user.add", "user.password", "user.role", "user.assign",
                                    "user.disable", "user.enable"]
    assert all(r[0] == "ada" and r[2] == "max" for r in rows)
    assert json.loads(rows[0][4]) == {"role": "manager", "studies": ["A"], "sites": []}
    hashes = [h for (h,) in tiny_con.execute("SELECT password_hash FROM app_user").fetchall()]
    text = repr(rows)
    for secret in [PW, "second long password", "scrypt$", *hashes]:
        assert secret not in text
    verdict = audit.verify(tiny_con)
    assert verdict.ok and verdict.entries == 6


def test_a_failed_change_leaves_no_trace(tiny_con):
    users.add_user(tiny_con, "max", PW, "manager", studies=["A"])
    before = audit_rows(tiny_con)
    with pytest.raises(UserError):
        users.set_role(tiny_con, "max", "manager", studies=["A", "nope"])
    assert users.principal(tiny_con, "max").studies == ("A",)
    assert audit_rows(tiny_con) == before
