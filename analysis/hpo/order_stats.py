"""The best of N configurations drawn from a trained pool, exactly.

Random search with N trials draws N configurations; Bergstra & Bengio (2012)
estimate what N trials buy from one pool of M trained configurations
("random experiment efficiency curves"). Drawing N of the M without
replacement, the chosen configuration — the best on validation — is the one
of rank k (1 = worst, M = best, ties broken by pool order) with probability

    P(best = k) = C(k − 1, N − 1) / C(M, N),

since the other N − 1 must all come from the k − 1 below it. Every statistic
of the best-of-N validation score, and of the test score of the configuration
it selects, follows from these weights; no resampling is needed.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from analysis.errors import UserError


def ranks(validation) -> np.ndarray:
    """Pool indices from worst to best: by validation score, then by pool order
    (the earlier of two tied configurations counts as better, as ``argmax``
    picks the first)."""
    validation = np.asarray(validation, dtype=float)
    if not np.all(np.isfinite(validation)):
        # A diverged configuration scores worst, as it would in a search.
        validation = np.where(np.isfinite(validation), validation, -np.inf)
    return np.lexsort((-np.arange(len(validation)), validation))


def check_size(pool: int, trials: int) -> None:
    if not 1 <= trials <= pool:
        raise UserError(f"cannot draw the best of N = {trials} from a pool of {pool} configurations; "
                        f"choose N between 1 and {pool}, or train a larger pool")


def best_rank_probabilities(pool: int, trials: int) -> np.ndarray:
    """P(the best of ``trials`` draws is the rank-k configuration), k = 1..pool."""
    check_size(pool, trials)
    k = np.arange(1, pool + 1)
    # Logarithms keep C(M, N) finite for pools of thousands.
    log_weights = (special.gammaln(k) - special.gammaln(trials) - special.gammaln(k - trials + 1)
                   - (special.gammaln(pool + 1) - special.gammaln(trials + 1)
                      - special.gammaln(pool - trials + 1)))
    return np.where(k >= trials, np.exp(np.where(k >= trials, log_weights, 0.0)), 0.0)


def selection_distribution(validation, trials: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool indices, probabilities): which configuration N draws select."""
    order = ranks(validation)
    return order, best_rank_probabilities(len(order), trials)


def quantile(values, probabilities, q: float) -> float:
    """The q-quantile of a discrete distribution (the smallest v with P(≤ v) ≥ q)."""
    values, probabilities = np.asarray(values, dtype=float), np.asarray(probabilities, dtype=float)
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(probabilities[order])
    return float(values[order][min(np.searchsorted(cumulative, q - 1e-12), len(values) - 1)])


def efficiency_curve(validation, test=None, trials=None, quantiles=(0.1, 0.5, 0.9)) -> dict:
    """For every N: mean and quantiles of the best validation score, and the
    mean test score of the configuration selected on validation.

    ``test`` is only looked up for the configuration that validation chose;
    it never enters the choice.
    """
    validation = np.asarray(validation, dtype=float)
    trials = list(range(1, len(validation) + 1)) if trials is None else [int(n) for n in trials]
    curve = {"trials": trials, "mean": [], "quantiles": {str(q): [] for q in quantiles}}
    if test is not None:
        curve["test_mean"], curve["test_quantiles"] = [], {str(q): [] for q in quantiles}
    scores = np.where(np.isfinite(validation), validation, -np.inf)
    for n in trials:
        order, probability = selection_distribution(validation, n)
        chosen = scores[order]
        curve["mean"].append(float(np.sum(probability * np.where(probability > 0, chosen, 0.0))))
        for q in quantiles:
            curve["quantiles"][str(q)].append(quantile(chosen, probability, q))
        if test is not None:
            selected_test = np.asarray(test, dtype=float)[order]
            curve["test_mean"].append(float(np.sum(probability * selected_test)))
            for q in quantiles:
                curve["test_quantiles"][str(q)].append(quantile(selected_test, probability, q))
    return curve


def brute_force_selection(validation, trials: int, draws: int, seed: int = 0) -> np.ndarray:
    """How often each pool index is selected over ``draws`` random subsets of
    size ``trials`` (the resampling the exact formula replaces)."""
    validation = np.asarray(validation, dtype=float)
    check_size(len(validation), trials)
    generator = np.random.default_rng(seed)
    counts = np.zeros(len(validation))
    for _ in range(draws):
        subset = np.sort(generator.choice(len(validation), size=trials, replace=False))
        counts[subset[np.argmax(validation[subset])]] += 1
    return counts / draws
