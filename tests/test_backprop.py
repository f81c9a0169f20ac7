"""The backpropagation chapter: its experiments at smoke size, and the logic
behind the statements it computes from their numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from analysis import profiles, scratch, symbolic
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
    assert [r["seed"] for r in default["replicates"]] == seeds
    assert default["replicates"][0]["val_accuracy"] == default["val_accuracy"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in default["replicates"])
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

    # Independent runs, each cached on its own: a seed of the default net, a
    # configuration of the grid, a replicate seed other than the sweep's own
    # (whose network the grid trained), a gap setting under a seed.
    assert [(r["seed"], r["keep_curves"]) for r in experiments.cifar_default.runs("smoke")] == [
        (seed, index == 0) for index, seed in enumerate(seeds)]
    assert [r["setting"] for r in experiments.sweep_configurations.runs("smoke")] == \
        experiments._sweep_grid(sweep.provenance["config"])
    assert [r["seed"] for r in experiments.cifar_sweep.runs("smoke")] == [
        seed for seed in seeds if seed != sweep.provenance["config"]["seed"]]
    assert len(experiments.generalization_gap.runs("smoke")) == len(gap["runs"])


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


def _gap_result(gaps: dict) -> Result:
    """A generalization-gap result with the given gaps per (factor, level),
    one per seed, test accuracy fixed at 0.7."""
    seeds = list(range(len(gaps["baseline"])))
    config = {"train_sizes": [1000, 8000], "hidden_sizes": [50, 200], "regs": [0.0, 5.0],
              "num_iters": 10, "batch_size": 200, "learning_rate": 1e-3, "seeds": seeds}
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
        "train_size": [0.02, 0.03, 0.05],   # shrinks on every seed
        "hidden_size": [0.30, 0.31, 0.29],  # widens
        "reg": [0.10, 0.35, 0.20],          # within the spread
    })
    summary = chapter_tables.gap_summary(result)
    assert {f: s["direction"] for f, s in summary.items()} == {
        "train_size": "shrinks", "hidden_size": "widens", "reg": "unclear"}
    assert summary["train_size"]["levels"] == [1000, 8000]
    # Paired where seed s shares the initial weights, unpaired across hidden sizes.
    assert summary["train_size"]["comparison"].paired and summary["reg"]["comparison"].paired
    assert not summary["hidden_size"]["comparison"].paired
    answer = chapter_tables.gap_answer(result).data
    assert ("- a larger training set (1,000 → 8,000): the 8,000-image net's train–test gap is lower "
            "than the 1,000-image net's by 17.7 points") in answer
    assert "the 8,000-image net better on 3 of 3" in answer
    assert "- more hidden units (50 → 200): the 200-unit net's train–test gap is higher" in answer
    assert "there is no clear difference in train–test gap between the λ = 5 net and the λ = 0 net" in answer
    assert answer.endswith("The changes that shrink the gap here: a larger training set.\n")
    assert chapter_tables.gap_shrinkers(result) == ["a larger training set"]
    # Test accuracy is fixed at 0.7 in this made-up result: a tie on every seed.
    assert chapter_tables.test_accuracy_effects(result) == (
        "with a larger training set, the 8,000-image net and the 1,000-image net reach the same "
        "test accuracy on every one of 3 seeds")
    assert chapter_tables.gap_matches_expectation(result) is False
    assert chapter_tables.gap_expectation(result, "default") == (
        "do not fully agree with this reasoning: they show no clear shrinking of the gap with stronger "
        "regularisation; at these budgets that deserves a closer look")
    assert "smoke profile" in chapter_tables.gap_expectation(result, "smoke")
    table = chapter_tables.generalization_gap(result).data
    assert "21.0% ± 1.0% (n=3)" in table and "Data: made up" in table
    # 10 iterations of 200 images: 2 epochs of 1,000 images, 0.25 of 8,000.
    assert chapter_tables.gap_epochs(result) == {1000: 2.0, 8000: 0.25}
    assert re.search(r"\|\s+8,000 \|\s+0.25 \|", table)

    expected = _gap_result({
        "baseline": [0.20, 0.21, 0.22], "train_size": [0.02, 0.03, 0.04],
        "hidden_size": [0.21, 0.20, 0.22], "reg": [0.05, 0.06, 0.07]})
    assert chapter_tables.gap_matches_expectation(expected)
    assert chapter_tables.gap_expectation(expected, "smoke") == "agree with this reasoning"
    assert chapter_tables.gap_shrinkers(expected) == ["a larger training set", "stronger regularisation"]


def test_gap_verdicts_for_a_tie_a_diverged_run_a_single_seed_and_a_reversal():
    nan = float("nan")
    result = _gap_result({
        "baseline": [0.20, 0.21, 0.22],
        "train_size": [0.20, 0.21, 0.22],   # tie: the same gap on every seed
        "hidden_size": [0.05, 0.06, 0.04],  # reversed: more units, smaller gap
        "reg": [0.30, nan, 0.32],           # a diverged run, and a wider gap
    })
    summary = chapter_tables.gap_summary(result)
    assert {f: s["direction"] for f, s in summary.items()} == {
        "train_size": "unchanged", "hidden_size": "shrinks", "reg": "widens"}
    answer = chapter_tables.gap_answer(result).data
    assert "reach the same train–test gap on every one of 3 seeds" in answer
    assert "the 200-unit net's train–test gap is lower than the 50-unit net's" in answer
    assert "the λ = 5 net's train–test gap is higher" in answer and "1 run diverged and left out" in answer
    assert chapter_tables.gap_shrinkers(result) == ["more hidden units"]
    assert chapter_tables.gap_expectation(result, "smoke") == (
        "do not fully agree with this reasoning: they contradict it for more hidden units and stronger "
        "regularisation, and show no clear shrinking of the gap with a larger training set; with the "
        "smoke profile's tiny budgets that says nothing")
    assert "(n=2), 1 run diverged" in chapter_tables.generalization_gap(result).data

    single = _gap_result({"baseline": [0.20], "train_size": [0.05], "hidden_size": [0.25], "reg": [0.1]})
    assert {s["direction"] for s in chapter_tables.gap_summary(single).values()} == {"single seed"}
    assert "on a single seed, the 8,000-image net's train–test gap is lower" in (
        chapter_tables.gap_answer(single).data)
    assert chapter_tables.gap_shrinkers(single) == []
    assert chapter_tables.gap_matches_expectation(single) is None
    assert chapter_tables.gap_expectation(single, "default").startswith("cannot test this reasoning")
    assert chapter_tables.test_accuracy_effects(single) == (
        "no change shrank the gap, so there is no test accuracy to compare")

    diverged = _gap_result({"baseline": [nan, nan], "train_size": [nan, nan],
                            "hidden_size": [0.1, 0.2], "reg": [nan, 0.1]})
    answer = chapter_tables.gap_answer(diverged).data
    assert "no comparison of the 8,000-image net and the 1,000-image net is possible" in answer
    assert "the changes that shrink the gap here: none of the three" in answer.lower()


def test_target_statement_uses_the_seeds_interval():
    def statement(values, substitute=False):
        return chapter_tables.target_statement(values, "CIFAR-10", substitute=substitute)

    above = statement([0.50, 0.51, 0.52])
    assert above.startswith("a mean test accuracy of 51.0% over 3 seeds on CIFAR-10 (95% CI")
    assert above.endswith("the target is met: the whole interval lies above 48%")
    assert statement([0.40, 0.41, 0.42]).endswith("the target is not met: the whole interval lies at or below 48%")
    # A mean above the target is not enough when the interval reaches below it.
    assert statement([0.47, 0.49, 0.51]).endswith("these seeds cannot tell whether the target is met")
    # A tie with the target is not "above" it.
    assert "the target is not met" in statement([0.48, 0.48])
    assert statement([0.50]) == (
        "50.0% on CIFAR-10 from a single seed, above 48%: one seed gives no interval, so this is "
        "not a verdict on the configuration")
    assert "(1 diverged run left out)" in statement([0.50, float("nan"), 0.52])
    assert statement([float("nan")] * 2).startswith("no test accuracy on CIFAR-10: every run diverged")
    stand_in = chapter_tables.target_statement([0.83, 0.84], "a stand-in", substitute=True)
    assert "on a stand-in" in stand_in and "cannot tell" in stand_in and "met:" not in stand_in


def _replicates(values):
    return [{"seed": seed, "test_accuracy": value} for seed, value in enumerate(values)]


def test_default_versus_chosen_on_the_test_set_over_seeds():
    default = Result("backprop.cifar_default", "key", {"replicates": _replicates([0.30, 0.31, 0.32])}, {},
                     {"config": {"hidden_size": 50}}, Path("."))
    sweep = Result("backprop.cifar_sweep", "key", {"best": {"hidden_size": 100},
                   "replicates": _replicates([0.45, 0.47, 0.46])}, {}, {}, Path("."))
    versus = chapter_tables.default_versus_chosen(default, sweep)
    assert not versus.paired and versus.outcome == "a_better"
    assert versus.sentence().startswith(
        "the chosen configuration's test accuracy is higher than the default configuration's by 15.0 points")
    # The same hidden size: seed s draws the same weights and batches, a paired design.
    sweep.metrics["best"]["hidden_size"] = 50
    assert chapter_tables.default_versus_chosen(default, sweep).paired
    # Reversed: the defaults win.
    sweep.metrics["replicates"] = _replicates([0.20, 0.21, 0.19])
    assert chapter_tables.default_versus_chosen(default, sweep).outcome == "b_better"


def test_the_assignments_forward_checks_pass_and_can_fail():
    check = experiments.toy_reference_check()
    assert check["scores_pass"] and check["loss_pass"]
    assert check["score_difference"] < 1e-7 and check["loss_difference"] < 1e-12
    assert chapter_tables.toy_reference_verdict(check).startswith("both agree")
    table = chapter_tables.toy_reference(check).data
    assert table.count("✓ yes") == 2 and "1.30378789133" in table
    header, *rows = [line for line in table.splitlines() if line.startswith("|")]
    assert all(row.count("|") == header.count("|") for row in rows)  # no cell split by a "|"

    # A wrong network: a bias off by 1e-3 moves every score and the loss.
    net, _, _ = experiments._toy_problem(experiments.CS231N_TOY_SEED, experiments.TOY)
    net.params["b2"] = net.params["b2"] + 1e-3
    wrong = experiments.toy_reference_check(net)
    assert not wrong["scores_pass"]
    assert "the scores" in chapter_tables.toy_reference_verdict(wrong)

    # A wrong loss: the customary ½ in front of the penalty changes only the loss.
    class HalfPenalty(scratch.TwoLayerNet):
        def loss(self, X, y=None, reg=0.0):
            if y is None:
                return super().loss(X)
            return super().loss(X, y, reg=reg / 2)

    half, _, _ = experiments._toy_problem(experiments.CS231N_TOY_SEED, experiments.TOY)
    half.__class__ = HalfPenalty
    wrong = experiments.toy_reference_check(half)
    assert wrong["scores_pass"] and not wrong["loss_pass"]
    assert chapter_tables.toy_reference_verdict(wrong) == "the loss do NOT agree with the assignment's numbers"
    assert "✗ NO" in chapter_tables.toy_reference(wrong).data


def test_sentence_start():
    assert chapter_tables.sentence_start("there is no clear difference") == "There is no clear difference"
    assert chapter_tables.sentence_start("") == ""


def test_below_words_a_bound():
    assert chapter_tables.below(1e-9, 1e-8) == "below"
    assert chapter_tables.below(1e-8, 1e-8) == "NOT below"
    assert chapter_tables.below(float("nan"), 1e-8) == "NOT below"
    assert chapter_tables.power_of_ten(1e-7) == "10⁻⁷" and chapter_tables.power_of_ten(0.02) == "0.02"


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
    diverged = np.concatenate([falling[:-1], [np.nan]])
    assert "diverged" in chapter_tables.default_diagnosis(_default_result(diverged, 0.1, 0.1))


# --- equations: displayed, labelled and checked ------------------------------


def _chapter_equation_labels(source: str) -> list[str]:
    """The labels the chapter's setup cell passes to symbolic.chapter_equations."""
    call = re.search(r"symbolic\.chapter_equations\(\[(.*?)\]\)", source, re.S)
    assert call, "the setup cell lists the chapter's equations"
    return re.findall(r"""["'](eq-[\w-]+)["']""", call.group(1))


def test_every_equation_the_chapter_displays_is_in_the_check_table():
    source = CHAPTER.read_text(encoding="utf-8")
    displayed = [label for label, _, _ in symbolic.displayed_equations(source)]
    # The same equations, in the order of the page, so the table reads like it.
    assert displayed == _chapter_equation_labels(source)


def test_check_table_marks_definitions_and_failed_checks():
    equations = symbolic.chapter_equations(_chapter_equation_labels(CHAPTER.read_text(encoding="utf-8")))
    checks = {key: True for item in equations for key in item.checks}
    failing = next(item for item in equations if item.checks and not item.is_definition)
    checks[failing.checks[0]] = False
    table = chapter_tables.equation_checks(equations, checks).data
    rows = [line for line in table.splitlines() if line.startswith("| @eq-")]
    assert len(rows) == len(equations)
    definitions = [row for row in rows if re.search(r"\|\s*definition\s*\|$", row)]
    assert len(definitions) == sum(item.is_definition for item in equations) > 0
    failed = [row for row in rows if "✗ NO" in row]
    assert len(failed) == sum(failing.checks[0] in item.checks for item in equations) >= 1
    assert f"| @{failing.label} " in failed[0]
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
    assert ("with a larger training set, the 8,000-image net's test accuracy is higher than the "
            "1,000-image net's by 11.0 points") in text
    assert "with stronger regularisation, the λ = 5 net's test accuracy is lower than the λ = 0 net's by 9.0 points" in text


def test_chapter_has_no_inline_expression_that_can_be_blank():
    """Optional sentences come from cells: an inline expression whose value
    can be "" makes Quarto print its source."""
    source = CHAPTER.read_text(encoding="utf-8")
    for expression in re.findall(r"`\{python\} ([^`]*)`", source):
        assert 'else ""' not in expression and "else ''" not in expression, expression


def test_the_smoke_caveat_appears_only_in_smoke_builds():
    source = CHAPTER.read_text(encoding="utf-8")
    block = re.search(r'::: \{\.content-visible when-profile="smoke"\}\n(.*?)\n:::\n:::\n', source, re.S)
    assert block and "## Numbers that need the default or full profile" in block.group(1)
    assert source.count("Numbers that need the default or full profile") == 1


def test_gap_figure_titles_follow_the_verdicts_with_ties_diverged_runs_and_one_seed():
    import matplotlib

    matplotlib.use("Agg")
    from analysis.plots import backprop as chapter_plots

    nan = float("nan")
    for gaps, titles in (
        ({"baseline": [0.20, 0.21, 0.22], "train_size": [0.20, 0.21, 0.22],
          "hidden_size": [0.05, 0.06, 0.04], "reg": [0.30, nan, 0.32]},
         ["the gap is the same on every seed", "the gap shrinks", "the gap widens"]),
        ({"baseline": [0.20], "train_size": [0.05], "hidden_size": [0.25], "reg": [0.1]},
         ["one seed: no verdict"] * 3),
        # Every large-set run diverged; one λ pair is left after dropping a NaN.
        ({"baseline": [0.10, 0.20], "train_size": [nan, nan], "hidden_size": [0.2, 0.1], "reg": [nan, 0.1]},
         ["every run diverged", "no clear change in the gap", "one seed: no verdict"]),
    ):
        summary = chapter_tables.gap_summary(_gap_result(gaps))
        figure = chapter_plots.generalization_gap(summary, source="made up")
        assert [axis.get_title() for axis in figure.axes[:3]] == titles
