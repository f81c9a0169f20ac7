"""Figures of the generalization chapter (chapters/generalization.qmd).

Learning curves come from :func:`analysis.plots.common.learning_curves` (the
MLP chapter's diagnostics); the sweep and data-size figures plot a score
against a setting, mean over seeds with a band of ± one standard deviation.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from analysis.plots import common
from analysis.tables import generalization as chapter_tables


def _finished(figure):
    """Close the figure before the cell returns it (else it shows twice)."""
    plt.close(figure)
    return figure


def _band(axis, x, runs, label, color, linestyle="-", marker="o"):
    """Mean over seeds (columns: settings) with ± one standard deviation;
    non-finite (diverged) runs are left out of both."""
    runs = np.asarray(runs, dtype=float)
    mean = np.array([np.mean(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in runs.T])
    axis.plot(x, mean, label=label, color=color, linestyle=linestyle, marker=marker, markersize=4)
    if runs.shape[0] > 1:
        std = np.array([np.std(c[np.isfinite(c)], ddof=1) if np.isfinite(c).sum() > 1 else 0.0
                        for c in runs.T])
        axis.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def learning_curves(result, names, metric: str = "accuracy"):
    """Training (re-evaluated) and validation ``metric`` per epoch of some methods."""
    histories = {chapter_tables.label(name, result): result["histories"][name] for name in names}
    ylabel = {"accuracy": "accuracy", "loss": "loss (with any L2 penalty)"}.get(metric, metric)
    figure = common.learning_curves(histories, metric, source=result.data_source("mnist"), ylabel=ylabel)
    axis = figure.axes[0]
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.subplots_adjust(bottom=0.2)
    return _finished(figure)


def sweep(result):
    """Validation accuracy, final losses and the weight norm against the sweep's setting."""
    kind, values, names = result["kind"], np.asarray(result["values"], dtype=float), result["variants"]
    scores = result["scores"]

    def column(score):
        return np.array([scores[name][score] for name in names], dtype=float).T   # (seeds, settings)

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    _band(axes[0], values, column("best_val_accuracy"), "best validation", colors[0])
    _band(axes[0], values, column("val_accuracy"), "final validation", colors[1], "--")
    _band(axes[0], values, column("train_accuracy"), "final training", colors[2], ":")
    axes[0].set_ylabel("accuracy")
    _band(axes[1], values, column("train_loss"), "training", colors[2], ":")
    _band(axes[1], values, column("val_loss"), "validation", colors[1], "--")
    axes[1].set_ylabel("final cross-entropy (no penalty)")
    _band(axes[2], values, column("weight_norm"), "hidden kernels", colors[3])
    axes[2].set_ylabel("weight norm ‖w‖")
    chosen = result["chosen"]
    for axis in axes:
        if kind == "l2":
            axis.set_xscale("log")
        axis.axvline(chosen, color="0.5", linewidth=0.8, linestyle="-.")
        axis.set_xlabel("L2 strength λ" if kind == "l2" else "dropout rate p")
        axis.legend(fontsize="x-small")
    figure.tight_layout()
    common.source_footer(figure, result.data_source("mnist"))
    return _finished(figure)


def data_sizes(result):
    """Test accuracy and train–test gap against the training-set size."""
    sizes = result["train_sizes"]
    used = np.array([result["sizes"][f"baseline@{size}"]["train"] for size in sizes], dtype=float)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for index, name in enumerate(("baseline", "regularised")):
        label = chapter_tables.LABELS[name]
        if name == "regularised":
            label += f" ({chapter_tables.setting(result['regulariser'], result['strength'])})"
        for axis, score in zip(axes, ("test_accuracy", "gap")):
            runs = np.array([result["scores"][f"{name}@{size}"][score] for size in sizes], dtype=float).T
            _band(axis, used, runs, label, colors[index])
    axes[0].set_ylabel("test accuracy")
    axes[1].set_ylabel("training − test accuracy")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("training images")
        axis.legend(fontsize="x-small")
    figure.tight_layout()
    common.source_footer(figure, result.data_source("mnist"))
    return _finished(figure)
