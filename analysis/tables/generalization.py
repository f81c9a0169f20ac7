"""Tables, verdicts and computed conclusions of the generalization chapter.

Every comparison goes through :mod:`analysis.stats` (paired over seeds: within
a seed all methods share initial weights and mini-batches); every sentence
that says which method did better is that helper's sentence.
"""

from __future__ import annotations

import numpy as np

from analysis import stats
from analysis.tables import budget_note, count, markdown, mean_std

#: How tables and legends name the methods.
LABELS = {
    "baseline": "no regularisation",
    "early_stopping": "early stopping",
    "l2": "L2",
    "dropout": "dropout",
    "adam": "Adam",
    "adam_l2": "Adam + L2",
    "adamw": "AdamW",
    "regularised": "regularised",
}

#: How a verdict sentence names them.
SUBJECTS = {
    "baseline": "the unregularised network",
    "early_stopping": "early stopping",
    "l2": "the L2 network",
    "dropout": "the dropout network",
    "adam": "plain Adam",
    "adam_l2": "Adam + L2",
    "adamw": "AdamW",
}

#: Scores of a run: how a sentence names them, whether higher is better, percent.
SCORES = {
    "test_accuracy": ("test accuracy", True, True),
    "gap": ("train–test accuracy gap", False, True),
    "val_accuracy": ("final validation accuracy", True, True),
    "train_accuracy": ("training accuracy", True, True),
    "test_loss": ("test cross-entropy", False, False),
    "weight_norm": ("weight norm", False, False),
    "epochs_trained": ("number of epochs trained", False, False),
}


def setting(kind: str, value: float) -> str:
    """"λ = 0.0001" or "rate 0.5"."""
    return f"λ = {value:g}" if kind == "l2" else f"rate {value:g}"


def network_name(kind: str, value: float) -> str:
    """"λ = 0.01" or "rate-0.5" (as in "the λ = 0.01 network")."""
    return f"λ = {value:g}" if kind == "l2" else f"rate-{value:g}"


def label(name: str, result=None) -> str:
    """A method's name in tables, with its chosen setting where it has one."""
    text = LABELS.get(name, name)
    if result is None:
        return text
    settings = result["settings"].get(name, {})
    if "l2" in settings:
        text += f" ({setting('l2', settings['l2'])})"
    if "dropout" in settings:
        text += f" ({setting('dropout', settings['dropout'])})"
    if "weight_decay" in settings:
        text += f" (d = {settings['weight_decay']:.3g})"
    if "patience" in settings:
        text += f" (patience {settings['patience']})"
    return text


# --------------------------------------------------------------------------
# Comparisons


def compare(result, first: str, second: str, score: str = "test_accuracy") -> stats.Comparison:
    """``first`` against ``second`` on ``score``, paired over the seeds."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    scores = result["scores"]
    return stats.compare(scores[first][score], scores[second][score],
                         names=(SUBJECTS.get(first, first), SUBJECTS.get(second, second)),
                         paired=True, higher_is_better=SCORES[score][1])


def verdict(comparison: stats.Comparison, score: str = "test_accuracy") -> str:
    """The helper's sentence for a comparison on ``score``."""
    percent = SCORES[score][2]
    return comparison.sentence(metric=SCORES[score][0], percent=percent, digits=2 if percent else 2)


def summary(values, score: str) -> str:
    """"mean ± std (n=k)" of one score through the statistics helper."""
    percent = SCORES.get(score, ("", True, False))[2]
    return stats.summary(values).text(digits=2 if percent else 3, percent=percent)


# --------------------------------------------------------------------------
# Tables


def _cell(values, percent: bool, digits: int = 2) -> str:
    return mean_std(values, digits=digits, percent=percent, count=False)


def sweep_table(result):
    """Each strength of a sweep: validation and training scores over the sweep's seeds."""
    kind = result["kind"]
    rows = []
    for value, name in zip(result["values"], result["variants"]):
        run = result["scores"][name]
        gap = np.asarray(run["train_accuracy"]) - np.asarray(run["val_accuracy"])
        shown = f"{value:g}" + (" (chosen)" if name == result["chosen_name"] else "")
        rows.append([shown, _cell(run["val_accuracy"], True), _cell(run["best_val_accuracy"], True),
                     _cell(run["train_accuracy"], True), _cell(gap, True),
                     _cell(run["weight_norm"], False, 2)])
    head = "λ" if kind == "l2" else "Dropout rate"
    note = (f"Mean ± sample standard deviation over {count(len(result['seeds']), 'seed')} of the sweep "
            f"(seeds {', '.join(str(s) for s in result['seeds'])}), after "
            f"{count(result['histories'][result['variants'][0]][0]['val_loss'].__len__(), 'epoch')}. "
            "The chosen setting has the highest mean final validation accuracy; the test set is not used.")
    return markdown(rows, (head, "Final validation accuracy", "Best validation accuracy",
                           "Training accuracy", "Train − validation gap", "Weight norm"), note=note)


def summary_table(result):
    """Every method: test accuracy, gap, epochs trained, weight norm."""
    rows = []
    for name in result["variants"]:
        run = result["scores"][name]
        rows.append([label(name, result), _cell(run["test_accuracy"], True), _cell(run["gap"], True),
                     _cell(run["train_accuracy"], True), _cell(run["epochs_trained"], False, 1),
                     _cell(run["weight_norm"], False, 2)])
    note = (f"Mean ± sample standard deviation over {count(len(result['seeds']), 'seed')}; the gap is "
            "training accuracy minus test accuracy of the weights each run ends with.")
    return markdown(rows, ("Method", "Test accuracy", "Train − test gap", "Training accuracy",
                           "Epochs trained", "Weight norm"), note=note)


def sizes_table(result):
    """Test accuracy and gap of both networks at every training-set size."""
    rows = []
    for size in result["train_sizes"]:
        base, regular = (result["scores"][f"{name}@{size}"] for name in ("baseline", "regularised"))
        used = result["sizes"][f"baseline@{size}"]["train"]
        rows.append([f"{used:,}", _cell(base["test_accuracy"], True), _cell(regular["test_accuracy"], True),
                     _cell(base["gap"], True), _cell(regular["gap"], True)])
    shown = setting(result["regulariser"], result["strength"])
    note = (f"The regularised network uses {LABELS[result['regulariser']]} ({shown}). Mean ± sample "
            f"standard deviation over {count(len(result['seeds']), 'seed')}.")
    return markdown(rows, ("Training images", "Test accuracy, none", "Test accuracy, regularised",
                           "Gap, none", "Gap, regularised"), note=note)


# --------------------------------------------------------------------------
# Sentences computed from the results


def overfitting(result, name: str = "baseline") -> str:
    """What the learning curves of ``name`` show, worded from its histories:
    whether the validation loss rose after its lowest point while the
    training loss kept falling (means over seeds)."""
    histories = result["histories"][name]
    validation = np.mean([h["val_loss"] for h in histories], axis=0)
    train = np.mean([h["train_loss"] for h in histories], axis=0)
    lowest = int(np.argmin(validation))
    if not np.all(np.isfinite(validation)):
        return "some runs diverged, so the mean learning curves say nothing about overfitting"
    if lowest == len(validation) - 1:
        return ("the mean validation loss was still at its lowest after the last epoch, so within "
                "this budget the network has not started to overfit by that measure")
    rise = validation[-1] - validation[lowest]
    falling = "kept falling" if train[-1] < train[lowest] else "did not fall further"
    return (f"the mean validation loss was lowest after epoch {lowest + 1} and ended {rise:.3g} higher, "
            f"while the training loss {falling} (from {train[lowest]:.3g} to {train[-1]:.3g})")


def sweep_effect(result, index: int = -1) -> str:
    """The setting at ``index`` (default: the strongest) against the weakest,
    on final validation accuracy, paired over the sweep's seeds."""
    names, kind, values = result["variants"], result["kind"], result["values"]
    comparison = stats.compare(result["scores"][names[index]]["val_accuracy"],
                               result["scores"][names[0]]["val_accuracy"],
                               names=(f"the {network_name(kind, values[index])} network",
                                      f"the {network_name(kind, values[0])} network"),
                               paired=True)
    return comparison.sentence(metric="final validation accuracy", digits=2)


def sweep_verdicts(result) -> str:
    """Full sentences: the chosen and the strongest setting against the weakest."""
    chosen = result["variants"].index(result["chosen_name"])
    last = len(result["variants"]) - 1
    weakest = network_name(result["kind"], result["values"][0])
    if chosen == 0:
        opening = f"The chosen setting is the weakest one, {weakest}. Against it, "
        return opening + sweep_effect(result) + "."
    text = f"Against the weakest setting, {weakest}, {sweep_effect(result, chosen)}"
    if chosen != last:
        text += f"; and {sweep_effect(result)}"
    return text + "."


#: Relative errors below this are float32 rounding (about 100 units of 2⁻²⁴).
FLOAT32_TOLERANCE = 1e-4


def rounding(error: float, scale: float = 1.0) -> str:
    """Whether a difference between a formula and Keras is rounding or more."""
    return ("the size of float32 rounding" if error <= FLOAT32_TOLERANCE * max(scale, 1e-30)
            else "more than float32 rounding explains")


def dropout_sentence(check: dict) -> str:
    """The numerical dropout check's outcome, worded from it."""
    where = (f"every unit's mean over the masks lay within {check['max_z']:.2f} standard errors of h"
             if check["passed"] else
             f"some unit's mean over the masks lay {check['max_z']:.2f} standard errors from h, "
             f"beyond the {check['threshold']:.3g} a correct layer exceeds with probability "
             f"{100 * check['false_alarm']:g}%: the layer does not preserve the mean")
    return where


def early_stopping(result) -> dict:
    """Epochs early stopping saved and what it did to test accuracy."""
    epochs = result["histories"]["baseline"][0]["val_loss"].__len__()
    trained = np.asarray(result["scores"]["early_stopping"]["epochs_trained"], dtype=float)
    saved = stats.summary(epochs - trained)
    return {"epochs": epochs, "saved": saved.text(digits=1, count=False),
            "saved_share": float(np.mean(epochs - trained) / epochs),
            "stopped_early": int(np.sum(trained < epochs)), "runs": int(trained.size),
            "verdict": verdict(compare(result, "early_stopping", "baseline", "test_accuracy")),
            "gap": verdict(compare(result, "early_stopping", "baseline", "gap"), "gap")}


def size_verdicts(result) -> list[str]:
    """Regularised against plain at each size, on test accuracy."""
    lines = []
    for size in result["train_sizes"]:
        a, b = (result["scores"][f"{name}@{size}"]["test_accuracy"] for name in ("regularised", "baseline"))
        used = result["sizes"][f"baseline@{size}"]["train"]
        comparison = stats.compare(a, b, names=("the regularised network", "the plain one"), paired=True)
        lines.append(f"with {used:,} training images, {comparison.sentence(metric='test accuracy', digits=2)}")
    return lines


def size_trend(result) -> str:
    """Whether the regularisation's gain is smaller at the largest size than at the smallest."""
    sizes = result["train_sizes"]

    def gains(size):
        return (np.asarray(result["scores"][f"regularised@{size}"]["test_accuracy"], dtype=float)
                - np.asarray(result["scores"][f"baseline@{size}"]["test_accuracy"], dtype=float))

    small, large = (result["sizes"][f"baseline@{size}"]["train"] for size in (sizes[0], sizes[-1]))
    comparison = stats.compare(gains(sizes[0]), gains(sizes[-1]),
                               names=(f"the gain at {small:,} images", f"the gain at {large:,} images"),
                               paired=True)
    return comparison.sentence(metric="regularisation gain in test accuracy", digits=2)


REGULARISERS = ("early_stopping", "l2", "dropout")


def conclusions(result) -> str:
    """The chapter's conclusions, each worded from a paired comparison."""
    lines = []
    for name in REGULARISERS:
        accuracy = compare(result, name, "baseline", "test_accuracy")
        gap = compare(result, name, "baseline", "gap")
        lines.append(f"- Against no regularisation, {verdict(accuracy)}; and {verdict(gap, 'gap')}.")
    lines.append(f"- With Adam, {verdict(compare(result, 'adamw', 'adam_l2'))}; "
                 f"{verdict(compare(result, 'adamw', 'adam_l2', 'weight_norm'), 'weight_norm')}.")
    return "\n".join(lines)


def best_method(result) -> str:
    """The method with the highest mean test accuracy, said as a fact about
    this table only (the verdicts above say which differences are clear)."""
    means = {name: stats.summary(result["scores"][name]["test_accuracy"]).mean for name in result["variants"]}
    finite = {name: value for name, value in means.items() if np.isfinite(value)}
    if not finite:
        return "every run diverged, so no method has a mean test accuracy"
    best = max(finite, key=finite.get)
    return f"the highest mean test accuracy is that of {label(best, result)}"


def budget_callout(profile, result, sweep) -> str:
    """What the profile's budget allows, for a callout (profile caveats only under their profile)."""
    epochs = result.provenance["config"]["epochs"]
    lines = [f"This copy was built with the **{profile.name}** profile: "
             f"{count(epochs, 'epoch')}, {count(len(result['seeds']), 'seed')} per method and "
             f"{count(len(sweep['seeds']), 'seed')} per sweep point, on {result['data']['train']:,} "
             "training images."]
    if profile.name == "smoke":
        lines.append("That is too little training for anything to overfit: under the `smoke` "
                     "profile the figures and sentences only show that the code runs; the "
                     "comparisons mean something at the default and full profiles.")
    elif profile.name == "default":
        lines.append("The `full` profile trains the coursework's 40 epochs on all of MNIST and sweeps "
                     "every strength of its linspace(1e-6, 1e-3, 5); this profile trains fewer images "
                     "for fewer epochs and sweeps fewer strengths, to keep the chapter's training "
                     "within about a quarter of an hour on a laptop CPU.")
    return budget_note(lines)
