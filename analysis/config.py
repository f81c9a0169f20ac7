"""Paths and environment variables, in one place (cookiecutter-data-science style).

Every other module asks this one where things live, so a newcomer finds each
location (and the variable that moves it) here and nowhere else.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: The project root: the directory holding ``_quarto.yml``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Static and generated figures.
FIGURES_DIR = PROJECT_ROOT / "figures"


def _path_from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Local data directory (``NNSTUDY_DATA_DIR``, default ``data/``)."""
    return _path_from_env("NNSTUDY_DATA_DIR", PROJECT_ROOT / "data")


def models_dir() -> Path:
    """Where ``python -m analysis digits train`` exports the digit model
    (``NNSTUDY_MODELS``, default ``models/``)."""
    return _path_from_env("NNSTUDY_MODELS", PROJECT_ROOT / "models")


def keras_datasets_dir() -> Path:
    """Keras's dataset cache (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``)."""
    keras_home = os.environ.get("KERAS_HOME", "").strip()
    base = Path(keras_home).expanduser() if keras_home else Path.home() / ".keras"
    return base / "datasets"


def jax_compilation_cache_dir() -> Path:
    """JAX's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``, JAX's
    own variable; default ``.jax-cache/``)."""
    return _path_from_env("JAX_COMPILATION_CACHE_DIR", PROJECT_ROOT / ".jax-cache")


def cache_dir() -> Path:
    """Result cache (``NNSTUDY_CACHE``, default ``.nnstudy-cache/``)."""
    return _path_from_env("NNSTUDY_CACHE", PROJECT_ROOT / ".nnstudy-cache")


def default_backend() -> str:
    """The Keras backend the book trains with unless ``KERAS_BACKEND`` says otherwise.

    JAX: on a CPU it trained the MNIST MLP several times as fast as TensorFlow at
    equal math (``python benchmarks/fit_speed.py``), and the lent GPU machines
    have JAX and no TensorFlow. TensorFlow where JAX is not installed.
    """
    return "jax" if importlib.util.find_spec("jax") is not None else "tensorflow"
