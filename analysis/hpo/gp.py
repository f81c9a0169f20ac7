"""A Gaussian-process posterior in NumPy, from the chapter's formulas.

eq-hpo-gp-posterior conditions the joint Gaussian of the observed scores y
and the unknown f(x*) on y:

    μ(x*) = k*ᵀ (K + σ²ₙ I)⁻¹ y,    σ²(x*) = k(x*, x*) − k*ᵀ (K + σ²ₙ I)⁻¹ k*.

The solve goes through a Cholesky factor (numerically the same formula).
``normalize`` reproduces scikit-learn's ``normalize_y=True``, which
keras-tuner's Bayesian oracle sets: the formulas run on standardised scores
and the result is mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import linalg


def _distances(a: np.ndarray, b: np.ndarray, length_scale) -> np.ndarray:
    a = np.atleast_2d(np.asarray(a, dtype=float)) / length_scale
    b = np.atleast_2d(np.asarray(b, dtype=float)) / length_scale
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def matern52(a, b, length_scale=1.0, variance=1.0) -> np.ndarray:
    """Matérn 5/2 (eq-hpo-matern): σ²_f (1 + √5 r + 5r²/3) exp(−√5 r), r = ‖a − b‖/ℓ."""
    r = _distances(a, b, length_scale)
    return variance * (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


def squared_exponential(a, b, length_scale=1.0, variance=1.0) -> np.ndarray:
    """σ²_f exp(−r²/2): the smooth kernel many texts start from."""
    r = _distances(a, b, length_scale)
    return variance * np.exp(-0.5 * r**2)


Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Posterior:
    mean: np.ndarray
    std: np.ndarray


def posterior(x_train, y_train, x_test, kernel: Kernel, noise: float = 1e-10,
              normalize: bool = False) -> Posterior:
    """Posterior mean and standard deviation at ``x_test`` (eq-hpo-gp-posterior).

    ``noise`` is σ²ₙ, added to K's diagonal (scikit-learn's ``alpha``).
    """
    x_train = np.atleast_2d(np.asarray(x_train, dtype=float))
    y = np.asarray(y_train, dtype=float).ravel()
    if normalize:
        offset, scale = y.mean(), y.std()
        scale = scale if scale > 0 else 1.0
    else:
        offset, scale = 0.0, 1.0
    y = (y - offset) / scale
    covariance = kernel(x_train, x_train) + noise * np.eye(len(y))
    factor = linalg.cho_factor(covariance, lower=True)
    cross = kernel(x_train, x_test)                       # k* for every test point, as columns
    mean = cross.T @ linalg.cho_solve(factor, y)
    prior = np.diag(kernel(x_test, x_test))
    variance = prior - np.sum(cross * linalg.cho_solve(factor, cross), axis=0)
    std = np.sqrt(np.maximum(variance, 0.0))
    return Posterior(mean * scale + offset, std * scale)


def log_marginal_likelihood(x_train, y_train, kernel: Kernel, noise: float = 1e-10) -> float:
    """log p(y) under the prior: how our own BO picks a length scale."""
    y = np.asarray(y_train, dtype=float).ravel()
    covariance = kernel(np.atleast_2d(x_train), np.atleast_2d(x_train)) + noise * np.eye(len(y))
    factor = linalg.cho_factor(covariance, lower=True)
    return float(-0.5 * y @ linalg.cho_solve(factor, y) - np.log(np.diag(factor[0])).sum()
                 - 0.5 * len(y) * np.log(2 * np.pi))


def sklearn_kernel_function(kernel) -> Kernel:
    """A fitted scikit-learn kernel (``gpr.kernel_``) as one of ours: only
    Matérn 5/2, optionally times a constant, is supported (keras-tuner's)."""
    from sklearn.gaussian_process import kernels

    variance = 1.0
    if isinstance(kernel, kernels.Product) and isinstance(kernel.k1, kernels.ConstantKernel):
        variance, kernel = float(kernel.k1.constant_value), kernel.k2
    if not (isinstance(kernel, kernels.Matern) and kernel.nu == 2.5):
        raise ValueError(f"only a Matérn 5/2 kernel is supported, not {kernel}")
    length_scale = np.asarray(kernel.length_scale, dtype=float)
    return lambda a, b: matern52(a, b, length_scale, variance)
