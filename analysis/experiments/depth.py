"""Experiments of the depth chapter (chapters/depth.qmd).

Three experiments share one training routine, so that their numbers can be
compared run for run (same data, epochs, seeds, optimizer and fixed
mini-batch for the gradients):

* :func:`activations` -- the assignment's nine models: depths × ReLU, tanh
  and sigmoid, Keras's default (Glorot uniform) initialisation;
* :func:`lecun` -- the same depths with LeCun's scaled tanh, to compare with
  the tanh runs of :func:`activations`;
* :func:`remedies` -- the deepest networks again with an initialisation
  matched to the activation and with batch or layer normalization (the
  baseline is the deepest configuration of :func:`activations`).

Every run records its learning curves, its test loss and accuracy, and the
largest absolute gradient of the loss with respect to each Dense layer's
kernel on one fixed mini-batch, at initialisation and after
``snapshot_epochs`` epochs of training.
"""

from __future__ import annotations

import keras
import numpy as np

from analysis import data, gradients, models, profiles, training
from analysis.runner import experiment

#: The assignment's topology and optimizer.
UNITS = 32
LEARNING_RATE = 0.01
BATCH_SIZE = 32
ACTIVATIONS = ("relu", "tanh", "sigmoid")

#: The assignment takes the gradient snapshot after this many epochs (a
#: profile with fewer epochs takes it after its last epoch; the config says so).
SNAPSHOT_EPOCHS = 3

#: Keras's default initialisation, used by the nine models.
DEFAULT_INITIALIZER = "glorot_uniform"

#: The initialisation matched to each activation: He et al. (2015) for ReLU,
#: Glorot & Bengio (2010) for the symmetric saturating ones.
MATCHED_INITIALIZERS = {"relu": "he_normal", "tanh": "glorot_uniform",
                        "sigmoid": "glorot_uniform"}

#: What the remedies experiment varies: (initialisation, normalization).
#: The deepest networks of :func:`activations` are the baseline.
REMEDIES = (("matched", None), ("matched", "batch"), ("matched", "layer"))


def _common_config(profile: profiles.Profile) -> dict:
    """What every experiment of the chapter shares (compared run for run)."""
    budget = profile.depth
    return {
        "data": budget.mnist,
        "epochs": budget.epochs,
        "snapshot_epochs": min(SNAPSHOT_EPOCHS, budget.epochs),
        "seeds": profile.seed_list(),
        "gradient_batch": budget.gradient_batch,
        "units": UNITS,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "loss": "sparse_categorical_crossentropy",
        "input_scaling": "pixels / 255",
    }


def _grid_config(profile, activation_names) -> dict:
    return {**_common_config(profile), "depths": profile.depth.depths,
            "activations": activation_names, "initializer": DEFAULT_INITIALIZER}


def _remedies_config(profile) -> dict:
    specifications = []
    for activation_name in ACTIVATIONS:
        for initialisation, normalization in REMEDIES:
            initializer = MATCHED_INITIALIZERS[activation_name]
            if initializer == DEFAULT_INITIALIZER and normalization is None:
                continue  # identical to the baseline, which activations() trains
            specifications.append({"activation": activation_name, "initializer": initializer,
                                   "normalization": normalization})
    return {**_common_config(profile), "depth": max(profile.depth.depths),
            "baseline_initializer": DEFAULT_INITIALIZER, "variants": specifications}


# --------------------------------------------------------------------------
# The shared training routine


def _prepare(run, config) -> dict:
    """Train/validation/test arrays scaled to [0, 1], and the fixed mini-batch."""
    parts = data.split(run.data("mnist"), profiles.DataBudget(**config["data"]), seed=0)
    arrays = {
        "x_train": data.scale01(parts.x_train), "y_train": parts.y_train,
        "x_val": data.scale01(parts.x_val), "y_val": parts.y_val,
        "x_test": data.scale01(parts.x_test), "y_test": parts.y_test,
    }
    # The split already shuffled the training images, so its first images are
    # a random mini-batch; every model of the chapter is probed on this one.
    size = config["gradient_batch"]
    if size > len(parts.y_train):
        raise ValueError(f"gradient_batch={size} exceeds the {len(parts.y_train)} training images")
    arrays["x_batch"], arrays["y_batch"] = arrays["x_train"][:size], arrays["y_train"][:size]
    return arrays


def _kernel_gradients(model, arrays) -> list[float]:
    """Max |dL/dkernel| per Dense layer, input side first, as a training step sees it."""
    found = gradients.max_abs_kernel_gradients(model, arrays["x_batch"], arrays["y_batch"],
                                               training=True)
    return [found[layer.name] for layer in models.dense_layers(model)]


def _build(config, *, depth, activation, initializer, normalization):
    return models.mlp([config["units"]] * depth, activation_name=activation,
                      kernel_initializer=initializer, normalization=normalization)


def _train_configuration(run, config, arrays, **architecture) -> list[dict]:
    """Train one architecture once per seed; a list of per-seed records.

    The first seed's model is compiled; later seeds reuse it with the initial
    weights of a model freshly built under their seed, and the optimizer's
    step counter set back to zero (plain SGD keeps no other state). This is
    the same training as compiling a new model, without tracing the train and
    test functions again, which takes seconds for a 40-layer network.
    """
    model, records = None, []
    for seed in config["seeds"]:
        training.set_seed(seed)
        fresh = _build(config, **architecture)
        if model is None:
            model = fresh
            optimizer = keras.optimizers.SGD(learning_rate=config["learning_rate"])
            training.compile_model(model, optimizer, loss=config["loss"])
        else:
            model.set_weights(fresh.get_weights())
            model.optimizer.iterations.assign(0)
        label = f"{architecture['activation']}, depth {architecture['depth']}, seed {seed}"
        records.append({**architecture, "seed": seed,
                        **_train_seed(run, config, arrays, model, label)})
    return records


def _train_seed(run, config, arrays, model, label: str) -> dict:
    """Probe, train (snapshot after ``snapshot_epochs``), probe, test."""
    initial = _kernel_gradients(model, arrays)
    history: dict[str, list[float]] = {}
    # Two calls to fit continue the same run: plain SGD keeps no state besides
    # its step counter, and the compiled train function is reused.
    phases = (config["snapshot_epochs"], config["epochs"] - config["snapshot_epochs"])
    trained = initial
    for phase, epochs in enumerate(phases):
        if epochs == 0:
            continue
        part = training.fit(model, arrays["x_train"], arrays["y_train"], epochs=epochs,
                            batch_size=config["batch_size"],
                            validation_data=(arrays["x_val"], arrays["y_val"]),
                            callbacks=[run.epoch_bar(label)])
        for name, values in part.items():
            history.setdefault(name, []).extend(values)
        if phase == 0:
            trained = _kernel_gradients(model, arrays)
    scores = training.evaluate(model, arrays["x_test"], arrays["y_test"])
    return {"history": history, "test_loss": scores["loss"], "test_accuracy": scores["accuracy"],
            "initial_gradients": initial, "trained_gradients": trained}


def _summary(arrays) -> dict:
    """Sizes of the splits, and the accuracy of always guessing the test set's
    most common digit (the chance level the chapter compares with)."""
    counts = np.bincount(arrays["y_test"])
    return {
        "sizes": {name[2:]: len(values) for name, values in arrays.items() if name.startswith("y_")},
        "chance_accuracy": float(counts.max() / counts.sum()),
    }


def _train_grid(run, config) -> dict:
    arrays = _prepare(run, config)
    combinations = [(depth, name) for depth in config["depths"] for name in config["activations"]]
    runs = []
    for depth, name in run.progress(combinations, "architectures"):
        runs += _train_configuration(run, config, arrays, depth=depth, activation=name,
                                     initializer=config["initializer"], normalization=None)
    return {"runs": runs, **_summary(arrays)}


# --------------------------------------------------------------------------
# The experiments


@experiment(datasets=("mnist",), config=lambda p: _grid_config(p, ACTIVATIONS))
def activations(run, config):
    """The nine models (depths × ReLU/tanh/sigmoid), Glorot uniform initialisation."""
    return _train_grid(run, config)


@experiment(datasets=("mnist",), config=lambda p: _grid_config(p, ("lecun",)))
def lecun(run, config):
    """The same depths with LeCun's scaled tanh (compare with tanh in activations)."""
    return _train_grid(run, config)


@experiment(datasets=("mnist",), config=_remedies_config)
def remedies(run, config):
    """The deepest networks with matched initialisation, and with batch or layer norm."""
    arrays = _prepare(run, config)
    runs = []
    for variant in run.progress(config["variants"], "architectures"):
        runs += _train_configuration(run, config, arrays, depth=config["depth"],
                                     activation=variant["activation"],
                                     initializer=variant["initializer"],
                                     normalization=variant["normalization"])
    return {"runs": runs, **_summary(arrays)}
