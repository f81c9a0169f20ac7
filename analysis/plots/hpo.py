"""Figures of the hyper-parameter optimisation chapter (chapters/hpo.qmd)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import ticker
import numpy as np
import seaborn as sns

from analysis.plots.common import source_footer
from analysis.tables import hpo as chapter_tables


def bo_at_work(curve):
    """Per BO step: the posterior mean and ±2σ band over log₁₀ rate, the
    evaluated points, the true table, and EI with the next point marked."""
    bo = curve["bo"]
    frames = bo["frames"]
    grid = np.asarray(bo["grid"])
    rates = np.log10(curve["learning_rates"])
    scores = np.asarray(curve["val_accuracy"], dtype=float)
    figure, axes = plt.subplots(2, len(frames), figsize=(3.2 * len(frames) + 1, 5), sharex=True,
                                squeeze=False, gridspec_kw={"height_ratios": [2, 1]})
    for column, frame in enumerate(frames):
        top, bottom = axes[0, column], axes[1, column]
        mean, std = np.asarray(frame["mean"]), np.asarray(frame["std"])
        top.plot(grid, mean, color="C0", label="posterior mean")
        top.fill_between(grid, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.2, linewidth=0,
                         label="± 2 std")
        top.plot(rates, scores, "x", color="0.5", label="all table points")
        observed = frame["observed"]
        top.plot(rates[observed], scores[observed], "o", color="C1", label="evaluated")
        top.axvline(rates[frame["next"]], color="C2", linestyle="--", linewidth=1)
        top.set_title(f"step {column + 1}: {len(observed)} evaluated")
        bottom.plot(grid, frame["ei"], color="C2")
        bottom.axvline(rates[frame["next"]], color="C2", linestyle="--", linewidth=1, label="next point")
        bottom.set_xlabel("log₁₀ learning rate")
    axes[0, 0].set_ylabel("validation accuracy")
    axes[1, 0].set_ylabel("expected improvement")
    axes[0, 0].legend(fontsize="x-small", loc="lower left")
    figure.tight_layout()
    source_footer(figure, curve.data_source("mnist"))
    return figure


def heatmap(grid):
    """Mean validation accuracy per dropout × units cell; cells clearly worse
    than the best (beyond seed spread) marked with a dot."""
    mean, marks = chapter_tables.heatmap_marks(grid)
    labels = np.array([[f"{100 * m:.1f}{' •' if worse else ''}" for m, worse in zip(row, mark_row)]
                       for row, mark_row in zip(mean, marks)])
    figure, axis = plt.subplots(figsize=(6, 4.2))
    sns.heatmap(100 * mean, annot=labels, fmt="", cmap="viridis", ax=axis,
                xticklabels=grid["units"], yticklabels=[f"{d:g}" for d in grid["dropouts"]],
                cbar_kws={"label": "validation accuracy (%)"})
    axis.set_xlabel("hidden units")
    axis.set_ylabel("dropout rate")
    figure.tight_layout()
    source_footer(figure, grid.data_source("mnist"))
    return figure


def efficiency(pool, curve):
    """Best-of-N validation accuracy (median and 10–90% band) and the mean
    test accuracy of the configuration each N selects, against N."""
    trials = np.asarray(curve["trials"])
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.fill_between(trials, np.asarray(curve["quantiles"]["0.1"]) * 100,
                      np.asarray(curve["quantiles"]["0.9"]) * 100, color="C0", alpha=0.2, linewidth=0,
                      label="best validation accuracy, 10–90% of draws")
    axis.plot(trials, np.asarray(curve["quantiles"]["0.5"]) * 100, color="C0", label="median")
    axis.plot(trials, np.asarray(curve["test_mean"]) * 100, color="C1", linestyle="--",
              label="test accuracy of the selected configuration (mean)")
    axis.set_xscale("log")
    # Whole numbers of trials as ticks, on a log axis.
    ticks = [n for n in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if n <= trials[-1]]
    axis.set_xticks(ticks, [str(n) for n in ticks])
    axis.xaxis.set_minor_formatter(ticker.NullFormatter())
    axis.set_xlabel("N, configurations tried")
    axis.set_ylabel("accuracy (%)")
    axis.legend(fontsize="small")
    figure.tight_layout()
    source_footer(figure, pool.data_source("mnist"))
    return figure


def tuners(result):
    """Best-so-far validation accuracy of each tuner against trials and against
    epochs consumed; mean over tuner seeds, band ± one standard deviation."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for index, (name, searches) in enumerate(result["searches"].items()):
        color = f"C{index}"
        for axis, x_of in ((axes[0], lambda s: np.arange(1, len(s["score"]) + 1)),
                           (axes[1], lambda s: np.cumsum(s["epochs"]))):
            # Searches of different lengths: each is drawn on its own x, the
            # mean on the common grid where every seed has a value.
            grid = np.arange(1, max(x_of(s)[-1] for s in searches) + 1)
            curves = np.array([np.interp(grid, x_of(s), np.maximum.accumulate(s["score"]), left=np.nan)
                               for s in searches]) * 100
            mean = np.nanmean(curves, axis=0)
            axis.plot(grid, mean, color=color, label=chapter_tables.TUNER_LABELS[name],
                      marker="o" if len(grid) == 1 else None)
            if len(searches) > 1:
                std = np.nanstd(curves, axis=0, ddof=1)
                axis.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    axes[0].set_xlabel("trials")
    axes[1].set_xlabel("epochs trained")
    axes[0].set_ylabel("best validation accuracy so far (%)")
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    source_footer(figure, result.data_source("mnist"))
    return figure


def tabular(benchmark, source: str):
    """Best-so-far table score against evaluations, mean ± band over search seeds."""
    figure, axis = plt.subplots(figsize=(7, 4))
    evaluations = np.arange(1, benchmark["budget"] + 1)
    for index, (method, curves) in enumerate(benchmark["curves"].items()):
        curves = np.asarray(curves, dtype=float) * 100
        mean = curves.mean(axis=0)
        axis.plot(evaluations, mean, color=f"C{index}", label=chapter_tables.TABLE_LABELS[method])
        if len(curves) > 1:
            std = curves.std(axis=0, ddof=1)
            axis.fill_between(evaluations, mean - std, mean + std, color=f"C{index}", alpha=0.15, linewidth=0)
    axis.axhline(100 * benchmark["optimum"], color="0.4", linestyle=":", label="best cell of the table")
    axis.set_xlabel("evaluations (table lookups)")
    axis.set_ylabel("best validation accuracy so far (%)")
    axis.legend(fontsize="small")
    source_footer(figure, source)
    return figure
