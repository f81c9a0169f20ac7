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

from analysis import stats, symbolic
from analysis.experiments.backprop import (
    ACCURACY_TARGET,
    CS231N_LOSS_TOLERANCE,
    CS231N_SCORE_TOLERANCE,
    CS231N_TOY_LOSS,
    CS231N_TOY_REG,
    CS231N_TOY_SCORES,
    CS231N_TOY_SEED,
    TOY,
)
from analysis.experiments.backprop import gap_epochs as _gap_epochs
from analysis.tables import markdown

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


def equation_checks(equations: Iterable[symbolic.Equation], checks: Mapping[str, bool] | None = None) -> Markdown:
    """One row per displayed equation: what it states, how SymPy checked it,
    and whether the check passed (run when the page is built). A definition
    has no check and says so; ``checks`` overrides results by key (tests)."""
    rows = []
    for item in equations:
        if item.is_definition:
            rows.append((f"@{item.label}", item.description, "—", "definition"))
            continue
        results = symbolic.run_checks(item.checks) if checks is None else checks
        missing = [key for key in item.checks if key not in results]
        if missing:
            raise ValueError(f"{item.label} names check {missing[0]!r}, which was not computed")
        rows.append(
            (
                f"@{item.label}",
                item.description,
                " ".join(symbolic.CHECK_DESCRIPTIONS[key] for key in item.checks),
                _tick(all(results[key] for key in item.checks)),
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
        ("Activation", "Draws per seed", "Max error, weights", "Max error, biases",
         f"Below {power_of_ten(tolerance)}"),
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
    return markdown(rows, ("Parameter", "Max relative error", f"Below {power_of_ten(tolerance)}"), note=note)


def worst_error(result, part: str) -> float:
    """The largest relative error of a gradient-check result ("mlp" or "two_layer")."""
    return max(max(row["errors"].values()) for row in result[part])


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float) -> str:
    """1e-07 -> "10⁻⁷" for prose (an inline expression's output is escaped,
    so LaTeX would show literally); other values as ``:g``."""
    exponent = float(np.log10(value)) if value > 0 else 0.5
    if exponent.is_integer():
        return "10" + str(int(exponent)).translate(_SUPERSCRIPTS)
    return f"{value:g}"


def below(value: float, tolerance: float) -> str:
    """"below" or "NOT below": a gradient check's error against its bound."""
    return "below" if value < tolerance else "NOT below"


def toy_reference(check: Mapping) -> Markdown:
    """The assignment's forward checks on its toy problem: our scores and
    loss against the numbers its notebook prints (``experiments.backprop
    .toy_reference_check``), with the bound the notebook gives for each."""
    rows = [
        (
            f"Scores, {len(CS231N_TOY_SCORES)}×{len(CS231N_TOY_SCORES[0])}",
            # No "|" for the absolute value: it would split the pipe table's cell.
            "largest absolute difference, ours against the assignment's",
            _scientific(check["score_difference"]),
            power_of_ten(CS231N_SCORE_TOLERANCE),
            _tick(check["scores_pass"]),
        ),
        (
            f"Loss, λ = {CS231N_TOY_REG:g}",
            f"ours {check['loss']:.12f}, assignment's {CS231N_TOY_LOSS}",
            _scientific(check["loss_difference"]),
            power_of_ten(CS231N_LOSS_TOLERANCE),
            _tick(check["loss_pass"]),
        ),
    ]
    note = (f"The assignment's toy network (weights drawn after np.random.seed({CS231N_TOY_SEED}), "
            f"std {TOY['std']:g}) on its {TOY['num_inputs']} toy inputs; computed when this page was "
            "built. No data: random inputs.")
    return markdown(rows, ("Quantity", "Compared", "Difference", "Bound", "Within"), note=note)


def toy_reference_verdict(check: Mapping) -> str:
    """One clause for the prose, never empty."""
    if check["scores_pass"] and check["loss_pass"]:
        return "both agree with the assignment's numbers within the bounds its notebook gives"
    failed = [name for name, key in (("the scores", "scores_pass"), ("the loss", "loss_pass"))
              if not check[key]]
    return f"{' and '.join(failed)} do NOT agree with the assignment's numbers"


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
    """Test accuracy per seed (NaN for a diverged run) of a result with
    ``replicates``: the default net, or the sweep's chosen configuration."""
    return [row["test_accuracy"] for row in result["replicates"]]


def default_versus_chosen(default, sweep_result) -> stats.Comparison:
    """The sweep's chosen configuration against the assignment's defaults,
    on the test set, over the same seeds.

    The design is paired only when both have the same hidden size: then seed
    s draws the same initial weights and the same mini-batches for both.
    Otherwise the weight matrices differ in shape, seed s means nothing
    shared, and the comparison is unpaired (Welch).
    """
    same_shape = sweep_result["best"]["hidden_size"] == default.provenance["config"]["hidden_size"]
    return stats.compare(
        replicate_test_accuracies(sweep_result),
        replicate_test_accuracies(default),
        names=("the chosen configuration", "the default configuration"),
        paired=same_shape,
    )


def target_statement(test_accuracies: Sequence[float], source: str, substitute: bool,
                     target: float = ACCURACY_TARGET) -> str:
    """Whether the chosen configuration beats the assignment's target, from
    the mean test accuracy over seeds and its t interval, said honestly: a
    result on a stand-in dataset says nothing about real CIFAR-10."""
    summary = stats.summary(test_accuracies)
    bar = f"{100 * target:.0f}%"
    runs = "run" if summary.dropped == 1 else "runs"
    dropped = f" ({summary.dropped} diverged {runs} left out)" if summary.dropped else ""
    if summary.n == 0:
        measured = f"no test accuracy on {source}: every run diverged"
        verdict = "the target is not met"
    elif summary.n == 1:
        side = "above" if summary.mean > target else "not above"
        measured = f"{100 * summary.mean:.1f}% on {source} from a single seed{dropped}, {side} {bar}"
        verdict = "one seed gives no interval, so this is not a verdict on the configuration"
    else:
        measured = (f"a mean test accuracy of {100 * summary.mean:.1f}% over {summary.n} seeds on "
                    f"{source} ({summary.interval_text(digits=1, percent=True)}){dropped}")
        if summary.low > target:
            verdict = f"the target is met: the whole interval lies above {bar}"
        elif summary.high <= target:
            verdict = f"the target is not met: the whole interval lies at or below {bar}"
        else:
            verdict = f"the interval includes {bar}, so these seeds cannot tell whether the target is met"
    if substitute:
        return (f"{measured}; these are not the CIFAR-10 images, so this run cannot tell whether "
                "the target is met on real CIFAR-10")
    return f"{measured}: {verdict}"


# ---------------------------------------------------------------------------
# The train-test gap

#: How a comparison's outcome reads as a change of the gap, going from the
#: smallest level (b) to the largest (a) with "lower is better".
GAP_DIRECTIONS = {
    "a_better": "shrinks",
    "b_better": "widens",
    "tie": "unchanged",
    "unclear": "unclear",
    "single": "single seed",
    "empty": "no finite runs",
}


def _network(factor: str, level) -> str:
    """A network named by its level of ``factor``, for verdict sentences."""
    if factor == "train_size":
        return f"the {level:,}-image net"
    if factor == "hidden_size":
        return f"the {level:,}-unit net"
    return f"the λ = {level:g} net"


def _compare_levels(factor: str, per_level: Mapping, low, high, higher_is_better: bool) -> stats.Comparison:
    """The largest level (a) against the smallest (b), over seeds.

    Paired for the training-set size and λ: with the hidden size fixed, seed
    s draws the same initial weights for both levels (and, for λ, the same
    mini-batches too). Unpaired for the hidden size, where seed s draws
    weight matrices of different shapes and nothing is shared.
    """
    return stats.compare(
        per_level[high], per_level[low],
        names=(_network(factor, high), _network(factor, low)),
        paired=factor != "hidden_size",
        higher_is_better=higher_is_better,
    )


def gap_summary(result) -> dict[str, dict]:
    """For each factor: its levels, the gaps per level (one per seed, in seed
    order), the train/test accuracies per level, the comparison of the gap at
    the largest level with the smallest (lower is better), and its direction
    (:data:`GAP_DIRECTIONS`)."""
    runs = result["runs"]
    summary = {}
    for factor in FACTOR_NAMES:
        relevant = [r for r in runs if r["varied"] in ("baseline", factor)]
        levels = sorted({r[factor] for r in relevant})
        per_level = {level: sorted((r for r in relevant if r[factor] == level), key=lambda r: r["seed"])
                     for level in levels}
        gaps = {level: [r["gap"] for r in rows] for level, rows in per_level.items()}
        comparison = _compare_levels(factor, gaps, levels[0], levels[-1], higher_is_better=False)
        summary[factor] = {
            "levels": levels,
            "gaps": gaps,
            "train": {level: [r["train_accuracy"] for r in rows] for level, rows in per_level.items()},
            "test": {level: [r["test_accuracy"] for r in rows] for level, rows in per_level.items()},
            "comparison": comparison,
            "direction": GAP_DIRECTIONS[comparison.outcome],
        }
    return summary


def _level(factor: str, level) -> str:
    return f"{level:,}" if factor != "reg" else f"{level:g}"


def gap_epochs(result) -> dict[int, float]:
    """Epochs per training-set size in the gap experiment."""
    return _gap_epochs(result.provenance["config"])


def generalization_gap(result) -> Markdown:
    """Training accuracy, test accuracy and their gap per factor and level,
    mean ± std over the seeds, with the epochs each setting trained for."""
    epochs = gap_epochs(result)
    config = result.provenance["config"]
    baseline_size = min(config["train_sizes"])
    rows = []
    for factor, item in gap_summary(result).items():
        for level in item["levels"]:
            size = level if factor == "train_size" else baseline_size
            rows.append(
                (
                    FACTOR_NAMES[factor],
                    _level(factor, level),
                    f"{epochs[size]:g}",
                    stats.summary(item["train"][level]).text(digits=1, percent=True),
                    stats.summary(item["test"][level]).text(digits=1, percent=True),
                    stats.summary(item["gaps"][level]).text(digits=1, percent=True),
                )
            )
    baseline = (
        f"{baseline_size:,} training images, {min(config['hidden_sizes'])} hidden units, "
        f"λ = {min(config['regs']):g}"
    )
    note = (
        f"Each factor varies while the others stay at the baseline ({baseline}); {config['num_iters']:,} "
        f"iterations of {config['batch_size']} images at learning rate {config['learning_rate']:g} "
        f"(constant), so the epochs depend on the training-set size. Data: {result.data_source()}"
    )
    return markdown(
        rows,
        ("Factor", "Level", "Epochs", "Training acc.", "Test acc.", "Gap (train − test)"),
        note=note,
        align=("left", "right", "right", "right", "right", "right"),
    )


def gap_answer(result) -> Markdown:
    """The chapter's answer, one bullet per factor, each a verdict sentence
    of :mod:`analysis.stats`, then the changes that shrink the gap."""
    items, shrinkers = [], []
    for factor, item in gap_summary(result).items():
        low, high = item["levels"][0], item["levels"][-1]
        sentence = item["comparison"].sentence(metric="train–test gap")
        items.append(f"- {FACTOR_CHANGES[factor]} ({_level(factor, low)} → {_level(factor, high)}): {sentence}.")
        if item["direction"] == "shrinks":
            shrinkers.append(FACTOR_CHANGES[factor])
    named = ", ".join(shrinkers) if shrinkers else "none of the three"
    return Markdown("\n".join(items) + f"\n\nThe changes that shrink the gap here: {named}.\n")


def gap_shrinkers(result) -> list[str]:
    """The changes that shrink the gap, in the chapter's words."""
    return [FACTOR_CHANGES[f] for f, item in gap_summary(result).items() if item["direction"] == "shrinks"]


#: The usual expectation: more data and stronger regularisation shrink the
#: gap; more hidden units add capacity and do not.
EXPECTED_DIRECTIONS = {
    "train_size": {"shrinks"},
    "hidden_size": {"widens", "unclear", "unchanged"},
    "reg": {"shrinks"},
}

#: Directions that carry no verdict, so they cannot test the expectation.
_UNDECIDABLE = {"single seed", "no finite runs"}


def gap_matches_expectation(result) -> bool | None:
    """Whether every factor moved the gap the way :data:`EXPECTED_DIRECTIONS`
    says; None when some factor has a single seed or no finite runs."""
    summary = gap_summary(result)
    if any(item["direction"] in _UNDECIDABLE for item in summary.values()):
        return None
    return all(item["direction"] in EXPECTED_DIRECTIONS[factor] for factor, item in summary.items())


def gap_expectation(result, profile_name: str) -> str:
    """Whether the measurements agree with the usual reasoning, worded for
    the profile that produced them (never empty). A change in the opposite
    direction contradicts the reasoning; no clear change where a shrinking
    gap was expected merely fails to confirm it."""
    matches = gap_matches_expectation(result)
    if matches is None:
        return "cannot test this reasoning: a factor has a single seed or no finite run, so no interval"
    if matches:
        return "agree with this reasoning"
    contradicted, unconfirmed = [], []
    for factor, item in gap_summary(result).items():
        if item["direction"] in EXPECTED_DIRECTIONS[factor]:
            continue
        opposite = item["direction"] in ("widens", "shrinks")
        (contradicted if opposite else unconfirmed).append(FACTOR_CHANGES[factor])
    parts = []
    if contradicted:
        parts.append(f"contradict it for {' and '.join(contradicted)}")
    if unconfirmed:
        parts.append(f"show no clear shrinking of the gap with {' and '.join(unconfirmed)}")
    text = "do not fully agree with this reasoning: they " + ", and ".join(parts)
    if profile_name == "smoke":
        return text + "; with the smoke profile's tiny budgets that says nothing"
    return text + "; at these budgets that deserves a closer look"


def sentence_start(clause: str) -> str:
    """A verdict clause of :mod:`analysis.stats` made to open a sentence."""
    return clause[:1].upper() + clause[1:]


def default_diagnosis(result, levelled: float = 0.01, separated: float = 0.05) -> str:
    """What the default run's curves say, computed from them.

    The loss counts as still falling when the mean loss of the last epoch is
    more than ``levelled`` (relative) below that of the epoch before; the
    accuracies count as separated when training accuracy exceeds validation
    accuracy by more than ``separated``. A single run: a description of its
    curves, not a comparison.
    """
    loss = np.asarray(result["loss_history"], dtype=float)
    if not np.isfinite(loss[-1]):
        return "the loss diverged (it is not finite at the end of training), so these settings do not train"
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
    as a verdict of :mod:`analysis.stats` (same pairing as the gap's): a
    smaller gap is not always better test accuracy. Never empty."""
    parts = []
    for factor, item in gap_summary(result).items():
        if item["direction"] != "shrinks":
            continue
        low, high = item["levels"][0], item["levels"][-1]
        comparison = _compare_levels(factor, item["test"], low, high, higher_is_better=True)
        parts.append(f"with {FACTOR_CHANGES[factor]}, {comparison.sentence(metric='test accuracy')}")
    if not parts:
        return "no change shrank the gap, so there is no test accuracy to compare"
    return "; ".join(parts)
