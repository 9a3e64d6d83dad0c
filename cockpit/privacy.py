"""Pseudonymous person ids: HMAC-SHA256 over a normalised contact, keyed by a secret
that never lives in the database.

The key comes from ``$COCKPIT_SECRET_KEY`` (any text, or ``hex:...``), else from a
key file (``$COCKPIT_KEY_FILE``, else ``<database>.key`` beside the store), which is
created with mode 0600 on first use. Without the key a pid cannot be linked back to a
contact; with it, the same contact always yields the same pid, so a person reaching a
study by social media, a QR code and a referral is one person.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

PID_HEX_CHARS = 32  # 128 bits: collision-free at any realistic volume, half the storage

_PHONE_JUNK = re.compile(r"[\s\-().\/]")
_DEFAULT_CALLING_CODE = "49"


class KeyFileError(RuntimeError):
    """The pseudonymization key cannot be read or created."""


def key_file_for(db_path: str | os.PathLike) -> Path:
    """Where the key file lives when no environment variable names one."""
    env = os.environ.get("COCKPIT_KEY_FILE")
    return Path(env) if env else Path(str(db_path) + ".key")


def load_key(db_path: str | os.PathLike) -> bytes:
    """The secret key: from the environment, else the key file (created 0600 if absent)."""
    env = os.environ.get("COCKPIT_SECRET_KEY")
    if env:
        return bytes.fromhex(env[4:]) if env.startswith("hex:") else env.encode("utf-8")
    path = key_file_for(db_path)
    if path.exists():
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created by a concurrent process in the meantime
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except OSError as exc:
        raise KeyFileError(f"Cannot create the key file {path}: {exc}") from exc
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex())
    return key


def normalize_email(email: str | None) -> str | None:
    """Lower-case, trimmed e-mail; None when empty or without an '@'."""
    if not email:
        return None
    value = email.strip().lower()
    return value if "@" in value and "." in value.split("@")[-1] else None


def normalize_phone(phone: str | None, calling_code: str | None = None) -> str | None:
    """E.164 form (``+4915112345678``): separators removed, ``00`` prefix read as ``+``,
    a national leading ``0`` replaced by the default calling code
    (``$COCKPIT_DEFAULT_CALLING_CODE``, default 49). None when not a plausible number."""
    if not phone:
        return None
    value = _PHONE_JUNK.sub("", phone.strip())
    if value.startswith("00"):
        value = "+" + value[2:]
    elif value.startswith("0"):
        code = calling_code or os.environ.get("COCKPIT_DEFAULT_CALLING_CODE", _DEFAULT_CALLING_CODE)
        value = "+" + code + value[1:]
    elif not value.startswith("+"):
        value = "+" + value
    digits = value[1:]
    return value if digits.isdigit() and 7 <= len(digits) <= 15 else None


def pseudonym(key: bytes, value: str, namespace: str = "person") -> str:
    """HMAC-SHA256 of ``namespace:value``, truncated to 128 bits, hex."""
    mac = hmac.new(key, f"{namespace}:{value}".encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:PID_HEX_CHARS]


def person_id(key: bytes, email: str | None = None, phone: str | None = None) -> str | None:
    """The pid of a person: from the normalised e-mail when there is one, else the phone."""
    norm = normalize_email(email)
    if norm:
        return pseudonym(key, "email:" + norm)
    norm = normalize_phone(phone)
    if norm:
        return pseudonym(key, "phone:" + norm)
    return None


def hcp_id(key: bytes, registry_number: str) -> str:
    """Pseudonymous id of a referring physician."""
    return pseudonym(key, registry_number.strip().upper(), namespace="hcp")
