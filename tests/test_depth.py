"""The depth chapter's experiments, summaries, verdicts, tables and figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest

from analysis import data, gradients, models, profiles, symbolic, training
from analysis.experiments import depth as experiments
from analysis.plots import depth as figures
from analysis.runner import Result
from analysis.tables import depth as summaries


# --------------------------------------------------------------------------
# Summaries and presentation, on hand-made results


def profile_values(depth, decay, scale, first=7.0, output=0.1):
    """Dense layers 1..depth and the output: hidden layer l holds
    scale · decay^(depth − l); layer 1 and the output hold unrelated values,
    which ratios over hidden-to-hidden layers must ignore."""
    hidden = [scale * decay ** (depth - layer) for layer in range(1, depth + 1)]
    return [first] + hidden[1:] + [output]


def fake_run(depth, activation, seed, decay=0.25, scale=1e-2, accuracy=0.5,
             weight_decay=1.0, **extra):
    history = {"step": [10, 20], "loss": [2.0, 1.5], "accuracy": [0.3, accuracy],
               "val_loss": [1.9, 1.4], "val_accuracy": [0.35, accuracy]}
    errors = profile_values(depth, decay, scale)
    weights = profile_values(depth, weight_decay, scale)
    run = {"depth": depth, "activation": activation, "initializer": "glorot_uniform",
           "normalization": None, "seed": seed, "history": history, "test_loss": 1.4,
           "test_accuracy": accuracy, "initial_errors": errors, "trained_errors": list(errors),
           "initial_gradients": weights, "trained_gradients": list(weights)}
    run.update(extra)
    return run


def fake_result(runs, name="depth.fake", chance=0.1, **config) -> Result:
    base = {"data": {"train": 100, "validation": 10, "test": 10}, "steps": 20,
            "snapshot_steps": 20, "seeds": [0, 1], "gradient_batch": 16, "units": 32,
            "learning_rate": 0.01, "batch_size": 32, "loss": "sparse_categorical_crossentropy"}
    provenance = {"config": {**base, **config},
                  "data": {"mnist": {"source_name": "fake digits", "substitute": False}}}
    metrics = {"runs": runs, "chance_accuracy": chance, "steps_per_epoch": 4,
               "sizes": {"train": 100, "val": 10, "test": 10, "batch": 16}}
    return Result(name, "key", metrics, {}, provenance, Path("."))


def test_ratios_and_factors_use_the_hidden_to_hidden_layers_only():
    result = fake_result([fake_run(6, "sigmoid", 0, decay=0.25, scale=1e-2),
                          fake_run(6, "sigmoid", 1, decay=0.25, scale=3e-2)])
    # Layers 2..6: four transitions of 0.25; layer 1 (7.0) and the output are ignored.
    assert summaries.first_to_last(result, "initial", depth=6) == pytest.approx(0.25 ** 4)
    np.testing.assert_allclose(summaries.seed_factors(result, "initial", depth=6), [0.25, 0.25])
    np.testing.assert_allclose(summaries.seed_factors(result, "initial", "weight", depth=6), [1, 1])
    assert summaries.vanishes(result, "initial", depth=6) is True
    assert summaries.vanishes(result, "initial", "weight", depth=6) is False
    assert summaries.last_hidden(result, "trained", depth=6) == pytest.approx(np.sqrt(3e-4))
    with pytest.raises(ValueError, match="three hidden layers"):
        summaries.seed_ratios(fake_result([fake_run(2, "relu", 0)]), "initial")


def test_unknown_stages_quantities_and_runs_are_refused():
    result = fake_result([fake_run(4, "relu", seed, decay=1.0) for seed in (0, 1)])
    with pytest.raises(ValueError, match="unknown stage"):
        summaries.first_to_last(result, "final", depth=4)
    with pytest.raises(ValueError, match="unknown quantity"):
        summaries.first_to_last(result, "initial", "signal", depth=4)
    with pytest.raises(ValueError, match="no runs"):
        summaries.select(result, depth=40)


def test_a_layer_without_gradient_is_reported_not_hidden(recwarn):
    dead, also_dead = fake_run(4, "relu", 0), fake_run(4, "relu", 1)
    dead["trained_gradients"][0] = 0.0
    for run in (dead, also_dead):
        run["trained_errors"][1] = 0.0
    # Nothing arrived on either seed: that counts as vanishing, not as missing runs.
    both = fake_result([dead, also_dead])
    assert summaries.vanishing(both, "trained", depth=4).dropped == 0
    assert summaries.vanishes(both, "trained", depth=4) is True
    result = fake_result([dead, fake_run(4, "relu", 1, decay=1.0)])
    assert summaries.first_to_last(result, "trained", depth=4) == 0.0
    assert summaries.vanishes(result, "trained", depth=4) is None     # the seeds disagree
    assert summaries.layers_without_gradient(result, "trained", depth=4) == 1
    assert summaries.layers_without_gradient(result, "initial", depth=4) == 0
    assert "1 of the 5 layers" in summaries.dead_layers(result, 4).data
    assert summaries.dead_layers(fake_result([fake_run(4, "relu", 0)]), 4).data == ""
    dead["trained_errors"][-2] = 0.0        # the last hidden layer: the ratio is undefined
    assert np.isnan(summaries.seed_ratios(result, "trained", depth=4)[0])
    assert "1 undefined run left out" in summaries.vanishing_phrase(result, "trained", depth=4)
    assert summaries.scientific(0.0) == "0 (no gradient)"
    assert summaries.scientific(float("nan")) == "undefined"
    figures.layer_gradients(result, stage="trained")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_position_words_every_outcome():
    def phrase(values, level=0.5):
        return summaries.position(summaries.against(values, level), "above", "below", "the level")

    assert phrase([0.6, 0.65, 0.7]).startswith("above (3 of 3 seeds above, 0 below)")
    assert phrase([0.1, 0.2, 0.3]).startswith("below (0 of 3 seeds above")
    assert phrase([0.5, 0.5]) == "sits exactly at the level on every seed"
    assert phrase([0.2, 0.9]).startswith("is not clearly above or below the level (1 of 2")
    assert phrase([0.7]) == "above on the single seed (no interval)"
    assert phrase([0.7, float("nan")]) == "above on the single seed (no interval); 1 undefined run left out"
    assert phrase([float("nan")] * 2).startswith("is undefined on every seed")


def test_observations_go_through_the_statistics_helper():
    runs = [fake_run(5, "relu", s, accuracy=a) for s, a in ((0, 0.90), (1, 0.92))]
    runs += [fake_run(5, "sigmoid", s, accuracy=0.11) for s in (0, 1)]
    runs += [fake_run(5, "tanh", s, accuracy=0.5) for s in (0, 1)]
    runs += [fake_run(20, "relu", s, accuracy=a) for s, a in ((0, 0.50), (1, 0.52))]
    runs += [fake_run(20, "sigmoid", s, accuracy=0.11) for s in (0, 1)]       # a tie
    runs += [fake_run(20, "tanh", s, accuracy=a) for s, a in ((0, float("nan")), (1, 0.6))]
    result = fake_result(runs, chance=0.11)
    assert summaries.learned(result, depth=5, activation="relu") == "yes"
    assert summaries.learned(result, depth=5, activation="sigmoid") == "no"
    text = summaries.observations(result).data
    assert "ReLU learned (2 of 2 seeds above, 0 below)" in text
    assert "sigmoid stayed at or near chance (0 of 2" in text
    assert ("the 20-layer network's test accuracy is lower than the 5-layer network's by "
            "40.0 points") in text
    # The sigmoid's accuracy is the same at both depths: a tie, never "rose".
    sigmoid_line = next(line for line in text.splitlines() if line.startswith("- **sigmoid**"))
    assert "reach the same test accuracy" in sigmoid_line and "rose" not in text
    # tanh at 20 layers diverged on one seed: noted, not averaged in.
    assert "1 run diverged" in text


def test_the_decay_table_compares_the_error_factor_with_sup_f_prime():
    runs = [fake_run(d, a, s) for d in (3, 6) for a in ("relu", "tanh") for s in (0, 1)]
    result = fake_result(runs)
    decay = summaries.decay(result).data
    rows = [line for line in decay.splitlines() if line.startswith("|")][2:]
    assert len(rows) == 4
    cells = [cell.strip() for cell in rows[0].split("|")]
    assert cells[3].startswith("0.250 ± 0.000")     # the error's factor per layer
    assert cells[4] == "1"                           # sup ReLU' from SymPy
    assert cells[5].startswith("1.000 ± 0.000")     # the weight gradient's
    verdicts = summaries.decay_verdicts(result, 6).data
    assert "which lies below sup f′ = 1 (0 of 2 seeds above, 2 below)" in verdicts
    assert "the error vanishes (0 of 2 seeds above, 2 below)" in verdicts


def test_results_from_different_protocols_are_not_compared():
    grid = fake_result([fake_run(4, "tanh", s) for s in (0, 1)])
    other = fake_result([fake_run(4, "lecun", s) for s in (0, 1)], steps=50)
    with pytest.raises(ValueError, match="steps"):
        summaries.check_comparable(grid, other)
    with pytest.raises(ValueError, match="steps"):
        figures.lecun_curves(grid, other)


def test_lecun_comparison_is_paired_and_growth_is_judged_per_seed():
    grid = fake_result([fake_run(4, "tanh", s, accuracy=0.5 + s / 100) for s in (0, 1, 2)],
                       seeds=[0, 1, 2])
    lecun = fake_result([fake_run(4, "lecun", s, decay=1.2, accuracy=0.6 + s / 100)
                         for s in (0, 1, 2)], seeds=[0, 1, 2])
    text = summaries.lecun_comparison(grid, lecun).data
    assert "the LeCun network's test accuracy is higher than the tanh network's by 10.0 points" in text
    assert "paired over 3 seeds" in text
    assert summaries.growth_phrase(lecun, "lecun", depth=4).startswith("grows towards the input (3 of 3 seeds above, 0 below)")


def remedies_pair():
    grid = fake_result([fake_run(4, a, s, decay=0.05) for a in ("relu", "tanh", "sigmoid")
                        for s in (0, 1)])
    variants = [("relu", "he_normal", None), ("relu", "he_normal", "batch"),
                ("tanh", "glorot_uniform", "layer"), ("sigmoid", "glorot_x16", None),
                ("sigmoid", "glorot_x16", "batch")]
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
    assert table.count("(n=2)") == len(rows) == 8
    assert "Glorot × 4 std" in table
    verdicts = summaries.remedy_verdicts(grid, remedies).data.splitlines()
    assert verdicts[5].startswith("- sigmoid with Glorot uniform initialisation and no "
                                  "normalization: at initialisation the error vanishes")
    assert "Glorot × 4 std initialisation and no normalization" in verdicts[6]
    assert "does not vanish" in verdicts[6] and "the network learned" in verdicts[6]
    # He vs Glorot start from different weights (unpaired); tanh + layer norm
    # starts from the baseline's Glorot weights (paired).
    assert "unpaired" in verdicts[1] and "paired over 2 seeds" in verdicts[4]


def test_the_synthesis_lists_computed_verdicts_with_pointers():
    grid, remedies = remedies_pair()
    lecun = fake_result([fake_run(4, "lecun", s, accuracy=0.6) for s in (0, 1)],
                        name="depth.fake_lecun")
    lines = summaries.synthesis(grid, lecun, remedies).data.splitlines()
    assert lines[0] == "- **4 hidden layers** (@tbl-depth-scores): ReLU, tanh and sigmoid learned."
    assert lines[1].endswith("(@tbl-depth-decay): it vanishes for ReLU, tanh and sigmoid.")
    assert "for ReLU, tanh and sigmoid, the weight gradient's factor" in lines[2]
    assert lines[3].endswith("its test accuracy is higher at 4 hidden layers.")
    assert "with ReLU with He normal and no normalization," in lines[4]
    assert "Glorot uniform and no normalization" in lines[4].split("learned:")[1]


def test_figures_have_a_row_per_quantity_and_a_column_per_depth():
    runs = [fake_run(d, a, s) for d in (3, 6) for a in ("relu", "tanh") for s in (0, 1)]
    lecun = [fake_run(d, "lecun", s) for d in (3, 6) for s in (0, 1)]
    grid, lecun_result = fake_result(runs), fake_result(lecun, name="depth.fake_lecun")
    figure = figures.layer_gradients(grid, lecun_result, stage="trained")
    axes = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in axes] == ["3 hidden layers", "6 hidden layers"] * 2
    assert axes[0].get_ylabel().startswith("max |δ|") and axes[2].get_ylabel() == "max |∂ℒ/∂W|"
    assert all(axis.get_yscale() == "log" for axis in axes)
    assert len(axes[0].get_lines()) == 3 + 2      # three activations and two layer markers
    curves = figures.lecun_curves(grid, lecun_result)
    assert len(curves.axes) == 2 * 2
    assert curves.axes[2].get_xlabel() == "optimizer step"
    grid, remedies = remedies_pair()
    assert len(figures.remedies(grid, remedies).axes) == 2 * 3


# --------------------------------------------------------------------------
# Budgets in optimizer steps


def test_the_schedule_covers_every_step_within_epochs_and_stops_at_the_snapshot():
    for total, snapshot, per_epoch in ((5157, 5157, 1719), (34380, 5157, 1719), (64, 40, 32)):
        pieces = experiments.schedule(total, snapshot, per_epoch, points=12)
        assert sum(steps for _, steps in pieces) == total
        ends = np.cumsum([steps for _, steps in pieces])
        assert snapshot in ends
        starts = ends - [steps for _, steps in pieces]
        # No piece crosses an epoch's end.
        assert all(start // per_epoch == (end - 1) // per_epoch == epoch
                   for (epoch, _), start, end in zip(pieces, starts, ends))
    with pytest.raises(ValueError, match="snapshot"):
        experiments.schedule(10, 11, 4, 3)


def test_budgets_keep_the_protocol_s_step_counts():
    """The snapshot sits at the protocol's 3 epochs of 55,000 images in
    batches of 32 in every serious profile, and the default trains at least
    that long (a 20-layer ReLU net needs more than 1,875 steps to learn)."""
    per_epoch = experiments.steps_per_epoch(60000 - 5000, experiments.BATCH_SIZE)
    assert per_epoch == 1719
    full, default = profiles.get("full").depth, profiles.get("default").depth
    assert full.snapshot_steps == default.snapshot_steps == 3 * per_epoch
    assert full.steps == 20 * per_epoch
    assert default.steps >= default.snapshot_steps
    assert 20 in default.depths


# --------------------------------------------------------------------------
# The experiments, on a tiny budget


@pytest.fixture
def tiny_profile(monkeypatch):
    """A profile too small for the chapter, for this test only. The runner
    hands its runs the profile by name, so the name is registered (and runs
    execute in this process, where the registration is seen)."""
    smoke = profiles.get("smoke")
    budget = profiles.DepthBudget(mnist=profiles.DataBudget(train=96, validation=32, test=64),
                                  steps=8, snapshot_steps=5, depths=(3,), gradient_batch=16)
    tiny = dataclasses.replace(smoke, name="tiny", seeds=2, depth=budget)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    monkeypatch.setenv("NNSTUDY_JOBS", "1")
    return tiny


def test_activations_experiment_records_every_run_and_is_cached(cache_dir, tiny_profile):
    result = experiments.activations(tiny_profile)
    config = result.provenance["config"]
    assert (config["steps"], config["snapshot_steps"]) == (8, 5)
    assert len(result["runs"]) == 1 * 3 * 2       # depths × activations × seeds
    for run in result["runs"]:
        for key in ("initial_gradients", "trained_gradients", "initial_errors", "trained_errors"):
            assert len(run[key]) == 3 + 1
        assert run["history"]["step"][-1] == 8 and 5 in run["history"]["step"]
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["initial_errors"] != run["trained_errors"]
    assert result["sizes"] == {"train": 96, "val": 32, "test": 64, "batch": 16}
    assert result["steps_per_epoch"] == 3
    assert experiments.activations(tiny_profile).from_cache


def test_each_run_starts_from_its_seeds_fresh_weights(cache_dir, tiny_profile):
    """Every (architecture, seed) run starts exactly where a model freshly
    built under its seed starts, and the seeds differ."""
    result = experiments.lecun(tiny_profile)
    config = result.provenance["config"]
    parts = data.split(data.load("mnist"), profiles.DataBudget(**config["data"]), seed=0)
    x = data.scale01(parts.x_train)[:config["gradient_batch"]]
    y = parts.y_train[:config["gradient_batch"]]
    for run in result["runs"]:
        training.set_seed(run["seed"])
        fresh = models.mlp([config["units"]] * run["depth"], activation_name="lecun",
                           kernel_initializer=config["initializer"])
        expected = gradients.dense_gradient_maxima(fresh, x, y, training=True)
        np.testing.assert_allclose(run["initial_gradients"], expected["kernel"], rtol=1e-5)
        np.testing.assert_allclose(run["initial_errors"], expected["error"], rtol=1e-5)
    first, second = (run["initial_errors"] for run in result["runs"])
    assert first != second


def test_one_seed_gives_every_activation_the_same_weights_and_batches():
    """What makes the chapter's comparisons between activations paired."""
    config = {"units": 8}
    built = []
    for name in ("relu", "tanh", "lecun"):
        training.set_seed(3)
        built.append(experiments._build(config, depth=3, activation=name,
                                        initializer="glorot_uniform", normalization=None))
    for other in built[1:]:
        for mine, theirs in zip(built[0].get_weights(), other.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    orders = [experiments._epoch_order(3, 50, 2) for _ in range(2)]
    np.testing.assert_array_equal(orders[0][1], orders[1][1])
    assert not np.array_equal(orders[0][1], experiments._epoch_order(4, 50, 2)[1])


def test_the_sigmoid_s_matched_initialisation_has_four_times_glorot_s_spread():
    # Glorot assumes a slope of 1 at 0; the sigmoid's is 1/4 (SymPy).
    slope = symbolic.activation("sigmoid").derivative.subs(symbolic.X, 0)
    assert experiments.INITIALIZERS["glorot_x16"]().scale == float(1 / slope ** 2)
    config = {"units": 64}
    spreads = {}
    for name in ("glorot_uniform", "glorot_x16"):
        training.set_seed(0)
        model = experiments._build(config, depth=3, activation="sigmoid", initializer=name,
                                   normalization=None)
        spreads[name] = np.std(keras.ops.convert_to_numpy(model.get_layer("hidden_2").kernel))
    assert spreads["glorot_x16"] / spreads["glorot_uniform"] == pytest.approx(4.0, rel=0.1)
    with pytest.raises(ValueError, match="unknown initializer"):
        experiments._build(config, depth=3, activation="sigmoid", initializer="xavier",
                           normalization=None)


def test_the_depth_budget_can_cut_the_seeds_of_this_chapter_alone(tiny_profile):
    assert experiments.activations.config(tiny_profile)["seeds"] == [0, 1]
    fewer = dataclasses.replace(tiny_profile, depth=dataclasses.replace(tiny_profile.depth, seeds=1))
    assert experiments.activations.config(fewer)["seeds"] == [0]


def test_remedies_cover_each_activation_with_matched_initialisation(tiny_profile):
    config = experiments.remedies.config(tiny_profile)
    assert config["depth"] == max(tiny_profile.depth.depths)
    variants = {(v["activation"], v["initializer"], v["normalization"]) for v in config["variants"]}
    # Glorot is matched to tanh (slope 1 at 0) and is Keras's default, so tanh
    # without normalization is the baseline itself and is not trained twice.
    assert variants == {("relu", "he_normal", None), ("relu", "he_normal", "batch"),
                        ("relu", "he_normal", "layer"), ("tanh", "glorot_uniform", "batch"),
                        ("tanh", "glorot_uniform", "layer"), ("sigmoid", "glorot_x16", None),
                        ("sigmoid", "glorot_x16", "batch"), ("sigmoid", "glorot_x16", "layer")}


def test_every_architecture_and_seed_is_a_run_of_its_own(tiny_profile):
    """The runner caches and trains each (architecture, seed) on its own; a
    run holds what it needs, not the experiment's list of seeds."""
    runs = experiments.activations.runs(tiny_profile)
    assert [(r["depth"], r["activation"], r["seed"]) for r in runs] == [
        (3, name, seed) for name in experiments.ACTIVATIONS for seed in (0, 1)]
    assert all("seeds" not in r and r["steps"] == 8 and r["initializer"] == "glorot_uniform"
               for r in runs)
    remedies = experiments.remedies.runs(tiny_profile)
    variants = experiments.remedies.config(tiny_profile)["variants"]
    assert len(remedies) == len(variants) * 2
    assert {(r["activation"], r["initializer"], r["normalization"]) for r in remedies} == {
        (v["activation"], v["initializer"], v["normalization"]) for v in variants}
