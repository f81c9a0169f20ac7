"""The depth chapter's experiments, summaries, tables and figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from analysis import data, gradients, models, profiles, training
from analysis.experiments import depth as experiments
from analysis.plots import depth as figures
from analysis.runner import Result
from analysis.tables import depth as summaries


# --------------------------------------------------------------------------
# Summaries and presentation, on hand-made results


def fake_run(depth, activation, seed, decay=0.25, scale=1e-2, accuracy=0.5, **extra):
    """A run whose gradient shrinks by ``decay`` per hidden layer towards the input."""
    hidden = [scale * decay ** (depth - layer) for layer in range(1, depth + 1)]
    history = {"loss": [2.0, 1.5], "accuracy": [0.3, accuracy], "val_loss": [1.9, 1.4],
               "val_accuracy": [0.35, accuracy]}
    run = {"depth": depth, "activation": activation, "initializer": "glorot_uniform",
           "normalization": None, "seed": seed, "history": history, "test_loss": 1.4,
           "test_accuracy": accuracy, "initial_gradients": hidden + [0.1],
           "trained_gradients": hidden + [0.1]}
    run.update(extra)
    return run


def fake_result(runs, name="depth.fake", chance=0.1, **config) -> Result:
    base = {"data": {"train": 100, "validation": 10, "test": 10}, "epochs": 2,
            "snapshot_epochs": 2, "seeds": [0, 1], "gradient_batch": 16, "units": 32,
            "learning_rate": 0.01, "batch_size": 32, "loss": "sparse_categorical_crossentropy"}
    provenance = {"config": {**base, **config},
                  "data": {"mnist": {"source_name": "fake digits", "substitute": False}}}
    metrics = {"runs": runs, "chance_accuracy": chance,
               "sizes": {"train": 100, "val": 10, "test": 10, "batch": 16}}
    return Result(name, "key", metrics, {}, provenance, Path("."))


def test_ratio_and_per_layer_factor_recover_a_geometric_decay():
    result = fake_result([fake_run(6, "sigmoid", 0, decay=0.25, scale=1e-2),
                          fake_run(6, "sigmoid", 1, decay=0.25, scale=3e-2)])
    assert summaries.first_to_last(result, "initial", depth=6) == pytest.approx(0.25 ** 5)
    assert summaries.per_layer_factor(result, "initial", depth=6) == pytest.approx(0.25)
    assert summaries.vanishes(result, "initial", depth=6)
    assert summaries.last_hidden(result, "trained", depth=6) == pytest.approx(np.sqrt(3e-4))


def test_flat_profiles_do_not_vanish_and_unknown_stages_are_refused():
    result = fake_result([fake_run(4, "relu", seed, decay=1.0) for seed in (0, 1)])
    assert summaries.first_to_last(result, "initial", depth=4) == pytest.approx(1.0)
    assert not summaries.vanishes(result, "initial", depth=4)
    with pytest.raises(ValueError, match="unknown stage"):
        summaries.first_to_last(result, "final", depth=4)
    with pytest.raises(ValueError, match="no runs"):
        summaries.select(result, depth=40)


def test_a_layer_without_gradient_is_reported_not_hidden(recwarn):
    dead = fake_run(4, "relu", 0)
    dead["trained_gradients"][0] = 0.0
    result = fake_result([dead, fake_run(4, "relu", 1)])
    assert summaries.first_to_last(result, "trained", depth=4) == 0.0
    assert summaries.vanishes(result, "trained", depth=4)
    assert summaries.layers_without_gradient(result, "trained", depth=4) == 1
    assert summaries.layers_without_gradient(result, "initial", depth=4) == 0
    dead["trained_gradients"][-2] = 0.0
    assert np.isnan(summaries.first_to_last(result, "trained", depth=4))
    assert summaries.scientific(0.0) == "0 (no gradient)"
    assert summaries.scientific(float("nan")) == "undefined"
    figures.layer_gradients(result, stage="trained")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_trains_ranking_and_observations_follow_the_numbers():
    runs = [fake_run(5, "relu", s, accuracy=0.9) for s in (0, 1)]
    runs += [fake_run(5, "sigmoid", s, accuracy=0.11) for s in (0, 1)]
    runs += [fake_run(20, "relu", s, accuracy=0.5) for s in (0, 1)]
    runs += [fake_run(20, "sigmoid", s, accuracy=0.12) for s in (0, 1)]
    result = fake_result(runs, chance=0.11)
    assert summaries.trains(result, depth=5, activation="relu")
    assert not summaries.trains(result, depth=5, activation="sigmoid")
    assert summaries.ranking(result, 5) == ["relu", "sigmoid"]
    text = summaries.observations(result).data
    assert "ReLU learned; sigmoid was at or near chance" in text
    assert "fell from 90.0% to 50.0%" in text
    assert "rose from 11.0% to 12.0%" in text


def test_scores_and_decay_tables_have_one_row_per_architecture():
    runs = [fake_run(d, a, s) for d in (3, 6) for a in ("relu", "tanh") for s in (0, 1)]
    result = fake_result(runs)
    scores = summaries.scores(result).data
    assert scores.count("(n=2)") == 2 * 4
    assert "Data: fake digits" in scores
    decay = summaries.decay(result).data
    rows = [line for line in decay.splitlines() if line.startswith("|")][2:]
    assert len(rows) == 4
    assert rows[0].split("|")[5].strip() == "0.250"   # the per-layer factor
    assert rows[0].split("|")[6].strip() == "1"       # sup ReLU' from SymPy


def test_results_from_different_protocols_are_not_compared():
    grid = fake_result([fake_run(4, "tanh", s) for s in (0, 1)])
    other = fake_result([fake_run(4, "lecun", s) for s in (0, 1)], epochs=5)
    with pytest.raises(ValueError, match="epochs"):
        summaries.check_comparable(grid, other)
    with pytest.raises(ValueError, match="epochs"):
        figures.lecun_curves(grid, other)


def remedies_pair():
    grid = fake_result([fake_run(4, a, s, decay=0.1) for a in ("relu", "tanh", "sigmoid")
                        for s in (0, 1)])
    variants = [("relu", "he_normal", None), ("relu", "he_normal", "batch"),
                ("tanh", "glorot_uniform", "layer"), ("sigmoid", "glorot_uniform", "batch")]
    runs = [fake_run(4, a, s, decay=1.0, accuracy=0.8, initializer=i, normalization=n)
            for a, i, n in variants for s in (0, 1)]
    return grid, fake_result(runs, name="depth.fake_remedies", depth=4)


def test_remedies_start_from_the_baseline_and_give_verdicts():
    grid, remedies = remedies_pair()
    rows = summaries.remedy_rows(grid, remedies)
    assert [(r["activation"], r["normalization"]) for r in rows][:3] == [
        ("relu", None), ("relu", None), ("relu", "batch")]
    assert rows[0]["result"] is grid and rows[1]["result"] is remedies
    table = summaries.remedies(grid, remedies).data
    assert table.count("(n=2)") == len(rows) == 7
    verdicts = summaries.remedy_verdicts(grid, remedies).data.splitlines()
    assert "sigmoid with Glorot uniform initialisation and no normalization: the gradient vanishes" in verdicts[5]
    assert "does not vanish" in verdicts[6] and "and the network trains" in verdicts[6]


def test_figures_have_one_panel_per_depth_and_log_gradients():
    runs = [fake_run(d, a, s) for d in (3, 6) for a in ("relu", "tanh") for s in (0, 1)]
    lecun = [fake_run(d, "lecun", s) for d in (3, 6) for s in (0, 1)]
    grid, lecun_result = fake_result(runs), fake_result(lecun, name="depth.fake_lecun")
    figure = figures.layer_gradients(grid, lecun_result, stage="trained")
    axes = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in axes] == ["3 hidden layers", "6 hidden layers"]
    assert all(axis.get_yscale() == "log" for axis in axes)
    assert len(axes[0].get_lines()) == 3 + 1      # three activations and the output marker
    curves = figures.lecun_curves(grid, lecun_result)
    assert len(curves.axes) == 2 * 2
    grid, remedies = remedies_pair()
    assert len(figures.remedies(grid, remedies).axes) == 2 * 3


# --------------------------------------------------------------------------
# The experiments, on a tiny budget


@pytest.fixture
def tiny_profile():
    smoke = profiles.get("smoke")
    budget = profiles.DepthBudget(mnist=profiles.DataBudget(train=96, validation=32, test=64),
                                  epochs=4, depths=(2,), gradient_batch=16)
    return dataclasses.replace(smoke, name="tiny", seeds=2, depth=budget)


def test_activations_experiment_records_every_run_and_is_cached(cache_dir, tiny_profile):
    result = experiments.activations(tiny_profile)
    config = result.provenance["config"]
    assert config["snapshot_epochs"] == 3          # the assignment's three epochs fit in four
    assert len(result["runs"]) == 1 * 3 * 2       # depths × activations × seeds
    for run in result["runs"]:
        assert len(run["initial_gradients"]) == len(run["trained_gradients"]) == 2 + 1
        assert len(run["history"]["val_accuracy"]) == 4
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["initial_gradients"] != run["trained_gradients"]
    assert result["sizes"] == {"train": 96, "val": 32, "test": 64, "batch": 16}
    assert experiments.activations(tiny_profile).from_cache


def test_a_reused_model_starts_each_seed_from_that_seeds_fresh_weights(cache_dir, tiny_profile):
    """The experiment compiles once per architecture; seed 1 must still start
    exactly where a model freshly built under seed 1 starts."""
    result = experiments.lecun(tiny_profile)
    config = result.provenance["config"]
    parts = data.split(data.load("mnist"), profiles.DataBudget(**config["data"]), seed=0)
    x = data.scale01(parts.x_train)[:config["gradient_batch"]]
    y = parts.y_train[:config["gradient_batch"]]
    for run in result["runs"]:
        training.set_seed(run["seed"])
        fresh = models.mlp([config["units"]] * run["depth"], activation_name="lecun",
                           kernel_initializer=config["initializer"])
        expected = list(gradients.max_abs_kernel_gradients(fresh, x, y, training=True).values())
        np.testing.assert_allclose(run["initial_gradients"], expected, rtol=1e-5)
    first, second = (run["initial_gradients"] for run in result["runs"])
    assert first != second


def test_remedies_cover_each_activation_with_matched_initialisation(tiny_profile):
    config = experiments.remedies.config(tiny_profile)
    assert config["depth"] == max(tiny_profile.depth.depths)
    variants = {(v["activation"], v["initializer"], v["normalization"]) for v in config["variants"]}
    # Glorot is Keras's default, so tanh and sigmoid without normalization are
    # the baseline itself and are not trained twice.
    assert variants == {("relu", "he_normal", None), ("relu", "he_normal", "batch"),
                        ("relu", "he_normal", "layer"), ("tanh", "glorot_uniform", "batch"),
                        ("tanh", "glorot_uniform", "layer"), ("sigmoid", "glorot_uniform", "batch"),
                        ("sigmoid", "glorot_uniform", "layer")}
