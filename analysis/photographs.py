"""Photographs for VGG16: the ones installed packages ship, and the reader's own.

:func:`collect` lists real photographs that scikit-image's ``data`` module
and scikit-learn's sample images install (no download), plus every file in
the directory named by ``NNSTUDY_IMAGES``. Nothing here raises on bad input:
a missing directory or a file that is not an image becomes a *problem* (one
line), which the chapter names, and the rest goes on.

:func:`preprocessing_steps` is the original exercise's recipe for one image:
load it at 224 × 224, turn it into an array, add the batch axis and apply
``keras.applications.vgg16.preprocess_input``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.data import hashing

#: VGG16's input size.
SIZE = (224, 224)

#: (file name, title) of the photographs the packages install.
SKIMAGE_PHOTOS = (("chelsea.png", "cat (scikit-image)"), ("coffee.png", "coffee cup (scikit-image)"),
                  ("rocket.jpg", "rocket (scikit-image)"), ("astronaut.png", "astronaut (scikit-image)"))
SKLEARN_PHOTOS = (("china.jpg", "temple (scikit-learn)"), ("flower.jpg", "flower (scikit-learn)"))


@dataclass(frozen=True)
class Photo:
    title: str
    path: Path
    sha256: str

    def to_dict(self) -> dict:
        return {"title": self.title, "path": str(self.path), "sha256": self.sha256}


def package_photos() -> list[Photo]:
    import sklearn.datasets
    import skimage.data

    places = [(Path(skimage.data.data_dir), SKIMAGE_PHOTOS),
              (Path(sklearn.datasets.__file__).parent / "images", SKLEARN_PHOTOS)]
    return [Photo(title, directory / name, hashing.file_digests(directory / name).sha256)
            for directory, photos in places for name, title in photos if (directory / name).is_file()]


def is_image(path: Path) -> str | None:
    """None if Pillow can decode the file; otherwise why not, in a few words."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except Exception as error:  # truncated or corrupt files raise OSError, SyntaxError, ValueError...
        return f"unreadable image ({' '.join(str(error).split())})"
    return None


def user_photos() -> tuple[list[Photo], list[str]]:
    """The images in ``NNSTUDY_IMAGES`` and one line per problem (missing directory, non-image file)."""
    setting = os.environ.get("NNSTUDY_IMAGES", "").strip()
    if not setting:
        return [], []
    directory = Path(setting).expanduser()
    if not directory.is_dir():
        return [], [f"NNSTUDY_IMAGES={setting} is not a directory; point it to a folder of photographs"]
    photos, problems = [], []
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        problem = is_image(path)
        if problem:
            problems.append(f"skipped {path.name} in NNSTUDY_IMAGES: {problem}")
        else:
            photos.append(Photo(path.name, path, hashing.file_digests(path).sha256))
    return photos, problems


def collect() -> tuple[list[Photo], list[str]]:
    """The packages' photographs, then the reader's; and the problems met."""
    photos, problems = user_photos()
    return package_photos() + photos, problems


def preprocessing_steps(path: Path) -> dict:
    """Each step of the recipe on one image: the PIL image and three arrays."""
    import keras

    image = keras.utils.load_img(path, target_size=SIZE)        # RGB, resized (nearest neighbour)
    array = keras.utils.img_to_array(image)                       # (224, 224, 3) float32, 0..255
    batch = np.expand_dims(array, axis=0)                          # (1, 224, 224, 3)
    # preprocess_input changes a NumPy array in place: give it a copy.
    ready = keras.applications.vgg16.preprocess_input(batch.copy())  # BGR, ImageNet means subtracted
    return {"image": image, "array": array, "batch": batch, "ready": np.asarray(ready)}
