"""The computing half of the study: data, training, caching, figures and tables.

Chapters call ``analysis.experiments.<chapter>.<experiment>(profile)`` and pass
the result to ``analysis.plots`` / ``analysis.tables``; see README.md.
"""

import os

# TensorFlow prints start-up chatter to stderr at import; in a rendered book
# that would show up under every cell, so keep only real errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
