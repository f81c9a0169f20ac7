"""The digit CNN and the augmentation it trains with.

The network is Keras's "Simple MNIST convnet" (keras-io examples, Chollet):
two 3 × 3 convolutions of 32 and 64 filters, each followed by 2 × 2 max
pooling, then dropout and a softmax layer: about 35,000 parameters, about
99% on MNIST's test set when trained on all of MNIST. It stays a plain stack
of standard layers, so the exported files load anywhere Keras runs.

The augmentation lives outside the model, in NumPy/SciPy, for the same
reason: it changes how digits are written, not how they are read. Each epoch
sees every training digit once, redrawn with a random small rotation, scale
and shift (how people's digits sit in MNIST's 20 × 20 box and 28 × 28 field
after the centring) and, for some digits, thicker or thinner strokes (pens
differ). :data:`AUGMENTATION` holds the ranges.
"""

from __future__ import annotations

import keras
import numpy as np
from scipy import ndimage

from analysis import training

#: The ranges each augmented digit is drawn from, uniformly.
AUGMENTATION = {
    "rotation_degrees": 12.0,    # ± this
    "scale": 0.12,               # 1 ± this
    "shift_pixels": 2.0,         # ± this, each axis
    "stroke_share": 0.3,         # this share thickened, as many thinned
}

BATCH_SIZE = 64


def build_model() -> keras.Model:
    """Keras's simple MNIST convnet: (28, 28, 1) in [0, 1] → 10 probabilities."""
    return keras.Sequential([
        keras.Input((28, 28, 1), name="digit"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv_1"),
        keras.layers.MaxPooling2D(2, name="pool_1"),
        keras.layers.Conv2D(64, 3, activation="relu", name="conv_2"),
        keras.layers.MaxPooling2D(2, name="pool_2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dropout(0.5, name="dropout"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ], name="digit_cnn")


def _affine(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate and scale about the centre, then shift (bilinear)."""
    angle = np.deg2rad(rng.uniform(-1, 1) * AUGMENTATION["rotation_degrees"])
    scale = 1 + rng.uniform(-1, 1) * AUGMENTATION["scale"]
    shift = rng.uniform(-1, 1, size=2) * AUGMENTATION["shift_pixels"]
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation / scale                     # output → input coordinates
    centre = np.array([13.5, 13.5])
    offset = centre - matrix @ (centre + shift)
    return ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant")


def _stroke(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicker (grey dilation) or thinner (grey erosion) strokes, or unchanged."""
    draw = rng.uniform()
    if draw < AUGMENTATION["stroke_share"]:
        return ndimage.grey_dilation(image, size=(2, 2))
    if draw < 2 * AUGMENTATION["stroke_share"]:
        return ndimage.grey_erosion(image, size=(2, 2))
    return image


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A redrawn copy of (N, 28, 28, 1) float images in [0, 1]."""
    out = np.empty_like(images)
    for index, image in enumerate(images[..., 0]):
        out[index, ..., 0] = _stroke(_affine(image, rng), rng)
    return np.clip(out, 0.0, 1.0)


def train(x_train, y_train, x_val, y_val, *, epochs: int, seed: int, augmented: bool = True,
          progress=lambda epochs: epochs) -> tuple[keras.Model, dict]:
    """Adam at Keras's default rate; each epoch on freshly augmented digits.

    The model ends with the weights of its best validation epoch (the test
    set chooses nothing). ``progress`` wraps the range of epochs (a bar).
    """
    training.set_seed(seed)
    model = build_model()
    training.compile_model(model, keras.optimizers.Adam())
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {}
    best, best_weights = -np.inf, model.get_weights()
    for _ in progress(range(epochs)):
        inputs = augment(x_train, rng) if augmented else x_train
        epoch = training.fit(model, inputs, y_train, epochs=1, batch_size=BATCH_SIZE,
                             validation_data=(x_val, y_val))
        for name, values in epoch.items():
            history.setdefault(name, []).extend(values)
        if history["val_accuracy"][-1] > best:   # strict: the earliest best epoch wins
            best, best_weights = history["val_accuracy"][-1], model.get_weights()
    model.set_weights(best_weights)
    return model, history


def predict(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities, (N, 10) float64, in inference mode."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    blocks = [keras.ops.convert_to_numpy(model(images[start:start + training.EVALUATION_BATCH_SIZE],
                                               training=False))
              for start in range(0, len(images), training.EVALUATION_BATCH_SIZE)]
    return np.concatenate(blocks).astype(np.float64) if blocks else np.zeros((0, 10))
