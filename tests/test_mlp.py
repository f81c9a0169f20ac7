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


def train_variants(run, config, variants, keep_images=False, use_test=True):
    """What the runner does for the chapter's experiments, in this process:
    every declared run, then the assembly."""
    runs = experiments.variant_runs(config, variants, use_test)
    run.results = [experiments.train_one(run, item) for item in runs]
    return experiments.assemble_variants(run, config, variants, keep_images, use_test)


TINY_CONFIG = {"epochs": 2, "seeds": [0, 1], "split_seed": 0, "batch_size": 32,
               "data": {"train": 200, "validation": 50, "test": None}}


def test_variants_of_a_seed_start_from_the_same_dense_weights(tiny_mnist, monkeypatch):
    starts = []
    original_fit = training.fit

    def recording_fit(model, *args, **kwargs):
        starts.append([w.copy() for layer in models.dense_layers(model) for w in layer.get_weights()])
        return original_fit(model, *args, **kwargs)

    monkeypatch.setattr(training, "fit", recording_fit)
    variants = {"adam": {"optimizer": "adam"}, "adagrad": {"optimizer": "adagrad", "learning_rate": 0.05},
                "layer_norm_after_relu": {"optimizer": "adam", **experiments.LAYER_NORM_VARIANTS[
                    "layer_norm_after_relu"]}}
    output = train_variants(_FakeRun(tiny_mnist), TINY_CONFIG, variants, keep_images=True)
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
    assert output["parameters"]["layer_norm_after_relu"] == 79510 + 2 * 784 + 2 * 100
    assert output["optimizer_settings"]["adagrad"]["initial_accumulator_value"] == pytest.approx(0.1)
    assert output["optimizer_settings"]["adam"]["learning_rate"] == pytest.approx(1e-3)
    # The rate asked for reaches the optimizer; a missing one is Keras's default.
    assert output["optimizer_settings"]["adagrad"]["learning_rate"] == pytest.approx(0.05)
    assert output["learning_rates"] == {"adam": 1e-3, "adagrad": 0.05, "layer_norm_after_relu": 1e-3}
    assert output["test_images"].shape == (80, 28, 28, 1)


def test_the_sweep_never_uses_the_test_set(tiny_mnist, monkeypatch):
    evaluated = []
    original_evaluate = training.evaluate

    def recording_evaluate(model, x, y):
        evaluated.append(len(y))
        return original_evaluate(model, x, y)

    monkeypatch.setattr(training, "evaluate", recording_evaluate)
    config = {**TINY_CONFIG, "epochs": 1, "seeds": [experiments.SWEEP_SEED]}
    output = train_variants(_FakeRun(tiny_mnist), config,
                            {"adam@0.001": {"optimizer": "adam"}}, use_test=False)
    assert evaluated and len(tiny_mnist.y_test) not in evaluated     # 80 test digits, never seen
    assert "test_accuracy" not in output["scores"]["adam@0.001"]
    assert "predictions" not in output and "test_labels" not in output


def test_best_rate_is_chosen_on_validation_and_never_a_diverged_run():
    assert experiments.best_rate([1e-3, 1e-2, 1e-1], [0.90, 0.95, 0.93]) == 1e-2
    assert experiments.best_rate([1e-3, 1e-2], [0.90, float("nan")]) == 1e-3
    assert experiments.best_rate([1e-3, 1e-2], [0.95, 0.95]) == 1e-3     # a tie: the first listed
    with pytest.raises(ValueError):
        experiments.best_rate([1e-3], [float("nan")])


def test_comparison_trains_a_tuned_rate_only_when_it_differs_from_the_default():
    assert experiments.default_learning_rate("adagrad") == pytest.approx(
        float(keras.optimizers.Adagrad().get_config()["learning_rate"]))
    variants, tuned = experiments.comparison_variants({"adam": 1e-3, "adagrad": 1e-1})
    assert tuned == {"adam": "adam", "adagrad": "adagrad_tuned"}
    assert list(variants) == ["adam", "adagrad", "adagrad_tuned"]
    assert variants["adagrad_tuned"] == {"optimizer": "adagrad", "learning_rate": 1e-1}
    assert variants["adagrad"]["learning_rate"] == experiments.default_learning_rate("adagrad")


def test_recompiling_keeps_the_weights():
    """The mechanism behind the coursework's finding (experiments.mlp.recompiled)."""
    training.set_seed(0)
    model = experiments.build_model({})
    x, y = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32), np.arange(64) % 10
    training.compile_model(model, experiments.make_optimizer("adam"))
    training.fit(model, x, y, epochs=1, batch_size=32)
    trained = [w.copy() for w in model.get_weights()]
    training.compile_model(model, experiments.make_optimizer("adagrad"))
    for before, after in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_the_assignments_placement_normalizes_after_the_relu():
    after = experiments.build_model(experiments.LAYER_NORM_VARIANTS["layer_norm_after_relu"])
    before = experiments.build_model(experiments.LAYER_NORM_VARIANTS["layer_norm_before_relu"])
    kinds = [type(layer).__name__ for layer in after.layers]
    assert kinds == ["Flatten", "LayerNormalization", "Dense", "LayerNormalization", "Dense"]
    assert after.get_layer("hidden_1").activation.__name__ == "relu"
    assert before.get_layer("hidden_1").activation.__name__ == "linear"   # ReLU after the norm
    experiments.copy_dense_weights(before, after)                         # same Dense names


def test_optimizers_depend_on_the_sweep_and_layer_norm_on_the_optimizers():
    assert (experiments.optimizers.config("smoke")["learning_rates_key"]
            == experiments.learning_rates.key("smoke"))
    assert experiments.SWEEP_SEED not in experiments.optimizers.config("full")["seeds"]


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


@pytest.mark.parametrize("variant", ["plain", "layer_norm_before_relu", "layer_norm_after_relu"])
def test_derived_parameter_counts_match_keras(variant):
    normalize_input, normalize_hidden = chapter_tables.PLACEMENTS[variant]
    for hidden in (100, 37):
        model = models.mlp([hidden], normalization="layer" if normalize_hidden else None,
                           normalize_input=bool(normalize_input))
        assert chapter_tables.derived_parameters(variant, hidden=hidden) == model.count_params()
    built = experiments.build_model(experiments.LAYER_NORM_VARIANTS.get(variant, {}))
    assert chapter_tables.derived_parameters(variant) == built.count_params()
    assert chapter_tables.derived_parameters("plain") == (784 + 1) * 100 + (100 + 1) * 10 == 79510


# --------------------------------------------------------------------------
# Comparisons over seeds and the choice of optimizer


def _verdict(first, second, score="test_accuracy"):
    scores = {"a": {score: first}, "b": {score: second}}
    return chapter_tables.verdict(chapter_tables.compare(scores, "a", "b", score), score)


def test_verdicts_go_through_the_paired_statistics():
    # Paired: a constant per-seed gain of 0.5 points is clear although the
    # seeds' spread (1 point) is larger than the gain.
    clear = _verdict([0.905, 0.915, 0.925], [0.90, 0.91, 0.92])
    assert clear.startswith("a's test accuracy is higher than b's by 0.50 points")
    assert "paired over 3 seeds, a better on 3 of 3" in clear
    # Lower loss is better: the direction follows the score.
    loss = chapter_tables.compare({"a": {"test_loss": [0.3, 0.31, 0.29]},
                                   "b": {"test_loss": [0.2, 0.22, 0.19]}}, "a", "b", "test_loss")
    assert loss.outcome == "b_better" and loss.better_name == "b"
    with pytest.raises(ValueError):
        chapter_tables.compare({}, "a", "b", "nonsense")


def test_verdicts_for_a_tie_nan_a_single_seed_and_a_reversed_result():
    assert "reach the same test accuracy on every one of 3 seeds" in _verdict([0.9] * 3, [0.9] * 3)
    nan = _verdict([0.91, float("nan"), 0.92, 0.93], [0.90, 0.90, 0.91, 0.92])
    assert "1 run diverged and left out" in nan and "paired over 3 seeds" in nan
    single = _verdict([0.92], [0.90])
    assert single.startswith("on a single seed") and "not a verdict" in single
    reversed_result = _verdict([0.90, 0.91, 0.92], [0.905, 0.915, 0.925])
    assert reversed_result.startswith("a's test accuracy is lower than b's by 0.50 points")
    assert "a better on 0 of 3" in reversed_result
    unclear = _verdict([0.90, 0.92, 0.91], [0.91, 0.91, 0.91])
    assert unclear.startswith("there is no clear difference")
    assert "every run diverged" in _verdict([float("nan")] * 2, [0.9, 0.9])


class _FakeResult(dict):
    experiment = "mlp.fake"

    def data_source(self, name=None):
        return "fake digits"


def test_chosen_optimizer_uses_validation_not_test():
    result = _FakeResult(variants=["adam", "adagrad", "adagrad_tuned"],
                         tuned={"adam": "adam", "adagrad": "adagrad_tuned"}, scores={
        "adam": {"best_val_accuracy": [0.80, 0.81], "test_accuracy": [0.99, 0.99]},
        "adagrad": {"best_val_accuracy": [0.95, 0.95], "test_accuracy": [0.50, 0.50]},
        "adagrad_tuned": {"best_val_accuracy": [0.90, 0.91], "test_accuracy": [0.50, 0.50]},
    })
    # Only tuned settings compete (the default-rate AdaGrad is not one here).
    assert experiments.chosen_optimizer(result) == "adagrad_tuned"
    result["scores"]["adagrad_tuned"]["best_val_accuracy"] = [float("nan"), 0.99]
    assert experiments.chosen_optimizer(result) == "adam"        # a diverged run never wins


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


# --------------------------------------------------------------------------
# The coursework's sequence and the chapter's observations


def _recompiled(adam, adagrad, fresh):
    recompiled = _FakeResult(seed=0, histories={"adam": {"val_accuracy": adam},
                                                "adagrad": {"val_accuracy": adagrad}})
    optimizers = _FakeResult(seeds=[0, 1], scores={"adagrad": {"test_accuracy": [fresh, 0.5]}})
    return recompiled, optimizers


def test_recompiled_sentence_follows_the_run():
    reproduced = chapter_tables.recompiled_sentence(*_recompiled([0.95, 0.97], [0.975, 0.98], 0.93))
    assert "beats Adam's 97.00% by 1.00 points" in reproduced and "reproduced" in reproduced
    assert "reaches 93.00%" in reproduced and "trained for 2 more epochs" in reproduced
    not_reproduced = chapter_tables.recompiled_sentence(*_recompiled([0.95, 0.97], [0.96, 0.965], 0.93))
    assert "does not reproduce" in not_reproduced
    assert "diverged" in chapter_tables.recompiled_sentence(
        *_recompiled([0.95, 0.97], [float("nan"), float("nan")], 0.93))
    assert "explained by its protocol" in chapter_tables.recompiled_observation(
        *_recompiled([0.95, 0.97], [0.975, 0.98], 0.93))
    assert "does not by itself" in chapter_tables.recompiled_observation(
        *_recompiled([0.95, 0.97], [0.96, 0.965], 0.93))
    table = chapter_tables.recompiled_table(*_recompiled([0.95, 0.97], [0.975, 0.98], 0.93)).data
    assert "3–4" in table and "93.00%" in table


def test_optimizer_observation_separates_rate_from_optimizer():
    def comparison(a, b):
        return chapter_tables.compare({"adam": {"test_accuracy": a}, "adagrad": {"test_accuracy": b}},
                                      "adam", "adagrad", "test_accuracy")

    default = comparison([0.97, 0.971, 0.972], [0.92, 0.925, 0.921])
    tuned_close = comparison([0.97, 0.971, 0.972], [0.968, 0.972, 0.969])
    tuned_far = comparison([0.97, 0.971, 0.972], [0.93, 0.935, 0.931])
    text = chapter_tables.optimizer_observation(default, tuned_close)
    assert "Adam is clearly ahead of AdaGrad" in text and "belongs to the learning rate" in text
    assert "does not shrink the mean gap" in chapter_tables.optimizer_observation(default, tuned_far)


def test_overfitting_observation_reads_the_validation_curve():
    rising = _FakeResult(histories={"adam": [{"val_loss": [0.5, 0.3, 0.4], "train_loss": [0.5, 0.2, 0.1]}]})
    assert "lowest after epoch 2 of 3" in chapter_tables.overfitting_observation(rising, "adam")
    falling = _FakeResult(histories={"adam": [{"val_loss": [0.5, 0.4, 0.3], "train_loss": [0.5, 0.2, 0.1]}]})
    assert "still falling" in chapter_tables.overfitting_observation(falling, "adam")


def test_labels_show_the_learning_rate_of_optimizer_settings():
    result = _FakeResult(learning_rates={"adagrad_tuned": 0.1, "layer_norm_after_relu": 0.001})
    assert chapter_tables.label("adagrad_tuned", result) == "AdaGrad, η = 0.1"
    assert chapter_tables.label("layer_norm_after_relu", result) == chapter_tables.LABELS[
        "layer_norm_after_relu"]
    assert chapter_tables.label("adam") == "Adam"


def test_budget_callout_speaks_only_of_the_profile_it_was_built_with():
    from analysis import profiles, stats

    class _Budgeted(_FakeResult):
        def __init__(self, epochs, **values):
            super().__init__(**values)
            self.provenance = {"config": {"epochs": epochs}}

    optimizers = _Budgeted(20, seeds=[0, 1, 2], data={"train": 55000})
    sweep = _Budgeted(5)
    three = [stats.compare([0.9, 0.91, 0.92], [0.8, 0.82, 0.81])]
    callouts = {name: chapter_tables.budget_callout(profiles.get(name), optimizers, sweep, three)
                for name in ("smoke", "default", "full")}
    assert "20 epochs and 3 seeds on 55,000 training images" in callouts["default"]
    assert "for 5 epochs" in callouts["default"]
    assert "only show that the code runs" in callouts["smoke"]
    for name in ("default", "full"):
        assert "smoke" not in callouts[name]
    assert "The `full` profile uses 5 seeds" in callouts["default"]
    assert "`full` profile uses" not in callouts["full"]
    assert "fewer than three seeds" not in callouts["default"]
    two = [stats.compare([0.9, 0.91], [0.8, 0.82])]
    assert "fewer than three seeds" in chapter_tables.budget_callout(
        profiles.get("smoke"), optimizers, _Budgeted(1), two)
