"""Experiments of the generalization chapter (chapters/generalization.qmd).

The network is the coursework's: Flatten → Dense(500, ReLU) → Dense(300,
ReLU) → Dense(10, softmax) on MNIST scaled to [0, 1], SGD with learning rate
0.1, mini-batches of 128. The experiments:

* :data:`l2_sweep` and :data:`dropout_sweep` train it with L2(λ) on both
  hidden layers, or dropout after each of them, at every strength of the
  profile, on seeds of their own; the strength is chosen on validation
  accuracy (the test set is not used);
* :data:`methods` trains, on the comparison seeds, the plain network, the same
  network with early stopping, the chosen L2 and dropout networks, and Adam,
  Adam + L2 and AdamW at matched strength;
* :data:`data_sizes` trains the plain network and the better regularised one
  (chosen on validation) on growing training sets;
* :data:`keras_checks` compares the chapter's formulas with what Keras computes:
  the L2 gradient, one SGD step with L2 against weight decay, one Adam step
  with L2 and one AdamW step, and inverted dropout's mean.

Every run (:func:`train_one`) follows one protocol: within a seed every
variant starts from the same Dense weights and sees the same mini-batches
(the comparisons are paired); training metrics are re-evaluated after each
epoch (``training.EvaluateOnTraining``); a model is scored with the weights it
ends with (early stopping's are those of its best validation epoch), and the
test set is used once, at the end, where the run may use it.
"""

from __future__ import annotations

import keras
import numpy as np
from scipy import stats as scipy_stats

from analysis import data, gradients, profiles, training
from analysis.runner import experiment

#: The coursework's network and optimizer.
HIDDEN_UNITS = (500, 300)
LEARNING_RATE = 0.1
BATCH_SIZE = 128
#: Adam's and AdamW's rate: Keras's default (0.1 would make Adam diverge).
ADAM_LEARNING_RATE = 1e-3

#: The sweeps' seeds are 1000, 1001, ...: outside the comparison's 0, 1, ...,
#: so a strength is never chosen on the runs it is then compared on.
SWEEP_SEED_BASE = 1000

OPTIMIZERS = ("sgd", "adam", "adamw")


# --------------------------------------------------------------------------
# One run of the chapter's protocol


def build_model(variant: dict) -> keras.Model:
    """The 500-300 MLP with the variant's L2 strength and dropout rate."""
    strength, rate = float(variant.get("l2") or 0.0), float(variant.get("dropout") or 0.0)
    regularizer = keras.regularizers.L2(strength) if strength > 0 else None
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    for index, units in enumerate(HIDDEN_UNITS, start=1):
        layers.append(keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                                         name=f"hidden_{index}"))
        if rate > 0:
            layers.append(keras.layers.Dropout(rate, name=f"dropout_{index}"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="output"))
    return keras.Sequential(layers)


def _dense(model) -> dict:
    return {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.Dense)}


def copy_dense_weights(source, target) -> None:
    """Start ``target`` from ``source``'s Dense weights (dropout has none)."""
    destination = _dense(target)
    for name, layer in _dense(source).items():
        destination[name].set_weights(layer.get_weights())


def parameter_count(hidden_units=HIDDEN_UNITS, inputs: int = 28 * 28, classes: int = 10) -> int:
    """Weights and biases of the Dense layers: (n + 1)·m per layer (@eq-mlp-parameters's terms)."""
    sizes = [inputs, *hidden_units, classes]
    return sum((n + 1) * m for n, m in zip(sizes[:-1], sizes[1:]))


def hidden_kernels(model) -> list:
    """The variables that L2 penalises: the hidden layers' kernels."""
    return [layer.kernel for name, layer in _dense(model).items() if name.startswith("hidden_")]


def make_optimizer(variant: dict, model):
    """SGD (0.1), Adam or AdamW (Keras's default rate). AdamW decays only the
    hidden kernels, the variables the L2 networks penalise."""
    name = variant.get("optimizer", "sgd")
    if name == "sgd":
        return keras.optimizers.SGD(LEARNING_RATE)
    if name == "adam":
        return keras.optimizers.Adam(ADAM_LEARNING_RATE)
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(ADAM_LEARNING_RATE, weight_decay=float(variant["weight_decay"]))
        kept = {id(variable) for variable in hidden_kernels(model)}
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if id(v) not in kept])
        return optimizer
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def measure(model, x, y) -> tuple[float, float]:
    """Cross-entropy (without any penalty) and accuracy in inference mode."""
    blocks = [keras.ops.convert_to_numpy(model(x[start:start + training.EVALUATION_BATCH_SIZE],
                                               training=False))
              for start in range(0, len(x), training.EVALUATION_BATCH_SIZE)]
    probability = np.concatenate(blocks).astype(np.float64)
    picked = np.clip(probability[np.arange(len(y)), y], 1e-12, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(probability.argmax(axis=1) == y))


def weight_norm(model) -> float:
    """‖w‖ over the hidden kernels (the weights L2 penalises)."""
    return float(np.sqrt(sum(float(np.sum(keras.ops.convert_to_numpy(k) ** 2))
                             for k in hidden_kernels(model))))


def _split(run, item: dict):
    parts = data.split(run.data("mnist"), profiles.DataBudget(**item["data"]), seed=item["split_seed"])
    return parts, tuple(data.scale01(x) for x in (parts.x_train, parts.x_val, parts.x_test))


def train_one(run, item: dict) -> dict:
    """One seed of one variant; scores of the weights the run ends with."""
    parts, (x_train, x_val, x_test) = _split(run, item)
    seed, variant = item["seed"], item["variant"]
    training.set_seed(seed)
    reference = build_model({})                  # this seed's initial Dense weights
    model = build_model(variant)
    copy_dense_weights(reference, model)
    training.compile_model(model, make_optimizer(variant, model))
    callbacks = [training.EvaluateOnTraining(x_train, parts.y_train)]
    if variant.get("patience"):
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(variant["patience"]),
                                                       restore_best_weights=True))
    training.set_seed(seed)                      # the same mini-batches for every variant
    history = training.fit(model, x_train, parts.y_train, epochs=item["epochs"],
                           batch_size=item["batch_size"], validation_data=(x_val, parts.y_val),
                           callbacks=[*callbacks, run.epoch_bar(f"{item['name']}, seed {seed}")])
    train_loss, train_accuracy = measure(model, x_train, parts.y_train)
    val_loss, val_accuracy = measure(model, x_val, parts.y_val)
    scores = {"train_loss": train_loss, "train_accuracy": train_accuracy,
              "val_loss": val_loss, "val_accuracy": val_accuracy,
              "best_val_accuracy": float(np.max(history["val_accuracy"])),
              "epochs_trained": len(history["val_loss"]),
              "best_epoch": training.best_epoch(history, "val_loss") + 1,
              "weight_norm": weight_norm(model)}
    if item["use_test"]:
        test_loss, test_accuracy = measure(model, x_test, parts.y_test)
        scores.update(test_loss=test_loss, test_accuracy=test_accuracy,
                      gap=train_accuracy - test_accuracy)
    return {"history": history, "scores": scores, "sizes": parts.sizes()}


def variant_runs(config: dict, variants: dict[str, dict], seeds, use_test: bool) -> list[dict]:
    """Every (seed, variant) as an independent run; a variant may set its own
    data budget (the more-data experiment)."""
    shared = {key: config[key] for key in ("epochs", "split_seed", "batch_size")}
    return [{**shared, "data": variant.get("data", config["data"]), "seed": seed, "name": name,
             "variant": {k: v for k, v in variant.items() if k != "data"}, "use_test": use_test}
            for seed in seeds for name, variant in variants.items()]


def assemble(run, config: dict, variants: dict[str, dict], seeds, use_test: bool) -> dict:
    """Per variant, in seed order: histories and every score as a list."""
    results = {(item["seed"], item["name"]): result
               for item, result in zip(variant_runs(config, variants, seeds, use_test), run.results)}
    seeds = list(seeds)
    first = results[seeds[0], next(iter(variants))]
    return {
        "variants": list(variants),
        "settings": variants,
        "seeds": seeds,
        "histories": {name: [results[s, name]["history"] for s in seeds] for name in variants},
        "scores": {name: {key: [results[s, name]["scores"][key] for s in seeds]
                          for key in results[seeds[0], name]["scores"]} for name in variants},
        "sizes": {name: results[seeds[0], name]["sizes"] for name in variants},
        "data": first["sizes"],
    }


def _config(profile) -> dict:
    budget = profile.generalization
    return {"epochs": budget.epochs, "data": budget.mnist, "split_seed": 0, "batch_size": BATCH_SIZE,
            "hidden_units": list(HIDDEN_UNITS), "learning_rate": LEARNING_RATE,
            "seeds": list(range(budget.seeds))}


def sweep_seeds(config: dict) -> list[int]:
    return [SWEEP_SEED_BASE + seed for seed in config["seeds"]]


# --------------------------------------------------------------------------
# The sweeps: each strength over the sweep seeds; chosen on validation


def choose(settings, validation_scores) -> int:
    """Index of the setting with the highest mean validation score over seeds.

    A diverged (non-finite) run counts as the worst score; a tie goes to the
    setting listed first (the weaker regularisation).
    """
    means = [float(np.mean(np.where(np.isfinite(v), v, -np.inf))) for v in
             (np.asarray(values, dtype=float) for values in validation_scores)]
    if not settings or not np.isfinite(max(means)):
        raise ValueError("every run of the sweep diverged; no setting can be chosen")
    return int(np.argmax(means))


def sweep_name(kind: str, value: float) -> str:
    return f"{kind}@{value:g}"


def _sweep_variants(kind: str, values) -> dict[str, dict]:
    return {sweep_name(kind, value): {"optimizer": "sgd", kind: float(value)} for value in values}


def _sweep(run, config, kind: str) -> dict:
    values = config["values"]
    variants = _sweep_variants(kind, values)
    output = assemble(run, config, variants, sweep_seeds(config), use_test=False)
    index = choose(values, [output["scores"][name]["val_accuracy"] for name in variants])
    return {**output, "kind": kind, "values": list(values), "chosen": float(values[index]),
            "chosen_name": list(variants)[index]}


def _sweep_config(profile, kind: str) -> dict:
    budget = profile.generalization
    values = budget.l2_strengths if kind == "l2" else budget.dropout_rates
    return {**_config(profile), "values": list(values)}


@experiment(datasets=("mnist",), config=lambda profile: _sweep_config(profile, "l2"), each=train_one,
            runs=lambda profile, config: variant_runs(config, _sweep_variants("l2", config["values"]),
                                                      sweep_seeds(config), use_test=False))
def l2_sweep(run, config):
    """L2(λ) on both hidden layers at every λ; λ chosen on final validation accuracy."""
    return _sweep(run, config, "l2")


@experiment(datasets=("mnist",), config=lambda profile: _sweep_config(profile, "dropout"), each=train_one,
            runs=lambda profile, config: variant_runs(config, _sweep_variants("dropout", config["values"]),
                                                      sweep_seeds(config), use_test=False))
def dropout_sweep(run, config):
    """Dropout after each hidden layer at every rate; the rate chosen on final validation accuracy."""
    return _sweep(run, config, "dropout")


# --------------------------------------------------------------------------
# The methods compared on the comparison seeds


def adamw_decay(strength: float) -> float:
    """AdamW's ``weight_decay`` with the same decay per step as SGD with L2(λ):
    Keras's AdamW multiplies a weight by 1 − η_Adam·d, SGD with L2 by
    1 − 2η_SGD·λ (eq-generalization-sgd-decay), so d = 2λ·η_SGD/η_Adam."""
    return 2.0 * strength * LEARNING_RATE / ADAM_LEARNING_RATE


def method_variants(strength: float, rate: float, patience: int) -> dict[str, dict]:
    return {
        "baseline": {"optimizer": "sgd"},
        "early_stopping": {"optimizer": "sgd", "patience": int(patience)},
        "l2": {"optimizer": "sgd", "l2": float(strength)},
        "dropout": {"optimizer": "sgd", "dropout": float(rate)},
        "adam": {"optimizer": "adam"},
        "adam_l2": {"optimizer": "adam", "l2": float(strength)},
        "adamw": {"optimizer": "adamw", "weight_decay": adamw_decay(strength)},
    }


def _upstream_config(profile) -> dict:
    # The chosen settings come from the sweeps: their keys are part of ours.
    return {**_config(profile), "patience": profile.generalization.patience,
            "l2_sweep_key": l2_sweep.key(profile), "dropout_sweep_key": dropout_sweep.key(profile)}


def _chosen_methods(profile, config) -> dict[str, dict]:
    return method_variants(l2_sweep(profile)["chosen"], dropout_sweep(profile)["chosen"], config["patience"])


@experiment(datasets=("mnist",), config=_upstream_config, each=train_one,
            runs=lambda profile, config: variant_runs(config, _chosen_methods(profile, config),
                                                      config["seeds"], use_test=True))
def methods(run, config):
    """Every method over the comparison seeds, scored on the test set once."""
    variants = _chosen_methods(run.profile, config)
    return {**assemble(run, config, variants, config["seeds"], use_test=True),
            "l2": variants["l2"]["l2"], "dropout": variants["dropout"]["dropout"],
            "weight_decay": variants["adamw"]["weight_decay"], "patience": config["patience"]}


# --------------------------------------------------------------------------
# More data


def better_regulariser(l2_result, dropout_result) -> str:
    """"l2" or "dropout": the chosen setting with the higher mean validation
    accuracy in its sweep (a tie goes to L2)."""
    def chosen(result):
        return result["scores"][result["chosen_name"]]["val_accuracy"]
    return ("l2", "dropout")[choose(("l2", "dropout"), [chosen(l2_result), chosen(dropout_result)])]


def size_variants(profile, config) -> dict[str, dict]:
    l2_result, dropout_result = l2_sweep(profile), dropout_sweep(profile)
    kind = better_regulariser(l2_result, dropout_result)
    regularised = {"optimizer": "sgd", kind: (l2_result if kind == "l2" else dropout_result)["chosen"]}
    return {f"{name}@{size}": {**variant, "data": {**config["data"], "train": int(size)}}
            for size in config["train_sizes"]
            for name, variant in (("baseline", {"optimizer": "sgd"}), ("regularised", regularised))}


@experiment(datasets=("mnist",),
            config=lambda profile: {**_upstream_config(profile),
                                    "train_sizes": list(profile.generalization.train_sizes)},
            each=train_one, runs=lambda profile, config: variant_runs(
                config, size_variants(profile, config), config["seeds"], use_test=True))
def data_sizes(run, config):
    """The plain and the better regularised network on growing training sets."""
    variants = size_variants(run.profile, config)
    output = assemble(run, config, variants, config["seeds"], use_test=True)
    regularised = variants[f"regularised@{config['train_sizes'][0]}"]
    kind = "l2" if "l2" in regularised else "dropout"
    # The sizes really used (a small dataset caps the largest one).
    used = sorted({output["sizes"][name]["train"] for name in variants})
    return {**output, "train_sizes": list(config["train_sizes"]), "used_sizes": used,
            "regulariser": kind, "strength": regularised[kind]}


# --------------------------------------------------------------------------
# The formulas against Keras


def _tiny_models(strength: float, seed: int):
    """A small Dense network with and without L2(λ) on its hidden kernel, same
    weights, and a batch to take a step on."""
    generator = np.random.default_rng(seed)
    x = generator.normal(size=(16, 8)).astype(np.float32)
    y = generator.integers(0, 4, size=16)

    def build(l2):
        regularizer = keras.regularizers.L2(l2) if l2 else None
        return keras.Sequential([keras.Input((8,)),
                                 keras.layers.Dense(6, activation="tanh", kernel_regularizer=regularizer,
                                                    name="hidden_1"),
                                 keras.layers.Dense(4, activation="softmax", name="output")])

    training.set_seed(seed)
    plain = build(0.0)
    penalised = build(strength)
    penalised.set_weights(plain.get_weights())
    return plain, penalised, x, y, build


def _step(model, optimizer, x, y) -> list[np.ndarray]:
    """One training step; the weights after it."""
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    return [np.asarray(w, dtype=np.float64) for w in model.get_weights()]


def sgd_step_check(strength: float = 0.05, learning_rate: float = 0.1, seed: int = 0,
                   penalty_gradient=None) -> dict:
    """Keras's L2 gradient and one SGD step against eq-generalization-l2 and -sgd-decay.

    Three copies of a small network take one SGD step on the same batch: with
    L2(λ) on the hidden kernel, without it, and without it but with SGD's
    decoupled ``weight_decay = 2λ`` on that kernel. Autodiff's penalty
    gradient is (w_plain⁺ − w_L2⁺)/η; ``penalty_gradient(w, λ)`` (default
    2λw, the display) is the candidate it is compared with.
    """
    penalty_gradient = penalty_gradient or (lambda weights, lam: 2 * lam * weights)
    plain, penalised, x, y, build = _tiny_models(strength, seed)
    start = [np.asarray(w, dtype=np.float64) for w in plain.get_weights()]
    decayed_model = build(0.0)
    decayed_model.set_weights(plain.get_weights())
    after_l2 = _step(penalised, keras.optimizers.SGD(learning_rate), x, y)
    after_plain = _step(plain, keras.optimizers.SGD(learning_rate), x, y)
    decay = keras.optimizers.SGD(learning_rate, weight_decay=2 * strength)
    decay.exclude_from_weight_decay(var_list=[v for v in decayed_model.trainable_variables
                                              if v is not decayed_model.layers[0].kernel])
    after_decay = _step(decayed_model, decay, x, y)
    autodiff = (after_plain[0] - after_l2[0]) / learning_rate
    scale = float(np.abs(autodiff).max())
    others = max(float(np.abs(a - b).max()) for a, b in zip(after_l2[1:], after_plain[1:]))
    return {
        "gradient_error": float(np.abs(autodiff - penalty_gradient(start[0], strength)).max()) / scale,
        "decay_error": max(float(np.abs(a - b).max()) for a, b in zip(after_l2, after_decay)),
        "untouched_error": others,
        "gradient_scale": scale,
        "strength": strength, "learning_rate": learning_rate,
    }


# Transcriptions of the displays, for numbers (or SymPy symbols): the tests
# check that they equal the expressions registered in analysis.symbolic.
# (Importing analysis.symbolic here would put every symbolic module into this
# chapter's cache key.)


def adam_l2_step(weight, gradient, learning_rate, strength, epsilon):
    """eq-generalization-adamw, first line: Adam's first step on g + 2λw."""
    penalised = gradient + 2 * strength * weight
    return weight - learning_rate * penalised / (abs(penalised) + epsilon)


def adamw_step(weight, gradient, learning_rate, decay, epsilon):
    """eq-generalization-adamw, second line: the decay, then Adam's first step on g."""
    return (1 - learning_rate * decay) * weight - learning_rate * gradient / (abs(gradient) + epsilon)


def dropout_variance(activation, rate):
    """eq-generalization-dropout: the variance p h²/(1 − p) of one dropped activation."""
    return rate * activation**2 / (1 - rate)


def adam_step_check(strength: float = 0.05, learning_rate: float = 0.01, seed: int = 0) -> dict:
    """One Keras Adam step with L2(λ) and one AdamW step with d = 2λ, against
    eq-generalization-adamw evaluated on autodiff's data gradient g.

    Keras folds Adam's bias correction into the rate, so its ε enters the
    first step as ε/√(1 − β₂); the formula is evaluated with that ε.
    """
    plain, penalised, x, y, _ = _tiny_models(strength, seed)
    start = np.asarray(plain.get_weights()[0], dtype=np.float64)
    plain.compile(loss="sparse_categorical_crossentropy")
    g = np.asarray(gradients.weight_gradients(plain, x, y)[0], dtype=np.float64)
    adam, adamw = keras.optimizers.Adam(learning_rate), keras.optimizers.AdamW(learning_rate,
                                                                               weight_decay=2 * strength)
    epsilon = adam.epsilon / np.sqrt(1 - adam.beta_2)
    adamw.exclude_from_weight_decay(var_list=[v for v in plain.trainable_variables
                                              if v is not plain.layers[0].kernel])
    after_l2 = _step(penalised, adam, x, y)[0]
    after_w = _step(plain, adamw, x, y)[0]
    expected = (adam_l2_step(start, g, learning_rate, strength, epsilon),
                adamw_step(start, g, learning_rate, 2 * strength, epsilon))
    return {
        "adam_l2_error": float(np.abs(after_l2 - expected[0]).max()),
        "adamw_error": float(np.abs(after_w - expected[1]).max()),
        "difference": float(np.abs(after_l2 - after_w).max()),
        "step_scale": float(np.abs(after_w - start).max()),
        "strength": strength, "learning_rate": learning_rate,
    }


def dropout_mean_check(rate: float = 0.5, units: int = 64, masks: int = 4000, seed: int = 0,
                       false_alarm: float = 1e-3, dropout=None) -> dict:
    """Keras's Dropout in training mode, averaged over many masks, against h.

    Each of ``masks`` rows of a batch gets its own mask. The mean of a unit
    over the rows has standard error √(Var/masks), with Var = p h²/(1 − p)
    from eq-generalization-dropout; the check passes when every unit's mean
    lies within z standard errors of h, with z chosen so that a correct layer
    fails with probability at most ``false_alarm`` over all ``units``
    (Bonferroni: z = Φ⁻¹(1 − false_alarm / (2 units))). ``dropout`` (a
    function of (inputs, rate, seed)) is the candidate; default Keras's layer.
    """
    if not 0 < rate < 1:
        raise ValueError(f"the dropout rate must lie strictly between 0 and 1, got {rate}")
    dropout = dropout or (lambda inputs, p, s: keras.layers.Dropout(p, seed=s)(inputs, training=True))
    activation = np.linspace(0.5, 2.0, units).astype(np.float32)
    outputs = np.asarray(keras.ops.convert_to_numpy(dropout(np.tile(activation, (masks, 1)), rate, seed)),
                         dtype=np.float64)
    standard_error = np.sqrt(dropout_variance(activation.astype(np.float64), rate) / masks)
    z = np.abs(outputs.mean(axis=0) - activation) / standard_error
    threshold = float(scipy_stats.norm.ppf(1 - false_alarm / (2 * units)))
    return {"max_z": float(z.max()), "threshold": threshold, "passed": bool(z.max() <= threshold),
            "false_alarm": false_alarm,
            "kept": float(np.mean(outputs != 0)), "rate": rate, "units": units, "masks": masks}


@experiment(config=lambda profile: {"strength": 0.05, "seed": 0, "rate": 0.5, "masks": 4000})
def keras_checks(run, config):
    """The chapter's formulas against Keras's layers and optimizers."""
    return {"sgd": sgd_step_check(config["strength"], seed=config["seed"]),
            "adam": adam_step_check(config["strength"], seed=config["seed"]),
            "dropout": dropout_mean_check(config["rate"], masks=config["masks"], seed=config["seed"])}
