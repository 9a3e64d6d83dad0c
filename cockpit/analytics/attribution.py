"""Multi-touch attribution over touchpoint paths: which channel earned the conversion.

Input is a set of distinct paths (channels in the order the person met them), each with
the number of persons whose journey ended in a conversion (``conversions``) and the number
whose journey ended without one (``nulls``).

Rule-based models (Google Ads / Google Analytics attribution model definitions; see
Google Ads Help, "About attribution models") share each conversion among the touches of
its path, so every model's credits add up to the conversions:

- ``first_touch``: all credit to the first touch.
- ``last_touch``: all credit to the last touch.
- ``linear``: equal credit to every touch.
- ``position_based``: 40% to the first and 40% to the last touch, the remaining 20% split
  equally over the touches in between; a single touch gets 100%, two touches 50% each.
- ``time_decay``: credit proportional to 2^(-age / half_life). With touch times, age is
  the time from the touch to the conversion (half-life in days, 7 by default as in
  Google Ads). Paths without times (the CSV contract) use the position from the end of
  the path as age: the last touch has age 0, the one before it age 1, and so on, with
  the half-life counted in touches (1 by default: each step back halves the credit).

Data-driven model:

- ``markov``: the first-order Markov chain removal effect (Anderl, Becker, von
  Wangenheim and Schumann 2016, "Mapping the customer journey: Lessons learned from
  graph-based online attribution modeling", Int. J. Research in Marketing 33:457-474).
  States are ``start``, one per channel, and the absorbing ``conversion`` and ``null``.
  Transition probabilities are the observed transition counts of all paths, each path
  weighted by its persons. With Q the transitions among transient states and r the
  one-step probabilities of converting, the conversion probabilities x solve
  (I - Q) x = r (absorbing chain; computed exactly with ``numpy.linalg.solve``, no
  simulation) and P(conversion) = x[start]. Removing a channel sends every transition
  into it to ``null``; its removal effect is 1 - P(conversion without it) / P(conversion),
  and its attributed conversions are total conversions x effect / sum of all effects.
  Repeated touches of one channel (self-transitions) do not change any of these
  probabilities.

Every function here is pure and deterministic.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Iterable, Sequence

import numpy as np

SEPARATOR = ">"
MODEL_NAMES = ("first_touch", "last_touch", "linear", "position_based", "time_decay", "markov")
CONTRACT_MODELS = ("first_touch", "last_touch", "linear", "position_based", "markov")
DEFAULT_HALF_LIFE_TOUCHES = 1.0
DEFAULT_HALF_LIFE_DAYS = 7.0
POSITION_FIRST, POSITION_LAST = 0.4, 0.4

# One line per model: what it assumes (shown on the Attribution page).
ASSUMPTIONS: dict[str, str] = {
    "first_touch": "First touch: the channel that first brought the person in earned the "
                   "whole conversion; what came later did not matter.",
    "last_touch": "Last touch: the channel touched just before the conversion earned it all; "
                  "earlier touches only prepared it.",
    "linear": "Linear: every touch on the path mattered equally.",
    "position_based": "Position-based (40/20/40): the first and the last touch matter most "
                      "(40% each); the touches in between share 20%.",
    "time_decay": "Time decay: touches closer to the conversion matter more; a touch one "
                  "half-life earlier counts half as much.",
    "markov": "Markov removal effect: a channel earns the conversions that would be lost "
              "if it disappeared, judged from how all paths, also those that did not "
              "convert, move between channels.",
}
LABELS = {"first_touch": "First touch", "last_touch": "Last touch", "linear": "Linear",
          "position_based": "Position-based", "time_decay": "Time decay", "markov": "Markov"}

Path = tuple[str, ...]


class AttributionInputError(ValueError):
    """Paths or counts that cannot be attributed; the message names the row."""


@dataclass(frozen=True)
class Attribution:
    """Attributed conversions per model and channel, and the Markov details.

    ``models[name][channel]`` is the number of conversions the model credits to the
    channel; each model's values add up to ``total_conversions``. ``removal_effects``
    maps each channel to its Markov removal effect (share of the conversion probability
    lost without it, 0..1); ``conversion_probability`` is P(conversion) from start.
    """

    models: dict[str, dict[str, float]]
    removal_effects: dict[str, float]
    conversion_probability: float
    total_conversions: float
    total_nulls: float
    channels: tuple[str, ...]


# ---------------------------------------------------------------- parsing


def parse_path(text: str, row: int | None = None) -> Path:
    """``"facebook > hcp_referral"`` -> ``("facebook", "hcp_referral")`` (spaces around
    the separator allowed). An empty path or an empty channel name is an error."""
    where = f"row {row}: " if row is not None else ""
    if text is None or not str(text).strip():
        raise AttributionInputError(f"{where}empty path")
    parts = tuple(p.strip() for p in str(text).split(SEPARATOR))
    if any(not p for p in parts):
        raise AttributionInputError(f"{where}empty channel name in path {text!r}")
    return parts


def _count(value: str | None, column: str, row: int) -> float:
    """A non-negative, finite count (whole or fractional, e.g. weighted conversions)."""
    text = (value or "").strip()
    if not text:
        raise AttributionInputError(f"row {row}: {column} is empty")
    try:
        number = float(text)
    except ValueError:
        raise AttributionInputError(f"row {row}: {column} is not a number: {text!r}") from None
    if not math.isfinite(number):
        raise AttributionInputError(f"row {row}: {column} is not finite: {text!r}")
    if number < 0:
        raise AttributionInputError(f"row {row}: {column} is negative: {text!r}")
    return number


def read_paths_csv(file: str | FilePath) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Read a CSV with columns ``path,conversions,nulls`` (other columns ignored).

    Rows are numbered from 1 (the first row after the header). Returns the paths and
    their conversions and nulls; the same path on several rows is summed later by
    ``aggregate``.
    """
    try:
        handle = open(file, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise AttributionInputError(f"cannot read {file}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("path", "conversions", "nulls") if c not in header]
        if missing:
            raise AttributionInputError(
                f"header: missing column(s) {', '.join(missing)} (expected path,conversions,nulls)")
        reader.fieldnames = header
        paths, conversions, nulls = [], [], []
        for row, record in enumerate(reader, start=1):
            if None in record:
                raise AttributionInputError(f"row {row}: more values than columns")
            paths.append(parse_path(record["path"], row))
            conversions.append(_count(record["conversions"], "conversions", row))
            nulls.append(_count(record["nulls"], "nulls", row))
    if not paths:
        raise AttributionInputError("no rows: the file has a header but no paths")
    return paths, np.asarray(conversions, float), np.asarray(nulls, float)


def aggregate(paths: Sequence[Sequence[str]], conversions: Iterable[float],
              nulls: Iterable[float]) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Sum the counts of identical paths (order of first appearance kept)."""
    index: dict[Path, int] = {}
    conv: list[float] = []
    null: list[float] = []
    for path, c, n in zip(paths, conversions, nulls):
        key = tuple(path)
        if key not in index:
            index[key] = len(conv)
            conv.append(0.0)
            null.append(0.0)
        conv[index[key]] += float(c)
        null[index[key]] += float(n)
    return list(index), np.asarray(conv, float), np.asarray(null, float)


def _channels(paths: Sequence[Path]) -> tuple[str, ...]:
    return tuple(sorted({c for p in paths for c in p}))


def _validate(paths: Sequence[Sequence[str]], conversions: np.ndarray, nulls: np.ndarray) -> None:
    if len(paths) != len(conversions) or len(paths) != len(nulls):
        raise AttributionInputError("paths, conversions and nulls differ in length")
    for row, path in enumerate(paths, start=1):
        if len(path) == 0:
            raise AttributionInputError(f"row {row}: empty path")
    for name, values in (("conversions", conversions), ("nulls", nulls)):
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if len(bad):
            raise AttributionInputError(f"row {bad[0] + 1}: {name} is negative or not finite")


# ---------------------------------------------------------------- rule-based models


@dataclass(frozen=True)
class _Touches:
    """Every touch of every path, flat: its path's row, its channel (index into
    ``channels``), its position in the path and the path's length."""

    channels: tuple[str, ...]
    row: np.ndarray
    channel: np.ndarray
    position: np.ndarray
    length: np.ndarray

    @classmethod
    def of(cls, paths: Sequence[Path]) -> "_Touches":
        channels = _channels(paths)
        index = {c: i for i, c in enumerate(channels)}
        lengths = np.array([len(p) for p in paths], dtype=np.int64)
        row = np.repeat(np.arange(len(paths)), lengths)
        starts = np.cumsum(lengths) - lengths
        return cls(channels, row, np.array([index[c] for p in paths for c in p], dtype=np.int64),
                   np.arange(len(row)) - starts[row], lengths[row])


def _credit(touches: _Touches, conversions: np.ndarray, weights_of) -> dict[str, float]:
    """Share each path's conversions over its touches with ``weights_of(touches)`` (a
    weight per touch, summing to 1 per path) and add them up per channel. Computed over
    all touches at once: a filter's paths number in the thousands."""
    if not len(touches.row):
        return {}
    credit = np.asarray(conversions, float)[touches.row] * weights_of(touches)
    totals = np.bincount(touches.channel, weights=credit, minlength=len(touches.channels))
    return {c: float(v) for c, v in zip(touches.channels, totals)}


def _first(t: _Touches) -> np.ndarray:
    return (t.position == 0).astype(float)


def _last(t: _Touches) -> np.ndarray:
    return (t.position == t.length - 1).astype(float)


def _linear(t: _Touches) -> np.ndarray:
    return 1.0 / t.length


def _position(first: float, last: float):
    return lambda t: _position_weights(t.position, t.length, first, last)


def first_touch(paths: Sequence[Path], conversions: np.ndarray) -> dict[str, float]:
    """All of a conversion to the first channel of its path."""
    return _credit(_Touches.of(paths), conversions, _first)


def last_touch(paths: Sequence[Path], conversions: np.ndarray) -> dict[str, float]:
    """All of a conversion to the last channel of its path."""
    return _credit(_Touches.of(paths), conversions, _last)


def linear(paths: Sequence[Path], conversions: np.ndarray) -> dict[str, float]:
    """A conversion shared equally over the touches of its path."""
    return _credit(_Touches.of(paths), conversions, _linear)


def position_weights(length: int, first: float = POSITION_FIRST, last: float = POSITION_LAST) -> list[float]:
    """40/20/40 weights of a path of ``length`` touches: one touch 100%, two touches
    50/50, otherwise ``first`` and ``last`` at the ends and the rest split in between."""
    return _position_weights(np.arange(length), np.full(length, length), first, last).tolist()


def _position_weights(position: np.ndarray, length: np.ndarray, first: float, last: float) -> np.ndarray:
    """``position_weights`` of touches at ``position`` in paths of ``length``."""
    middle = (1.0 - first - last) / np.maximum(length - 2, 1)
    w = np.where(position == 0, first, np.where(position == length - 1, last, middle))
    return np.where(length == 1, 1.0, np.where(length == 2, 0.5, w))


def position_based(paths: Sequence[Path], conversions: np.ndarray,
                   first: float = POSITION_FIRST, last: float = POSITION_LAST) -> dict[str, float]:
    """Position-based (U-shaped) model, 40/20/40 by default."""
    return _credit(_Touches.of(paths), conversions, _position(first, last))


def time_decay(paths: Sequence[Path], conversions: np.ndarray, half_life: float | None = None,
               ages: Sequence[Sequence[float]] | None = None) -> dict[str, float]:
    """Time-decay model. ``ages[i][j]`` is the age of touch j of path i at the conversion
    (e.g. days; half-life in the same unit, default 7). Without ages the age is the
    position from the end of the path and the half-life is in touches (default 1)."""
    return _credit(_Touches.of(paths), conversions, _decay(paths, half_life, ages))


def _decay(paths: Sequence[Path], half_life: float | None, ages: Sequence[Sequence[float]] | None):
    """The time-decay weights of ``time_decay``, its arguments checked."""
    if ages is None:
        h = DEFAULT_HALF_LIFE_TOUCHES if half_life is None else float(half_life)
    else:
        h = DEFAULT_HALF_LIFE_DAYS if half_life is None else float(half_life)
        if len(ages) != len(paths) or any(len(a) != len(p) for a, p in zip(ages, paths)):
            raise AttributionInputError("every path needs one age per touch")
    if not (h > 0 and math.isfinite(h)):
        raise AttributionInputError(f"half-life must be a positive number, not {half_life!r}")

    def weights(t: _Touches) -> np.ndarray:
        age = (np.concatenate([np.asarray(a, float) for a in ages]) if ages is not None
               else (t.length - 1 - t.position).astype(float))
        raw = np.power(0.5, age / h)  # 2^(-age / half-life), normalised to 1 per path
        return raw / np.bincount(t.row, weights=raw)[t.row]

    return weights


# ---------------------------------------------------------------- Markov chain


def transition_counts(paths: Sequence[Path], conversions: np.ndarray, nulls: np.ndarray,
                      channels: Sequence[str]) -> np.ndarray:
    """Counts between states, rows = from (start, channels...), columns = to
    (start, channels..., conversion, null); each path weighted by its persons."""
    k = len(channels)
    pos = {c: i + 1 for i, c in enumerate(channels)}
    counts = np.zeros((k + 1, k + 3))
    conv_col, null_col = k + 1, k + 2
    for path, conv, null in zip(paths, conversions, nulls):
        persons = conv + null
        if persons == 0:
            continue
        states = [0] + [pos[c] for c in path]
        for a, b in zip(states[:-1], states[1:]):
            counts[a, b] += persons
        counts[states[-1], conv_col] += conv
        counts[states[-1], null_col] += null
    return counts


def _probabilities(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def conversion_probability(probs: np.ndarray, removed: int | None = None) -> float:
    """P(absorbed in conversion | start) of the chain with transition matrix ``probs``
    (rows start + channels; columns start + channels + conversion + null), optionally
    with the transient state ``removed`` turned into a dead end (null)."""
    n = probs.shape[0]
    q = probs[:, :n].copy()
    r = probs[:, n].copy()
    if removed is not None:
        # transitions into the removed channel end the journey (null); it has no way out
        q[:, removed] = 0.0
        q[removed, :] = 0.0
        r[removed] = 0.0
    x = np.linalg.solve(np.eye(n) - q, r)
    return float(x[0])


def removal_effects(paths: Sequence[Path], conversions: np.ndarray, nulls: np.ndarray,
                    channels: Sequence[str] | None = None) -> tuple[dict[str, float], float]:
    """Removal effect of every channel and P(conversion) of the full chain."""
    channels = tuple(channels) if channels is not None else _channels(paths)
    probs = _probabilities(transition_counts(paths, conversions, nulls, channels))
    base = conversion_probability(probs)
    if base <= 0:
        return {c: 0.0 for c in channels}, 0.0
    effects = {}
    for i, c in enumerate(channels, start=1):
        effects[c] = min(1.0, max(0.0, 1.0 - conversion_probability(probs, removed=i) / base))
    return effects, base


def markov(paths: Sequence[Path], conversions: np.ndarray, nulls: np.ndarray,
           effects: dict[str, float] | None = None) -> dict[str, float]:
    """Conversions credited by the removal effect: total x effect / sum(effects)."""
    if effects is None:
        effects, _ = removal_effects(paths, conversions, nulls)
    total = float(np.sum(conversions))
    norm = sum(effects.values())
    if total == 0 or norm == 0:
        return {c: 0.0 for c in effects}
    return {c: total * e / norm for c, e in effects.items()}


# ---------------------------------------------------------------- everything at once


def attribute(paths: Sequence[Sequence[str]], conversions: Iterable[float], nulls: Iterable[float],
              half_life: float | None = None, ages: Sequence[Sequence[float]] | None = None,
              models: Sequence[str] = MODEL_NAMES) -> Attribution:
    """Every model in ``models`` over the paths (identical paths are summed first unless
    ages are given, which belong to their row)."""
    conv = np.asarray(list(conversions), float)
    null = np.asarray(list(nulls), float)
    paths = [tuple(p) for p in paths]
    _validate(paths, conv, null)
    if ages is None:
        paths, conv, null = aggregate(paths, conv, null)
    channels = _channels(paths)
    effects, p_conv = removal_effects(paths, conv, null, channels)
    out: dict[str, dict[str, float]] = {}
    touches = _Touches.of(paths)  # shared by the rule-based models
    rules = {"first_touch": _first, "last_touch": _last, "linear": _linear,
             "position_based": _position(POSITION_FIRST, POSITION_LAST)}
    for name in models:
        if name in rules:
            out[name] = _credit(touches, conv, rules[name])
        elif name == "time_decay":
            out[name] = _credit(touches, conv, _decay(paths, half_life, ages))
        elif name == "markov":
            out[name] = markov(paths, conv, null, effects)
        else:
            raise ValueError(f"unknown attribution model {name!r}")
    return Attribution(out, effects, p_conv, float(conv.sum()), float(null.sum()), channels)


def report(result: Attribution) -> dict:
    """The ``cockpit attribution --json`` document: models -> channel -> conversions,
    and removal_effects -> channel -> effect."""
    return {
        "models": {name: {c: float(v) for c, v in values.items()} for name, values in result.models.items()},
        "removal_effects": {c: float(v) for c, v in result.removal_effects.items()},
    }


def report_from_csv(file: str | FilePath, half_life: float | None = None) -> dict:
    """Read a path CSV and attribute it: the five contract models, plus ``time_decay``
    (half-life in touches) when ``half_life`` is given."""
    paths, conv, null = read_paths_csv(file)
    models = CONTRACT_MODELS if half_life is None else CONTRACT_MODELS[:4] + ("time_decay", "markov")
    return report(attribute(paths, conv, null, half_life=half_life, models=models))
