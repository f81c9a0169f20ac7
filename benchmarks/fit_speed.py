"""How much faster is our training helper than a plain ``model.fit``?

Trains the MNIST MLP of the optimizer chapter (784-100-10, ReLU, softmax,
Adam, batch size 32) twice from the same initial weights and the same seed:

* plain: ``model.compile(...)`` and ``model.fit(numpy_arrays, batch_size=32)``;
* ours:  ``analysis.training.compile_model`` and ``analysis.training.fit``.

It prints each epoch's wall time, the ratio of the median epoch times (the
first epoch, which includes tracing, is reported but left out of the median),
and both final test accuracies, which must agree within seed noise: the
helper changes how steps are dispatched, not the mathematics.

    python benchmarks/fit_speed.py [--epochs 5] [--dataset mnist|fashion_mnist]

Offline, MNIST is the 5,000-digit default; ``--dataset fashion_mnist`` times
the same network on 60,000 images of the same shape.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

import keras  # noqa: E402

from analysis import data, environment, training  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.started)


def build(seed: int) -> keras.Model:
    training.set_seed(seed)
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def run(variant: str, x, y, x_test, y_test, epochs: int, seed: int):
    model = build(seed)
    timer = EpochTimer()
    training.set_seed(seed)  # the same shuffling for both variants
    if variant == "plain":
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=32, epochs=epochs, callbacks=[timer], verbose=0)
    else:
        training.compile_model(model, "adam")
        training.fit(model, x, y, batch_size=32, epochs=epochs, callbacks=[timer])
    accuracy = training.evaluate(model, x_test, y_test)["accuracy"]
    return timer.times, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = data.load(args.dataset)
    x, x_test = data.scale01(dataset.x_train), data.scale01(dataset.x_test)
    print(f"data: {dataset.provenance.source_name}, {len(x):,} training images; "
          f"{environment.device()}; backend {environment.backend()}")
    results = {}
    for variant in ("plain", "ours"):
        times, accuracy = run(variant, x, dataset.y_train, x_test, dataset.y_test, args.epochs, args.seed)
        steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
        results[variant] = steady
        shown = " ".join(f"{t:.2f}" for t in times)
        print(f"{variant:>5}: epoch times [s] {shown}; median after the first {steady:.2f} s; "
              f"test accuracy {accuracy:.4f}")
    print(f"speed-up (median epoch time, plain / ours): {results['plain'] / results['ours']:.2f}x")


if __name__ == "__main__":
    main()
