"""Deterministic train/validation/test splits and the normalisations chapters use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.profiles import DataBudget

#: The validation set never takes more than this share of the training images,
#: so a small dataset (the offline MNIST default has 4,000) still trains.
MAX_VALIDATION_SHARE = 0.2

#: The test subset does not depend on the split's seed: every replicate (and
#: every method compared) is scored on the same test images.
_TEST_SUBSET_SEED = 0


@dataclass(frozen=True, eq=False)
class Split:
    """Arrays of one split; images keep the dataset's dtype (uint8)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def _cap(wanted: int | None, available: int) -> int:
    return available if wanted is None else max(0, min(int(wanted), available))


def split(dataset, budget: DataBudget, seed: int) -> Split:
    """Validation drawn from train by a seeded permutation, then every part capped by ``budget``.

    ``budget.validation`` images (at most a fifth of the training set) are
    taken first; the training set is the next ``budget.train`` images of the
    same permutation (``None``: all the rest); the test set is the first
    ``budget.test`` images of a fixed permutation (``None``: all of it, in the
    original order). Caps stop silently at what exists. The same dataset,
    budget and seed always give the same arrays.
    """
    available = len(dataset.y_train)
    order = np.random.default_rng(seed).permutation(available)
    validation = min(_cap(budget.validation, available), int(available * MAX_VALIDATION_SHARE))
    validation_indices = order[:validation]
    rest = order[validation:]
    train_indices = rest[: _cap(budget.train, len(rest))]
    test_indices = _test_indices(len(dataset.y_test), budget.test)
    return Split(
        dataset.x_train[train_indices], dataset.y_train[train_indices],
        dataset.x_train[validation_indices], dataset.y_train[validation_indices],
        dataset.x_test[test_indices], dataset.y_test[test_indices],
    )


def _test_indices(available: int, wanted: int | None) -> np.ndarray:
    count = _cap(wanted, available)
    if count == available:
        return np.arange(available)
    chosen = np.random.default_rng(_TEST_SUBSET_SEED).permutation(available)[:count]
    return np.sort(chosen)


def scale01(images: np.ndarray) -> np.ndarray:
    """uint8 pixel values 0-255 as float32 in [0, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"scale01 expects uint8 images, got {images.dtype}")
    return images.astype(np.float32) / np.float32(255.0)


def _centre(images: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, float]:
    """``images - mean`` as float32, and the sum of its squares.

    Working through blocks of images keeps one float32 copy in memory (a
    float32 CIFAR-10 training set is 600 MB already) and touches it once;
    each block's dot product is float32, the running total float64.
    """
    centred = np.empty(images.shape, dtype=np.float32)
    total = 0.0
    for start in range(0, len(images), 1024):
        block = centred[start:start + 1024]
        np.subtract(images[start:start + 1024], mean, out=block, dtype=np.float32)
        flat = block.reshape(-1)
        total += float(flat @ flat)
    return centred, total


def standardize(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Subtract the per-pixel mean and divide by one global std, both from ``train`` only.

    The std is that of the mean-centred training values (the CS231n recipe:
    ``X -= X.mean(axis=0); X /= X.std()``). Returns float32 arrays: ``train``
    first, then each of ``others`` transformed with the training statistics,
    so no information leaks from validation or test data.
    """
    train = np.asarray(train)
    if len(train) == 0:
        raise ValueError("standardize needs at least one training image")
    mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred_train, sum_of_squares = _centre(train, mean)
    std = float(np.sqrt(sum_of_squares / centred_train.size))
    if std == 0.0:
        raise ValueError("standardize: the training images are all identical (std 0)")
    scale = np.float32(1.0 / std)
    centred_train *= scale
    results = [centred_train]
    for other in others:
        transformed, _ = _centre(np.asarray(other), mean)
        transformed *= scale
        results.append(transformed)
    return tuple(results)
