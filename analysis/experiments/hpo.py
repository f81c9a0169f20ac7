"""Experiments of the hyper-parameter optimisation chapter (chapters/hpo.qmd).

* :data:`bo_checks`: the chapter's formulas against numbers — our GP against
  scikit-learn's, expected improvement against Monte Carlo, TPE's l/g against
  EI under its own model (no training);
* :data:`sklearn_grid`: the coursework's grid (output activation × dropout)
  with scikit-learn's ``GridSearchCV`` over ``keras.wrappers.SKLearnClassifier``,
  stratified k-fold on the training images; the best cell is refitted and
  scored on the test set once;
* :data:`dropout_units`: dropout × hidden units over seeds, scored on
  validation (the grid the tabular benchmark looks up);
* :data:`pool`: M configurations drawn at random from the original space,
  each trained once; the best-of-N curves follow exactly (order statistics);
* :data:`learning_rate_curve`: validation accuracy against the learning rate,
  the 1-D objective on which Bayesian optimisation is shown at work;
* :data:`tuner_search`: keras-tuner's Random, Bayesian and Hyperband tuners
  over one space, several tuner seeds, resumable in the cache;
* :data:`tabular_benchmark`: searches over the dropout × units table, many
  seeds, no training.

No experiment chooses anything on test data: choices read validation (or
cross-validation) scores; test accuracy is looked up afterwards for the
configuration chosen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
import time
import warnings

import joblib
import numpy as np
from scipy import stats as scipy_stats

from analysis import cache, data, environment, profiles, training
from analysis.hpo import acquisition, gp, network, order_stats, spaces, tabular, tpe, tuners
from analysis.errors import UserError
from analysis.runner import experiment

#: The grid exercise's network: Dense 128 → Dense 100 → Dropout → Dense 10.
GRID_UNITS = (128, 100)
#: Seeds of the pool's configurations and of its training runs.
POOL_SEED = 2012
TABLE_METHODS = tabular.METHODS


def _budget(profile):
    return profile.hpo


def _data_config(profile) -> dict:
    budget = _budget(profile)
    return {"data": budget.mnist, "split_seed": 0, "epochs": budget.epochs, "batch_size": budget.batch_size}


def _split(run, item: dict, dataset=None):
    """The item's split of MNIST (the run's, or ``dataset`` outside the runner), and its images scaled."""
    dataset = run.data("mnist") if dataset is None else dataset
    parts = data.split(dataset, profiles.DataBudget(**item["data"]), seed=item["split_seed"])
    return parts, tuple(data.scale01(x) for x in (parts.x_train, parts.x_val, parts.x_test))


@contextlib.contextmanager
def _quiet():
    """scikit-learn's GP warns when a length scale reaches its bound: expected
    with a handful of trials, and noise in a rendered page."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------
# The formulas against numbers


def gp_against_sklearn(seed: int = 0, points: int = 8, probes: int = 50) -> dict:
    """Our posterior (eq-hpo-gp-posterior) against GaussianProcessRegressor with
    the same fixed Matérn 5/2 kernel (no optimiser), alpha and normalisation."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    generator = np.random.default_rng(seed)
    x = generator.uniform(size=(points, 2))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2
    probe = generator.uniform(size=(probes, 2))
    regressor = GaussianProcessRegressor(Matern(length_scale=[0.3, 0.5], nu=2.5), alpha=1e-4,
                                         normalize_y=True, optimizer=None).fit(x, y)
    mean, std = regressor.predict(probe, return_std=True)
    ours = gp.posterior(x, y, probe, gp.sklearn_kernel_function(regressor.kernel_), 1e-4, normalize=True)
    return {"mean_error": float(np.abs(ours.mean - mean).max()), "std_error": float(np.abs(ours.std - std).max()),
            "points": points, "probes": probes}


def ei_against_monte_carlo(samples: int = 200_000, false_alarm: float = 1e-3, seed: int = 0,
                           formula=acquisition.expected_improvement) -> dict:
    """Closed-form EI (``formula``) against the mean improvement of ``samples``
    draws, at a few (μ, σ, f*) cases. The Monte Carlo mean has standard error
    s/√samples; a correct formula exceeds z = Φ⁻¹(1 − false_alarm/(2·cases))
    standard errors in some case with probability at most ``false_alarm``."""
    cases = [(0.0, 1.0, 0.0), (0.5, 0.2, 0.7), (0.9, 0.05, 0.85), (-1.0, 2.0, 1.0)]
    threshold = float(scipy_stats.norm.ppf(1 - false_alarm / (2 * len(cases))))
    rows = []
    for index, (mean, std, best) in enumerate(cases):
        estimate, error = acquisition.monte_carlo_expected_improvement(mean, std, best, samples, seed + index)
        closed = float(formula(mean, std, best))
        rows.append({"mean": mean, "std": std, "best": best, "closed": closed, "monte_carlo": estimate,
                     "standard_error": error, "z": abs(closed - estimate) / error})
    return {"cases": rows, "threshold": threshold, "samples": samples, "false_alarm": false_alarm,
            "max_z": max(row["z"] for row in rows), "passed": all(row["z"] <= threshold for row in rows)}


def tpe_against_ei(seed: int = 0, observations: int = 30, candidates: int = 200) -> dict:
    """Does l/g rank candidates as EI under TPE's model does (eq-hpo-tpe-ei)?"""
    generator = np.random.default_rng(seed)
    x = generator.uniform(size=(observations, 2))
    losses = (x[:, 0] - 0.3) ** 2 + (x[:, 1] - 0.6) ** 2 + generator.normal(0, 0.01, observations)
    probe = generator.uniform(size=(candidates, 2))
    ratio = tpe.ratio(probe, x, losses)
    ei = tpe.expected_improvement(probe, x, losses)
    return {"spearman": float(scipy_stats.spearmanr(ratio, ei).statistic),
            "same_choice": bool(np.argmax(ratio) == np.argmax(ei)), "candidates": candidates}


@experiment(config=lambda profile: {"seed": 0, "samples": 200_000, "false_alarm": 1e-3})
def bo_checks(run, config):
    """The GP, EI and TPE formulas against scikit-learn, Monte Carlo and each other."""
    return {"gp": gp_against_sklearn(config["seed"]),
            "ei": ei_against_monte_carlo(config["samples"], config["false_alarm"], config["seed"]),
            "tpe": tpe_against_ei(config["seed"])}


# --------------------------------------------------------------------------
# The coursework's grid with scikit-learn


def grid_model(X, y, output_activation="softmax", dropout=0.2, seed=0):
    """``SKLearnClassifier``'s model function: the grid exercise's network.

    The wrapper one-hot encodes the labels, so the loss is categorical
    cross-entropy; every fit starts from ``seed``.
    """
    training.set_seed(seed)
    return network.build(units=GRID_UNITS[0], second_units=GRID_UNITS[1], dropout=dropout,
                         output_activation=output_activation, flat=True, loss="categorical_crossentropy")


def _grid_config(profile) -> dict:
    budget = _budget(profile)
    return {**_data_config(profile), "output_activations": list(budget.output_activations),
            "dropouts": list(budget.grid_dropouts), "folds": budget.folds, "seed": 0}


@experiment(datasets=("mnist",), config=_grid_config)
def sklearn_grid(run, config):
    """GridSearchCV over output activation × dropout, stratified k-fold."""
    from keras.wrappers import SKLearnClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    parts, (x_train, _, x_test) = _split(run, config)
    cells = [{"output_activation": a, "dropout": float(d), "seed": config["seed"]}
             for a in config["output_activations"] for d in config["dropouts"]]
    estimator = SKLearnClassifier(model=grid_model, fit_kwargs={"epochs": config["epochs"], "verbose": 0,
                                                                "batch_size": config["batch_size"]})
    folds = StratifiedKFold(n_splits=config["folds"], shuffle=True, random_state=config["seed"])
    search = GridSearchCV(estimator, {"model_kwargs": cells}, cv=folds, scoring="accuracy", refit=True)
    flat = x_train.reshape(len(x_train), -1)
    started = time.perf_counter()
    # The wrapper's predict shows Keras's progress bar on stdout: keep it off the page.
    with _quiet(), contextlib.redirect_stdout(io.StringIO()):
        search.fit(flat, parts.y_train)
        predicted = search.predict(x_test.reshape(len(x_test), -1))
    seconds = time.perf_counter() - started
    results = search.cv_results_
    per_fold = np.array([results[f"split{k}_test_score"] for k in range(config["folds"])]).T
    # The refitted best cell meets the test set once, after the choice.
    test_accuracy = float(np.mean(predicted == parts.y_test))
    return {"cells": [{k: v for k, v in c.items() if k != "seed"} for c in cells],
            "mean": [float(v) for v in results["mean_test_score"]],
            "std": [float(v) for v in results["std_test_score"]],
            "fold_scores": per_fold, "best": {k: v for k, v in search.best_params_["model_kwargs"].items()
                                              if k != "seed"},
            "best_index": int(search.best_index_), "test_accuracy": test_accuracy,
            "fits": int(len(cells) * config["folds"] + 1), "seconds": seconds, "sizes": parts.sizes()}


# --------------------------------------------------------------------------
# Dropout × units over seeds


def train_cell(run, item: dict) -> dict:
    """One configuration, one seed: validation accuracy (and test, when the
    run's protocol says so), with the seconds it took."""
    parts, images = _split(run, item)
    started = time.perf_counter()
    scores = network.train_and_score(item["configuration"], parts, images, item["epochs"], item["seed"],
                                     callbacks=[run.epoch_bar(item.get("name", "trial"))],
                                     use_test=item["use_test"])
    return {**scores, "seconds": time.perf_counter() - started, "sizes": parts.sizes()}


def _heatmap_config(profile) -> dict:
    budget = _budget(profile)
    return {**_data_config(profile), "dropouts": [float(d) for d in budget.heatmap_dropouts],
            "units": list(budget.heatmap_units), "seeds": list(range(budget.seeds))}


def _heatmap_runs(profile, config) -> list[dict]:
    shared = {key: config[key] for key in ("data", "split_seed", "epochs")}
    return [{**shared, "seed": seed, "use_test": False, "name": f"dropout {d:g}, {u} units",
             "configuration": {"dropout": d, "units": u, "batch_size": config["batch_size"]}}
            for d in config["dropouts"] for u in config["units"] for seed in config["seeds"]]


@experiment(datasets=("mnist",), config=_heatmap_config, each=train_cell, runs=_heatmap_runs)
def dropout_units(run, config):
    """Validation accuracy of every dropout × units cell, per seed."""
    shape = (len(config["dropouts"]), len(config["units"]), len(config["seeds"]))
    scores = np.array([r["val_accuracy"] for r in run.results]).reshape(shape)
    seconds = np.array([r["seconds"] for r in run.results]).reshape(shape)
    return {"dropouts": config["dropouts"], "units": config["units"], "seeds": config["seeds"],
            "val_accuracy": scores, "seconds": seconds, "sizes": run.results[0]["sizes"]}


# --------------------------------------------------------------------------
# The random pool and what N trials buy


def _pool_config(profile) -> dict:
    budget = _budget(profile)
    return {**_data_config(profile), "pool_size": budget.pool_size, "space": spaces.POOL_SPACE,
            "pool_seed": POOL_SEED}


def _pool_runs(profile, config) -> list[dict]:
    shared = {key: config[key] for key in ("data", "split_seed", "epochs")}
    configurations = spaces.sample(config["space"], config["pool_size"], config["pool_seed"])
    return [{**shared, "seed": config["pool_seed"] + index, "use_test": True, "name": f"pool {index}",
             "configuration": configuration} for index, configuration in enumerate(configurations)]


@experiment(datasets=("mnist",), config=_pool_config, each=train_cell, runs=_pool_runs)
def pool(run, config):
    """M random configurations, each trained once; validation and test accuracy.

    The test accuracies are stored for every member, but only
    :func:`efficiency` reads them, for the member validation selected.
    """
    items = _pool_runs(run.profile, config)
    return {"configurations": [item["configuration"] for item in items],
            "val_accuracy": np.array([r["val_accuracy"] for r in run.results]),
            "test_accuracy": np.array([r["test_accuracy"] for r in run.results]),
            "seconds": np.array([r["seconds"] for r in run.results]),
            "sizes": run.results[0]["sizes"]}


def efficiency(result) -> dict:
    """Best-of-N curves of a pool result (every N from 1 to M)."""
    return order_stats.efficiency_curve(result["val_accuracy"], result["test_accuracy"])


# --------------------------------------------------------------------------
# A 1-D objective and Bayesian optimisation at work on it


def _curve_config(profile) -> dict:
    budget = _budget(profile)
    return {**_data_config(profile), "learning_rates": list(budget.learning_rates), "bo_steps": budget.bo_steps,
            "initial": 2, "seed": 0}


def _curve_runs(profile, config) -> list[dict]:
    shared = {key: config[key] for key in ("data", "split_seed", "epochs")}
    return [{**shared, "seed": config["seed"], "use_test": False, "name": f"learning rate {rate:g}",
             "configuration": {"learning_rate": rate, "units": 64, "batch_size": config["batch_size"]}}
            for rate in config["learning_rates"]]


def bo_at_work(log_rates, scores, steps: int, initial: int, seed: int = 0, resolution: int = 200) -> dict:
    """Our GP + EI on a 1-D table: per step the posterior on a fine grid of
    log₁₀ rates, EI there, and the table point it evaluates next."""
    log_rates, scores = np.asarray(log_rates, dtype=float), np.asarray(scores, dtype=float)
    low, high = log_rates.min(), log_rates.max()
    unit = (log_rates - low) / (high - low)
    fine = np.linspace(0, 1, resolution)
    chosen = list(np.random.default_rng(seed).choice(len(scores), size=min(initial, len(scores)), replace=False))
    frames = []
    for _ in range(steps):
        remaining = [i for i in range(len(scores)) if i not in chosen]
        if not remaining:
            break
        posterior, length_scale = tabular.gp_fit(unit[chosen, None], scores[chosen], fine[:, None])
        best = scores[chosen].max()
        ei_fine = acquisition.expected_improvement(posterior.mean, posterior.std, best)
        at_table, _ = tabular.gp_fit(unit[chosen, None], scores[chosen], unit[remaining, None])
        ei_table = acquisition.expected_improvement(at_table.mean, at_table.std, best)
        following = remaining[int(np.argmax(ei_table))]
        frames.append({"observed": [int(i) for i in chosen], "mean": posterior.mean.tolist(),
                       "std": posterior.std.tolist(), "ei": ei_fine.tolist(), "next": int(following),
                       "length_scale": length_scale})
        chosen.append(following)
    return {"grid": (low + fine * (high - low)).tolist(), "frames": frames}


@experiment(datasets=("mnist",), config=_curve_config, each=train_cell, runs=_curve_runs)
def learning_rate_curve(run, config):
    """Validation accuracy against the learning rate; BO's steps on that table."""
    scores = np.array([r["val_accuracy"] for r in run.results])
    log_rates = np.log10(config["learning_rates"])
    return {"learning_rates": config["learning_rates"], "val_accuracy": scores,
            "bo": bo_at_work(log_rates, scores, config["bo_steps"], config["initial"], config["seed"]),
            "sizes": run.results[0]["sizes"]}


# --------------------------------------------------------------------------
# keras-tuner: three tuners, several seeds, resumable


def _tuner_config(profile) -> dict:
    budget = _budget(profile)
    return {**_data_config(profile), "tuners": list(tuners.TUNERS), "tuner_seeds": list(range(budget.tuner_seeds)),
            "max_trials": budget.tuner_trials, "hyperband_factor": budget.hyperband_factor,
            "objective": "val_accuracy", "space": spaces.TUNER_SPACE}


def _tuner_runs(profile, config) -> list[dict]:
    shared = {key: config[key] for key in ("data", "split_seed", "epochs", "batch_size", "max_trials",
                                           "hyperband_factor", "objective", "space")}
    return [{**shared, "tuner": name, "tuner_seed": seed} for name in config["tuners"]
            for seed in config["tuner_seeds"]]


def partial_directory(item: dict):
    """Where an unfinished search keeps its tuner project: outside the
    scratch directory (removed if the run fails), at a path fixed by the run,
    so a second attempt reloads it (``overwrite=False``). The Keras backend is
    part of the path, as it is of the run's key: the same search under JAX and
    under TensorFlow (the book check runs both side by side) are two searches."""
    identity = {"run": item, "backend": environment.backend()}
    path = cache.root() / "hpo.tuner_search" / f"partial-{joblib.hash(identity, hash_name='sha1')[:16]}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_search(run, item: dict) -> dict:
    """One named search (tuner × seed), finished where an earlier attempt stopped;
    its tuner directory ends up inside the cache entry."""
    parts, (x_train, x_val, _) = _split(run, item)
    directory = partial_directory(item)
    bar = run.progress(None, f"{item['tuner']} seed {item['tuner_seed']} trials")
    callbacks = [run.epoch_bar(f"{item['tuner']} trial"), training_end_counter(bar)]
    started = time.perf_counter()
    with _quiet():
        rows = tuners.search(item["tuner"], item["tuner_seed"], directory, item,
                             (x_train, parts.y_train, x_val, parts.y_val), item["objective"],
                             callbacks=callbacks, space=item["space"])
        extra = {}
        if item["tuner"] == "bayesian":
            with contextlib.redirect_stdout(io.StringIO()):
                instance = tuners.make_tuner("bayesian", item["tuner_seed"], directory, item, item["objective"],
                                             item["space"])
            extra = {"oracle": tuners.oracle_facts(instance.oracle),
                     "reproduction": tuners.oracle_reproduction(instance.oracle)}
    bar.close()
    shutil.copytree(directory, run.directory / "tuner")
    shutil.rmtree(directory, ignore_errors=True)
    return {**rows, **extra, "seconds": time.perf_counter() - started}


def search_item(profile, tuner: str, seed: int) -> dict:
    """The run item of one named search of ``tuner_search`` (its cache identity)."""
    profile = profiles.resolve(profile)
    tuners.check_tuner(tuner)
    # As the runner lists them (plain JSON values): the same item, the same
    # partial directory and the same run key as tuner_search's own run.
    items = [item for item in tuner_search.runs(profile)
             if item["tuner"] == tuner and item["tuner_seed"] == int(seed)]
    if not items:
        seeds = ", ".join(str(s) for s in _tuner_config(profile)["tuner_seeds"])
        raise UserError(f"profile {profile.name} has no tuner seed {seed}; its tuner seeds: {seeds}")
    return items[0]


@dataclasses.dataclass(frozen=True)
class NamedSearch:
    """One named search of ``tuner_search`` (tuner × seed), not yet run: its
    run item and its partial directory; :meth:`build` makes its tuner."""

    tuner: str
    item: dict

    @property
    def directory(self):
        return partial_directory(self.item)

    def build(self, directory=None, callbacks=()):
        """(tuner, keyword arguments of ``tuner.search``), the tuner working in
        ``directory`` (default: the partial directory), reloaded if a search is there."""
        item = self.item
        parts, (x_train, x_val, _) = _split(None, item, data.load("mnist"))
        directory = self.directory if directory is None else directory
        return tuners.prepare(self.tuner, item["tuner_seed"], directory, item,
                              (x_train, parts.y_train, x_val, parts.y_val), item["objective"],
                              callbacks=callbacks, space=item["space"])


def tuning_search(profile, tuner: str, seed: int = 0) -> NamedSearch:
    """The named search ``python -m analysis tune hpo.<tuner> --seed S`` runs:
    its chief and local workers work in the run's partial directory, then the
    chief computes the run, which reloads the finished search (analysis.tuning)."""
    return NamedSearch(tuner, search_item(profile, tuner, seed))


def training_end_counter(bar):
    """A Keras callback that advances the trials bar at the end of each fit."""
    import keras

    class Counter(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            bar.update()

    return Counter()


@experiment(datasets=("mnist",), config=_tuner_config, each=run_search, runs=_tuner_runs)
def tuner_search(run, config):
    """Random search, Bayesian optimisation and Hyperband, each over the tuner seeds."""
    items = _tuner_runs(run.profile, config)
    searches = {}
    for item, result in zip(items, run.results):
        searches.setdefault(item["tuner"], []).append(
            {"seed": item["tuner_seed"], "score": result["score"], "epochs": result["epochs"],
             "values": result["values"], "seconds": result["seconds"]})
    bayesian = next(r for item, r in zip(items, run.results) if item["tuner"] == "bayesian")
    return {"searches": searches, "oracle": bayesian["oracle"],
            "reproduction": [r["reproduction"] for item, r in zip(items, run.results) if item["tuner"] == "bayesian"]}


# --------------------------------------------------------------------------
# The tabular benchmark


def _table_config(profile) -> dict:
    budget = _budget(profile)
    return {"upstream_key": dropout_units.key(profile), "budget": budget.table_budget,
            "seeds": list(range(budget.table_seeds)), "methods": list(TABLE_METHODS), "initial": 3}


@experiment(config=_table_config)
def tabular_benchmark(run, config):
    """Every search over the dropout × units table (mean over its seeds), many search seeds."""
    grid = dropout_units(run.profile)
    space = {"dropout": list(grid["dropouts"]), "units": list(grid["units"])}
    table = tabular.Table(space, np.nanmean(grid["val_accuracy"], axis=-1))
    budget = min(config["budget"], len(table))
    curves = {}
    with _quiet():
        for method in run.progress(config["methods"], "tabular searches"):
            seeds = [0] if method == "grid" else config["seeds"]     # the grid's order has no seed
            curves[method] = np.array([tabular.best_so_far(table, tabular.order(method, table, budget, seed,
                                                                                config["initial"]), budget)
                                       for seed in seeds])
    return {"curves": {m: c.tolist() for m, c in curves.items()}, "budget": budget, "cells": len(table),
            "optimum": float(table.scores.max())}
