"""Layer normalization (Ba, Kiros & Hinton, 2016): the forward pass over the
H units of one example (definitions) and its backward pass (checked against
the exact vector-Jacobian product from ``sympy.diff``)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import sympy as sp

from analysis.errors import UserError
from analysis.symbolic.core import (
    Equation,
    Mean,
    check,
    instantiate,
    provides_equations,
    run_check,
    safely,
    zero_expression,
)

_H = sp.Symbol("H", integer=True, positive=True)
_I = sp.Symbol("i", integer=True, positive=True)
_ACTIVATIONS = sp.IndexedBase("a")
_NORMALIZED = sp.IndexedBase(r"\hat{x}")
MU = sp.Symbol(r"\mu", real=True)
SIGMA = sp.Symbol(r"\sigma", positive=True)
EPSILON = sp.Symbol(r"\epsilon", positive=True)

A_VECTOR = sp.MatrixSymbol(r"\mathbf{a}", _H, 1)
X_HAT = sp.MatrixSymbol(r"\hat{\mathbf{x}}", _H, 1)
GAIN = sp.MatrixSymbol(r"\mathbf{g}", _H, 1)
BIAS = sp.MatrixSymbol(r"\mathbf{b}", _H, 1)
OUTPUT = sp.MatrixSymbol(r"\mathbf{y}", _H, 1)
G_HAT = sp.MatrixSymbol(r"\hat{\mathbf{g}}", _H, 1)
UPSTREAM = sp.MatrixSymbol(r"\frac{\partial L}{\partial \mathbf{y}}", _H, 1)
INPUT_GRADIENT = sp.MatrixSymbol(r"\frac{\partial L}{\partial \mathbf{a}}", _H, 1)
ONES = sp.OneMatrix(_H, 1)


def _mean_of(term):
    return sp.Mul(1 / _H, sp.Sum(term, (_I, 1, _H)), evaluate=False)


def _deviation():
    return sp.Add(_ACTIVATIONS[_I], -MU, evaluate=False)


BACKWARD = sp.MatMul(
    1 / SIGMA,
    sp.MatAdd(
        G_HAT,
        -Mean(G_HAT) * ONES,
        -Mean(sp.HadamardProduct(G_HAT, X_HAT, evaluate=False)) * X_HAT,
        evaluate=False,
    ),
    evaluate=False,
)


@provides_equations
@functools.lru_cache(maxsize=None)
def layernorm_equations() -> tuple[Equation, ...]:
    """eq-layernorm-mean, -std, -normalize, -affine (definitions) and
    eq-layernorm-backward (checked)."""
    return (
        Equation(
            "eq-layernorm-mean",
            "<<mean>>",
            {"mean": sp.Eq(MU, _mean_of(_ACTIVATIONS[_I]), evaluate=False)},
            "The mean over the H units of one example.",
        ),
        Equation(
            "eq-layernorm-std",
            "<<std>>",
            {"std": sp.Eq(SIGMA, sp.sqrt(sp.Add(_mean_of(_deviation() ** 2), EPSILON, evaluate=False)),
                          evaluate=False)},
            "The standard deviation over the units (population variance) with a small ε.",
            settings={"order": "none"},
        ),
        Equation(
            "eq-layernorm-normalize",
            "<<normalize>>",
            {"normalize": sp.Eq(_NORMALIZED[_I], sp.Mul(_deviation(), 1 / SIGMA, evaluate=False), evaluate=False)},
            "The normalized activations: mean 0 and, up to ε, variance 1 in every example.",
            settings={"order": "none"},
        ),
        Equation(
            "eq-layernorm-affine",
            "<<affine>>",
            {"affine": sp.Eq(OUTPUT, sp.MatAdd(sp.HadamardProduct(GAIN, X_HAT, evaluate=False), BIAS,
                                                 evaluate=False), evaluate=False)},
            "A learned gain and bias per unit.",
        ),
        Equation(
            "eq-layernorm-backward",
            "\\begin{aligned}\n<<gradient>> &= <<backward>>, \\\\\n<<scaled>> &= <<scaling>>\n\\end{aligned}",
            {
                "gradient": INPUT_GRADIENT,
                "backward": BACKWARD,
                "scaled": G_HAT,
                "scaling": sp.HadamardProduct(GAIN, UPSTREAM, evaluate=False),
            },
            "The backward pass to the layer's input; the means run over the H units.",
            check="layernorm-backward",
        ),
    )


def _part(label, name):
    return next(item for item in layernorm_equations() if item.label == label)[name]


class _LayerNormSymbols(NamedTuple):
    inputs: tuple
    gains: tuple
    biases: tuple
    upstream: tuple
    epsilon: sp.Symbol
    mean: sp.Expr
    sigma: sp.Expr
    normalized: list
    outputs: list


def _indexed(expression, units, values):
    """A definition with an index i, at ``units`` units: Sums expanded and
    the indexed symbols replaced by ``values[base][i - 1]``."""
    expression = expression.subs(_H, units).doit()
    return expression.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base in values,
        lambda e: values[e.base][int(e.indices[0]) - 1],
    )


def _layernorm_symbols(units: int, normalize=None) -> _LayerNormSymbols:
    """A symbolic layer of ``units`` units: inputs a_i, gains g_i, biases
    b_i, upstream gradients dy_i = ∂L/∂y_i and ε > 0, run through the
    registered forward pass (``normalize`` replaces the right side of
    eq-layernorm-normalize)."""
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 2:
        raise UserError(f"a layer-norm check needs at least 2 units, got {units!r}")
    symbols = lambda stem: sp.symbols(f"{stem}1:{units + 1}", real=True)  # noqa: E731
    inputs, gains, biases, upstream = (symbols(s) for s in ("a", "g", "b", "dy"))
    epsilon = sp.Symbol("epsilon", positive=True)
    values = {_ACTIVATIONS: inputs}
    mean = _indexed(_part("eq-layernorm-mean", "mean").rhs, units, values)
    sigma = _indexed(_part("eq-layernorm-std", "std").rhs, units, values).subs({MU: mean, EPSILON: epsilon})
    normalize = _part("eq-layernorm-normalize", "normalize").rhs if normalize is None else normalize
    normalized = [
        normalize.subs(_I, i).replace(
            lambda e: isinstance(e, sp.Indexed), lambda e: inputs[int(e.indices[0]) - 1]
        ).subs({MU: mean, SIGMA: sigma})
        for i in range(1, units + 1)
    ]
    outputs = list(
        instantiate(
            _part("eq-layernorm-affine", "affine").rhs,
            {GAIN: sp.Matrix(gains), X_HAT: sp.Matrix(normalized), BIAS: sp.Matrix(biases), _H: units},
        )
    )
    return _LayerNormSymbols(inputs, gains, biases, upstream, epsilon, mean, sigma, normalized, outputs)


def layernorm_backward_formula(normalized, scaled_upstream, sigma) -> list:
    """eq-layernorm-backward element by element, for numbers or SymPy
    expressions: ∂L/∂a_j = (ĝ_j − mean(ĝ) − x̂_j · mean(ĝ ⊙ x̂)) / σ.

    ``normalized`` is x̂, ``scaled_upstream`` is ĝ = g ∘ ∂L/∂y, ``sigma`` is
    σ. The registered (displayed) expression is checked to agree with this
    transcription (``check_layernorm_backward(backward=...)``).
    """
    units = len(normalized)
    mean_g = sum(scaled_upstream) / units
    mean_gx = sum(g * x for g, x in zip(scaled_upstream, normalized)) / units
    return [(g - mean_g - x * mean_gx) / sigma for g, x in zip(scaled_upstream, normalized)]


def _displayed_backward(expression):
    """A backward formula given as a matrix expression in x̂, ĝ and σ, as a
    function with the signature of :func:`layernorm_backward_formula`."""

    def backward(normalized, scaled_upstream, sigma):
        values = {
            X_HAT: sp.Matrix(normalized),
            G_HAT: sp.Matrix(scaled_upstream),
            SIGMA: sigma,
            _H: len(normalized),
        }
        return list(instantiate(expression, values))

    return backward


@check(
    "layernorm-backward",
    "On a symbolic layer of 3 units (inputs, gains, upstream gradients, ε) run through the displayed forward pass, "
    "the displayed formula equals the exact vector-Jacobian product Σ_i dy_i ∂y_i/∂a_j from sympy.diff.",
)
def check_layernorm_backward(units: int = 3, backward=None, expression=None) -> bool:
    """Verify a layer-norm backward formula on a symbolic layer.

    The candidate is ``backward`` (a function with the signature of
    :func:`layernorm_backward_formula`) or ``expression`` (a matrix
    expression in x̂, ĝ, σ); by default the displayed expression.
    """
    layer = _layernorm_symbols(units)
    if backward is None:
        backward = _displayed_backward(_part("eq-layernorm-backward", "backward") if expression is None
                                       else expression)
    exact = [
        sum(dy * sp.diff(y, a) for dy, y in zip(layer.upstream, layer.outputs)) for a in layer.inputs
    ]
    scaled = [g * dy for g, dy in zip(layer.gains, layer.upstream)]

    def compare():
        claimed = backward(layer.normalized, scaled, layer.sigma)
        if len(claimed) != units:
            return False
        symbols = (*layer.inputs, *layer.gains, *layer.upstream, layer.epsilon)
        return all(zero_expression(e - c, symbols) for e, c in zip(exact, claimed))

    return safely(compare)


@check(
    "layernorm-forward",
    "For 3 symbolic inputs and ε, the displayed forward pass gives x̂ with mean 0 and mean square var/(var + ε), "
    "i.e. variance 1 up to ε.",
)
def check_layernorm_forward(units: int = 3, normalize=None) -> bool:
    """``normalize`` replaces the right side of eq-layernorm-normalize."""
    layer = _layernorm_symbols(units, normalize)
    variance = sum((a - layer.mean) ** 2 for a in layer.inputs) / units
    mean_normalized = sum(layer.normalized) / units
    mean_square = sum(x**2 for x in layer.normalized) / units
    symbols = (*layer.inputs, layer.epsilon)
    return bool(
        zero_expression(mean_normalized, symbols)
        and zero_expression(mean_square - variance / (variance + layer.epsilon), symbols)
    )


def check_layernorm_equations(units: int = 3) -> dict[str, bool]:
    """``layernorm-forward``: a property of the definitions (x̂ has mean 0
    and variance 1 up to ε); ``layernorm-backward``: the displayed backward
    pass."""
    if units != 3:
        return {"layernorm-forward": check_layernorm_forward(units),
                "layernorm-backward": check_layernorm_backward(units)}
    return {key: run_check(key) for key in ("layernorm-forward", "layernorm-backward")}
