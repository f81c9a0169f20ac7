"""Figures of the digit-recognizer chapter (chapters/digits.qmd) and of
``python -m analysis predict-digit --show``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis.plots import common
from analysis.tables import digits as chapter_tables

#: The pipeline's steps as figure columns: (title, what to draw).
STEP_COLUMNS = (
    ("photo", lambda s: s.grey),
    ("ink bright, light evened", lambda s: s.ink),
    ("Otsu mask", lambda s: s.mask),
    ("cropped to the ink", lambda s: s.cropped),
    ("longer side 20 px", lambda s: s.scaled),
    ("28 × 28, centred", lambda s: s.digit),
)


def _finished(figure):
    """Close the figure before the cell returns it (else it shows twice)."""
    plt.close(figure)
    return figure


def pipeline(steps, probabilities=None, names=None, source: str | None = None):
    """One row per image: every preprocessing step, then (if given) the
    model's probabilities as bars, the predicted digit highlighted."""
    columns = len(STEP_COLUMNS) + (probabilities is not None)
    figure, axes = plt.subplots(len(steps), columns, figsize=(1.7 * columns, 1.9 * len(steps)),
                                squeeze=False)
    for row, step in enumerate(steps):
        for column, (title, picture) in enumerate(STEP_COLUMNS):
            axis = axes[row, column]
            image = picture(step)
            axis.imshow(image, cmap="gray", interpolation="nearest",
                        vmin=0, vmax=1 if image.dtype != bool else 1)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_xlabel(f"{image.shape[1]} × {image.shape[0]} px", fontsize="x-small")
            if row == 0:
                axis.set_title(title, fontsize="small")
        if names is not None:
            axes[row, 0].set_ylabel(names[row], fontsize="small")
        if probabilities is not None:
            axis = axes[row, -1]
            values = np.asarray(probabilities[row])
            colors = ["C1" if digit == values.argmax() else "C0" for digit in range(10)]
            axis.bar(range(10), values, color=colors)
            axis.set_xticks(range(10))
            axis.tick_params(labelsize="x-small")
            axis.set_ylim(0, 1)
            if row == 0:
                axis.set_title("probabilities", fontsize="small")
    figure.tight_layout()
    if source:
        common.source_footer(figure, source)
    return _finished(figure)


def photo_examples(result, count: int = 6):
    """Photos from the robustness set (top) and what the pipeline made of them."""
    photos = result["photo_examples"][:count]
    digits = result["photo_examples_mnist"][:count]
    figure, axes = plt.subplots(2, count, figsize=(1.45 * count, 3.2), squeeze=False)
    predicted = result["photo_probabilities"][:count].argmax(axis=1)
    for index in range(count):
        axes[0, index].imshow(photos[index], cmap="gray", vmin=0, vmax=255)
        axes[1, index].imshow(digits[index], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[1, index].set_title(f"read as {predicted[index]}", fontsize="x-small", pad=2)
        for axis in axes[:, index]:
            axis.set_xticks([])
            axis.set_yticks([])
    axes[0, 0].set_ylabel("photo", fontsize="small")
    axes[1, 0].set_ylabel("pipeline", fontsize="small")
    common.source_footer(figure, f"{result.data_source('mnist')}, test digits made into photos")
    return _finished(figure)


def confusion(result, which: str = "sklearn", source: str | None = None):
    """Counts of true digit (rows) against predicted digit (columns)."""
    import seaborn as sns

    matrix = chapter_tables.confusion(result, which)
    figure, axis = plt.subplots(figsize=(5.4, 4.6))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axis,
                annot_kws={"fontsize": "x-small"}, square=True)
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    common.source_footer(figure, source or chapter_tables.SOURCES[which](result))
    return _finished(figure)


def failures(result, which: str = "sklearn", count: int = 30):
    """The misread digits in MNIST form, "true → predicted" above each."""
    labels, predicted = chapter_tables.labels_and_predictions(result, which)
    wrong = np.flatnonzero(labels != predicted)[:count]
    images = result["sklearn_images"][wrong] if which == "sklearn" else None
    titles = [f"{labels[i]} → {predicted[i]}" for i in wrong]
    if len(wrong) == 0:
        figure, axis = plt.subplots(figsize=(4, 1))
        axis.axis("off")
        axis.text(0.5, 0.5, "no digit was misread", ha="center", va="center")
    else:
        figure = common.image_grid(images, titles, columns=10)
    common.source_footer(figure, chapter_tables.SOURCES[which](result))
    return _finished(figure)


def learning_curves(result):
    """Training (on augmented digits) and validation accuracy per epoch."""
    figure = common.learning_curves({"digit CNN": [result["history"]]}, "accuracy",
                                    source=result.data_source("mnist"),
                                    splits={"": "training (augmented)", "val_": "validation"})
    return _finished(figure)
