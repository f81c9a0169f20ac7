"""What this computation runs on: package versions, Keras backend, device.

Every cached result records this (see :mod:`analysis.cache`) and the book's
front page shows it, so a reader can tell which machine produced a number.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import sys

#: Packages whose version can change a number the book reports.
NUMERIC_PACKAGES = (
    "numpy", "scipy", "keras", "tensorflow", "jax", "jaxlib", "torch",
    "scikit-learn", "keras-tuner",
)

#: Packages listed in the book's environment table.
REPORTED_PACKAGES = NUMERIC_PACKAGES + (
    "matplotlib", "seaborn", "sympy", "mlxtend", "tabulate", "nbclient", "ipykernel",
)


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(names=REPORTED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (packages that are absent are left out)."""
    found = {name: package_version(name) for name in names}
    return {"python": platform.python_version(), **{k: v for k, v in found.items() if v}}


def numeric_versions() -> dict[str, str]:
    """The versions that go into every cache key."""
    return versions(NUMERIC_PACKAGES)


def backend() -> str:
    """The Keras backend in use, read without importing Keras when possible."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def accelerator() -> str | None:
    """The GPU Keras's backend will use, or None on a CPU-only machine."""
    name = backend()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return details.get("device_name", gpus[0].name)
        elif name == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform != "cpu"]
            if gpus:
                return gpus[0].device_kind
        elif name == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception:  # a broken driver must not stop the book; report CPU
        return None
    return None


def device() -> str:
    """One line naming what trains: the GPU if there is one, else the CPU."""
    gpu = accelerator()
    cpus = os.cpu_count() or 1
    return f"GPU: {gpu}" if gpu else f"CPU: {cpu_model()} ({cpus} cores)"


def summary() -> dict:
    """Everything above, JSON-able, for provenance records."""
    return {
        "backend": backend(),
        "device": device(),
        "platform": platform.platform(),
        "versions": versions(),
    }
