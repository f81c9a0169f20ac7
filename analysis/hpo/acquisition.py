"""Acquisition functions for maximising a score (eq-hpo-pi, -ei, -ucb).

With the posterior f(x) ~ N(μ, σ²), the best score so far f* and
z = (μ − f*)/σ:

* probability of improvement  PI = Φ(z);
* expected improvement        EI = (μ − f*) Φ(z) + σ φ(z);
* upper confidence bound      UCB = μ + β σ.

Where σ = 0 the posterior is a point: PI and EI are those of a sure value.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _z(mean, std, best):
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean, std, np.where(std > 0, (mean - best) / np.where(std > 0, std, 1.0), 0.0)


def probability_of_improvement(mean, std, best):
    mean, std, z = _z(mean, std, best)
    return np.where(std > 0, stats.norm.cdf(z), (mean > best).astype(float))


def expected_improvement(mean, std, best):
    mean, std, z = _z(mean, std, best)
    closed = (mean - best) * stats.norm.cdf(z) + std * stats.norm.pdf(z)
    return np.where(std > 0, closed, np.maximum(mean - best, 0.0))


def upper_confidence_bound(mean, std, beta: float = 2.6):
    return np.asarray(mean, dtype=float) + beta * np.asarray(std, dtype=float)


FUNCTIONS = {"pi": probability_of_improvement, "ei": expected_improvement}


def monte_carlo_expected_improvement(mean: float, std: float, best: float, samples: int,
                                     seed: int = 0) -> tuple[float, float]:
    """EI by sampling f ~ N(μ, σ²): the estimate and its standard error."""
    draws = np.random.default_rng(seed).normal(mean, std, size=samples)
    improvement = np.maximum(draws - best, 0.0)
    return float(improvement.mean()), float(improvement.std(ddof=1) / np.sqrt(samples))
