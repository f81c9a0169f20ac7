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
* :func:`cifar_sweep`: a grid over hidden size, learning rate,
  regularisation and iterations; the best configuration by validation
  accuracy, its test accuracy, and the same configuration over more seeds;
* :func:`generalization_gap`: which of a larger training set, more hidden
  units or stronger regularisation shrinks the train-test gap.
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


@experiment(
    datasets=("cifar10",),
    config=lambda p: {
        "data": p.backprop.cifar,
        "seeds": p.seed_list(),
        "num_iters": p.backprop.num_iters,
        **CIFAR_DEFAULTS,
    },
)
def cifar_default(run, config):
    """The assignment's first network on CIFAR-10, with its default settings,
    once per seed. The curves and the weights are those of the first seed;
    every seed's accuracies are in ``replicates``, so the chapter can compare
    the defaults with the sweep's choice on the test set over seeds."""
    arrays = _cifar(run, config["data"])
    X, y = arrays["x_train"], arrays["y_train"]
    replicates, first = [], None
    for seed in run.progress(config["seeds"], "seeds"):
        net, stats = _train_net(
            seed, X, y, arrays, config,
            hidden_size=config["hidden_size"], learning_rate=config["learning_rate"],
            reg=config["reg"], num_iters=config["num_iters"],
        )
        accuracies = _accuracies(net, stats, train_accuracy=(X, y),
                                 val_accuracy=(arrays["x_val"], arrays["y_val"]),
                                 test_accuracy=(arrays["x_test"], arrays["y_test"]))
        replicates.append({"seed": seed, **accuracies})
        if first is None:
            first = (net, stats, accuracies)
    net, stats, accuracies = first
    return {
        "loss_history": np.array(stats["loss_history"]),
        "train_acc_history": np.array(stats["train_acc_history"]),
        "val_acc_history": np.array(stats["val_acc_history"]),
        "iterations_per_epoch": max(len(y) / config["batch_size"], 1),
        "train_accuracy": accuracies["train_accuracy"],
        "val_accuracy": accuracies["val_accuracy"],
        "replicates": replicates,
        "sizes": arrays["sizes"],
        "W1": net.params["W1"].astype(np.float32),
    }


def _sweep_grid(config: dict) -> list[dict]:
    return [
        {"hidden_size": hidden, "learning_rate": rate, "reg": reg}
        for hidden, rate, reg in itertools.product(
            config["hidden_sizes"], config["learning_rates"], config["regs"]
        )
    ]


@experiment(
    datasets=("cifar10",),
    config=lambda p: {
        "data": p.backprop.cifar,
        "seed": 0,
        "replicate_seeds": p.seed_list(),
        "hidden_sizes": p.backprop.sweep_hidden_sizes,
        "learning_rates": p.backprop.sweep_learning_rates,
        "regs": p.backprop.sweep_regs,
        "checkpoints": p.backprop.sweep_num_iters,
        "batch_size": CIFAR_DEFAULTS["batch_size"],
        "learning_rate_decay": CIFAR_DEFAULTS["learning_rate_decay"],
        "std": CIFAR_DEFAULTS["std"],
        "train_subsample": 1000,
    },
)
def cifar_sweep(run, config):
    """Grid search, as in the assignment: one run per configuration (seed
    ``seed``), read at every checkpoint; the best (configuration, iterations)
    by validation accuracy is scored once on the test set, then retrained
    with every replicate seed to show how much the choice owes to the seed.

    Training accuracy at a checkpoint is measured on a fixed subsample of
    ``train_subsample`` training images, the same for every configuration.
    """
    arrays = _cifar(run, config["data"])
    X, y = arrays["x_train"], arrays["y_train"]
    subsample = np.random.default_rng(SPLIT_SEED).permutation(len(y))[: config["train_subsample"]]
    rows, best = [], {"val_accuracy": -1.0}

    for setting in run.progress(_sweep_grid(config), "configurations"):

        def record(iterations, net, setting=setting):
            row = {
                **setting,
                "num_iters": iterations,
                "epochs": iterations / max(len(y) / config["batch_size"], 1),
                "train_accuracy": _accuracy(net, X[subsample], y[subsample]),
                "val_accuracy": _accuracy(net, arrays["x_val"], arrays["y_val"]),
            }
            rows.append(row)
            if row["val_accuracy"] > best["val_accuracy"]:
                best.clear()
                best.update(row, params={k: v.copy() for k, v in net.params.items()})

        _seed(config["seed"])
        net = scratch.TwoLayerNet(X.shape[1], setting["hidden_size"], 10, std=config["std"])
        scratch.train_in_stages(
            net, X, y, arrays["x_val"], arrays["y_val"], config["checkpoints"], record,
            learning_rate=setting["learning_rate"],
            learning_rate_decay=config["learning_rate_decay"],
            reg=setting["reg"],
            batch_size=config["batch_size"],
        )

    chosen = scratch.TwoLayerNet(X.shape[1], best["hidden_size"], 10)
    chosen.params = best.pop("params")
    best["test_accuracy"] = _accuracy(chosen, arrays["x_test"], arrays["y_test"])

    replicates = []
    for seed in run.progress(config["replicate_seeds"], "replicates of the best"):
        if seed == config["seed"]:
            net = chosen  # the sweep's own run: the identical network
        else:
            net, stats = _train_net(
                seed, X, y, arrays, config, hidden_size=best["hidden_size"],
                learning_rate=best["learning_rate"], reg=best["reg"], num_iters=best["num_iters"],
            )
            if _diverged(stats):
                replicates.append({"seed": seed, "val_accuracy": float("nan"),
                                   "test_accuracy": float("nan")})
                continue
        replicates.append(
            {
                "seed": seed,
                "val_accuracy": _accuracy(net, arrays["x_val"], arrays["y_val"]),
                "test_accuracy": _accuracy(net, arrays["x_test"], arrays["y_test"]),
            }
        )
    return {
        "rows": rows,
        "best": best,
        "replicates": replicates,
        "sizes": arrays["sizes"],
        "best_W1": chosen.params["W1"].astype(np.float32),
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
)
def generalization_gap(run, config):
    """Training and test accuracy for each setting of :func:`gap_settings`
    and each seed. A training set of size n is the first n images of the
    (shuffled) training split; its accuracy is measured on all n."""
    arrays = _cifar(run, config["data"])
    available = len(arrays["y_train"])
    too_large = [n for n in config["train_sizes"] if n > available]
    if too_large:
        raise ValueError(f"gap_train_sizes {too_large} exceed the {available} training images of the budget")
    runs = []
    work = list(itertools.product(gap_settings(config), config["seeds"]))
    for setting, seed in run.progress(work, "settings × seeds"):
        size = setting["train_size"]
        X, y = arrays["x_train"][:size], arrays["y_train"][:size]
        net, stats = _train_net(
            seed, X, y, arrays, config, hidden_size=setting["hidden_size"],
            learning_rate=config["learning_rate"], reg=setting["reg"], num_iters=config["num_iters"],
        )
        accuracies = _accuracies(net, stats, train_accuracy=(X, y),
                                 test_accuracy=(arrays["x_test"], arrays["y_test"]))
        runs.append(
            {
                **setting,
                "seed": seed,
                **accuracies,
                "gap": accuracies["train_accuracy"] - accuracies["test_accuracy"],
            }
        )
    return {"runs": runs, "sizes": arrays["sizes"]}
