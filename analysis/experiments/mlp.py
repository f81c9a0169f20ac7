"""Experiments of the MLP chapter (chapters/mlp.qmd): optimizers and layer normalization.

The network is the one of the original assignment: Flatten → Dense(100, ReLU)
→ Dense(10, softmax) on MNIST scaled to [0, 1], sparse categorical
cross-entropy, batch size 32. Three experiments:

* :data:`optimizers` trains it with Adam and with AdaGrad (Keras defaults)
  over several seeds; within a seed both start from the same initial weights
  and see the same mini-batches, so the optimizer is the only difference.
* :data:`layer_norm` trains the two layer-normalized variants (input and
  hidden layer, as in the assignment; hidden layer only) with the better
  optimizer of :data:`optimizers` (:func:`chosen_optimizer`), over the same
  seeds and from the same Dense weights. It depends on that result: its
  configuration holds the key of :data:`optimizers`, so it is recomputed
  whenever the optimizers' result would be.
* :data:`layer_norm_gradients` checks the backward formula of layer
  normalization (eq-layernorm-backward) against automatic differentiation of
  ``keras.layers.LayerNormalization``.

Every training run uses the same protocol (:func:`train_variants`): the
validation set is carved from the training images, training metrics are
re-evaluated after each epoch (``training.EvaluateOnTraining``), the weights
of the epoch with the best validation accuracy are restored at the end
(``training.restore_best_weights``), and only then is the test set used, once.
"""

from __future__ import annotations

import keras
import numpy as np

from analysis import data, gradients, models, profiles, scratch, training
from analysis.runner import experiment

#: Our names of the optimizers and how the book spells them.
OPTIMIZER_LABELS = {"adam": "Adam", "adagrad": "AdaGrad"}

#: Width of the hidden layer and batch size of the original assignment.
HIDDEN_UNITS = 100
BATCH_SIZE = 32

#: The layer-normalized variants: where LayerNormalization layers go.
LAYER_NORM_VARIANTS = {
    "layer_norm_input_hidden": {"normalization": "layer", "normalize_input": True},
    "layer_norm_hidden": {"normalization": "layer", "normalize_input": False},
}

#: How many training digits the chapter shows as samples.
SAMPLE_DIGITS = 20


# --------------------------------------------------------------------------
# Pieces of the training protocol


def build_model(variant: dict) -> keras.Model:
    """The chapter's MLP with the normalization a variant asks for."""
    return models.mlp([HIDDEN_UNITS], activation_name="relu",
                      normalization=variant.get("normalization"),
                      normalize_input=bool(variant.get("normalize_input", False)))


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


def _scores(history: dict, test: dict) -> dict:
    best = training.best_epoch(history, "val_accuracy")
    return {
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "best_epoch": best + 1,                     # counted from 1, as in the figures
        "best_val_accuracy": history["val_accuracy"][best],
        "best_val_loss": history["val_loss"][best],
        "final_train_loss": history["train_loss"][-1],
        "final_train_accuracy": history["train_accuracy"][-1],
    }


def train_variants(run, config: dict, variants: dict[str, dict], keep_images: bool = False) -> dict:
    """Train every variant for every seed with the chapter's protocol.

    ``variants`` maps a name to ``{"optimizer", "normalization",
    "normalize_input"}``. Within a seed, a plain MLP is built once right after
    seeding; every variant copies its Dense weights and is trained after
    re-seeding, so all variants of a seed share initial weights and
    mini-batch order. Returns the per-epoch histories, per-run scores,
    test-set predictions (all seeds) and probabilities (first seed).
    """
    dataset = run.data("mnist")
    parts = data.split(dataset, profiles.DataBudget(**config["data"]), seed=config["split_seed"])
    x_train, x_val, x_test = (data.scale01(x) for x in (parts.x_train, parts.x_val, parts.x_test))
    histories = {name: [] for name in variants}
    scores = {name: {} for name in variants}
    predictions = np.zeros((len(variants), len(config["seeds"]), len(parts.y_test)), dtype=np.int64)
    probabilities = np.zeros((len(variants), len(parts.y_test), 10), dtype=np.float32)
    parameters, settings = {}, {}
    for seed_index, seed in enumerate(run.progress(config["seeds"], "seeds")):
        training.set_seed(seed)
        reference = build_model({})            # the initial Dense weights of this seed
        for variant_index, (name, variant) in enumerate(variants.items()):
            model = build_model(variant)
            copy_dense_weights(reference, model)
            training.compile_model(model, variant["optimizer"])
            settings[name] = _optimizer_settings(model.optimizer)
            training.set_seed(seed)            # the same shuffling for every variant
            history = training.fit(
                model, x_train, parts.y_train, epochs=config["epochs"], batch_size=config["batch_size"],
                validation_data=(x_val, parts.y_val),
                callbacks=[training.EvaluateOnTraining(x_train, parts.y_train),
                           training.restore_best_weights(config["epochs"]),
                           run.epoch_bar(f"{name}, seed {seed}")],
            )
            # The test set is used here, once, on the restored best-epoch weights.
            test = training.evaluate(model, x_test, parts.y_test)
            histories[name].append(history)
            for key, value in _scores(history, test).items():
                scores[name].setdefault(key, []).append(value)
            probability = _predict(model, x_test)
            predictions[variant_index, seed_index] = np.argmax(probability, axis=1)
            if seed_index == 0:
                probabilities[variant_index] = probability
            parameters[name] = int(model.count_params())
    output = {
        "variants": list(variants),
        "optimizers": {name: variant["optimizer"] for name, variant in variants.items()},
        "seeds": list(config["seeds"]),
        "histories": histories,
        "scores": scores,
        "parameters": parameters,
        "optimizer_settings": settings,
        "data": {
            **parts.sizes(),
            "image_shape": list(parts.x_train.shape[1:]),
            "classes": int(len(np.unique(parts.y_train))),
            "pixel_min": float(x_train.min()),
            "pixel_max": float(x_train.max()),
        },
        "test_labels": parts.y_test.astype(np.int64),
        "predictions": predictions,
        "probabilities": probabilities,
    }
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
# Part 2: Adam against AdaGrad


@experiment(datasets=("mnist",),
            config=lambda profile: {**_training_config(profile), "optimizers": list(OPTIMIZER_LABELS)})
def optimizers(run, config):
    """The plain MLP trained with each optimizer (Keras defaults), over the seeds."""
    variants = {name: {"optimizer": name, "normalization": None, "normalize_input": False}
                for name in config["optimizers"]}
    return train_variants(run, config, variants, keep_images=True)


# --------------------------------------------------------------------------
# Part 4: layer normalization, with the better optimizer


def chosen_optimizer(optimizers_result) -> str:
    """The optimizer with the higher mean best validation accuracy.

    The choice uses validation data only, so the test set stays untouched
    until each model's final evaluation.
    """
    names = optimizers_result["variants"]
    scores = optimizers_result["scores"]
    return max(names, key=lambda name: float(np.mean(scores[name]["best_val_accuracy"])))


@experiment(datasets=("mnist",),
            config=lambda profile: {**_training_config(profile), "variants": LAYER_NORM_VARIANTS,
                                    # The optimizer comes from this result: a
                                    # dependency, so its key is part of ours.
                                    "optimizers_key": optimizers.key(profile)})
def layer_norm(run, config):
    """The two layer-normalized MLPs, trained with the better optimizer."""
    optimizer = chosen_optimizer(optimizers(run.profile))
    variants = {name: {"optimizer": optimizer, **placement}
                for name, placement in LAYER_NORM_VARIANTS.items()}
    return {**train_variants(run, config, variants), "optimizer": optimizer}


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
