"""The computing half of the study: data, training, caching, figures and tables.

Chapters call ``analysis.experiments.<chapter>.<experiment>(profile)`` and pass
the result to ``analysis.plots`` / ``analysis.tables``; see README.md.
"""

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


def import_tensorflow_quietly(any_backend: bool = False) -> None:
    """Import TensorFlow with the process's stderr closed for the moment.

    TensorFlow's C++ start-up lines (oneDNN, CUDA probing) bypass Python's
    logging and TF_CPP_MIN_LOG_LEVEL; a kernel forwards them into the page
    under the first cell that imports Keras, and the command line would print
    them before its own output. Importing here, with file descriptor 2 pointed
    at /dev/null for the moment, keeps both clean. Real errors later on still
    reach stderr. Called at import inside a Jupyter kernel, and by the command
    line before a command that trains.

    With ``any_backend`` TensorFlow is imported on JAX too: keras-tuner (its
    file I/O is ``tf.io.gfile``) and Keras's ``.h5`` saving import it whatever
    the backend, and a chapter that imports them would otherwise print the
    start-up lines under its first cell.
    """
    if "tensorflow" in sys.modules:
        return
    if not any_backend and os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")  # the CUDA probe logs too
            except ImportError:
                pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if "ipykernel" in sys.modules:
    import_tensorflow_quietly(any_backend=True)
