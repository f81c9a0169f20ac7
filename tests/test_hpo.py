"""The hyper-parameter optimisation chapter: formulas against libraries and
Monte Carlo, exact best-of-N against brute force, selection on validation
only, resumable keras-tuner searches, bad input."""

from __future__ import annotations

import inspect
import itertools
import warnings

import keras
import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.errors import UserError
from analysis.experiments import hpo as experiments
from analysis.hpo import acquisition, gp, order_stats, spaces, tabular, tpe, tuners


# --- the GP posterior ------------------------------------------------------------


def test_matern_kernel_equals_scikit_learns():
    from sklearn.gaussian_process.kernels import Matern

    points = np.random.default_rng(1).uniform(size=(6, 3))
    expected = Matern(length_scale=[0.2, 0.5, 1.0], nu=2.5)(points)
    assert np.abs(gp.matern52(points, points, np.array([0.2, 0.5, 1.0])) - expected).max() < 1e-12


def test_gp_posterior_equals_scikit_learn_with_a_fixed_kernel():
    result = experiments.gp_against_sklearn(seed=3)
    assert result["mean_error"] < 1e-10 and result["std_error"] < 1e-10


def test_gp_posterior_without_the_noise_term_differs_from_scikit_learn():
    # The comparison can fail: a posterior that drops σ²ₙ is told apart.
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    generator = np.random.default_rng(0)
    x, probe = generator.uniform(size=(6, 1)), generator.uniform(size=(20, 1))
    y = np.sin(4 * x[:, 0])
    regressor = GaussianProcessRegressor(Matern(0.3, nu=2.5), alpha=0.1, optimizer=None).fit(x, y)
    mean, _ = regressor.predict(probe, return_std=True)
    wrong = gp.posterior(x, y, probe, lambda a, b: gp.matern52(a, b, 0.3), noise=1e-10)
    assert np.abs(wrong.mean - mean).max() > 1e-3


# --- acquisition functions ------------------------------------------------------


def test_expected_improvement_matches_monte_carlo_within_its_standard_error():
    result = experiments.ei_against_monte_carlo(samples=100_000, seed=5)
    assert result["passed"], result


def test_monte_carlo_check_rejects_ei_without_its_exploration_term():
    def exploitation_only(mean, std, best):
        return (mean - best) * scipy_stats.norm.cdf((mean - best) / std)

    assert not experiments.ei_against_monte_carlo(samples=100_000, formula=exploitation_only)["passed"]


def test_zero_standard_deviation_gives_the_sure_improvement():
    assert acquisition.expected_improvement(0.7, 0.0, 0.5) == pytest.approx(0.2)
    assert acquisition.probability_of_improvement(0.4, 0.0, 0.5) == 0.0


def test_tpe_ratio_ranks_candidates_as_expected_improvement_does():
    result = experiments.tpe_against_ei(seed=2)
    assert result["spearman"] > 0.999 and result["same_choice"]


# --- best of N ------------------------------------------------------------------


def _enumerated(validation, trials):
    """Selection frequencies over every subset of size ``trials``."""
    counts = np.zeros(len(validation))
    subsets = list(itertools.combinations(range(len(validation)), trials))
    for subset in subsets:
        subset = np.array(subset)
        counts[subset[np.argmax(validation[subset])]] += 1
    return counts / len(subsets)


@pytest.mark.parametrize("trials", [1, 2, 4, 7])
def test_best_of_n_formula_equals_enumeration_of_every_subset(trials):
    validation = np.array([0.5, 0.8, 0.1, 0.8, 0.3, 0.9, 0.2])      # with a tie
    order, probability = order_stats.selection_distribution(validation, trials)
    exact = np.zeros(len(validation))
    exact[order] = probability
    assert np.abs(exact - _enumerated(validation, trials)).max() < 1e-12


def test_best_of_n_formula_agrees_with_resampling_within_sampling_error():
    validation = np.random.default_rng(4).uniform(size=12)
    draws, trials = 20_000, 4
    order, probability = order_stats.selection_distribution(validation, trials)
    exact = np.zeros(len(validation))
    exact[order] = probability
    sampled = order_stats.brute_force_selection(validation, trials, draws, seed=1)
    # Each frequency is binomial: a correct formula exceeds z standard errors
    # at some index with probability at most 1e-3 (Bonferroni over 12).
    z = scipy_stats.norm.ppf(1 - 1e-3 / (2 * len(validation)))
    error = np.sqrt(np.maximum(exact * (1 - exact), 1e-12) / draws)
    assert np.all(np.abs(sampled - exact) <= z * error + 1e-12)
    wrong = np.zeros(len(validation))
    wrong[order] = order_stats.best_rank_probabilities(len(validation), trials + 1)
    assert not np.all(np.abs(sampled - wrong) <= z * error + 1e-12)


def test_selection_never_reads_test_data():
    validation = np.random.default_rng(0).uniform(size=9)
    assert "test" not in inspect.signature(order_stats.selection_distribution).parameters
    first = order_stats.efficiency_curve(validation, np.zeros(9))
    second = order_stats.efficiency_curve(validation, np.random.default_rng(1).uniform(size=9))
    assert first["mean"] == second["mean"] and first["quantiles"] == second["quantiles"]
    # The test score reported for N is that of the configuration validation
    # picked, averaged over every draw of N.
    test = np.random.default_rng(2).uniform(size=9)
    curve = order_stats.efficiency_curve(validation, test)
    for trials in (1, 3, 9):
        assert curve["test_mean"][trials - 1] == pytest.approx(float(_enumerated(validation, trials) @ test))


def test_pool_smaller_than_n_is_a_one_line_error():
    with pytest.raises(UserError, match="pool of 5") as problem:
        order_stats.best_rank_probabilities(5, 6)
    assert "\n" not in str(problem.value)


# --- spaces, tuners and bad input --------------------------------------------------


@pytest.mark.parametrize("space", [{}, {"units": []}, {"dropout": {"low": 0.5, "high": 0.5}}])
def test_an_empty_search_space_is_a_one_line_error(space):
    with pytest.raises(UserError) as problem:
        spaces.check(space)
    assert "\n" not in str(problem.value)


def test_unknown_tuner_or_objective_names_the_valid_choices():
    with pytest.raises(UserError, match="random, bayesian, hyperband"):
        tuners.check_tuner("grid")
    with pytest.raises(UserError, match="val_accuracy"):
        tuners.check_objective("accuracy")


def test_samples_stay_inside_the_space():
    for configuration in spaces.sample(spaces.POOL_SPACE, 50, seed=0):
        assert 1e-4 <= configuration["learning_rate"] <= 1e-1
        assert configuration["activation"] in spaces.POOL_SPACE["activation"]
        assert np.all((spaces.encode(spaces.POOL_SPACE, configuration) >= 0)
                      & (spaces.encode(spaces.POOL_SPACE, configuration) <= 1))


def _tiny_data():
    generator = np.random.default_rng(0)
    x = generator.random((64, 28, 28, 1)).astype("float32")
    y = generator.integers(0, 10, 64)
    return x, y, x[:32], y[:32]


_FITS: list = []


class _CountFits(keras.callbacks.Callback):
    """Counts fits in the module's list (keras-tuner deep-copies callbacks for
    every trial, so a list held by the instance would be copied too); raises
    KeyboardInterrupt when fit number ``stop_at`` starts."""

    def __init__(self, fits: list, stop_at: int | None = None):
        super().__init__()
        self.stop_at = stop_at

    def on_train_begin(self, logs=None):
        _FITS.append(1)
        if self.stop_at is not None and len(_FITS) == self.stop_at:
            raise KeyboardInterrupt("interrupted on purpose")


def test_an_interrupted_search_resumes_without_rerunning_finished_trials(tmp_path):
    budget = {"max_trials": 3, "epochs": 1, "batch_size": 32, "hyperband_factor": 2}
    fits = _FITS
    fits.clear()
    with pytest.raises(KeyboardInterrupt):
        tuners.search("random", 0, tmp_path, budget, _tiny_data(), callbacks=[_CountFits(fits, stop_at=2)])
    assert len(fits) == 2                      # trial 0 finished, trial 1 interrupted
    fits.clear()
    rows = tuners.search("random", 0, tmp_path, budget, _tiny_data(), callbacks=[_CountFits(fits)])
    assert len(fits) == 2                      # trials 1 and 2 only: trial 0 was not re-run
    assert rows["trial"] == [0, 1, 2] and rows["epochs"] == [1, 1, 1]
    fits.clear()
    tuners.search("random", 0, tmp_path, budget, _tiny_data(), callbacks=[_CountFits(fits)])
    assert fits == []                          # a finished search trains nothing


def test_our_gp_reproduces_keras_tuners_oracle_on_its_completed_trials(tmp_path):
    space = {"dropout": [0.0, 0.2, 0.4, 0.6], "units": [16, 32, 64, 128]}
    scores = np.random.default_rng(0).uniform(0.8, 0.9, size=16)
    table = tabular.Table(space, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chosen, oracle = tabular.drive_oracle(table, budget=8, seed=0, directory=tmp_path)
        facts = tuners.oracle_facts(oracle)
        # Random until 3 × 2 dimensions completed trials, the GP after that:
        # observed, not only read from the oracle's settings.
        assert facts["initial_points"] == 6 and len(chosen) == 8
        _, six = tabular.drive_oracle(table, budget=6, seed=0, directory=tmp_path / "six")
        _, seven = tabular.drive_oracle(table, budget=7, seed=0, directory=tmp_path / "seven")
        assert not hasattr(six.gpr, "X_train_") and hasattr(seven.gpr, "X_train_")
        assert facts["kernel"] == "Matern" and facts["nu"] == 2.5 and facts["beta"] == 2.6
        assert facts["normalize_y"] and facts["alpha"] == 1e-4
        reproduction = tuners.oracle_reproduction(oracle)
    assert reproduction["mean_error"] < 1e-8 and reproduction["std_error"] < 1e-8


def test_tabular_searches_improve_monotonically_and_reach_the_table_optimum():
    space = {"dropout": [0.0, 0.3, 0.6], "units": [16, 64, 256]}
    table = tabular.Table(space, np.random.default_rng(3).uniform(size=9))
    for method in ("random", "grid", "gp-ei", "tpe"):
        curve = tabular.best_so_far(table, tabular.order(method, table, 9, seed=1), 9)
        assert np.all(np.diff(curve) >= 0) and curve[-1] == table.scores.max()


def test_tpe_split_keeps_the_best_share():
    good, threshold = tpe.split([0.4, 0.1, 0.3, 0.2, 0.5, 0.6, 0.7, 0.8], gamma=0.25)
    assert good.tolist() == [False, True, False, True, False, False, False, False] and threshold == 0.3


def test_a_named_search_is_identified_by_tuner_profile_and_seed():
    item = experiments.search_item("smoke", "bayesian", 0)
    assert item["tuner"] == "bayesian" and item["tuner_seed"] == 0 and item["objective"] == "val_accuracy"
    assert item in experiments.tuner_search.runs("smoke")  # the runner's own item: same run key
    with pytest.raises(UserError, match="tuner seeds: 0"):
        experiments.search_item("smoke", "bayesian", 99)
    with pytest.raises(UserError, match="valid tuners"):
        experiments.search_item("smoke", "grid", 0)
