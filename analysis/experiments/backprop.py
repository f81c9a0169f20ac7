"""Experiments of the backpropagation chapter (chapters/backprop.qmd).

Everything here is NumPy: the networks are :mod:`analysis.scratch`'s
:class:`~analysis.scratch.MLP` and :class:`~analysis.scratch.TwoLayerNet`.
TwoLayerNet draws its initial weights and its mini-batches from NumPy's
*global* generator, exactly as the assignment does, so a run is reproduced by
``np.random.seed(seed)`` before the network is built. We seed with
:func:`_seed` (that call and nothing else) instead of ``training.set_seed``,
which would also seed NumPy but import TensorFlow, which no experiment of
this chapter uses.

The experiments, in the chapter's order:

* :func:`toy_reference_check`: the assignment's forward-score and loss checks
  on its toy problem (not cached: it takes microseconds);
* :func:`gradient_checks`: analytic gradients against central differences,
  for a small MLP with each activation and for the two-layer toy problem;
* :func:`toy_training`: the two-layer net on the toy problem, 100 iterations;
* :func:`cifar_default`: the two-layer net with the assignment's default
  settings on CIFAR-10 (mean image subtracted, flattened), over seeds;
* :func:`sweep_configurations`: a grid over hidden size, learning rate,
  regularisation and iterations; the best configuration by validation
  accuracy and its test accuracy;
* :func:`cifar_sweep`: the grid's result and the same configuration over
  more seeds;
* :func:`generalization_gap`: which of a larger training set, more hidden
  units or stronger regularisation shrinks the train-test gap.

The CIFAR-10 experiments are made of independent runs (a seed, a grid
configuration, a gap setting under a seed): each declares them, and the
runner caches each run on its own and trains them in parallel processes
(NumPy is CPU-bound, so processes help these nets as much as Keras's).
"""

from __future__ import annotations

import itertools

import numpy as np

from analysis import data, profiles, scratch, symbolic
from analysis.runner import experiment

#: The assignment's toy problem: 5 inputs of 4 features, 10 hidden units,
#: 3 classes; the inputs are drawn after np.random.seed(1).
TOY = {
    "input_size": 4,
    "hidden_size": 10,
    "num_classes": 3,
    "num_inputs": 5,
    "std": 0.1,
    "data_seed": 1,
    "labels": [0, 1, 2, 2, 1],
}

#: The assignment's defaults for the first CIFAR-10 network.
CIFAR_DEFAULTS = {
    "hidden_size": 50,
    "batch_size": 200,
    "learning_rate": 1e-4,
    "learning_rate_decay": 0.95,
    "reg": 0.25,
    "std": 1e-4,
}

#: What the assignment asks of each check, in one place so that the chapter's
#: prose and tables quote the same thresholds the verdicts use.
MLP_GRADIENT_TOLERANCE = 1e-7       # largest relative error of a float64 MLP
TWO_LAYER_GRADIENT_TOLERANCE = 1e-8  # the assignment's bound for the toy net
TOY_LOSS_TARGET = 0.02              # the toy net's final training loss
ACCURACY_TARGET = 0.48              # test accuracy on real CIFAR-10

#: The assignment's reference numbers for its toy problem, printed in its
#: notebook: the scores of the network built after ``np.random.seed(0)``
#: (weights std 0.1) and its loss with ``reg = 0.05``, with the differences
#: the notebook says a correct implementation gets below.
CS231N_TOY_SCORES = (
    (-0.81233741, -1.27654624, -0.70335995),
    (-0.17129677, -1.18803311, -0.47310444),
    (-0.51590475, -1.01354314, -0.8504215),
    (-0.15419291, -0.48629638, -0.52901952),
    (-0.00618733, -0.12435261, -0.15226949),
)
CS231N_TOY_LOSS = 1.30378789133
CS231N_TOY_REG = 0.05
CS231N_TOY_SEED = 0
CS231N_SCORE_TOLERANCE = 1e-7
CS231N_LOSS_TOLERANCE = 1e-12

#: The split of CIFAR-10 into train/validation/test is drawn with this seed
#: (the same images for every experiment and every replicate).
SPLIT_SEED = 0


def _seed(seed: int) -> None:
    """The chapter's one seeding call (see the module docstring)."""
    np.random.seed(int(seed))


# ---------------------------------------------------------------------------
# Data


_prepared: dict = {}


def _cifar(run, budget: dict) -> dict:
    """CIFAR-10 as the assignment prepares it: the mean training image is
    subtracted from every split and each image is flattened to 3,072 values,
    in float64 (the networks compute in float64).

    The last preparation is kept for the process, so that the chapter's three
    CIFAR-10 experiments subtract the mean once when they run one after the
    other. The key is the data's fingerprint and the budget.
    """
    dataset = run.data("cifar10")
    key = (dataset.provenance.fingerprint, tuple(sorted(budget.items())))
    if key not in _prepared:
        _prepared.clear()
        parts = data.split(dataset, profiles.DataBudget(**budget), seed=SPLIT_SEED)
        x_train = parts.x_train.reshape(len(parts.x_train), -1).astype(np.float64)
        mean_image = x_train.mean(axis=0)
        x_train -= mean_image

        def centred(images):
            return images.reshape(len(images), -1).astype(np.float64) - mean_image

        _prepared[key] = {
            "x_train": x_train,
            "y_train": np.asarray(parts.y_train),
            "x_val": centred(parts.x_val),
            "y_val": np.asarray(parts.y_val),
            "x_test": centred(parts.x_test),
            "y_test": np.asarray(parts.y_test),
            "mean_image": mean_image,
            "sizes": parts.sizes(),
        }
    return _prepared[key]


def _accuracy(net, X, y) -> float:
    return float((net.predict(X) == y).mean())


def _diverged(stats: dict) -> bool:
    """A run whose last loss is not finite diverged: its weights are NaN and
    argmax over NaN scores says class 0, which would pass for a chance-level
    accuracy. Such runs record NaN, so that the statistics drop and count
    them instead of averaging them in."""
    return not np.isfinite(stats["loss_history"][-1])


def _accuracies(net, stats: dict, **splits) -> dict[str, float]:
    """Accuracy on each named (X, y) split, or NaN for a diverged run."""
    if _diverged(stats):
        return {name: float("nan") for name in splits}
    return {name: _accuracy(net, X, y) for name, (X, y) in splits.items()}


# ---------------------------------------------------------------------------
# Gradient checks and the toy problem


def _train_net(seed: int, X, y, arrays: dict, config: dict, *, hidden_size: int,
               learning_rate: float, reg: float, num_iters: int):
    """A fresh two-layer net, seeded, then trained by the assignment's SGD.

    Returns the net and its training statistics (loss and accuracy histories).
    """
    _seed(seed)
    net = scratch.TwoLayerNet(X.shape[1], hidden_size, 10, std=config["std"])
    stats = net.train(
        X, y, arrays["x_val"], arrays["y_val"],
        learning_rate=learning_rate,
        learning_rate_decay=config["learning_rate_decay"],
        reg=reg,
        num_iters=num_iters,
        batch_size=config["batch_size"],
    )
    return net, stats


def _toy_problem(init_seed: int, toy: dict):
    """The toy network (seeded with ``init_seed``) and the toy data (always
    drawn after seeding with ``toy["data_seed"]``, as in the assignment)."""
    _seed(init_seed)
    net = scratch.TwoLayerNet(toy["input_size"], toy["hidden_size"], toy["num_classes"], std=toy["std"])
    _seed(toy["data_seed"])
    X = 10 * np.random.randn(toy["num_inputs"], toy["input_size"])
    y = np.array(toy["labels"])
    return net, X, y


def toy_reference_check(net=None) -> dict:
    """The assignment's first two checks of the two-layer net: its scores
    and its loss on the toy problem against the numbers its notebook prints.

    ``net`` defaults to the assignment's own toy network; a test passes a
    wrong one to see the check fail. Returns the largest score difference,
    the loss, its difference from the reference, and whether each is within
    its tolerance.
    """
    default_net, X, y = _toy_problem(CS231N_TOY_SEED, TOY)
    net = default_net if net is None else net
    scores = net.loss(X)
    loss, _ = net.loss(X, y, reg=CS231N_TOY_REG)
    score_difference = float(np.max(np.abs(scores - np.array(CS231N_TOY_SCORES))))
    loss_difference = float(abs(loss - CS231N_TOY_LOSS))
    return {
        "score_difference": score_difference,
        "scores_pass": score_difference < CS231N_SCORE_TOLERANCE,
        "loss": float(loss),
        "loss_difference": loss_difference,
        "loss_pass": loss_difference < CS231N_LOSS_TOLERANCE,
    }


@experiment(
    config=lambda p: {
        "seeds": p.seed_list(),
        "activations": list(symbolic.ACTIVATION_NAMES),
        "layer_sizes": [4, 5, 5, 3],
        "num_examples": 3,
        "step": 1e-5,
        "min_gradient": 1e-3,
        "kink_margin": 1e-3,
        "toy": TOY,
        "toy_reg": 0.05,
    }
)
def gradient_checks(run, config):
    """Relative errors between analytic and finite-difference gradients.

    For the MLP, :func:`scratch.mlp_gradient_check` draws random problems
    until one is well conditioned (no ReLU pre-activation within
    ``kink_margin`` of 0, no gradient entry non-zero but below
    ``min_gradient``); ``draws`` records how many it took.
    """
    mlp = []
    pairs = list(itertools.product(config["activations"], config["seeds"]))
    for activation, seed in run.progress(pairs, "MLP gradient checks"):
        check = scratch.mlp_gradient_check(
            activation,
            layer_sizes=config["layer_sizes"],
            num_examples=config["num_examples"],
            seed=seed,
            h=config["step"],
            min_gradient=config["min_gradient"],
            kink_margin=config["kink_margin"],
        )
        mlp.append(
            {
                "activation": check.activation,
                "seed": seed,
                "errors": check.errors,
                "max_error": check.max_error,
                "draws": check.draws,
            }
        )
    two_layer = []
    for seed in config["seeds"]:
        net, X, y = _toy_problem(seed, config["toy"])
        errors = scratch.gradient_check(net, X, y, reg=config["toy_reg"], h=config["step"])
        two_layer.append({"seed": seed, "errors": errors})
    return {"mlp": mlp, "two_layer": two_layer}


@experiment(
    config=lambda p: {
        "seeds": p.seed_list(),
        "toy": TOY,
        "learning_rate": 0.1,
        "reg": 5e-6,
        "num_iters": 100,
    }
)
def toy_training(run, config):
    """The two-layer net trained on the toy problem; one run per seed of
    the initial weights (the toy data stay the same)."""
    losses, accuracies = [], []
    for seed in run.progress(config["seeds"], "seeds"):
        net, X, y = _toy_problem(seed, config["toy"])
        stats = net.train(
            X, y, X, y,
            learning_rate=config["learning_rate"],
            reg=config["reg"],
            num_iters=config["num_iters"],
            verbose=False,
        )
        losses.append(stats["loss_history"])
        accuracies.append(_accuracy(net, X, y))
    losses = np.array(losses)
    return {
        "loss_history": losses,  # (seeds, iterations)
        "final_loss": [float(v) for v in losses[:, -1]],
        "train_accuracy": accuracies,
    }


# ---------------------------------------------------------------------------
# CIFAR-10


def default_runs(config: dict) -> list[dict]:
    """One run per seed of :func:`cifar_default`; the first keeps its curves
    and weights (the chapter shows those of the first seed)."""
    shared = {key: value for key, value in config.items() if key != "seeds"}
    return [{**shared, "seed": seed, "keep_curves": index == 0}
            for index, seed in enumerate(config["seeds"])]


def train_default(run, item: dict) -> dict:
    """The assignment's first network under one seed: its accuracies, and,
    where ``keep_curves``, its training curves and first-layer weights."""
    arrays = _cifar(run, item["data"])
    X, y = arrays["x_train"], arrays["y_train"]
    net, stats = _train_net(
        item["seed"], X, y, arrays, item,
        hidden_size=item["hidden_size"], learning_rate=item["learning_rate"],
        reg=item["reg"], num_iters=item["num_iters"],
    )
    output = _accuracies(net, stats, train_accuracy=(X, y),
                         val_accuracy=(arrays["x_val"], arrays["y_val"]),
                         test_accuracy=(arrays["x_test"], arrays["y_test"]))
    if item["keep_curves"]:
        output.update({name: np.array(stats[name])
                       for name in ("loss_history", "train_acc_history", "val_acc_history")},
                      W1=net.params["W1"].astype(np.float32))
    return output


@experiment(
    datasets=("cifar10",),
    config=lambda p: {
        "data": p.backprop.cifar,
        "seeds": p.seed_list(),
        "num_iters": p.backprop.num_iters,
        **CIFAR_DEFAULTS,
    },
    runs=lambda profile, config: default_runs(config),
    each=train_default,
)
def cifar_default(run, config):
    """The assignment's first network on CIFAR-10, with its default settings,
    once per seed (one run each, :func:`train_default`). The curves and the
    weights are those of the first seed; every seed's accuracies are in
    ``replicates``, so the chapter can compare the defaults with the sweep's
    choice on the test set over seeds."""
    accuracies = ("train_accuracy", "val_accuracy", "test_accuracy")
    replicates = [{"seed": item["seed"], **{name: result[name] for name in accuracies}}
                  for item, result in zip(default_runs(config), run.results)]
    first, arrays = run.results[0], _cifar(run, config["data"])
    return {
        "loss_history": first["loss_history"],
        "train_acc_history": first["train_acc_history"],
        "val_acc_history": first["val_acc_history"],
        "iterations_per_epoch": max(len(arrays["y_train"]) / config["batch_size"], 1),
        "train_accuracy": first["train_accuracy"],
        "val_accuracy": first["val_accuracy"],
        "replicates": replicates,
        "sizes": arrays["sizes"],
        "W1": first["W1"],
    }


def _sweep_grid(config: dict) -> list[dict]:
    return [
        {"hidden_size": hidden, "learning_rate": rate, "reg": reg}
        for hidden, rate, reg in itertools.product(
            config["hidden_sizes"], config["learning_rates"], config["regs"]
        )
    ]


def _grid_config(p) -> dict:
    """The sweep's grid, budgets and seed (shared by both sweep experiments)."""
    return {
        "data": p.backprop.cifar,
        "seed": 0,
        "hidden_sizes": p.backprop.sweep_hidden_sizes,
        "learning_rates": p.backprop.sweep_learning_rates,
        "regs": p.backprop.sweep_regs,
        "checkpoints": p.backprop.sweep_num_iters,
        "batch_size": CIFAR_DEFAULTS["batch_size"],
        "learning_rate_decay": CIFAR_DEFAULTS["learning_rate_decay"],
        "std": CIFAR_DEFAULTS["std"],
        "train_subsample": 1000,
    }


def grid_runs(config: dict) -> list[dict]:
    """One run per configuration of the grid, in the grid's order."""
    shared = {key: value for key, value in config.items()
              if key not in ("hidden_sizes", "learning_rates", "regs")}
    return [{**shared, "setting": setting} for setting in _sweep_grid(config)]


#: The two-layer net's parameters, as a grid run stores them.
PARAMETERS = ("W1", "b1", "W2", "b2")


def train_configuration(run, item: dict) -> dict:
    """One configuration of the grid (seed ``seed``), read at every
    checkpoint: a row per checkpoint, and the parameters (float64, exactly)
    of its first checkpoint with the highest validation accuracy.

    Training accuracy at a checkpoint is measured on a fixed subsample of
    ``train_subsample`` training images, the same for every configuration.
    """
    arrays = _cifar(run, item["data"])
    X, y = arrays["x_train"], arrays["y_train"]
    subsample = np.random.default_rng(SPLIT_SEED).permutation(len(y))[: item["train_subsample"]]
    setting, rows, best = item["setting"], [], {"val_accuracy": -1.0}

    def record(iterations, net):
        row = {
            **setting,
            "num_iters": iterations,
            "epochs": iterations / max(len(y) / item["batch_size"], 1),
            "train_accuracy": _accuracy(net, X[subsample], y[subsample]),
            "val_accuracy": _accuracy(net, arrays["x_val"], arrays["y_val"]),
        }
        rows.append(row)
        if row["val_accuracy"] > best["val_accuracy"]:
            best.update(val_accuracy=row["val_accuracy"], index=len(rows) - 1,
                        params={k: v.copy() for k, v in net.params.items()})

    _seed(item["seed"])
    net = scratch.TwoLayerNet(X.shape[1], setting["hidden_size"], 10, std=item["std"])
    scratch.train_in_stages(
        net, X, y, arrays["x_val"], arrays["y_val"], item["checkpoints"], record,
        learning_rate=setting["learning_rate"],
        learning_rate_decay=item["learning_rate_decay"],
        reg=setting["reg"],
        batch_size=item["batch_size"],
    )
    return {"rows": rows, "best_index": best["index"],
            **{f"best_{name}": best["params"][name] for name in PARAMETERS}}


@experiment(datasets=("cifar10",), config=_grid_config,
            runs=lambda profile, config: grid_runs(config), each=train_configuration)
def sweep_configurations(run, config):
    """The grid search of :func:`cifar_sweep`, as in the assignment: one run
    per configuration (:func:`train_configuration`); the best (configuration,
    iterations) by validation accuracy -- the first of equals, in the grid's
    order -- is scored once on the test set."""
    arrays = _cifar(run, config["data"])
    rows, best, chosen = [], {"val_accuracy": -1.0}, None
    for result in run.results:
        rows += result["rows"]
        candidate = result["rows"][result["best_index"]]
        if candidate["val_accuracy"] > best["val_accuracy"]:
            best, chosen = dict(candidate), result
    net = scratch.TwoLayerNet(arrays["x_train"].shape[1], best["hidden_size"], 10)
    net.params = {name: chosen[f"best_{name}"] for name in PARAMETERS}
    best["test_accuracy"] = _accuracy(net, arrays["x_test"], arrays["y_test"])
    return {"rows": rows, "best": best, "sizes": arrays["sizes"],
            "best_W1": net.params["W1"].astype(np.float32)}


def replicate_runs(profile, config: dict) -> list[dict]:
    """The sweep's best configuration under every replicate seed but the
    sweep's own (whose network the sweep already trained)."""
    best = sweep_configurations(profile)["best"]
    shared = {key: config[key] for key in ("data", "batch_size", "learning_rate_decay", "std")}
    chosen = {key: best[key] for key in ("hidden_size", "learning_rate", "reg", "num_iters")}
    return [{**shared, **chosen, "seed": seed}
            for seed in config["replicate_seeds"] if seed != config["seed"]]


def train_replicate(run, item: dict) -> dict:
    """The best configuration under one seed: validation and test accuracy
    (NaN for a diverged run)."""
    arrays = _cifar(run, item["data"])
    net, stats = _train_net(
        item["seed"], arrays["x_train"], arrays["y_train"], arrays, item,
        hidden_size=item["hidden_size"], learning_rate=item["learning_rate"],
        reg=item["reg"], num_iters=item["num_iters"],
    )
    return _accuracies(net, stats, val_accuracy=(arrays["x_val"], arrays["y_val"]),
                       test_accuracy=(arrays["x_test"], arrays["y_test"]))


@experiment(
    datasets=("cifar10",),
    config=lambda p: {
        **_grid_config(p),
        "replicate_seeds": p.seed_list(),
        # The replicates retrain the grid's choice: a dependency, so the
        # grid's key is part of ours.
        "grid_key": sweep_configurations.key(p),
    },
    runs=replicate_runs,
    each=train_replicate,
)
def cifar_sweep(run, config):
    """Grid search (:func:`sweep_configurations`): one run per configuration
    (seed ``seed``), read at every checkpoint; the best (configuration,
    iterations) by validation accuracy is scored once on the test set, then
    retrained with every replicate seed (one run each) to show how much the
    choice owes to the seed."""
    grid = sweep_configurations(run.profile)
    best = grid["best"]
    retrained = {item["seed"]: result
                 for item, result in zip(replicate_runs(run.profile, config), run.results)}
    replicates = []
    for seed in config["replicate_seeds"]:
        # The sweep's own seed is the chosen network itself.
        scores = best if seed == config["seed"] else retrained[seed]
        replicates.append({"seed": seed, "val_accuracy": scores["val_accuracy"],
                           "test_accuracy": scores["test_accuracy"]})
    return {
        "rows": grid["rows"],
        "best": best,
        "replicates": replicates,
        "sizes": grid["sizes"],
        "best_W1": grid["best_W1"],
    }


# ---------------------------------------------------------------------------
# The train-test gap

#: The factors of the gap experiment: the result's key, the config's key.
GAP_FACTORS = {"train_size": "train_sizes", "hidden_size": "hidden_sizes", "reg": "regs"}


def gap_epochs(config: dict) -> dict[int, float]:
    """Epochs that ``num_iters`` iterations make for each training-set size:
    a fixed iteration count passes many times over a small set and only a
    few times over a large one, which the chapter must say."""
    return {size: config["num_iters"] * config["batch_size"] / size for size in sorted(config["train_sizes"])}


def gap_settings(config: dict) -> list[dict]:
    """Every setting of the gap experiment: the baseline (each factor at its
    smallest level) and, for each factor, its other levels with the other
    two factors at the baseline. Each setting names the factor it varies
    (the baseline belongs to every factor)."""
    baseline = {factor: min(config[key]) for factor, key in GAP_FACTORS.items()}
    settings = [{**baseline, "varied": "baseline"}]
    for factor, key in GAP_FACTORS.items():
        for level in sorted(config[key]):
            if level != baseline[factor]:
                settings.append({**baseline, factor: level, "varied": factor})
    return settings


def gap_runs(config: dict) -> list[dict]:
    """Every (setting, seed) of :func:`generalization_gap` as an independent run."""
    shared = {key: config[key] for key in ("data", "num_iters", "learning_rate",
                                           "learning_rate_decay", "batch_size", "std")}
    return [{**shared, "setting": setting, "seed": seed}
            for setting, seed in itertools.product(gap_settings(config), config["seeds"])]


def train_gap(run, item: dict) -> dict:
    """One setting under one seed: training accuracy on the first
    ``train_size`` training images (all of them), and test accuracy."""
    arrays = _cifar(run, item["data"])
    setting = item["setting"]
    size = setting["train_size"]
    available = len(arrays["y_train"])
    if size > available:
        raise ValueError(f"gap_train_sizes [{size}] exceed the {available} training images of the budget")
    X, y = arrays["x_train"][:size], arrays["y_train"][:size]
    net, stats = _train_net(
        item["seed"], X, y, arrays, item, hidden_size=setting["hidden_size"],
        learning_rate=item["learning_rate"], reg=setting["reg"], num_iters=item["num_iters"],
    )
    return _accuracies(net, stats, train_accuracy=(X, y),
                       test_accuracy=(arrays["x_test"], arrays["y_test"]))


@experiment(
    datasets=("cifar10",),
    config=lambda p: {
        "data": p.backprop.cifar,
        "seeds": p.seed_list(),
        "train_sizes": p.backprop.gap_train_sizes,
        "hidden_sizes": p.backprop.gap_hidden_sizes,
        "regs": p.backprop.gap_regs,
        "num_iters": p.backprop.gap_num_iters,
        # A constant learning rate: the per-epoch decay would otherwise cool
        # small training sets (many short epochs) far more than large ones.
        "learning_rate": 1e-3,
        "learning_rate_decay": 1.0,
        "batch_size": CIFAR_DEFAULTS["batch_size"],
        "std": CIFAR_DEFAULTS["std"],
    },
    runs=lambda profile, config: gap_runs(config),
    each=train_gap,
)
def generalization_gap(run, config):
    """Training and test accuracy for each setting of :func:`gap_settings`
    and each seed (one run each, :func:`train_gap`). A training set of size
    n is the first n images of the (shuffled) training split; its accuracy is
    measured on all n."""
    arrays = _cifar(run, config["data"])
    available = len(arrays["y_train"])
    too_large = [n for n in config["train_sizes"] if n > available]
    if too_large:
        raise ValueError(f"gap_train_sizes {too_large} exceed the {available} training images of the budget")
    runs = [{**item["setting"], "seed": item["seed"], **accuracies,
             "gap": accuracies["train_accuracy"] - accuracies["test_accuracy"]}
            for item, accuracies in zip(gap_runs(config), run.results)]
    return {"runs": runs, "sizes": arrays["sizes"]}
