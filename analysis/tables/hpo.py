"""Tables and computed sentences of the hyper-parameter optimisation chapter."""

from __future__ import annotations

import numpy as np

from analysis import stats
from analysis.tables import markdown

TUNER_LABELS = {"random": "RandomSearch", "bayesian": "BayesianOptimization", "hyperband": "Hyperband"}
TABLE_LABELS = {"random": "random search", "grid": "grid (table order)", "gp-ei": "our GP + EI",
                "tpe": "TPE (l/g)", "keras-tuner": "keras-tuner's Bayesian oracle"}


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def heatmap_marks(grid):
    """Mean validation accuracy per cell, and which cells are worse than the
    best cell beyond the seed-to-seed spread (a paired comparison over seeds
    whose interval excludes zero)."""
    scores = np.asarray(grid["val_accuracy"], dtype=float)
    mean = np.nanmean(scores, axis=-1)
    best = np.unravel_index(np.nanargmax(mean), mean.shape)
    marks = np.zeros(mean.shape, dtype=bool)
    for index in np.ndindex(mean.shape):
        if index != best:
            marks[index] = stats.compare(scores[best], scores[index]).better == "a"
    return mean, marks


def heatmap_sentence(grid) -> str:
    mean, marks = heatmap_marks(grid)
    best = np.unravel_index(np.nanargmax(mean), mean.shape)
    seeds = len(grid["seeds"])
    where = (f"dropout {grid['dropouts'][best[0]]:g} with {grid['units'][best[1]]} units "
             f"({100 * mean[best]:.1f}% mean validation accuracy)")
    if seeds < 2:
        return f"The best cell is {where}; with a single seed no difference can be told from seed noise"
    others = mean.size - 1
    return (f"The best cell is {where}; {marks.sum()} of the other {others} cells are worse beyond the "
            f"seed-to-seed spread (paired over {seeds} seeds, 95% interval of the difference excluding zero), "
            f"the other {others - marks.sum()} cannot be told apart from it")


def grid_table(grid) -> "Markdown":
    rows = []
    folds = np.asarray(grid["fold_scores"], dtype=float)
    for index, (cell, mean) in enumerate(zip(grid["cells"], grid["mean"])):
        chosen = " (chosen)" if index == grid["best_index"] else ""
        rows.append((cell["output_activation"] + chosen, f"{cell['dropout']:g}",
                     f"{100 * mean:.1f}% ± {100 * folds[index].std(ddof=1):.1f}" if folds.shape[1] > 1
                     else f"{100 * mean:.1f}%"))
    return markdown(rows, ("Output activation", "Dropout", "Cross-validated accuracy (mean ± std over folds)"),
                    note=f"{grid['fits'] - 1} fits of {len(folds[0])}-fold stratified cross-validation "
                         "on the training images, plus one refit of the chosen cell.")


def activation_summary(grid) -> dict:
    """The best cross-validated accuracy per output activation."""
    best = {}
    for cell, mean in zip(grid["cells"], grid["mean"]):
        name = cell["output_activation"]
        best[name] = max(best.get(name, -np.inf), mean)
    return best


def activation_sentence(grid) -> str:
    best = activation_summary(grid)
    if "softmax" not in best or len(best) < 2:
        return "the grid holds only one output activation, so it compares none"
    softmax = best["softmax"]
    parts = []
    for name, value in best.items():
        if name == "softmax":
            continue
        relation = "below" if value < softmax else ("level with" if value == softmax else "above")
        parts.append(f"the best {name} output reached {100 * value:.1f}%, "
                     f"{abs(100 * (softmax - value)):.1f} points {relation} the best softmax output "
                     f"({100 * softmax:.1f}%)")
    return "; ".join(parts)


def efficiency_points(curve, pool_size: int) -> list[int]:
    """The N quoted in the prose: the original study's 10, 20, 50, 100 that fit the pool, else 1, M/2, M."""
    wanted = [n for n in (10, 20, 50, 100) if n <= pool_size]
    return wanted or sorted({1, max(1, pool_size // 2), pool_size})


def efficiency_table(curve, pool_size: int) -> "Markdown":
    rows = []
    for n in efficiency_points(curve, pool_size):
        i = n - 1
        rows.append((str(n), f"{100 * curve['quantiles']['0.5'][i]:.1f}%",
                     f"{100 * curve['quantiles']['0.1'][i]:.1f}% – {100 * curve['quantiles']['0.9'][i]:.1f}%",
                     f"{100 * curve['test_mean'][i]:.1f}%"))
    return markdown(rows, ("N", "Median best validation accuracy", "10–90% of draws",
                           "Mean test accuracy of the selected configuration"),
                    note=f"Exact over all draws of N configurations from the pool of {pool_size}.")


def tuner_finals(result) -> dict:
    return {name: [max(s["score"]) for s in searches] for name, searches in result["searches"].items()}


def tuner_sentences(result) -> list[str]:
    finals = tuner_finals(result)
    lines = []
    for name in ("bayesian", "hyperband"):
        if name in finals and "random" in finals:
            comparison = stats.compare(finals[name], finals["random"],
                                       (TUNER_LABELS[name], TUNER_LABELS["random"]), paired=False)
            lines.append(comparison.sentence("best validation accuracy"))
    return lines


def tuner_budget(result) -> str:
    parts = []
    for name, searches in result["searches"].items():
        trials = [len(s["score"]) for s in searches]
        epochs = [int(np.sum(s["epochs"])) for s in searches]
        parts.append(f"{TUNER_LABELS[name]} ran {stats.summary(trials).mean:.1f} trials and "
                     f"{stats.summary(epochs).mean:.1f} epochs per search")
    return "; ".join(parts)


def oracle_table(facts: dict) -> "Markdown":
    rows = [("kernel", f"{facts['kernel']}, ν = {facts['nu']:g}"),
            ("alpha (added to K's diagonal)", f"{facts['alpha']:g}"),
            ("normalize_y", str(facts["normalize_y"])),
            ("optimizer restarts for the kernel's length scales", str(facts["restarts"])),
            ("beta of the confidence bound", f"{facts['beta']:g}"),
            ("random initial points (3 × dimensions)", f"{facts['initial_points']} ({facts['dimensions']} dimensions)")]
    return markdown(rows, ("Setting", "Value read from the oracle object"),
                    note="keras_tuner.oracles.BayesianOptimizationOracle as installed; "
                         "its source is keras_tuner/src/tuners/bayesian.py.")


def tabular_sentences(benchmark) -> list[str]:
    curves = {m: np.asarray(c, dtype=float) for m, c in benchmark["curves"].items()}
    lines = []
    for method in ("gp-ei", "tpe", "keras-tuner"):
        if method in curves and "random" in curves and len(curves[method]) == len(curves["random"]):
            comparison = stats.compare(curves[method][:, -1], curves["random"][:, -1],
                                       (TABLE_LABELS[method], TABLE_LABELS["random"]))
            lines.append(comparison.sentence(f"best score after {benchmark['budget']} evaluations"))
    return lines


def budget_callout(profile, pool, grid) -> str:
    sizes = pool["sizes"]
    config = pool.provenance["config"]
    return ("::: {.callout-note}\n## Budget of this build\n"
            f"This page was built with the `{profile.name}` profile: every network trains for "
            f"{count(config['epochs'], 'epoch')} on {sizes['train']:,} MNIST training images "
            f"(validation {sizes['validation']:,}, test {sizes['test']:,}), the pool holds "
            f"{count(len(pool['val_accuracy']), 'configuration')} and the dropout × units grid "
            f"{count(len(grid['seeds']), 'seed')} per cell. The `full` profile runs the original protocols "
            "(all of MNIST, 10-epoch trials, a pool of 200).\n:::\n")
