"""Tables, comparisons and exports of the MLP chapter (chapters/mlp.qmd).

* :func:`compare` / :func:`verdict` — which of two variants did better on a
  score, judged against the spread over seeds (used for the prose);
* :func:`optimizer_table`, :func:`layer_norm_table` — mean ± std over seeds;
* :func:`parameter_equation`, :func:`derived_parameters`,
  :func:`parameter_table` — parameter counts derived with SymPy and checked
  against the counts Keras reported for the trained models;
* :func:`history_csv` — every per-epoch history of one or more results as CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp

from analysis.tables import markdown, mean_std

#: How the book names each variant of the chapter's experiments.
LABELS = {
    "adam": "Adam",
    "adagrad": "AdaGrad",
    "plain": "no layer norm",
    "layer_norm_input_hidden": "layer norm on input and hidden layer",
    "layer_norm_hidden": "layer norm on hidden layer only",
}

#: Scores kept for every run, how to read them, and which direction is better.
SCORES = {
    "final_train_loss": ("training loss after the last epoch", False),
    "final_train_accuracy": ("training accuracy after the last epoch", True),
    "best_val_accuracy": ("validation accuracy at its best epoch", True),
    "test_loss": ("test loss", False),
    "test_accuracy": ("test accuracy", True),
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def _format(values, digits: int, percent: bool) -> str:
    """"mean ± std" (sample std) without the sample count, which the table's note gives."""
    return mean_std(values, digits=digits, percent=percent, count=False)


def _is_percent(score: str) -> bool:
    return "accuracy" in score


# --------------------------------------------------------------------------
# Comparisons over seeds


@dataclass(frozen=True)
class Comparison:
    """Two variants on one score: who is better, by how much, and is it clear.

    The difference counts as clear when it is larger than the two sample
    standard deviations added, i.e. when the mean ± std intervals do not
    overlap; with three seeds this is a rough rule, not a test.
    """

    score: str
    better: str
    worse: str
    better_values: tuple[float, ...]
    worse_values: tuple[float, ...]

    @property
    def difference(self) -> float:
        return abs(float(np.mean(self.better_values)) - float(np.mean(self.worse_values)))

    @property
    def spread(self) -> float:
        stds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in (self.better_values, self.worse_values)]
        return float(sum(stds))

    @property
    def clear(self) -> bool:
        return len(self.better_values) > 1 and len(self.worse_values) > 1 and self.difference > self.spread


def compare(result_scores: dict, first: str, second: str, score: str) -> Comparison:
    """Compare ``first`` and ``second`` on ``score`` (a key of :data:`SCORES`)."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    higher_is_better = SCORES[score][1]
    a, b = (tuple(float(v) for v in result_scores[name][score]) for name in (first, second))
    first_better = np.mean(a) >= np.mean(b) if higher_is_better else np.mean(a) <= np.mean(b)
    return Comparison(score, *((first, second, a, b) if first_better else (second, first, b, a)))


def verdict(comparison: Comparison) -> str:
    """One sentence on a comparison, every number taken from it."""
    description = SCORES[comparison.score][0]
    percent = _is_percent(comparison.score)
    digits = 2 if percent else 4
    scale = 100.0 if percent else 1.0
    unit = " percentage points" if percent else ""
    seeds = len(comparison.better_values)
    gap = f"{comparison.difference * scale:.{digits}f}{unit}"
    spread = f"{comparison.spread * scale:.{digits}f}"
    judgement = (f"larger than the two standard deviations added ({spread}), so over {seeds} seeds "
                 "the difference is clear" if comparison.clear else
                 f"not larger than the two standard deviations added ({spread}), so {seeds} seeds "
                 "do not separate the two")
    return (f"{label(comparison.better)} has the better {description} "
            f"({_format(comparison.better_values, digits, percent)} against "
            f"{_format(comparison.worse_values, digits, percent)} for {label(comparison.worse)}); "
            f"the gap of {gap} is {judgement}")


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


def optimizer_table(result):
    """Training, validation and test scores of each optimizer over the seeds."""
    names = result["variants"]
    rows = _score_rows(names, result["scores"], [label(n) for n in names])
    return markdown(rows, _SCORE_HEADERS, note=_note(result), align=("left",) + ("right",) * 5)


def layer_norm_scores(optimizers_result, layer_norm_result) -> tuple[list[str], dict]:
    """The plain model (trained with the layer-norm experiment's optimizer) and the
    layer-normalized ones: names and scores, in that order."""
    optimizer = _optimizer_of(layer_norm_result)
    names = ["plain", *layer_norm_result["variants"]]
    scores = {"plain": optimizers_result["scores"][optimizer], **layer_norm_result["scores"]}
    return names, scores


def layer_norm_histories(optimizers_result, layer_norm_result) -> dict[str, list]:
    """Per-seed histories by display name, the plain model first (for the figures)."""
    optimizer = _optimizer_of(layer_norm_result)
    histories = {label("plain"): optimizers_result["histories"][optimizer]}
    for name in layer_norm_result["variants"]:
        histories[label(name)] = layer_norm_result["histories"][name]
    return histories


def _optimizer_of(layer_norm_result) -> str:
    optimizers = set(layer_norm_result["optimizers"].values())
    if len(optimizers) != 1:
        raise ValueError(f"expected one optimizer in the layer-norm result, found {sorted(optimizers)}")
    return optimizers.pop()


def layer_norm_table(optimizers_result, layer_norm_result):
    """Plain against layer-normalized MLPs, same optimizer and seeds."""
    if list(optimizers_result["seeds"]) != list(layer_norm_result["seeds"]):
        raise ValueError("the two results were trained on different seeds")
    names, scores = layer_norm_scores(optimizers_result, layer_norm_result)
    optimizer = label(_optimizer_of(layer_norm_result))
    rows = _score_rows(names, scores, [label(n) for n in names])
    return markdown(rows, _SCORE_HEADERS, align=("left",) + ("right",) * 5,
                    note=f"All trained with {optimizer}. " + _note(layer_norm_result))


# --------------------------------------------------------------------------
# Parameter counts


D, H, K = sp.symbols("D H K", positive=True, integer=True)
NU_INPUT, NU_HIDDEN = sp.symbols(r"\nu_{\mathrm{in}} \nu_{\mathrm{h}}", nonnegative=True, integer=True)


def _dense(inputs, outputs):
    """A Dense layer: one weight per input and output, one bias per output."""
    return (inputs + 1) * outputs


def _layer_norm(width):
    """A LayerNormalization layer: a gain and a bias per unit."""
    return 2 * width


def parameter_formula() -> sp.Expr:
    """P(D, H, K) for Flatten → [LN] → Dense(H) → [LN] → ReLU → Dense(K).

    ν_in and ν_h are 1 when the input, respectively the hidden layer, is
    layer-normalized, else 0.
    """
    return _dense(D, H) + _dense(H, K) + NU_INPUT * _layer_norm(D) + NU_HIDDEN * _layer_norm(H)


#: Where each variant puts layer normalization: (ν_in, ν_h).
PLACEMENTS = {
    "adam": (0, 0), "adagrad": (0, 0), "plain": (0, 0),
    "layer_norm_input_hidden": (1, 1), "layer_norm_hidden": (0, 1),
}


def derived_parameters(variant: str, inputs: int = 784, hidden: int = 100, classes: int = 10) -> int:
    """The formula evaluated for a variant of the chapter."""
    nu_input, nu_hidden = PLACEMENTS[variant]
    value = parameter_formula().subs({D: inputs, H: hidden, K: classes,
                                      NU_INPUT: nu_input, NU_HIDDEN: nu_hidden})
    return int(value)


def parameter_equation(label: str = "eq-mlp-parameters"):
    """The formula as a labelled display equation (the chapter passes ``label=`` literally,
    so the book check sees where the label is defined)."""
    from IPython.display import Markdown

    latex = sp.latex(parameter_formula())
    return Markdown(f"$$\nP = {latex}\n$$ {{#{label}}}")


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
