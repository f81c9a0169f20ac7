"""Where every dataset comes from: official origins and pinned checksums.

This module is the single registry of trust. A file is used only when one of
the digests pinned for it here matches, and the CIFAR-10 pickles are opened
only after that check (see :mod:`analysis.data.formats`).

Each key of :data:`PINS` is the file's canonical path inside the data
directory (``data/`` or ``NNSTUDY_DATA_DIR``); the same pin also checks the
file wherever else it turns up (the Keras cache, Debian's package).

Tests build tiny files whose digests are, of course, not the official ones.
The one sanctioned way to let such a file through is to patch this registry
for the duration of a test, for example::

    monkeypatch.setitem(registry.PINS, "mnist.npz",
                        registry.Pin(sha256=sha256_of_fake_file))

and, for a stand-in Fashion-MNIST directory, ``monkeypatch.setattr(registry,
"DEBIAN_FASHION_MNIST_DIR", path)``. Production code never writes to these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pin:
    """The digests that identify one official file; any one that is set must match.

    ``md5`` and ``sha256`` are digests of the file as published. For gzip files,
    ``content_sha256`` is the digest of the decompressed content: a file that
    was recompressed (Debian does that) still holds the official bytes.
    ``counts`` is ``(train, test)``: how many images the file holds, given only
    for formats whose header cannot tell without decoding (the CIFAR pickles).
    """

    origin: str | None = None
    md5: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None
    counts: tuple[int, int] | None = None

    def expected(self) -> str:
        """The pinned digests, for error messages."""
        parts = [
            f"{label} {value}"
            for label, value in (
                ("sha256", self.sha256),
                ("md5", self.md5),
                ("decompressed sha256", self.content_sha256),
            )
            if value
        ]
        return " or ".join(parts) or "no digest pinned"


# Keras hosts MNIST and Fashion-MNIST here (keras/src/datasets/*.py).
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SVHN_ORIGIN = "http://ufldl.stanford.edu/housenumbers/"

#: Debian's ``dataset-fashion-mnist`` package installs the four IDX files here.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Pinned digests, keyed by the file's canonical path inside the data directory.
PINS: dict[str, Pin] = {
    # MNIST in Keras's format; the sha256 is the one keras.datasets.mnist pins.
    "mnist.npz": Pin(
        origin=KERAS_ORIGIN + "mnist.npz",
        sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    ),
    # The original MNIST IDX files; md5s as published with them and as pinned
    # by torchvision (torchvision/datasets/mnist.py, MNIST.resources). We never
    # download these (fetch takes mnist.npz), so they carry no origin.
    "mnist/train-images-idx3-ubyte.gz": Pin(md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "mnist/train-labels-idx1-ubyte.gz": Pin(md5="d53e105ee54ea40749a09fcbcd1e9432"),
    "mnist/t10k-images-idx3-ubyte.gz": Pin(md5="9fb629c4189551a2d022fa330f9573f3"),
    "mnist/t10k-labels-idx1-ubyte.gz": Pin(md5="ec29112dd5afa0611ce80d1b7f02629c"),
    # Fashion-MNIST: md5s of the .gz files from the upstream README
    # (zalandoresearch/fashion-mnist, also in Debian's README.md.gz). Debian
    # recompressed the files, so their .gz digests differ; the decompressed
    # sha256s below were computed from Debian's files (dataset-fashion-mnist)
    # and identify the content whichever compression holds it.
    "fashion-mnist/train-images-idx3-ubyte.gz": Pin(
        origin=KERAS_ORIGIN + "train-images-idx3-ubyte.gz",
        md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        content_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "fashion-mnist/train-labels-idx1-ubyte.gz": Pin(
        origin=KERAS_ORIGIN + "train-labels-idx1-ubyte.gz",
        md5="25c81989df183df01b3e8a0aad5dffbe",
        content_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": Pin(
        origin=KERAS_ORIGIN + "t10k-images-idx3-ubyte.gz",
        md5="bef4ecab320f06d8554ea6380940ec79",
        content_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": Pin(
        origin=KERAS_ORIGIN + "t10k-labels-idx1-ubyte.gz",
        md5="bb300cfdad3c16e7a12a480ee83cd310",
        content_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
    # CIFAR-10: the archive's sha256 is the one keras.datasets.cifar10 pins; its
    # md5 and the per-file md5s of an extracted cifar-10-batches-py/ are the
    # ones published on https://www.cs.toronto.edu/~kriz/cifar.html and pinned
    # by torchvision (torchvision/datasets/cifar.py: tgz_md5, train_list,
    # test_list, meta).
    "cifar-10-python.tar.gz": Pin(
        origin=CIFAR10_ORIGIN,
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        md5="c58f30108f718f92721af3b95e74349a",
        counts=(50000, 10000),
    ),
    "cifar-10-batches-py/data_batch_1": Pin(md5="c99cafc152244af753f735de768cd75f", counts=(10000, 0)),
    "cifar-10-batches-py/data_batch_2": Pin(md5="d4bba439e000b95fd0a9bffe97cbabec", counts=(10000, 0)),
    "cifar-10-batches-py/data_batch_3": Pin(md5="54ebc095f3ab1f0389bbae665268c751", counts=(10000, 0)),
    "cifar-10-batches-py/data_batch_4": Pin(md5="634d18415352ddfa80567beed471001a", counts=(10000, 0)),
    "cifar-10-batches-py/data_batch_5": Pin(md5="482c414d41f54cd18b22e5b47cb7c3cb", counts=(10000, 0)),
    "cifar-10-batches-py/test_batch": Pin(md5="40351d587109b95175f43aff81a1287e", counts=(0, 10000)),
    "cifar-10-batches-py/batches.meta": Pin(md5="5ff9c542aee3614f3951f8cda6e48888", counts=(0, 0)),
    # SVHN, cropped digits (format 2), md5s as published with the dataset.
    "train_32x32.mat": Pin(origin=SVHN_ORIGIN + "train_32x32.mat", md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test_32x32.mat": Pin(origin=SVHN_ORIGIN + "test_32x32.mat", md5="eb5a983be6a315427106f1b164d9cef3"),
}

#: Pretrained weights and their companion files, pinned like datasets (the md5s
#: are the ``file_hash`` values Keras itself pins: keras/src/applications/vgg16.py
#: and imagenet_utils.py). Keys are the file names in the data directory and in
#: Keras's model cache (``~/.keras/models``).
KERAS_APPLICATIONS_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/"
MODEL_PINS: dict[str, Pin] = {
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5": Pin(
        origin=KERAS_APPLICATIONS_ORIGIN + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        md5="64373286793e3c8b2b4e3219cbf3544b",
    ),
    "imagenet_class_index.json": Pin(
        origin="https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json",
        md5="c2c37ea517e94d9795004a39431a14cb",
    ),
}
