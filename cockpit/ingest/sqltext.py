"""Small helpers to write SQL text safely: quoted identifiers and literals, and
message expressions that quote a value the way quarantine reasons do."""
from __future__ import annotations


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def quoted(expr: str) -> str:
    """SQL text that renders the value of ``expr`` in single quotes, as in ``'tiktok'``."""
    return f"('''' || {expr} || '''')"


def cat(*parts: str) -> str:
    """Concatenation of SQL string expressions."""
    return "(" + " || ".join(parts) + ")"


def in_list(values: tuple[str, ...] | list[str]) -> str:
    """A parenthesised list of string literals for ``IN``."""
    return "(" + ", ".join(lit(v) for v in values) + ")"
