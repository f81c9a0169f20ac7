"""Experiments of the depth chapter (chapters/depth.qmd).

Three experiments share one training routine, so that their numbers can be
compared run for run (same data, steps, seeds, batch order, optimizer and
fixed mini-batch for the gradients):

* :func:`activations` -- the assignment's nine models: depths × ReLU, tanh
  and sigmoid, Keras's default (Glorot uniform) initialisation;
* :func:`lecun` -- the same depths with LeCun's scaled tanh, to compare with
  the tanh runs of :func:`activations`;
* :func:`remedies` -- the deepest networks again with an initialisation
  matched to the activation and with batch or layer normalization (the
  baseline is the deepest configuration of :func:`activations`).

Budgets count optimizer steps (see ``profiles.DepthBudget``). Every run
records its learning curves (evaluated every few hundred steps), its test
loss and accuracy, and, for each Dense layer on one fixed mini-batch, the
largest absolute gradient of the loss with respect to the kernel and to the
bias added just before the activation -- the latter is the layer's error δ
averaged over the batch (eq-bias-grad) -- at initialisation and after
``snapshot_steps`` steps.

Each (architecture, seed) is an independent run (:func:`architecture_runs`,
:func:`train_run`): the runner caches each on its own and trains them in
parallel processes; each experiment assembles its runs' records.
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

#: About this many evaluations of the validation set per run (the learning
#: curves' points); they also fall on every epoch's end and on the snapshot.
#: Pieces are at least MIN_PIECE steps long, since each costs a call to fit.
CURVE_POINTS = 12
MIN_PIECE = 32

#: Keras's default initialisation, used by the nine models.
DEFAULT_INITIALIZER = "glorot_uniform"

#: Initialisers by the name a configuration records. Glorot & Bengio (2010)
#: keep the error's size for an activation whose slope at 0 is 1 (tanh).
#: The sigmoid's slope at 0 is 1/4, so it needs 4 × Glorot's standard
#: deviation (16 × the variance); He et al. (2015) double the variance over
#: the fan-in for ReLU, which blocks half the error.
INITIALIZERS = {
    "glorot_uniform": lambda: "glorot_uniform",
    "he_normal": lambda: "he_normal",
    "glorot_x16": lambda: keras.initializers.VarianceScaling(scale=16.0, mode="fan_avg"),
}

#: The initialisation matched to each activation.
MATCHED_INITIALIZERS = {"relu": "he_normal", "tanh": "glorot_uniform", "sigmoid": "glorot_x16"}

#: What the remedies experiment varies: (initialisation, normalization).
#: The deepest networks of :func:`activations` are the baseline.
REMEDIES = (("matched", None), ("matched", "batch"), ("matched", "layer"))


def chapter_seeds(profile: profiles.Profile) -> tuple[int, ...]:
    """The depth budget's own seed count where it sets one, else the profile's."""
    count = profile.depth.seeds
    return tuple(range(count)) if count else profile.seed_list()


def _common_config(profile: profiles.Profile) -> dict:
    """What every experiment of the chapter shares (compared run for run)."""
    budget = profile.depth
    if not 0 < budget.snapshot_steps <= budget.steps:
        raise ValueError(f"snapshot_steps={budget.snapshot_steps} must lie in 1..steps={budget.steps}")
    return {
        "data": budget.mnist,
        "steps": budget.steps,
        "snapshot_steps": budget.snapshot_steps,
        "seeds": chapter_seeds(profile),
        "gradient_batch": budget.gradient_batch,
        "units": UNITS,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "curve_points": CURVE_POINTS,
        "loss": "sparse_categorical_crossentropy",
        "input_scaling": "pixels / 255",
    }


def _grid_config(profile, activation_names) -> dict:
    return {**_common_config(profile), "depths": profile.depth.depths,
            "activations": activation_names, "initializer": DEFAULT_INITIALIZER}


def _remedies_config(profile) -> dict:
    specifications = []
    for activation_name in ACTIVATIONS:
        for _, normalization in REMEDIES:
            initializer = MATCHED_INITIALIZERS[activation_name]
            if initializer == DEFAULT_INITIALIZER and normalization is None:
                continue  # identical to the baseline, which activations() trains
            specifications.append({"activation": activation_name, "initializer": initializer,
                                   "normalization": normalization})
    return {**_common_config(profile), "depth": max(profile.depth.depths),
            "baseline_initializer": DEFAULT_INITIALIZER, "variants": specifications}


# --------------------------------------------------------------------------
# The step schedule


def steps_per_epoch(images: int, batch_size: int) -> int:
    """An epoch's steps; its last, smaller batch counts as one."""
    return -(-images // batch_size)


def schedule(total: int, snapshot: int, per_epoch: int, points: int) -> list[tuple[int, int]]:
    """Training cut into pieces ``(epoch, steps)``: each lies within one epoch;
    an epoch is split evenly into pieces of at most about ``total / points``
    steps (the validation set is evaluated after each), and a piece ends on
    the snapshot."""
    if not 0 < snapshot <= total:
        raise ValueError(f"the snapshot ({snapshot}) must lie in 1..{total} steps")
    stride = max(MIN_PIECE, -(-total // points))
    ends = {snapshot}
    for start in range(0, total, per_epoch):
        length = min(per_epoch, total - start)
        count = -(-length // stride)
        ends |= {start + round(i * length / count) for i in range(1, count + 1)}
    pieces, start = [], 0
    for end in sorted(ends):
        pieces.append((start // per_epoch, end - start))
        start = end
    return pieces


def _epoch_order(seed: int, images: int, epochs: int) -> list[np.ndarray]:
    """One permutation of the training images per epoch, from the seed alone,
    so that every architecture trained under one seed sees the same batches
    (which makes comparisons between activations paired)."""
    rng = np.random.default_rng([seed, 20150101])
    return [rng.permutation(images) for _ in range(epochs)]


# --------------------------------------------------------------------------
# The shared training routine


#: The last preparation, kept for the process: a worker that trains several
#: runs of the chapter splits and scales the images once.
_prepared: dict = {}


def _prepare(run, config) -> dict:
    """Train/validation/test arrays scaled to [0, 1], and the fixed mini-batch."""
    dataset = run.data("mnist")
    key = (dataset.provenance.fingerprint, tuple(sorted(config["data"].items())),
           config["gradient_batch"])
    if key not in _prepared:
        _prepared.clear()
        _prepared[key] = _split(dataset, config)
    return _prepared[key]


def _split(dataset, config) -> dict:
    parts = data.split(dataset, profiles.DataBudget(**config["data"]), seed=0)
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


def _probe(model, arrays) -> dict[str, list[float]]:
    """Per Dense layer, input side first: max |∂ℒ/∂W| and max |δ| (the error
    bias's gradient), as a training step sees them (batch norm in training mode)."""
    return gradients.dense_gradient_maxima(model, arrays["x_batch"], arrays["y_batch"],
                                           training=True)


def _build(config, *, depth, activation, initializer, normalization):
    try:
        kernel_initializer = INITIALIZERS[initializer]()
    except KeyError:
        raise ValueError(f"unknown initializer {initializer!r}; "
                         f"choose from {', '.join(INITIALIZERS)}") from None
    return models.mlp([config["units"]] * depth, activation_name=activation,
                      kernel_initializer=kernel_initializer, normalization=normalization)


#: What a run needs from the experiment's configuration (the seeds and the
#: list of architectures are the experiment's, not the run's).
RUN_SETTINGS = ("data", "steps", "snapshot_steps", "gradient_batch", "units", "learning_rate",
                "batch_size", "curve_points", "loss", "input_scaling")

#: The keys of an architecture, in the order a run's record lists them.
ARCHITECTURE = ("depth", "activation", "initializer", "normalization")


def architecture_runs(config: dict, architectures: list[dict]) -> list[dict]:
    """Every (architecture, seed) as an independent run, architecture by
    architecture, seeds in order. A run holds everything it needs, so its
    cache key changes only with what changes its numbers, and a new seed
    trains only that seed."""
    shared = {key: config[key] for key in RUN_SETTINGS}
    return [{**shared, **{key: architecture[key] for key in ARCHITECTURE}, "seed": seed}
            for architecture in architectures for seed in config["seeds"]]


def train_run(run, item: dict) -> dict:
    """One architecture under one seed, built right after seeding.

    Every architecture trained under a seed sees the same batches
    (:func:`_epoch_order`), and architectures that differ only in their
    activation start from the same weights, whichever process trains them,
    so comparisons between them are paired. A run compiles its own model:
    tracing a 40-layer network's train function costs a few seconds, which
    the runs, executed in parallel, pay side by side.
    """
    arrays = _prepare(run, item)
    architecture = {key: item[key] for key in ARCHITECTURE}
    seed = item["seed"]
    training.set_seed(seed)
    model = _build(item, **architecture)
    training.compile_model(model, keras.optimizers.SGD(learning_rate=item["learning_rate"]),
                           loss=item["loss"])
    label = f"{architecture['activation']}, depth {architecture['depth']}, seed {seed}"
    return _train_seed(run, item, arrays, model, seed, label)


def assemble_runs(run, config: dict, architectures: list[dict]) -> dict:
    """The runs of :func:`architecture_runs`, one record each in the same
    order (architecture, then seed), with the data's summary."""
    items = architecture_runs(config, architectures)
    records = [{**{key: item[key] for key in ARCHITECTURE}, "seed": item["seed"], **result}
               for item, result in zip(items, run.results)]
    return {"runs": records, **_summary(_prepare(run, config), config)}


def _train_seed(run, config, arrays, model, seed: int, label: str) -> dict:
    """Probe, train ``snapshot_steps``, probe, train to ``steps``, test."""
    images = len(arrays["y_train"])
    per_epoch = steps_per_epoch(images, config["batch_size"])
    pieces = schedule(config["steps"], config["snapshot_steps"], per_epoch, config["curve_points"])
    orders = _epoch_order(seed, images, pieces[-1][0] + 1)
    initial = _probe(model, arrays)
    trained, history, done, used = None, {"step": []}, 0, {}
    for epoch, steps in run.progress(pieces, label):
        # Consecutive pieces of one epoch take consecutive slices of its
        # permutation; Keras must not shuffle again.
        start = used.get(epoch, 0)
        chosen = orders[epoch][start * config["batch_size"]:(start + steps) * config["batch_size"]]
        used[epoch] = start + steps
        part = training.fit(model, arrays["x_train"][chosen], arrays["y_train"][chosen], epochs=1,
                            batch_size=config["batch_size"], shuffle=False,
                            validation_data=(arrays["x_val"], arrays["y_val"]))
        done += steps
        history["step"].append(done)
        for name, values in part.items():
            history.setdefault(name, []).extend(values)
        if done == config["snapshot_steps"]:
            trained = _probe(model, arrays)
    scores = training.evaluate(model, arrays["x_test"], arrays["y_test"])
    return {"history": history, "test_loss": scores["loss"], "test_accuracy": scores["accuracy"],
            "initial_gradients": initial["kernel"], "trained_gradients": trained["kernel"],
            "initial_errors": initial["error"], "trained_errors": trained["error"]}


def _summary(arrays, config) -> dict:
    """Sizes of the splits, steps per epoch, and the accuracy of always
    guessing the test set's most common digit (the chapter's chance level)."""
    counts = np.bincount(arrays["y_test"])
    return {
        "sizes": {name[2:]: len(values) for name, values in arrays.items() if name.startswith("y_")},
        "steps_per_epoch": steps_per_epoch(len(arrays["y_train"]), config["batch_size"]),
        "chance_accuracy": float(counts.max() / counts.sum()),
    }


def grid_architectures(config: dict) -> list[dict]:
    """The depths × activations of :func:`activations` and :func:`lecun`."""
    return [{"depth": depth, "activation": name, "initializer": config["initializer"],
             "normalization": None}
            for depth in config["depths"] for name in config["activations"]]


def remedy_architectures(config: dict) -> list[dict]:
    """The deepest networks of :func:`remedies`, one per variant."""
    return [{"depth": config["depth"], **variant} for variant in config["variants"]]


# --------------------------------------------------------------------------
# The experiments


@experiment(datasets=("mnist",), config=lambda p: _grid_config(p, ACTIVATIONS), each=train_run,
            runs=lambda profile, config: architecture_runs(config, grid_architectures(config)))
def activations(run, config):
    """The nine models (depths × ReLU/tanh/sigmoid), Glorot uniform initialisation."""
    return assemble_runs(run, config, grid_architectures(config))


@experiment(datasets=("mnist",), config=lambda p: _grid_config(p, ("lecun",)), each=train_run,
            runs=lambda profile, config: architecture_runs(config, grid_architectures(config)))
def lecun(run, config):
    """The same depths with LeCun's scaled tanh (compare with tanh in activations)."""
    return assemble_runs(run, config, grid_architectures(config))


@experiment(datasets=("mnist",), config=_remedies_config, each=train_run,
            runs=lambda profile, config: architecture_runs(config, remedy_architectures(config)))
def remedies(run, config):
    """The deepest networks with matched initialisation, and with batch or layer norm."""
    return assemble_runs(run, config, remedy_architectures(config))
