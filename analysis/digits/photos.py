"""MNIST test digits made into "photos": the robustness set of the digits chapter.

A person's photo of a digit differs from an MNIST image in every way the
preprocessing (:mod:`analysis.digits.preprocess`) has to undo: dark ink on
light paper, a digit somewhere on a much larger picture, a little rotated,
light that falls unevenly across the page, sensor noise and a slightly
unsharp lens. :func:`make_photo` applies all of them, each with a random
strength drawn from :data:`RANGES`, to one clean MNIST digit; the label stays
the digit's, so accuracy on the photos can be set against accuracy on the
same digits clean.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: The photo's side in pixels: about seven times MNIST's field.
CANVAS = 192

#: Each effect's strength is drawn uniformly from its range, per photo.
RANGES = {
    "scale": (2.0, 4.0),          # digit size: 56-112 px tall, of 192
    "rotation_degrees": (-10.0, 10.0),
    "paper": (0.7, 0.95),         # the paper's brightness where it is lit best
    "shading": (0.1, 0.3),        # how much darker the far side of the page is
    "ink": (0.05, 0.3),           # the ink's brightness
    "blur_sigma": (0.5, 2.0),     # px of the photo
    "noise_sigma": (0.01, 0.05),  # on 0-1 grey levels
}


def _draw(rng: np.random.Generator, name: str) -> float:
    low, high = RANGES[name]
    return float(rng.uniform(low, high))


def _placed(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit (ink in [0, 1]) scaled, rotated and placed somewhere on the canvas."""
    scale = _draw(rng, "scale")
    angle = np.deg2rad(_draw(rng, "rotation_degrees"))
    half = 14 * scale                                   # half the scaled field
    centre = rng.uniform(half, CANVAS - half, size=2)   # the whole digit stays in the photo
    # affine_transform maps output (photo) coordinates to input (digit) ones:
    # undo the placement, the rotation and the scaling, in that order.
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation.T / scale
    offset = np.array([13.5, 13.5]) - matrix @ centre
    return ndimage.affine_transform(digit, matrix, offset=offset, output_shape=(CANVAS, CANVAS),
                                    order=1, mode="constant", cval=0.0)


def _paper(rng: np.random.Generator) -> np.ndarray:
    """Paper brightness with light falling off linearly in a random direction."""
    direction = rng.uniform(0, 2 * np.pi)
    rows, columns = np.mgrid[0:CANVAS, 0:CANVAS] / (CANVAS - 1)
    along = np.cos(direction) * rows + np.sin(direction) * columns
    along = (along - along.min()) / (along.max() - along.min())
    return _draw(rng, "paper") - _draw(rng, "shading") * along


def make_photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit (28 × 28, uint8 or [0, 1], light on dark) as a uint8 photo."""
    digit = np.asarray(digit, dtype=np.float64).reshape(28, 28)
    if digit.max() > 1:
        digit = digit / 255.0
    ink = _placed(digit, rng)
    paper = _paper(rng)
    photo = paper * (1 - ink) + _draw(rng, "ink") * ink
    photo = ndimage.gaussian_filter(photo, _draw(rng, "blur_sigma"))
    photo = photo + rng.normal(0.0, _draw(rng, "noise_sigma"), photo.shape)
    return np.round(np.clip(photo, 0.0, 1.0) * 255).astype(np.uint8)


def make_photos(digits: np.ndarray, seed: int) -> np.ndarray:
    """Photos of many digits, (N, CANVAS, CANVAS) uint8; the same seed, the same photos."""
    rng = np.random.default_rng(seed)
    return np.stack([make_photo(digit, rng) for digit in digits])
