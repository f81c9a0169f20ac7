"""The chapter's MNIST network and one training run, shared by every search.

Flatten → Dense(units, activation) [→ Dense(second, activation)] →
Dropout(rate) → Dense(10, output activation), trained with Adam. The grid
exercise's network has two hidden layers (128 and 100 units); the searches
vary one hidden layer's width.
"""

from __future__ import annotations

import keras
import numpy as np

from analysis import training

ACTIVATIONS = ("relu", "tanh", "sigmoid")
OUTPUT_ACTIVATIONS = ("softmax", "relu", "sigmoid")


def build(units: int = 64, dropout: float = 0.0, activation: str = "relu",
          output_activation: str = "softmax", learning_rate: float = 1e-3,
          second_units: int | None = None, flat: bool = False, loss: str = "sparse_categorical_crossentropy",
          ) -> keras.Model:
    """The network, compiled with Adam(learning_rate) and accuracy."""
    layers = [keras.Input((28 * 28,) if flat else (28, 28, 1))]
    if not flat:
        layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(int(units), activation=activation))
    if second_units:
        layers.append(keras.layers.Dense(int(second_units), activation=activation))
    layers.append(keras.layers.Dropout(float(dropout)))
    layers.append(keras.layers.Dense(10, activation=output_activation))
    model = keras.Sequential(layers)
    training.compile_model(model, keras.optimizers.Adam(float(learning_rate)), loss=loss)
    return model


def train_and_score(configuration: dict, parts, images, epochs: int, seed: int,
                    callbacks=(), use_test: bool = False) -> dict:
    """Train one configuration; validation accuracy (and test accuracy when
    the caller's protocol allows it: the test set is read only if ``use_test``)."""
    x_train, x_val, x_test = images
    training.set_seed(seed)
    model = build(units=configuration.get("units", 64), dropout=configuration.get("dropout", 0.0),
                  activation=configuration.get("activation", "relu"),
                  learning_rate=configuration.get("learning_rate", 1e-3))
    history = training.fit(model, x_train, parts.y_train, epochs=epochs,
                           batch_size=int(configuration.get("batch_size", 128)),
                           validation_data=(x_val, parts.y_val), callbacks=list(callbacks))
    scores = {"val_accuracy": float(history["val_accuracy"][-1]),
              "train_accuracy": float(history["accuracy"][-1])}
    if use_test:
        scores["test_accuracy"] = training.evaluate(model, x_test, parts.y_test)["accuracy"]
    scores["val_accuracy"] = scores["val_accuracy"] if np.isfinite(history["val_loss"][-1]) else float("nan")
    return scores
