"""Experiments of the pretrained-network half of chapters/transfer-autoencoders.qmd.

* :data:`pretrain` trains a small CNN on Fashion-MNIST's first five classes
  (T-shirt/top, trouser, pullover, dress, coat): the *source* task;
* :data:`transfer_learning` learns the other five classes (sandal, shirt,
  sneaker, bag, ankle boot) from a small labelled set, three ways: from
  scratch, a new head on the frozen source features, and fine-tuning (the new
  head first, then the top of the network unfrozen at a tenth of the rate).
  Every run takes the same number of optimizer steps; each (size, seed,
  method) is one cached run, and the test set only scores;
* :data:`vgg16_architecture` builds ``keras.applications.VGG16(weights=None)``
  and lists its layers (no weights needed);
* :data:`vgg16_photographs` prepares the photographs (analysis.photographs)
  and, only where the pinned ImageNet weights are available
  (analysis.data.weights), gives VGG16's top-5 classes for each.

Why Fashion-MNIST 0-4 → 5-9: both tasks are real data that run offline
(Debian ships Fashion-MNIST), the images share their statistics (28 × 28
grey product photos) while the classes are disjoint, so what transfers are
features, not labels.
"""

from __future__ import annotations

import json
import math

import keras
import numpy as np

from analysis import data, photographs, training
from analysis.data import weights as pretrained
from analysis.errors import UserError
from analysis.models import small_cnn_features
from analysis.runner import experiment

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
#: Fine-tuning's rate once the top is unfrozen: a tenth, so the pretrained
#: features are adjusted rather than overwritten.
FINE_TUNE_RATE = 1e-4
METHODS = ("scratch", "frozen", "fine_tune")
#: The layers fine-tuning unfreezes (the first convolution stays frozen).
TOP_LAYERS = ("conv_2", "features")
TOP_K = 5


# --------------------------------------------------------------------------
# The network


def base_network() -> keras.Model:
    """Two convolution + pooling blocks and a Dense layer of 128 features."""
    return keras.Sequential([keras.Input((28, 28, 1)), *small_cnn_features(),
                             keras.layers.Dense(128, activation="relu", name="features")], name="base")


def classifier(base: keras.Model, classes: int = 5) -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), base,
                             keras.layers.Dense(classes, activation="softmax", name="head")])


def task(images, labels, classes) -> tuple[np.ndarray, np.ndarray]:
    """The images of ``classes``, scaled to [0, 1], labels renumbered 0, 1, ..."""
    keep = np.isin(labels, classes)
    renumber = np.searchsorted(np.asarray(classes), labels[keep])
    return data.scale01(images[keep]), renumber.astype(np.int64)


def _parts(run, config: dict):
    from analysis.profiles import DataBudget

    return data.split(run.data("fashion_mnist"), DataBudget(**config["data"]), seed=config["split_seed"])


def accuracy(model, x, y) -> float:
    probabilities = model.predict(x, batch_size=training.EVALUATION_BATCH_SIZE, verbose=0)
    return float(np.mean(np.asarray(probabilities).argmax(axis=1) == y))


def _config(profile) -> dict:
    budget = profile.transfer
    return {"data": budget.fashion, "split_seed": 0, "seed": 0, "epochs": budget.pretrain_epochs,
            "batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE}


@experiment(datasets=("fashion_mnist",), config=_config)
def pretrain(run, config):
    """The source network on classes 0-4."""
    parts = _parts(run, config)
    x_train, y_train = task(parts.x_train, parts.y_train, SOURCE_CLASSES)
    x_test, y_test = task(parts.x_test, parts.y_test, SOURCE_CLASSES)
    training.set_seed(config["seed"])
    model = classifier(base_network())
    training.compile_model(model, keras.optimizers.Adam(LEARNING_RATE))
    # No validation pass: nothing is chosen on it (see the budget's comment).
    history = training.fit(model, x_train, y_train, epochs=config["epochs"], batch_size=BATCH_SIZE)
    run.save_model("source", model)
    return {"history": history, "source_test_accuracy": accuracy(model, x_test, y_test),
            "source_train": int(len(y_train)), "source_test": int(len(y_test))}


# --------------------------------------------------------------------------
# Transfer runs


def step_batches(count: int, steps: int, generator: np.random.Generator) -> np.ndarray:
    """Indices of ``steps`` mini-batches: shuffled passes over ``count`` items, cut to length."""
    needed = steps * BATCH_SIZE
    passes = [generator.permutation(count) for _ in range(math.ceil(needed / count))]
    return np.concatenate(passes)[:needed]


def _fit_steps(model, x, y, order, rate, steps):
    training.compile_model(model, keras.optimizers.Adam(rate))
    if steps > 0:
        chosen = order[:steps * BATCH_SIZE]
        training.fit(model, x[chosen], y[chosen], epochs=1, batch_size=BATCH_SIZE, shuffle=False)


def transfer_one(run, item: dict) -> dict:
    """One (labelled-set size, seed, method): test accuracy on the target classes."""
    parts = _parts(run, item)
    x_pool, y_pool = task(parts.x_train, parts.y_train, TARGET_CLASSES)
    x_test, y_test = task(parts.x_test, parts.y_test, TARGET_CLASSES)
    size, seed, method, steps = item["size"], item["seed"], item["method"], item["steps"]
    # The labelled set depends on (seed, size) only: every method sees the same images in the same order.
    generator = np.random.default_rng([seed, size])
    chosen = generator.choice(len(y_pool), size=min(size, len(y_pool)), replace=False)
    x, y = x_pool[chosen], y_pool[chosen]
    order = step_batches(len(y), steps, generator)
    training.set_seed(seed)
    if method == "scratch":
        model = classifier(base_network())
        _fit_steps(model, x, y, order, LEARNING_RATE, steps)
    else:
        base = pretrain(run.profile).model("source").get_layer("base")
        base.trainable = False
        model = classifier(base)
        head_steps = steps if method == "frozen" else steps // 2
        _fit_steps(model, x, y, order, LEARNING_RATE, head_steps)
        if method == "fine_tune":
            base.trainable = True
            for layer in base.layers:
                layer.trainable = layer.name in TOP_LAYERS
            _fit_steps(model, x, y, order[head_steps * BATCH_SIZE:], FINE_TUNE_RATE, steps - head_steps)
    return {"test_accuracy": accuracy(model, x_test, y_test), "train_accuracy": accuracy(model, x, y),
            "labelled": int(len(y)), "test": int(len(y_test))}


def _transfer_config(profile) -> dict:
    budget = profile.transfer
    return {**_config(profile), "sizes": list(budget.labelled_sizes), "seeds": list(range(budget.seeds)),
            "steps": budget.transfer_steps, "fine_tune_rate": FINE_TUNE_RATE,
            "pretrain_key": pretrain.key(profile)}


def transfer_runs(profile, config) -> list[dict]:
    pretrain(profile)            # trained first, so the parallel runs only read it
    return [{"data": config["data"], "split_seed": config["split_seed"], "size": size, "seed": seed,
             "method": method, "steps": config["steps"], "pretrain_key": config["pretrain_key"]}
            for size in config["sizes"] for seed in config["seeds"] for method in METHODS]


@experiment(datasets=("fashion_mnist",), config=_transfer_config, each=transfer_one, runs=transfer_runs)
def transfer_learning(run, config):
    """Test accuracy per method and labelled-set size, in seed order."""
    results = {(item["size"], item["seed"], item["method"]): result
               for item, result in zip(transfer_runs(run.profile, config), run.results)}
    source = pretrain(run.profile)
    return {
        "sizes": config["sizes"], "seeds": config["seeds"], "methods": list(METHODS), "steps": config["steps"],
        "test_accuracy": {method: {str(size): [results[size, seed, method]["test_accuracy"]
                                               for seed in config["seeds"]] for size in config["sizes"]}
                          for method in METHODS},
        "labelled": {str(size): results[size, config["seeds"][0], "scratch"]["labelled"]
                     for size in config["sizes"]},
        "test_images": results[config["sizes"][0], config["seeds"][0], "scratch"]["test"],
        "source_test_accuracy": source["source_test_accuracy"], "source_train": source["source_train"],
        "pretrain_epochs": source.provenance["config"]["epochs"],
    }


# --------------------------------------------------------------------------
# VGG16


def layer_rows(model) -> list[dict]:
    """Each layer's type, output shape, parameter count and what the count formulas need."""
    rows = []
    for layer in model.layers:
        row = {"name": layer.name, "type": type(layer).__name__,
               "output_shape": [d for d in layer.output.shape[1:]], "parameters": int(layer.count_params())}
        if isinstance(layer, keras.layers.Conv2D):
            row.update(kernel=list(layer.kernel_size), channels_in=int(layer.input.shape[-1]),
                       channels_out=int(layer.filters))
        elif isinstance(layer, keras.layers.Dense):
            row.update(units_in=int(layer.input.shape[-1]), units_out=int(layer.units))
        rows.append(row)
    return rows


@experiment()
def vgg16_architecture(run, config):
    """VGG16 built without weights: its layers and its parameter count."""
    model = keras.applications.VGG16(weights=None)
    return {"layers": layer_rows(model), "total": int(model.count_params())}


def weights_status() -> dict:
    """Which pinned VGG16 files are usable, or why not (one line)."""
    try:
        files = pretrained.resolve()
    except UserError as error:
        return {"available": False, "reason": str(error), "files": {}}
    if files is None:
        where = f"{pretrained.config.data_dir()} or {pretrained.keras_models_dir()}"
        how = ("this machine is offline (NNSTUDY_OFFLINE)" if data.offline()
               else "the download failed")
        return {"available": False, "files": {},
                "reason": f"the ImageNet weights and class index are not in {where}, and {how}; "
                          f"put {' and '.join(pretrained.VGG16_FILES)} in the data directory"}
    return {"available": True, "reason": None,
            "files": {name: {"md5": file.md5, "source": file.source} for name, file in files.items()}}


def _photo_config(profile) -> dict:
    photos, problems = photographs.collect()
    status = weights_status()
    return {"photos": [{"title": p.title, "sha256": p.sha256} for p in photos], "problems": problems,
            "weights": {name: file["md5"] for name, file in status["files"].items()},
            "weights_reason": status["reason"]}


def top_classes(probabilities: np.ndarray, class_index: dict, k: int = TOP_K) -> list[dict]:
    """The k most probable ImageNet classes, highest first."""
    order = np.argsort(probabilities)[::-1][:k]
    return [{"index": int(i), "name": class_index[str(int(i))][1], "probability": float(probabilities[i])}
            for i in order]


@experiment(config=_photo_config)
def vgg16_photographs(run, config):
    """Every photograph at 224 × 224, the preprocessing of the first, and predictions where the weights are."""
    photos, _ = photographs.collect()
    photos = [p for p in photos if {"title": p.title, "sha256": p.sha256} in config["photos"]]
    if not photos:
        raise UserError("no photographs found: install scikit-image (requirements-core.txt) "
                        "or set NNSTUDY_IMAGES to a folder of photographs")
    steps = photographs.preprocessing_steps(photos[0].path)
    summary = [{"step": name, "shape": list(np.shape(value)), "dtype": str(np.asarray(value).dtype),
                "minimum": float(np.min(value)), "maximum": float(np.max(value)),
                "channel_means": [float(m) for m in np.asarray(value, np.float64).reshape(-1, 3).mean(axis=0)]}
               for name, value in (("array", steps["array"]), ("batch", steps["batch"]), ("ready", steps["ready"]))]
    batches = [photographs.preprocessing_steps(p.path) for p in photos]
    output = {"titles": [p.title for p in photos], "steps": summary, "problems": config["problems"],
              "images": np.stack([b["array"] for b in batches]).astype(np.uint8),
              "predictions": None, "weights_reason": config["weights_reason"]}
    if config["weights"]:
        files = pretrained.resolve(allow_download=False)
        model = keras.applications.VGG16(weights=str(files[pretrained.VGG16_FILES[0]].path))
        class_index = json.loads(files[pretrained.VGG16_FILES[1]].path.read_text(encoding="utf-8"))
        probabilities = model.predict(np.concatenate([b["ready"] for b in batches]), verbose=0)
        output["predictions"] = [top_classes(np.asarray(p, np.float64), class_index) for p in probabilities]
    return output
