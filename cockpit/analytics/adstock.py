"""Carry-over and saturation of spend: the building blocks of the mix model.

- Geometric adstock (Broadbent 1979, "One way TV advertisements work", J. Market
  Research Society 21:139-166), normalised so that constant spend has adstock equal to
  that spend: A_t = (1 - d) x_t + d A_{t-1}. d is the share of last week's effect that
  carries into this week (0 = none). Before the first week the adstock is assumed to
  be that of the first week's spend (steady state), so a series that starts with spend
  does not start from zero.
- Hill saturation (Hill 1910; as used for media response by Jin, Wang, Sun, Chan and
  Koehler 2017, "Bayesian methods for media mix modeling with carryover and shape
  effects", Google Inc.): h(u) = u^n / (K^n + u^n), between 0 and 1. K is the
  half-saturation point (h(K) = 1/2) and n the shape (n > 1: S-shaped, first euros
  bring little; n <= 1: concave from the start).

Derivatives are analytic, so the least-squares fit gets an exact Jacobian.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

SATURATION_LEVEL = 0.8   # "saturation point": spend at which h reaches 80% of its maximum


def adstock(x: np.ndarray, decay: float) -> np.ndarray:
    """Normalised geometric adstock of the series ``x`` (steady-state start)."""
    x = np.asarray(x, float)
    if len(x) == 0:
        return x.copy()
    # state before the first week = x[0]: A_0 = (1 - d) x_0 + d x_0 = x_0
    out, _ = lfilter([1.0 - decay], [1.0, -decay], x, zi=[decay * x[0]])
    return out


def adstock_from(x: np.ndarray, decay: float, start: float) -> np.ndarray:
    """Adstock of ``x`` continuing from the adstock ``start`` of the week before."""
    x = np.asarray(x, float)
    if len(x) == 0:
        return x.copy()
    out, _ = lfilter([1.0 - decay], [1.0, -decay], x, zi=[decay * start])
    return out


def adstock_ddecay(x: np.ndarray, a: np.ndarray, decay: float) -> np.ndarray:
    """dA/dd of ``a = adstock(x, decay)``: G_t = A_{t-1} - x_t + d G_{t-1}, G_0 = 0."""
    x = np.asarray(x, float)
    if len(x) == 0:
        return x.copy()
    prev = np.concatenate([[x[0]], a[:-1]])
    drive = prev - x
    drive[0] = 0.0
    return lfilter([1.0], [1.0, -decay], drive)


def adstock_columns(x: np.ndarray, decay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adstock of every column of ``x`` (weeks x channels) with its own decay, and its
    derivative in the decay (``adstock`` and ``adstock_ddecay`` of each column)."""
    x = np.asarray(x, float)
    a = np.empty_like(x)
    g = np.zeros_like(x)
    if len(x) == 0:
        return a, g
    # A filter per channel: the fit asks for this hundreds of times, and a loop over
    # the weeks in Python cost most of a fit's time.
    for c, d in enumerate(np.asarray(decay, float)):
        a[:, c] = adstock(x[:, c], d)
        g[:, c] = adstock_ddecay(x[:, c], a[:, c], d)
    return a, g


def hill(u: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Hill saturation u^n / (K^n + u^n) for u >= 0."""
    u = np.maximum(np.asarray(u, float), 0.0)
    un = np.power(u, shape)
    return un / (half ** shape + un)


def hill_derivatives(u: np.ndarray, half: float, shape: float) -> tuple[np.ndarray, ...]:
    """(h, dh/du, dh/dlogK, dh/dn) of the Hill curve at ``u``."""
    u = np.maximum(np.asarray(u, float), 0.0)
    h = hill(u, half, shape)
    positive = u > 0
    safe = np.where(positive, u, 1.0)
    log_ratio = np.where(positive, np.log(safe) - np.log(half), 0.0)
    one_minus = h * (1.0 - h)
    dh_du = np.where(positive, shape * one_minus / safe, 0.0)
    dh_dlogk = -shape * one_minus
    dh_dn = one_minus * log_ratio
    return h, dh_du, dh_dlogk, dh_dn


def saturation_point(half: float, shape: float, level: float = SATURATION_LEVEL) -> float:
    """The u at which h(u) = level: K (level / (1 - level))^(1/n)."""
    return float(half * (level / (1.0 - level)) ** (1.0 / shape))
