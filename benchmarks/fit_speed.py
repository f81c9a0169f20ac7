"""Which backend and which ``fit`` should the book train with? Measured, at equal math.

Trains the MNIST MLP of the optimizer chapter (784-100-10, ReLU, softmax,
Adam, batch size 32) four ways:

* TensorFlow, plain ``model.compile`` + ``model.fit``;
* TensorFlow, our fast path (``analysis.training``: ``steps_per_execution``);
* JAX, plain;
* JAX, our fast path.

Every variant starts from the same initial weights (drawn once with NumPy and
set into the model) and sees the same batches (the data are permuted once
with NumPy and fitted without shuffling), so the four differ only in how steps
are dispatched; their test accuracies, printed beside the times, must agree
up to floating-point summation order. Each backend runs in its own process,
because a process holds one Keras backend.

It prints each variant's median epoch time (the first epoch, which includes
tracing and compilation, is left out) and the speed-up over plain TensorFlow.

    python benchmarks/fit_speed.py [--epochs 5] [--dataset mnist|fashion_mnist]

Offline, MNIST is the 5,000-digit default; ``--dataset fashion_mnist`` times
the same network on 60,000 images of the same shape.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere

BACKENDS = ("tensorflow", "jax")
VARIANTS = ("plain", "fast")


def initial_weights(seed: int):
    """Glorot-uniform kernels and zero biases, drawn with NumPy (backend-free)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def glorot(fan_in, fan_out):
        limit = np.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype("float32")

    return [glorot(784, 100), np.zeros(100, "float32"), glorot(100, 10), np.zeros(10, "float32")]


def measure(variant: str, arrays, epochs: int, seed: int) -> dict:
    """One variant in this process's backend: epoch times and test accuracy."""
    import keras

    from analysis import training

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.started)

    x, y, x_test, y_test = arrays
    training.set_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.set_weights(initial_weights(seed))
    timer = EpochTimer()
    if variant == "plain":
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, callbacks=[timer], verbose=0)
    else:
        training.compile_model(model, "adam")
        training.fit(model, x, y, batch_size=32, epochs=epochs, shuffle=False, callbacks=[timer])
    accuracy = training.evaluate(model, x_test, y_test)["accuracy"]
    return {"times": timer.times, "accuracy": accuracy}


def worker(args) -> None:
    """Child process: both variants on the backend in KERAS_BACKEND, as JSON."""
    import numpy as np

    from analysis import data, environment

    dataset = data.load(args.dataset)
    order = np.random.default_rng(args.seed).permutation(len(dataset.x_train))
    arrays = (data.scale01(dataset.x_train)[order], dataset.y_train[order],
              data.scale01(dataset.x_test), dataset.y_test)
    results = {variant: measure(variant, arrays, args.epochs, args.seed) for variant in VARIANTS}
    print(json.dumps({"backend": environment.backend(), "device": environment.device(),
                      "data": f"{dataset.provenance.source_name}, {len(order):,} training images",
                      "results": results}))


def run_backend(backend: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", "--epochs", str(args.epochs),
               "--dataset", args.dataset, "--seed", str(args.seed)]
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    if finished.returncode != 0:
        tail = finished.stderr.strip().splitlines()[-1:] or ["(no message)"]
        sys.exit(f"error: the {backend} run failed: {tail[0]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch includes compilation)")
    if args.worker:
        return worker(args)

    medians, lines = {}, []
    for backend in BACKENDS:
        report = run_backend(backend, args)
        lines.append(f"{backend}: {report['data']}; {report['device']}")
        for variant in VARIANTS:
            result = report["results"][variant]
            median = statistics.median(result["times"][1:])
            medians[(backend, variant)] = median
            shown = " ".join(f"{t:.2f}" for t in result["times"])
            lines.append(f"  {variant:>5}: epoch times [s] {shown}; median after the first "
                         f"{median:.2f} s; test accuracy {result['accuracy']:.4f}")
    print("\n".join(lines))
    baseline = medians[("tensorflow", "plain")]
    print("speed-up over plain TensorFlow fit (median epoch time):")
    for (backend, variant), median in sorted(medians.items(), key=lambda item: item[1]):
        print(f"  {backend:>10} {variant:>5}: {baseline / median:.2f}x")
    fastest = min(medians, key=medians.get)
    print(f"fastest: {fastest[0]} {fastest[1]}")


if __name__ == "__main__":
    main()
