"""The generalization chapter: its formulas against Keras, the sweeps' choice on
validation data, the budgets, and verdicts for every outcome."""

import math

import keras
import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis import profiles
from analysis.experiments import generalization as experiments
from analysis.tables import generalization as tables


# --- the formulas against Keras ------------------------------------------------


def test_l2_gradient_is_two_lambda_w_by_keras_autodiff():
    check = experiments.sgd_step_check(strength=0.05)
    assert check["gradient_error"] < 1e-4
    # the "½ λ‖w‖²" convention's gradient λw is off by half the penalty's gradient
    wrong = experiments.sgd_step_check(strength=0.05, penalty_gradient=lambda w, lam: lam * w)
    assert wrong["gradient_error"] > 0.1


def test_sgd_with_l2_equals_weight_decay_for_one_step():
    check = experiments.sgd_step_check(strength=0.05, learning_rate=0.1)
    assert check["decay_error"] < 1e-6
    assert check["untouched_error"] == 0.0       # biases and the output layer: no penalty


def test_adam_and_adamw_steps_follow_the_displayed_formulas_and_differ():
    check = experiments.adam_step_check(strength=0.05)
    assert check["adam_l2_error"] < 1e-5 and check["adamw_error"] < 1e-5
    assert check["difference"] > 100 * max(check["adam_l2_error"], check["adamw_error"])


def test_inverted_dropout_keeps_the_mean_within_a_tolerance_from_the_sample_size():
    check = experiments.dropout_mean_check(rate=0.5, units=64, masks=4000)
    assert check["passed"]
    # The threshold is the Bonferroni bound for the false-alarm rate, not a constant.
    assert check["threshold"] == pytest.approx(scipy_stats.norm.ppf(1 - 1e-3 / 128))
    assert abs(check["kept"] - 0.5) < 5 * math.sqrt(0.25 / (64 * 4000))


def test_dropout_without_rescaling_fails_the_mean_check():
    def unscaled(inputs, rate, seed):
        return keras.layers.Dropout(rate, seed=seed)(inputs, training=True) * (1 - rate)

    assert not experiments.dropout_mean_check(rate=0.5, masks=4000, dropout=unscaled)["passed"]


def test_dropout_check_rejects_a_rate_outside_zero_and_one():
    with pytest.raises(ValueError, match="strictly between"):
        experiments.dropout_mean_check(rate=1.0)


def test_adamw_decay_matches_sgd_decay_per_step():
    strength = 3e-4
    decay = experiments.adamw_decay(strength)
    assert 1 - experiments.ADAM_LEARNING_RATE * decay == pytest.approx(1 - 2 * experiments.LEARNING_RATE * strength)


def test_adamw_decays_only_the_hidden_kernels():
    model = experiments.build_model({"l2": 1e-4, "dropout": 0.5})
    optimizer = experiments.make_optimizer({"optimizer": "adamw", "weight_decay": 0.01}, model)
    decayed = [v for v in model.trainable_variables if optimizer._use_weight_decay(v)]
    assert {id(v) for v in decayed} == {id(v) for v in experiments.hidden_kernels(model)}
    with pytest.raises(ValueError, match="unknown optimizer"):
        experiments.make_optimizer({"optimizer": "rmsprop"}, model)


def test_the_model_has_the_coursework_layers_and_the_variant_regularisers():
    model = experiments.build_model({"l2": 1e-3, "dropout": 0.2})
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [500, 300, 10]
    assert [layer.kernel_regularizer is not None for layer in dense] == [True, True, False]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2
    plain = experiments.build_model({})
    assert plain.count_params() == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10


# --- choices on validation data only -----------------------------------------------


def test_choose_takes_the_best_mean_validation_score_nan_worst_tie_first():
    assert experiments.choose([1, 2, 3], [[0.8, 0.9], [0.9, 0.95], [0.7, 0.7]]) == 1
    assert experiments.choose([1, 2], [[float("nan"), 0.99], [0.5, 0.5]]) == 1
    assert experiments.choose([1, 2], [[0.9], [0.9]]) == 0
    with pytest.raises(ValueError, match="diverged"):
        experiments.choose([1], [[float("nan")]])


class _FakeRun:
    def __init__(self, results):
        self.results = results


def _fake_output(val, test=None):
    scores = {"val_accuracy": val, "train_accuracy": 1.0, "best_val_accuracy": val, "weight_norm": 1.0,
              "train_loss": 0.1, "val_loss": 0.2, "epochs_trained": 1, "best_epoch": 1}
    if test is not None:
        scores.update(test_accuracy=test, gap=1.0 - test)
    return {"history": {"val_loss": [0.2]}, "scores": scores, "sizes": {"train": 10}}


def test_the_sweep_chooses_on_validation_and_never_sees_the_test_set():
    config = {"epochs": 1, "split_seed": 0, "batch_size": 128, "data": {}, "seeds": [0], "values": [1e-4, 1e-3]}
    runs = experiments.variant_runs(config, experiments._sweep_variants("l2", config["values"]),
                                    experiments.sweep_seeds(config), use_test=False)
    assert all(item["use_test"] is False for item in runs)
    assert all(item["seed"] >= experiments.SWEEP_SEED_BASE for item in runs)
    # Validation favours the second strength; the first would win on a test score.
    result = experiments._sweep(_FakeRun([_fake_output(0.80), _fake_output(0.85)]), config, "l2")
    assert result["chosen"] == 1e-3
    assert "test_accuracy" not in result["scores"]["l2@0.001"]


def test_every_profile_declares_sweeps_without_the_test_set():
    for name in profiles.PROFILES:
        runs = experiments.l2_sweep.runs(name) + experiments.dropout_sweep.runs(name)
        assert runs and not any(item["use_test"] for item in runs), name


def test_better_regulariser_uses_validation_and_prefers_l2_on_a_tie():
    l2 = {"chosen_name": "a", "scores": {"a": {"val_accuracy": [0.9, 0.9]}}}
    dropout = {"chosen_name": "b", "scores": {"b": {"val_accuracy": [0.9, 0.9]}}}
    assert experiments.better_regulariser(l2, dropout) == "l2"
    dropout["scores"]["b"]["val_accuracy"] = [0.95, 0.91]
    assert experiments.better_regulariser(l2, dropout) == "dropout"


# --- budgets --------------------------------------------------------------------------


def test_replicas_and_protocol_per_profile():
    for profile in profiles.PROFILES.values():
        budget = profile.generalization
        if budget.epochs > 1:
            assert budget.seeds >= 3, profile.name
        assert budget.patience >= 1 and len(budget.l2_strengths) >= 2 and len(budget.train_sizes) >= 2
    full = profiles.get("full").generalization
    assert full.epochs == 40 and full.mnist.train is None and full.seeds >= 3
    for value in np.linspace(1e-6, 1e-3, 5):
        assert any(math.isclose(value, s, rel_tol=1e-9) for s in full.l2_strengths)
    assert max(full.l2_strengths) >= 1e-2 and max(full.dropout_rates) >= 0.8
    default = profiles.get("default").generalization
    assert any(math.isclose(value, s, rel_tol=1e-9) for value in np.linspace(1e-6, 1e-3, 5)
               for s in default.l2_strengths)


# --- verdicts for every outcome -----------------------------------------------------


def _methods(values: dict) -> dict:
    names = list(values)
    return {"variants": names, "seeds": list(range(len(values[names[0]]))),
            "settings": {name: {} for name in names},
            "scores": {name: {"test_accuracy": list(v), "gap": [1 - x for x in v],
                              "weight_norm": list(v), "train_accuracy": [1.0] * len(v),
                              "epochs_trained": [3] * len(v)} for name, v in values.items()},
            "histories": {name: [{"val_loss": [0.1, 0.2, 0.3]}] * len(values[name]) for name in names}}


@pytest.mark.parametrize("a, b, expected", [
    ([0.9, 0.91, 0.92], [0.8, 0.81, 0.82], "higher"),
    ([0.8, 0.81, 0.82], [0.9, 0.91, 0.92], "lower"),
    ([0.9, 0.9, 0.9], [0.9, 0.9, 0.9], "same"),
    ([0.9], [0.8], "single seed"),
    ([float("nan")] * 3, [0.9] * 3, "diverged"),
    ([0.9, 0.7, 0.95], [0.8, 0.9, 0.85], "no clear difference"),
])
def test_conclusions_handle_every_outcome(a, b, expected):
    result = _methods({"baseline": b, "early_stopping": a, "l2": a, "dropout": a, "adam": b,
                       "adam_l2": b, "adamw": a})
    text = tables.conclusions(result)
    assert expected in text
    assert text.count("\n- ") == 3


def test_best_method_with_every_run_diverged():
    result = _methods({"baseline": [float("nan")], "l2": [float("nan")]})
    assert "diverged" in tables.best_method(result)


def test_unknown_score_is_an_error():
    with pytest.raises(ValueError, match="unknown score"):
        tables.compare(_methods({"a": [1.0], "b": [1.0]}), "a", "b", "speed")


def test_overfitting_sentence_follows_the_curves():
    rising = {"histories": {"baseline": [{"val_loss": [1.0, 0.5, 0.7], "train_loss": [1.0, 0.4, 0.2]}]}}
    assert "lowest after epoch 2" in tables.overfitting(rising) and "kept falling" in tables.overfitting(rising)
    falling = {"histories": {"baseline": [{"val_loss": [1.0, 0.5, 0.4], "train_loss": [1.0, 0.4, 0.2]}]}}
    assert "not started to overfit" in tables.overfitting(falling)
    diverged = {"histories": {"baseline": [{"val_loss": [1.0, float("nan")], "train_loss": [1.0, 0.4]}]}}
    assert "diverged" in tables.overfitting(diverged)


class _FakeResult(dict):
    def __init__(self, values, epochs):
        super().__init__(values)
        self.provenance = {"config": {"epochs": epochs}}


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_a_profile_caveat_appears_only_under_its_profile(name):
    result = _FakeResult({"seeds": [0, 1, 2], "data": {"train": 2000}}, epochs=30)
    text = tables.budget_callout(profiles.get(name), result, _FakeResult({"seeds": [1000]}, epochs=30))
    assert ("`smoke` profile" in text) == (name == "smoke")
    assert ("this profile trains fewer images" in text) == (name == "default")
    assert text.startswith("::: {.callout-note}") and text.rstrip().endswith(":::")


def test_sweep_effect_compares_the_strongest_with_the_weakest_setting():
    result = {"kind": "l2", "values": [1e-6, 1e-2], "variants": ["weak", "strong"],
              "scores": {"weak": {"val_accuracy": [0.90, 0.91, 0.92]},
                         "strong": {"val_accuracy": [0.80, 0.81, 0.82]}}}
    assert "the λ = 0.01 network's final validation accuracy is lower" in tables.sweep_effect(result)
    result["kind"] = "dropout"
    result["scores"]["strong"]["val_accuracy"] = [0.90, 0.91, 0.92]
    assert "same final validation accuracy" in tables.sweep_effect(result)


@pytest.mark.parametrize("chosen, expected", [
    ("weak", "The chosen setting is the weakest one"),
    ("middle", "; and the λ = 0.01 network"),
    ("strong", "Against the weakest setting, λ = 1e-06, the λ = 0.01 network"),
])
def test_sweep_verdicts_for_every_position_of_the_chosen_setting(chosen, expected):
    result = {"kind": "l2", "values": [1e-6, 1e-3, 1e-2], "variants": ["weak", "middle", "strong"],
              "chosen_name": chosen,
              "scores": {"weak": {"val_accuracy": [0.90, 0.91, 0.92]},
                         "middle": {"val_accuracy": [0.91, 0.92, 0.93]},
                         "strong": {"val_accuracy": [0.80, 0.81, 0.82]}}}
    text = tables.sweep_verdicts(result)
    assert expected in text and text.endswith(".")
    if chosen == "strong":
        assert "; and" not in text


def test_the_numeric_transcriptions_are_the_displayed_formulas():
    import sympy as sp

    from analysis import symbolic
    from analysis.symbolic import regularization as rg

    adam = symbolic.equation("eq-generalization-adamw")
    assert sp.simplify(experiments.adam_l2_step(rg.W, rg.G, rg.ETA, rg.LAMBDA, rg.EPSILON) - adam["adam_l2"]) == 0
    assert sp.simplify(experiments.adamw_step(rg.W, rg.G, rg.ETA, rg.DECAY, rg.EPSILON) - adam["adamw"]) == 0
    variance = symbolic.equation("eq-generalization-dropout")["variance"]
    assert sp.simplify(experiments.dropout_variance(rg.ACTIVATION, rg.RATE) - variance) == 0
    # a wrong transcription is told apart
    assert sp.simplify(experiments.adamw_step(rg.W, rg.G, rg.ETA, 0, rg.EPSILON) - adam["adamw"]) != 0


def test_the_parameter_count_is_keras_count():
    assert experiments.parameter_count() == experiments.build_model({}).count_params()


def test_the_experiments_do_not_depend_on_the_symbolic_package():
    from analysis import runner

    assert not any(name.startswith("analysis.symbolic")
                   for name in runner.code_closure("analysis.experiments.generalization"))
