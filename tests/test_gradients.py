"""analysis.gradients: automatic differentiation checked against finite
differences (weights and each layer's error δ), the vanishing-gradient facts
the depth chapter relies on, and the TensorFlow and JAX branches against each
other (when JAX is installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from analysis import gradients, models, training
from analysis.config import PROJECT_ROOT

#: Step of the central differences; in float64 their error is ~1e-10 here.
STEP = 1e-6


@pytest.fixture
def float64():
    """The test's float64 models really compute in float64 (on JAX that needs
    x64 switched on, for this test only; see gradients.float64_precision)."""
    with gradients.float64_precision():
        yield


def tiny_network(seed: int = 0) -> keras.Model:
    """A float64 network 3 → 4 (tanh) → 3 (sigmoid) → 2 (softmax)."""
    training.set_seed(seed)
    return keras.Sequential([
        keras.Input((3,), dtype="float64"),
        keras.layers.Dense(4, activation="tanh", dtype="float64", name="first"),
        keras.layers.Dense(3, activation="sigmoid", dtype="float64", name="second"),
        keras.layers.Dense(2, activation="softmax", dtype="float64", name="output"),
    ])


def tiny_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(5, 3)), rng.integers(0, 2, size=5)


def mean_cross_entropy(model, x, y) -> float:
    """The loss, computed from the model's probabilities in NumPy (float64)."""
    probabilities = keras.ops.convert_to_numpy(model(x, training=False))
    return float(-np.mean(np.log(probabilities[np.arange(len(y)), y])))


def finite_differences(model, x, y) -> list[np.ndarray]:
    """Central differences of the loss for every entry of every trainable weight."""
    estimates = []
    for variable in model.trainable_weights:
        original = keras.ops.convert_to_numpy(variable.value).copy()
        estimate = np.zeros_like(original)
        for index in np.ndindex(original.shape):
            shifted = original.copy()
            shifted[index] = original[index] + STEP
            variable.assign(shifted)
            above = mean_cross_entropy(model, x, y)
            shifted[index] = original[index] - STEP
            variable.assign(shifted)
            below = mean_cross_entropy(model, x, y)
            estimate[index] = (above - below) / (2 * STEP)
        variable.assign(original)
        estimates.append(estimate)
    return estimates


def test_weight_gradients_equal_finite_differences(float64):
    model, (x, y) = tiny_network(), tiny_batch()
    analytic = gradients.weight_gradients(model, x, y)
    numeric = finite_differences(model, x, y)
    assert [g.shape for g in analytic] == [w.shape for w in model.trainable_weights]
    for exact, estimate in zip(analytic, numeric):
        assert exact.dtype == np.float64
        np.testing.assert_allclose(exact, estimate, rtol=1e-6, atol=1e-9)


def test_the_finite_difference_check_rejects_a_wrong_gradient(float64):
    """The tolerance above is tight enough to catch a 1% error or a swapped layer."""
    model, (x, y) = tiny_network(), tiny_batch()
    analytic = gradients.weight_gradients(model, x, y)
    numeric = finite_differences(model, x, y)
    kernel = 0  # the first layer's kernel
    assert np.abs(numeric[kernel]).max() > 1e-3
    assert not np.allclose(analytic[kernel] * 1.01, numeric[kernel], rtol=1e-6, atol=1e-9)
    other = gradients.weight_gradients(tiny_network(seed=1), x, y)
    assert not np.allclose(other[kernel], numeric[kernel], rtol=1e-6, atol=1e-9)


def test_max_abs_kernel_gradients_takes_each_dense_kernel_in_order(float64):
    model, (x, y) = tiny_network(), tiny_batch()
    maxima = gradients.max_abs_kernel_gradients(model, x, y)
    assert list(maxima) == ["first", "second", "output"]
    by_weight = dict(zip((id(w) for w in model.trainable_weights),
                         gradients.weight_gradients(model, x, y)))
    for layer in model.layers:
        assert maxima[layer.name] == pytest.approx(np.abs(by_weight[id(layer.kernel)]).max())


# --------------------------------------------------------------------------
# The error δ of each layer (the depth chapter's measurement)


def tiny_normalized_network(seed: int = 0) -> keras.Model:
    """A float64 network 3 → 4 (layer norm, tanh) → 3 (sigmoid) → 2 (softmax):
    the first layer's error bias is layer norm's β, the others' their own bias."""
    training.set_seed(seed)
    return keras.Sequential([
        keras.Input((3,), dtype="float64"),
        keras.layers.Dense(4, dtype="float64", name="first"),
        keras.layers.LayerNormalization(dtype="float64", name="norm"),
        keras.layers.Activation("tanh", dtype="float64", name="first_activation"),
        keras.layers.Dense(3, activation="sigmoid", dtype="float64", name="second"),
        keras.layers.Dense(2, activation="softmax", dtype="float64", name="output"),
    ])


def shifted_loss(model, x, y, target: str, unit: int, shift: float) -> float:
    """The mean cross-entropy with ``shift`` added to unit ``unit`` of the
    pre-activation (the activation's input) of Dense layer ``target``, for
    every example: computed layer by layer, independently of any bias."""
    layers = list(model.layers)
    value, pending = np.asarray(x, dtype="float64"), None

    def nudge(z):
        z = np.array(z, dtype="float64")
        z[:, unit] += shift
        return z

    for index, layer in enumerate(layers):
        if isinstance(layer, keras.layers.Dense):
            kernel = keras.ops.convert_to_numpy(layer.kernel.value)
            z = value @ kernel + keras.ops.convert_to_numpy(layer.bias.value)
            following = layers[index + 1] if index + 1 < len(layers) else None
            if isinstance(following, keras.layers.LayerNormalization):
                value, pending = z, layer.name       # the activation's input comes later
                continue
            z = nudge(z) if layer.name == target else z
            value = keras.ops.convert_to_numpy(layer.activation(z))
        else:
            value = keras.ops.convert_to_numpy(layer(value))
            if isinstance(layer, keras.layers.LayerNormalization) and pending == target:
                value = nudge(value)
    return float(-np.mean(np.log(value[np.arange(len(y)), y])))


def finite_difference_errors(model, x, y) -> dict[str, np.ndarray]:
    """Per Dense layer: d loss / d (shift of each pre-activation unit over the batch)."""
    found = {}
    for layer in models.dense_layers(model):
        found[layer.name] = np.array([
            (shifted_loss(model, x, y, layer.name, unit, STEP)
             - shifted_loss(model, x, y, layer.name, unit, -STEP)) / (2 * STEP)
            for unit in range(layer.units)])
    return found


@pytest.mark.parametrize("build", [tiny_network, tiny_normalized_network])
def test_the_error_measurement_equals_finite_differences(build, float64):
    """max |δ| of each layer, read from the error bias's gradient, is the
    largest derivative of the loss with respect to a shift of one unit of the
    activation's input (eq-bias-grad), on plain and layer-normalized layers."""
    model, (x, y) = build(), tiny_batch()
    assert shifted_loss(model, x, y, "first", 0, 0.0) == pytest.approx(
        mean_cross_entropy(model, x, y), rel=1e-12)
    measured = gradients.dense_gradient_maxima(model, x, y)
    numeric = finite_difference_errors(model, x, y)
    names = [layer.name for layer in models.dense_layers(model)]
    assert len(measured["error"]) == len(measured["kernel"]) == len(names)
    for value, name in zip(measured["error"], names):
        assert value == pytest.approx(np.abs(numeric[name]).max(), rel=1e-6, abs=1e-10)


def test_the_error_check_rejects_a_wrong_layer_or_the_wrong_bias(float64):
    """The comparison above fails for the neighbouring layer's error, and for
    the Dense bias behind a layer normalization (which is not δ)."""
    model, (x, y) = tiny_normalized_network(), tiny_batch()
    numeric = finite_difference_errors(model, x, y)
    measured = gradients.dense_gradient_maxima(model, x, y)["error"]
    assert measured[1] != pytest.approx(np.abs(numeric["first"]).max(), rel=1e-6)
    dense_bias = model.get_layer("first").bias
    by_weight = dict(zip((id(w) for w in model.trainable_weights),
                         gradients.weight_gradients(model, x, y)))
    wrong = np.abs(by_weight[id(dense_bias)]).max()
    assert wrong != pytest.approx(np.abs(numeric["first"]).max(), rel=1e-6)


def test_error_biases_follow_the_normalization():
    model = models.mlp([8, 8], activation_name="relu", input_shape=(4,), normalization="batch")
    def paths(found):
        return ["/".join(v.path.split("/")[-2:]) for v in found.values()]

    assert paths(gradients.error_biases(model)) == [
        "batch_norm_1/beta", "batch_norm_2/beta", "output/bias"]
    plain = models.mlp([8], activation_name="relu", input_shape=(4,))
    assert paths(gradients.error_biases(plain)) == ["hidden_1/bias", "output/bias"]


def test_input_gradient_is_the_vector_jacobian_product(float64):
    training.set_seed(0)
    layer = keras.layers.Dense(3, dtype="float64")
    rng = np.random.default_rng(1)
    x, upstream = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    layer.build((None, 5))
    kernel = keras.ops.convert_to_numpy(layer.kernel.value)
    np.testing.assert_allclose(gradients.input_gradient(layer, x, upstream), upstream @ kernel.T,
                               rtol=1e-12)


def test_training_mode_uses_batch_statistics_and_leaves_the_model_unchanged():
    training.set_seed(0)
    model = models.mlp([8, 8], activation_name="tanh", input_shape=(4,), normalization="batch")
    rng = np.random.default_rng(0)
    x, y = 3.0 + rng.normal(size=(16, 4)).astype("float32"), rng.integers(0, 10, 16)
    before = [keras.ops.convert_to_numpy(v.value).copy() for v in model.non_trainable_weights]
    in_training = gradients.weight_gradients(model, x, y, training=True)
    in_inference = gradients.weight_gradients(model, x, y, training=False)
    after = [keras.ops.convert_to_numpy(v.value) for v in model.non_trainable_weights]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert not np.allclose(in_training[0], in_inference[0])


def hidden_factors(activation_name: str, initializer: str, depth: int = 40, seed: int = 0):
    """Per-layer factors of max |δ| and of max |∂ℒ/∂W| over the hidden-to-hidden
    layers (2 to the last hidden) of an untrained network on random images."""
    training.set_seed(seed)
    model = models.mlp([32] * depth, activation_name=activation_name,
                       kernel_initializer=initializer)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(64, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, size=64)
    maxima = gradients.dense_gradient_maxima(model, x, y)
    assert len(maxima["error"]) == depth + 1  # the hidden layers, then the output layer
    return {name: (found[1] / found[-2]) ** (1 / (depth - 2)) for name, found in maxima.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_sigmoid_error_shrinks_by_about_its_largest_slope_per_layer(seed):
    factors = hidden_factors("sigmoid", "glorot_uniform", seed=seed)
    # sup sigmoid' = 1/4, and Glorot's weights keep the error's size otherwise.
    assert 0.15 < factors["error"] <= 0.25


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_with_glorot_loses_the_error_but_not_the_weight_gradient(seed):
    """Half the units block the error (δ shrinks by about 1/√2 per layer),
    while the weight gradient δ·aᵀ stays level: the forward signal shrinks
    by the same factor, and their product hides the loss of δ."""
    factors = hidden_factors("relu", "glorot_uniform", seed=seed)
    assert 0.6 < factors["error"] < 0.8
    assert 0.9 < factors["kernel"] < 1.1


@pytest.mark.parametrize("seed", [0, 1])
def test_relu_with_he_initialisation_keeps_the_error_through_forty_layers(seed):
    factors = hidden_factors("relu", "he_normal", seed=seed)
    assert 0.9 < factors["error"] < 1.1


# --------------------------------------------------------------------------
# TensorFlow against JAX on the same weights

#: Run in a fresh interpreter whose KERAS_BACKEND is the one under test: it
#: rebuilds the network, loads the weights from an .npz file and writes the
#: gradients to another.
OTHER_SIDE = textwrap.dedent('''
    import json, sys
    import numpy as np
    import keras
    from analysis import gradients, models

    spec = json.loads(sys.argv[1])
    if keras.backend.backend() != spec["backend"]:
        sys.exit(f"expected the {spec['backend']} backend, got {keras.backend.backend()}")
    stored = np.load(sys.argv[2], allow_pickle=False)
    model = models.mlp(spec["hidden_units"], activation_name=spec["activation"],
                       input_shape=tuple(spec["input_shape"]),
                       normalization=spec["normalization"])
    model.set_weights([stored[f"weight_{i}"] for i in range(spec["weights"])])
    result = gradients.weight_gradients(model, stored["x"], stored["y"],
                                        training=spec["training"])
    np.savez(sys.argv[3], **{f"gradient_{i}": g for i, g in enumerate(result)})
''')


def compare_with_backend(tmp_path, backend: str, activation: str, normalization):
    """Gradients here (this process's backend) and in a subprocess on
    ``backend``, from the same weights."""
    spec = {"backend": backend, "hidden_units": [16, 16, 16], "activation": activation,
            "input_shape": [6], "normalization": normalization, "training": True}
    training.set_seed(0)
    model = models.mlp(spec["hidden_units"], activation_name=activation, input_shape=(6,),
                       normalization=normalization)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 6)).astype("float32"), rng.integers(0, 10, size=8)
    weights = model.get_weights()
    spec["weights"] = len(weights)
    inputs, outputs = tmp_path / "weights.npz", tmp_path / "gradients.npz"
    np.savez(inputs, x=x, y=y, **{f"weight_{i}": w for i, w in enumerate(weights)})
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
                   "PYTHONPATH": path}
    completed = subprocess.run(
        [sys.executable, "-c", OTHER_SIDE, json.dumps(spec), str(inputs), str(outputs)],
        env=environment, cwd=str(PROJECT_ROOT), capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    expected = gradients.weight_gradients(model, x, y, training=True)
    with np.load(outputs, allow_pickle=False) as stored:
        received = [stored[f"gradient_{i}"] for i in range(len(expected))]
    assert len(received) == len(expected)
    for reference, other in zip(expected, received):
        np.testing.assert_allclose(other, reference, rtol=1e-4, atol=1e-6)


#: Each backend's counterpart: the test runs from either side.
OTHER_BACKEND = {"tensorflow": "jax", "jax": "tensorflow"}


@pytest.mark.skipif(any(importlib.util.find_spec(name) is None for name in ("jax", "tensorflow")),
                    reason="the JAX and TensorFlow branches of analysis.gradients are "
                           "compared only where both backends are installed")
@pytest.mark.parametrize("activation, normalization", [("sigmoid", None), ("lecun", "batch")])
def test_tensorflow_and_jax_gradients_agree(tmp_path, activation, normalization):
    if keras.backend.backend() not in OTHER_BACKEND:
        pytest.skip(f"compares TensorFlow with JAX, not {keras.backend.backend()}")
    compare_with_backend(tmp_path, OTHER_BACKEND[keras.backend.backend()], activation, normalization)


def test_the_comparison_harness_reproduces_gradients_across_processes(tmp_path):
    """The same harness with this backend on both sides: the weights survive
    the trip through the .npz file, so a mismatch between backends would be
    the backends'."""
    compare_with_backend(tmp_path, keras.backend.backend(), "lecun", "batch")


def test_float64_precision_is_switched_on_only_inside_its_context():
    """Inside, a float64 tanh stays float64 on every backend; outside, JAX's
    default (32 bits) is back, so the book's float32 training is untouched."""
    values = np.linspace(-1.0, 1.0, 5)

    def tanh_dtype():
        return keras.ops.convert_to_numpy(
            keras.ops.tanh(keras.ops.convert_to_tensor(values, dtype="float64"))).dtype

    with gradients.float64_precision():
        assert tanh_dtype() == np.float64
    assert tanh_dtype() == (np.float32 if keras.backend.backend() == "jax" else np.float64)


def numeric_input_gradient(layer, x, upstream) -> np.ndarray:
    """Central differences of sum(layer(x) * upstream) with respect to x."""
    def value(inputs):
        return float(np.sum(keras.ops.convert_to_numpy(layer(inputs)) * upstream))

    estimate = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        above, below = x.copy(), x.copy()
        above[index] += STEP
        below[index] -= STEP
        estimate[index] = (value(above) - value(below)) / (2 * STEP)
    return estimate


def test_input_gradient_of_a_layer_whose_call_takes_no_training_flag(float64):
    """LayerNormalization's call has no ``training`` argument, which JAX's
    stateless call would pass on (the MLP chapter's layer-norm check)."""
    training.set_seed(0)
    layer = keras.layers.LayerNormalization(epsilon=1e-3, dtype="float64")
    layer.build((None, 5))
    rng = np.random.default_rng(2)
    layer.set_weights([1.0 + 0.5 * rng.normal(size=5), rng.normal(size=5)])
    x, upstream = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    automatic = gradients.input_gradient(layer, x, upstream)
    numeric = numeric_input_gradient(layer, x, upstream)
    np.testing.assert_allclose(automatic, numeric, rtol=1e-6, atol=1e-9)
    assert not np.allclose(automatic, upstream, rtol=1e-6, atol=1e-9)  # not the identity
