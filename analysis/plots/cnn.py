"""Figures of the CNN chapter (chapters/cnn.qmd): learning curves of the
CIFAR-10 networks, confusion matrices, and the SVHN network's feature maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from analysis.plots import common
from analysis.tables.cnn import NET_LABELS

#: Validation solid, training dashed (common.learning_curves styles them in this order).
_TRAINING = {"val_": "validation", "": "training (running mean over the epoch)"}


def _finished(figure):
    """Close the figure before the cell returns it (else it shows twice)."""
    plt.close(figure)
    return figure


def _epoch_axis(axis, epochs: int) -> None:
    """Whole epochs on the x axis; a single epoch gets one tick, not fractions of one."""
    axis.set_xlabel("epoch")
    if epochs == 1:
        axis.set_xticks([1])
        axis.set_xlim(0.5, 1.5)
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def tutorial_accuracy(result):
    """Accuracy per epoch of the 32-64-64 network: training and validation."""
    figure = common.learning_curves({NET_LABELS["32-64-64"]: result["histories"]["32-64-64"]}, "accuracy",
                                    source=result.data_source("cifar10"), splits=_TRAINING)
    figure.axes[0].legend(fontsize="small", loc="best")
    _epoch_axis(figure.axes[0], len(result["histories"]["32-64-64"][0]["loss"]))
    return _finished(figure)


def _mean_curve(runs, key, transform=lambda v: v):
    """Mean over seeds of a history key; runs that stopped earlier end earlier,
    so the mean at an epoch is over the runs that reached it."""
    longest = max(len(run[key]) for run in runs)
    values = np.full((len(runs), longest), np.nan)
    for index, run in enumerate(runs):
        values[index, :len(run[key])] = transform(np.asarray(run[key], dtype=float))
    return np.arange(1, longest + 1), np.nanmean(values, axis=0)


def cifar_curves(result):
    """Loss (left) and error (right) per epoch of every network: validation solid, training dashed."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for index, net in enumerate(result["nets"]):
        runs = result["histories"][net]
        for prefix, style in (("val_", "-"), ("", "--")):
            label = NET_LABELS[net] if prefix else None
            marker = "o" if len(runs[0]["loss"]) == 1 else None
            epochs, loss = _mean_curve(runs, prefix + "loss")
            axes[0].plot(epochs, loss, style, color=colors[index], label=label, marker=marker)
            epochs, error = _mean_curve(runs, prefix + "accuracy", lambda v: 1 - v)
            axes[1].plot(epochs, error, style, color=colors[index], label=label, marker=marker)
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_ylabel("error (1 − accuracy)")
    for axis in axes:
        _epoch_axis(axis, max(len(runs[0]["loss"]) for runs in result["histories"].values()))
    axes[1].legend(fontsize="x-small", title="solid: validation, dashed: training", title_fontsize="x-small")
    figure.tight_layout()
    common.source_footer(figure, result.data_source("cifar10"))
    return _finished(figure)


def confusion(matrix, class_names, source: str, title: str | None = None):
    """A confusion matrix: true class in rows, predicted in columns, counts in the cells."""
    matrix = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axis,
                xticklabels=class_names, yticklabels=class_names, annot_kws={"fontsize": 7})
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if title:
        axis.set_title(title)
    plt.setp(axis.get_xticklabels(), rotation=45, ha="right")
    figure.tight_layout()
    common.source_footer(figure, source)
    return _finished(figure)


#: Filters per row of a feature-map grid; a layer with more wraps onto further blocks of rows.
FILTERS_PER_ROW = 16


def feature_maps(result, layer: int, class_names=None, images: int | None = None):
    """Every filter's output of one conv layer for the first ``images`` example
    images (default: all).

    One row per image, one column per filter; a layer with more than
    :data:`FILTERS_PER_ROW` filters is split into blocks of rows of equal width
    (each block starts with the input images again), so that the maps stay
    large enough to see. Fewer images keep a layer with many filters within a
    page.
    """
    maps = np.asarray(result[f"maps_{layer}"])[:images]
    labels = np.asarray(result["example_labels"])[:images]
    images = np.asarray(result["examples"])[:images]
    filters = maps.shape[-1]
    blocks = -(-filters // FILTERS_PER_ROW)
    columns = -(-filters // blocks)          # blocks of equal width: 36 filters as 3 × 12
    cell = min(0.8, 11.0 / (columns + 1))
    rows = blocks * len(images)
    figure, axes = plt.subplots(rows, columns + 1, figsize=((columns + 1) * cell, rows * cell * 1.08),
                                squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.12})
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_frame_on(False)
    for block in range(blocks):
        first = block * columns
        for index, image in enumerate(images):
            row = block * len(images) + index
            axes[row, 0].imshow(image, interpolation="nearest")
            name = class_names[labels[index]] if class_names is not None else str(labels[index])
            axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="x-small")
            for column in range(columns):
                number = first + column
                if number >= filters:
                    continue
                # Each map on its own scale: the figure shows where a filter fires, not how strongly.
                axes[row, column + 1].imshow(maps[index, ..., number], cmap="viridis", interpolation="nearest")
                axes[row, column + 1].set_frame_on(True)
                if index == 0:
                    axes[row, column + 1].set_title(str(number + 1), fontsize=6, pad=1)
        axes[block * len(images), 0].set_title("input", fontsize=6, pad=1)
    common.source_footer(figure, result.data_source("svhn"))
    return _finished(figure)
