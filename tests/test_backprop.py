"""The backpropagation chapter: its experiments at smoke size, and the logic
behind the statements it computes from their numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from analysis import profiles, symbolic
from analysis.config import PROJECT_ROOT
from analysis.experiments import backprop as experiments
from analysis.runner import Result
from analysis.tables import backprop as chapter_tables

CHAPTER = PROJECT_ROOT / "chapters" / "backprop.qmd"


# --- experiments at the smoke profile ---------------------------------------


def test_experiments_at_smoke_return_what_the_chapter_reads(cache_dir):
    smoke = profiles.get("smoke")
    budget = smoke.backprop
    seeds = list(smoke.seed_list())

    checks = experiments.gradient_checks("smoke")
    assert [(row["activation"], row["seed"]) for row in checks["mlp"]] == [
        (name, seed) for name in symbolic.ACTIVATION_NAMES for seed in seeds
    ]
    assert max(row["max_error"] for row in checks["mlp"]) < 1e-7
    assert all(row["draws"] >= 1 for row in checks["mlp"])
    assert [set(row["errors"]) for row in checks["two_layer"]] == [{"W1", "b1", "W2", "b2"}] * len(seeds)
    assert chapter_tables.worst_error(checks, "two_layer") < 1e-8

    toy = experiments.toy_training("smoke")
    assert toy["loss_history"].shape == (len(seeds), 100)
    assert max(toy["final_loss"]) < 0.02  # the assignment's target

    default = experiments.cifar_default("smoke")
    assert default["loss_history"].shape == (budget.num_iters,)
    assert default["W1"].shape == (32 * 32 * 3, 50)
    assert default["sizes"] == {"train": budget.cifar.train, "validation": budget.cifar.validation,
                                "test": budget.cifar.test}
    assert 0.0 <= default["val_accuracy"] <= 1.0
    assert default.data_source("cifar10")

    sweep = experiments.cifar_sweep("smoke")
    grid = len(budget.sweep_hidden_sizes) * len(budget.sweep_learning_rates) * len(budget.sweep_regs)
    assert len(sweep["rows"]) == grid * len(budget.sweep_num_iters)
    best = sweep["best"]
    assert best["val_accuracy"] == max(row["val_accuracy"] for row in sweep["rows"])
    assert sweep["best_W1"].shape == (32 * 32 * 3, best["hidden_size"])
    assert [r["seed"] for r in sweep["replicates"]] == seeds
    # The replicate with the sweep's own seed is the chosen network itself.
    own = next(r for r in sweep["replicates"] if r["seed"] == sweep.provenance["config"]["seed"])
    assert own["test_accuracy"] == best["test_accuracy"]
    assert own["val_accuracy"] == best["val_accuracy"]

    gap = experiments.generalization_gap("smoke")
    settings = experiments.gap_settings(gap.provenance["config"])
    assert len(gap["runs"]) == len(settings) * len(seeds)
    for run in gap["runs"]:
        assert run["gap"] == pytest.approx(run["train_accuracy"] - run["test_accuracy"])

    # A second call reads the cache instead of training again.
    assert experiments.cifar_sweep("smoke").from_cache


def test_gap_settings_vary_one_factor_from_the_baseline():
    config = {"train_sizes": [4000, 1000], "hidden_sizes": [50, 200], "regs": [1.0, 0.0, 5.0]}
    settings = experiments.gap_settings(config)
    assert settings[0] == {"train_size": 1000, "hidden_size": 50, "reg": 0.0, "varied": "baseline"}
    assert [(s["varied"], s["train_size"], s["hidden_size"], s["reg"]) for s in settings[1:]] == [
        ("train_size", 4000, 50, 0.0),
        ("hidden_size", 1000, 200, 0.0),
        ("reg", 1000, 50, 1.0),
        ("reg", 1000, 50, 5.0),
    ]


def test_every_profile_has_sweep_checkpoints_on_epoch_boundaries():
    for profile in profiles.PROFILES.values():
        budget = profile.backprop
        per_epoch = max(budget.cifar.train / 200, 1)
        assert all(float(c / per_epoch).is_integer() for c in budget.sweep_num_iters[:-1]), profile.name
        assert max(budget.gap_train_sizes) <= budget.cifar.train, profile.name
        assert budget.cifar.test is None or budget.cifar.test <= 1000


# --- statements computed from numbers -----------------------------------------


def test_gap_direction_reads_the_numbers():
    assert chapter_tables.gap_direction([0.20, 0.22, 0.21], [0.05, 0.06, 0.04]) == "shrinks"
    assert chapter_tables.gap_direction([0.05, 0.06, 0.04], [0.20, 0.22, 0.21]) == "widens"
    # A change smaller than the seeds' spread is not a change.
    assert chapter_tables.gap_direction([0.10, 0.30, 0.20], [0.15, 0.25, 0.05]) == "unclear"
    assert chapter_tables.gap_direction([0.1, 0.1], [0.1, 0.1]) == "unclear"
    # One seed per level: no spread to compare with, the sign decides.
    assert chapter_tables.gap_direction([0.2], [0.1]) == "shrinks"
    with pytest.raises(ValueError):
        chapter_tables.gap_direction([], [0.1])


def _gap_result(gaps: dict) -> Result:
    """A generalization-gap result with the given gaps per (factor, level),
    three seeds each, test accuracy fixed at 0.7."""
    config = {"train_sizes": [1000, 8000], "hidden_sizes": [50, 200], "regs": [0.0, 5.0],
              "num_iters": 10, "learning_rate": 1e-3, "seeds": [0, 1, 2]}
    runs = []
    for setting in experiments.gap_settings(config):
        for seed in config["seeds"]:
            gap = gaps[setting["varied"]][seed]
            runs.append({**setting, "seed": seed, "train_accuracy": 0.7 + gap,
                         "test_accuracy": 0.7, "gap": gap})
    provenance = {"config": config, "data": {"cifar10": {"source_name": "made up", "substitute": False}}}
    return Result("backprop.generalization_gap", "key", {"runs": runs}, {}, provenance, Path("."))


def test_gap_answer_is_worded_from_the_numbers():
    result = _gap_result({
        "baseline": [0.20, 0.21, 0.22],
        "train_size": [0.02, 0.03, 0.04],   # shrinks
        "hidden_size": [0.30, 0.31, 0.29],  # widens
        "reg": [0.10, 0.35, 0.20],          # within the spread
    })
    summary = chapter_tables.gap_summary(result)
    assert {f: s["direction"] for f, s in summary.items()} == {
        "train_size": "shrinks", "hidden_size": "widens", "reg": "unclear"}
    assert summary["train_size"]["levels"] == [1000, 8000]
    answer = chapter_tables.gap_answer(result)
    assert "a larger training set (1,000 → 8,000) shrinks the gap (mean gap 21.0 → 3.0 points)" in answer
    assert "more hidden units (50 → 200) widen the gap" in answer
    assert "stronger regularisation (0 → 5) does not change the gap" in answer
    assert chapter_tables.gap_shrinkers(result) == ["a larger training set"]
    # Test accuracy is fixed at 0.7 in this made-up result: it did not move.
    assert chapter_tables.test_accuracy_effects(result) == (
        "with a larger training set test accuracy did not change clearly (70.0% → 70.0%)")
    assert not chapter_tables.gap_matches_expectation(result)
    table = chapter_tables.generalization_gap(result).data
    assert "21.0% ± 1.0% (n=3)" in table and "Data: made up" in table

    expected = _gap_result({
        "baseline": [0.20, 0.21, 0.22], "train_size": [0.02, 0.03, 0.04],
        "hidden_size": [0.21, 0.20, 0.22], "reg": [0.05, 0.06, 0.07]})
    assert chapter_tables.gap_matches_expectation(expected)
    assert chapter_tables.gap_shrinkers(expected) == ["a larger training set", "stronger regularisation"]


def test_target_statement_only_claims_what_the_data_allow():
    stand_in = chapter_tables.target_statement(0.83, "a stand-in", substitute=True)
    assert "83.0% on a stand-in, above 48%" in stand_in and "cannot tell" in stand_in
    assert chapter_tables.target_statement(0.49, "CIFAR-10", substitute=False).endswith("the target is met")
    assert chapter_tables.target_statement(0.47, "CIFAR-10", substitute=False).endswith("the target is not met")


def _default_result(loss, train_accuracy, val_accuracy, per_epoch=10):
    metrics = {"iterations_per_epoch": per_epoch, "train_accuracy": train_accuracy,
               "val_accuracy": val_accuracy}
    return Result("backprop.cifar_default", "key", metrics, {"loss_history": np.asarray(loss)}, {}, Path("."))


def test_default_diagnosis_follows_the_curves():
    falling = np.linspace(2.3, 1.8, 100)
    flat = np.full(100, 1.5)
    assert "underfits" in chapter_tables.default_diagnosis(_default_result(falling, 0.40, 0.39))
    assert "still falling" in chapter_tables.default_diagnosis(_default_result(falling, 0.40, 0.39))
    assert "begun to overfit" in chapter_tables.default_diagnosis(_default_result(flat, 0.60, 0.45))
    assert "levelled off" in chapter_tables.default_diagnosis(_default_result(flat, 0.40, 0.40))
    assert "converged without overfitting" in chapter_tables.default_diagnosis(_default_result(flat, 0.40, 0.40))


# --- equations: displayed, labelled and checked ------------------------------


def _chapter_equations():
    return (
        symbolic.backprop_equations()
        + (symbolic.softmax_gradient_instance(),)
        + tuple(item.equation() for item in symbolic.activations())
        + (symbolic.gradient_bound_equation(),)
        + (symbolic.central_difference_equation(),)
        + symbolic.two_layer_equations()
    )


def test_every_equation_the_chapter_displays_is_in_the_check_table():
    source = CHAPTER.read_text(encoding="utf-8")
    displayed = set(re.findall(r'label="(eq-[\w-]+)"', source))
    assert displayed == {item.label for item in _chapter_equations()}
    # No hand-typed display equations: every $$ block comes from a cell.
    assert "$$" not in source


def test_equation_helper_and_check_table():
    equations = _chapter_equations()
    block = chapter_tables.equation(equations, label="eq-hidden-delta").data
    assert block.startswith("$$\n") and block.endswith("$$ {#eq-hidden-delta}")
    with pytest.raises(ValueError, match="eq-nowhere"):
        chapter_tables.equation(equations, label="eq-nowhere")
    checks = {item.check: True for item in equations}
    checks["gradient-bound"] = False
    table = chapter_tables.equation_checks(equations, checks).data
    assert table.count("✓ yes") == len(equations) - 1
    assert "| @eq-gradient-bound" in table and "✗ NO" in table
    with pytest.raises(ValueError, match="not computed"):
        chapter_tables.equation_checks(equations, {})


def test_test_accuracy_effects_name_rises_and_falls():
    result = _gap_result({
        "baseline": [0.20, 0.21, 0.22], "train_size": [0.02, 0.03, 0.04],
        "hidden_size": [0.21, 0.20, 0.22], "reg": [0.05, 0.06, 0.07]})
    for run in result["runs"]:
        if run["varied"] == "train_size":
            run["test_accuracy"] = 0.80 + 0.01 * run["seed"]
        if run["varied"] == "reg":
            run["test_accuracy"] = 0.60 + 0.01 * run["seed"]
    text = chapter_tables.test_accuracy_effects(result)
    assert "with a larger training set test accuracy rose (70.0% → 81.0%)" in text
    assert "with stronger regularisation test accuracy fell (70.0% → 61.0%)" in text
