"""The computing half of the study: data, training, caching, figures and tables.

Chapters call ``analysis.experiments.<chapter>.<experiment>(profile)`` and pass
the result to ``analysis.plots`` / ``analysis.tables``; see README.md.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys

from analysis import config as _config

# The book's Keras backend (JAX, measured faster; see config.default_backend),
# set before anything imports Keras; KERAS_BACKEND=tensorflow overrides it.
os.environ.setdefault("KERAS_BACKEND", _config.default_backend())

# On JAX every new model compiles its training and evaluation steps, which for
# the book's small networks costs more than training them. JAX's persistent
# compilation cache keeps the compiled programs on disk, keyed by the program
# and the JAX version, so an identical network (another seed, the next render,
# a test) skips the compiler; the results are the same. Every program is kept
# (our compilations are short but many), within 2 GB. Read by JAX at import.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_config.jax_compilation_cache_dir()))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024 ** 3))

# TensorFlow's C++ runtime logs to stderr; in a rendered book that would show
# up under cells. Keep only errors, and inside a Jupyter kernel (a render) not
# even its spurious "error" lines: real failures still raise in Python.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if "ipykernel" in sys.modules else "2")


def _one_line_user_errors(exc_type, exc, tb, _previous=sys.excepthook):
    """Show a UserError as the one line it is, not as a traceback.

    This matters for ``python -c "import analysis.profiles ..."`` and scripts;
    Jupyter kernels and the CLI handle errors themselves and never get here.
    """
    from analysis.errors import UserError

    if issubclass(exc_type, UserError):
        print(f"error: {exc}", file=sys.stderr)
    else:
        _previous(exc_type, exc, tb)


sys.excepthook = _one_line_user_errors


@contextlib.contextmanager
def _stderr_closed():
    """File descriptor 2 pointed at /dev/null for the moment (C++ logs included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, executing the package with stderr closed."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # resources, is_package, ...: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_closed():
            self.loader.exec_module(module)
            module.config.list_physical_devices("GPU")  # the CUDA probe logs too


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds nothing of its own: hands the first ``import tensorflow`` a quiet loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and not for the lookup just below
        spec = importlib.util.find_spec("tensorflow")
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_imports() -> None:
    """Whoever imports TensorFlow first in this process does so with stderr closed.

    TensorFlow's C++ start-up lines (oneDNN, CUDA probing) bypass Python's
    logging and TF_CPP_MIN_LOG_LEVEL; a kernel forwards them into the page
    under the cell that imported it, and a worker's stderr is the render's
    log. On JAX, keras-tuner (its file I/O is ``tf.io.gfile``) and Keras's
    ``.h5`` saving still import TensorFlow, but most chapters never do; so
    rather than import it up front (2.6 s a process here), this waits for
    the first import and closes file descriptor 2 around it. Real errors
    later on still reach stderr.
    """
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def import_tensorflow_quietly() -> None:
    """Import TensorFlow now, quietly, if it is the backend (the command line,
    before a command that trains); on another backend only arrange for a later
    import to be quiet (:func:`quiet_tensorflow_imports`)."""
    quiet_tensorflow_imports()
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        try:
            import tensorflow  # noqa: F401  (quiet: through the finder above)
        except ImportError:
            pass


if "ipykernel" in sys.modules:
    quiet_tensorflow_imports()
