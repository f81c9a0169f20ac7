"""Pieces every figure shares: the data footer, learning curves, image grids."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def source_footer(figure, source: str) -> None:
    """Name the data in the figure itself, so a copied figure keeps its provenance.

    The line hangs just below the figure's bottom edge, so it never covers an
    axis label; figures are saved with a tight bounding box, which takes it in.
    """
    figure.text(0.99, 0.0, f"Data: {source}", ha="right", va="top",
                fontsize="x-small", color="0.35")


def _band(axis, epochs, runs, label, color, linestyle="-"):
    runs = np.asarray(runs, dtype=float)
    mean = runs.mean(axis=0)
    # A single epoch is a single point: a line alone would draw nothing.
    marker = "o" if len(epochs) == 1 else None
    axis.plot(epochs, mean, label=label, color=color, linestyle=linestyle, marker=marker)
    if runs.shape[0] > 1:
        std = runs.std(axis=0, ddof=1)
        axis.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def learning_curves(histories: Mapping[str, Sequence[Mapping[str, Sequence[float]]]],
                    metric: str = "loss", source: str | None = None,
                    splits: Mapping[str, str] | None = None, ylabel: str | None = None):
    """One metric per epoch for several variants, each over several seeds.

    ``histories[variant]`` is a list of per-seed histories (dicts of lists).
    Lines are means over seeds, bands ± one standard deviation; training is
    solid and validation dashed. ``splits`` maps a history-key prefix to its
    legend name (default: ``train_`` → training, ``val_`` → validation).
    """
    splits = splits or {"train_": "training", "val_": "validation"}
    figure, axis = plt.subplots()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (variant, runs) in enumerate(histories.items()):
        for style, (prefix, split_name) in zip(("-", "--", ":"), splits.items()):
            key = prefix + metric
            if key not in runs[0]:
                continue
            values = [run[key] for run in runs]
            epochs = np.arange(1, len(values[0]) + 1)
            _band(axis, epochs, values, f"{variant}, {split_name}", colors[index % len(colors)], style)
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axis.set_ylabel(ylabel or metric.replace("_", " "))
    axis.legend(fontsize="small")
    if source:
        source_footer(figure, source)
    return figure


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, columns: int = 10,
               title_colors: Sequence[str] | None = None, source: str | None = None,
               cell_size: float = 0.9):
    """A grid of images (N, H, W[, C]) with an optional title above each."""
    images = np.asarray(images)
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * cell_size, rows * cell_size * 1.15),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        image = images[index]
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        if titles is not None:
            color = title_colors[index] if title_colors is not None else "black"
            axis.set_title(titles[index], fontsize="x-small", color=color, pad=2)
    if source:
        source_footer(figure, source)
    return figure
