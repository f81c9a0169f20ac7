"""Figures of the depth chapter (chapters/depth.qmd).

Per-layer profiles (layer index against the largest error |δ| = |∂ℒ/∂b| and
the largest weight gradient |∂ℒ/∂W| of each Dense layer, log scale) and
learning curves against optimizer steps. Lines are geometric means over seeds
(the right average for quantities spread over orders of magnitude); bands
span the smallest to the largest seed.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from analysis.plots.common import source_footer
from analysis.tables import depth as summaries

#: One colour per activation, the same in every figure of the chapter.
_PALETTE = {"relu": 0, "tanh": 1, "sigmoid": 2, "lecun": 4}
#: Colours of the remedies (baseline, matched initialisation, batch norm, layer norm).
_REMEDY_COLORS = (7, 5, 6, 9)
#: Axis labels of the two measured quantities.
_QUANTITY_LABELS = {"error": "max |δ| = max |∂ℒ/∂b|", "weight": "max |∂ℒ/∂W|"}


def _finish(figure):
    """Close the figure before a chapter cell returns it, so that Jupyter's
    inline backend does not show it a second time."""
    figure.tight_layout()
    plt.close(figure)
    return figure


def _color(activation: str):
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return colors[_PALETTE.get(activation, 4) % len(colors)]


def _drawable(values: np.ndarray) -> np.ndarray:
    """Exact zeros (no gradient at all) have no place on a log axis: leave them out."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


def _profile(axis, grads: np.ndarray, label: str, color, linestyle="-", marker="o"):
    """One gradient profile: geometric mean over seeds, band min–max."""
    layers = np.arange(1, grads.shape[1] + 1)
    centre = summaries.geometric_mean(grads, axis=0)
    axis.plot(layers, _drawable(centre), label=label, color=color, linestyle=linestyle,
              marker=marker, markersize=3)
    if grads.shape[0] > 1:
        axis.fill_between(layers, _drawable(grads.min(axis=0)), _drawable(grads.max(axis=0)),
                          color=color, alpha=0.15, linewidth=0)


def _decorate(axis, depth: int):
    axis.set_yscale("log")
    axis.set_xlabel("layer")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Ratios use layers 2..depth: mark the first layer and the output layer off.
    for edge in (1.5, depth + 0.5):
        axis.axvline(edge, color="0.6", linewidth=0.8, linestyle=":")


def layer_gradients(*results, stage: str = "initial", quantities=("error", "weight"),
                    activations=None):
    """Layer index vs max |δ| (top row) and max |∂ℒ/∂W| (bottom row), one
    column per depth, activations as lines.

    ``results`` are depth-chapter results with the same depths (e.g. the
    nine models, or the nine models and the LeCun runs); ``activations``
    restricts the lines (default: every activation in the results).
    """
    if not results:
        raise ValueError("layer_gradients needs at least one result")
    depths = sorted({run["depth"] for result in results for run in result["runs"]})
    figure, axes = plt.subplots(len(quantities), len(depths), squeeze=False,
                                figsize=(3.6 * len(depths), 3.0 * len(quantities)))
    for row, quantity in enumerate(quantities):
        for axis, depth in zip(axes[row], depths):
            for result in results:
                names = [a["activation"] for a in summaries.architectures(result)
                         if a["depth"] == depth]
                for name in names:
                    if activations is not None and name not in activations:
                        continue
                    grads = summaries.layer_values(result, stage, quantity, depth=depth,
                                                   activation=name)
                    _profile(axis, grads, summaries.title(name), _color(name))
            _decorate(axis, depth)
            axis.set_title(f"{depth} hidden layers")
        axes[row, 0].set_ylabel(_QUANTITY_LABELS[quantity])
    axes[0, 0].legend(fontsize="small")
    source_footer(figure, results[0].data_source("mnist"))
    return _finish(figure)


def lecun_curves(grid, lecun):
    """Loss and accuracy against optimizer steps, LeCun's activation against
    tanh, per depth.

    Validation is solid, training (Keras's running mean since the previous
    evaluation) dashed; bands are ± one standard deviation over seeds.
    """
    summaries.check_comparable(grid, lecun)
    depths = sorted({run["depth"] for run in lecun["runs"]})
    figure, axes = plt.subplots(2, len(depths), figsize=(3.6 * len(depths), 5.6), squeeze=False,
                                sharex=True)
    for column, depth in enumerate(depths):
        for result, name in ((grid, "tanh"), (lecun, "lecun")):
            runs = summaries.select(result, depth=depth, activation=name)
            for row, metric in enumerate(("loss", "accuracy")):
                axis = axes[row, column]
                for prefix, style, split in (("val_", "-", "validation"), ("", "--", "training")):
                    curves = np.array([run["history"][prefix + metric] for run in runs])
                    steps = np.asarray(runs[0]["history"]["step"])
                    centre = curves.mean(axis=0)
                    axis.plot(steps, centre, linestyle=style, color=_color(name),
                              label=f"{summaries.title(name)}, {split}")
                    if curves.shape[0] > 1:
                        spread = curves.std(axis=0, ddof=1)
                        axis.fill_between(steps, centre - spread, centre + spread,
                                          color=_color(name), alpha=0.15, linewidth=0)
        axes[0, column].set_title(f"{depth} hidden layers")
        axes[1, column].set_xlabel("optimizer step")
    axes[0, 0].set_ylabel("cross-entropy loss")
    axes[1, 0].set_ylabel("accuracy")
    axes[1, 0].legend(fontsize="x-small")
    source_footer(figure, grid.data_source("mnist"))
    return _finish(figure)


def remedies(grid, remedies_result):
    """Per-layer errors max |δ| of the deepest networks: baseline and remedies.

    Columns are activations; the top row is at initialisation, the bottom
    row after the snapshot steps.
    """
    rows = summaries.remedy_rows(grid, remedies_result)
    activations = list(dict.fromkeys(row["activation"] for row in rows))
    snapshot = remedies_result.provenance["config"]["snapshot_steps"]
    depth = remedies_result.provenance["config"]["depth"]
    figure, axes = plt.subplots(2, len(activations), figsize=(3.8 * len(activations), 6.0),
                                squeeze=False, sharey="row")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, activation in enumerate(activations):
        variants = [row for row in rows if row["activation"] == activation]
        for row in variants:
            # The same remedy has the same colour and line style in every panel.
            kind = row["normalization"] or ("baseline" if row["baseline"] else "matched")
            index = ("baseline", "matched", "batch", "layer").index(kind)
            label = (f"{summaries.INITIALIZER_TITLES.get(row['initializer'], row['initializer'])}, "
                     f"{summaries.NORMALIZATION_TITLES[row['normalization']]}")
            for line, stage in enumerate(("initial", "trained")):
                grads = summaries.layer_values(row["result"], stage, "error", **row["where"])
                _profile(axes[line, column], grads, label, colors[_REMEDY_COLORS[index] % len(colors)],
                         linestyle=("-", "--", "-.", ":")[index])
        for line, when in enumerate(("at initialisation", f"after {snapshot:,} steps")):
            axis = axes[line, column]
            _decorate(axis, depth)
            axis.set_title(f"{summaries.title(activation)}, {when}")
        axes[0, column].legend(fontsize="x-small")
    for line in range(2):
        axes[line, 0].set_ylabel(_QUANTITY_LABELS["error"])
    source_footer(figure, grid.data_source("mnist"))
    return _finish(figure)
