"""Tables, comparisons and exports of the MLP chapter (chapters/mlp.qmd).

* :func:`compare` / :func:`verdict` — two variants on one score, paired over
  seeds through :mod:`analysis.stats` (the book's one statistics helper);
* :func:`optimizer_table`, :func:`layer_norm_table`, :func:`sweep_table`,
  :func:`recompiled_table` — the chapter's tables;
* :func:`parameter_formula`, :func:`derived_parameters`,
  :func:`parameter_table` — parameter counts derived with SymPy and checked
  against the counts Keras reported for the trained models;
* :func:`history_csv` — every per-epoch history of one or more results as CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import sympy as sp

from analysis import stats
from analysis.symbolic.counting import D, H, K, NU_HIDDEN, NU_INPUT, PARAMETER_COUNT
from analysis.tables import budget_note, count, markdown, mean_std

#: How the book names each variant of the chapter's experiments (tables, legends).
LABELS = {
    "adam": "Adam",
    "adagrad": "AdaGrad",
    "plain": "no layer norm",
    "layer_norm_before_relu": "layer norm before the ReLU",
    "layer_norm_after_relu": "layer norm after the ReLU (the assignment's)",
}

#: How a verdict sentence names them ("X's test accuracy is higher than Y's").
SUBJECTS = {
    "plain": "the plain MLP",
    "layer_norm_before_relu": "the pre-activation variant",
    "layer_norm_after_relu": "the post-ReLU variant",
}

#: Scores kept for every run, how to read them, and which direction is better.
SCORES = {
    "final_train_loss": ("training loss after the last epoch", False),
    "final_train_accuracy": ("training accuracy after the last epoch", True),
    "best_val_accuracy": ("best validation accuracy", True),
    "test_loss": ("test loss", False),
    "test_accuracy": ("test accuracy", True),
}


def _optimizer_label(name: str) -> str:
    return LABELS.get(name.removesuffix("_tuned"), name)


def _get(result, key: str, default=None):
    """``result[key]`` for a Result or a dict, ``default`` when it has no such entry."""
    try:
        return result[key]
    except KeyError:
        return default


def label(name: str, result=None) -> str:
    """A variant's name in tables and legends; given the result that trained it,
    an optimizer variant shows its learning rate ("AdaGrad, η = 0.1")."""
    rates = _get(result, "learning_rates", {}) if result is not None else {}
    if name in rates and name not in SUBJECTS:
        return f"{_optimizer_label(name)}, η = {rates[name]:g}"
    return LABELS.get(name, name)


def subject(name: str) -> str:
    """A variant as the subject of a verdict sentence."""
    return SUBJECTS.get(name, _optimizer_label(name))


def _format(values, digits: int, percent: bool) -> str:
    """"mean ± std" (sample std) without the sample count, which the table's note gives."""
    return mean_std(values, digits=digits, percent=percent, count=False)


def _is_percent(score: str) -> bool:
    return "accuracy" in score


# --------------------------------------------------------------------------
# Comparisons over seeds, through the book's statistics helper


def compare(result_scores: dict, first: str, second: str, score: str) -> stats.Comparison:
    """``first`` against ``second`` on ``score`` (a key of :data:`SCORES`), paired over seeds.

    Paired, because seed i gives every variant the same initial Dense weights
    and the same mini-batches (``experiments.mlp.train_one``).
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    return stats.compare(result_scores[first][score], result_scores[second][score],
                         names=(subject(first), subject(second)), paired=True,
                         higher_is_better=SCORES[score][1])


def verdict(comparison: stats.Comparison, score: str) -> str:
    """The helper's sentence for a comparison made by :func:`compare` on ``score``."""
    percent = _is_percent(score)
    return comparison.sentence(metric=SCORES[score][0], percent=percent, digits=2 if percent else 3)


# --------------------------------------------------------------------------
# Tables of scores


def _score_rows(names, scores, display_names) -> list[list[str]]:
    rows = []
    for name, shown in zip(names, display_names):
        run = scores[name]
        rows.append([
            shown,
            _format(run["final_train_loss"], 4, False),
            _format(run["best_val_accuracy"], 2, True),
            _format(run["best_epoch"], 1, False),
            _format(run["test_loss"], 4, False),
            _format(run["test_accuracy"], 2, True),
        ])
    return rows


_SCORE_HEADERS = ("Model", "Training loss (last epoch)", "Best validation accuracy",
                  "Best epoch", "Test loss", "Test accuracy")


def _note(result) -> str:
    seeds = len(result["seeds"])
    return (f"Mean ± sample standard deviation over {seeds} seeds. Test scores use the "
            f"weights of each run's best validation epoch. Data: {result.data_source()}")


def _roles(result, name: str) -> str:
    """"default rate", "tuned rate" or both, for an optimizer variant."""
    roles = [role for role, key in (("default rate", "defaults"), ("tuned rate", "tuned"))
             if name in _get(result, key, {}).values()]
    return " and ".join(roles) or "—"


def optimizer_table(result):
    """Training, validation and test scores of each optimizer setting over the seeds."""
    names = result["variants"]
    rows = _score_rows(names, result["scores"], [label(n, result) for n in names])
    rows = [[row[0], _roles(result, name), *row[1:]] for row, name in zip(rows, names)]
    return markdown(rows, (_SCORE_HEADERS[0], "Setting", *_SCORE_HEADERS[1:]), note=_note(result),
                    align=("left", "left") + ("right",) * 5)


def sweep_table(sweep, comparison=None):
    """Every rate of the sweep with its best validation accuracy; the chosen rate marked."""
    rows = []
    for optimizer, rates in sweep["rates"].items():
        for rate in rates:
            run = sweep["scores"][f"{optimizer}@{rate:g}"]
            marks = [mark for mark, applies in (
                ("Keras default", np.isclose(rate, sweep["default_rates"][optimizer])),
                ("**chosen**", np.isclose(rate, sweep["chosen"][optimizer]))) if applies]
            rows.append([LABELS[optimizer], f"{rate:g}", _format(run["best_val_accuracy"], 2, True),
                         ", ".join(str(int(epoch)) for epoch in run["best_epoch"]),
                         ", ".join(marks)])
    epochs = sweep.provenance["config"]["epochs"]
    note = (f"One run per rate (seed {sweep['seeds'][0]}, which the comparison does not use), "
            f"{count(epochs, 'epoch')} each; the test set is not used. Data: {sweep.data_source()}")
    return markdown(rows, ("Optimizer", "Learning rate η", "Best validation accuracy",
                           "Best epoch", ""), note=note,
                    align=("left", "right", "right", "right", "left"))


def layer_norm_scores(optimizers_result, layer_norm_result) -> tuple[list[str], dict]:
    """The plain model (the optimizer setting the layer-norm experiment used) and the
    layer-normalized ones: names and scores, in that order."""
    names = ["plain", *layer_norm_result["variants"]]
    scores = {"plain": optimizers_result["scores"][layer_norm_result["plain"]],
              **layer_norm_result["scores"]}
    return names, scores


def layer_norm_histories(optimizers_result, layer_norm_result) -> dict[str, list]:
    """Per-seed histories by display name, the plain model first (for the figures)."""
    histories = {label("plain"): optimizers_result["histories"][layer_norm_result["plain"]]}
    for name in layer_norm_result["variants"]:
        histories[label(name)] = layer_norm_result["histories"][name]
    return histories


def layer_norm_table(optimizers_result, layer_norm_result):
    """Plain against layer-normalized MLPs, same optimizer setting and seeds."""
    if list(optimizers_result["seeds"]) != list(layer_norm_result["seeds"]):
        raise ValueError("the two results were trained on different seeds")
    names, scores = layer_norm_scores(optimizers_result, layer_norm_result)
    optimizer = label(layer_norm_result["plain"], optimizers_result)
    rows = _score_rows(names, scores, [label(n) for n in names])
    return markdown(rows, _SCORE_HEADERS, align=("left",) + ("right",) * 5,
                    note=f"All trained with {optimizer}. " + _note(layer_norm_result))


# --------------------------------------------------------------------------
# The coursework's sequence (experiments.mlp.recompiled)


def recompiled_scores(recompiled, optimizers_result) -> dict:
    """What the coursework saw and what a fresh AdaGrad run of the same seed gives.

    The recompiled run's "validation" scores are test scores (the coursework
    validated on the test set); the fresh AdaGrad run is the comparison's run
    of the same seed at the same (default) rate, scored once on the test set.
    """
    adam, adagrad = (recompiled["histories"][phase]["val_accuracy"] for phase in ("adam", "adagrad"))
    seed_index = list(optimizers_result["seeds"]).index(recompiled["seed"])
    fresh = optimizers_result["scores"]["adagrad"]["test_accuracy"][seed_index]
    return {"adam_last": adam[-1], "adam_best": max(adam), "continued_last": adagrad[-1],
            "continued_best": max(adagrad), "fresh_adagrad": fresh, "epochs": len(adam)}


def recompiled_table(recompiled, optimizers_result):
    """The two phases of the coursework's run beside AdaGrad trained from fresh weights."""
    scores = recompiled_scores(recompiled, optimizers_result)
    epochs = scores["epochs"]
    rows = [
        ["Adam (the coursework's first model)", f"1–{epochs}",
         f"{100 * scores['adam_last']:.2f}%", f"{100 * scores['adam_best']:.2f}%"],
        ["“AdaGrad”: the same model recompiled, continuing from Adam's weights",
         f"{epochs + 1}–{2 * epochs}", f"{100 * scores['continued_last']:.2f}%",
         f"{100 * scores['continued_best']:.2f}%"],
        ["AdaGrad from the seed's fresh initial weights (@tbl-mlp-optimizers)", f"1–{epochs}",
         f"{100 * scores['fresh_adagrad']:.2f}%", "—"],
    ]
    note = (f"Seed {recompiled['seed']}, Keras's default rates. The first two rows are one "
            "training run validated on the test set, as in the coursework; the last row is this "
            "chapter's protocol (best validation epoch restored, test set used once). "
            f"Data: {recompiled.data_source()}")
    return markdown(rows, ("Model", "Epochs", "Test accuracy at the end", "Best test accuracy seen"),
                    note=note, align=("left", "right", "right", "right"))


def recompiled_sentence(recompiled, optimizers_result) -> str:
    """What the coursework's sequence shows, in one sentence computed from the run."""
    scores = recompiled_scores(recompiled, optimizers_result)
    continued, adam, fresh = scores["continued_best"], scores["adam_best"], scores["fresh_adagrad"]
    if not all(np.isfinite([continued, adam, fresh])):
        return "a run of this reproduction diverged, so it shows nothing about the comparison"
    if continued > adam:
        seen = (f"the recompiled “AdaGrad” model's best test accuracy, {100 * continued:.2f}%, "
                f"beats Adam's {100 * adam:.2f}% by {100 * (continued - adam):.2f} points — the "
                "coursework's finding, reproduced")
    else:
        seen = (f"here the recompiled “AdaGrad” model's best test accuracy, "
                f"{100 * continued:.2f}%, does not beat Adam's {100 * adam:.2f}%, so this seed "
                "does not reproduce the coursework's finding")
    return (f"{seen}; AdaGrad trained from the same fresh weights as Adam reaches "
            f"{100 * fresh:.2f}%, so what the recompiled run measures is Adam's network "
            f"trained for {count(scores['epochs'], 'more epoch')}")


# --------------------------------------------------------------------------
# Parameter counts


def parameter_formula() -> sp.Expr:
    """P(D, H, K) for Flatten → [LN] → Dense(H) → [LN] → ReLU → Dense(K): the
    displayed eq-mlp-parameters, whose check lives in analysis.symbolic.

    ν_in and ν_h are 1 when the input, respectively the hidden layer, is
    layer-normalized, else 0.
    """
    return PARAMETER_COUNT


#: Where each variant puts layer normalization: (ν_in, ν_h).
PLACEMENTS = {
    "plain": (0, 0), "layer_norm_before_relu": (1, 1), "layer_norm_after_relu": (1, 1),
}


def derived_parameters(variant: str, inputs: int = 784, hidden: int = 100, classes: int = 10) -> int:
    """The formula evaluated for a variant of the chapter."""
    nu_input, nu_hidden = PLACEMENTS[variant]
    value = parameter_formula().subs({D: inputs, H: hidden, K: classes,
                                      NU_INPUT: nu_input, NU_HIDDEN: nu_hidden})
    return int(value)


def parameter_table(optimizers_result, layer_norm_result, inputs: int = 784, hidden: int = 100,
                    classes: int = 10):
    """Each model's count from the formula against ``model.count_params()`` of the trained model."""
    counted = {"plain": optimizers_result["parameters"][optimizers_result["variants"][0]],
               **layer_norm_result["parameters"]}
    rows = []
    for name, keras_count in counted.items():
        nu_input, nu_hidden = PLACEMENTS[name]
        expression = parameter_formula().subs({NU_INPUT: nu_input, NU_HIDDEN: nu_hidden})
        derived = derived_parameters(name, inputs, hidden, classes)
        rows.append([label(name), f"${sp.latex(expression)}$", f"{derived:,}",
                     f"{keras_count:,}", "yes" if derived == keras_count else "**no**"])
    return markdown(rows, ("Model", "Formula", f"Derived (D={inputs}, H={hidden}, K={classes})",
                           "Keras `count_params()`", "Equal"),
                    align=("left", "left", "right", "right", "center"))


def parameters_agree(optimizers_result, layer_norm_result) -> bool:
    """Whether every derived count equals the trained model's count."""
    counted = {"plain": optimizers_result["parameters"][optimizers_result["variants"][0]],
               **layer_norm_result["parameters"]}
    return all(derived_parameters(name) == count for name, count in counted.items())


# --------------------------------------------------------------------------
# Per-epoch histories as CSV


def history_rows(*results) -> list[dict]:
    """One row per (experiment, variant, seed, epoch) with every metric of the history."""
    rows = []
    for result in results:
        for name in result["variants"]:
            for seed, history in zip(result["seeds"], result["histories"][name]):
                for epoch in range(len(next(iter(history.values())))):
                    row = {"experiment": result.experiment, "variant": name, "seed": seed,
                           "epoch": epoch + 1}
                    row.update({metric: values[epoch] for metric, values in sorted(history.items())})
                    rows.append(row)
    return rows


def history_csv(*results, path: str | Path | None = None) -> str:
    """Every per-epoch history of the results as CSV text (also written to ``path`` if given).

    Columns: experiment, variant, seed, epoch, then the metrics (``loss`` and
    ``accuracy`` are Keras's running means over the epoch; ``train_*`` the
    re-evaluated training metrics; ``val_*`` validation).
    """
    rows = history_rows(*results)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


# --------------------------------------------------------------------------
# The chapter's observations, worded from the comparisons' outcomes


def _who_wins(comparison: stats.Comparison) -> str:
    """A short clause on a comparison's outcome (its numbers are in the chapter's tables)."""
    a, b = comparison.names
    return {
        "a_better": f"{a} is clearly ahead of {b}",
        "b_better": f"{b} is clearly ahead of {a}",
        "tie": f"{a} and {b} are tied",
        "unclear": f"the seeds do not separate {a} and {b}",
        "single": f"a single seed cannot separate {a} and {b}",
        "empty": f"every run of {a} or {b} diverged",
    }[comparison.outcome]


def optimizer_observation(at_default: stats.Comparison, at_tuned: stats.Comparison) -> str:
    """What the default-rate and tuned-rate comparisons (of test accuracy) say together."""
    text = (f"At Keras's default rate {_who_wins(at_default)} on the test set, while with each "
            f"rate tuned on validation data {_who_wins(at_tuned)} (@tbl-mlp-optimizers)")
    gaps = [abs(c.difference) for c in (at_default, at_tuned)]
    if not all(np.isfinite(gaps)) or gaps[0] == 0:
        return text + "."
    if gaps[1] <= gaps[0] / 2:
        return (text + f": tuning shrinks the mean gap to {gaps[1] / gaps[0]:.0%} of its size, so "
                "most of the default-rate difference belongs to the learning rate, not to the "
                "optimizer.")
    return (text + ": tuning does not shrink the mean gap by half, so the difference belongs to "
            "the optimizers and not only to their default rates.")


def recompiled_observation(recompiled, optimizers_result) -> str:
    """Whether the coursework's sequence explains its finding on this run."""
    scores = recompiled_scores(recompiled, optimizers_result)
    if scores["continued_best"] > scores["adam_best"] and scores["fresh_adagrad"] < scores["adam_best"]:
        return ("The coursework's opposite finding is explained by its protocol: recompiling "
                "the same model let “AdaGrad” start from Adam's trained weights, and the test set "
                "chose what was reported (@tbl-mlp-coursework).")
    return ("On this run the coursework's sequence does not by itself produce its finding "
            "(@tbl-mlp-coursework); the recompiled model still reused Adam's weights and the test "
            "set still served as validation data, so its comparison was not a valid one.")


def overfitting_observation(result, variant: str) -> str:
    """When the validation loss stopped falling, against the training loss (mean over seeds)."""
    histories = result["histories"][variant]
    validation = np.mean([h["val_loss"] for h in histories], axis=0)
    train = np.mean([h["train_loss"] for h in histories], axis=0)
    if not np.all(np.isfinite(validation)):
        return "Some runs diverged, so the learning curves say nothing about overfitting."
    best, last = int(np.argmin(validation)), len(validation) - 1
    if best == last:
        return ("The mean validation loss was still falling at the last epoch (@fig-mlp-loss): "
                "within this budget the network has not started to overfit.")
    falling = "kept falling" if train[last] < train[best] else "stopped falling too"
    return (f"The mean validation loss was lowest after epoch {best + 1} of {last + 1} and rose "
            f"afterwards while the training loss {falling} (@fig-mlp-loss): the network starts "
            "to fit its training digits rather than digits in general, which is why each run's "
            "best validation epoch is restored before testing.")


def layer_norm_observation(before: stats.Comparison, after: stats.Comparison,
                           placement: stats.Comparison) -> str:
    """Layer norm against the plain MLP, and the two placements against each other.

    Each comparison is of test accuracy, the variant first: (pre-activation,
    plain), (post-ReLU, plain), (pre-activation, post-ReLU).
    """
    return (f"In test accuracy {_who_wins(before)}, {_who_wins(after)}, and "
            f"{_who_wins(placement)} (@tbl-mlp-layernorm).")


# --------------------------------------------------------------------------
# What this build's budget can say (a callout; profile lines only under their profile)


def budget_callout(profile, optimizers_result, sweep, comparisons) -> str:
    """The callout text for ``profile`` (a :class:`analysis.profiles.Profile`).

    A line about a profile appears only in a build with that profile, so a
    default or full build never carries the smoke warning.
    """
    from analysis import profiles

    epochs = optimizers_result.provenance["config"]["epochs"]
    sweep_epochs = sweep.provenance["config"]["epochs"]
    lines = [f"This copy was built with the **{profile.name}** profile: {count(epochs, 'epoch')} "
             f"and {count(len(optimizers_result['seeds']), 'seed')} on "
             f"{optimizers_result['data']['train']:,} training images, a sweep of one run per "
             f"rate for {count(sweep_epochs, 'epoch')}."]
    if profile.name == "smoke":
        lines.append("Under the `smoke` profile the numbers only show that the code runs; "
                     "the comparisons mean something at the default and full profiles.")
    elif profile.name == "default":
        full = profiles.get("full")
        lines.append(f"The `full` profile uses {count(full.seeds, 'seed')} and sweeps for "
                     f"{count(full.mlp.sweep_epochs, 'epoch')}; this profile uses fewer to keep "
                     "the chapter's training within a laptop CPU's budget.")
    if any(comparison.n < 3 for comparison in comparisons):
        lines.append("With fewer than three seeds a 95% interval is very wide, so few "
                     "differences can count as clear.")
    return budget_note(lines)
