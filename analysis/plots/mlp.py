"""Figures of the MLP chapter (chapters/mlp.qmd).

Learning curves come from :func:`analysis.plots.common.learning_curves`; the
diagnostics (samples, confusion matrix, misclassified digits, predicted
probabilities) from :mod:`analysis.plots.diagnostics`. The functions here
only pick the right arrays out of the chapter's results.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from analysis.plots import common, diagnostics
from analysis.tables import mlp as chapter_tables

_YLABELS = {"loss": "cross-entropy loss", "accuracy": "accuracy"}


def _finished(figure):
    """Close the figure before handing it to the cell.

    A cell that returns a figure displays it; without closing, the inline
    backend would display the still-open figure a second time.
    """
    plt.close(figure)
    return figure


def _curves(histories, metric: str, source: str):
    figure = common.learning_curves(histories, metric, source=source, ylabel=_YLABELS.get(metric))
    axis = figure.axes[0]
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
    # The legend goes beside the axes, where it cannot hide a curve, and the
    # bottom margin leaves room for the data footer under the axis label.
    axis.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.subplots_adjust(bottom=0.2)
    return _finished(figure)


def optimizer_curves(result, metric: str = "loss"):
    """Training (re-evaluated) and validation ``metric`` per epoch for each optimizer setting."""
    histories = {chapter_tables.label(name, result): result["histories"][name]
                 for name in result["variants"]}
    return _curves(histories, metric, result.data_source("mnist"))


def layer_norm_curves(optimizers_result, layer_norm_result, metric: str = "loss"):
    """The plain MLP against the layer-normalized ones, same optimizer and seeds."""
    histories = chapter_tables.layer_norm_histories(optimizers_result, layer_norm_result)
    return _curves(histories, metric, layer_norm_result.data_source("mnist"))


def samples(result, count: int = 20):
    """The first training digits of the split, titled with their labels."""
    return _finished(diagnostics.sample_grid(result["sample_images"], result["sample_labels"],
                                             count=count, source=result.data_source("mnist")))


def _variant_index(result, variant: str) -> int:
    if variant not in result["variants"]:
        raise ValueError(f"{variant!r} is not a variant of {result.experiment}: {result['variants']}")
    return result["variants"].index(variant)


def confusion(result, variant: str):
    """Confusion matrix in percent of each true class, pooled over all seeds of ``variant``."""
    predictions = result["predictions"][_variant_index(result, variant)]   # (seeds, test images)
    y_true = np.tile(result["test_labels"], len(predictions))
    return _finished(diagnostics.confusion_heatmap(y_true, predictions.ravel(),
                                                   source=result.data_source("mnist")))


def misclassified(result, variant: str, count: int = 20):
    """The first misclassified test digits of the first seed of ``variant``."""
    predictions = result["predictions"][_variant_index(result, variant)][0]
    return _finished(diagnostics.misclassified_grid(result["test_images"], result["test_labels"],
                                                    predictions, count=count,
                                                    source=result.data_source("mnist")))


def probabilities(result, variant: str, count: int = 4):
    """A few test digits (half misclassified) with the first seed's predicted probabilities."""
    probability = result["probabilities"][_variant_index(result, variant)]
    indices = diagnostics.probability_examples(result["test_labels"], probability.argmax(axis=1), count)
    return _finished(diagnostics.probability_bars(result["test_images"], probability,
                                                  result["test_labels"], indices,
                                                  source=result.data_source("mnist")))


def error_count(result, variant: str) -> int:
    """How many test digits the first seed of ``variant`` got wrong."""
    predictions = result["predictions"][_variant_index(result, variant)][0]
    return int(len(diagnostics.misclassified_indices(result["test_labels"], predictions)))


def most_confused(result, variant: str) -> tuple[int, int, float]:
    """The largest off-diagonal entry of :func:`confusion`: (true class, predicted class, percent)."""
    predictions = result["predictions"][_variant_index(result, variant)]
    y_true = np.tile(result["test_labels"], len(predictions))
    matrix = diagnostics.confusion_percent(y_true, predictions.ravel())
    np.fill_diagonal(matrix, -1.0)
    true_class, predicted_class = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
    return int(true_class), int(predicted_class), float(matrix[true_class, predicted_class])
