"""The parameter count of a Dense layer (the VGG16 table).

A Dense layer from n to m units holds a kernel (n, m) and a bias (m,); the
displayed count is checked against those array sizes. A Conv2D layer's count
is the CNN chapter's (eq-cnn-conv-parameters,
:func:`analysis.symbolic.convolution.conv_parameters`): the transfer chapter's
table evaluates both on every layer of VGG16 and compares with what Keras
counts.
"""

from __future__ import annotations

import functools

import sympy as sp

from analysis.symbolic.core import Equation, check, provides_equations

N_IN, N_OUT = sp.symbols("n m", positive=True, integer=True)

#: The displayed count.
DENSE_PARAMETERS = (N_IN + 1) * N_OUT


@provides_equations
@functools.lru_cache(maxsize=None)
def vgg_equations() -> tuple[Equation, ...]:
    return (
        Equation("eq-transfer-dense-parameters", "P_{\\mathrm{dense}} = <<count>>", {"count": DENSE_PARAMETERS},
                 "The parameters of a Dense layer: kernel weights and one bias per unit.",
                 check="dense-parameters"),
    )


@check("dense-parameters", "The count equals the size of a Dense layer's kernel (n, m) plus its bias (m), "
       "symbolically.")
def check_dense_parameters(count=None) -> bool:
    count = DENSE_PARAMETERS if count is None else count
    arrays = N_IN * N_OUT + N_OUT
    return sp.expand(count - arrays) == 0


def dense_count(units_in: int, units_out: int) -> int:
    """The displayed Dense count evaluated on one layer."""
    return int(DENSE_PARAMETERS.subs({N_IN: units_in, N_OUT: units_out}))
