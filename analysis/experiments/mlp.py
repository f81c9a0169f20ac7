"""Experiments of the MLP chapter (chapters/mlp.qmd): optimizers and layer normalization.

The network is the one of the original assignment: Flatten → Dense(100, ReLU)
→ Dense(10, softmax) on MNIST scaled to [0, 1], sparse categorical
cross-entropy, batch size 32. The experiments:

* :data:`learning_rates` trains each optimizer at a few learning rates, once
  each, on a seed that the comparison does not use, and picks each
  optimizer's rate on validation accuracy (never on the test set);
* :data:`optimizers` trains the MLP over several seeds with Adam and AdaGrad
  at Keras's default rate (the assignment's setting) and at the tuned rates;
  within a seed every setting starts from the same initial weights and sees
  the same mini-batches, so the comparison is paired;
* :data:`layer_norm` trains two layer-normalized variants (input and hidden
  layer normalized, the hidden one before the ReLU as Ba et al. do, or after
  it as the assignment does) with the tuned optimizer that validated better,
  over the same seeds and from the same Dense weights;
* :data:`recompiled` reproduces the coursework's sequence: Adam, then the
  same model recompiled with AdaGrad (so AdaGrad continues from Adam's
  weights), validating on the test set, which is how the coursework came to
  find AdaGrad better;
* :data:`layer_norm_gradients` checks the backward formula of layer
  normalization (eq-layernorm-backward) against automatic differentiation of
  ``keras.layers.LayerNormalization``.

Every training run of the first three uses the same protocol
(:func:`train_one`, one independent run per seed and variant, run in
parallel processes by the runner): the validation set is carved from the training
images, training metrics are re-evaluated after each epoch
(``training.EvaluateOnTraining``), the weights of the epoch with the best
validation accuracy are restored at the end (``training.restore_best_weights``),
and only then is the test set used, once (the sweep never uses it).
"""

from __future__ import annotations

import inspect

import keras
import numpy as np

from analysis import data, gradients, models, profiles, scratch, training
from analysis.runner import experiment

#: Our names of the optimizers and how the book spells them.
OPTIMIZER_LABELS = {"adam": "Adam", "adagrad": "AdaGrad"}
OPTIMIZER_CLASSES = {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad}

#: The sweep's seed: outside every profile's comparison seeds (0, 1, ...), so
#: the rate is not chosen on the very runs it is then compared on.
SWEEP_SEED = 1000

#: Width of the hidden layer and batch size of the original assignment.
HIDDEN_UNITS = 100
BATCH_SIZE = 32

#: The layer-normalized variants: both normalize the flattened input and the
#: hidden layer; they differ only in where the hidden layer's normalization
#: sits. Ba et al. normalize the summed inputs, before the nonlinearity; the
#: assignment put LayerNormalization after Dense(100, ReLU).
LAYER_NORM_VARIANTS = {
    "layer_norm_before_relu": {"normalization": "layer", "normalize_input": True,
                               "placement": "before_activation"},
    "layer_norm_after_relu": {"normalization": "layer", "normalize_input": True,
                              "placement": "after_activation"},
}

#: How many training digits the chapter shows as samples.
SAMPLE_DIGITS = 20


# --------------------------------------------------------------------------
# Pieces of the training protocol


def build_model(variant: dict) -> keras.Model:
    """The chapter's MLP with the normalization a variant asks for."""
    if variant.get("placement") == "after_activation":
        return _mlp_normalized_after_activation(bool(variant.get("normalize_input", False)))
    return models.mlp([HIDDEN_UNITS], activation_name="relu",
                      normalization=variant.get("normalization"),
                      normalize_input=bool(variant.get("normalize_input", False)))


def _mlp_normalized_after_activation(normalize_input: bool) -> keras.Model:
    """The assignment's placement: LayerNormalization after Dense(100, ReLU).

    The Dense layers carry the names ``models.mlp`` gives them, so
    :func:`copy_dense_weights` can start this model from the same weights.
    """
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    if normalize_input:
        layers.append(keras.layers.LayerNormalization(name="input_norm"))
    layers += [keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden_1"),
               keras.layers.LayerNormalization(name="layer_norm_1"),
               keras.layers.Dense(10, activation="softmax", name="output")]
    return keras.Sequential(layers)


def make_optimizer(name: str, learning_rate: float | None = None):
    """A fresh Keras optimizer; ``learning_rate=None`` keeps Keras's default."""
    if name not in OPTIMIZER_CLASSES:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZER_CLASSES)}")
    options = {} if learning_rate is None else {"learning_rate": float(learning_rate)}
    return OPTIMIZER_CLASSES[name](**options)


def default_learning_rate(name: str) -> float:
    """Keras's default learning rate of an optimizer (the assignment used it)."""
    if name not in OPTIMIZER_CLASSES:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZER_CLASSES)}")
    # The constructor's default, exactly (the optimizer itself holds it in float32).
    return float(inspect.signature(OPTIMIZER_CLASSES[name]).parameters["learning_rate"].default)


def copy_dense_weights(source: keras.Model, target: keras.Model) -> None:
    """Give ``target`` the Dense kernels and biases of ``source``, layer by layer.

    Used to start every variant of a seed from the same Dense weights; the
    layer-norm gains and biases keep their initial values (ones and zeros).
    """
    source_layers, target_layers = models.dense_layers(source), models.dense_layers(target)
    if [l.name for l in source_layers] != [l.name for l in target_layers]:
        raise ValueError("the two models do not have the same Dense layers")
    for origin, destination in zip(source_layers, target_layers):
        destination.set_weights(origin.get_weights())


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Class probabilities in inference mode, block by block.

    Calling the model directly (rather than ``model.predict``) avoids
    building a new compiled predict function for every model we train.
    """
    blocks = [keras.ops.convert_to_numpy(model(x[start:start + training.EVALUATION_BATCH_SIZE],
                                               training=False))
              for start in range(0, len(x), training.EVALUATION_BATCH_SIZE)]
    return np.concatenate(blocks).astype(np.float32)


def _optimizer_settings(optimizer) -> dict:
    """The optimizer's hyper-parameters as Keras reports them (JSON values only; not its
    name, which Keras makes unique per process: ``adam``, ``adam_1``, ...)."""
    return {key: float(value) if isinstance(value, float) else value
            for key, value in optimizer.get_config().items()
            if key != "name" and (value is None or isinstance(value, (bool, int, float, str)))}


def _scores(history: dict, test: dict | None) -> dict:
    best = training.best_epoch(history, "val_accuracy")
    tested = {} if test is None else {"test_loss": test["loss"], "test_accuracy": test["accuracy"]}
    return {
        **tested,
        "best_epoch": best + 1,                     # counted from 1, as in the figures
        "best_val_accuracy": history["val_accuracy"][best],
        "best_val_loss": history["val_loss"][best],
        "final_train_loss": history["train_loss"][-1],
        "final_train_accuracy": history["train_accuracy"][-1],
    }


def variant_runs(config: dict, variants: dict[str, dict], use_test: bool = True) -> list[dict]:
    """Every (seed, variant) of the chapter's protocol as an independent run.

    ``variants`` maps a name to ``{"optimizer", "learning_rate",
    "normalization", "normalize_input", "placement"}`` (a missing
    ``learning_rate`` means Keras's default). A run holds everything it needs,
    so its cache key changes only with what changes its numbers, and a new
    seed trains only that seed. The sweep passes ``use_test=False``: choosing
    a setting must not look at the test set.
    """
    shared = {key: config[key] for key in ("epochs", "data", "split_seed", "batch_size")}
    return [{**shared, "seed": seed, "name": name, "variant": variant, "use_test": use_test,
             # The probability bars show the first seed only.
             "keep_probabilities": use_test and seed_index == 0}
            for seed_index, seed in enumerate(config["seeds"]) for name, variant in variants.items()]


def _split(run, item: dict):
    parts = data.split(run.data("mnist"), profiles.DataBudget(**item["data"]), seed=item["split_seed"])
    return parts, tuple(data.scale01(x) for x in (parts.x_train, parts.x_val, parts.x_test))


def train_one(run, item: dict) -> dict:
    """One seed of one variant, with the chapter's protocol.

    The plain MLP is built right after seeding, and the variant copies its
    Dense weights and is trained after re-seeding, so all variants of a seed
    share initial weights and mini-batch order (the comparison is paired),
    whichever process trains them. The test set is used once, on the
    restored best-epoch weights, and only when ``use_test``.
    """
    parts, (x_train, x_val, x_test) = _split(run, item)
    seed, variant = item["seed"], item["variant"]
    training.set_seed(seed)
    reference = build_model({})                # the initial Dense weights of this seed
    model = build_model(variant)
    copy_dense_weights(reference, model)
    training.compile_model(model, make_optimizer(variant["optimizer"], variant.get("learning_rate")))
    training.set_seed(seed)                    # the same shuffling for every variant
    history = training.fit(
        model, x_train, parts.y_train, epochs=item["epochs"], batch_size=item["batch_size"],
        validation_data=(x_val, parts.y_val),
        callbacks=[training.EvaluateOnTraining(x_train, parts.y_train),
                   training.restore_best_weights(item["epochs"]),
                   run.epoch_bar(f"{item['name']}, seed {seed}")],
    )
    test = training.evaluate(model, x_test, parts.y_test) if item["use_test"] else None
    output = {"history": history, "scores": _scores(history, test),
              "parameters": int(model.count_params()),
              "settings": _optimizer_settings(model.optimizer)}
    if item["use_test"]:
        probability = _predict(model, x_test)
        output["predictions"] = np.argmax(probability, axis=1).astype(np.int64)
        if item["keep_probabilities"]:
            output["probabilities"] = probability.astype(np.float32)
    return output


def assemble_variants(run, config: dict, variants: dict[str, dict], keep_images: bool = False,
                      use_test: bool = True) -> dict:
    """The runs of :func:`variant_runs`, gathered per variant in seed order.

    Returns the per-epoch histories and per-run scores; with ``use_test``
    also the test scores, test-set predictions (all seeds) and probabilities
    (first seed).
    """
    results = {(item["seed"], item["name"]): result
               for item, result in zip(variant_runs(config, variants, use_test), run.results)}
    seeds = list(config["seeds"])
    histories = {name: [results[seed, name]["history"] for seed in seeds] for name in variants}
    scores = {name: {key: [results[seed, name]["scores"][key] for seed in seeds]
                     for key in results[seeds[0], name]["scores"]} for name in variants}
    first = {name: results[seeds[0], name] for name in variants}
    parts, (x_train, _, _) = _split(run, config)
    output = {
        "variants": list(variants),
        "optimizers": {name: variant["optimizer"] for name, variant in variants.items()},
        # The rates as asked for (Keras reads them back rounded to float32).
        "learning_rates": {name: float(variant.get("learning_rate")
                                       or default_learning_rate(variant["optimizer"]))
                           for name, variant in variants.items()},
        "seeds": seeds,
        "histories": histories,
        "scores": scores,
        "parameters": {name: first[name]["parameters"] for name in variants},
        "optimizer_settings": {name: first[name]["settings"] for name in variants},
        "data": {
            **parts.sizes(),
            "image_shape": list(parts.x_train.shape[1:]),
            "classes": int(len(np.unique(parts.y_train))),
            "pixel_min": float(x_train.min()),
            "pixel_max": float(x_train.max()),
        },
    }
    if use_test:
        output.update(
            test_labels=parts.y_test.astype(np.int64),
            predictions=np.stack([np.stack([results[seed, name]["predictions"] for seed in seeds])
                                  for name in variants]),
            probabilities=np.stack([first[name]["probabilities"] for name in variants]))
    if keep_images:
        output["test_images"] = np.ascontiguousarray(parts.x_test)
        output["sample_images"] = np.ascontiguousarray(parts.x_train[:SAMPLE_DIGITS])
        output["sample_labels"] = parts.y_train[:SAMPLE_DIGITS].astype(np.int64)
    return output


def _training_config(profile) -> dict:
    """What every training experiment of the chapter shares (hashed into its key)."""
    return {
        "epochs": profile.mlp.epochs,
        "seeds": profile.seed_list(),
        "data": profile.mlp.mnist,
        "split_seed": 0,
        "batch_size": BATCH_SIZE,
        "hidden_units": HIDDEN_UNITS,
    }


# --------------------------------------------------------------------------
# Part 2: Adam against AdaGrad, at Keras's default rate and at tuned rates


def _sweep_config(profile) -> dict:
    budget = profile.mlp
    return {**_training_config(profile), "epochs": budget.sweep_epochs, "seeds": [SWEEP_SEED],
            "learning_rates": {"adam": list(budget.adam_learning_rates),
                               "adagrad": list(budget.adagrad_learning_rates)}}


def sweep_name(optimizer: str, learning_rate: float) -> str:
    return f"{optimizer}@{learning_rate:g}"


def best_rate(rates, accuracies) -> float:
    """The rate with the highest validation accuracy; a diverged (NaN) run never wins,
    and a tie goes to the rate listed first."""
    finite = [(-float(a), index) for index, a in enumerate(accuracies) if np.isfinite(a)]
    if not finite:
        raise ValueError("every run of the sweep diverged; no learning rate can be chosen")
    return float(rates[min(finite)[1]])


def sweep_variants(config: dict) -> dict[str, dict]:
    return {sweep_name(optimizer, rate): {"optimizer": optimizer, "learning_rate": rate}
            for optimizer, rates in config["learning_rates"].items() for rate in rates}


@experiment(datasets=("mnist",), config=_sweep_config, each=train_one,
            runs=lambda profile, config: variant_runs(config, sweep_variants(config), use_test=False))
def learning_rates(run, config):
    """Each optimizer at each rate, once, for the sweep's epochs; the rate is chosen
    on validation accuracy at the best epoch. The test set is not used."""
    output = assemble_variants(run, config, sweep_variants(config), use_test=False)
    chosen = {}
    for optimizer, rates in config["learning_rates"].items():
        accuracies = [output["scores"][sweep_name(optimizer, rate)]["best_val_accuracy"][0]
                      for rate in rates]
        chosen[optimizer] = best_rate(rates, accuracies)
    return {**output, "rates": config["learning_rates"], "chosen": chosen,
            "default_rates": {optimizer: default_learning_rate(optimizer)
                              for optimizer in config["learning_rates"]}}


def comparison_variants(chosen: dict[str, float]) -> tuple[dict[str, dict], dict[str, str]]:
    """Each optimizer at Keras's default rate and at its tuned rate.

    A tuned rate equal to the default is the same run (same seed, weights,
    batches), so it is trained once and both roles point to it. Returns the
    variants and, per optimizer, the name of its tuned variant.
    """
    variants, tuned = {}, {}
    for optimizer in OPTIMIZER_LABELS:
        default = default_learning_rate(optimizer)
        variants[optimizer] = {"optimizer": optimizer, "learning_rate": default}
        # Keras stores rates in float32 (0.001 reads back as 0.0010000000475).
        if np.isclose(chosen[optimizer], default, rtol=1e-6, atol=0.0):
            tuned[optimizer] = optimizer
        else:
            tuned[optimizer] = f"{optimizer}_tuned"
            variants[tuned[optimizer]] = {"optimizer": optimizer, "learning_rate": chosen[optimizer]}
    return variants, tuned


@experiment(datasets=("mnist",),
            config=lambda profile: {**_training_config(profile), "optimizers": list(OPTIMIZER_LABELS),
                                    # The tuned rates come from the sweep: a
                                    # dependency, so its key is part of ours.
                                    "learning_rates_key": learning_rates.key(profile)},
            each=train_one, runs=lambda profile, config: variant_runs(
                config, comparison_variants(learning_rates(profile)["chosen"])[0]))
def optimizers(run, config):
    """The plain MLP with each optimizer at its default and its tuned rate, over the seeds."""
    variants, tuned = comparison_variants(learning_rates(run.profile)["chosen"])
    output = assemble_variants(run, config, variants, keep_images=True)
    return {**output, "tuned": tuned,
            "defaults": {name: name for name in config["optimizers"]}}


# --------------------------------------------------------------------------
# Part 4: layer normalization, with the better tuned optimizer


def chosen_optimizer(optimizers_result) -> str:
    """The tuned variant with the higher mean best validation accuracy.

    The choice uses validation data only, so the test set stays untouched
    until each model's final evaluation. Diverged (NaN) runs count as the
    worst possible score.
    """
    scores = optimizers_result["scores"]
    candidates = list(optimizers_result["tuned"].values())

    def mean_validation(name):
        values = np.asarray(scores[name]["best_val_accuracy"], dtype=float)
        return float(np.mean(np.where(np.isfinite(values), values, -np.inf)))

    return max(candidates, key=mean_validation)


@experiment(datasets=("mnist",),
            config=lambda profile: {**_training_config(profile), "variants": LAYER_NORM_VARIANTS,
                                    # The optimizer comes from this result: a
                                    # dependency, so its key is part of ours.
                                    "optimizers_key": optimizers.key(profile)},
            each=train_one, runs=lambda profile, config: variant_runs(
                config, layer_norm_variants(optimizers(profile))[0]))
def layer_norm(run, config):
    """The layer-normalized MLPs, trained with the tuned optimizer that validated better."""
    variants, optimizer, plain = layer_norm_variants(optimizers(run.profile))
    return {**assemble_variants(run, config, variants), "optimizer": optimizer, "plain": plain}


def layer_norm_variants(optimizers_result) -> tuple[dict[str, dict], str, str]:
    """Both placements with the tuned optimizer (and rate) that validated better."""
    plain = chosen_optimizer(optimizers_result)
    optimizer = optimizers_result["optimizers"][plain]
    rate = optimizers_result["learning_rates"][plain]
    variants = {name: {"optimizer": optimizer, "learning_rate": rate, **placement}
                for name, placement in LAYER_NORM_VARIANTS.items()}
    return variants, optimizer, plain


# --------------------------------------------------------------------------
# The coursework's sequence: Adam, then the same model recompiled with AdaGrad


@experiment(datasets=("mnist",),
            config=lambda profile: {**_training_config(profile), "seeds": profile.seed_list()[:1]})
def recompiled(run, config):
    """Reproduce the coursework's mistake on one seed, to show what it measured.

    The model is trained with Adam, then ``compile``d again with AdaGrad and
    trained on: compiling does not reset weights, so "AdaGrad" starts from
    Adam's trained network. As in the coursework, the test set is passed as
    ``validation_data``, so every per-epoch "validation" score is a test score.
    Both phases use Keras's default rates and the profile's epochs.
    """
    dataset = run.data("mnist")
    parts = data.split(dataset, profiles.DataBudget(**config["data"]), seed=config["split_seed"])
    x_train, x_test = data.scale01(parts.x_train), data.scale01(parts.x_test)
    seed = config["seeds"][0]
    training.set_seed(seed)
    model = build_model({})
    phases = {}
    for optimizer in ("adam", "adagrad"):
        training.compile_model(model, make_optimizer(optimizer))   # the same model, recompiled
        phases[optimizer] = training.fit(
            model, x_train, parts.y_train, epochs=config["epochs"], batch_size=config["batch_size"],
            validation_data=(x_test, parts.y_test),                 # the coursework's mistake
            callbacks=[run.epoch_bar(f"recompiled, {optimizer}")])
    return {"phases": list(phases), "histories": phases, "seed": seed,
            "data": parts.sizes()}


# --------------------------------------------------------------------------
# The backward formula of layer normalization against automatic differentiation


def layer_norm_gradient_error(units: int = 100, examples: int = 8, seed: int = 0,
                              epsilon: float = 1e-3, backward=None) -> dict:
    """Compare a backward formula with autodiff of ``keras.layers.LayerNormalization``.

    Random inputs, gains, biases and upstream gradients; the formula
    (default: ``scratch.layer_norm_backward``, i.e. eq-layernorm-backward, in
    float64) against the vector-Jacobian product Keras's layer gives (in
    float32) with the same ε. Returns the largest absolute error and the
    largest error relative to the gradient's largest magnitude.
    """
    if units < 2 or examples < 1:
        raise ValueError("need at least 2 units and 1 example")
    backward = backward or scratch.layer_norm_backward
    generator = np.random.default_rng(seed)
    inputs = generator.normal(size=(examples, units)).astype(np.float32)
    gain = (1.0 + 0.5 * generator.normal(size=units)).astype(np.float32)
    bias = generator.normal(size=units).astype(np.float32)
    upstream = generator.normal(size=(examples, units)).astype(np.float32)

    layer = keras.layers.LayerNormalization(epsilon=epsilon)
    layer.build((None, units))
    layer.set_weights([gain, bias])
    automatic = gradients.input_gradient(layer, inputs, upstream)

    _, cache = scratch.layer_norm_forward(inputs.astype(np.float64), gain.astype(np.float64),
                                          bias.astype(np.float64), epsilon=epsilon)
    formula = backward(upstream.astype(np.float64), cache)
    formula = formula[0] if isinstance(formula, tuple) else formula
    difference = np.abs(np.asarray(formula) - automatic)
    return {
        "max_abs_error": float(difference.max()),
        "max_relative_error": float(difference.max() / np.abs(automatic).max()),
        "gradient_scale": float(np.abs(automatic).max()),
    }


@experiment(config=lambda profile: {"units": HIDDEN_UNITS, "examples": 8, "seed": 0, "epsilon": 1e-3})
def layer_norm_gradients(run, config):
    """eq-layernorm-backward against autodiff of Keras's LayerNormalization."""
    return {**layer_norm_gradient_error(**config), **config}
