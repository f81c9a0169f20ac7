"""A digit recognizer people can use (chapters/digits.qmd).

* :mod:`~analysis.digits.preprocess` -- a photo of one handwritten digit to an
  MNIST-style 28 × 28 image, the way MNIST itself was made;
* :mod:`~analysis.digits.model` -- the digit CNN and its handwriting
  augmentation;
* :mod:`~analysis.digits.export` -- ``.keras`` and legacy ``.h5`` export, and
  a reload that rejects anything but a 28 × 28 → 10-class Keras model;
* :mod:`~analysis.digits.photos` -- MNIST test digits turned into "photos"
  (the robustness set);
* :mod:`~analysis.digits.cli` -- ``python -m analysis digits train`` and
  ``python -m analysis predict-digit``.

Only ``model`` and ``export`` import Keras; the command line checks its
arguments with ``preprocess`` (Pillow, scikit-image) before a backend loads.
"""
