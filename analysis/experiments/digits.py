"""Experiments of the digit-recognizer chapter (chapters/digits.qmd).

:data:`recognizer` trains the digit CNN (:mod:`analysis.digits.model`) on
MNIST with handwriting augmentation, keeps the weights of its best
validation epoch, saves the model in the cache entry (``python -m analysis
digits train`` exports it from there), and scores it three ways:

* on MNIST's test digits, as MNIST gives them;
* on scikit-learn's ``load_digits``: 1,797 digits (8 × 8, 17 grey levels)
  written by people who are not among MNIST's writers, brought to MNIST's
  form by the same preprocessing code that reads photos;
* on the first ``photos`` MNIST test digits made into photos
  (:mod:`analysis.digits.photos`) and read back through the preprocessing,
  against the same digits clean.

The test sets choose nothing: the epoch is chosen on validation accuracy.
"""

from __future__ import annotations

import numpy as np

from analysis import data, profiles
from analysis.digits import model as digit_model
from analysis.digits import photos, preprocess
from analysis.runner import experiment

#: The photos' own seed, so the robustness set does not move with the model's.
PHOTO_SEED = 2024

#: How many photos the result keeps as pictures (for the chapter's figures).
KEPT_PHOTOS = 12


def sklearn_digits(count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as greyscale in [0, 1] (8 × 8) and their labels.

    The file ships inside scikit-learn (no download); its pixel values count
    inked cells of a 4 × 4 block of a 32 × 32 bitmap, 0-16.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images / 16.0, bunch.target.astype(np.int64)
    return (images, labels) if count is None else (images[:count], labels[:count])


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def _config(profile) -> dict:
    budget = profile.digits
    return {"data": budget.mnist, "epochs": budget.epochs, "photos": budget.photos,
            "sklearn_digits": budget.sklearn_digits, "seed": budget.seed,
            "photo_seed": PHOTO_SEED, "augmentation": digit_model.AUGMENTATION,
            "batch_size": digit_model.BATCH_SIZE}


@experiment(datasets=("mnist",), config=_config)
def recognizer(run, config):
    """Train, save and score the digit CNN (see the module's docstring)."""
    parts = data.split(run.data("mnist"), profiles.DataBudget(**config["data"]), seed=config["seed"])
    x_train, x_val, x_test = (data.scale01(x) for x in (parts.x_train, parts.x_val, parts.x_test))
    model, history = digit_model.train(
        x_train, parts.y_train, x_val, parts.y_val, epochs=config["epochs"], seed=config["seed"],
        progress=lambda epochs: run.progress(epochs, "digit CNN epochs"))
    run.save_model("digit_cnn", model)

    sklearn_images, sklearn_labels = sklearn_digits(config["sklearn_digits"])
    sklearn_mnist = preprocess.batch_to_mnist(sklearn_images, "scikit-learn digit")

    count = min(config["photos"], len(parts.y_test))
    made = photos.make_photos(parts.x_test[:count, ..., 0], seed=config["photo_seed"])
    photo_mnist = preprocess.batch_to_mnist(made / 255.0, "photo")

    return {
        "history": history,
        "sizes": parts.sizes(),
        "best_epoch": int(np.argmax(history["val_accuracy"])) + 1,
        "sklearn_count": len(sklearn_labels),
        "photo_count": count,
        "mnist_labels": parts.y_test,
        "mnist_probabilities": digit_model.predict(model, x_test),
        "sklearn_labels": sklearn_labels,
        "sklearn_probabilities": digit_model.predict(model, sklearn_mnist),
        "sklearn_images": _to_uint8(sklearn_mnist[..., 0]),
        "photo_labels": parts.y_test[:count],
        "photo_probabilities": digit_model.predict(model, photo_mnist),
        "clean_probabilities": digit_model.predict(model, x_test[:count]),
        "photo_examples": made[:KEPT_PHOTOS],
        "photo_examples_mnist": _to_uint8(photo_mnist[:KEPT_PHOTOS, ..., 0]),
    }
