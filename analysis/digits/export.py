"""Saving the digit model as ``.keras`` and as legacy ``.h5``, and loading it safely.

The exercise this chapter answers asks for an ``.h5`` file; Keras 3 still
writes that legacy HDF5 format (``model.save("x.h5")``) but its own
``.keras`` format is the one it recommends: a zip of JSON configuration and
weights, loaded in *safe mode*, which refuses to deserialise code (a
``Lambda`` layer's pickled function) from a file someone else made.

Both files are written to a temporary name in the target directory and
renamed into place, so an interrupted export leaves no half-written model.
:func:`load` accepts only a Keras model that reads one 28 × 28 × 1 image and
returns 10 probabilities; anything else is a one-line :class:`UserError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from analysis.errors import UserError

#: The exported files' names inside the output directory.
KERAS_NAME, H5_NAME = "digit_cnn.keras", "digit_cnn.h5"

INPUT_SHAPE, CLASSES = (28, 28, 1), 10


@contextlib.contextmanager
def _quiet_legacy_format():
    """Keras's HDF5 reader and writer load TensorFlow's utilities even on the
    JAX backend, whose C++ start-up lines bypass Python and would land on
    stderr (under a chapter cell, or before the command line's output), and
    they log that the format is legacy; the .h5 file is asked for, so both are
    noise. File descriptor 2 points at /dev/null for the moment (as in
    :func:`analysis.import_tensorflow_quietly`); failures still raise."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        logger.setLevel(level)


def write_atomically(target: Path, write) -> None:
    """``write(scratch_path)`` into a temporary file next to ``target``, then
    rename it into place: a reader never sees half a file, and a failure
    leaves nothing behind."""
    target = Path(target)
    descriptor, scratch = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix,
                                           dir=target.parent)
    os.close(descriptor)
    try:
        write(scratch)
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def _save(model, scratch: str) -> None:
    with _quiet_legacy_format():
        model.save(scratch)


def export(model, directory) -> tuple[Path, Path]:
    """Write ``digit_cnn.keras`` and ``digit_cnn.h5`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / KERAS_NAME, directory / H5_NAME
    for path in paths:
        write_atomically(path, lambda scratch: _save(model, scratch))
    return paths


def check_path(path) -> Path:
    """A one-line error for a model path that cannot be a model, before Keras loads."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file; train one with "
                        "`python -m analysis digits train` or pass --model PATH")
    if path.suffix not in (".keras", ".h5"):
        raise UserError(f"{path}: a model file ends in .keras or .h5; "
                        "give the file `python -m analysis digits train` wrote")
    return path


def load(path):
    """The Keras model at ``path`` (``.keras`` in safe mode, or legacy ``.h5``),
    checked to read (28, 28, 1) images and return 10 probabilities."""
    import keras

    path = check_path(path)
    try:
        with _quiet_legacy_format():
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as problem:  # noqa: BLE001 - any failure means "not a model we can use"
        reason = " ".join(str(problem).split())[:160] or type(problem).__name__
        raise UserError(f"{path}: not a Keras model ({reason}); give a .keras or .h5 file "
                        "written by `python -m analysis digits train`") from None
    check_shapes(model, path)
    return model


def check_shapes(model, path) -> None:
    inputs = tuple(getattr(model, "input_shape", ()) or ())[1:]
    outputs = tuple(getattr(model, "output_shape", ()) or ())[1:]
    if inputs != INPUT_SHAPE or outputs != (CLASSES,):
        raise UserError(f"{path}: the model maps shape {inputs} to {outputs}; a digit model must map "
                        f"{INPUT_SHAPE} (one MNIST-style image) to ({CLASSES},) probabilities")
