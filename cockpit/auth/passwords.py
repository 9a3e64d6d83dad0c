"""Password hashing with scrypt (RFC 7914) from the standard library, the password
policy, and generated passwords.

A stored hash reads ``scrypt$n$r$p$salt_b64$hash_b64``: the cost parameters travel with
the hash, so they can be raised later without invalidating stored passwords.
n=2**15, r=8, p=1 needs 128 * r * n = 32 MiB of memory per check, which makes guessing
on graphics cards or custom hardware expensive (the OWASP recommendation for scrypt).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

N = 2 ** 15          # CPU/memory cost
R = 8                # block size
P = 1                # parallelism
SALT_BYTES = 16
HASH_BYTES = 32
MIN_LENGTH = 12      # characters
# Stored parameters needing more memory than this are refused rather than computed (a
# tampered row must not make a sign-in allocate gigabytes).
_MAX_MEMORY = 256 * 1024 * 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _memory(n: int, r: int, p: int) -> int:
    """Bytes scrypt needs (OpenSSL's count: 128 * r * (n + 2 + p)) plus 1 MiB headroom;
    passed as ``maxmem`` because OpenSSL's default limit of 32 MB is below 128 * 8 * 2**15."""
    return 128 * r * (n + 2 + p) + 1024 * 1024


def _derive(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = _memory(n, r, p)
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=maxmem, dklen=dklen)


def hash_password(password: str) -> str:
    """The stored form of ``password``: scrypt with a fresh 16-byte random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(password, salt, N, R, P, HASH_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a ``hash_password`` result). Compares in
    constant time; a malformed or unsupported stored value never matches."""
    try:
        scheme, n_text, r_text, p_text, salt_b64, hash_b64 = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
    except (ValueError, AttributeError):
        return False
    if scheme != "scrypt" or not expected or min(n, r, p) < 1 or p > 16 \
            or _memory(n, r, p) > _MAX_MEMORY:
        return False
    try:
        actual = _derive(password, salt, n, r, p, len(expected))
    except ValueError:  # n not a power of two, and the like
        return False
    return hmac.compare_digest(actual, expected)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of a random password, checked when a sign-in names an unknown user, so that
    the answer takes as long as for a known one."""
    return hash_password(secrets.token_urlsafe(24))


def check_policy(password: str, username: str | None = None) -> None:
    """Raise ValueError saying what is wrong when ``password`` is too weak: shorter than
    12 characters, or the same as the username (ignoring case and surrounding spaces)."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise ValueError(f"The password must have at least {MIN_LENGTH} characters.")
    if username and password.strip().lower() == username.strip().lower():
        raise ValueError("The password must not be the username.")


def generate_password() -> str:
    """A random password of 20 URL-safe characters (15 bytes from ``secrets``: 120 bits)."""
    return secrets.token_urlsafe(15)
