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
  (analysis.data.weights), gives VGG16's top-5 classes for each;
* :data:`vgg16_cifar` makes the same three-way comparison on CIFAR-10 with
  VGG16's convolutional base (:data:`vgg16_imagenet_base`, ImageNet weights
  copied from the pinned with-top file) as the pretrained network, only where
  those weights are available and the profile asks for it (the full profile,
  meant for a GPU); otherwise it trains nothing and says why.

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


def _parts(run, config: dict, dataset: str = "fashion_mnist"):
    from analysis.profiles import DataBudget

    return data.split(run.data(dataset), DataBudget(**config["data"]), seed=config["split_seed"])


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


def labelled_set(count: int, size: int, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The labelled images (indices into a pool of ``count``) and the order of their ``steps`` batches.

    They depend on (seed, size) only: every method sees the same images in the same order.
    """
    generator = np.random.default_rng([seed, size])
    chosen = generator.choice(count, size=min(size, count), replace=False)
    return chosen, step_batches(len(chosen), steps, generator)


def train_method(method: str, x, y, order, steps: int, scratch, pretrained, unfrozen) -> keras.Model:
    """One of :data:`METHODS` on a labelled set, in ``steps`` optimizer steps.

    ``scratch()`` builds a fresh classifier; ``pretrained()`` gives
    ``(classifier, base)`` with the pretrained base inside; ``unfrozen(name)``
    says which of the base's layers fine-tuning trains on after the head's
    half of the steps.
    """
    if method == "scratch":
        model = scratch()
        _fit_steps(model, x, y, order, LEARNING_RATE, steps)
        return model
    model, base = pretrained()
    base.trainable = False
    head_steps = steps if method == "frozen" else steps // 2
    _fit_steps(model, x, y, order, LEARNING_RATE, head_steps)
    if method == "fine_tune":
        base.trainable = True
        for layer in base.layers:
            layer.trainable = unfrozen(layer.name)
        _fit_steps(model, x, y, order[head_steps * BATCH_SIZE:], FINE_TUNE_RATE, steps - head_steps)
    return model


def _source_classifier(profile):
    base = pretrain(profile).model("source").get_layer("base")
    return classifier(base), base


def transfer_one(run, item: dict) -> dict:
    """One (labelled-set size, seed, method): test accuracy on the target classes."""
    parts = _parts(run, item)
    x_pool, y_pool = task(parts.x_train, parts.y_train, TARGET_CLASSES)
    x_test, y_test = task(parts.x_test, parts.y_test, TARGET_CLASSES)
    chosen, order = labelled_set(len(y_pool), item["size"], item["seed"], item["steps"])
    x, y = x_pool[chosen], y_pool[chosen]
    training.set_seed(item["seed"])
    model = train_method(item["method"], x, y, order, item["steps"], scratch=lambda: classifier(base_network()),
                         pretrained=lambda: _source_classifier(run.profile),
                         unfrozen=lambda name: name in TOP_LAYERS)
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
        "dataset": "fashion_mnist", "classes": len(TARGET_CLASSES), "task": "the five new classes",
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


# --------------------------------------------------------------------------
# VGG16 features on CIFAR-10 (full profile, where the ImageNet weights are)

CIFAR_SHAPE = (32, 32, 3)
CIFAR_CLASSES = 10
#: The convolutional block fine-tuning unfreezes in VGG16's base (the last of five).
VGG_TOP_BLOCK = "block5_"
BASE_WEIGHTS = "vgg16_base.weights.h5"


def vgg16_base(weights_path, input_size: int) -> keras.Model:
    """VGG16's convolutional base for ``input_size`` × ``input_size`` images, with ImageNet's weights.

    Only the with-top file is pinned. A convolution's kernel does not depend on
    the image size, so the base is built without weights at the size wanted and
    each of its layers takes the arrays stored under its name in the file
    (Keras's legacy .h5 layout: a group per layer, its ``weight_names`` in the
    layer's order). The top's Dense layers, 124 million parameters, are never
    built nor read. A file without one of the convolutions is an error.
    """
    import h5py

    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(input_size, input_size, 3))
    with h5py.File(weights_path, "r") as stream:
        missing = [layer.name for layer in base.layers if layer.weights and layer.name not in stream]
        if missing:
            raise UserError(f"{weights_path} has no weights for {', '.join(missing)}: it is not VGG16's "
                            "with-top ImageNet file; replace it with the official one")
        for layer in base.layers:
            if layer.weights:
                group = stream[layer.name]
                layer.set_weights([np.asarray(group[name]) for name in group.attrs["weight_names"]])
    return base


def vgg16_cifar_plan(profile) -> dict:
    """Whether :data:`vgg16_cifar` trains, and if not, why (one line); cheap: it trains and loads nothing."""
    from analysis import profiles

    profile = profiles.resolve(profile)
    if not profile.transfer.vgg_sizes:
        return {"available": False, "weights": {},
                "reason": f"the {profile.name} profile leaves it out (training VGG16 needs a GPU; the full profile runs it)"}
    status = weights_status()
    return {"available": status["available"], "reason": status["reason"],
            "weights": {name: file["md5"] for name, file in status["files"].items()}}


def _base_config(profile) -> dict:
    plan = vgg16_cifar_plan(profile)
    return {"input_size": profile.transfer.vgg_input_size, "weights": plan["weights"], "reason": plan["reason"]}


@experiment(config=_base_config)
def vgg16_imagenet_base(run, config):
    """The convolutional base with ImageNet's weights at the CIFAR runs' input size, saved once for them.

    Where :data:`vgg16_cifar` does not run, nothing is built and the result
    says why (``python -m analysis run transfer`` runs every experiment).
    """
    if config["reason"] is not None:
        return {"available": False, "reason": config["reason"]}
    files = pretrained.resolve(allow_download=False)
    base = vgg16_base(files[pretrained.VGG16_FILES[0]].path, config["input_size"])
    # The weights alone (an uncompressed .h5): each run rebuilds the architecture, which is cheap.
    base.save_weights(run.subdirectory("base") / BASE_WEIGHTS)
    return {"available": True, "reason": None, "parameters": int(base.count_params())}


def _vgg_config(profile) -> dict:
    budget = profile.transfer
    plan = vgg16_cifar_plan(profile)
    config = {"data": budget.cifar, "split_seed": 0, "sizes": list(budget.vgg_sizes),
              "seeds": list(range(budget.vgg_seeds)), "steps": budget.vgg_steps,
              "input_size": budget.vgg_input_size, "fine_tune_rate": FINE_TUNE_RATE,
              "reason": plan["reason"], "weights": plan["weights"]}
    if plan["reason"] is None:
        config["base_key"] = vgg16_imagenet_base.key(profile)
    return config


def vgg_runs(profile, config) -> list[dict]:
    if config["reason"] is not None:
        return []
    vgg16_imagenet_base(profile)          # built first, so the parallel runs only read it
    return [{"data": config["data"], "split_seed": config["split_seed"], "size": size, "seed": seed,
             "method": method, "steps": config["steps"], "base_key": config["base_key"]}
            for size in config["sizes"] for seed in config["seeds"] for method in METHODS]


def cifar_scratch() -> keras.Model:
    """The small CNN of the Fashion-MNIST comparison, for 32 × 32 colour images and ten classes."""
    return keras.Sequential([keras.Input(CIFAR_SHAPE), *small_cnn_features(),
                             keras.layers.Dense(128, activation="relu", name="features"),
                             keras.layers.Dense(CIFAR_CLASSES, activation="softmax", name="head")])


def _vgg_classifier(profile):
    """Upsampling to the base's input size, the frozen-or-not base, and a new head."""
    size = profile.transfer.vgg_input_size
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))
    base.load_weights(vgg16_imagenet_base(profile).path / "base" / BASE_WEIGHTS)
    model = keras.Sequential([keras.Input(CIFAR_SHAPE), keras.layers.Resizing(size, size), base,
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(CIFAR_CLASSES, activation="softmax", name="head")])
    return model, base


def vgg_inputs(images: np.ndarray, method: str) -> np.ndarray:
    """Pixels as each network expects them: [0, 1] from scratch, VGG16's preprocess_input otherwise.

    preprocess_input (RGB → BGR, ImageNet's channel means subtracted) acts on
    each pixel alone, so it commutes with the bilinear upsampling done inside
    the model and can be applied to the 32 × 32 images.
    """
    if method == "scratch":
        return data.scale01(images)
    return keras.applications.vgg16.preprocess_input(images.astype(np.float32))   # a copy: it works in place


def vgg_one(run, item: dict) -> dict:
    """One (labelled-set size, seed, method) on CIFAR-10: test accuracy on its ten classes."""
    parts = _parts(run, item, "cifar10")
    chosen, order = labelled_set(len(parts.y_train), item["size"], item["seed"], item["steps"])
    x, y = vgg_inputs(parts.x_train[chosen], item["method"]), parts.y_train[chosen]
    training.set_seed(item["seed"])
    model = train_method(item["method"], x, y, order, item["steps"], scratch=cifar_scratch,
                         pretrained=lambda: _vgg_classifier(run.profile),
                         unfrozen=lambda name: name.startswith(VGG_TOP_BLOCK))
    return {"test_accuracy": accuracy(model, vgg_inputs(parts.x_test, item["method"]), parts.y_test),
            "labelled": int(len(y)), "test": int(len(parts.y_test))}


@experiment(datasets=("cifar10",), config=_vgg_config, runs=vgg_runs, each=vgg_one)
def vgg16_cifar(run, config):
    """Scratch / frozen VGG16 features / fine-tuned block 5 on CIFAR-10, or why it did not run."""
    if config["reason"] is not None:
        return {"available": False, "reason": config["reason"]}
    results = {(item["size"], item["seed"], item["method"]): result
               for item, result in zip(vgg_runs(run.profile, config), run.results)}
    first = results[config["sizes"][0], config["seeds"][0], "scratch"]
    return {
        "available": True, "reason": None, "sizes": config["sizes"], "seeds": config["seeds"],
        "methods": list(METHODS), "steps": config["steps"], "batch_size": BATCH_SIZE,
        "input_size": config["input_size"],
        "test_accuracy": {method: {str(size): [results[size, seed, method]["test_accuracy"]
                                               for seed in config["seeds"]] for size in config["sizes"]}
                          for method in METHODS},
        "labelled": {str(size): results[size, config["seeds"][0], "scratch"]["labelled"]
                     for size in config["sizes"]},
        "test_images": first["test"], "dataset": "cifar10", "classes": CIFAR_CLASSES,
        "task": "the ten classes",
    }
