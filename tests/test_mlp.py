"""The MLP chapter's training protocol, checks, comparisons and exports."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from analysis import data, models, symbolic, training
from analysis.experiments import mlp as experiments
from analysis.tables import mlp as chapter_tables


def _toy_data(count=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x, y


# --------------------------------------------------------------------------
# Callbacks: training metrics and the best epoch


def test_train_metrics_callback_matches_evaluate_on_the_training_data():
    x, y = _toy_data()
    training.set_seed(0)
    # Dropout makes Keras's running training loss differ from a clean pass.
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(2, activation="softmax")])
    training.compile_model(model, "adam")
    history = training.fit(model, x, y, epochs=3, batch_size=16,
                           callbacks=[training.EvaluateOnTraining(x, y)])
    scores = training.evaluate(model, x, y)
    assert len(history["train_loss"]) == 3
    np.testing.assert_allclose(history["train_loss"][-1], scores["loss"], rtol=1e-5)
    np.testing.assert_allclose(history["train_accuracy"][-1], scores["accuracy"], rtol=1e-6)
    # ...and it is not Keras's running mean over the epoch (with dropout on).
    assert abs(history["train_loss"][-1] - history["loss"][-1]) > 1e-4


class _ScriptedValidation(keras.callbacks.Callback):
    """Overwrites val_accuracy with a script and records the weights of every epoch."""

    def __init__(self, script):
        super().__init__()
        self.script, self.weights = script, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.script[epoch]
        self.weights.append(self.model.get_weights())


def test_best_epoch_weights_are_restored_without_early_stopping():
    x, y = _toy_data()
    training.set_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    training.compile_model(model, "sgd")
    script = [0.2, 0.9, 0.3, 0.9, 0.5]         # best at epoch 2 (index 1); a later tie must not win
    scripted = _ScriptedValidation(script)
    history = training.fit(model, x, y, epochs=5, batch_size=16, validation_data=(x, y),
                           callbacks=[scripted, training.restore_best_weights(5)])
    assert len(history["loss"]) == 5            # trained to the end
    for restored, best in zip(model.get_weights(), scripted.weights[1]):
        np.testing.assert_array_equal(restored, best)
    assert not np.allclose(model.get_weights()[0], scripted.weights[-1][0])
    assert training.best_epoch(history, "val_accuracy") == 1
    with pytest.raises(ValueError):
        training.restore_best_weights(0)


# --------------------------------------------------------------------------
# The protocol of every training run


class _FakeRun:
    """What an experiment sees from the runner, for a direct call in a test."""

    def __init__(self, dataset):
        self.dataset = dataset

    def data(self, name):
        assert name == "mnist"
        return self.dataset

    def progress(self, iterable, description, total=None, leave=False):
        return iterable

    def epoch_bar(self, description="epochs"):
        return keras.callbacks.Callback()


@pytest.fixture(scope="module")
def tiny_mnist():
    """A few hundred real digits (the offline default, or real MNIST if present)."""
    full = data.load("mnist")
    return SimpleNamespace(x_train=full.x_train[:300], y_train=full.y_train[:300],
                           x_test=full.x_test[:80], y_test=full.y_test[:80])


TINY_CONFIG = {"epochs": 2, "seeds": [0, 1], "split_seed": 0, "batch_size": 32,
               "data": {"train": 200, "validation": 50, "test": None}}


def test_variants_of_a_seed_start_from_the_same_dense_weights(tiny_mnist, monkeypatch):
    starts = []
    original_fit = training.fit

    def recording_fit(model, *args, **kwargs):
        starts.append([w.copy() for layer in models.dense_layers(model) for w in layer.get_weights()])
        return original_fit(model, *args, **kwargs)

    monkeypatch.setattr(training, "fit", recording_fit)
    variants = {"adam": {"optimizer": "adam"}, "adagrad": {"optimizer": "adagrad"},
                "layer_norm_hidden": {"optimizer": "adam", "normalization": "layer"}}
    output = experiments.train_variants(_FakeRun(tiny_mnist), TINY_CONFIG, variants, keep_images=True)
    assert len(starts) == 2 * 3
    for seed_index in range(2):
        first, *others = starts[3 * seed_index: 3 * seed_index + 3]
        for other in others:
            for a, b in zip(first, other):
                np.testing.assert_array_equal(a, b)
    assert not np.array_equal(starts[0][0], starts[3][0])     # another seed, other weights

    # What the chapter reads from the result.
    assert output["data"]["train"] == 200 and output["data"]["validation"] == 50
    assert output["data"]["classes"] == len(np.unique(tiny_mnist.y_train[:300]))
    assert output["predictions"].shape == (3, 2, 80)
    for index, name in enumerate(variants):
        scores, histories = output["scores"][name], output["histories"][name]
        assert len(histories) == 2 and len(histories[0]["train_loss"]) == 2
        for seed_index, history in enumerate(histories):
            # The test accuracy belongs to the restored best-epoch weights...
            assert scores["best_val_accuracy"][seed_index] == max(history["val_accuracy"])
            # ...and the stored predictions are those of the same weights.
            correct = output["predictions"][index, seed_index] == output["test_labels"]
            assert scores["test_accuracy"][seed_index] == pytest.approx(correct.mean(), abs=1e-6)
        np.testing.assert_allclose(output["probabilities"][index].sum(axis=1), 1.0, rtol=1e-5)
    assert output["parameters"]["layer_norm_hidden"] == 79710
    assert output["optimizer_settings"]["adagrad"]["initial_accumulator_value"] == pytest.approx(0.1)
    assert output["optimizer_settings"]["adam"]["learning_rate"] == pytest.approx(1e-3)
    assert output["test_images"].shape == (80, 28, 28, 1)


def test_layer_norm_experiment_depends_on_the_optimizers_result():
    config = experiments.layer_norm.config("smoke")
    assert config["optimizers_key"] == experiments.optimizers.key("smoke")
    assert config["seeds"] == experiments.optimizers.config("smoke")["seeds"]
    # Another optimizers result (here: another profile's) means another key.
    assert experiments.layer_norm.key("smoke") != experiments.layer_norm.key("default")


# --------------------------------------------------------------------------
# The layer-norm gradient check


def _without_normalized_term(upstream, cache):
    normalized, sigma, gain = cache
    scaled = gain * upstream
    return (scaled - scaled.mean(axis=-1, keepdims=True)) / sigma


def test_layer_norm_backward_formula_matches_keras_autodiff():
    check = experiments.layer_norm_gradient_error(units=50, examples=4, seed=1)
    assert check["gradient_scale"] > 0.1
    assert check["max_relative_error"] < 1e-5


def test_layer_norm_numeric_check_rejects_a_wrong_formula():
    check = experiments.layer_norm_gradient_error(units=50, examples=4, seed=1,
                                                  backward=_without_normalized_term)
    assert check["max_relative_error"] > 1e-2


def test_layer_norm_symbolic_check_accepts_the_formula_and_rejects_a_wrong_one():
    assert symbolic.check_layernorm_backward(units=3) is True

    def symbolic_wrong(normalized, scaled, sigma):
        mean = sum(scaled) / len(scaled)
        return [(g - mean) / sigma for g in scaled]

    assert symbolic.check_layernorm_backward(units=3, backward=symbolic_wrong) is False


# --------------------------------------------------------------------------
# Parameter counts


@pytest.mark.parametrize("variant", ["plain", "layer_norm_hidden", "layer_norm_input_hidden"])
def test_derived_parameter_counts_match_keras(variant):
    normalize_input, normalize_hidden = chapter_tables.PLACEMENTS[variant]
    for hidden in (100, 37):
        model = models.mlp([hidden], normalization="layer" if normalize_hidden else None,
                           normalize_input=bool(normalize_input))
        assert chapter_tables.derived_parameters(variant, hidden=hidden) == model.count_params()
    assert chapter_tables.derived_parameters("plain") == (784 + 1) * 100 + (100 + 1) * 10 == 79510


def test_parameter_equation_carries_its_label():
    text = chapter_tables.parameter_equation(label="eq-mlp-parameters").data
    assert text.startswith("$$") and text.endswith("{#eq-mlp-parameters}")


# --------------------------------------------------------------------------
# Comparisons over seeds and the choice of optimizer


def test_comparison_direction_and_clarity():
    scores = {"a": {"test_loss": [0.30, 0.31, 0.29], "test_accuracy": [0.90, 0.91, 0.92]},
              "b": {"test_loss": [0.20, 0.21, 0.19], "test_accuracy": [0.905, 0.915, 0.925]}}
    loss = chapter_tables.compare(scores, "a", "b", "test_loss")
    assert (loss.better, loss.worse) == ("b", "a")           # lower loss is better
    assert loss.clear                                         # gap 0.10 > 0.01 + 0.01
    accuracy = chapter_tables.compare(scores, "a", "b", "test_accuracy")
    assert accuracy.better == "b" and not accuracy.clear      # gap 0.005 < 0.01 + 0.01
    sentence = chapter_tables.verdict(accuracy)
    assert "do not separate" in sentence and "0.50 percentage points" in sentence
    assert "is larger than" in chapter_tables.verdict(loss)
    with pytest.raises(ValueError):
        chapter_tables.compare(scores, "a", "b", "nonsense")


class _FakeResult(dict):
    experiment = "mlp.fake"

    def data_source(self, name=None):
        return "fake digits"


def test_chosen_optimizer_uses_validation_not_test():
    result = _FakeResult(variants=["adam", "adagrad"], scores={
        "adam": {"best_val_accuracy": [0.80, 0.81], "test_accuracy": [0.99, 0.99]},
        "adagrad": {"best_val_accuracy": [0.90, 0.91], "test_accuracy": [0.50, 0.50]},
    })
    assert experiments.chosen_optimizer(result) == "adagrad"


def test_history_csv_has_one_row_per_run_and_epoch(tmp_path):
    histories = {"adam": [{"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]},
                          {"loss": [0.9, 0.4], "val_loss": [1.0, 0.5]}]}
    result = _FakeResult(variants=["adam"], seeds=[0, 1], histories=histories)
    text = chapter_tables.history_csv(result, path=tmp_path / "history.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    assert list(rows[0]) == ["experiment", "variant", "seed", "epoch", "loss", "val_loss"]
    assert rows[3] == {"experiment": "mlp.fake", "variant": "adam", "seed": "1", "epoch": "2",
                       "loss": "0.4", "val_loss": "0.5"}
    assert (tmp_path / "history.csv").read_text() == text
