"""Figures of the backpropagation chapter (chapters/backprop.qmd)."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from analysis import scratch, stats
from analysis.plots.common import source_footer

def _finish(figure):
    """Close the figure before a chapter cell returns it, so that Jupyter's
    inline backend does not show it a second time."""
    plt.close(figure)
    return figure


#: Line styles that keep coinciding curves (ReLU and tanh both give 1)
#: distinguishable.
_STYLES = ("-", "--", ":", "-.")


def gradient_bound(depths: Sequence[int], curves: Mapping[str, np.ndarray], next_chapter: str = ""):
    """(sup f')^L against the depth L on a log scale, one line per activation.

    ``curves`` maps an activation's title to its bound at each depth
    (``symbolic.gradient_bound_curve``).
    """
    figure, axis = plt.subplots()
    for index, (title, values) in enumerate(curves.items()):
        axis.plot(depths, values, _STYLES[index % len(_STYLES)], label=title, linewidth=2)
    axis.set_yscale("log")
    axis.set_xlabel("depth L (layers with the activation)")
    axis.set_ylabel(r"bound $(\sup\, f\,')^{L}$")
    axis.legend(fontsize="small")
    if next_chapter:
        axis.set_title(next_chapter)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    source_footer(figure, "none; exact bounds derived by SymPy")
    return _finish(figure)


def toy_loss(result, target: float = 0.02):
    """The toy problem's training loss per iteration, one line per seed."""
    losses = np.asarray(result["loss_history"])
    seeds = result.provenance["config"]["seeds"]
    figure, axis = plt.subplots()
    iterations = np.arange(1, losses.shape[1] + 1)
    for seed, loss in zip(seeds, losses):
        axis.plot(iterations, loss, label=f"seed {seed}", alpha=0.85)
    axis.axhline(target, color="0.3", linestyle="--", linewidth=1, label=f"loss {target:g}")
    axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_ylabel("training loss")
    axis.legend(fontsize="small")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    source_footer(figure, "toy problem, 5 random inputs")
    return _finish(figure)


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(int(window), len(values)))
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def training_curves(result):
    """The default CIFAR-10 network: the loss of every iteration (with its
    running mean over one epoch) and the accuracies recorded at each epoch."""
    loss = np.asarray(result["loss_history"])
    per_epoch = result["iterations_per_epoch"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    iterations = np.arange(1, len(loss) + 1)
    left.plot(iterations, loss, color="0.7", linewidth=0.8, label="every iteration")
    window = max(1, min(int(round(per_epoch)), len(loss)))
    smooth = _running_mean(loss, window)
    # Each mean is drawn at the middle of its window, so it does not lag.
    centres = iterations[window - 1:] - (window - 1) / 2
    left.plot(centres, smooth, linewidth=2, label=f"running mean over {window} iterations (one epoch)")
    left.set_xlabel("iteration")
    left.set_ylabel("training loss (mini-batch)")
    left.legend(fontsize="small")

    train = np.asarray(result["train_acc_history"])
    validation = np.asarray(result["val_acc_history"])
    epochs = np.arange(len(validation))
    right.plot(epochs, train, "o-", label="training (current mini-batch)")
    right.plot(epochs, validation, "s--", label="validation")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend(fontsize="small")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    source_footer(figure, result.data_source("cifar10"))
    return _finish(figure)


def first_layer_weights(panels: Mapping[str, np.ndarray], source: str, image_shape=(32, 32, 3)):
    """First-layer weights W1 (D, H) as one image per hidden unit, a grid per
    panel; ``panels`` maps a title to its W1."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.4), squeeze=False)
    for axis, (title, weights) in zip(axes.flat, panels.items()):
        images = scratch.weights_as_images(np.asarray(weights), image_shape)
        axis.imshow(scratch.image_grid(images, padding=2), interpolation="nearest")
        axis.set_title(title)
        axis.axis("off")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    source_footer(figure, source)
    return _finish(figure)


_FACTOR_LABELS = {
    "train_size": "training images",
    "hidden_size": "hidden units",
    "reg": "regularisation strength λ",
}


#: A panel's title for each direction of ``tables.backprop.GAP_DIRECTIONS``.
_VERDICTS = {
    "shrinks": "the gap shrinks",
    "widens": "the gap widens",
    "unchanged": "the gap is the same on every seed",
    "unclear": "no clear change in the gap",
    "single seed": "one seed: no verdict",
    "no finite runs": "every run diverged",
}


def generalization_gap(summary: Mapping[str, dict], source: str):
    """Training and test accuracy (mean ± std over seeds) at each level of
    each factor; the shaded band between them is the gap.

    ``summary`` is ``tables.backprop.gap_summary(result)``.
    """
    figure, axes = plt.subplots(1, len(summary), figsize=(4 * len(summary), 3.8), sharey=True, squeeze=False)
    for axis, (factor, item) in zip(axes.flat, summary.items()):
        levels = item["levels"]
        positions = np.arange(len(levels))
        means = {}
        for split, marker in (("train", "o-"), ("test", "s--")):
            # Diverged runs (NaN) are left out of the means, as in the table.
            summaries = [stats.summary(item[split][level]) for level in levels]
            mean = np.array([s.mean for s in summaries])
            std = np.array([s.std if s.n > 1 else 0.0 for s in summaries])
            axis.errorbar(positions, mean, yerr=std, fmt=marker, capsize=3,
                          label="training" if split == "train" else "test")
            means[split] = mean
        axis.fill_between(positions, means["test"], means["train"], alpha=0.15, color="0.4", label="gap")
        axis.set_xticks(positions, [f"{level:g}" for level in levels])
        axis.set_xlabel(_FACTOR_LABELS[factor])
        axis.set_title(_VERDICTS[item["direction"]], fontsize="small")
    axes.flat[0].set_ylabel("accuracy")
    axes.flat[0].legend(fontsize="small")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    source_footer(figure, source)
    return _finish(figure)
