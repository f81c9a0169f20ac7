"""Tables and computed sentences of the CNN chapter (chapters/cnn.qmd).

Numbers come from the results of :mod:`analysis.experiments.cnn`; every
statement about seeds goes through :mod:`analysis.stats`, and every verdict
handles every outcome (a single seed, diverged runs, substitute data).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from analysis import pooling, profiles, stats
from analysis.tables import budget_note, count, markdown

#: How the chapter names the CIFAR-10 networks.
NET_LABELS = {
    "32-64-64": "32-64-64 (tutorial)",
    "a": "a) CONV-12",
    "b": "b) CONV-32, CONV-64, FC-128",
    "c": "c) [CONV-32]×2, [CONV-64]×2, FC-512",
    "d": "d) c with augmentation",
}

#: Published CIFAR-10 test accuracies (real CIFAR-10, full training set), as
#: reported in the cited papers: 100 % minus their test error.
PUBLISHED_CIFAR = (
    ("Network in Network, no augmentation", "lin2014", 1 - 0.1041),
    ("Network in Network, with augmentation", "lin2014", 1 - 0.0881),
    ("All-CNN-C, no augmentation", "springenberg2015", 1 - 0.0908),
    ("All-CNN-C, with augmentation", "springenberg2015", 1 - 0.0725),
    ("ResNet-110, with augmentation", "he2016", 1 - 0.0643),
)


def _shape(values) -> str:
    return "×".join(str(v) for v in values) if values is not None else "—"


# --------------------------------------------------------------------------
# Output sizes and parameter counts


def layer_table(checks, model: str):
    """Every layer of one model: Keras's output shape and count next to the formulas'."""
    rows = []
    for row in checks["layers"][model]:
        formula_shape = _shape(row["formula_shape"]) if row["formula_shape"] is not None else "—"
        formula_count = f"{row['formula_parameters']:,}" if row["formula_parameters"] is not None else "—"
        rows.append((f"`{row['layer']}`", row["kind"], _shape(row["input"]), _shape(row["keras_shape"]),
                     formula_shape, f"{row['keras_parameters']:,}", formula_count))
    return markdown(rows, ("Layer", "Kind", "Input", "Keras output", "Formula", "Keras parameters",
                           "Formula parameters"),
                    note="Formula: @eq-cnn-output-size or @eq-cnn-same-size for Conv2D and pooling layers, "
                         "@eq-cnn-conv-parameters for Conv2D, (n + 1)·m for Dense; — where the layer "
                         "keeps the shape or the chapter has no formula.",
                    align=("left", "left", "right", "right", "right", "right", "right"))


def layer_agreement(checks) -> dict:
    """How many layers were compared over all models, and how many disagree."""
    shapes = counts = shape_misses = count_misses = 0
    for rows in checks["layers"].values():
        for row in rows:
            if row["formula_shape"] is not None:
                shapes += 1
                shape_misses += row["formula_shape"] != row["keras_shape"]
            if row["formula_parameters"] is not None:
                counts += 1
                count_misses += row["formula_parameters"] != row["keras_parameters"]
    return {"models": len(checks["layers"]), "shapes": shapes, "counts": counts,
            "shape_misses": shape_misses, "count_misses": count_misses}


def agreement_sentence(checks) -> str:
    """Whether the formulas matched Keras on every layer and on the grid."""
    found = layer_agreement(checks)
    grid = checks["grid"]
    parts = [f"over the {found['models']} models, {found['shapes']} layer output shapes "
             f"and {found['counts']} parameter counts were compared with Keras's"]
    misses = found["shape_misses"] + found["count_misses"] + grid["mismatches"]
    if misses == 0:
        parts.append(f"all agree, as do the {grid['cases']:,} cases of the shape grid")
    else:
        parts.append(f"{found['shape_misses']} shapes, {found['count_misses']} counts and "
                     f"{grid['mismatches']} of the grid's {grid['cases']:,} cases disagree")
    return ": ".join(parts)


# --------------------------------------------------------------------------
# The worked pooling example


def matrix_table(matrix):
    """The example's matrix, one row per line."""
    matrix = np.asarray(matrix)
    rows = [[f"{value:g}" for value in row] for row in matrix]
    return markdown(rows, [f"col {j + 1}" for j in range(matrix.shape[1])], align=["right"] * matrix.shape[1])


def pooling_steps(checks, size: int):
    """One row per window: where it sits, its entries, their maximum and mean,
    and Keras's value for each."""
    matrix = np.asarray(checks["matrix"], dtype=float)
    keras_max = np.asarray(checks["pooling"][f"max_{size}"]["keras"])
    keras_mean = np.asarray(checks["pooling"][f"average_{size}"]["keras"])
    rows = []
    for window in pooling.windows(matrix, size):
        entries = " / ".join(" ".join(f"{v:g}" for v in row) for row in window.values)
        rows.append((f"({window.row + 1}, {window.column + 1})",
                     f"rows {window.top + 1}–{window.top + size}, cols {window.left + 1}–{window.left + size}",
                     entries, f"{window.maximum:g}", f"{keras_max[window.row, window.column]:g}",
                     f"{window.mean:.3f}", f"{keras_mean[window.row, window.column]:.3f}"))
    return markdown(rows, ("Output", "Window", "Entries (row / row / …)", "Max", "Keras max", "Mean",
                           "Keras mean"), align=("left", "left", "left", "right", "right", "right", "right"))


def pooled(checks, size: int, kind: str) -> str:
    """The pooled matrix as inline text: "[[8, 9], [9, 9]]"."""
    values = np.asarray(checks["pooling"][f"{kind}_{size}"]["by_hand"])
    digits = 0 if kind == "max" else 2
    return "[" + "; ".join(", ".join(f"{v:.{digits}f}" for v in row) for row in values) + "]"


def largest_difference(checks, key: str = "pooling") -> float:
    if key == "pooling":
        return max(entry["difference"] for entry in checks["pooling"].values())
    return max(value for entry in checks["backward"].values() for value in entry.values())


def rounding(value: float, tolerance: float = 1e-5) -> str:
    """Whether a difference is float32 rounding or a real disagreement."""
    if value <= tolerance:
        return f"within float32 rounding (at most {value:.1e})"
    return f"a disagreement of {value:.2g}, more than float32 rounding"


# --------------------------------------------------------------------------
# MNIST


def mnist_verdict(test_accuracies: Sequence[float], source: str, substitute: bool,
                  target: float = 0.99) -> str:
    """Whether every trained network reaches the target, said for every outcome;
    a result on substitute data says nothing about real MNIST."""
    summary = stats.summary(test_accuracies)
    values = np.asarray(test_accuracies, dtype=float)
    finite = values[np.isfinite(values)]
    bar = f"{100 * target:.1f}%"
    dropped = f" ({count(summary.dropped, 'diverged run')} left out)" if summary.dropped else ""
    if summary.n == 0:
        return f"no test accuracy on {source}: every run diverged, so the {bar} target is not met"
    if summary.n == 1:
        measured = f"the single network reached {100 * summary.mean:.2f}% on {source}{dropped}"
    else:
        measured = (f"the {summary.n} networks reached {summary.text(digits=2, percent=True, count=False)} "
                    f"on {source} (lowest {100 * finite.min():.2f}%; "
                    f"{summary.interval_text(digits=2, percent=True)}){dropped}")
    if substitute:
        return (f"{measured}; these are not the 60,000 MNIST training digits, so this run cannot tell "
                f"whether the {bar} target is met on real MNIST")
    above = int(np.sum(finite >= target))
    if above == len(values):
        who = "every network" if summary.n > 1 else "the network"
        return f"{measured}: the target is met: {who} reached at least {bar}"
    return f"{measured}: the target is not met: {above} of {len(values)} networks reached {bar}"


def run_time(seconds_per_image: float, images: int, epochs: int, seeds: int = 1) -> float:
    """Minutes of training for ``epochs`` epochs of ``images`` images, ``seeds`` times."""
    return seconds_per_image * images * epochs * seeds / 60


# --------------------------------------------------------------------------
# CIFAR-10


def cifar_table(result):
    """Per net: parameters, epochs, training/validation/test accuracy over seeds."""
    rows = []
    for net in result["nets"]:
        scores = result["scores"][net]
        rows.append((NET_LABELS[net], f"{result['parameters'][net]:,}",
                     stats.summary(scores["epochs_trained"]).text(digits=1, count=False),
                     *(stats.summary(scores[f"{split}_accuracy"]).text(digits=1, percent=True, count=False)
                       for split in ("train", "val", "test"))))
    seeds = len(result["seeds"])
    note = (f"Mean ± standard deviation over {count(seeds, 'seed')}; accuracies measured after training "
            f"in inference mode (no dropout, no augmentation), with the weights each run ends with. "
            f"Data: {result.data_source('cifar10')}.")
    return markdown(rows, ("Network", "Parameters", "Epochs", "Training", "Validation", "Test"), note=note,
                    align=("left", "right", "right", "right", "right", "right"))


def best_net(result) -> str:
    """The net with the highest mean validation accuracy (the test set chooses nothing)."""
    means = {net: stats.summary(result["scores"][net]["val_accuracy"]).mean for net in result["nets"]}
    finite = {net: value for net, value in means.items() if np.isfinite(value)}
    if not finite:
        return "no network produced a finite validation accuracy"
    net = max(finite, key=finite.get)
    return (f"by mean validation accuracy the best network is {NET_LABELS[net]} "
            f"({100 * finite[net]:.1f}%)")


def net_comparison(result, a: str, b: str, score: str = "test_accuracy") -> str:
    """Net a against net b over seeds (paired: seed i gives both the same batches order)."""
    scores = result["scores"]
    comparison = stats.compare(scores[a][score], scores[b][score], names=(NET_LABELS[a], NET_LABELS[b]))
    return comparison.sentence(score.replace("_", " ").replace("val ", "validation "))


def _times(number: int) -> str:
    return {0: "never", 1: "once"}.get(number, f"{number:,} times")


def confusion_sentence(pairs: list[dict]) -> str:
    """The most confused pairs of classes, with their share of all mistakes."""
    if not pairs:
        return "the network made no mistakes on these test images"
    items = [f"{a} and {b} ({p['mistakes']:,} mistakes, {100 * p['share']:.0f}% of all: {a} taken for {b} "
             f"{_times(p['forward'])}, {b} for {a} {_times(p['backward'])})"
             for p in pairs for a, b in [p["classes"]]]
    return "the pairs it confused most were " + "; ".join(items)


def published_table(result):
    """Published CIFAR-10 results next to this chapter's best net (chosen on validation)."""
    rows = [(name, f"@{key}", f"{100 * accuracy:.2f}%") for name, key, accuracy in PUBLISHED_CIFAR]
    means = {net: stats.summary(result["scores"][net]["val_accuracy"]).mean for net in result["nets"]}
    finite = {net: value for net, value in means.items() if np.isfinite(value)}
    if finite:
        net = max(finite, key=finite.get)
        test = stats.summary(result["scores"][net]["test_accuracy"])
        rows.append((f"This chapter: {NET_LABELS[net]}", result.data_source("cifar10"),
                     test.text(digits=1, percent=True)))
    return markdown(rows, ("Network", "Source", "Test accuracy"), align=("left", "left", "right"))


# --------------------------------------------------------------------------
# SVHN


def validation_phrase(used: int, wanted: int) -> str:
    """"7,326 images", or why fewer were drawn (a stand-in's small training set)."""
    if used == wanted:
        return f"{used:,} images"
    return (f"{used:,} images (the protocol's {wanted:,} would be more than the fifth of the "
            "training set that a split may take)")


def svhn_observations(result) -> list[str]:
    """What the feature-map figures show, computed from the maps themselves."""
    lines = []
    for entry in result["observations"]:
        size = "×".join(str(v) for v in entry["size"])
        line = (f"layer {entry['layer']} ({entry['filters']} filters, maps of {size}): "
                f"{100 * entry['zero_share']:.0f}% of the activations are zero after the ReLU")
        silent = entry["silent_filters"]
        if silent:
            line += (f", and {count(silent, 'filter')} {'is' if silent == 1 else 'are'} zero on every "
                     "shown image")
        else:
            line += ", and every filter responds to at least one shown image"
        correlations = np.asarray(entry.get("brightness_correlation", []), dtype=float)
        if correlations.size:
            finite = correlations[np.isfinite(correlations)]
            follows = int(np.sum(np.abs(finite) > 0.8))
            inverts = int(np.sum(finite < -0.8))
            line += (f"; {follows} of its filters give maps that follow the image's brightness closely "
                     f"(|correlation| above 0.8, {inverts} of them inverted), the others respond to "
                     "something other than brightness alone (edges or strokes, as far as maps this small show)")
        lines.append(line)
    return lines


def budget_callout(profile, mnist, cifar, svhn) -> str:
    """What this profile trained, against the original protocols (the `full` profile)."""
    budget = profile.cnn
    lines = [
        f"This copy was built with the **{profile.name}** profile. MNIST: "
        f"{count(budget.mnist_epochs, 'epoch')} on {mnist['sizes']['train']:,} training images, "
        f"{count(len(mnist['seeds']), 'seed')}. CIFAR-10: at most {count(budget.cifar_epochs, 'epoch')} "
        f"(early stopping with a patience of {budget.cifar_patience}) on {cifar['sizes']['train']:,} training, "
        f"{cifar['sizes']['validation']:,} validation and {cifar['sizes']['test']:,} test images, "
        f"{count(len(cifar['seeds']), 'seed')}. SVHN: at most {count(budget.svhn_epochs, 'epoch')} on "
        f"{svhn['sizes']['train']:,} training images, one seed."]
    if profile.name == "smoke":
        lines.append("That is far too little training for any network to learn much: under the `smoke` "
                     "profile the figures and sentences only show that the code runs.")
    elif profile.name == "default":
        full = profiles.get("full").cnn
        lines.append(f"The `full` profile runs the original protocols (CIFAR-10's 45,000/5,000/10,000 "
                     f"split, up to {count(full.cifar_epochs, 'epoch')}, {count(full.cifar_seeds, 'seed')}; "
                     "all of SVHN's training set); this profile trains on subsets for fewer epochs so "
                     "that the chapter's training fits in about 20 minutes on a 2-core CPU.")
    return budget_note(lines)
