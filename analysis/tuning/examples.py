"""The test search: a tiny random search that exercises ``python -m analysis tune``.

It is not part of the book. The tests (tests/test_tuning.py) and the benchmark
(benchmarks/tune_workers.py) run it with one process, one worker and two
workers; it is small enough to finish in seconds on a 2-core CPU, and real
enough to go through everything a chapter's search does: keras-tuner's
RandomSearch over a Dense network's width and learning rate, on synthetic
data (two classes separated by a curved boundary; no dataset to load), cached
as an experiment (:data:`tiny_random`).

``NNSTUDY_TUNING_EXAMPLE_MARKERS=DIR`` makes every trial leave a file
``DIR/<tuner id>.<pid>.<n>`` when its training starts: the tests use it to
kill a worker in the middle of a trial. ``NNSTUDY_TUNING_EXAMPLE_HOLD=SECONDS``
then keeps each trial waiting that long after its marker, so that on a busy
machine the signal still lands mid-search rather than after a search of a few
seconds has ended. Neither changes any result.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from analysis import profiles
from analysis.runner import experiment
from analysis.tuning.searches import run_search

SEARCH = "examples.tiny_random"
MARKERS_VARIABLE = "NNSTUDY_TUNING_EXAMPLE_MARKERS"
HOLD_VARIABLE = "NNSTUDY_TUNING_EXAMPLE_HOLD"
WIDTHS = (4, 8, 16, 32)
LEARNING_RATES = (1e-3, 3e-3, 1e-2, 3e-2)


@dataclass(frozen=True)
class TinyBudget:
    samples: int        # training examples (validation: half as many)
    epochs: int
    max_trials: int     # of the 16 configurations


BUDGETS = {
    "smoke": TinyBudget(samples=256, epochs=1, max_trials=3),
    "default": TinyBudget(samples=4096, epochs=5, max_trials=8),
    "full": TinyBudget(samples=16384, epochs=10, max_trials=16),
}


def budget(profile) -> TinyBudget:
    return BUDGETS[profiles.resolve(profile).name]


def synthetic_data(samples: int, seed: int):
    """Eight standard-normal features; the class is the sign of x0·x1 + x2 / 2."""
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((samples, 8)).astype("float32")
    y = (x[:, 0] * x[:, 1] + 0.5 * x[:, 2] > 0).astype("float32")
    return x, y


def build_model(hp: keras_tuner.HyperParameters) -> keras.Model:
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(hp.Choice("units", WIDTHS), activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", LEARNING_RATES)),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


class TrainingStarted(keras.callbacks.Callback):
    """Leaves a marker file when a trial's training starts (see the module's docstring)."""

    def __init__(self, directory: str):
        super().__init__()
        self.directory = directory

    def on_train_begin(self, logs=None):
        tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
        count = len(list(Path(self.directory).glob(f"{tuner_id}.{os.getpid()}.*")))
        (Path(self.directory) / f"{tuner_id}.{os.getpid()}.{count}").touch()
        time.sleep(float(os.environ.get(HOLD_VARIABLE, "0")))


def tiny_random_search(profile, directory):
    """The search's factory: ``(tuner, keyword arguments of tuner.search)``."""
    spec = budget(profile)
    tuner = keras_tuner.RandomSearch(
        build_model, objective="val_accuracy", max_trials=spec.max_trials,
        # Not 0: keras-tuner takes `seed or random.randint(...)`, so 0 means "unseeded".
        seed=1,
        directory=str(directory), project_name="tiny_random", overwrite=False)
    x, y = synthetic_data(spec.samples, seed=0)
    x_val, y_val = synthetic_data(spec.samples // 2, seed=1)
    markers = os.environ.get(MARKERS_VARIABLE)
    callbacks = [TrainingStarted(markers)] if markers else []
    return tuner, {"x": x, "y": y, "validation_data": (x_val, y_val), "epochs": spec.epochs,
                   "batch_size": 64, "verbose": 0, "callbacks": callbacks}


@experiment(config=lambda profile: asdict(budget(profile)))
def tiny_random(run, config):
    """Every trial of the search (id, values, score, status, times ended) and the best one."""
    tuner = run_search(SEARCH, run.profile, run.subdirectory("tuner"))
    oracle = tuner.oracle
    trials = [{"trial_id": trial_id, "values": dict(trial.hyperparameters.values),
               "score": trial.score, "status": str(trial.status),
               "times_ended": int(oracle._run_times[trial_id])}
              for trial_id, trial in sorted(oracle.trials.items())]
    best = oracle.get_best_trials(1)[0]
    return {"trials": trials, "best_values": dict(best.hyperparameters.values),
            "best_score": best.score}
