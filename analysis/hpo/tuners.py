"""keras-tuner searches as named, self-contained, resumable units.

:func:`search` builds one tuner — ``random``, ``bayesian`` or ``hyperband`` —
over :data:`~analysis.hpo.spaces.TUNER_SPACE` in a directory it is given,
with ``project_name`` = the search's name and seed and ``overwrite=False``:
called again on the same directory it reloads the oracle and runs only the
trials that have not finished. The same function, given keras-tuner's
chief/worker environment variables (``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``), runs one worker of a
distributed search of the same name (see keras-tuner's "distributed tuning").

keras-tuner reads and writes its files through ``tf.io.gfile`` whatever the
Keras backend is, so TensorFlow must be importable even when the book runs
on JAX; the models it builds are ordinary Keras 3 models on the active
backend.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np

from analysis import training
from analysis.errors import UserError
from analysis.hpo import gp, network, spaces

TUNERS = ("random", "bayesian", "hyperband")
OBJECTIVES = {"val_accuracy": "max", "val_loss": "min"}


def check_tuner(name: str) -> str:
    if name not in TUNERS:
        raise UserError(f"unknown tuner {name!r}; valid tuners: {', '.join(TUNERS)}")
    return name


def check_objective(name: str) -> str:
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}")
    return name


def _hyperparameter(hp, name: str, values):
    if isinstance(values, dict):
        return hp.Float(name, float(values["low"]), float(values["high"]),
                        sampling="log" if values.get("log") else "linear")
    return hp.Choice(name, list(values))


def hypermodel(space: dict, seed: int):
    """A function of keras-tuner's ``hp`` that builds the chapter's network."""
    spaces.check(space)

    def build(hp):
        values = {name: _hyperparameter(hp, name, space[name]) for name in space}
        training.set_seed(seed)     # every trial starts from the same seed
        return network.build(units=values.get("units", 64), dropout=values.get("dropout", 0.0),
                             learning_rate=values.get("learning_rate", 1e-3))

    return build


def project_name(tuner: str, seed: int) -> str:
    return f"{tuner}-seed{seed}"


def oracle_seed(seed: int) -> int:
    """The seed keras-tuner's oracle gets for tuner seed ``seed`` (0, 1, ...).

    keras-tuner takes ``seed or random.randint(1, 10000)``: seed 0 would be
    no seed at all, and the search would propose other configurations each
    time it starts.
    """
    return int(seed) + 1


def make_tuner(tuner: str, seed: int, directory: Path, budget: dict, objective: str = "val_accuracy",
               space: dict | None = None):
    """The tuner, reloaded from ``directory`` if a search of that name is there."""
    import keras_tuner

    check_tuner(tuner)
    check_objective(objective)
    space = spaces.TUNER_SPACE if space is None else space
    common = dict(hypermodel=hypermodel(space, seed),
                  objective=keras_tuner.Objective(objective, OBJECTIVES[objective]),
                  seed=oracle_seed(seed), directory=str(directory), project_name=project_name(tuner, seed),
                  overwrite=False)
    if tuner == "random":
        return keras_tuner.RandomSearch(max_trials=budget["max_trials"], **common)
    if tuner == "bayesian":
        return keras_tuner.BayesianOptimization(max_trials=budget["max_trials"], **common)
    # Hyperband needs at least two epochs to have rungs to promote between.
    return keras_tuner.Hyperband(max_epochs=max(2, budget["epochs"]), factor=budget["hyperband_factor"],
                                 hyperband_iterations=1, **common)


def search(tuner: str, seed: int, directory: Path, budget: dict, data, objective: str = "val_accuracy",
           callbacks=(), space: dict | None = None) -> dict:
    """Run (or finish) one search; its trials in the order they started.

    ``data`` is (x_train, y_train, x_val, y_val); ``budget`` holds
    ``max_trials``, ``epochs`` and ``hyperband_factor``.
    """
    instance, arguments = prepare(tuner, seed, directory, budget, data, objective, callbacks, space)
    instance.search(**arguments)
    return trials(instance, budget["epochs"])


def prepare(tuner: str, seed: int, directory: Path, budget: dict, data, objective: str = "val_accuracy",
            callbacks=(), space: dict | None = None):
    """The tuner of :func:`search` (reloaded from ``directory`` if it is there)
    and the keyword arguments of its ``search``, not yet searched: what a
    distributed search's chief serves and its workers run."""
    x_train, y_train, x_val, y_val = data
    # keras-tuner prints ("Reloading Tuner from …") where a page would show it.
    with contextlib.redirect_stdout(io.StringIO()):
        instance = make_tuner(tuner, seed, directory, budget, objective, space)
    fit = {} if tuner == "hyperband" else {"epochs": budget["epochs"]}
    return instance, dict(x=x_train, y=y_train, validation_data=(x_val, y_val), batch_size=budget["batch_size"],
                          callbacks=list(callbacks), verbose=0, **fit)


def trials(instance, epochs: int) -> dict:
    """Per finished trial, in start order: its score, values and the epochs it trained."""
    oracle = instance.oracle
    rows = {"trial": [], "score": [], "epochs": [], "values": []}
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        if trial.status != "COMPLETED":
            continue
        values = dict(trial.hyperparameters.values)
        # Hyperband continues a trial from its parent's weights: it trains
        # tuner/epochs − tuner/initial_epoch epochs.
        consumed = values.get("tuner/epochs", epochs) - values.get("tuner/initial_epoch", 0)
        rows["trial"].append(int(trial_id))
        rows["score"].append(float(trial.score))
        rows["epochs"].append(int(consumed))
        rows["values"].append({k: v for k, v in values.items() if not k.startswith("tuner/")})
    return rows


def best_so_far(scores, direction: str = "max") -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    return np.maximum.accumulate(scores) if direction == "max" else np.minimum.accumulate(scores)


# --------------------------------------------------------------------------
# What keras-tuner's Bayesian oracle does, read from the object itself


def oracle_facts(oracle) -> dict:
    """The GP and acquisition settings of a ``BayesianOptimizationOracle``."""
    regressor = oracle.gpr
    dimensions = len(oracle._nonfixed_space())
    return {
        "kernel": type(regressor.kernel).__name__,
        "nu": float(getattr(regressor.kernel, "nu", math.nan)),
        "alpha": float(regressor.alpha),
        "normalize_y": bool(regressor.normalize_y),
        "restarts": int(regressor.n_restarts_optimizer),
        "beta": float(oracle.beta),
        "dimensions": dimensions,
        "initial_points": int(oracle.num_initial_points or max(3 * dimensions, 3)),
    }


def oracle_reproduction(oracle, probes: int = 200, seed: int = 0) -> dict:
    """Refit the oracle's GP on its completed trials, as ``populate_space``
    does, and compare its predictions with our formulas (eq-hpo-gp-posterior)
    with the kernel the fit chose: largest differences of mean and std, at the
    trials and at random points of the unit cube."""
    x, y = oracle._vectorize_trials()
    x = np.nan_to_num(x, posinf=0, neginf=0)
    y = np.nan_to_num(y, posinf=0, neginf=0)
    regressor = oracle.gpr
    regressor.fit(x, y)
    points = np.vstack([x, np.random.default_rng(seed).uniform(size=(probes, x.shape[1]))])
    their_mean, their_std = regressor.predict(points, return_std=True)
    ours = gp.posterior(x, y, points, gp.sklearn_kernel_function(regressor.kernel_),
                        noise=float(regressor.alpha), normalize=bool(regressor.normalize_y))
    scale = float(np.abs(their_mean).max())
    return {"mean_error": float(np.abs(ours.mean - their_mean).max()),
            "std_error": float(np.abs(ours.std - their_std).max()),
            "scale": scale, "trials": int(len(y)), "points": int(len(points)),
            "length_scale": np.atleast_1d(regressor.kernel_.length_scale).astype(float).tolist()}
