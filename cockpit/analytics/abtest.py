"""A/B test statistics for recruitment creatives (pure functions, no Dash, no SQL).

Recruitment managers compare creatives (text vs video vs infographic, simple vs
detailed eConsent invitation).  Each arm has ``users`` (people exposed) and
``conversions`` (people who took the next step).  The first arm is the control.

Methods and references
----------------------
* Rate interval: Wilson score interval (Wilson 1927).
* Difference interval: Newcombe's hybrid score interval, method 10 of
  Newcombe (1998) "Interval estimation for the difference between independent
  proportions: comparison of eleven methods", Stat Med 17:873-890; equal to
  statsmodels ``confint_proportions_2indep(compare='diff', method='newcomb')``.
* Relative-lift interval: log (Katz) interval for the risk ratio with 0.5 added
  to counts and totals, statsmodels ``compare='ratio', method='log-adjusted'``
  (Fagerland, Lydersen & Laake 2015, "Recommended confidence intervals for two
  independent binomial proportions", SMMR 24:224-254), minus 1.
* p-value: pooled two-proportion z-test, two-sided (statsmodels
  ``proportions_ztest``); Fisher's exact test for small counts (scipy).
* Multiple arms: Holm (1979) step-down adjustment; Benjamini-Hochberg (1995)
  is provided for callers that prefer false-discovery control.
* Bayesian chance to beat control: P(p_variant > p_control) under independent
  Beta(1, 1) priors, by one-dimensional numerical integration (deterministic).
* Sample size: two-proportion normal formula with pooled variance under H0 and
  unpooled variance under H1, no continuity correction (Fleiss, Levin & Paik,
  "Statistical Methods for Rates and Proportions", without the correction;
  R ``power.prop.test``).
* Always-valid inference: normal-mixture mSPRT of Johari, Pekelis & Walsh,
  "Always valid inference: continuous monitoring of A/B tests" (arXiv 2015;
  Operations Research 2022, with Koomen), with the mixing variance tuned as in
  Howard, Ramdas, McAuliffe & Sekhon (2021) "Time-uniform, nonparametric,
  nonasymptotic confidence sequences", Ann. Statist. 49(2) -- the same
  boundary as the asymptotic confidence sequence of Waudby-Smith, Arbour,
  Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and asymptotic
  confidence sequences".
* Across arms: Pearson chi-square test of independence (no continuity
  correction) and a chi-square goodness-of-fit test for sample ratio mismatch.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import integrate, special, stats

DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
# Effect size used for the sample-size estimate when the observed difference is
# exactly zero: a 10 % relative lift over the control rate.
DEFAULT_RELATIVE_MDE = 0.10
# The always-valid interval is tightest around this many users per arm when no
# planned sample size is given (see ``always_valid``).
DEFAULT_TUNING_USERS_PER_ARM = 1_000
# Sample ratio mismatch is flagged only on strong evidence: a false alarm would
# tell managers to throw away a sound test.
SRM_ALPHA = 0.001
# Classic rule for the normal approximation to a 2x2 table.
MIN_EXPECTED_COUNT = 5.0
# Tail mass ignored at each end when integrating a Beta density.
_BETA_TAIL = 1e-15

REQUIRED_COLUMNS = ("arm", "users", "conversions")
WEIGHT_COLUMN = "weight"
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")
Rows = list[tuple[int, int, list[str]]]  # (data row number, file line, cells) of a CSV


# --------------------------------------------------------------------------
# Input types and validation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One arm of a test: ``users`` exposed, ``conversions`` among them.

    ``weight`` is the planned share of users (any positive scale, e.g. 1/1/2
    or 0.25/0.25/0.5); ``None`` means equal shares are planned.
    """

    name: str
    users: int
    conversions: int
    weight: float | None = None


class AbTestInputError(ValueError):
    """Invalid A/B test input; the message names file, row (or arm) and field."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        line: int | None = None,
        arm: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.row = row
        self.line = line
        self.arm = arm
        self.field = field
        super().__init__(_locate(self.file, row, line, arm, field) + problem)


def _locate(
    file: str | None, row: int | None, line: int | None, arm: str | None, field: str | None
) -> str:
    """Prefix such as ``"arms.csv, row 2 (line 3), field 'users': "``."""
    parts = []
    if file is not None:
        parts.append(file)
    if row is not None:
        parts.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
    if arm is not None:
        parts.append(f"arm {arm!r}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ", ".join(parts) + ": " if parts else ""


def _validate_arms(arms: Sequence[Arm]) -> None:
    """Raise AbTestInputError unless ``arms`` can be analysed."""
    if len(arms) < 2:
        raise AbTestInputError(f"need at least two arms (control first), got {len(arms)}")
    seen: set[str] = set()
    for arm in arms:
        if not isinstance(arm.name, str) or not arm.name.strip():
            raise AbTestInputError("arm name is empty", arm=str(arm.name), field="arm")
        if arm.name in seen:
            raise AbTestInputError("duplicate arm name", arm=arm.name, field="arm")
        seen.add(arm.name)
        _validate_counts(arm)
    _validate_weights(arms)


def _validate_counts(arm: Arm) -> None:
    for field in ("users", "conversions"):
        value = getattr(arm, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise AbTestInputError(f"must be a whole number, got {value!r}",
                                   arm=arm.name, field=field)
        if value < 0:
            raise AbTestInputError(f"must not be negative, got {value}", arm=arm.name, field=field)
    if arm.users < 1:
        raise AbTestInputError("must be at least 1 (an arm nobody saw cannot be compared)",
                               arm=arm.name, field="users")
    if arm.conversions > arm.users:
        raise AbTestInputError(f"{arm.conversions} conversions exceed {arm.users} users",
                               arm=arm.name, field="conversions")


def _validate_weights(arms: Sequence[Arm]) -> None:
    given = [arm.weight is not None for arm in arms]
    if any(given) and not all(given):
        missing = next(arm for arm in arms if arm.weight is None)
        raise AbTestInputError("weight missing while other arms have one; give all or none",
                               arm=missing.name, field="weight")
    for arm in arms:
        if arm.weight is not None and not _is_positive_number(arm.weight):
            raise AbTestInputError(f"must be a positive number, got {arm.weight!r}",
                                   arm=arm.name, field="weight")


def _is_positive_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


# --------------------------------------------------------------------------
# CSV input
# --------------------------------------------------------------------------


def read_arms_csv(path: str | Path) -> list[Arm]:
    """Read arms from a CSV with columns ``arm,users,conversions[,weight]``.

    The first data row is the control.  Column names are case-insensitive.
    Rows are numbered from 1 for the first data row (the header is not a data
    row); blank lines are skipped.  Every problem raises AbTestInputError
    naming the file, the row and the field.
    """
    path = Path(path)
    header, rows = _read_csv_table(path)
    columns = _column_positions(header, path)
    arms = [_parse_arm_row(cells, columns, path, number, line) for number, line, cells in rows]
    _check_unique_names(arms, rows, path)
    _check_weights_all_or_none(arms, rows, path)
    if len(arms) < 2:
        raise AbTestInputError(f"need at least two arms (control first), found {len(arms)}",
                               file=path)
    return arms


def _read_csv_table(path: Path) -> tuple[list[str], Rows]:
    """Header cells and ``(data row number, file line, cells)`` for each non-blank row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            lines = [(reader.line_num, cells) for cells in reader]
    except OSError as exc:
        raise AbTestInputError(f"cannot read file ({exc.strerror or exc})", file=path) from exc
    except UnicodeDecodeError as exc:
        raise AbTestInputError("file is not UTF-8 text", file=path) from exc
    except csv.Error as exc:
        raise AbTestInputError(f"not a valid CSV file ({exc})", file=path) from exc
    non_blank = [(line, cells) for line, cells in lines if any(c.strip() for c in cells)]
    if not non_blank:
        raise AbTestInputError("file is empty (expected a header arm,users,conversions)", file=path)
    header = [cell.strip().lower() for cell in non_blank[0][1]]
    rows = [(number, line, cells) for number, (line, cells) in enumerate(non_blank[1:], start=1)]
    return header, rows


def _column_positions(header: list[str], path: Path) -> dict[str, int]:
    for name in REQUIRED_COLUMNS:
        if name not in header:
            raise AbTestInputError(
                f"missing column (header has: {', '.join(header) or 'nothing'})",
                file=path, field=name,
            )
    wanted = REQUIRED_COLUMNS + ((WEIGHT_COLUMN,) if WEIGHT_COLUMN in header else ())
    return {name: header.index(name) for name in wanted}


def _parse_arm_row(
    cells: list[str], columns: dict[str, int], path: Path, row: int, line: int
) -> Arm:
    def cell(field: str) -> str:
        position = columns[field]
        return cells[position].strip() if position < len(cells) else ""

    where = {"file": path, "row": row, "line": line}
    name = cell("arm")
    if not name:
        raise AbTestInputError("arm name is empty", field="arm", **where)
    users = _parse_count(cell("users"), "users", where)
    conversions = _parse_count(cell("conversions"), "conversions", where)
    if users < 1:
        raise AbTestInputError("must be at least 1 (an arm nobody saw cannot be compared)",
                               field="users", **where)
    if conversions > users:
        raise AbTestInputError(f"{conversions} conversions exceed {users} users",
                               field="conversions", **where)
    weight = _parse_weight(cell(WEIGHT_COLUMN), where) if WEIGHT_COLUMN in columns else None
    return Arm(name=name, users=users, conversions=conversions, weight=weight)


def _parse_count(text: str, field: str, where: dict[str, Any]) -> int:
    if not text:
        raise AbTestInputError("is empty", field=field, **where)
    if not _WHOLE_NUMBER.fullmatch(text):
        raise AbTestInputError(f"must be a whole number, got {text!r}", field=field, **where)
    value = int(text)
    if value < 0:
        raise AbTestInputError(f"must not be negative, got {value}", field=field, **where)
    return value


def _parse_weight(text: str, where: dict[str, Any]) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise AbTestInputError(f"must be a positive number, got {text!r}",
                               field=WEIGHT_COLUMN, **where)
    return value


def _check_unique_names(arms: list[Arm], rows: Rows, path: Path) -> None:
    first_row: dict[str, int] = {}
    for arm, (number, line, _) in zip(arms, rows):
        if arm.name in first_row:
            raise AbTestInputError(
                f"duplicate arm name {arm.name!r} (first used in row {first_row[arm.name]})",
                file=path, row=number, line=line, field="arm",
            )
        first_row[arm.name] = number


def _check_weights_all_or_none(arms: list[Arm], rows: Rows, path: Path) -> None:
    given = [arm.weight is not None for arm in arms]
    if any(given) and not all(given):
        number, line, _ = rows[given.index(False)]
        raise AbTestInputError(
            "weight is empty but other rows give one; give a weight on every row or on none",
            file=path, row=number, line=line, field=WEIGHT_COLUMN,
        )


# --------------------------------------------------------------------------
# Single-proportion and two-proportion building blocks
# --------------------------------------------------------------------------


def _z(alpha: float) -> float:
    """Two-sided normal critical value z_{1-alpha/2}."""
    return float(-special.ndtri(alpha / 2))


def wilson_interval(
    conversions: int, users: int, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float]:
    """Wilson score interval for a conversion rate (Wilson 1927).

    Equal to statsmodels ``proportion_confint(method='wilson')``.
    """
    z = _z(alpha)
    p = conversions / users
    denom = 1 + z * z / users
    centre = (p + z * z / (2 * users)) / denom
    half = z * math.sqrt(p * (1 - p) / users + z * z / (4 * users * users)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    c_var: int, n_var: int, c_ctl: int, n_ctl: int, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float]:
    """Interval for p_var - p_ctl: Newcombe's hybrid score method (method 10, 1998).

    Combines the two Wilson intervals by the square-and-add rule; equal to
    statsmodels ``confint_proportions_2indep(c_var, n_var, c_ctl, n_ctl,
    compare='diff', method='newcomb')``.
    """
    p_var, p_ctl = c_var / n_var, c_ctl / n_ctl
    low_var, high_var = wilson_interval(c_var, n_var, alpha)
    low_ctl, high_ctl = wilson_interval(c_ctl, n_ctl, alpha)
    diff = p_var - p_ctl
    low = diff - math.hypot(p_var - low_var, high_ctl - p_ctl)
    high = diff + math.hypot(high_var - p_var, p_ctl - low_ctl)
    return low, high


def ratio_interval(
    c_var: int, n_var: int, c_ctl: int, n_ctl: int, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float]:
    """Interval for the risk ratio p_var / p_ctl: adjusted log (Katz) method.

    0.5 is added to each count and each total so the interval exists when a
    count is zero; equal to statsmodels ``confint_proportions_2indep(
    compare='ratio', method='log-adjusted')``.
    """
    x1, m1 = c_var + 0.5, n_var + 0.5
    x2, m2 = c_ctl + 0.5, n_ctl + 0.5
    log_ratio = math.log((x1 / m1) / (x2 / m2))
    half = _z(alpha) * math.sqrt(1 / x1 - 1 / m1 + 1 / x2 - 1 / m2)
    return math.exp(log_ratio - half), math.exp(log_ratio + half)


def pooled_z_test(c_var: int, n_var: int, c_ctl: int, n_ctl: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test.

    Equal to statsmodels ``proportions_ztest([c_var, c_ctl], [n_var, n_ctl])``.
    Defined as 1.0 when both rates are 0 or both are 1 (no variance, no evidence).
    """
    pooled = (c_var + c_ctl) / (n_var + n_ctl)
    variance = pooled * (1 - pooled) * (1 / n_var + 1 / n_ctl)
    if variance <= 0:
        return 1.0
    z = (c_var / n_var - c_ctl / n_ctl) / math.sqrt(variance)
    return float(2 * special.ndtr(-abs(z)))


def _table(c_var: int, n_var: int, c_ctl: int, n_ctl: int) -> np.ndarray:
    """2x2 table: rows variant/control, columns converted/not converted."""
    return np.array([[c_var, n_var - c_var], [c_ctl, n_ctl - c_ctl]], dtype=np.int64)


def fisher_p(c_var: int, n_var: int, c_ctl: int, n_ctl: int) -> float:
    """Two-sided Fisher's exact test of the 2x2 table (scipy ``fisher_exact``)."""
    return float(stats.fisher_exact(_table(c_var, n_var, c_ctl, n_ctl)).pvalue)


def has_small_counts(c_var: int, n_var: int, c_ctl: int, n_ctl: int) -> bool:
    """True when an expected cell of the 2x2 table is below 5 (z-test unreliable)."""
    table = _table(c_var, n_var, c_ctl, n_ctl).astype(float)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    return bool((expected < MIN_EXPECTED_COUNT).any())


# --------------------------------------------------------------------------
# Bayesian chance to beat control
# --------------------------------------------------------------------------


def chance_to_beat_control(c_var: int, n_var: int, c_ctl: int, n_ctl: int) -> float:
    """P(p_var > p_ctl) with independent Beta(1, 1) priors on both rates.

    Posteriors are Beta(1 + conversions, 1 + non-conversions).  The probability
    is the integral of f_var(x) * F_ctl(x) dx (equivalently f_ctl(x) *
    (1 - F_var(x)) dx), computed with adaptive Gauss-Kronrod quadrature
    (scipy ``quad``) over the narrower posterior so the integrand is a smooth
    bump; it agrees with Evan Miller's closed-form sum ("Formulas for Bayesian
    A/B Testing") and is deterministic.
    """
    a_var, b_var = c_var + 1.0, n_var - c_var + 1.0
    a_ctl, b_ctl = c_ctl + 1.0, n_ctl - c_ctl + 1.0
    if _beta_sd(a_var, b_var) <= _beta_sd(a_ctl, b_ctl):
        # P = E[F_ctl(X_var)]: integrate over the narrower variant posterior.
        value = _integrate_beta(a_var, b_var, lambda x: special.betainc(a_ctl, b_ctl, x))
    else:
        # P = E[1 - F_var(X_ctl)]: integrate over the narrower control posterior.
        value = _integrate_beta(a_ctl, b_ctl, lambda x: special.betaincc(a_var, b_var, x))
    return min(1.0, max(0.0, value))


def _beta_sd(a: float, b: float) -> float:
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def _integrate_beta(a: float, b: float, weight: Callable[[float], float]) -> float:
    """E[weight(X)] for X ~ Beta(a, b), by quadrature over the density's bulk.

    The density is written relative to its mode and the result divided by the
    integral of that same kernel, so the huge normalising constants of Beta
    distributions with 10^8 users never enter (they would cost about eight
    digits to cancellation).
    """
    mode = (a - 1) / (a + b - 2) if a + b > 2 else 0.5
    log_kernel = _log_beta_kernel(a, b, mode)

    def kernel(x: float) -> float:
        return math.exp(log_kernel(x))

    low = float(special.betaincinv(a, b, _BETA_TAIL))
    high = float(special.betainccinv(a, b, _BETA_TAIL))
    points = [mode] if low < mode < high else None
    options = {"points": points, "epsabs": 1e-14 * (high - low), "epsrel": 1e-11, "limit": 200}
    mass, _ = integrate.quad(kernel, low, high, **options)
    weighted, _ = integrate.quad(lambda x: kernel(x) * float(weight(x)), low, high, **options)
    return weighted / mass


def _log_beta_kernel(a: float, b: float, mode: float) -> Callable[[float], float]:
    """log of the Beta(a, b) density divided by its value at ``mode``."""

    def log_kernel(x: float) -> float:
        value = 0.0
        if a != 1:  # a == 1 puts the mode at 0 and this factor is constant
            value += (a - 1) * math.log1p((x - mode) / mode)
        if b != 1:  # b == 1 puts the mode at 1
            value += (b - 1) * math.log1p((mode - x) / (1 - mode))
        return value

    return log_kernel


# --------------------------------------------------------------------------
# Power and sample size
# --------------------------------------------------------------------------


def minimum_detectable_diff(
    p_ctl: float, n_var: int, n_ctl: int, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER
) -> float | None:
    """Smallest absolute difference detectable now (normal approximation).

    MDE = (z_{1-alpha/2} + z_{power}) * sqrt(p_ctl (1 - p_ctl) (1/n_var + 1/n_ctl)),
    i.e. both arms are assumed to have the control's variance.  None when the
    control rate is 0 or 1, where this variance is zero and the formula says
    nothing useful.
    """
    variance = p_ctl * (1 - p_ctl) * (1 / n_var + 1 / n_ctl)
    if variance <= 0:
        return None
    return (_z(alpha) + float(special.ndtri(power))) * math.sqrt(variance)


def users_per_arm_for(
    p_ctl: float, p_var: float, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER
) -> float | None:
    """Users per arm to detect p_var vs p_ctl: two-sided z-test, equal arms.

    n = [z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2)]^2 / (p1 - p2)^2
    with pbar = (p1 + p2) / 2: pooled variance under H0, unpooled under H1,
    no continuity correction (Fleiss, Levin & Paik 2003; R ``power.prop.test``,
    statsmodels ``samplesize_proportions_2indep_onetail``).  Not rounded.
    None when the two rates are equal.
    """
    delta = p_var - p_ctl
    if delta == 0:
        return None
    p_bar = (p_var + p_ctl) / 2
    null_sd = math.sqrt(2 * p_bar * (1 - p_bar))
    alt_sd = math.sqrt(p_var * (1 - p_var) + p_ctl * (1 - p_ctl))
    return (_z(alpha) * null_sd + float(special.ndtri(power)) * alt_sd) ** 2 / delta**2


def _mde_rate(p_ctl: float, relative_mde: float) -> float | None:
    """Variant rate a ``relative_mde`` lift over control would give (a drop if that exceeds 1)."""
    if p_ctl == 0:
        return None
    target = p_ctl * (1 + relative_mde)
    return target if target <= 1 else p_ctl * (1 - relative_mde)


def _users_needed(p_ctl: float, p_var: float | None, alpha: float, power: float) -> int | None:
    needed = None if p_var is None else users_per_arm_for(p_ctl, p_var, alpha, power)
    return None if needed is None else int(math.ceil(needed))


# --------------------------------------------------------------------------
# Always-valid inference (mSPRT)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AlwaysValid:
    """mSPRT result for the difference p_var - p_ctl at the current look."""

    p_value: float
    low: float
    high: float
    mixing_variance: float


def mixing_constant(alpha: float = DEFAULT_ALPHA) -> float:
    """c = 2 log(1/alpha) + log(1 + 2 log(1/alpha)), about 7.94 at alpha = 0.05.

    With tau^2 = c * V*, the mixture boundary is (approximately) narrowest when
    the variance of the estimate equals V* (Howard et al. 2021, choice of the
    normal-mixture parameter rho).
    """
    two_log = 2 * math.log(1 / alpha)
    return two_log + math.log1p(two_log)


def always_valid(
    c_var: int,
    n_var: int,
    c_ctl: int,
    n_ctl: int,
    alpha: float = DEFAULT_ALPHA,
    tuning_users_per_arm: int = DEFAULT_TUNING_USERS_PER_ARM,
) -> AlwaysValid:
    """Always-valid p-value and confidence interval for p_var - p_ctl.

    Normal-mixture mSPRT (Johari, Pekelis & Walsh 2017): with theta = observed
    difference and V its variance,

        Lambda = sqrt(V / (V + tau^2)) * exp(theta^2 tau^2 / (2 V (V + tau^2)))
        p      = min(1, 1 / Lambda)
        CI     = theta +/- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))

    P(p ever drops below alpha under H0) <= alpha however often one peeks.
    V uses the plug-in rates (x + 1) / (n + 2) so it stays positive at 0 % or
    100 % conversion.  Mixing variance tau^2 = c * V*, with c from
    ``mixing_constant`` and V* the variance of the difference at
    ``tuning_users_per_arm`` users per arm (default 1,000, or the planned
    sample): the interval is narrowest near that sample size, and any fixed
    choice keeps validity.  Because tau^2 scales with the plug-in variance,
    this equals the asymptotic confidence sequence of Waudby-Smith et al.
    with rho^2 = c / tuning_users_per_arm.
    """
    diff = c_var / n_var - c_ctl / n_ctl
    unit_var_var = _plugin_unit_variance(c_var, n_var)
    unit_var_ctl = _plugin_unit_variance(c_ctl, n_ctl)
    variance = unit_var_var / n_var + unit_var_ctl / n_ctl
    # tau^2 comes from the design (alpha, tuning size) and the plug-in variance,
    # never from the observed difference, so large effects cannot tune it.
    tau2 = mixing_constant(alpha) * (unit_var_var + unit_var_ctl) / tuning_users_per_arm
    log_lr = 0.5 * math.log(variance / (variance + tau2)) + (
        diff * diff * tau2 / (2 * variance * (variance + tau2))
    )
    half = math.sqrt(
        variance * (variance + tau2) / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )
    return AlwaysValid(math.exp(-max(log_lr, 0.0)), diff - half, diff + half, tau2)


def _plugin_unit_variance(conversions: int, users: int) -> float:
    p = (conversions + 1) / (users + 2)
    return p * (1 - p)


def _always_valid_interval(av: AlwaysValid, fixed: tuple[float, float]) -> tuple[float, float]:
    """Hull of the mSPRT interval and the fixed-horizon interval, clipped to [-1, 1].

    Widening a confidence sequence keeps its coverage; the hull guarantees the
    always-valid interval never looks more certain than the fixed one in small
    samples where the normal approximation behind the mSPRT is weakest.
    """
    return max(-1.0, min(av.low, fixed[0])), min(1.0, max(av.high, fixed[1]))


# --------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------


def _as_p_array(p_values: Iterable[float]) -> np.ndarray:
    p = np.asarray(list(p_values), dtype=float)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be numbers between 0 and 1")
    return p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values (statsmodels ``multipletests('holm')``).

    Sorted ascending, p_(i) is multiplied by (m - i + 1), then a running
    maximum keeps the adjusted values monotone; capped at 1.
    """
    p = _as_p_array(p_values)
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return [float(x) for x in adjusted]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) adjusted p-values (statsmodels ``multipletests('fdr_bh')``).

    Sorted ascending, p_(i) is multiplied by m / i, then a running minimum
    from the largest down keeps them monotone; capped at 1.
    """
    p = _as_p_array(p_values)
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return [float(x) for x in adjusted]


# --------------------------------------------------------------------------
# Tests across all arms
# --------------------------------------------------------------------------


def chi2_across_arms(arms: Sequence[Arm]) -> float | None:
    """Pearson chi-square test of independence of arm and conversion (k x 2 table).

    scipy ``chi2_contingency(..., correction=False)``; None when nobody or
    everybody converted (a column of the table is all zero, so the test is
    undefined).
    """
    table = np.array([[a.conversions, a.users - a.conversions] for a in arms], dtype=np.int64)
    if (table.sum(axis=0) == 0).any():
        return None
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def planned_shares(arms: Sequence[Arm]) -> list[float]:
    """Planned share of users per arm: normalised weights, else equal shares."""
    weights = [a.weight if a.weight is not None else 1.0 for a in arms]
    total = sum(weights)
    return [w / total for w in weights]


def srm_p_value(arms: Sequence[Arm]) -> float:
    """Sample ratio mismatch: chi-square goodness of fit of users to planned shares.

    scipy ``chisquare(users, f_exp=total * share)``.
    """
    users = np.array([a.users for a in arms], dtype=float)
    expected = users.sum() * np.array(planned_shares(arms))
    return float(stats.chisquare(users, f_exp=expected).pvalue)


# --------------------------------------------------------------------------
# analyze()
# --------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Plain JSON value: numpy scalars to Python, NaN/inf to None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _pair(values: tuple[float, float] | None) -> list[float | None] | None:
    return None if values is None else [_clean(values[0]), _clean(values[1])]


def _arm_summary(arm: Arm, share: float, alpha: float, is_control: bool) -> dict[str, Any]:
    return {
        "arm": arm.name,
        "is_control": is_control,
        "users": int(arm.users),
        "conversions": int(arm.conversions),
        "rate": arm.conversions / arm.users,
        "rate_ci": _pair(wilson_interval(arm.conversions, arm.users, alpha)),
        "planned_share": share,
    }


def _compare(
    var: Arm,
    ctl: Arm,
    alpha: float,
    power: float,
    tuning_users: int,
    relative_mde: float,
) -> dict[str, Any]:
    """All per-arm statistics of ``var`` against the control ``ctl``."""
    args = (var.conversions, var.users, ctl.conversions, ctl.users)
    p_var, p_ctl = var.conversions / var.users, ctl.conversions / ctl.users
    diff = p_var - p_ctl
    diff_ci = newcombe_interval(*args, alpha=alpha)
    av = always_valid(*args, alpha=alpha, tuning_users_per_arm=tuning_users)
    mde_rate = _mde_rate(p_ctl, relative_mde)
    # Sized for the observed difference; for the planned lift when there is none.
    needed = _users_needed(p_ctl, p_var if diff != 0 else mde_rate, alpha, power)
    needed_for_mde = _users_needed(p_ctl, mde_rate, alpha, power)
    smaller_arm = min(var.users, ctl.users)
    return {
        "diff": diff,
        "diff_ci": _pair(diff_ci),
        "rel_lift": diff / p_ctl if p_ctl > 0 else None,
        "rel_lift_ci": _pair(_rel_lift_interval(var, ctl, alpha)),
        "p_value": pooled_z_test(*args),
        "p_fisher": fisher_p(*args),
        "chance_to_beat_control": chance_to_beat_control(*args),
        "small_counts": has_small_counts(*args),
        "mde_abs": minimum_detectable_diff(p_ctl, var.users, ctl.users, alpha, power),
        "users_needed_per_arm": needed,
        "users_still_needed": None if needed is None else max(0, needed - smaller_arm),
        "users_needed_for_mde": needed_for_mde,
        "always_valid_p": av.p_value,
        "always_valid_ci": _pair(_always_valid_interval(av, diff_ci)),
        "always_valid_mixing_variance": av.mixing_variance,
    }


def _rel_lift_interval(var: Arm, ctl: Arm, alpha: float) -> tuple[float, float] | None:
    """Risk-ratio interval minus 1; None when the control rate is 0 (lift undefined)
    or both arms converted everybody (the log interval collapses to a point)."""
    if ctl.conversions == 0 or (var.conversions == var.users and ctl.conversions == ctl.users):
        return None
    low, high = ratio_interval(var.conversions, var.users, ctl.conversions, ctl.users, alpha)
    return low - 1.0, high - 1.0


def _is_peeking(arms: Sequence[Arm], planned: int | None) -> bool:
    return planned is not None and min(a.users for a in arms) < planned


def _decision_p_values(comparisons: list[dict[str, Any]], peeking: bool) -> list[float]:
    """Holm-adjusted p-values the verdict uses.

    Always-valid p when peeking before the planned sample; otherwise Fisher's
    exact p when the 2x2 table has small expected counts, else the z-test p.
    """
    if peeking:
        raw = [c["always_valid_p"] for c in comparisons]
    else:
        raw = [c["p_fisher"] if c["small_counts"] else c["p_value"] for c in comparisons]
    return holm(raw)


def analyze(
    arms: list[Arm],
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    planned_users_per_arm: int | None = None,
    *,
    relative_mde: float = DEFAULT_RELATIVE_MDE,
) -> dict[str, Any]:
    """Analyse an A/B(/n) test; the first arm is the control.

    Returns a JSON-serialisable dict (plain numbers, None where undefined):

    * ``arms``: per arm ``arm, users, conversions, rate`` (conversions/users),
      ``rate_ci`` (Wilson, level 1 - alpha, 95 % by default) and
      ``planned_share``; every non-control arm also has ``diff`` (variant
      minus control rate), ``diff_ci`` (Newcombe method 10), ``rel_lift``
      (diff / control rate), ``rel_lift_ci`` (adjusted log risk-ratio interval
      minus 1), ``p_value`` (pooled z-test), ``p_fisher`` (Fisher exact),
      ``p_adjusted`` (Holm on ``p_value``), ``p_decision`` (Holm-adjusted p the
      verdict uses), ``chance_to_beat_control`` (Beta(1,1) posteriors),
      ``small_counts``, ``mde_abs``, ``users_needed_per_arm`` (for the observed
      difference, or a ``relative_mde`` lift when it is 0),
      ``users_still_needed`` (needed minus the smaller of the two arms),
      ``users_needed_for_mde`` (for a ``relative_mde`` lift), ``always_valid_p``
      and ``always_valid_ci`` (mSPRT, see ``always_valid``).
    * The verdict counts a comparison as settled when it is significant
      (Holm-adjusted ``p_decision`` <= alpha), or when the planned sample is
      reached, or -- without a plan -- when the arms are large enough to detect
      the observed difference or a ``relative_mde`` lift, whichever needs fewer.
    * ``chi2_p`` (all arms), ``srm_p`` and ``srm`` (srm_p < 0.001).
    * ``verdict`` (one sentence), ``decision`` (``srm``, ``variant_wins``,
      ``control_wins``, ``need_more_data`` or ``no_difference``), ``winner``.
    * ``notes`` (caveats) and ``method`` (names of the methods used).

    Raises AbTestInputError when the arms are not valid.
    """
    _validate_arms(arms)
    _validate_levels(alpha, power, planned_users_per_arm, relative_mde)
    control = arms[0]
    tuning_users = planned_users_per_arm or DEFAULT_TUNING_USERS_PER_ARM
    shares = planned_shares(arms)
    rows = [
        _arm_summary(arm, share, alpha, is_control=index == 0)
        for index, (arm, share) in enumerate(zip(arms, shares))
    ]
    comparisons = [
        _compare(arm, control, alpha, power, tuning_users, relative_mde) for arm in arms[1:]
    ]
    peeking = _is_peeking(arms, planned_users_per_arm)
    p_adjusted = holm([c["p_value"] for c in comparisons])
    p_decision = _decision_p_values(comparisons, peeking)
    for row, comparison, adj, dec in zip(rows[1:], comparisons, p_adjusted, p_decision):
        row.update(comparison, p_adjusted=adj, p_decision=dec)

    srm_p = srm_p_value(arms)
    chi2_p = chi2_across_arms(arms)
    verdict = _verdict(rows, srm_p, alpha, planned_users_per_arm, peeking)
    result = {
        "control": control.name,
        "alpha": alpha,
        "power": power,
        "confidence_level": 1 - alpha,
        "planned_users_per_arm": planned_users_per_arm,
        "arms": rows,
        "chi2_p": chi2_p,
        "srm_p": srm_p,
        "srm": srm_p < SRM_ALPHA,
        **verdict,
        "notes": _notes(rows, chi2_p, peeking, planned_users_per_arm),
        "method": _method_description(alpha, tuning_users, relative_mde),
    }
    return _json_ready(result)


def _validate_levels(
    alpha: float, power: float, planned: int | None, relative_mde: float
) -> None:
    if not 0 < alpha < 1:
        raise AbTestInputError(f"must be between 0 and 1, got {alpha!r}", field="alpha")
    if not 0 < power < 1:
        raise AbTestInputError(f"must be between 0 and 1, got {power!r}", field="power")
    if planned is not None and (
        isinstance(planned, bool) or not isinstance(planned, (int, np.integer)) or planned < 1
    ):
        raise AbTestInputError(f"must be a positive whole number, got {planned!r}",
                               field="planned_users_per_arm")
    if not relative_mde > 0:
        raise AbTestInputError(f"must be positive, got {relative_mde!r}", field="relative_mde")


def _json_ready(value: Any) -> Any:
    """Recursively convert to plain JSON types (no numpy, no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return _clean(value)


# --------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------


def _pct(rate: float) -> str:
    return f"{100 * rate:.3g}%"


def _pp(diff: float) -> str:
    return f"{100 * diff:+.3g} percentage points"


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _peeking_clause(rows: list[dict[str, Any]], planned: int | None, peeking: bool) -> str:
    if not peeking:
        return ""
    current = min(r["users"] for r in rows)
    return (
        f" (interim look at {current:,} of {planned:,} planned users per arm, so this is "
        "judged on the always-valid p-value, which stays valid however often you peek)"
    )


def _verdict(
    rows: list[dict[str, Any]], srm_p: float, alpha: float, planned: int | None, peeking: bool
) -> dict[str, Any]:
    """One plain-language sentence plus a machine-readable decision."""
    if srm_p < SRM_ALPHA:
        return _decided("srm", None, (
            f"Sample ratio mismatch (p = {_fmt_p(srm_p)}): the split of users is not what "
            "was planned, do not trust this test."))
    control, variants = rows[0], rows[1:]
    clause = _peeking_clause(rows, planned, peeking)
    better = [r for r in variants if r["p_decision"] <= alpha and r["diff"] > 0]
    worse = [r for r in variants if r["p_decision"] <= alpha and r["diff"] < 0]
    if better:
        best = max(better, key=lambda r: r["diff"])
        sentence = _win_sentence(best, control, alpha, peeking, clause)
        return _decided("variant_wins", best["arm"], sentence)
    if len(worse) == len(variants):
        return _decided("control_wins", control["arm"], _control_sentence(worse, control, clause))
    undecided = [r for r in variants if all(r is not w for w in worse)]
    return _undecided_verdict(undecided, rows, planned, peeking, clause)


def _decided(decision: str, winner: str | None, sentence: str) -> dict[str, Any]:
    return {"verdict": sentence, "decision": decision, "winner": winner}


def _win_sentence(
    best: dict[str, Any], control: dict[str, Any], alpha: float, peeking: bool, clause: str
) -> str:
    low, high = best["always_valid_ci"] if peeking else best["diff_ci"]
    kind = "always-valid" if peeking else f"{100 * (1 - alpha):g}%"
    return (
        f"{best['arm']} wins: {_pct(best['rate'])} vs {_pct(control['rate'])} for control "
        f"{control['arm']}, a difference of {_pp(best['diff'])} ({kind} interval "
        f"{100 * low:+.3g} to {100 * high:+.3g}, "
        f"adjusted p = {_fmt_p(best['p_decision'])}){clause}."
    )


def _control_sentence(worse: list[dict[str, Any]], control: dict[str, Any], clause: str) -> str:
    others = ", ".join(f"{r['arm']} {_pct(r['rate'])}" for r in worse)
    largest_p = max(r["p_decision"] for r in worse)
    return (
        f"Control ({control['arm']}) wins: it converts {_pct(control['rate'])}, every variant "
        f"does worse ({others}; adjusted p <= {_fmt_p(largest_p)}){clause}."
    )


def _undecided_verdict(
    undecided: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    planned: int | None,
    peeking: bool,
    clause: str,
) -> dict[str, Any]:
    current = min(r["users"] for r in rows)
    if planned is not None:
        more: int | None = max(0, planned - current)
    else:
        more = _more_users_needed(undecided, rows[0]["users"])
    if more is None:
        return _decided("need_more_data", None, (
            "No difference detectable yet: too few conversions to estimate how many more "
            "users per arm are needed."))
    if more > 0 or peeking:
        return _decided("need_more_data", None, (
            f"No difference detectable yet: need about {more:,} more users per arm{clause}."))
    best_p = min(r["p_decision"] for r in undecided)
    mdes = [r["mde_abs"] for r in undecided if r["mde_abs"] is not None]
    reach = (f"; differences above about {100 * max(mdes):.3g} percentage points would "
             "most likely have shown up") if mdes else ""
    return _decided("no_difference", None, (
        f"No meaningful difference: with {current:,} users per arm no variant differs "
        f"significantly from control (smallest adjusted p = {_fmt_p(best_p)}){reach}."))


def _more_users_needed(undecided: list[dict[str, Any]], control_users: int) -> int | None:
    """Users per arm still needed before an undecided comparison can be called.

    For each arm the sample is enough once it could detect either the observed
    difference or the relative MDE of interest, whichever needs fewer users;
    None when neither can be estimated (no conversions at all).
    """
    still = []
    for row in undecided:
        options = [n for n in (row["users_needed_per_arm"], row["users_needed_for_mde"]) if n]
        if not options:
            return None
        smaller_arm = min(row["users"], control_users)
        still.append(max(0, min(options) - smaller_arm))
    return max(still)


# --------------------------------------------------------------------------
# Notes and method description
# --------------------------------------------------------------------------


def _notes(
    rows: list[dict[str, Any]], chi2_p: float | None, peeking: bool, planned: int | None
) -> list[str]:
    control = rows[0]
    notes: list[str] = []
    if chi2_p is None:
        notes.append("Nobody converted (or everybody did) in every arm: the chi-square test "
                     "across arms is undefined.")
    if control["rate"] == 0:
        notes.append(f"Control {control['arm']} has no conversions: relative lift and the "
                     "minimum detectable difference are undefined.")
    elif control["rate"] == 1:
        notes.append("Every control user converted: the minimum detectable difference is "
                     "undefined (and so is the relative-lift interval of a variant that also "
                     "converts everybody).")
    for row in rows[1:]:
        if row["small_counts"]:
            notes.append(f"{row['arm']} vs control: an expected cell count is below 5, so the "
                         "verdict uses Fisher's exact test instead of the z-test.")
        if row["users_needed_per_arm"] is None:
            notes.append(f"{row['arm']} vs control: users needed cannot be estimated without "
                         "any conversions.")
    if peeking:
        notes.append(f"Planned sample of {planned:,} users per arm not reached: the verdict uses "
                     "always-valid p-values so daily peeking does not inflate false alarms.")
    return notes


def _method_description(alpha: float, tuning_users: int, relative_mde: float) -> dict[str, Any]:
    return {
        "rate_ci": "Wilson score interval (Wilson 1927)",
        "diff_ci": "Newcombe hybrid score interval, method 10 of Newcombe (1998)",
        "rel_lift_ci": "adjusted log (Katz) risk-ratio interval, 0.5 added to counts "
                       "(statsmodels 'log-adjusted'), minus 1",
        "p_value": "pooled two-proportion z-test, two-sided",
        "p_fisher": "Fisher's exact test, two-sided",
        "p_adjusted": "Holm (1979) step-down adjustment across variants",
        "p_decision": "Holm-adjusted: always-valid p when peeking, Fisher when expected "
                      "counts < 5, else z-test",
        "chance_to_beat_control": "P(p_variant > p_control), Beta(1,1) priors, numerical "
                                  "integration",
        "mde_abs": "(z_{1-alpha/2} + z_power) * sqrt(p_c (1 - p_c) (1/n_v + 1/n_c))",
        "users_needed_per_arm": "two-proportion z-test sample size, pooled variance under H0, "
                                "unpooled under H1, no continuity correction (Fleiss); "
                                f"relative MDE {relative_mde:g} when the observed difference is 0",
        "always_valid": "normal-mixture mSPRT (Johari, Pekelis & Walsh 2017); "
                        "tau^2 = c * V*, c = 2 log(1/alpha) + log(1 + 2 log(1/alpha)) "
                        f"= {mixing_constant(alpha):.3f}, V* = variance of the difference at "
                        f"{tuning_users:,} users per arm (Howard et al. 2021); interval is the "
                        "hull with the Newcombe interval",
        "always_valid_tuning_users_per_arm": tuning_users,
        "verdict": "Holm-adjusted p_decision at alpha; without a planned sample, enough users "
                   "means enough to detect the observed difference or the relative MDE, "
                   "whichever needs fewer",
        "chi2_p": "Pearson chi-square test of independence, no continuity correction",
        "srm_p": f"chi-square goodness of fit of users to planned shares; SRM if p < {SRM_ALPHA:g}",
    }


# --------------------------------------------------------------------------
# Cumulative lift over time
# --------------------------------------------------------------------------

CUMULATIVE_COLUMNS = [
    "day", "arm", "users", "conversions", "rate",
    "control_users", "control_conversions", "control_rate",
    "diff", "diff_ci_low", "diff_ci_high",
    "always_valid_low", "always_valid_high", "always_valid_p",
]


def cumulative_lift(
    daily: pd.DataFrame,
    control: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    planned_users_per_arm: int | None = None,
) -> pd.DataFrame:
    """Cumulative lift of each variant over the control, day by day.

    ``daily`` has columns ``day, arm, users, conversions`` (counts for that
    day; several rows for the same day and arm are added up; a missing day is
    a day with no users).  The control is ``control`` or the first arm in order
    of appearance.  Returns one row per day and non-control arm with the
    cumulative counts and rates, ``diff`` (variant minus control rate), the
    Newcombe interval (``diff_ci_low/high``) and the always-valid mSPRT
    interval and p-value at that day (``always_valid_*``; each day's values are
    valid simultaneously over all days).  Values are NaN on days where an arm
    has no users yet.
    """
    _validate_daily(daily)
    arm_order = list(pd.unique(daily["arm"]))
    control = arm_order[0] if control is None else control
    if control not in arm_order:
        raise AbTestInputError(f"control arm {control!r} does not appear in the data", field="arm")
    if len(arm_order) < 2:
        raise AbTestInputError(f"need at least two arms, found {len(arm_order)}", field="arm")
    users, conversions = _cumulative_counts(daily, arm_order)
    tuning = planned_users_per_arm or DEFAULT_TUNING_USERS_PER_ARM
    records = [
        _cumulative_record(day, arm, users, conversions, control, alpha, tuning)
        for day in users.index
        for arm in arm_order
        if arm != control
    ]
    return pd.DataFrame.from_records(records, columns=CUMULATIVE_COLUMNS)


def _validate_daily(daily: pd.DataFrame) -> None:
    for column in ("day", "arm", "users", "conversions"):
        if column not in daily.columns:
            raise AbTestInputError("missing column", field=column)
    for column in ("users", "conversions"):
        values = pd.to_numeric(daily[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise AbTestInputError(
                f"must be a non-negative whole number, got {daily[column].iloc[row - 1]!r}",
                row=row, field=column,
            )


def _cumulative_counts(
    daily: pd.DataFrame, arm_order: list[Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Day x arm tables of cumulative users and conversions."""
    counts = daily[["day", "arm", "users", "conversions"]].copy()
    counts["users"] = pd.to_numeric(counts["users"]).astype("int64")
    counts["conversions"] = pd.to_numeric(counts["conversions"]).astype("int64")
    totals = counts.groupby(["day", "arm"], sort=True)[["users", "conversions"]].sum()
    users, conv = (
        totals[column].unstack("arm", fill_value=0)
        .reindex(columns=arm_order, fill_value=0)
        .cumsum()
        for column in ("users", "conversions")
    )
    over = conv > users
    if over.to_numpy().any():
        day, arm = next((d, a) for d in over.index for a in over.columns if over.at[d, a])
        raise AbTestInputError(
            f"cumulative conversions exceed cumulative users on day {day!r}",
            arm=str(arm), field="conversions",
        )
    return users, conv


def _cumulative_record(
    day: Any,
    arm: Any,
    users: pd.DataFrame,
    conversions: pd.DataFrame,
    control: Any,
    alpha: float,
    tuning: int,
) -> dict[str, Any]:
    n_var, c_var = int(users.at[day, arm]), int(conversions.at[day, arm])
    n_ctl, c_ctl = int(users.at[day, control]), int(conversions.at[day, control])
    record = {
        "day": day, "arm": arm, "users": n_var, "conversions": c_var,
        "control_users": n_ctl, "control_conversions": c_ctl,
    }
    nan = math.nan
    if n_var == 0 or n_ctl == 0:
        record.update(
            rate=c_var / n_var if n_var else nan, control_rate=c_ctl / n_ctl if n_ctl else nan,
            diff=nan, diff_ci_low=nan, diff_ci_high=nan,
            always_valid_low=nan, always_valid_high=nan, always_valid_p=nan,
        )
        return record
    fixed = newcombe_interval(c_var, n_var, c_ctl, n_ctl, alpha)
    av = always_valid(c_var, n_var, c_ctl, n_ctl, alpha, tuning)
    av_low, av_high = _always_valid_interval(av, fixed)
    record.update(
        rate=c_var / n_var, control_rate=c_ctl / n_ctl, diff=c_var / n_var - c_ctl / n_ctl,
        diff_ci_low=fixed[0], diff_ci_high=fixed[1],
        always_valid_low=av_low, always_valid_high=av_high, always_valid_p=av.p_value,
    )
    return record


# --------------------------------------------------------------------------
# CLI entry point
# --------------------------------------------------------------------------


def report_from_csv(
    path: str | Path,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    planned_users_per_arm: int | None = None,
) -> dict[str, Any]:
    """``analyze(read_arms_csv(path))``: the dict ``cockpit abtest FILE --json`` prints."""
    return analyze(read_arms_csv(path), alpha=alpha, power=power,
                   planned_users_per_arm=planned_users_per_arm)
