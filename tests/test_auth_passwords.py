"""Password hashing against hashlib.scrypt called directly with the stored salt and
parameters (RFC 7914's own test vector pins the primitive), the policy and generated
passwords."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest

from cockpit.auth import passwords
from cockpit.auth.passwords import check_policy, generate_password, hash_password, verify_password

PASSWORD = "correct horse battery staple"


def test_stored_form_matches_an_independent_scrypt_call():
    stored = hash_password(PASSWORD)
    scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "32768", "8", "1")
    salt = base64.b64decode(salt_b64)
    assert len(salt) == 16
    reference = hashlib.scrypt(PASSWORD.encode("utf-8"), salt=salt, n=2 ** 15, r=8, p=1,
                               maxmem=64 * 1024 * 1024, dklen=32)
    assert base64.b64decode(hash_b64) == reference


def test_rfc7914_vector_through_verify():
    # RFC 7914 section 12, third vector: P="pleaseletmein", S="SodiumChloride",
    # N=16384, r=8, p=1, dkLen=64
    expected = bytes.fromhex(
        "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887")
    stored = "scrypt$16384$8$1${}${}".format(base64.b64encode(b"SodiumChloride").decode(),
                                              base64.b64encode(expected).decode())
    assert verify_password("pleaseletmein", stored)
    assert not verify_password("pleaseletmeIn", stored)


def test_verify_right_and_wrong():
    stored = hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)
    assert not verify_password("", stored)


def test_same_password_twice_gives_different_hashes():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]  # the salts differ
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)


@pytest.mark.parametrize("stored", [
    "", "garbage", "bcrypt$32768$8$1$AAAA$AAAA", "scrypt$32768$8$1$not base64!$AAAA",
    "scrypt$3$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",          # n not a power of two
    "scrypt$1048576$64$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",   # 8 GiB: refused, not computed
    "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$",          # no hash
])
def test_malformed_stored_values_never_match(stored):
    assert verify_password("anything at all", stored) is False


def test_unicode_passwords_round_trip():
    stored = hash_password("Grüße aus Köln 🙂 2026")
    assert verify_password("Grüße aus Köln 🙂 2026", stored)
    assert not verify_password("Grusse aus Koln 🙂 2026", stored)


def test_policy():
    check_policy("twelve chars")  # exactly 12
    with pytest.raises(ValueError, match="at least 12 characters"):
        check_policy("eleven char")
    with pytest.raises(ValueError, match="not be the username"):
        check_policy("longusername.1", "LongUserName.1")
    check_policy("longusername.1", "someone.else")


def test_generated_passwords():
    made = {generate_password() for _ in range(50)}
    assert len(made) == 50
    for pw in made:
        assert len(pw) == 20 and re.fullmatch(r"[A-Za-z0-9_-]{20}", pw)
        check_policy(pw, "admin")


def test_dummy_hash_is_a_real_hash_that_matches_nothing_guessable():
    stored = passwords.dummy_hash()
    assert stored.startswith("scrypt$32768$8$1$") and passwords.dummy_hash() is stored
    assert not verify_password("", stored) and not verify_password("password1234", stored)
