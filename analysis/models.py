"""Model builders shared by the chapters (Keras 3, any backend).

One builder, :func:`mlp`, covers every fully connected network of the study:
the MNIST MLP of the optimizer chapter (one hidden layer, optional layer
normalization) and the deep networks of the depth chapter (5-40 hidden layers,
any activation, matched initialisation, batch or layer normalization).
:func:`small_cnn_features` is the convolutional part shared by the small
28 × 28 CNNs of the transfer chapter: the network pretrained and transferred
there and the judge of generated digits.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

#: LeCun et al. (1998), "Efficient BackProp": f(x) = 1.7159 tanh(2x/3) + 0.01 x.
LECUN_SCALE, LECUN_SLOPE, LECUN_LINEAR = 1.7159, 2.0 / 3.0, 0.01


@keras.saving.register_keras_serializable(package="nnstudy")
def lecun_tanh(x):
    """LeCun's scaled tanh with a small linear term (its derivative never vanishes)."""
    return LECUN_SCALE * ops.tanh(LECUN_SLOPE * x) + LECUN_LINEAR * x


ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "lecun": lecun_tanh}
NORMALIZATIONS = (None, "layer", "batch")


def activation(name: str):
    """A Keras activation by our name (``lecun`` is LeCun's scaled tanh)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}") from None


def mlp(hidden_units: Sequence[int], *, activation_name: str = "relu",
        input_shape=(28, 28, 1), classes: int = 10, kernel_initializer="glorot_uniform",
        normalization: str | None = None, normalize_input: bool = False,
        name: str | None = None) -> keras.Model:
    """Flatten → [Dense → (norm) → activation] × len(hidden_units) → Dense softmax.

    ``normalization`` ("layer" or "batch") is applied to each hidden layer's
    pre-activation; ``normalize_input`` adds a LayerNormalization on the
    flattened input, as in the original layer-norm assignment.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; choose from {NORMALIZATIONS}")
    act = activation(activation_name)
    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    if normalize_input:
        layers.append(keras.layers.LayerNormalization(name="input_norm"))
    for index, units in enumerate(hidden_units, start=1):
        if normalization is None:
            layers.append(keras.layers.Dense(units, activation=act,
                                             kernel_initializer=kernel_initializer,
                                             name=f"hidden_{index}"))
            continue
        layers.append(keras.layers.Dense(units, kernel_initializer=kernel_initializer,
                                         name=f"hidden_{index}"))
        norm = keras.layers.LayerNormalization if normalization == "layer" else keras.layers.BatchNormalization
        layers.append(norm(name=f"{normalization}_norm_{index}"))
        layers.append(keras.layers.Activation(act, name=f"activation_{index}"))
    layers.append(keras.layers.Dense(classes, activation="softmax", name="output"))
    return keras.Sequential(layers, name=name)


def small_cnn_features() -> list:
    """Conv(32, 3×3) → max-pool 2 → Conv(64, 3×3) → max-pool 2 → Flatten, as
    layers to put into a ``keras.Sequential`` after ``keras.Input((28, 28, 1))``.
    The convolutions are named ``conv_1`` and ``conv_2`` (fine-tuning unfreezes
    by name)."""
    layers = keras.layers
    return [layers.Conv2D(32, 3, activation="relu", name="conv_1"), layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", name="conv_2"), layers.MaxPooling2D(2),
            layers.Flatten()]


def dense_layers(model: keras.Model) -> list:
    """The model's Dense layers in order (input side first): hidden ones, then output."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
