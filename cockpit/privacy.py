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
import unicodedata
from pathlib import Path
from urllib.parse import unquote

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
    """The canonical spelling of an e-mail address, so that one address typed
    differently gives one pid; None when empty or not an address.

    Unicode compatibility forms are folded (NFKC: full-width letters, ligatures,
    non-breaking spaces), invisible format characters (zero-width space, soft hyphen)
    dropped, surrounding whitespace trimmed, a ``mailto:`` prefix (and its ``?subject=``
    part) and angle brackets removed (``Anna <a@b.de>`` gives ``a@b.de``), the whole
    lower-cased, a trailing dot of the domain dropped and an internationalised domain
    written in its ASCII (``xn--``) form. Dots and ``+tags`` of the local part are
    kept: at most providers they name different mailboxes.
    """
    if not email:
        return None
    value = unicodedata.normalize("NFKC", email)
    value = "".join(ch for ch in value if unicodedata.category(ch) != "Cf").strip()
    if "<" in value and ">" in value:  # "Name <address>": the address is in the brackets
        value = value[value.rindex("<") + 1:value.rindex(">")].strip()
    if value[:7].lower() == "mailto:":
        value = unquote(value[7:].split("?", 1)[0]).strip()
    value = value.lower()
    local, at, domain = value.rpartition("@")
    domain = domain.rstrip(".")
    if not at or "." not in domain:  # the rule ids were always made by: kept, so no pid moves
        return None
    return f"{local}@{_ascii_domain(domain)}"


def _ascii_domain(domain: str) -> str:
    """The domain in its ASCII form (``müller.de`` -> ``xn--mller-kva.de``); the domain
    as given when it is ASCII already or cannot be encoded."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain


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


def subject_hash(pid: str) -> str:
    """The name of a data subject in the erasure ledger, subject requests and the audit
    log: SHA-256 of the pid. It lets a later load recognise an erased person without the
    pid itself staying anywhere in the database file."""
    return hashlib.sha256(f"subject:{pid}".encode("utf-8")).hexdigest()


def visitor_hash(visitor_id: str) -> str:
    """The name of an erased person's web visitor id in ``erased_visitor``."""
    return hashlib.sha256(f"visitor:{visitor_id}".encode("utf-8")).hexdigest()


def visitor_hash_sql(visitor_sql: str) -> str:
    """SQL computing ``visitor_hash`` of the expression ``visitor_sql``."""
    return f"sha256('visitor:' || {visitor_sql})"


def subject_hash_sql(pid_sql: str) -> str:
    """SQL computing ``subject_hash`` of the pid expression ``pid_sql`` (DuckDB's
    ``sha256`` gives the same lower-case hex), so a load can test its rows against
    the erasure ledger without the pids leaving the database."""
    return f"sha256('subject:' || {pid_sql})"


# ---------------------------------------------------------------- the same ids in SQL
# Loads pseudonymize whole files at once: ``person_ids_sql`` computes in DuckDB exactly
# what ``person_id`` and ``hcp_id`` compute in Python, for the contacts whose
# normalisation SQL reproduces bit for bit: printable ASCII without surrounding space
# (Python's NFKC, format-character removal and strip() leave those as they are, and
# DuckDB's lower()/upper() treat them as Python does), e-mails without angle brackets or
# ``mailto:``, phones of digits, '+' and separators. It flags the other rows (Unicode to
# fold, IDN domains, ...), whose ids are left to Python. The key enters the SQL only as
# the two padded keys of HMAC, the statement's parameters ``$hmac_ipad`` and
# ``$hmac_opad`` (never as SQL text).

_SHA256_BLOCK = 64
_PLAIN_EMAIL = r"'[!-;=?-~]([ -;=?-~]*[!-;=?-~])?'"  # printable ASCII but '<' and '>', no end spaces
_PLAIN_TEXT = r"'[!-~]([ -~]*[!-~])?'"  # printable ASCII without surrounding space
_PLAIN_PHONE = r"'[0-9+ ()./-]*'"  # digits, '+' and the separators normalize_phone drops
# An address: an '@', and after the last one a domain with a dot before its trailing dots.
_ADDRESS = r"'.*@[^@]*\.[^@]*[^.@][^@]*'"
# Local part up to the last '@', then the domain without its trailing dots.
_SPLIT = r"'^(.*)@([^@]*?)\.*$'"


def hmac_parameters(key: bytes) -> dict[str, bytes]:
    """The named parameters of the SQL built here: the key padded to SHA-256's block
    and XORed with the inner and outer pads of HMAC (RFC 2104)."""
    block = hashlib.sha256(key).digest() if len(key) > _SHA256_BLOCK else key
    block = block.ljust(_SHA256_BLOCK, b"\0")
    return {"hmac_ipad": bytes(b ^ 0x36 for b in block),
            "hmac_opad": bytes(b ^ 0x5C for b in block)}


def pseudonym_sql(value_sql: str, namespace: str = "person") -> str:
    """SQL computing ``pseudonym(key, value, namespace)`` of the VARCHAR expression
    ``value_sql``: HMAC-SHA256 = SHA-256(opad || SHA-256(ipad || message)) over the
    UTF-8 bytes of ``namespace:value``, truncated to the same 128 bits (32 hex digits).
    Needs the parameters of ``hmac_parameters``; NULL when the value is NULL."""
    message = f"encode('{namespace}:' || ({value_sql}))"
    return f"left(sha256($hmac_opad || unhex(sha256($hmac_ipad || {message}))), {PID_HEX_CHARS})"


def person_ids_sql(source: str, rowid: str, email: str, phone: str, hcp: str | None = None,
                   calling_code: str | None = None) -> str:
    """A SELECT over ``source`` (a table expression) giving, per row, ``_rid`` (the
    expression ``rowid``), ``pid`` (``person_id`` of the columns ``email`` and
    ``phone``), ``hcp_pid`` (``hcp_id`` of ``hcp``, NULL when empty or not given) and
    ``_python``: true when the row's ids must come from ``person_id``/``hcp_id``
    instead (its contacts need more than SQL reproduces). Needs ``hmac_parameters``.

    The default calling code of national phone numbers is read now, as
    ``normalize_phone`` reads it. One subquery per step keeps each expression computed
    once (and the statement quick to plan)."""
    code = calling_code or os.environ.get("COCKPIT_DEFAULT_CALLING_CODE", _DEFAULT_CALLING_CODE)
    code_sql = "'" + code.replace("'", "''") + "'"
    h = hcp or "NULL::VARCHAR"
    # normalize_email: lower-case; an address only with '@' and a dotted domain.
    # normalize_phone: separators dropped; '00' -> '+', '0' -> '+<code>', else '+' in front.
    steps = (
        f"SELECT {rowid} AS _rid, {email} AS _e, lower({email}) AS _el, {phone} AS _p, "
        f"regexp_replace({phone}, '[ ()./-]', '', 'g') AS _pd, {h} AS _h FROM {source}")
    steps = (
        f"SELECT *, CASE WHEN regexp_full_match(_el, {_ADDRESS}) "
        f"THEN regexp_replace(_el, {_SPLIT}, '\\1@\\2') END AS _email, "
        f"CASE WHEN starts_with(_pd, '0') AND NOT starts_with(_pd, '00') THEN '+' || {code_sql} || _pd[2:] "
        f"ELSE '+' || regexp_replace(_pd, '^(00|\\+)', '') END AS _e164 FROM ({steps})")
    steps = (
        f"SELECT *, CASE WHEN regexp_full_match(_e164, '\\+[0-9]{{7,15}}') THEN _e164 END AS _phone, "
        f"coalesce(_e <> '' AND NOT (regexp_full_match(_e, {_PLAIN_EMAIL}) "
        f"AND _e NOT ILIKE 'mailto:%'), false) AS _e_python, "
        f"coalesce(_p <> '' AND NOT regexp_full_match(_p, {_PLAIN_PHONE}), false) AS _p_python, "
        f"coalesce(_h <> '' AND NOT regexp_full_match(_h, {_PLAIN_TEXT}), false) AS _h_python "
        f"FROM ({steps})")
    by_email = pseudonym_sql("'email:' || _email")
    by_phone = pseudonym_sql("'phone:' || _phone")
    return (
        f"SELECT _rid, CASE WHEN _email IS NOT NULL THEN {by_email} "
        f"WHEN _phone IS NOT NULL THEN {by_phone} END AS pid, "
        f"CASE WHEN _h <> '' THEN {pseudonym_sql('upper(_h)', 'hcp')} END AS hcp_pid, "
        f"_h_python OR CASE WHEN _e_python THEN true WHEN _email IS NOT NULL THEN false "
        f"ELSE _p_python END AS _python FROM ({steps})")


def existing_key(db_path: str | os.PathLike) -> bytes:
    """The secret key as ``load_key`` finds it, but never a new one: a request about
    a person (erasure, access) under a freshly made key would match nobody.
    Raises KeyFileError saying where the key was looked for."""
    if os.environ.get("COCKPIT_SECRET_KEY"):
        return load_key(db_path)
    path = key_file_for(db_path)
    if not path.exists():
        raise KeyFileError(
            f"No pseudonymization key: $COCKPIT_SECRET_KEY is not set and the key file {path} "
            f"does not exist. Use the key the store was loaded with (set $COCKPIT_SECRET_KEY "
            f"or $COCKPIT_KEY_FILE), or give the person's --pid.")
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"Cannot read the key file {path}: {exc}") from exc
