"""Gradients by automatic differentiation: the one backend-specific module.

Keras 3 code is backend-neutral everywhere else, but taking a gradient outside
``fit`` needs the backend's own machinery: ``tf.GradientTape`` on TensorFlow,
``jax.grad`` on JAX, ``torch.autograd`` on PyTorch. Each public function below
has one small branch per backend and returns NumPy arrays.
"""

from __future__ import annotations

import contextlib
import inspect

import keras
import numpy as np


def _backend() -> str:
    return keras.backend.backend()


def _unsupported(name: str):
    return NotImplementedError(f"gradients are not implemented for the {name!r} backend")


@contextlib.contextmanager
def float64_precision():
    """A context in which float64 layers really compute in float64.

    TensorFlow and PyTorch honour ``dtype="float64"`` as they are. On JAX two
    things truncate 64-bit numbers to 32 bits, silently: JAX itself unless
    its ``jax_enable_x64`` option is on, and Keras's type promotion, which
    maps float64 to float32 on JAX whatever that option says (so ``tanh`` of
    a float64 tensor comes back float32; Keras 3.15). Either would make a
    float64 finite-difference check fail for reasons unrelated to the
    gradient. Both are switched only inside the context, since the book's
    float32 training needs neither. Build the model *inside* the context:
    variables take their dtype when they are created.
    """
    if _backend() != "jax":
        yield
        return
    import jax
    from keras.src.backend.common import dtypes

    # Keras's table of 64-to-32-bit dtypes, read by every promotion on JAX.
    table = dtypes.BIT64_TO_BIT32_DTYPE
    saved = dict(table)
    table.pop("float64", None)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        table.clear()
        table.update(saved)


def weight_gradients(model: keras.Model, x, y, loss=None, training: bool = False) -> list[np.ndarray]:
    """d loss / d w for each of ``model.trainable_weights`` (same order), on (x, y).

    The loss is the model's compiled loss if it has one, else sparse
    categorical cross-entropy, averaged over the batch. By default the forward
    pass runs in inference mode (``training=False``): dropout is off and batch
    norm uses its moving averages. ``training=True`` gives the gradient that a
    training step sees (batch norm normalises with the batch's statistics);
    the model's state (batch norm's moving averages) is left unchanged.
    """
    loss = loss or getattr(model, "loss", None) or "sparse_categorical_crossentropy"
    loss_fn = keras.losses.get(loss)
    x = np.asarray(x)
    y = np.asarray(y)
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with _state_kept(model):
            with tf.GradientTape() as tape:
                value = loss_fn(y, model(x, training=training))
                value = tf.reduce_mean(value)
            grads = tape.gradient(value, [w.value for w in model.trainable_weights])
        return [np.asarray(g) for g in grads]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [w.value for w in model.trainable_weights]
        frozen = [w.value for w in model.non_trainable_weights]

        # stateless_call returns the updated state instead of assigning it,
        # so nothing needs restoring on this backend.
        def objective(values):
            prediction, _ = model.stateless_call(values, frozen, x, **_inference(model, training))
            return jnp.mean(loss_fn(y, prediction))

        return [np.asarray(g) for g in jax.grad(objective)(trainable)]
    if backend == "torch":
        import torch

        for weight in model.trainable_weights:
            weight.value.grad = None
        with _state_kept(model):
            value = torch.mean(loss_fn(torch.as_tensor(y), model(x, training=training)))
            value.backward()
        return [w.value.grad.detach().cpu().numpy() for w in model.trainable_weights]
    raise _unsupported(backend)


def _inference(layer, training: bool = False) -> dict:
    """``training=`` for a layer's ``call``, where it takes one.

    ``layer(x, training=...)`` drops the argument for a layer whose ``call``
    has none (LayerNormalization, Dense on some versions), but
    ``stateless_call`` (the JAX branches) passes it on as it is.
    """
    accepts = "training" in inspect.signature(layer.call).parameters
    return {"training": training} if accepts else {}


class _state_kept:
    """Restore a model's non-trainable variables (batch norm's moving averages)
    on exit, so that a forward pass in training mode leaves no trace."""

    def __init__(self, model):
        self.variables = list(model.non_trainable_weights)

    def __enter__(self):
        self.saved = [keras.ops.convert_to_numpy(v.value) for v in self.variables]

    def __exit__(self, *exc_info):
        for variable, value in zip(self.variables, self.saved):
            variable.assign(value)
        return False


def input_gradient(layer, x, upstream) -> np.ndarray:
    """The vector-Jacobian product: d/dx of sum(layer(x) * upstream).

    This is what backpropagation passes down through ``layer`` when the
    gradient arriving at its output is ``upstream``.
    """
    # Work in the layer's own precision (float64 layers are used for checks).
    dtype = getattr(layer, "compute_dtype", None) or "float32"
    x = np.asarray(x, dtype=dtype)
    upstream = np.asarray(upstream, dtype=dtype)
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            value = tf.reduce_sum(layer(inputs, training=False) * upstream)
        return np.asarray(tape.gradient(value, inputs))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [w.value for w in layer.trainable_weights]
        frozen = [w.value for w in layer.non_trainable_weights]

        def objective(inputs):
            output, _ = layer.stateless_call(trainable, frozen, inputs, **_inference(layer))
            return jnp.sum(output * upstream)

        return np.asarray(jax.grad(objective)(jnp.asarray(x)))
    if backend == "torch":
        import torch

        inputs = torch.as_tensor(x).requires_grad_(True)
        value = torch.sum(layer(inputs, training=False) * torch.as_tensor(upstream))
        value.backward()
        return inputs.grad.detach().cpu().numpy()
    raise _unsupported(backend)


def max_abs_kernel_gradients(model: keras.Model, x, y, loss=None,
                             training: bool = False) -> dict[str, float]:
    """For each Dense/Conv layer, input side first: max |d loss / d kernel|.

    ``training`` is passed to :func:`weight_gradients`.
    """
    grads = weight_gradients(model, x, y, loss, training=training)
    by_weight = {id(w): g for w, g in zip(model.trainable_weights, grads)}
    result = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and id(kernel) in by_weight:
            result[layer.name] = float(np.max(np.abs(by_weight[id(kernel)])))
    return result


#: Layers that normalise a Dense layer's output before its activation; where
#: one follows a Dense layer, its offset β is the last bias before the activation.
_NORMALIZATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


def error_biases(model: keras.Model) -> dict:
    """For each Dense layer, input side first: the bias added last before its
    activation, as a variable.

    That bias is added to the pre-activation z of every example, so its
    gradient is the layer's error δ = ∂ℒ/∂z summed over the batch's loss
    terms (eq-bias-grad; for a mean loss, the batch mean of the per-example
    errors). It is the Dense layer's own bias, or, where a normalization layer
    follows a Dense layer without activation, that layer's offset β: batch
    normalization cancels the Dense bias (its gradient is zero), and layer
    normalization mixes it with the other units.
    """
    layers, found = list(model.layers), {}
    linear = keras.activations.get(None)
    for index, layer in enumerate(layers):
        if not isinstance(layer, keras.layers.Dense):
            continue
        following = layers[index + 1] if index + 1 < len(layers) else None
        beta = getattr(following, "beta", None)
        if isinstance(following, _NORMALIZATIONS) and beta is not None and layer.activation is linear:
            found[layer.name] = beta
        elif layer.bias is not None:
            found[layer.name] = layer.bias
        else:
            raise ValueError(f"layer {layer.name!r} has no bias whose gradient is its error")
    return found


def dense_gradient_maxima(model: keras.Model, x, y, loss=None,
                          training: bool = False) -> dict[str, list[float]]:
    """One backward pass; for each Dense layer, input side first:
    ``kernel``: max |∂ℒ/∂W|, and ``error``: max |∂ℒ/∂b| of its
    :func:`error_biases` bias, i.e. the largest entry of the error δ.

    ``training`` is passed to :func:`weight_gradients`.
    """
    grads = weight_gradients(model, x, y, loss, training=training)
    by_weight = {id(w): g for w, g in zip(model.trainable_weights, grads)}
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    biases = error_biases(model)
    return {
        "kernel": [float(np.max(np.abs(by_weight[id(layer.kernel)]))) for layer in dense],
        "error": [float(np.max(np.abs(by_weight[id(biases[layer.name])]))) for layer in dense],
    }
