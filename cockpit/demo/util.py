"""Small vectorised helpers: seeded random streams, ids, timestamps, working days."""
from __future__ import annotations

from datetime import date

import numpy as np

DAY = 86_400
_HEX = np.frombuffer(b"0123456789abcdef", dtype="S1")
_B32 = np.frombuffer(b"abcdefghijkmnpqrstuvwxyz23456789", dtype="S1")  # no l, o, 0, 1


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent random stream for (seed, keys): the same keys, the same numbers,
    whatever else was drawn before (so studies can be generated one at a time)."""
    return np.random.default_rng([seed, *keys])


def mix64(values: np.ndarray, salt: int) -> np.ndarray:
    """A bijection of uint64 (splitmix64 finaliser): distinct inputs give distinct,
    random-looking outputs, so ids built from counters are unique and opaque."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def permute_bits(values: np.ndarray, bits: int, seed: int) -> np.ndarray:
    """A seeded bijection of `bits`-bit integers (xor-shifts and odd multiplications
    modulo 2^bits): distinct inputs below 2^bits stay distinct, yet look random."""
    if bits > 40:
        raise ValueError("permute_bits works on at most 40 bits")
    mask = np.uint64((1 << bits) - 1)
    offset = mix64(np.array([seed], dtype=np.uint64), 11)[0] & mask
    x = (values.astype(np.uint64) ^ offset) & mask
    shift = np.uint64(max(bits // 2, 1))
    with np.errstate(over="ignore"):
        for mult in (0x9E3779, 0x85EBCB, 0xC2B2AF):   # odd, < 2^24: no uint64 overflow
            x ^= x >> shift
            x = (x * np.uint64(mult)) & mask
        x ^= x >> shift
    return x


def hex_tokens(values: np.ndarray, width: int) -> np.ndarray:
    """The low `width` hex digits of each uint64, as a str array."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    digits = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(0xF)
    chars = _HEX[digits.astype(np.intp)]
    return chars.view(f"S{width}").ravel().astype(str)


def b32_tokens(values: np.ndarray, width: int) -> np.ndarray:
    """The low `width` base-32 digits of each uint64 (letters and digits), as str."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(5)
    digits = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(0x1F)
    chars = _B32[digits.astype(np.intp)]
    return chars.view(f"S{width}").ravel().astype(str)


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return int(np.datetime64(d, "D").astype(np.int64))


def iso_ts(seconds: np.ndarray) -> np.ndarray:
    """UTC ISO 8601 timestamps ('2026-03-04T09:15:00Z') from epoch seconds."""
    return np.datetime_as_string(np.asarray(seconds).astype("datetime64[s]"), unit="s", timezone="UTC")


def iso_day(days: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD' from day numbers."""
    return np.datetime_as_string(np.asarray(days).astype("datetime64[D]"), unit="D").astype(str)


def month_key(days: np.ndarray) -> np.ndarray:
    """'YYYY-MM' from day numbers (formatted once per distinct month)."""
    months = np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    uniq, inverse = np.unique(months, return_inverse=True)
    labels = np.datetime_as_string(uniq.astype("datetime64[M]"), unit="M").astype(object)
    return labels[inverse]


def year_of(seconds: np.ndarray) -> np.ndarray:
    """Calendar year of epoch seconds."""
    return seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def lognormal(rng: np.random.Generator, median: float | np.ndarray, sigma: float, n: int) -> np.ndarray:
    """Lognormal draws with the given median."""
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(n))


def add_working_days(seconds: np.ndarray, working_days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move each timestamp forward by a number of working days (rounded) and land in
    office hours (09:00-17:00, Monday-Friday): site staff work then. Zero working days
    means later on the same working day when office hours allow."""
    n = len(seconds)
    start_day = seconds // DAY
    whole = np.rint(working_days).astype(np.int64)
    landed = np.busday_offset(start_day.astype("datetime64[D]"), whole, roll="forward").astype(np.int64)
    office = landed * DAY + 9 * 3600 + (rng.random(n) * 8 * 3600).astype(np.int64)
    soon = np.maximum(seconds + 1800 + (rng.random(n) * 3 * 3600).astype(np.int64), start_day * DAY + 9 * 3600)
    same_day = landed == start_day
    fits = same_day & (soon <= start_day * DAY + 17 * 3600)
    next_day = np.busday_offset(start_day.astype("datetime64[D]"), 1, roll="forward").astype(np.int64)
    spill = next_day * DAY + 9 * 3600 + (rng.random(n) * 8 * 3600).astype(np.int64)
    return np.where(fits, soon, np.where(same_day, spill, office))


def working_days_between(start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
    """Whole working days between two timestamps (numpy busday_count of their dates)."""
    return np.busday_count((start_s // DAY).astype("datetime64[D]"), (end_s // DAY).astype("datetime64[D]"))


def first_of_month_before(end: date, months: int) -> date:
    """The 1st of the month `months` before the month of `end`."""
    total = end.year * 12 + (end.month - 1) - months
    return date(total // 12, total % 12 + 1, 1)
