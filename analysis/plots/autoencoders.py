"""Figures of the autoencoder sections: denoising grids and curves, codes, generated digits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis import stats
from analysis.plots.common import source_footer

LABELS = {"noisy": "noisy input", "median": "median filter", "dense": "dense autoencoder",
          "conv": "convolutional autoencoder", "clean": "clean"}


def _rows(rows: dict[str, np.ndarray], source: str, cell: float = 0.8):
    """One row of images per entry, its name on the left."""
    columns = max(len(images) for images in rows.values())
    figure, axes = plt.subplots(len(rows), columns, figsize=(columns * cell + 1.4, len(rows) * cell),
                                squeeze=False)
    for axis_row, (name, images) in zip(axes, rows.items()):
        for index, axis in enumerate(axis_row):
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if index < len(images):
                axis.imshow(images[index], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    source_footer(figure, source)
    return figure


def denoising_grid(result):
    """Clean, noisy and denoised test digits at the training noise level."""
    rows = {LABELS["clean"]: result["grid_clean"]}
    rows.update({LABELS[name]: result[f"grid_{name}"] for name in result["methods"]})
    return _rows(rows, result.data_source("mnist"))


def quality_curves(result):
    """Mean PSNR and SSIM against the noise level, band ± one standard deviation over the test digits."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    levels = result["levels"]
    for axis, metric, label in zip(axes, ("psnr", "ssim"), ("PSNR (dB)", "SSIM")):
        for name in result["methods"]:
            summaries = [stats.summary(level[name][metric]) for level in result["scores"]]
            mean = np.array([s.mean for s in summaries])
            std = np.nan_to_num(np.array([s.std for s in summaries]))
            line, = axis.plot(levels, mean, marker="o", label=LABELS[name])
            axis.fill_between(levels, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        axis.axvline(0.4, color="0.5", linestyle=":", linewidth=1)
        axis.set_xlabel("salt-and-pepper level")
        axis.set_ylabel(label)
    axes[1].legend(fontsize="small")
    source_footer(figure, result.data_source("mnist"))
    return figure


def code_projection(result):
    """Real codes (by digit), random codes and Gaussian samples in the codes' first two principal components."""
    figure, axis = plt.subplots(figsize=(7, 5.5))
    points, labels = result["projected_test"], result["projected_labels"]
    scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6, alpha=0.6, vmin=-0.5, vmax=9.5)
    figure.colorbar(scatter, ax=axis, ticks=range(10), label="digit (real test codes)")
    for key, marker, color, label in (("projected_uniform", "x", "black", "uniform noise codes"),
                                      ("projected_normal", "+", "crimson", "normal noise codes"),
                                      ("projected_gaussian", "^", "none", "samples of the class Gaussians")):
        kwargs = {"facecolors": "none", "edgecolors": "0.2"} if color == "none" else {"c": color}
        axis.scatter(result[key][:, 0], result[key][:, 1], marker=marker, s=18, label=label, **kwargs)
    variance = result["explained_variance"]
    axis.set_xlabel(f"first principal component ({100 * variance[0]:.0f}% of the variance)")
    axis.set_ylabel(f"second principal component ({100 * variance[1]:.0f}%)")
    axis.legend(fontsize="small", loc="best")
    source_footer(figure, result.data_source("mnist"))
    return figure


def generated_grid(result, rows: dict[str, str], per_row: int = 10):
    """Generated digits, one row per entry of ``rows`` (label → image array name)."""
    chosen = {}
    for label, key in rows.items():
        images = result[key]
        if key == "images_gaussian":
            # One digit per class in a row: the first sample of each class, then the second, ...
            per_class = result["per_class"]
            for repeat in range(min(2, per_class)):
                chosen[f"{label} ({repeat + 1})"] = images[repeat::per_class][:per_row]
        else:
            chosen[label] = images[:per_row]
    return _rows(chosen, result.data_source("mnist"))
