"""The computing half of the study: data, training, caching, figures and tables.

Chapters call ``analysis.experiments.<chapter>.<experiment>(profile)`` and pass
the result to ``analysis.plots`` / ``analysis.tables``; see README.md.
"""

import os
import sys

# TensorFlow prints start-up chatter to stderr at import; in a rendered book
# that would show up under every cell, so keep only real errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
