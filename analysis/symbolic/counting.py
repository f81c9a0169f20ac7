"""Parameter counts of the MNIST chapter's network (eq-mlp-parameters).

Flatten → [LayerNormalization] → Dense(H) → [LayerNormalization] → ReLU →
Dense(K) on D inputs: the displayed count, checked against the total size of
the arrays each layer holds, for every placement of layer normalization.
"""

from __future__ import annotations

import functools
import itertools

import sympy as sp

from analysis.symbolic.core import Equation, check, provides_equations

D, H, K = sp.symbols("D H K", positive=True, integer=True)
NU_INPUT, NU_HIDDEN = sp.symbols(r"\nu_{\mathrm{in}} \nu_{\mathrm{h}}", nonnegative=True, integer=True)

#: The displayed count: ν_in, ν_h are 1 where the input, respectively the
#: hidden layer, is layer-normalized, else 0.
PARAMETER_COUNT = (D + 1) * H + (H + 1) * K + 2 * NU_INPUT * D + 2 * NU_HIDDEN * H


@provides_equations
@functools.lru_cache(maxsize=None)
def counting_equations() -> tuple[Equation, ...]:
    return (
        Equation(
            "eq-mlp-parameters",
            "P = <<count>>",
            {"count": PARAMETER_COUNT},
            "The number of parameters of the MNIST network, with or without layer normalization.",
            check="mlp-parameters",
        ),
    )


def _array_shapes(normalize_input: bool, normalize_hidden: bool) -> list[tuple]:
    """The arrays the layers hold, as Keras creates them: a Dense layer from n
    to m units a kernel (n, m) and a bias (m,), a LayerNormalization over n
    units a gamma (n,) and a beta (n,)."""
    shapes = []
    if normalize_input:
        shapes += [(D,), (D,)]
    shapes += [(D, H), (H,)]
    if normalize_hidden:
        shapes += [(H,), (H,)]
    shapes += [(H, K), (K,)]
    return shapes


@check(
    "mlp-parameters",
    "For each of the four placements of layer normalization, the count with ν_in, ν_h set to 0 or 1 equals the "
    "total size of the layers' arrays (Dense: kernel and bias; LayerNormalization: gain and bias), symbolically in D, H, K.",
)
def check_parameter_count(count=None) -> bool:
    count = PARAMETER_COUNT if count is None else count
    for normalize_input, normalize_hidden in itertools.product((False, True), repeat=2):
        arrays = sum(sp.Mul(*shape) for shape in _array_shapes(normalize_input, normalize_hidden))
        value = count.subs({NU_INPUT: int(normalize_input), NU_HIDDEN: int(normalize_hidden)})
        if sp.expand(value - arrays) != 0:
            return False
    return True
