"""A tabular benchmark: searches that look scores up instead of training.

A trained grid is a table from configurations to validation scores. Any
search that only proposes configurations of the table can then be run many
times, with many seeds, at no training cost; each returns the best score it
has seen after 1, 2, … evaluations. The searches:

* ``random``: the table in a random order (sampling without replacement);
* ``grid``: the table in its own order (a grid search cut short);
* ``gp-ei``: our GP (eq-hpo-gp-posterior) with expected improvement
  (eq-hpo-ei) over the configurations not yet evaluated;
* ``tpe``: the l/g criterion (eq-hpo-tpe-ei) over the same candidates;
* ``keras-tuner``: keras-tuner's own ``BayesianOptimizationOracle``, driven
  by lookups (a proposal it repeats is looked up again and counts).
"""

from __future__ import annotations

import itertools
import tempfile

import numpy as np

from analysis.hpo import acquisition, gp, spaces, tpe, tuners

METHODS = ("random", "grid", "gp-ei", "tpe", "keras-tuner")

#: Our GP's noise (keras-tuner's default alpha) and the length scales among
#: which it picks the one with the largest marginal likelihood.
NOISE = 1e-4
LENGTH_SCALES = (0.1, 0.2, 0.4, 0.8, 1.6)


class Table:
    """A product grid of configurations and one score (to maximise) per cell."""

    def __init__(self, space: dict, scores):
        self.space = spaces.check(space)
        self.configurations = [dict(zip(space, values)) for values in itertools.product(*space.values())]
        self.scores = np.asarray(scores, dtype=float).ravel()
        if len(self.scores) != len(self.configurations):
            raise ValueError(f"{len(self.scores)} scores for a grid of {len(self.configurations)} cells")
        self.points = np.array([spaces.encode(space, c) for c in self.configurations])

    def index(self, configuration: dict) -> int:
        return self.configurations.index({name: configuration[name] for name in self.space})

    def __len__(self) -> int:
        return len(self.scores)


def _start(table: Table, budget: int, seed: int, initial: int) -> tuple[list[int], np.random.Generator]:
    generator = np.random.default_rng(seed)
    return list(generator.permutation(len(table))[:min(initial, budget)]), generator


def gp_fit(points, scores, candidates):
    """Our GP's posterior at the candidates, with the most likely length scale."""
    scores = np.asarray(scores, dtype=float)
    standardised = (scores - scores.mean()) / (scores.std() or 1.0)
    likelihoods = [gp.log_marginal_likelihood(points, standardised,
                                              lambda a, b, s=s: gp.matern52(a, b, s), NOISE)
                   for s in LENGTH_SCALES]
    length_scale = LENGTH_SCALES[int(np.argmax(likelihoods))]
    return gp.posterior(points, scores, candidates, lambda a, b: gp.matern52(a, b, length_scale),
                        noise=NOISE, normalize=True), length_scale


def _model_based(table: Table, budget: int, seed: int, initial: int, choose) -> list[int]:
    chosen, _ = _start(table, budget, seed, initial)
    while len(chosen) < min(budget, len(table)):
        remaining = [i for i in range(len(table)) if i not in chosen]
        chosen.append(remaining[choose(table, chosen, remaining)])
    return chosen


def _expected_improvement(table: Table, chosen, remaining) -> int:
    observed = table.scores[chosen]
    posterior, _ = gp_fit(table.points[chosen], observed, table.points[remaining])
    return int(np.argmax(acquisition.expected_improvement(posterior.mean, posterior.std, observed.max())))


def _tpe(table: Table, chosen, remaining) -> int:
    # TPE minimises a loss: the score enters as its negative.
    return tpe.suggest(table.points[remaining], table.points[chosen], -table.scores[chosen])


def keras_tuner_order(table: Table, budget: int, seed: int) -> list[int]:
    """keras-tuner's Bayesian oracle proposing, the table answering."""
    with tempfile.TemporaryDirectory() as directory:
        return drive_oracle(table, budget, seed, directory)[0]


def drive_oracle(table: Table, budget: int, seed: int, directory):
    """Run a ``BayesianOptimizationOracle`` on the table for ``budget``
    lookups; the cells it chose, and the oracle (with its trials)."""
    import keras_tuner

    hyperparameters = keras_tuner.HyperParameters()
    for name, values in table.space.items():
        # keras-tuner wants one type per Choice: 0 among rates becomes 0.0.
        mixed = any(isinstance(v, float) for v in values)
        hyperparameters.Choice(name, [float(v) if mixed else v for v in values])
    oracle = keras_tuner.oracles.BayesianOptimizationOracle(
        objective=keras_tuner.Objective("score", "max"), max_trials=budget, seed=tuners.oracle_seed(seed),
        hyperparameters=hyperparameters)
    chosen = []
    oracle._set_project_dir(str(directory), "lookup")
    oracle.verbose = 0
    for _ in range(budget):
        trial = oracle.create_trial("lookup")
        if trial.status != "RUNNING":
            break
        index = table.index(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, {"score": float(table.scores[index])})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        chosen.append(index)
    return chosen, oracle


def order(method: str, table: Table, budget: int, seed: int, initial: int = 3) -> list[int]:
    """The table cells a search evaluates, in order."""
    if method == "random":
        return list(np.random.default_rng(seed).permutation(len(table))[:budget])
    if method == "grid":
        return list(range(min(budget, len(table))))
    if method == "gp-ei":
        return _model_based(table, budget, seed, initial, _expected_improvement)
    if method == "tpe":
        return _model_based(table, budget, seed, initial, _tpe)
    if method == "keras-tuner":
        return keras_tuner_order(table, budget, seed)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def best_so_far(table: Table, cells: list[int], budget: int) -> np.ndarray:
    """The best score after 1..budget evaluations (a shorter search keeps its last best)."""
    best = np.maximum.accumulate(table.scores[cells])
    return np.concatenate([best, np.full(budget - len(best), best[-1])]) if len(best) < budget else best
