"""Experiments of the convolutional-networks chapter (chapters/cnn.qmd).

* :data:`keras_checks` compares the chapter's formulas with Keras: the output
  size of every convolution and pooling layer over a grid of shapes and for
  every layer of the chapter's models, each Conv2D layer's parameter count,
  the worked pooling example against ``MaxPooling2D``/``AveragePooling2D``
  and the pooling backward passes against automatic differentiation;
* :data:`mnist` trains a small CNN on MNIST (seeds per profile), and
  :data:`epoch_timing` times one of its epochs on this machine;
* :data:`cifar` trains the five CIFAR-10 networks (the 32-64-64 tutorial net
  and the exercise's a–d) over seeds;
* :data:`svhn` trains the 9-36-49 network on SVHN and records, for one
  random test image of each class, the output of every convolutional filter.

Every network of a–d, MNIST's and SVHN's stops (or picks its epoch) on
validation data; the test set scores each model once, at the end.
"""

from __future__ import annotations

import time

import keras
import numpy as np
from sklearn.metrics import confusion_matrix

from analysis import data, gradients, pooling, profiles, training
from analysis.runner import experiment
from analysis.symbolic import conv_parameters, output_size

L = keras.layers

#: Adam at Keras's default rate for every network of the chapter.
LEARNING_RATE = 1e-3
MNIST_BATCH_SIZE = 128
CIFAR_BATCH_SIZE = 64
SVHN_BATCH_SIZE = 128
DROPOUT_RATE = 0.5
#: A full epoch of real MNIST: 60,000 training images less 5,000 for validation.
MNIST_EPOCH_IMAGES = 55000
#: The MNIST target of the chapter, and where the original attempt stopped.
MNIST_TARGET = 0.99
EARLIER_MNIST_ACCURACY = 0.985
#: The SVHN protocol's validation images, drawn from its training set.
SVHN_VALIDATION = 7326

CIFAR_NETS = ("32-64-64", "a", "b", "c", "d")
#: CIFAR-10 augmentation (net d): a horizontal flip (a mirrored car, ship or
#: horse is still one, an upside-down one is not in the test set) and a shift
#: of up to 10% of the image each way (objects are roughly, not exactly,
#: centred). Neither changes a label; both act in training only.
FLIP_MODE = "horizontal"
TRANSLATION = 0.1

#: The worked pooling example: a 6 × 6 integer matrix, pooled 3 × 3 and 2 × 2.
POOLING_EXAMPLE = np.array([
    [1, 3, 2, 9, 7, 4],
    [5, 6, 1, 0, 2, 8],
    [4, 2, 8, 3, 1, 6],
    [7, 1, 0, 5, 9, 2],
    [3, 8, 6, 4, 0, 1],
    [2, 9, 4, 7, 3, 5],
])
POOL_SIZES = (3, 2)


# --------------------------------------------------------------------------
# The networks


class GlorotUniform(keras.initializers.Initializer):
    """Keras's default kernel initializer (Glorot uniform), drawn with NumPy.

    The same distribution as ``"glorot_uniform"``: U(−l, l) with
    l = √(6 / (fan_in + fan_out)), the fans of a conv kernel counting its
    k_h·k_w positions. Drawn from NumPy's global generator, which
    :func:`analysis.training.set_seed` seeds, because on JAX Keras's own
    random initializers compile a kernel per weight shape: seconds per model
    on a 2-core CPU, for eight networks.
    """

    def __call__(self, shape, dtype=None):
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        values = np.random.uniform(-limit, limit, size=shape)
        return keras.ops.convert_to_tensor(values, dtype=dtype or "float32")


#: The kernel initializer of every trained network. The shape checks build
#: the models with "zeros" instead: shapes and counts do not depend on the
#: initial values.
INITIALIZER = GlorotUniform()


def mnist_model(initializer=INITIALIZER) -> keras.Model:
    """Conv(32, 3×3) → max-pool 2 → Conv(64, 3×3) → max-pool 2 → Dense(128) → dropout → softmax."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, activation="relu", kernel_initializer=initializer, name="conv_1"),
        L.MaxPooling2D(2, name="pool_1"),
        L.Conv2D(64, 3, activation="relu", kernel_initializer=initializer, name="conv_2"),
        L.MaxPooling2D(2, name="pool_2"),
        L.Flatten(name="flatten"),
        L.Dense(128, activation="relu", kernel_initializer=initializer, name="dense"),
        L.Dropout(DROPOUT_RATE, name="dropout"),
        L.Dense(10, activation="softmax", kernel_initializer=initializer, name="output"),
    ], name="mnist_cnn")


def _conv(filters: int, name: str, initializer, padding: str = "same"):
    return L.Conv2D(filters, 3, padding=padding, activation="relu", kernel_initializer=initializer, name=name)


def _classifier(hidden: int | None, initializer) -> list:
    """Flatten → [Dense(hidden, ReLU) → dropout 0.5] → Dense(10, softmax): dropout after FC layers only."""
    layers = [L.Flatten(name="flatten")]
    if hidden:
        layers += [L.Dense(hidden, activation="relu", kernel_initializer=initializer, name="fc"),
                   L.Dropout(DROPOUT_RATE, name="dropout")]
    return layers + [L.Dense(10, activation="softmax", kernel_initializer=initializer, name="output")]


def cifar_model(name: str, initializer=INITIALIZER) -> keras.Model:
    """One of the chapter's five CIFAR-10 networks (see :data:`CIFAR_NETS`)."""
    if name not in CIFAR_NETS:
        raise ValueError(f"unknown CIFAR-10 network {name!r}; choose from {', '.join(CIFAR_NETS)}")
    inputs, init = [keras.Input((32, 32, 3))], initializer
    if name == "32-64-64":
        # The TensorFlow tutorial's network, as the original exercise used it:
        # valid padding, no dropout.
        body = [_conv(32, "conv_1", init, "valid"), L.MaxPooling2D(2, name="pool_1"),
                _conv(64, "conv_2", init, "valid"), L.MaxPooling2D(2, name="pool_2"),
                _conv(64, "conv_3", init, "valid"), L.Flatten(name="flatten"),
                L.Dense(64, activation="relu", kernel_initializer=init, name="fc"),
                L.Dense(10, activation="softmax", kernel_initializer=init, name="output")]
        return keras.Sequential(inputs + body, name="net_32_64_64")
    if name == "a":
        body = [_conv(12, "conv_1", init), L.MaxPooling2D(2, name="pool_1"), *_classifier(None, init)]
    elif name == "b":
        body = [_conv(32, "conv_1", init), _conv(64, "conv_2", init), L.MaxPooling2D(2, name="pool_1"),
                *_classifier(128, init)]
    else:
        body = [_conv(32, "conv_1", init), _conv(32, "conv_2", init), L.MaxPooling2D(2, name="pool_1"),
                _conv(64, "conv_3", init), _conv(64, "conv_4", init), L.MaxPooling2D(2, name="pool_2"),
                *_classifier(512, init)]
    if name == "d":
        inputs += [L.RandomFlip(FLIP_MODE, name="flip"),
                   L.RandomTranslation(TRANSLATION, TRANSLATION, fill_mode="reflect", name="shift")]
    return keras.Sequential(inputs + body, name=f"net_{name}")


def svhn_model(initializer=INITIALIZER) -> keras.Model:
    """Three 3×3 conv layers (9, 36, 49 filters), each followed by 3×3 max pooling; Flatten → softmax."""
    body = []
    for index, filters in enumerate((9, 36, 49), start=1):
        body += [_conv(filters, f"conv_{index}", initializer), L.MaxPooling2D(3, name=f"pool_{index}")]
    return keras.Sequential([keras.Input((32, 32, 3)), *body, L.Flatten(name="flatten"),
                             L.Dense(10, activation="softmax", kernel_initializer=initializer, name="output")],
                            name="svhn_cnn")


def chapter_models(initializer="zeros") -> dict[str, keras.Model]:
    """Every network of the chapter, by the name the chapter gives it (by
    default with zero initial weights: for their shapes and counts only)."""
    return {"MNIST": mnist_model(initializer),
            **{f"CIFAR-10 {n}": cifar_model(n, initializer) for n in CIFAR_NETS},
            "SVHN": svhn_model(initializer)}


# --------------------------------------------------------------------------
# The formulas against Keras


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def predicted_shape(layer, input_shape: tuple) -> tuple | None:
    """A Conv2D or pooling layer's output shape (H, W, C) by eq-cnn-output-size /
    eq-cnn-same-size; None for other layers."""
    if isinstance(layer, L.Conv2D):
        kernel, stride, channels = _pair(layer.kernel_size), _pair(layer.strides), layer.filters
    elif isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        kernel, stride, channels = _pair(layer.pool_size), _pair(layer.strides), input_shape[-1]
    else:
        return None
    sizes = [output_size(n, k, s, layer.padding) for n, k, s in zip(input_shape[:2], kernel, stride)]
    return (*sizes, channels)


def predicted_parameters(layer, input_shape: tuple) -> int | None:
    """A Conv2D layer's count by eq-cnn-conv-parameters, a Dense layer's (n + 1)·m,
    0 for layers that hold no weights; None where the chapter has no formula."""
    if isinstance(layer, L.Conv2D):
        return conv_parameters(*_pair(layer.kernel_size), input_shape[-1], layer.filters)
    if isinstance(layer, L.Dense):
        return (input_shape[-1] + 1) * layer.units
    return 0 if not layer.weights else None


def layer_report(model: keras.Model) -> list[dict]:
    """Per layer: Keras's output shape and parameter count next to the formulas'."""
    rows, shape = [], tuple(model.inputs[0].shape[1:])
    for layer in model.layers:
        output = tuple(layer.compute_output_shape((None, *shape))[1:])
        rows.append({"layer": layer.name, "kind": type(layer).__name__, "input": list(shape),
                     "keras_shape": list(output),
                     "formula_shape": None if (p := predicted_shape(layer, shape)) is None else list(p),
                     "keras_parameters": int(layer.count_params()),
                     "formula_parameters": predicted_parameters(layer, shape)})
        shape = output
    return rows


def shape_grid(sizes=range(5, 33, 3), kernels=(1, 2, 3, 5), strides=(1, 2, 3),
               paddings=("valid", "same")) -> dict:
    """Keras's Conv2D and MaxPooling2D output sizes against the formulas over a grid."""
    cases = mismatches = 0
    for n in sizes:
        for k in kernels:
            for s in strides:
                for padding in paddings:
                    if k > n:
                        continue
                    expected = output_size(n, k, s, padding)
                    for layer in (L.Conv2D(1, k, strides=s, padding=padding),
                                  L.MaxPooling2D(k, strides=s, padding=padding)):
                        shape = layer.compute_output_shape((None, n, n + 1, 1))
                        cases += 1
                        # Height n and width n + 1: the two axes must not be mixed up.
                        mismatches += (shape[1], shape[2]) != (expected, output_size(n + 1, k, s, padding))
    return {"cases": cases, "mismatches": int(mismatches)}


def keras_pool(matrix, size: int, kind: str, stride: int | None = None) -> np.ndarray:
    """The matrix pooled by Keras's own layer."""
    layer_type = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    layer = layer_type(size, strides=stride)
    batch = np.asarray(matrix, dtype="float32")[None, :, :, None]
    return keras.ops.convert_to_numpy(layer(batch))[0, :, :, 0].astype(float)


def keras_pool_gradient(matrix, upstream, size: int, kind: str, stride: int | None = None) -> np.ndarray:
    """∂L/∂x through Keras's pooling layer, by automatic differentiation."""
    layer_type = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    layer = layer_type(size, strides=stride)
    x = np.asarray(matrix, dtype="float32")[None, :, :, None]
    g = np.asarray(upstream, dtype="float32")[None, :, :, None]
    return gradients.input_gradient(layer, x, g)[0, :, :, 0].astype(float)


def pooling_example() -> dict:
    """The worked example: by hand (window by window) and by Keras, both pool sizes and kinds."""
    output = {}
    for size in POOL_SIZES:
        for kind in pooling.KINDS:
            by_hand = pooling.pool(POOLING_EXAMPLE, size, kind=kind)
            by_keras = keras_pool(POOLING_EXAMPLE, size, kind)
            output[f"{kind}_{size}"] = {"by_hand": by_hand.tolist(), "keras": by_keras.tolist(),
                                        "difference": float(np.max(np.abs(by_hand - by_keras)))}
    return output


def backward_check(size: int = 2, stride: int | None = None, shape=(6, 6), seed: int = 0) -> dict:
    """Max and average pooling's backward pass by hand against autodiff, on a
    random matrix with distinct entries (no ties for the maximum)."""
    generator = np.random.default_rng(seed)
    matrix = generator.permutation(shape[0] * shape[1]).reshape(shape).astype(float)
    rows, columns = (output_size(n, size, stride or size) for n in shape)
    upstream = generator.normal(size=(rows, columns))
    result = {}
    for kind in pooling.KINDS:
        by_hand = pooling.backward(matrix, upstream, size, stride, kind)
        by_autodiff = keras_pool_gradient(matrix, upstream, size, kind, stride)
        result[kind] = float(np.max(np.abs(by_hand - by_autodiff)))
    return result


@experiment()
def keras_checks(run, config):
    """The chapter's formulas against Keras (no training)."""
    reports = {name: layer_report(model) for name, model in chapter_models().items()}
    backward = {f"{size}/{stride or size}": backward_check(size, stride)
                for size, stride in ((2, None), (3, None), (3, 1), (3, 2))}
    return {"layers": reports, "grid": shape_grid(), "pooling": pooling_example(),
            "matrix": POOLING_EXAMPLE.tolist(), "backward": backward}


# --------------------------------------------------------------------------
# Training and scoring


def split(dataset, item: dict):
    """The item's split; its budget arrives as a DataBudget or, inside a run, as a dict."""
    budget = item["data"]
    budget = budget if isinstance(budget, profiles.DataBudget) else profiles.DataBudget(**budget)
    return data.split(dataset, budget, seed=item["split_seed"])


#: Inference runs in batches of this size, the last one padded: one compiled
#: shape per model instead of one per set size (each new shape compiles anew
#: on JAX, seconds per model on a busy CPU).
PREDICTION_BATCH_SIZE = 256


def predict(model, x) -> list[np.ndarray] | np.ndarray:
    """``model.predict`` in inference mode, on batches of one fixed shape."""
    padding = -len(x) % PREDICTION_BATCH_SIZE
    padded = np.concatenate([x, np.zeros((padding, *x.shape[1:]), dtype=x.dtype)]) if padding else x
    outputs = model.predict(padded, batch_size=PREDICTION_BATCH_SIZE, verbose=0)
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(output)[:len(x)] for output in outputs]
    return np.asarray(outputs)[:len(x)]


def measure(model, x, y) -> tuple[float, float, np.ndarray]:
    """Cross-entropy, accuracy and predicted classes, in inference mode."""
    probability = predict(model, x).astype(np.float64)
    picked = np.clip(probability[np.arange(len(y)), y], 1e-12, 1.0)
    predicted = probability.argmax(axis=1)
    return float(-np.mean(np.log(picked))), float(np.mean(predicted == y)), predicted


def scores(model, parts, inputs) -> dict:
    """Loss and accuracy on the three sets, and the test set's confusion matrix."""
    output = {}
    for split, x, y in zip(("train", "val", "test"), inputs, (parts.y_train, parts.y_val, parts.y_test)):
        loss, accuracy, predicted = measure(model, x, y)
        output.update({f"{split}_loss": loss, f"{split}_accuracy": accuracy})
        if split == "test":
            output["confusion"] = confusion_matrix(y, predicted, labels=np.arange(10))
    return output


def train(run, model, item, parts, inputs, *, monitor: str | None, patience: int | None,
          batch_size: int, label: str) -> dict:
    """Adam, the item's epochs; with ``monitor``, early stopping that restores the best weights."""
    training.compile_model(model, keras.optimizers.Adam(LEARNING_RATE))
    callbacks = [run.epoch_bar(label)]
    if monitor:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                       restore_best_weights=True))
    training.set_seed(item["seed"])
    started = time.perf_counter()
    history = training.fit(model, inputs[0], parts.y_train, epochs=item["epochs"], batch_size=batch_size,
                           validation_data=(inputs[1], parts.y_val), callbacks=callbacks)
    seconds = time.perf_counter() - started
    result = {"history": history, "epochs_trained": len(history["loss"]), "fit_seconds": seconds,
              "sizes": parts.sizes(), **scores(model, parts, inputs)}
    if monitor:
        result["best_epoch"] = training.best_epoch(history, monitor) + 1
    return result


# --------------------------------------------------------------------------
# MNIST


def _mnist_config(profile) -> dict:
    budget = profile.cnn
    return {"data": budget.mnist, "epochs": budget.mnist_epochs, "seeds": list(range(budget.mnist_seeds)),
            "split_seed": 0, "batch_size": MNIST_BATCH_SIZE}


def train_mnist(run, item: dict) -> dict:
    """One seed: 28×28 digits scaled to [0, 1]; the epoch with the best validation accuracy is kept."""
    parts = split(run.data("mnist"), item)
    inputs = tuple(data.scale01(x) for x in (parts.x_train, parts.x_val, parts.x_test))
    training.set_seed(item["seed"])
    model = mnist_model()
    # A patience of all the epochs: every run trains them all, then keeps the best.
    return train(run, model, item, parts, inputs, monitor="val_accuracy", patience=item["epochs"],
                 batch_size=item["batch_size"], label=f"MNIST CNN, seed {item['seed']}")


def _seed_runs(config: dict) -> list[dict]:
    shared = {k: v for k, v in config.items() if k != "seeds"}
    return [{**shared, "seed": seed} for seed in config["seeds"]]


@experiment(datasets=("mnist",), config=_mnist_config, each=train_mnist,
            runs=lambda profile, config: _seed_runs(config))
def mnist(run, config):
    """The MNIST CNN over seeds; test accuracy of the best-validation epoch's weights."""
    results = run.results
    return {"seeds": config["seeds"], "histories": [r["history"] for r in results],
            "scores": {key: [r[key] for r in results]
                       for key in ("train_accuracy", "val_accuracy", "test_accuracy", "test_loss",
                                   "epochs_trained", "best_epoch", "fit_seconds")},
            "sizes": results[0]["sizes"], "parameters": int(mnist_model("zeros").count_params()),
            "confusion": np.sum([r["confusion"] for r in results], axis=0)}


def _timing_config(profile) -> dict:
    return {"images": profile.cnn.timing_images, "batch_size": MNIST_BATCH_SIZE,
            "steps_per_execution": training.STEPS_PER_EXECUTION}


@experiment(datasets=("mnist",), config=_timing_config)
def epoch_timing(run, config):
    """Seconds for one epoch of the MNIST CNN on ``images`` digits (after a
    warm-up that compiles the training step), with the fast path."""
    import os

    dataset = run.data("mnist")
    count = config["images"]
    # The digits repeated up to the wanted count: the time depends on how many
    # images pass, not on which.
    x = data.scale01(np.resize(dataset.x_train, (count, 28, 28, 1)).astype(np.uint8))
    y = np.resize(dataset.y_train, count)
    training.set_seed(0)
    model = mnist_model()
    training.compile_model(model, keras.optimizers.Adam(LEARNING_RATE))
    training.fit(model, x[:config["batch_size"] * 2], y[:config["batch_size"] * 2], epochs=1,
                 batch_size=config["batch_size"])
    started = time.perf_counter()
    training.fit(model, x, y, epochs=1, batch_size=config["batch_size"])
    seconds = time.perf_counter() - started
    return {"images": count, "seconds": seconds, "per_image": seconds / count,
            "load": list(os.getloadavg()), "cores": os.cpu_count()}


# --------------------------------------------------------------------------
# CIFAR-10


def _cifar_config(profile) -> dict:
    budget = profile.cnn
    return {"data": budget.cifar, "epochs": budget.cifar_epochs, "patience": budget.cifar_patience,
            "seeds": list(range(budget.cifar_seeds)), "split_seed": 0, "batch_size": CIFAR_BATCH_SIZE,
            "tutorial_epochs": 10}


def cifar_runs(config: dict) -> list[dict]:
    shared = {k: v for k, v in config.items() if k != "seeds"}
    return [{**shared, "seed": seed, "net": net} for seed in config["seeds"] for net in CIFAR_NETS]


def train_cifar(run, item: dict) -> dict:
    """One network, one seed. Per-pixel mean and global std from the training
    images; a–d stop on validation accuracy and restore their best weights,
    the tutorial net trains its 10 epochs (fewer where the profile caps them)."""
    parts = split(run.data("cifar10"), item)
    inputs = data.standardize(parts.x_train, parts.x_val, parts.x_test)
    training.set_seed(item["seed"])
    model = cifar_model(item["net"])
    tutorial = item["net"] == "32-64-64"
    item = {**item, "epochs": min(item["epochs"], item["tutorial_epochs"]) if tutorial else item["epochs"]}
    return train(run, model, item, parts, inputs, monitor=None if tutorial else "val_accuracy",
                 patience=item["patience"], batch_size=item["batch_size"],
                 label=f"CIFAR-10 net {item['net']}, seed {item['seed']}")


@experiment(datasets=("cifar10",), config=_cifar_config, each=train_cifar,
            runs=lambda profile, config: cifar_runs(config))
def cifar(run, config):
    """The five networks over seeds: histories, scores, confusion matrices."""
    results = {(item["net"], item["seed"]): result for item, result in zip(cifar_runs(config), run.results)}
    seeds = config["seeds"]
    keys = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "val_loss", "test_loss",
            "epochs_trained", "fit_seconds")
    output = {"nets": list(CIFAR_NETS), "seeds": seeds,
              "histories": {net: [results[net, s]["history"] for s in seeds] for net in CIFAR_NETS},
              "scores": {net: {key: [results[net, s][key] for s in seeds] for key in keys} for net in CIFAR_NETS},
              "parameters": {net: int(cifar_model(net, "zeros").count_params()) for net in CIFAR_NETS},
              "sizes": results[CIFAR_NETS[0], seeds[0]]["sizes"],
              "class_names": list(run.data("cifar10").class_names)}
    for net in CIFAR_NETS:
        output[f"confusion_{net}"] = np.sum([results[net, s]["confusion"] for s in seeds], axis=0)
    return output


def confused_pairs(confusion, class_names, count: int = 3) -> list[dict]:
    """The class pairs mistaken for each other most often (both directions added)."""
    confusion = np.asarray(confusion)
    pairs = []
    for i in range(len(confusion)):
        for j in range(i + 1, len(confusion)):
            pairs.append({"classes": [class_names[i], class_names[j]],
                          "mistakes": int(confusion[i, j] + confusion[j, i]),
                          "forward": int(confusion[i, j]), "backward": int(confusion[j, i])})
    pairs.sort(key=lambda pair: -pair["mistakes"])
    total = int(confusion.sum() - np.trace(confusion))
    return [{**pair, "share": pair["mistakes"] / total if total else float("nan")}
            for pair in pairs[:count] if pair["mistakes"] > 0]


# --------------------------------------------------------------------------
# SVHN


def _svhn_config(profile) -> dict:
    budget = profile.cnn
    return {"data": budget.svhn, "epochs": budget.svhn_epochs, "patience": budget.svhn_patience,
            "seed": 0, "split_seed": 0, "batch_size": SVHN_BATCH_SIZE, "example_seed": 0}


def example_images(labels, seed: int) -> np.ndarray:
    """Index of one randomly chosen test image per class (classes without one are skipped)."""
    generator = np.random.default_rng(seed)
    return np.array([generator.choice(np.flatnonzero(labels == label))
                     for label in range(10) if np.any(labels == label)], dtype=int)


def feature_maps(model, images) -> list[np.ndarray]:
    """The output of every Conv2D layer (after its ReLU) for ``images``."""
    convolutions = [layer for layer in model.layers if isinstance(layer, L.Conv2D)]
    probe = keras.Model(model.inputs, [layer.output for layer in convolutions])
    return predict(probe, images)


def map_observations(maps: list[np.ndarray], images: np.ndarray) -> list[dict]:
    """Per layer, what the figure shows, computed: the share of zero
    activations, filters silent on every shown image, and (first layer) how
    closely each filter's map follows the image's brightness."""
    observations = []
    grey = images.mean(axis=-1)
    for index, layer_maps in enumerate(maps, start=1):
        silent = int(np.sum(np.all(layer_maps <= 0, axis=(0, 1, 2))))
        entry = {"layer": index, "filters": int(layer_maps.shape[-1]), "size": list(layer_maps.shape[1:3]),
                 "zero_share": float(np.mean(layer_maps <= 0)), "silent_filters": silent}
        if index == 1:
            correlations = []
            for f in range(layer_maps.shape[-1]):
                values = [np.corrcoef(grey[i].ravel(), layer_maps[i, ..., f].ravel())[0, 1]
                          for i in range(len(images)) if np.std(layer_maps[i, ..., f]) > 0]
                correlations.append(float(np.mean(values)) if values else float("nan"))
            entry["brightness_correlation"] = correlations
        observations.append(entry)
    return observations


@experiment(datasets=("svhn",), config=_svhn_config)
def svhn(run, config):
    """The 9-36-49 network, early stopping on validation loss; confusion matrix and feature maps."""
    dataset = run.data("svhn")
    parts = split(dataset, config)
    inputs = data.standardize(parts.x_train, parts.x_val, parts.x_test)
    training.set_seed(config["seed"])
    model = svhn_model()
    result = train(run, model, config, parts, inputs, monitor="val_loss", patience=config["patience"],
                   batch_size=config["batch_size"], label="SVHN CNN")
    chosen = example_images(parts.y_test, config["example_seed"])
    maps = feature_maps(model, inputs[2][chosen])
    _, _, predicted = measure(model, inputs[2][chosen], parts.y_test[chosen])
    output = {**{k: v for k, v in result.items()}, "examples": parts.x_test[chosen],
              "example_labels": parts.y_test[chosen], "example_predictions": predicted,
              "observations": map_observations(maps, parts.x_test[chosen].astype(float)),
              "parameters": int(model.count_params())}
    for index, layer_maps in enumerate(maps, start=1):
        output[f"maps_{index}"] = layer_maps.astype(np.float32)
    return output
