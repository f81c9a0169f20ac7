"""Figures of the pretrained-network sections: transfer curves and the photographs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis import stats
from analysis.plots.common import image_grid, source_footer

LABELS = {"scratch": "training from scratch", "frozen": "frozen features", "fine_tune": "fine-tuning"}


def transfer_curves(result):
    """Test accuracy against the labelled-set size, mean over seeds, band ± one standard deviation."""
    figure, axis = plt.subplots()
    sizes = [result["labelled"][str(size)] for size in result["sizes"]]
    for method in result["methods"]:
        summaries = [stats.summary(result["test_accuracy"][method][str(size)]) for size in result["sizes"]]
        mean = np.array([s.mean for s in summaries])
        std = np.nan_to_num(np.array([s.std for s in summaries]))
        line, = axis.plot(sizes, mean, marker="o", label=LABELS[method])
        axis.fill_between(sizes, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    axis.set_xscale("log")
    axis.set_xlabel("labelled images")
    axis.set_ylabel(f"test accuracy ({result['classes']} classes)")
    axis.axhline(1 / result["classes"], color="0.5", linestyle=":", linewidth=1, label="chance")
    axis.legend(fontsize="small")
    source_footer(figure, result.data_source(result["dataset"]))
    return figure


def photographs(result):
    """Every photograph as VGG16 receives it (224 × 224)."""
    titles = list(result["titles"])
    if result["predictions"]:
        titles = [f"{t}\n→ {p[0]['name']} ({100 * p[0]['probability']:.0f}%)"
                  for t, p in zip(titles, result["predictions"])]
    figure = image_grid(result["images"], titles, columns=min(4, len(titles)), cell_size=2.3)
    source_footer(figure, "scikit-image, scikit-learn sample images and NNSTUDY_IMAGES")
    return figure
