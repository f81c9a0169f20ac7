"""The CNN chapter: its formulas against Keras, pooling by hand forward and
backward, the SVHN split, the networks' protocol and the computed sentences."""

import keras
import numpy as np
import pytest

from analysis import data, pooling, profiles, symbolic
from analysis.experiments import cnn as experiments
from analysis.tables import cnn as tables

L = keras.layers


# --- output sizes and parameter counts against Keras ---------------------------


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 3, 4, 5])
def test_output_size_formula_equals_keras_for_a_range_of_shapes(kernel, stride, padding):
    for size in range(kernel, 30, 4):
        expected = symbolic.output_size(size, kernel, stride, padding)
        for layer in (L.Conv2D(2, kernel, strides=stride, padding=padding),
                      L.MaxPooling2D(kernel, strides=stride, padding=padding),
                      L.AveragePooling2D(kernel, strides=stride, padding=padding)):
            assert layer.compute_output_shape((None, size, size, 3))[1] == expected


def test_output_size_with_explicit_zeros_equals_keras_zero_padding_then_valid():
    for size, kernel, stride, zeros in [(7, 3, 2, 1), (10, 5, 3, 2), (5, 5, 1, 0), (9, 4, 2, 1)]:
        model = keras.Sequential([keras.Input((size, size, 1)), L.ZeroPadding2D(zeros),
                                  L.Conv2D(1, kernel, strides=stride, kernel_initializer="zeros")])
        assert model.output_shape[1] == symbolic.output_size(size, kernel, stride, zeros)


def test_the_shape_grid_finds_no_mismatch_and_a_wrong_formula_would_be_caught(monkeypatch):
    assert experiments.shape_grid()["mismatches"] == 0
    # Feed the grid a formula without the "+ 1": it must notice.
    monkeypatch.setattr(experiments, "output_size", lambda n, k, s, p: symbolic.output_size(n, k, s, p) - 1)
    assert experiments.shape_grid(sizes=(7, 12), kernels=(3,), strides=(2,))["mismatches"] > 0


@pytest.mark.parametrize("kernel, channels_in, channels_out", [((3, 3), 1, 32), ((5, 3), 3, 12), ((1, 1), 64, 7)])
def test_conv_parameter_count_equals_keras(kernel, channels_in, channels_out):
    layer = L.Conv2D(channels_out, kernel, kernel_initializer="zeros")
    layer.build((None, 16, 16, channels_in))
    assert layer.count_params() == symbolic.conv_parameters(*kernel, channels_in, channels_out)


def test_every_layer_of_every_chapter_model_matches_the_formulas():
    for name, model in experiments.chapter_models().items():
        rows = experiments.layer_report(model)
        assert sum(row["keras_parameters"] for row in rows) == model.count_params(), name
        for row in rows:
            if row["formula_shape"] is not None:
                assert row["formula_shape"] == row["keras_shape"], (name, row)
            assert row["formula_parameters"] == row["keras_parameters"], (name, row)
        assert any(row["kind"] == "Conv2D" for row in rows)


def test_output_size_rejects_a_kernel_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        symbolic.output_size(3, 5)
    with pytest.raises(ValueError, match="at least 1"):
        symbolic.output_size(8, 2, 0)


# --- the worked pooling example against Keras ------------------------------------


@pytest.mark.parametrize("size", experiments.POOL_SIZES)
@pytest.mark.parametrize("kind", pooling.KINDS)
def test_pooling_by_hand_equals_keras_layers(size, kind):
    by_hand = pooling.pool(experiments.POOLING_EXAMPLE, size, kind=kind)
    np.testing.assert_allclose(by_hand, experiments.keras_pool(experiments.POOLING_EXAMPLE, size, kind),
                               atol=1e-5)


def test_the_worked_example_has_the_expected_values():
    # 3 × 3 windows of the 6 × 6 matrix: upper-left 1 3 2 / 5 6 1 / 4 2 8.
    np.testing.assert_array_equal(pooling.pool(experiments.POOLING_EXAMPLE, 3), [[8, 9], [9, 9]])
    assert pooling.pool(experiments.POOLING_EXAMPLE, 3, kind="average")[0, 0] == pytest.approx(32 / 9)
    assert pooling.pool(experiments.POOLING_EXAMPLE, 2).shape == (3, 3)
    steps = pooling.windows(experiments.POOLING_EXAMPLE, 3)
    assert [(w.top, w.left) for w in steps] == [(0, 0), (0, 3), (3, 0), (3, 3)]
    assert steps[0].argmax == (2, 2)


def test_pooling_rejects_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        pooling.pool(np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match="unknown pooling"):
        pooling.pool(np.ones((4, 4)), 2, kind="median")
    with pytest.raises(ValueError, match="upstream gradient"):
        pooling.backward(np.ones((4, 4)), np.ones((3, 3)), 2)


# --- pooling backward against autodiff --------------------------------------------


# Windows side by side (stride = size) and overlapping (stride 1: an entry can
# collect gradient from several windows).
@pytest.mark.parametrize("size, stride", [(2, None), (3, 1)])
def test_pooling_backward_by_hand_equals_autodiff(size, stride):
    differences = experiments.backward_check(size, stride, shape=(7, 6), seed=3)
    assert differences["max"] < 1e-5 and differences["average"] < 1e-5


def test_max_pooling_routes_the_gradient_to_the_argmax_only():
    matrix = np.arange(16.0).reshape(4, 4)
    gradient = pooling.backward(matrix, np.array([[1.0, 2.0], [3.0, 4.0]]), 2)
    # The largest entry of each 2 × 2 window is its lower-right one.
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(gradient, expected)
    average = pooling.backward(matrix, np.array([[1.0, 2.0], [3.0, 4.0]]), 2, kind="average")
    np.testing.assert_allclose(average[:2, :2], 0.25)


def test_a_wrong_backward_rule_is_caught_by_the_autodiff_comparison(monkeypatch):
    real = pooling.backward

    def spread_evenly(matrix, upstream, size, stride=None, kind="max"):
        return real(matrix, upstream, size, stride, "average")     # max pooling treated as average

    monkeypatch.setattr(pooling, "backward", spread_evenly)
    assert experiments.backward_check(2)["max"] > 0.1


# --- the SVHN split ----------------------------------------------------------------


def _fake_svhn():
    """A dataset the size of SVHN's format 2 whose every image is its own id."""
    train, test = 73257, 26032
    ids = np.arange(train + test, dtype=np.int32)
    labels = ids % 10
    return data.Dataset("svhn", ids[:train, None, None, None], labels[:train],
                        ids[train:, None, None, None], labels[train:], data.CLASS_NAMES["svhn"], None)


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_svhn_validation_has_7326_training_images_and_never_touches_test(name):
    budget = profiles.get(name).cnn.svhn
    parts = data.split(_fake_svhn(), budget, seed=0)
    validation, train, test = (set(x.ravel().tolist()) for x in (parts.x_val, parts.x_train, parts.x_test))
    assert len(parts.y_val) == experiments.SVHN_VALIDATION == 7326
    assert max(validation) < 73257                     # drawn from the training images
    assert not validation & test and not validation & train


# --- the networks follow the protocol ---------------------------------------------


def test_cifar_nets_use_same_padding_and_dropout_only_after_fc_layers():
    for name in ("a", "b", "c", "d"):
        model = experiments.cifar_model(name, "zeros")
        layers = model.layers
        assert all(layer.padding == "same" for layer in layers if isinstance(layer, L.Conv2D))
        for index, layer in enumerate(layers):
            if isinstance(layer, L.Dropout):
                assert isinstance(layers[index - 1], L.Dense) and layer.rate == 0.5
    d_layers = [type(layer) for layer in experiments.cifar_model("d", "zeros").layers]
    assert L.RandomFlip in d_layers and L.RandomTranslation in d_layers
    assert [type(x) for x in experiments.cifar_model("c", "zeros").layers] == d_layers[2:]
    with pytest.raises(ValueError, match="unknown CIFAR-10 network"):
        experiments.cifar_model("e")


def test_svhn_net_has_the_exercise_layers():
    model = experiments.svhn_model("zeros")
    assert [layer.filters for layer in model.layers if isinstance(layer, L.Conv2D)] == [9, 36, 49]
    assert [layer.pool_size for layer in model.layers if isinstance(layer, L.MaxPooling2D)] == [(3, 3)] * 3
    assert model.output_shape == (None, 10)


def test_augmentation_is_a_horizontal_flip_and_a_shift_of_a_tenth():
    # Keras's preprocessing layers pass images through unchanged at inference
    # (their documented behaviour); here: that net d uses the ones the chapter justifies.
    flip, shift = experiments.cifar_model("d", "zeros").layers[:2]
    assert isinstance(flip, L.RandomFlip) and flip.mode == "horizontal"
    assert isinstance(shift, L.RandomTranslation)
    assert shift.height_factor == shift.width_factor == experiments.TRANSLATION == 0.1


# --- helpers of the chapter's sentences ---------------------------------------------


def test_confused_pairs_add_both_directions_and_skip_empty_pairs():
    confusion = np.diag([50] * 3)
    confusion[0, 1], confusion[1, 0], confusion[2, 0] = 4, 3, 5
    pairs = experiments.confused_pairs(confusion, ["a", "b", "c"])
    assert [(p["classes"], p["mistakes"]) for p in pairs] == [(["a", "b"], 7), (["a", "c"], 5)]
    assert pairs[0]["share"] == pytest.approx(7 / 12)
    assert experiments.confused_pairs(np.diag([5, 5]), ["a", "b"]) == []


@pytest.mark.parametrize("accuracies, substitute, expected", [
    ([0.992, 0.994], False, "met: every network"),
    ([0.992, 0.985], False, "not met"),
    ([0.995], False, "single network"),
    ([0.995, 0.996], True, "cannot tell"),
    ([float("nan"), float("nan")], False, "diverged"),
])
def test_mnist_verdict_covers_every_outcome(accuracies, substitute, expected):
    assert expected in tables.mnist_verdict(accuracies, "MNIST", substitute)


def test_example_images_pick_one_test_image_per_class():
    labels = np.array([0, 1, 2, 0, 1, 2, 3])
    chosen = experiments.example_images(labels, seed=0)
    assert sorted(labels[chosen].tolist()) == [0, 1, 2, 3]
