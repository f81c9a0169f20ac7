"""The tree-structured Parzen estimator's criterion (Bergstra et al. 2011).

TPE models p(x | y) instead of p(y | x): the observed configurations are
split at the γ-quantile y* of their losses (lower is better; a score to
maximise enters as its negative), and a Parzen (kernel density) estimator is
fitted to each part, l(x) to the good ones and g(x) to the rest. Under that
model the expected improvement below y* is (eq-hpo-tpe-ei)

    EI(x) ∝ (γ + (1 − γ) g(x) / l(x))⁻¹,

which increases with l(x)/g(x): TPE proposes the candidate with the largest
ratio. :func:`expected_improvement` computes EI under the same model from the
observations directly (Bayes' rule over the empirical p(y)), so a test can
check that the ratio ranks candidates as EI does.
"""

from __future__ import annotations

import numpy as np

#: Bergstra et al.'s default share of "good" observations.
GAMMA = 0.25


def _parzen(points: np.ndarray, bandwidth: float):
    """A product-Gaussian kernel density on the unit cube, one kernel per point."""
    points = np.atleast_2d(points)

    def density(x):
        x = np.atleast_2d(np.asarray(x, dtype=float))
        squared = ((x[:, None, :] - points[None, :, :]) / bandwidth) ** 2
        kernels = np.exp(-0.5 * squared.sum(-1)) / (np.sqrt(2 * np.pi) * bandwidth) ** points.shape[1]
        return kernels.mean(axis=1)

    return density


def split(losses, gamma: float = GAMMA) -> tuple[np.ndarray, float]:
    """Which observations are "good" (the ⌈γ n⌉ lowest losses) and the threshold y*."""
    losses = np.asarray(losses, dtype=float)
    count = max(1, int(np.ceil(gamma * len(losses))))
    order = np.argsort(losses, kind="stable")
    good = np.zeros(len(losses), dtype=bool)
    good[order[:count]] = True
    threshold = losses[order[count]] if count < len(losses) else np.inf
    return good, float(threshold)


def densities(x_observed, losses, gamma: float = GAMMA, bandwidth: float = 0.15):
    """l and g: Parzen estimators over the good and the other observations."""
    x_observed = np.atleast_2d(np.asarray(x_observed, dtype=float))
    good, _ = split(losses, gamma)
    if good.all():
        raise ValueError("TPE needs at least one observation outside the good share")
    return _parzen(x_observed[good], bandwidth), _parzen(x_observed[~good], bandwidth)


def ratio(x_candidates, x_observed, losses, gamma: float = GAMMA, bandwidth: float = 0.15):
    """l(x)/g(x) at each candidate: TPE proposes its argmax."""
    good_density, other_density = densities(x_observed, losses, gamma, bandwidth)
    return good_density(x_candidates) / other_density(x_candidates)


def expected_improvement(x_candidates, x_observed, losses, gamma: float = GAMMA,
                         bandwidth: float = 0.15):
    """EI below y* under TPE's model, computed without the ratio.

    p(y) is the empirical distribution of the observed losses; p(x | y) is l
    for a good observation and g otherwise; Bayes' rule gives p(y | x), and
    EI(x) = Σ max(y* − yᵢ, 0) p(x | yᵢ) p(yᵢ) / Σ p(x | yᵢ) p(yᵢ). (The good
    share is ⌈γn⌉/n rather than γ: what the split really holds.)
    """
    losses = np.asarray(losses, dtype=float)
    good, threshold = split(losses, gamma)
    good_density, other_density = densities(x_observed, losses, gamma, bandwidth)
    likelihood = np.where(good[None, :], good_density(x_candidates)[:, None],
                          other_density(x_candidates)[:, None])
    improvement = np.maximum(threshold - losses, 0.0)
    return (likelihood * improvement[None, :]).sum(1) / likelihood.sum(1)


def suggest(x_candidates, x_observed, losses, gamma: float = GAMMA, bandwidth: float = 0.15) -> int:
    """Index of the candidate with the largest l/g."""
    return int(np.argmax(ratio(x_candidates, x_observed, losses, gamma, bandwidth)))
