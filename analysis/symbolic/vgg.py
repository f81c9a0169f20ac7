"""Parameter counts of a convolutional and a dense layer (the VGG16 table).

A Conv2D layer with a k_h × k_w kernel from C_in to C_out channels holds a
kernel array (k_h, k_w, C_in, C_out) and a bias (C_out,); a Dense layer from
n to m units a kernel (n, m) and a bias (m,). The displayed counts are checked
against those array sizes; the chapter's table then evaluates them on every
layer of VGG16 and compares with what Keras counts.
"""

from __future__ import annotations

import functools

import sympy as sp

from analysis.symbolic.core import Equation, check, provides_equations

K_H, K_W = sp.symbols("k_h k_w", positive=True, integer=True)
C_IN, C_OUT = sp.symbols(r"C_{\mathrm{in}} C_{\mathrm{out}}", positive=True, integer=True)
N_IN, N_OUT = sp.symbols("n m", positive=True, integer=True)

#: The displayed counts.
CONV_PARAMETERS = (K_H * K_W * C_IN + 1) * C_OUT
DENSE_PARAMETERS = (N_IN + 1) * N_OUT


@provides_equations
@functools.lru_cache(maxsize=None)
def vgg_equations() -> tuple[Equation, ...]:
    return (
        Equation("eq-transfer-conv-parameters", "P_{\\mathrm{conv}} = <<count>>", {"count": CONV_PARAMETERS},
                 "The parameters of a Conv2D layer: kernel weights and one bias per output channel.",
                 check="conv-parameters"),
        Equation("eq-transfer-dense-parameters", "P_{\\mathrm{dense}} = <<count>>", {"count": DENSE_PARAMETERS},
                 "The parameters of a Dense layer: kernel weights and one bias per unit.",
                 check="dense-parameters"),
    )


def _size(*shapes) -> sp.Expr:
    return sum(sp.Mul(*shape) for shape in shapes)


@check("conv-parameters", "The count equals the size of a Conv2D layer's kernel (k_h, k_w, C_in, C_out) "
       "plus its bias (C_out), symbolically.")
def check_conv_parameters(count=None) -> bool:
    count = CONV_PARAMETERS if count is None else count
    return sp.expand(count - _size((K_H, K_W, C_IN, C_OUT), (C_OUT,))) == 0


@check("dense-parameters", "The count equals the size of a Dense layer's kernel (n, m) plus its bias (m), "
       "symbolically.")
def check_dense_parameters(count=None) -> bool:
    count = DENSE_PARAMETERS if count is None else count
    return sp.expand(count - _size((N_IN, N_OUT), (N_OUT,))) == 0


def conv_count(kernel_height: int, kernel_width: int, channels_in: int, channels_out: int) -> int:
    """The displayed Conv2D count evaluated on one layer."""
    return int(CONV_PARAMETERS.subs({K_H: kernel_height, K_W: kernel_width, C_IN: channels_in,
                                     C_OUT: channels_out}))


def dense_count(units_in: int, units_out: int) -> int:
    """The displayed Dense count evaluated on one layer."""
    return int(DENSE_PARAMETERS.subs({N_IN: units_in, N_OUT: units_out}))
