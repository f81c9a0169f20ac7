"""Convolution and pooling (chapters/cnn.qmd): output sizes, the parameter
count of a Conv2D layer, and the backward pass of max and average pooling.

Each display is checked against something it does not contain:

* the output size (eq-cnn-output-size, eq-cnn-same-size) against a count of
  the window positions that fit, by enumeration over many sizes, kernels,
  strides and paddings (for ``padding="same"`` with the padding Keras adds);
* the parameter count (eq-cnn-conv-parameters) against the total size of
  the arrays a Conv2D layer holds (kernel and bias), symbolically;
* the pooling derivatives (eq-cnn-pool-backward) against ``sympy.diff`` of a
  symbolic window's maximum and mean, at points with distinct entries.

:func:`output_size` and :func:`conv_parameters` evaluate the displayed
expressions themselves, so the tests that compare them with the shapes and
``count_params()`` Keras reports test the displays.
"""

from __future__ import annotations

import functools
import itertools
import random

import sympy as sp

from analysis.symbolic.core import Equation, check, provides_equations

# --- symbols ------------------------------------------------------------------

SIZE = sp.Symbol("n", positive=True, integer=True)          # input height or width
KERNEL = sp.Symbol("k", positive=True, integer=True)        # kernel (or pool) size
STRIDE = sp.Symbol("s", positive=True, integer=True)
PADDING = sp.Symbol("p", nonnegative=True, integer=True)    # zeros added on each side
OUTPUT = sp.Symbol("o", positive=True, integer=True)

KERNEL_HEIGHT, KERNEL_WIDTH = sp.symbols("k_h k_w", positive=True, integer=True)
CHANNELS_IN = sp.Symbol(r"c_{\mathrm{in}}", positive=True, integer=True)
CHANNELS_OUT = sp.Symbol(r"c_{\mathrm{out}}", positive=True, integer=True)

#: Pooling: the position j of an entry in a k × k window, the position j* of
#: the window's largest entry.
POSITION = sp.Symbol("j", positive=True, integer=True)
ARGMAX = sp.Symbol("j^{*}", positive=True, integer=True)

#: The displayed formulas.
OUTPUT_SIZE = sp.floor((SIZE + 2 * PADDING - KERNEL) / STRIDE) + 1
SAME_SIZE = sp.ceiling(SIZE / STRIDE)
CONV_PARAMETERS = CHANNELS_OUT * (KERNEL_HEIGHT * KERNEL_WIDTH * CHANNELS_IN + 1)
MAX_DERIVATIVE = sp.Piecewise((1, sp.Eq(POSITION, ARGMAX)), (0, True))
AVERAGE_DERIVATIVE = 1 / KERNEL**2

#: The ranges the enumeration checks cover.
_SIZES = range(1, 19)
_KERNELS = range(1, 6)
_STRIDES = range(1, 5)
_PADDINGS = range(0, 3)


@provides_equations
@functools.lru_cache(maxsize=None)
def convolution_equations() -> tuple[Equation, ...]:
    return (
        Equation(
            "eq-cnn-output-size",
            "o = <<size>>",
            {"size": OUTPUT_SIZE},
            "The output size of a convolution or pooling layer with p zeros on each side.",
            check="cnn-output-size",
        ),
        Equation(
            "eq-cnn-same-size",
            "o = <<size>>",
            {"size": SAME_SIZE},
            "The output size with Keras's padding=\"same\", whatever the kernel.",
            check="cnn-same-size",
        ),
        Equation(
            "eq-cnn-conv-parameters",
            "P = <<count>>",
            {"count": CONV_PARAMETERS},
            "The parameters of a Conv2D layer: one kernel per output channel, and a bias each.",
            check="cnn-conv-parameters",
        ),
        Equation(
            "eq-cnn-pool-backward",
            "\\frac{\\partial y_{\\max}}{\\partial x_{j}} = <<maximum>>, \\qquad "
            "\\frac{\\partial y_{\\mathrm{avg}}}{\\partial x_{j}} = <<average>>",
            {"maximum": MAX_DERIVATIVE, "average": AVERAGE_DERIVATIVE},
            "The derivative of a k × k window's maximum and mean with respect to its entry j.",
            check="cnn-pool-backward",
        ),
    )


# --- the formulas on numbers ----------------------------------------------------


def keras_same_padding(size: int, kernel: int, stride: int) -> int:
    """The zeros Keras (like TensorFlow) adds in total for ``padding="same"``:
    enough that ⌈n/s⌉ windows fit, split as evenly as possible (the extra one
    at the end)."""
    needed = (-(-size // stride) - 1) * stride + kernel - size
    return max(needed, 0)


def output_size(size: int, kernel: int, stride: int | None = None, padding: str | int = "valid") -> int:
    """The output size by the displayed formulas: ``padding`` is "valid" (no
    zeros), "same" (eq-cnn-same-size) or a number of zeros on each side."""
    stride = kernel if stride is None else stride
    if min(size, kernel, stride) < 1:
        raise ValueError(f"size, kernel and stride must be at least 1, got {size}, {kernel}, {stride}")
    if padding == "same":
        return int(SAME_SIZE.subs({SIZE: size, STRIDE: stride}))
    zeros = 0 if padding == "valid" else int(padding)
    if zeros < 0 or kernel > size + 2 * zeros:
        raise ValueError(f"a kernel of {kernel} does not fit an input of {size} with {zeros} zeros on each side")
    return int(OUTPUT_SIZE.subs({SIZE: size, KERNEL: kernel, STRIDE: stride, PADDING: zeros}))


def conv_parameters(kernel_height: int, kernel_width: int, channels_in: int, channels_out: int) -> int:
    """A Conv2D layer's parameter count by eq-cnn-conv-parameters."""
    return int(CONV_PARAMETERS.subs({KERNEL_HEIGHT: kernel_height, KERNEL_WIDTH: kernel_width,
                                     CHANNELS_IN: channels_in, CHANNELS_OUT: channels_out}))


def _fitting_windows(size: int, kernel: int, stride: int, total_padding: int) -> int:
    """How many windows start at 0, s, 2s, … and end inside the padded input."""
    return sum(1 for start in range(0, size + total_padding, stride) if start + kernel <= size + total_padding)


# --- the checks -------------------------------------------------------------------


def _integer(expression, values: dict):
    """The expression's value at ``values``; None where it is no number (a
    candidate with a symbol the display does not have fails the check)."""
    value = sp.sympify(expression).subs(values)
    return int(value) if value.is_number and value.is_integer else None


@check(
    "cnn-output-size",
    "For every input size 1–18, kernel 1–5, stride 1–4 and padding 0–2 where the kernel fits, the formula "
    "equals the number of window positions 0, s, 2s, … that fit inside the padded input.",
)
def check_output_size(size=None) -> bool:
    size = OUTPUT_SIZE if size is None else size
    for n, k, s, p in itertools.product(_SIZES, _KERNELS, _STRIDES, _PADDINGS):
        if k > n + 2 * p:
            continue
        value = _integer(size, {SIZE: n, KERNEL: k, STRIDE: s, PADDING: p})
        if value != _fitting_windows(n, k, s, 2 * p):
            return False
    return True


@check(
    "cnn-same-size",
    "For every input size 1–18, kernel 1–5 and stride 1–4, with the zeros Keras adds for padding=\"same\", "
    "the formula equals the number of window positions that fit.",
)
def check_same_size(size=None) -> bool:
    size = SAME_SIZE if size is None else size
    for n, k, s in itertools.product(_SIZES, _KERNELS, _STRIDES):
        value = _integer(size, {SIZE: n, KERNEL: k, STRIDE: s})
        if value != _fitting_windows(n, k, s, keras_same_padding(n, k, s)):
            return False
    return True


@check(
    "cnn-conv-parameters",
    "The count equals the total size of a Conv2D layer's arrays, a kernel (k_h, k_w, c_in, c_out) and a "
    "bias (c_out,), symbolically.",
)
def check_conv_parameters(count=None) -> bool:
    count = CONV_PARAMETERS if count is None else count
    arrays = KERNEL_HEIGHT * KERNEL_WIDTH * CHANNELS_IN * CHANNELS_OUT + CHANNELS_OUT
    return sp.expand(count - arrays) == 0


def _window_derivatives(kernel: int, point: dict) -> tuple[list, list]:
    """sympy.diff of the maximum and of the mean of a k × k window, at a point."""
    entries = [sp.Symbol(f"x_{j}", real=True) for j in range(1, kernel**2 + 1)]
    maximum, mean = sp.Max(*entries), sp.Add(*entries) / kernel**2
    values = {entry: point[j] for j, entry in enumerate(entries, start=1)}
    return ([sp.diff(maximum, entry).subs(values) for entry in entries],
            [sp.diff(mean, entry).subs(values) for entry in entries])


@check(
    "cnn-pool-backward",
    "For 2 × 2 and 3 × 3 windows, at three random points with distinct entries each, the displayed derivatives "
    "equal sympy.diff of the window's maximum and of its mean with respect to every entry.",
)
def check_pool_backward(maximum=None, average=None) -> bool:
    maximum = MAX_DERIVATIVE if maximum is None else maximum
    average = AVERAGE_DERIVATIVE if average is None else average
    generator = random.Random(0)
    for kernel in (2, 3):
        for _ in range(3):
            values = generator.sample(range(-50, 50), kernel**2)
            point = {j: sp.Rational(value, 7) for j, value in enumerate(values, start=1)}
            largest = max(point, key=point.get)
            of_max, of_mean = _window_derivatives(kernel, point)
            for j in range(1, kernel**2 + 1):
                shown_max = maximum.subs({POSITION: j, ARGMAX: largest, KERNEL: kernel})
                shown_mean = average.subs({POSITION: j, ARGMAX: largest, KERNEL: kernel})
                if sp.simplify(shown_max - of_max[j - 1]) != 0 or sp.simplify(shown_mean - of_mean[j - 1]) != 0:
                    return False
    return True
