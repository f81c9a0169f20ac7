"""Training helpers every chapter uses: seeding, a fast ``fit``, callbacks.

The fast path changes nothing in the mathematics of training (same model, same
optimizer, same batch size, same number of updates): it only runs many steps
per call into the backend (``steps_per_execution``), which removes most of the
per-batch Python overhead that dominates small models at batch size 32 on a
CPU. ``benchmarks/fit_speed.py`` measures the gain.
"""

from __future__ import annotations

import os
import sys

import keras
import numpy as np

#: Steps per call into the compiled train function. 32 was the fastest of
#: 1/8/32/128 on a 2-core CPU for the MNIST MLP (see benchmarks/fit_speed.py);
#: larger values only delay callbacks and progress. NNSTUDY_STEPS_PER_EXECUTION=1
#: gives Keras's plain ``fit``, the baseline of benchmarks/parallel_runs.py; it
#: changes how steps are dispatched, never the numbers.
STEPS_PER_EXECUTION = int(os.environ.get("NNSTUDY_STEPS_PER_EXECUTION", "32"))

#: Batch size for evaluation passes; it changes only the summation order.
EVALUATION_BATCH_SIZE = 1024

_deterministic = False


def set_seed(seed: int) -> None:
    """The one seeding helper: Python, NumPy and the backend, plus determinism.

    On TensorFlow we also ask for deterministic ops, so the same experiment
    run twice on the CPU gives identical numbers (affordable for our models).
    """
    global _deterministic
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow" and not _deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        _deterministic = True


def compile_model(model, optimizer, loss="sparse_categorical_crossentropy",
                  metrics=("accuracy",), **options):
    """``model.compile`` with the fast path switched on."""
    options.setdefault("steps_per_execution", STEPS_PER_EXECUTION)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), **options)
    return model


def fit(model, x, y, *, epochs: int, batch_size: int = 32, validation_data=None,
        callbacks=(), shuffle: bool = True) -> dict[str, list[float]]:
    """Train a model compiled with :func:`compile_model`; returns its history.

    Data stay NumPy arrays: Keras turns them into its own input pipeline once
    per ``fit`` (on TensorFlow a prefetched ``tf.data`` pipeline), and the
    shuffling follows the seed set by :func:`set_seed`. The history is a plain
    dict of per-epoch floats, ready to be stored in the cache.
    """
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
        validation_data=validation_data, validation_batch_size=EVALUATION_BATCH_SIZE,
        callbacks=list(callbacks), verbose=0,
    )
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def evaluate(model, x, y) -> dict[str, float]:
    """Loss and metrics over a whole set, as a dict of floats."""
    scores = model.evaluate(x, y, batch_size=EVALUATION_BATCH_SIZE, verbose=0, return_dict=True)
    return {name: float(value) for name, value in scores.items()}


class EvaluateOnTraining(keras.callbacks.Callback):
    """After each epoch, evaluate on the training data the way validation is.

    Keras's own ``loss``/``accuracy`` are running means over an epoch in which
    the weights kept changing (and dropout was active); re-evaluating gives
    training numbers that can be compared with validation ones. They are added
    to the history as ``train_loss``, ``train_accuracy``, ...
    """

    def __init__(self, x, y, prefix: str = "train_"):
        super().__init__()
        self.x, self.y, self.prefix = x, y, prefix

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name, value in evaluate(self.model, self.x, self.y).items():
                logs[self.prefix + name] = value


class EpochProgress(keras.callbacks.Callback):
    """One tqdm bar over the epochs of a ``fit``, with the latest metrics."""

    def __init__(self, description: str = "epochs", enabled: bool = True):
        super().__init__()
        self.description, self.enabled, self.bar = description, enabled, None

    def on_train_begin(self, logs=None):
        from tqdm import tqdm

        self.bar = tqdm(total=self.params.get("epochs"), desc=self.description,
                        leave=False, disable=not self.enabled, file=sys.stderr)

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: f"{v:.3f}" for k, v in (logs or {}).items() if "loss" in k or "acc" in k}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def best_epoch(history: dict[str, list[float]], monitor: str = "val_accuracy") -> int:
    """Index of the best epoch by ``monitor`` (highest accuracy, lowest loss)."""
    values = np.asarray(history[monitor])
    return int(np.argmin(values) if "loss" in monitor else np.argmax(values))


def restore_best_weights(epochs: int, monitor: str = "val_accuracy") -> keras.callbacks.Callback:
    """A callback that puts back the weights of the best epoch when ``fit`` ends.

    Keras's ``EarlyStopping`` with ``restore_best_weights=True`` restores in
    ``on_train_end`` whether or not training stopped early (Keras 3.15); a
    patience of ``epochs`` means it never stops early, so every run trains for
    all its epochs and ends on its best weights. Improvement is strict, so
    among equal values the earliest epoch wins, as in :func:`best_epoch`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    return keras.callbacks.EarlyStopping(monitor=monitor, patience=epochs,
                                         restore_best_weights=True)
