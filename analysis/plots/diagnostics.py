"""Training diagnostics for any classifier of the book (first used in the MLP chapter).

Each function takes plain arrays (images, true labels, predicted labels or
class probabilities), so a later chapter can pass the predictions its own
experiment stored:

* :func:`sample_grid` — a grid of images with their labels;
* :func:`confusion_percent` and :func:`confusion_heatmap` — the confusion
  matrix with each true class's row in percent (rows sum to 100), drawn with
  seaborn;
* :func:`misclassified_indices` and :func:`misclassified_grid` — the first
  misclassified images with their true and predicted labels;
* :func:`probability_examples` and :func:`probability_bars` — a few images
  beside a bar chart of the predicted class probabilities, the true class
  highlighted.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from analysis.plots.common import image_grid, source_footer

#: Colours for "right" and "wrong" (the colour-blind palette's green and vermilion).
CORRECT_COLOR, WRONG_COLOR = "#009E73", "#D55E00"
#: Bars of classes that are not the true class.
OTHER_COLOR = "0.65"


def _labels(values, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {values.shape}")
    return values.astype(np.int64)


def _class_names(class_names: Sequence[str] | None, classes: int) -> list[str]:
    if class_names is None:
        return [str(index) for index in range(classes)]
    if len(class_names) != classes:
        raise ValueError(f"{len(class_names)} class names for {classes} classes")
    return [str(name) for name in class_names]


def sample_grid(images, labels, class_names: Sequence[str] | None = None, count: int = 20,
                columns: int = 10, source: str | None = None):
    """The first ``count`` images with their labels as titles."""
    labels = _labels(labels, "labels")
    count = min(count, len(labels))
    names = list(class_names) if class_names is not None else None
    titles = [str(names[label]) if names else str(label) for label in labels[:count]]
    return image_grid(np.asarray(images)[:count], titles, columns=min(columns, count), source=source)


# --------------------------------------------------------------------------
# Confusion matrix


def confusion_percent(y_true, y_pred, classes: int = 10) -> np.ndarray:
    """Confusion matrix whose row i holds where the examples of class i went, in percent.

    Entry (i, j) is the share of examples of true class i predicted as j, so
    every row with at least one example sums to 100 (rows of absent classes
    are all zero). The diagonal is each class's recall.
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0
                        or max(y_true.max(), y_pred.max()) >= classes):
        raise ValueError(f"labels must lie in 0..{classes - 1}")
    counts = np.zeros((classes, classes), dtype=np.float64)
    np.add.at(counts, (y_true, y_pred), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(100.0 * counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_heatmap(y_true, y_pred, class_names: Sequence[str] | None = None, classes: int = 10,
                      source: str | None = None, title: str | None = None):
    """A seaborn heatmap of :func:`confusion_percent`, annotated with the percentages."""
    matrix = confusion_percent(y_true, y_pred, classes)
    names = _class_names(class_names, classes)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(matrix, annot=True, fmt=".1f", cmap="Blues", vmin=0, vmax=100, square=True,
                xticklabels=names, yticklabels=names, annot_kws={"fontsize": "x-small"},
                cbar_kws={"label": "% of the true class"}, ax=axis)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if title:
        axis.set_title(title)
    if source:
        source_footer(figure, source)
    return figure


# --------------------------------------------------------------------------
# Misclassified examples


def misclassified_indices(y_true, y_pred, count: int | None = None) -> np.ndarray:
    """Indices of the examples whose prediction is wrong, in order (the first ``count``)."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    wrong = np.flatnonzero(y_true != y_pred)
    return wrong if count is None else wrong[:count]


def misclassified_grid(images, y_true, y_pred, class_names: Sequence[str] | None = None,
                       count: int = 20, columns: int = 10, source: str | None = None):
    """The first ``count`` misclassified images, titled "true → predicted".

    With no misclassified image at all, the figure says so instead.
    """
    indices = misclassified_indices(y_true, y_pred, count)
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(indices) == 0:
        figure, axis = plt.subplots(figsize=(4, 1))
        axis.axis("off")
        axis.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        if source:
            source_footer(figure, source)
        return figure
    names = _class_names(class_names, 10 if class_names is None else len(class_names))
    titles = [f"{names[y_true[i]]} → {names[y_pred[i]]}" for i in indices]
    return image_grid(np.asarray(images)[indices], titles, columns=min(columns, len(indices)),
                      title_colors=[WRONG_COLOR] * len(indices), source=source)


# --------------------------------------------------------------------------
# Predicted probabilities


def probability_examples(y_true, y_pred, count: int = 4) -> np.ndarray:
    """Indices of a few examples to inspect: half misclassified, the rest right.

    The first ``count // 2`` misclassified examples (fewer if there are
    fewer) and then the first correctly classified ones, up to ``count``.
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    wrong = np.flatnonzero(y_true != y_pred)[: count // 2]
    right = np.flatnonzero(y_true == y_pred)[: count - len(wrong)]
    return np.concatenate([wrong, right]).astype(np.int64)


def probability_bars(images, probabilities, y_true, indices, class_names: Sequence[str] | None = None,
                     source: str | None = None):
    """For each index: the image, and beside it the predicted class probabilities.

    The true class's bar is coloured (green if it is also the prediction,
    vermilion if not); the other bars are grey. The title names the true and
    predicted classes.
    """
    images, probabilities = np.asarray(images), np.asarray(probabilities)
    y_true = _labels(y_true, "y_true")
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise ValueError("probability_bars needs at least one index")
    classes = probabilities.shape[1]
    names = _class_names(class_names, classes)
    figure, axes = plt.subplots(len(indices), 2, figsize=(7, 1.6 * len(indices)), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 3]})
    for row, index in enumerate(indices):
        image_axis, bar_axis = axes[row]
        image = images[index]
        image_axis.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image,
                          cmap="gray", interpolation="nearest")
        image_axis.axis("off")
        truth, predicted = int(y_true[index]), int(np.argmax(probabilities[index]))
        colors = [OTHER_COLOR] * classes
        colors[truth] = CORRECT_COLOR if truth == predicted else WRONG_COLOR
        bar_axis.bar(np.arange(classes), probabilities[index], color=colors)
        bar_axis.set_ylim(0, 1)
        bar_axis.set_xticks(np.arange(classes), names, fontsize="small")
        # The true class's tick is marked too: its bar may be too short to see.
        true_tick = bar_axis.get_xticklabels()[truth]
        true_tick.set_color(colors[truth])
        true_tick.set_fontweight("bold")
        bar_axis.set_ylabel("probability", fontsize="small")
        bar_axis.set_title(f"true {names[truth]}, predicted {names[predicted]}", fontsize="small",
                           color=colors[truth])
    figure.tight_layout()
    if source:
        source_footer(figure, source)
    return figure
