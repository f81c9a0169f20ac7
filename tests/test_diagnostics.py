"""The training diagnostics of analysis.plots.diagnostics, on small hand-made arrays."""

from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis.plots import diagnostics


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _predictions(seed=0, count=300, classes=10, error_rate=0.3):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes, size=count)
    wrong = rng.random(count) < error_rate
    y_pred = np.where(wrong, (y_true + rng.integers(1, classes, size=count)) % classes, y_true)
    return y_true, y_pred


# --------------------------------------------------------------------------
# Confusion matrix


def test_confusion_rows_sum_to_100_per_true_class():
    y_true, y_pred = _predictions()
    matrix = diagnostics.confusion_percent(y_true, y_pred)
    assert matrix.shape == (10, 10)
    np.testing.assert_allclose(matrix.sum(axis=1), 100.0)


def test_confusion_entries_are_shares_of_the_true_class():
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 0])
    matrix = diagnostics.confusion_percent(y_true, y_pred, classes=3)
    np.testing.assert_allclose(matrix[0], [75.0, 25.0, 0.0])
    np.testing.assert_allclose(matrix[1], [50.0, 50.0, 0.0])
    # Class 2 never occurs: its row is zero, not NaN.
    np.testing.assert_array_equal(matrix[2], [0.0, 0.0, 0.0])


def test_confusion_rejects_bad_labels():
    with pytest.raises(ValueError, match="differ in length"):
        diagnostics.confusion_percent([0, 1], [0])
    with pytest.raises(ValueError, match="0..2"):
        diagnostics.confusion_percent([0, 3], [0, 1], classes=3)


def test_confusion_heatmap_annotates_every_cell_in_percent():
    y_true, y_pred = _predictions()
    figure = diagnostics.confusion_heatmap(y_true, y_pred, source="test data")
    axis = figure.axes[0]
    annotations = [text.get_text() for text in axis.texts]
    assert len(annotations) == 100
    expected = diagnostics.confusion_percent(y_true, y_pred)
    assert annotations[0] == f"{expected[0, 0]:.1f}"
    assert axis.get_ylabel() == "true class"
    assert any("test data" in text.get_text() for text in figure.texts)


# --------------------------------------------------------------------------
# Misclassified digits


def test_misclassified_indices_are_exactly_the_wrong_ones_in_order():
    y_true, y_pred = _predictions()
    indices = diagnostics.misclassified_indices(y_true, y_pred)
    assert np.all(y_true[indices] != y_pred[indices])
    np.testing.assert_array_equal(indices, np.flatnonzero(y_true != y_pred))
    first = diagnostics.misclassified_indices(y_true, y_pred, count=5)
    np.testing.assert_array_equal(first, indices[:5])


def test_misclassified_grid_shows_only_misclassified_images():
    y_true = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    y_pred = np.array([3, 7, 4, 1, 6, 9, 0, 6])    # wrong at 1, 4, 6
    images = np.arange(8)[:, None, None, None] * np.ones((8, 28, 28, 1), dtype=np.uint8)
    figure = diagnostics.misclassified_grid(images, y_true, y_pred, count=20)
    shown = [axis for axis in figure.axes if axis.images]
    assert [axis.get_title() for axis in shown] == ["1 → 7", "5 → 6", "2 → 0"]
    # Each panel holds the image of a misclassified example (image i is filled with i).
    assert [int(axis.images[0].get_array().max()) for axis in shown] == [1, 4, 6]


def test_misclassified_grid_respects_count_and_handles_no_errors():
    y_true, y_pred = _predictions()
    images = np.zeros((len(y_true), 28, 28, 1), dtype=np.uint8)
    figure = diagnostics.misclassified_grid(images, y_true, y_pred, count=7)
    assert sum(1 for axis in figure.axes if axis.images) == 7
    perfect = diagnostics.misclassified_grid(images, y_true, y_true)
    assert not any(axis.images for axis in perfect.axes)


# --------------------------------------------------------------------------
# Predicted probabilities and samples


def test_probability_examples_mix_wrong_and_right():
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 2, 2, 0, 4, 1])           # wrong at 1, 3, 5
    indices = diagnostics.probability_examples(y_true, y_pred, count=4)
    np.testing.assert_array_equal(indices, [1, 3, 0, 2])


def test_probability_bars_highlight_the_true_class():
    probabilities = np.full((3, 10), 0.02)
    probabilities[0, 4] = 0.82        # example 0: true 4, predicted 4
    probabilities[1, 7] = 0.82        # example 1: true 2, predicted 7
    probabilities[2, 0] = 0.82
    y_true = np.array([4, 2, 0])
    images = np.zeros((3, 28, 28, 1), dtype=np.uint8)
    figure = diagnostics.probability_bars(images, probabilities, y_true, [0, 1])
    bar_axes = [axis for axis in figure.axes if axis.patches]
    assert len(bar_axes) == 2
    for axis, truth, expected in zip(bar_axes, (4, 2), (diagnostics.CORRECT_COLOR, diagnostics.WRONG_COLOR)):
        colors = [mcolors.to_hex(patch.get_facecolor()) for patch in axis.patches]
        assert colors[truth] == mcolors.to_hex(expected)
        others = {c for i, c in enumerate(colors) if i != truth}
        assert others == {mcolors.to_hex(diagnostics.OTHER_COLOR)}
        heights = [patch.get_height() for patch in axis.patches]
        np.testing.assert_allclose(heights, probabilities[[0, 1][bar_axes.index(axis)]])
    assert bar_axes[1].get_title() == "true 2, predicted 7"
    with pytest.raises(ValueError):
        diagnostics.probability_bars(images, probabilities, y_true, [])


def test_sample_grid_titles_are_the_labels():
    images = np.zeros((5, 28, 28, 1), dtype=np.uint8)
    figure = diagnostics.sample_grid(images, [3, 1, 4, 1, 5], count=4)
    assert [axis.get_title() for axis in figure.axes if axis.images] == ["3", "1", "4", "1"]
    named = diagnostics.sample_grid(images, [0, 1], class_names=["zero", "one"])
    assert [axis.get_title() for axis in named.axes if axis.images] == ["zero", "one"]


def test_learning_curves_of_a_single_epoch_show_a_point():
    from analysis.plots import common

    figure = common.learning_curves({"net": [{"train_loss": [1.0], "val_loss": [1.2]}]})
    assert [line.get_marker() for line in figure.axes[0].lines] == ["o", "o"]
    longer = common.learning_curves({"net": [{"train_loss": [1.0, 0.5], "val_loss": [1.2, 0.9]}]})
    assert [line.get_marker() for line in longer.axes[0].lines] == ["None", "None"]
