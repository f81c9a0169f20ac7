"""The book's one statistics helper: every comparison over seeds goes through it.

Two functions, used by every chapter:

* :func:`summary` — mean, sample standard deviation and a t-based 95%
  interval of the mean over replicates (seeds), with non-finite runs
  (diverged, NaN) dropped and counted rather than silently averaged in;
* :func:`compare` — two methods measured on the same seeds. Where the design is
  paired (same seed → same initial weights and batches), the per-seed
  differences carry the comparison: their mean, a t-based 95% interval, and
  "higher on k of n seeds". Unpaired designs use Welch's interval.

Each result writes its own sentence, so a chapter never words a verdict by
hand, and every outcome has one: no finite runs, a single seed (no interval
is possible), a tie, a clear winner either way, or no clear difference.

Why t and not 2·SE: with the 3–5 seeds a CPU budget allows, the t quantile is
4.30 (n = 3) or 2.78 (n = 5), so "2 standard errors" would call differences
clear that the data cannot support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95

OUTCOMES = ("a_better", "b_better", "tie", "unclear", "single", "empty")


def _finite(values) -> tuple[np.ndarray, int]:
    values = np.asarray(values, dtype=float).ravel()
    keep = np.isfinite(values)
    return values[keep], int((~keep).sum())


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The t-based interval of the mean; (nan, nan) below two values."""
    n = values.size
    if n < 2:
        return float("nan"), float("nan")
    mean = float(values.mean())
    half = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def _format(value: float, digits: int, percent: bool) -> str:
    if percent:
        return f"{100 * value:.{digits}f}%"
    return f"{value:.{digits}f}"


def _points(value: float, digits: int, percent: bool) -> str:
    """A difference: percentage points for proportions, plain otherwise (with
    a real minus sign)."""
    text = f"{100 * value:.{digits}f} points" if percent else f"{value:.{digits + 1}g}"
    return text.replace("-", "−")


def _signed(value: float, digits: int, percent: bool) -> str:
    """A bound without its unit (the upper bound carries it)."""
    text = f"{100 * value:.{digits}f}" if percent else f"{value:.{digits + 1}g}"
    return text.replace("-", "−")


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


@dataclass(frozen=True)
class Summary:
    """Replicates of one quantity. ``dropped`` counts non-finite runs."""

    n: int
    dropped: int
    mean: float
    std: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    def text(self, digits: int = 3, percent: bool = False, count: bool = True) -> str:
        """"mean ± std (n=k)"; "no finite runs" when every run diverged."""
        if self.n == 0:
            return f"no finite runs ({_runs(self.dropped)} diverged)"
        text = _format(self.mean, digits, percent)
        if self.n >= 2:
            text += f" ± {_format(self.std, digits, percent)}"
        if count:
            text += f" (n={self.n})"
        if self.dropped:
            text += f", {_runs(self.dropped)} diverged"
        return text

    def interval_text(self, digits: int = 3, percent: bool = False) -> str:
        """"95% CI a to b", or why there is none."""
        if self.n == 0:
            return "no interval (no finite runs)"
        if self.n == 1:
            return "no interval (a single run)"
        return (f"{round(100 * self.confidence)}% CI {_format(self.low, digits, percent)} "
                f"to {_format(self.high, digits, percent)}")


def summary(values, confidence: float = CONFIDENCE) -> Summary:
    """Summarise replicates; NaN and ±inf (diverged runs) are dropped and counted."""
    finite, dropped = _finite(values)
    n = finite.size
    mean = float(finite.mean()) if n else float("nan")
    std = float(finite.std(ddof=1)) if n >= 2 else float("nan")
    low, high = _t_interval(finite, confidence)
    return Summary(n, dropped, mean, std, low, high, confidence)


@dataclass(frozen=True)
class Comparison:
    """Method a against method b over seeds (see :func:`compare`)."""

    names: tuple[str, str]
    paired: bool
    higher_is_better: bool
    n: int                  # pairs (paired) or the smaller group (unpaired)
    dropped: int            # runs left out because a value was not finite
    mean_a: float
    mean_b: float
    difference: float       # mean of a − b
    low: float              # t-based interval of the difference
    high: float
    wins: int               # seeds where a is better (paired designs only)
    # losses: seeds where b is better; ties: within the tolerance
    losses: int
    ties: int
    outcome: str            # one of OUTCOMES
    confidence: float = CONFIDENCE

    @property
    def better(self) -> str | None:
        """"a", "b", or None when the data do not decide."""
        return {"a_better": "a", "b_better": "b"}.get(self.outcome)

    @property
    def better_name(self) -> str | None:
        return None if self.better is None else self.names[self.better == "b"]

    def k_of_n(self) -> str:
        """"better on k of n seeds" for a (paired designs)."""
        return f"{self.wins} of {self.n} seeds"

    def sentence(self, metric: str = "test accuracy", percent: bool = True,
                 digits: int = 1) -> str:
        """One clause, without a final full stop, for every outcome."""
        a, b = self.names
        dropped = f"; {_runs(self.dropped)} diverged and left out" if self.dropped else ""
        if self.outcome == "empty":
            return (f"no comparison of {a} and {b} is possible: "
                    f"every run diverged or produced no {metric}")
        direction = "higher" if self.difference > 0 else "lower"
        size = _points(abs(self.difference), digits, percent)
        if self.outcome == "single":
            if self.difference == 0:
                return f"on a single seed, {a} and {b} reach the same {metric}{dropped}"
            return (f"on a single seed, {a}'s {metric} is {direction} than {b}'s by {size}; "
                    f"one seed allows no interval, so this is not a verdict{dropped}")
        design = "paired over" if self.paired else "unpaired,"
        # The interval is quoted in the direction the sentence states ("lower
        # by 2 points (95% CI 1 to 3 points)"), signed only where no direction is.
        low, high = (self.low, self.high) if self.difference >= 0 else (-self.high, -self.low)
        if self.outcome == "unclear":
            low, high = self.low, self.high
        interval = (f"{round(100 * self.confidence)}% CI {_signed(low, digits, percent)} "
                    f"to {_points(high, digits, percent)}")
        seeds = f"{self.n} seeds"
        record = f", {a} better on {self.wins} of {self.n}" if self.paired else ""
        if self.outcome == "tie":
            return f"{a} and {b} reach the same {metric} on every one of {seeds}{dropped}"
        if self.outcome == "unclear":
            return (f"there is no clear difference in {metric} between {a} and {b}: "
                    f"the mean difference {a} − {b} is {_points(self.difference, digits, percent)} "
                    f"({interval}, which includes zero; {design} {seeds}{record}){dropped}")
        return (f"{a}'s {metric} is {direction} than {b}'s by {size} "
                f"({interval}; {design} {seeds}{record}){dropped}")


def compare(a, b, names: tuple[str, str] = ("a", "b"), paired: bool = True,
            higher_is_better: bool = True, tolerance: float = 0.0,
            confidence: float = CONFIDENCE) -> Comparison:
    """Compare per-seed values of two methods.

    ``paired=True`` (the book's usual design: seed i gives both methods the
    same initial weights and batches) uses the per-seed differences a[i] − b[i]
    and drops a pair when either value is not finite. ``tolerance`` is the
    largest difference still called a tie (0: only exact equality).
    """
    a_values = np.asarray(a, dtype=float).ravel()
    b_values = np.asarray(b, dtype=float).ravel()
    if paired:
        if a_values.size != b_values.size:
            raise ValueError(f"a paired comparison needs as many values of {names[0]} "
                             f"({a_values.size}) as of {names[1]} ({b_values.size})")
        keep = np.isfinite(a_values) & np.isfinite(b_values)
        dropped = int((~keep).sum())
        a_values, b_values = a_values[keep], b_values[keep]
        differences = a_values - b_values
        n = differences.size
        low, high = _t_interval(differences, confidence)
        better = differences if higher_is_better else -differences
        wins = int((better > tolerance).sum())
        losses = int((better < -tolerance).sum())
        ties = n - wins - losses
        all_tied = n > 0 and ties == n
    else:
        a_values, dropped_a = _finite(a_values)
        b_values, dropped_b = _finite(b_values)
        dropped = dropped_a + dropped_b
        n = min(a_values.size, b_values.size)
        low, high = _welch_interval(a_values, b_values, confidence)
        wins = losses = ties = 0
        all_tied = (n > 0 and np.ptp(np.concatenate([a_values, b_values])) <= tolerance)
    mean_a = float(a_values.mean()) if a_values.size else float("nan")
    mean_b = float(b_values.mean()) if b_values.size else float("nan")
    difference = mean_a - mean_b
    outcome = _outcome(n, all_tied, low, high, higher_is_better)
    return Comparison(tuple(names), paired, higher_is_better, n, dropped, mean_a, mean_b,
                      difference, low, high, wins, losses, ties, outcome, confidence)


def _welch_interval(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float]:
    if a.size < 2 or b.size < 2:
        return float("nan"), float("nan")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = np.sqrt(va + vb)
    difference = a.mean() - b.mean()
    if se == 0:
        return float(difference), float(difference)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = scipy_stats.t.ppf(0.5 + confidence / 2, dof) * se
    return float(difference - half), float(difference + half)


def _outcome(n: int, all_tied: bool, low: float, high: float, higher_is_better: bool) -> str:
    if n == 0:
        return "empty"
    if all_tied:
        return "tie"
    if n == 1:
        return "single"
    if low > 0 or high < 0:
        a_higher = low > 0
        return "a_better" if a_higher == higher_is_better else "b_better"
    return "unclear"
