"""A photo of one handwritten digit → a 28 × 28 image in MNIST's form.

MNIST's digits were made this way (LeCun et al.): the writer's strokes were
size-normalised to fit a 20 × 20 box keeping their aspect ratio (anti-aliasing
made the grey levels), then placed in a 28 × 28 field so that their centre of
mass lies at its centre. A classifier trained on MNIST expects exactly that,
so a photo has to be brought to the same form first:

1. greyscale in [0, 1] (transparent pixels count as white paper);
2. ink made bright on black: a photo has dark ink on light paper, MNIST the
   reverse, so an image whose border (the paper) is light is inverted;
   in a photo, light falling unevenly across the page is removed by
   subtracting a smooth (quadratic) surface fitted to the paper;
3. ink separated from paper by Otsu's threshold (scikit-image); specks far
   smaller than the digit's strokes are dropped;
4. cropped to the ink's bounding box, the paper level subtracted;
5. the longer side scaled to 20 px, keeping the aspect ratio;
6. padded to 28 × 28 and shifted so the centre of mass is at the centre.

:func:`read_image` raises a one-line :class:`UserError` for anything that is
not a readable image, :func:`to_mnist` for an image that holds no digit.
Neither imports Keras, so the command line checks every image first.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from analysis.errors import UserError

#: MNIST's geometry: the digit's longer side, the field, and where the centre
#: of mass goes: pixel (14, 14) counting from 0, half a pixel below and right
#: of the geometric centre (MNIST's own test digits average 14.01, 13.98).
BOX, FIELD = 20, 28
CENTRE = FIELD // 2

#: Photos are shrunk to this longer side before any processing: the digit ends
#: up 20 px tall, and a phone's 12-megapixel photo would only cost time.
WORKING_SIZE = 512

#: An image whose grey levels span less than this (on 0-1) holds no digit.
MIN_CONTRAST = 0.1

#: Paper pixels deviate from the fitted lighting by less than this many robust
#: standard deviations; brighter pixels (after inversion) are ink.
PAPER_TOLERANCE = 2.5

#: Images smaller than this (shorter side, px) are crops of a scan, like
#: MNIST's 28 × 28 or scikit-learn's 8 × 8: too little paper to fit the
#: lighting on, and none to correct.
MIN_PHOTO_SIDE = 32

#: Ink components smaller than this share of the largest one are noise.
MIN_COMPONENT_SHARE = 0.05


@dataclass(frozen=True)
class Steps:
    """Every intermediate image of :func:`to_mnist`, for figures and tests."""

    grey: np.ndarray          # the input, greyscale in [0, 1]
    inverted: bool            # True: dark ink on light paper, inverted
    ink: np.ndarray           # ink bright on black, lighting removed, full size
    threshold: float          # Otsu's threshold on ``ink``
    mask: np.ndarray          # the ink pixels kept (bool, full size)
    cropped: np.ndarray       # the ink's bounding box, paper level removed
    scaled: np.ndarray        # longer side BOX px
    digit: np.ndarray         # FIELD × FIELD, float32 in [0, 1], centred


def read_image(path) -> np.ndarray:
    """The image at ``path`` as greyscale float in [0, 1]; a one-line error otherwise.

    Pillow's decompression-bomb guard is made strict (its warning, from
    ``Image.MAX_IMAGE_PIXELS`` on, becomes the error), so a huge image is
    refused from its header, before any pixel is decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file; give the path of a PNG or JPEG photo of one digit")
    if not path.is_file():
        raise UserError(f"{path}: not a file; give the path of a PNG or JPEG photo of one digit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("RGB", (WORKING_SIZE, WORKING_SIZE))  # JPEG: decode at a reduced size
                image = ImageOps.exif_transpose(image)             # phone photos: upright
                image.thumbnail((WORKING_SIZE, WORKING_SIZE))
                grey = _on_white(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: the image is larger than Pillow's decompression-bomb limit of "
                        f"{Image.MAX_IMAGE_PIXELS:,} pixels; scale it down first") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read; give a PNG or JPEG photo of one digit") from None
    except (OSError, ValueError, SyntaxError) as problem:
        raise UserError(f"{path}: the image could not be decoded ({problem}); "
                        "save it again as PNG or JPEG") from None
    return grey


def _on_white(image) -> np.ndarray:
    """Greyscale in [0, 1]; transparent pixels are paper (white)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255.0)


def is_dark_on_light(grey: np.ndarray) -> bool:
    """True when the paper is lighter than the ink.

    The paper is what the border shows (a digit seldom touches all four
    edges): if the border's median is above the middle of the image's grey
    range, the ink is the dark part.
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    middle = (float(grey.min()) + float(grey.max())) / 2
    return float(np.median(border)) > middle


def lighting(ink: np.ndarray, rounds: int = 3, samples: int = 2048) -> np.ndarray:
    """The paper's brightness as a quadratic surface, fitted to the paper only.

    A least-squares fit to every pixel would be pulled up by the ink; so the
    fit is repeated on the pixels within :data:`PAPER_TOLERANCE` robust
    standard deviations (from the median absolute deviation) of the last
    fit. A plane would do for one lamp; the quadratic terms take vignetting.
    Six coefficients need no more than a regular grid of about ``samples``
    pixels to fit; the surface is then evaluated everywhere.
    """
    def terms(rows, columns):
        rows, columns = rows / ink.shape[0] - 0.5, columns / ink.shape[1] - 0.5
        return np.stack([np.ones_like(rows), rows, columns, rows * rows, rows * columns,
                         columns * columns], axis=-1).reshape(-1, 6)

    stride = max(1, int(np.sqrt(ink.size / samples)))
    rows, columns = np.indices(ink.shape, dtype=np.float64)
    sampled = terms(rows[::stride, ::stride], columns[::stride, ::stride])
    values = ink[::stride, ::stride].reshape(-1).astype(np.float64)
    paper = np.ones(values.shape, dtype=bool)
    for _ in range(rounds):
        kept = sampled[paper]   # normal equations: 6 × 6, well conditioned on centred coordinates
        coefficients = np.linalg.solve(kept.T @ kept, kept.T @ values[paper])
        residual = values - sampled @ coefficients
        middle = np.median(residual[paper])
        spread = 1.4826 * np.median(np.abs(residual[paper] - middle))
        paper = residual <= middle + max(PAPER_TOLERANCE * spread, 1e-6)
    return (terms(rows, columns) @ coefficients).reshape(ink.shape)


def ink_mask(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """Otsu's threshold on a lightly smoothed image, small specks removed."""
    from skimage import filters, measure

    # Smoothing over about 1% of the image keeps sensor noise from splitting
    # strokes or passing the threshold; at MNIST's or 8 × 8 scale it does nothing.
    smoothed = filters.gaussian(ink, sigma=min(ink.shape) / 100, preserve_range=True)
    threshold = float(filters.threshold_otsu(smoothed))
    labels = measure.label(smoothed > threshold)
    if labels.max() == 0:
        return np.zeros(ink.shape, dtype=bool), threshold
    areas = np.bincount(labels.ravel())[1:]
    kept = np.flatnonzero(areas >= MIN_COMPONENT_SHARE * areas.max()) + 1
    return np.isin(labels, kept), threshold


def _crop(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The bounding box of ``mask``: ink above the paper's level, scaled to [0, 1].

    The paper level is the median outside the mask, so uneven lighting and a
    grey paper do not turn into a grey background; the mask is widened by a
    pixel or two so the soft edges of the strokes (anti-aliasing, blur) stay.
    """
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    paper = float(np.median(ink[~mask])) if (~mask).any() else 0.0
    peak = float(np.percentile(ink[mask], 99))
    widened = ndimage.binary_dilation(mask, iterations=max(1, round(min(ink.shape) / 100)))
    level = np.clip((ink - paper) / max(peak - paper, 1e-6), 0.0, 1.0) * widened
    return level[box]


def _scale(cropped: np.ndarray) -> np.ndarray:
    """Longer side to BOX px, aspect ratio kept; peak ink back to 1."""
    from skimage.transform import resize

    height, width = cropped.shape
    factor = BOX / max(height, width)
    shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    scaled = resize(cropped, shape, order=1, anti_aliasing=factor < 1, preserve_range=True)
    peak = scaled.max()
    return scaled / peak if peak > 0 else scaled


def _centre(scaled: np.ndarray) -> np.ndarray:
    """Place in the field with the centre of mass at its centre (whole pixels,
    so no second blur; the box is kept inside the field)."""
    height, width = scaled.shape
    top, left = (FIELD - height) // 2, (FIELD - width) // 2
    mass_row, mass_column = ndimage.center_of_mass(scaled)
    top = int(np.clip(top + round(CENTRE - (top + mass_row)), 0, FIELD - height))
    left = int(np.clip(left + round(CENTRE - (left + mass_column)), 0, FIELD - width))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + height, left:left + width] = scaled
    return field


def steps(grey: np.ndarray, name: str = "image") -> Steps:
    """Every step of the pipeline; ``name`` goes into the error for a blank image."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 2:
        raise UserError(f"{name}: expected a 2-D greyscale image of at least 2 × 2 pixels, "
                        f"got shape {grey.shape}")
    contrast = float(grey.max() - grey.min())
    if contrast < MIN_CONTRAST:
        raise UserError(f"{name}: the image is blank (its grey levels span {contrast:.3f} of "
                        f"0-1, less than {MIN_CONTRAST}); photograph a dark digit on light paper")
    inverted = is_dark_on_light(grey)
    ink = (grey.max() - grey) if inverted else (grey - grey.min())
    ink = ink / contrast
    if min(ink.shape) >= MIN_PHOTO_SIDE:
        ink = np.clip(ink - lighting(ink), 0.0, None).astype(np.float32)
    mask, threshold = ink_mask(ink)
    if not mask.any():
        raise UserError(f"{name}: no ink found above Otsu's threshold; "
                        "photograph a dark digit on light paper")
    cropped = _crop(ink, mask)
    scaled = _scale(cropped)
    return Steps(grey, inverted, ink, threshold, mask, cropped, scaled, _centre(scaled))


def to_mnist(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """The 28 × 28 float32 digit in [0, 1], bright ink on black, as in MNIST."""
    return steps(grey, name).digit


def batch_to_mnist(images, name: str = "image") -> np.ndarray:
    """Many greyscale images → (N, 28, 28, 1) float32, ready for the model."""
    digits = [to_mnist(image, f"{name} {index}") for index, image in enumerate(images)]
    return np.stack(digits)[..., None]


def load(paths) -> list[tuple[Path, Steps]]:
    """Read and preprocess every file; the first bad one raises its one-line error."""
    return [(Path(path), steps(read_image(path), str(path))) for path in paths]
