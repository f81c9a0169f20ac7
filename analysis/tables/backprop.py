"""Tables and computed statements of the backpropagation chapter.

Every function takes what SymPy derived or what an experiment returned and
formats it; none computes a result of its own. The statements the chapter
makes from numbers (does a gap shrink? was the accuracy target met?) are
computed here, from the numbers, so the prose can never contradict them.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import sympy as sp
from IPython.display import Markdown

from analysis import symbolic
from analysis.tables import markdown, mean_std

#: How the chapter names the factors of the generalization-gap experiment.
FACTOR_NAMES = {
    "train_size": "training-set size",
    "hidden_size": "hidden units",
    "reg": "regularisation strength λ",
}

#: What the chapter calls the change from the smallest to the largest level.
FACTOR_CHANGES = {
    "train_size": "a larger training set",
    "hidden_size": "more hidden units",
    "reg": "stronger regularisation",
}

#: Factors whose change the chapter names with a plural noun ("more hidden units").
PLURAL_FACTORS = {"hidden_size"}

SYMPY_NOTE = "No data: derived and checked by SymPy when this page was built."


def _tick(passed: bool) -> str:
    return "✓ yes" if passed else "✗ NO"


def _scientific(value: float) -> str:
    return f"{float(value):.1e}"


# ---------------------------------------------------------------------------
# Equations


def equation(equations: Iterable[symbolic.Equation], label: str) -> Markdown:
    """The display block of the equation labelled ``label``.

    Chapter cells call it as ``equation(all_equations, label="eq-forward")``
    so that the label stands literally in the cell's source, where the book
    check (and a reader) can find it.
    """
    for item in equations:
        if item.label == label:
            return Markdown(item.markdown())
    known = ", ".join(item.label for item in equations)
    raise ValueError(f"no equation labelled {label!r}; known labels: {known}")


def equation_checks(equations: Iterable[symbolic.Equation], checks: Mapping[str, bool]) -> Markdown:
    """One row per displayed equation: what it states, how SymPy checked it,
    and whether the check passed (computed when the page is built)."""
    rows = []
    for item in equations:
        if item.check not in checks:
            raise ValueError(f"{item.label} names check {item.check!r}, which was not computed")
        rows.append(
            (
                f"@{item.label}",
                item.description,
                symbolic.CHECK_DESCRIPTIONS[item.check],
                _tick(checks[item.check]),
            )
        )
    return markdown(rows, ("Equation", "States", "SymPy's check", "Passed"), note=SYMPY_NOTE)


def activation_ranges(derivations: Sequence[symbolic.ActivationDerivation], depth: int = 20) -> Markdown:
    """For each activation: f' in terms of the output, the range of f', the
    most one layer can pass back, and that factor through ``depth`` layers."""
    rows = []
    for item in derivations:
        if item.latex_derivative_in_output is not None:
            in_output = f"${item.latex_derivative_in_output}$"
        else:
            in_output = (
                f"none in closed form; ${item.latex_derivative_in_auxiliary}$ with "
                f"$t = {item.latex_auxiliary_definition}$"
            )
        supremum = item.derivative_supremum
        rows.append(
            (
                item.title,
                in_output,
                f"${item.latex_derivative_range}$",
                f"${sp.latex(supremum)}$ ≈ {float(supremum):.4g}",
                f"{float(symbolic.gradient_bound(item.name, depth)):.3g}",
            )
        )
    return markdown(
        rows,
        ("Activation", "f′ in terms of a = f(x)", "Range of f′", "sup f′", f"(sup f′)^{depth}"),
        note=SYMPY_NOTE,
    )


# ---------------------------------------------------------------------------
# Gradient checks


def mlp_gradient_checks(result, tolerance: float = 1e-7) -> Markdown:
    """The MLP gradient check per activation, worst case over the seeds."""
    config = result.provenance["config"]
    by_activation: dict[str, list[dict]] = {}
    for row in result["mlp"]:
        by_activation.setdefault(row["activation"], []).append(row)
    rows = []
    for activation, checks in by_activation.items():
        weights = max(e for c in checks for name, e in c["errors"].items() if name.startswith("W"))
        biases = max(e for c in checks for name, e in c["errors"].items() if name.startswith("b"))
        worst = max(c["max_error"] for c in checks)
        rows.append(
            (
                symbolic.activation(activation).title,
                ", ".join(str(c["draws"]) for c in checks),
                _scientific(weights),
                _scientific(biases),
                _tick(worst < tolerance),
            )
        )
    sizes = "-".join(str(s) for s in config["layer_sizes"])
    note = (
        f"A {sizes} network, {config['num_examples']} examples, float64, step h = {config['step']:g}; "
        f"worst relative error over {len(config['seeds'])} seeds. Draws: random problems drawn per seed "
        f"until none had a ReLU pre-activation within {config['kink_margin']:g} of 0 or a non-zero "
        f"gradient entry below {config['min_gradient']:g}. No data: random inputs."
    )
    return markdown(
        rows,
        ("Activation", "Draws per seed", "Max error, weights", "Max error, biases", f"Below {tolerance:g}"),
        note=note,
    )


def two_layer_gradient_check(result, tolerance: float = 1e-8) -> Markdown:
    """The toy problem's gradient check per parameter, worst over the seeds."""
    config = result.provenance["config"]
    checks = result["two_layer"]
    rows = []
    for name in checks[0]["errors"]:
        worst = max(check["errors"][name] for check in checks)
        rows.append((f"`{name}`", _scientific(worst), _tick(worst < tolerance)))
    toy = config["toy"]
    note = (
        f"Toy problem: {toy['num_inputs']} inputs, {toy['input_size']} features, {toy['hidden_size']} "
        f"hidden units, {toy['num_classes']} classes, λ = {config['toy_reg']:g}; worst over "
        f"{len(checks)} seeds of the initial weights. No data: random inputs."
    )
    return markdown(rows, ("Parameter", "Max relative error", f"Below {tolerance:g}"), note=note)


def worst_error(result, part: str) -> float:
    """The largest relative error of a gradient-check result ("mlp" or "two_layer")."""
    return max(max(row["errors"].values()) for row in result[part])


# ---------------------------------------------------------------------------
# CIFAR-10


def sweep(result, top: int | None = 12) -> Markdown:
    """The sweep's (configuration, iterations) pairs by validation accuracy,
    best first and in bold; at most ``top`` rows."""
    rows = sorted(result["rows"], key=lambda row: -row["val_accuracy"])
    best = result["best"]
    shown = rows if top is None else rows[:top]
    table = []
    for row in shown:
        cells = (
            str(row["hidden_size"]),
            f"{row['learning_rate']:g}",
            f"{row['reg']:g}",
            f"{row['num_iters']:,} ({row['epochs']:g})",
            f"{100 * row['train_accuracy']:.1f}%",
            f"{100 * row['val_accuracy']:.1f}%",
        )
        is_best = all(row[k] == best[k] for k in ("hidden_size", "learning_rate", "reg", "num_iters"))
        table.append(tuple(f"**{c}**" for c in cells) if is_best else cells)
    config = result.provenance["config"]
    note = (
        f"{len(rows)} (configuration, iterations) pairs from one run per configuration "
        f"(seed {config['seed']}), the best {len(shown)} shown; training accuracy on "
        f"{config['train_subsample']:,} training images. Data: {result.data_source()}"
    )
    return markdown(
        table,
        ("Hidden units", "Learning rate", "λ", "Iterations (epochs)", "Training acc.", "Validation acc."),
        note=note,
        align=("right",) * 6,
    )


def replicate_test_accuracies(result) -> list[float]:
    return [row["test_accuracy"] for row in result["replicates"]]


def target_statement(test_accuracy: float, source: str, substitute: bool, target: float = 0.48) -> str:
    """Whether the chosen net beat the assignment's target, said honestly:
    a result on a stand-in dataset says nothing about real CIFAR-10."""
    above = test_accuracy > target
    measured = f"{100 * test_accuracy:.1f}% on {source}, {'above' if above else 'not above'} {100 * target:.0f}%"
    if substitute:
        return (
            f"{measured}; these are not the CIFAR-10 images, so this run cannot tell whether "
            "the target is met on real CIFAR-10"
        )
    return f"{measured}: the target is {'met' if above else 'not met'}"


# ---------------------------------------------------------------------------
# The train-test gap


def gap_direction(smallest: Sequence[float], largest: Sequence[float], z: float = 2.0) -> str:
    """"shrinks", "widens" or "unclear": how the gap changes from the
    smallest level of a factor to its largest, over seeds.

    The change counts only when the difference of the means exceeds ``z``
    standard errors of that difference (sample std, ddof=1, per level); with
    a single seed per level there is no error estimate and the sign decides.
    """
    smallest, largest = np.asarray(smallest, dtype=float), np.asarray(largest, dtype=float)
    if smallest.size == 0 or largest.size == 0:
        raise ValueError("gap_direction needs at least one gap per level")
    change = largest.mean() - smallest.mean()
    variance = sum(v.var(ddof=1) / v.size for v in (smallest, largest) if v.size > 1)
    if abs(change) <= z * np.sqrt(variance) or change == 0:
        return "unclear"
    return "shrinks" if change < 0 else "widens"


def gap_summary(result) -> dict[str, dict]:
    """For each factor: its levels, the gaps per level (one per seed), the
    mean train/test accuracy per level, and :func:`gap_direction`."""
    runs = result["runs"]
    summary = {}
    for factor in FACTOR_NAMES:
        relevant = [r for r in runs if r["varied"] in ("baseline", factor)]
        levels = sorted({r[factor] for r in relevant})
        per_level = {level: [r for r in relevant if r[factor] == level] for level in levels}
        gaps = {level: [r["gap"] for r in rows] for level, rows in per_level.items()}
        summary[factor] = {
            "levels": levels,
            "gaps": gaps,
            "train": {level: [r["train_accuracy"] for r in rows] for level, rows in per_level.items()},
            "test": {level: [r["test_accuracy"] for r in rows] for level, rows in per_level.items()},
            "direction": gap_direction(gaps[levels[0]], gaps[levels[-1]]),
        }
    return summary


def _level(factor: str, level) -> str:
    return f"{level:,}" if factor != "reg" else f"{level:g}"


def generalization_gap(result) -> Markdown:
    """Training accuracy, test accuracy and their gap per factor and level,
    mean ± std over the seeds."""
    rows = []
    for factor, item in gap_summary(result).items():
        for level in item["levels"]:
            rows.append(
                (
                    FACTOR_NAMES[factor],
                    _level(factor, level),
                    mean_std(item["train"][level], digits=1, percent=True),
                    mean_std(item["test"][level], digits=1, percent=True),
                    mean_std(item["gaps"][level], digits=1, percent=True),
                )
            )
    config = result.provenance["config"]
    baseline = (
        f"{min(config['train_sizes']):,} training images, {min(config['hidden_sizes'])} hidden units, "
        f"λ = {min(config['regs']):g}"
    )
    note = (
        f"Each factor varies while the others stay at the baseline ({baseline}); {config['num_iters']:,} "
        f"iterations, learning rate {config['learning_rate']:g} (constant). Data: {result.data_source()}"
    )
    return markdown(
        rows,
        ("Factor", "Level", "Training acc.", "Test acc.", "Gap (train − test)"),
        note=note,
        align=("left", "right", "right", "right", "right"),
    )


def gap_answer(result) -> str:
    """The chapter's answer, worded from the numbers: which changes shrink
    the gap, with the mean gap at the smallest and the largest level."""
    phrases = {
        "shrinks": ("shrinks the gap", "shrink the gap"),
        "widens": ("widens the gap", "widen the gap"),
        "unclear": (
            "does not change the gap by more than the seeds' spread",
            "do not change the gap by more than the seeds' spread",
        ),
    }
    parts = []
    for factor, item in gap_summary(result).items():
        plural = factor in PLURAL_FACTORS
        low, high = item["levels"][0], item["levels"][-1]
        before = 100 * float(np.mean(item["gaps"][low]))
        after = 100 * float(np.mean(item["gaps"][high]))
        parts.append(
            f"{FACTOR_CHANGES[factor]} ({_level(factor, low)} → {_level(factor, high)}) "
            f"{phrases[item['direction']][plural]} (mean gap {before:.1f} → {after:.1f} points)"
        )
    return "; ".join(parts[:-1]) + "; and " + parts[-1]


def gap_shrinkers(result) -> list[str]:
    """The changes that shrink the gap, in the chapter's words."""
    return [FACTOR_CHANGES[f] for f, item in gap_summary(result).items() if item["direction"] == "shrinks"]


#: The usual expectation: more data and stronger regularisation shrink the
#: gap; more hidden units add capacity and do not.
EXPECTED_DIRECTIONS = {"train_size": {"shrinks"}, "hidden_size": {"widens", "unclear"}, "reg": {"shrinks"}}


def gap_matches_expectation(result) -> bool:
    """Whether every factor moved the gap the way :data:`EXPECTED_DIRECTIONS` says."""
    return all(
        item["direction"] in EXPECTED_DIRECTIONS[factor] for factor, item in gap_summary(result).items()
    )


def default_diagnosis(result, levelled: float = 0.01, separated: float = 0.05) -> str:
    """What the default run's curves say, computed from them.

    The loss counts as still falling when the mean loss of the last epoch is
    more than ``levelled`` (relative) below that of the epoch before; the
    accuracies count as separated when training accuracy exceeds validation
    accuracy by more than ``separated``.
    """
    loss = np.asarray(result["loss_history"], dtype=float)
    window = max(1, min(int(round(result["iterations_per_epoch"])), len(loss) // 2))
    last, before = loss[-window:].mean(), loss[-2 * window:-window].mean()
    falling = last < (1 - levelled) * before
    difference = result["train_accuracy"] - result["val_accuracy"]
    if falling:
        loss_part = (
            f"the mini-batch loss is still falling when training stops (the mean over the last "
            f"{window} iterations is {before - last:.3f} below the {window} before)"
        )
    else:
        loss_part = "the mini-batch loss has levelled off by the end of training"
    accuracy_part = f"training minus validation accuracy is {100 * difference:+.1f} points"
    if difference > separated:
        verdict = "the network has begun to overfit"
    elif falling:
        verdict = (
            "the network underfits: it has not finished fitting even its training set, so a larger "
            "learning rate, more iterations or more hidden units are where to look"
        )
    else:
        verdict = "these settings have converged without overfitting"
    return f"{loss_part}, and {accuracy_part}; {verdict}"


def test_accuracy_effects(result) -> str:
    """How test accuracy itself moved for each change that shrank the gap,
    worded from the numbers (the same two-standard-error rule as
    :func:`gap_direction`): a smaller gap is not always better test accuracy."""
    verbs = {"shrinks": "fell", "widens": "rose", "unclear": "did not change clearly"}
    parts = []
    for factor, item in gap_summary(result).items():
        if item["direction"] != "shrinks":
            continue
        low, high = item["levels"][0], item["levels"][-1]
        # gap_direction reads a fall as "shrinks" and a rise as "widens".
        verb = verbs[gap_direction(item["test"][low], item["test"][high])]
        before = 100 * float(np.mean(item["test"][low]))
        after = 100 * float(np.mean(item["test"][high]))
        parts.append(f"with {FACTOR_CHANGES[factor]} test accuracy {verb} ({before:.1f}% → {after:.1f}%)")
    if not parts:
        return "no change shrank the gap, so there is no test accuracy to compare"
    return "; ".join(parts)
