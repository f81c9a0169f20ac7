"""Max and average pooling by hand, forward and backward (chapters/cnn.qmd).

The chapter's worked example pools a small integer matrix window by window;
these functions do the same in NumPy so that every step can be shown in a
table and compared with ``keras.layers.MaxPooling2D`` /
``AveragePooling2D`` (forward) and with automatic differentiation through
them (backward, eq-cnn-pool-backward). Padding is "valid", as in Keras's
pooling layers by default: windows that would cross the border are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.symbolic import output_size

KINDS = ("max", "average")


@dataclass(frozen=True)
class Window:
    """One window of a pooling pass: where it sits, what it holds, what it gives."""

    row: int              # output position
    column: int
    top: int              # input position of its upper-left entry
    left: int
    values: np.ndarray    # the k × k entries
    maximum: float
    mean: float
    argmax: tuple[int, int]   # input position of the (first) largest entry


def _check(matrix: np.ndarray, size: int, stride: int) -> None:
    if matrix.ndim != 2:
        raise ValueError(f"pooling by hand takes a 2-D matrix, got shape {matrix.shape}")
    if size < 1 or stride < 1 or size > min(matrix.shape):
        raise ValueError(f"a {size} × {size} window with stride {stride} does not fit a {matrix.shape} matrix")


def windows(matrix, size: int, stride: int | None = None) -> list[Window]:
    """Every window, row by row, as Keras's pooling visits them."""
    matrix = np.asarray(matrix, dtype=float)
    stride = size if stride is None else stride
    _check(matrix, size, stride)
    rows = output_size(matrix.shape[0], size, stride)
    columns = output_size(matrix.shape[1], size, stride)
    found = []
    for row in range(rows):
        for column in range(columns):
            top, left = row * stride, column * stride
            values = matrix[top:top + size, left:left + size]
            inside = np.unravel_index(int(np.argmax(values)), values.shape)
            found.append(Window(row, column, top, left, values.copy(), float(values.max()),
                                float(values.mean()), (top + int(inside[0]), left + int(inside[1]))))
    return found


def pool(matrix, size: int, stride: int | None = None, kind: str = "max") -> np.ndarray:
    """The pooled matrix, from :func:`windows`."""
    if kind not in KINDS:
        raise ValueError(f"unknown pooling {kind!r}; choose from {', '.join(KINDS)}")
    matrix = np.asarray(matrix, dtype=float)
    stride = size if stride is None else stride
    found = windows(matrix, size, stride)
    shape = (output_size(matrix.shape[0], size, stride), output_size(matrix.shape[1], size, stride))
    values = [w.maximum if kind == "max" else w.mean for w in found]
    return np.array(values).reshape(shape)


def backward(matrix, upstream, size: int, stride: int | None = None, kind: str = "max") -> np.ndarray:
    """∂L/∂x from ∂L/∂y by eq-cnn-pool-backward and the chain rule.

    Each window passes its upstream gradient back: max pooling all of it to
    the window's largest entry, average pooling 1/k² of it to every entry.
    Where windows overlap (stride < size) an entry collects the sum over the
    windows that hold it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown pooling {kind!r}; choose from {', '.join(KINDS)}")
    matrix = np.asarray(matrix, dtype=float)
    stride = size if stride is None else stride
    found = windows(matrix, size, stride)
    upstream = np.asarray(upstream, dtype=float)
    expected = (output_size(matrix.shape[0], size, stride), output_size(matrix.shape[1], size, stride))
    if upstream.shape != expected:
        raise ValueError(f"the upstream gradient has shape {upstream.shape}; pooling gives {expected}")
    gradient = np.zeros_like(matrix)
    for window in found:
        g = upstream[window.row, window.column]
        if kind == "max":
            gradient[window.argmax] += g
        else:
            gradient[window.top:window.top + size, window.left:window.left + size] += g / size**2
    return gradient
