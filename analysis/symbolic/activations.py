"""Activations (ReLU, tanh, sigmoid, LeCun's scaled tanh): their derivatives,
the derivatives written in the output, their ranges, and the bound that the
ranges put on gradient flow through depth.

The derivative in terms of the output (``1 - a**2`` for tanh, LeCun's form in
t = tanh(2x/3)) is *written here by hand*, as the chapter displays it, and the
check substitutes a = f(x) (or t = tanh(2x/3)) into it and compares with
``sympy.diff`` of f: a wrong form fails. The range is found from the
stationary points of f' and its limits, and cross-checked by SymPy's
independent ``function_range``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import sympy as sp

from analysis.errors import UserError
from analysis.symbolic.core import Equation, check, provides_equations, run_check

# The variable of every activation, the activation's output a = f(x) and the
# auxiliary t = tanh(2x/3) that LeCun's derivative is written in.
X = sp.Symbol("x", real=True)
OUTPUT = sp.Symbol("a", real=True)
AUXILIARY = sp.Symbol("t", real=True)

# LeCun et al. (1998), "Efficient BackProp": f(x) = 1.7159 tanh(2x/3) + 0.01 x.
# The constants stay exact so that every range below is an exact number.
LECUN_SCALE = sp.Rational(17159, 10000)
LECUN_SLOPE = sp.Rational(2, 3)
LECUN_LEAK = sp.Rational(1, 100)

# LeCun's activation is printed from the parametric form A tanh(Bx) + cx, so
# the reader sees 1.7159, 2/3 and 0.01 rather than 17159/10000.
_A, _B, _C = sp.symbols("A B c", positive=True)
_LECUN_VALUES = {_A: LECUN_SCALE, _B: LECUN_SLOPE, _C: LECUN_LEAK}
_LECUN_PRINTING = {"symbol_names": {_A: "1.7159", _B: r"\tfrac{2}{3}", _C: "0.01"}, "mul_symbol": "dot"}

#: The activations this module derives, in the order chapters list them.
ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "lecun")

_ALIASES = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "logistic": "sigmoid",
    "lecun": "lecun",
    "lecun_tanh": "lecun",
    "scaled_tanh": "lecun",
}

_TITLES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid", "lecun": "LeCun's scaled tanh"}

# What the chapter displays, typed here as the reader sees it (parametric for
# LeCun): f, f' in the output a (or in t for LeCun), and for ReLU the
# derivative on the two half-lines.
_FUNCTIONS = {
    "relu": sp.Max(0, X),
    "tanh": sp.tanh(X),
    "sigmoid": 1 / (1 + sp.exp(-X)),
    "lecun": _A * sp.tanh(_B * X) + _C * X,
}
_OUTPUT_FORMS = {
    "relu": sp.Piecewise((1, OUTPUT > 0), (0, True)),
    "tanh": 1 - OUTPUT**2,
    "sigmoid": OUTPUT * (1 - OUTPUT),
    "lecun": _A * _B * (1 - AUXILIARY**2) + _C,
}
_AUXILIARY_DEFINITION = sp.tanh(_B * X)
_RELU_DERIVATIVE = sp.Piecewise((1, X > 0), (0, X < 0))

_NOTES = {
    "relu": (
        "ReLU's derivative is 0 or 1 (undefined at 0; software takes 0): an "
        "active unit passes the gradient unchanged, an inactive one blocks it."
    ),
    "tanh": (
        "tanh' lies in (0, 1] and equals 1 only at x = 0: a tanh layer never "
        "amplifies the gradient and shrinks it wherever units saturate."
    ),
    "sigmoid": (
        "The sigmoid's derivative is at most 1/4 (at x = 0), so each sigmoid "
        "layer passes back at most a quarter of the gradient: through L layers "
        "at most (1/4)^L, before the weights are counted."
    ),
    "lecun": (
        "Because of the linear term 0.01x, f' cannot be written in closed form "
        "in the output a = f(x): f is strictly increasing, but inverting "
        "a = 1.7159 tanh(2x/3) + 0.01x has no closed form, so f' is given in "
        "t = tanh(2x/3) instead. f' lies in (0.01, 1.7159·2/3 + 0.01]: the linear "
        "term keeps at least 1/100 of the gradient flowing through saturated "
        "units, and near x = 0 a layer can amplify it by up to about 1.15."
    ),
}


@dataclass(frozen=True)
class ActivationDerivation:
    """Everything the book says about one activation, derived by SymPy.

    Attributes:
        name, title: canonical name (one of :data:`ACTIVATION_NAMES`) and the
            name as prose writes it.
        function: f(x), exact, in :data:`X`.
        derivative: f'(x), computed by ``sympy.diff``.
        derivative_in_output: f' written in a = f(x) (:data:`OUTPUT`), or
            ``None`` for LeCun's activation (see ``note``).
        derivative_in_auxiliary, auxiliary_definition: LeCun's f' in
            t = tanh(2x/3) (:data:`AUXILIARY`) and what t stands for.
        identity_verified: whether the check of the output (or t-) form
            passed (see :func:`check_activation`).
        derivative_range: the set of values f' takes on the real line.
        derivative_infimum, derivative_supremum: exact bounds of f'.
        infimum_attained, supremum_attained: whether f' reaches the bound at
            a finite x.
        critical_points: where f'' = 0 (empty for ReLU).
        range_cross_checked: whether ``function_range`` independently gives
            the same range (``None`` for ReLU, which it cannot handle).
        latex_*: LaTeX of the matching objects, printed by SymPy.
        note: what the range means for gradient flow.
    """

    name: str
    title: str
    function: sp.Expr
    derivative: sp.Expr
    derivative_in_output: sp.Expr | None
    derivative_in_auxiliary: sp.Expr | None
    auxiliary_definition: sp.Expr | None
    identity_verified: bool
    derivative_range: sp.Set
    derivative_infimum: sp.Expr
    derivative_supremum: sp.Expr
    infimum_attained: bool
    supremum_attained: bool
    critical_points: tuple
    range_cross_checked: bool | None
    latex_function: str
    latex_derivative: str
    latex_derivative_in_output: str | None
    latex_derivative_in_auxiliary: str | None
    latex_auxiliary_definition: str | None
    latex_derivative_range: str
    note: str

    def equation(self) -> Equation:
        """The activation's display, ``eq-activation-<name>`` (registered)."""
        from analysis.symbolic.core import equation

        return equation(f"eq-activation-{self.name}")


class NumericActivation(NamedTuple):
    """NumPy versions of an activation, lambdified from the SymPy expressions.

    Unpacks as ``function, derivative = numeric_activation("tanh")``.
    """

    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]


def canonical_activation_name(name: str) -> str:
    """Map a user-facing activation name ("ReLU", "lecun_tanh", …) to one of
    :data:`ACTIVATION_NAMES`; raise :class:`UserError` for an unknown name."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise UserError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATION_NAMES)}")
    return _ALIASES[key]


def _exact(expression):
    """LeCun's parametric constants replaced by their exact values."""
    return expression.subs(_LECUN_VALUES)


def _equal_everywhere(left: sp.Expr, right: sp.Expr) -> bool:
    """Whether two expressions in X are identical, by exact simplification."""
    difference = left - right
    if sp.simplify(difference) == 0:
        return True
    return sp.simplify(difference.rewrite(sp.exp)) == 0


def _equal_on_half_lines(left: sp.Expr, right: sp.Expr) -> bool:
    """Whether two expressions in X agree for every x > 0 and every x < 0
    (ReLU's derivative is undefined at 0, so that point is left out)."""
    positive = sp.Symbol("x_pos", positive=True)
    negative = sp.Symbol("x_neg", negative=True)
    return all(
        sp.simplify(left.subs(X, point) - right.subs(X, point)) == 0 for point in (positive, negative)
    )


def _smooth_range(derivative: sp.Expr):
    """Range of a smooth derivative on the real line.

    A continuous function on the real line reaches its supremum and infimum
    either at a stationary point or approaches them as x → ±∞, so we solve
    f'' = 0 and take the limits. Returns (range, inf, sup, inf attained,
    sup attained, critical points).
    """
    second = sp.diff(derivative, X)
    critical = sp.solveset(second, X, sp.S.Reals)
    if not isinstance(critical, sp.FiniteSet):
        raise RuntimeError(f"f'' = 0 has no finite solution set: {critical}")
    candidates = [(sp.simplify(derivative.subs(X, point)), True) for point in critical]
    candidates += [(sp.limit(derivative, X, end), False) for end in (sp.oo, -sp.oo)]
    values = [value for value, _ in candidates]
    infimum, supremum = sp.Min(*values), sp.Max(*values)

    def attained(bound):
        return any(at_point and sp.simplify(value - bound) == 0 for value, at_point in candidates)

    inf_attained, sup_attained = attained(infimum), attained(supremum)
    interval = sp.Interval(infimum, supremum, left_open=not inf_attained, right_open=not sup_attained)
    return interval, infimum, supremum, inf_attained, sup_attained, tuple(critical)


def _relu_values() -> sp.FiniteSet:
    """ReLU's f' is constant on each half-line; its values are the range."""
    derivative = sp.diff(_FUNCTIONS["relu"], X)
    return sp.FiniteSet(
        *(
            sp.simplify(derivative.subs(X, point))
            for point in (sp.Symbol("x_pos", positive=True), sp.Symbol("x_neg", negative=True))
        )
    )


@functools.lru_cache(maxsize=None)
def _range(name: str):
    """(range, inf, sup, inf attained, sup attained, critical points) of f',
    in the printed (parametric) form for LeCun."""
    if name == "relu":
        values = _relu_values()
        return values, values.inf, values.sup, True, True, ()
    return _smooth_range(sp.diff(_FUNCTIONS[name], X))


def _output_form_matches(name: str, output_form) -> bool:
    """The hand-written f' in the output (or in t) against ``sympy.diff`` of
    f: substitute a = f(x) (t = tanh(2x/3)) and compare."""
    function = _exact(_FUNCTIONS[name])
    derivative = sp.diff(function, X)
    if name == "relu":
        return _equal_on_half_lines(derivative, output_form.subs(OUTPUT, function))
    if name == "lecun":
        substituted = _exact(output_form.subs(AUXILIARY, _AUXILIARY_DEFINITION))
    else:
        substituted = output_form.subs(OUTPUT, function)
    return _equal_everywhere(derivative, _exact(substituted))


def check_activation(name: str, output_form=None, derivative_range=None, derivative=None) -> bool:
    """Verify an activation's display.

    * ``output_form`` (default: the displayed f' in a, or in t for LeCun),
      with a = f(x) (t = tanh(2x/3)) substituted, equals ``sympy.diff(f)``;
    * ``derivative_range`` (default: the displayed range) equals the range
      found from the stationary points and limits of f', and, for the smooth
      activations, SymPy's independent ``function_range`` gives it too;
    * for ReLU, ``derivative`` (default: the displayed piecewise form) equals
      ``sympy.diff(f)`` on both half-lines.
    """
    name = canonical_activation_name(name)
    output_form = _OUTPUT_FORMS[name] if output_form is None else output_form
    derivative_range = _range(name)[0] if derivative_range is None else derivative_range
    exact_derivative = sp.diff(_exact(_FUNCTIONS[name]), X)
    if name == "relu":
        displayed = _RELU_DERIVATIVE if derivative is None else derivative
        return bool(
            _output_form_matches(name, output_form)
            and _equal_on_half_lines(exact_derivative, displayed)
            and derivative_range == _relu_values()
        )
    exact_range = _exact(derivative_range)
    independent = sp.calculus.util.function_range(exact_derivative, X, sp.S.Reals)
    return bool(
        _output_form_matches(name, output_form)
        and derivative_range == _range(name)[0]
        and independent == exact_range
    )


for _name in ACTIVATION_NAMES:
    check(
        _name,
        {
            "relu": "f' from sympy.diff agrees with the displayed piecewise form and with the output form on x > 0 and x < 0; the range is f''s values there.",
            "tanh": "1 − a² with a = tanh x substituted equals sympy.diff of tanh; the range from f'' = 0 and the limits at ±∞ equals SymPy's function_range.",
            "sigmoid": "a(1 − a) with a = σ(x) substituted equals sympy.diff of σ; the range from f'' = 0 and the limits at ±∞ equals SymPy's function_range.",
            "lecun": "The form in t, with t = tanh(2x/3) substituted, equals sympy.diff of f; the range from f'' = 0 and the limits equals SymPy's function_range.",
        }[_name],
    )(functools.partial(check_activation, _name))


def activation(name: str) -> ActivationDerivation:
    """Derive one activation: f, f', f' in terms of the output, f''s range.

    ``name`` is one of :data:`ACTIVATION_NAMES` (aliases such as "ReLU" or
    "lecun_tanh" are accepted).
    """
    return _activation(canonical_activation_name(name))


@functools.lru_cache(maxsize=None)
def _activation(name: str) -> ActivationDerivation:
    printed = _FUNCTIONS[name]
    settings = _LECUN_PRINTING if name == "lecun" else {}
    interval, infimum, supremum, inf_attained, sup_attained, critical = _range(name)
    function = _exact(printed)
    derivative = sp.diff(function, X)
    lecun = name == "lecun"
    displayed_derivative = _RELU_DERIVATIVE if name == "relu" else sp.diff(printed, X)
    cross_checked = None
    if name != "relu":
        cross_checked = sp.calculus.util.function_range(derivative, X, sp.S.Reals) == _exact(interval)
    return ActivationDerivation(
        name=name,
        title=_TITLES[name],
        function=function,
        derivative=derivative,
        derivative_in_output=None if lecun else _OUTPUT_FORMS[name],
        derivative_in_auxiliary=_exact(_OUTPUT_FORMS[name]) if lecun else None,
        auxiliary_definition=_exact(_AUXILIARY_DEFINITION) if lecun else None,
        identity_verified=run_check(name),
        derivative_range=_exact(interval),
        derivative_infimum=_exact(infimum),
        derivative_supremum=_exact(supremum),
        infimum_attained=inf_attained,
        supremum_attained=sup_attained,
        critical_points=critical,
        range_cross_checked=cross_checked,
        latex_function=sp.latex(printed, **settings),
        latex_derivative=sp.latex(displayed_derivative, **settings),
        latex_derivative_in_output=None if lecun else sp.latex(_OUTPUT_FORMS[name]),
        latex_derivative_in_auxiliary=sp.latex(_OUTPUT_FORMS[name], **settings) if lecun else None,
        latex_auxiliary_definition=sp.latex(_AUXILIARY_DEFINITION, **settings) if lecun else None,
        latex_derivative_range=sp.latex(interval, **settings),
        note=_NOTES[name],
    )


def activations() -> tuple[ActivationDerivation, ...]:
    """All four derivations, in the order of :data:`ACTIVATION_NAMES`."""
    return tuple(activation(name) for name in ACTIVATION_NAMES)


def check_activations() -> dict[str, bool]:
    """For each activation, whether its display's check passed."""
    return {name: run_check(name) for name in ACTIVATION_NAMES}


@provides_equations
@functools.lru_cache(maxsize=None)
def activation_equations() -> tuple[Equation, ...]:
    """``eq-activation-<name>``: f, f' (from ``sympy.diff``) = the output
    form, and the range of f'."""
    equations = []
    for name in ACTIVATION_NAMES:
        lecun = name == "lecun"
        derivative = _RELU_DERIVATIVE if name == "relu" else sp.diff(_FUNCTIONS[name], X)
        if lecun:
            second = r"f'(x) &= <<derivative>> \\" "\n" r"&= <<output_form>>, \quad t = <<auxiliary>> \\"
        else:
            second = r"f'(x) &= <<derivative>> = <<output_form>>, \quad a = f(x) \\"
        template = (
            "\\begin{aligned}\n"
            r"f(x) &= <<function>> \\" "\n" + second + "\n" r"f'(x) &\in <<range>>" "\n\\end{aligned}"
        )
        title = _TITLES[name]
        equations.append(
            Equation(
                f"eq-activation-{name}",
                template,
                {
                    "function": _FUNCTIONS[name],
                    "derivative": derivative,
                    "output_form": _OUTPUT_FORMS[name],
                    "auxiliary": _AUXILIARY_DEFINITION,
                    "range": _range(name)[0],
                },
                f"{title[0].upper()}{title[1:]}: the activation, its derivative and the derivative's range.",
                check=name,
                settings=_LECUN_PRINTING if lecun else {},
            )
        )
    return tuple(equations)


def numeric_activation(name: str) -> NumericActivation:
    """NumPy functions for f and f', lambdified from the SymPy derivation.

    The sigmoid is lambdified from the identity σ(x) = (1 + tanh(x/2)) / 2,
    verified here by SymPy, because 1/(1 + exp(-x)) overflows for large
    negative x. ReLU's derivative at exactly 0 is taken as 0, as TensorFlow
    and JAX do.
    """
    return _numeric_activation(canonical_activation_name(name))


@functools.lru_cache(maxsize=None)
def _numeric_activation(name: str) -> NumericActivation:
    function = _exact(_FUNCTIONS[name])
    derivative = sp.diff(function, X)
    if name == "sigmoid":
        stable = (1 + sp.tanh(X / 2)) / 2
        if not _equal_everywhere(stable, function):
            raise RuntimeError("the stable form of the sigmoid disagrees with its definition")
        function, derivative = stable, sp.diff(stable, X)
    if name == "relu":
        derivative = derivative.replace(sp.Heaviside, lambda argument, *_: sp.Heaviside(argument, 0))
    raw_function = sp.lambdify(X, function, modules="numpy")
    raw_derivative = sp.lambdify(X, derivative, modules="numpy")

    def as_array(raw):
        def evaluate(values):
            values = np.asarray(values, dtype=float)
            return np.broadcast_to(np.asarray(raw(values), dtype=float), values.shape).copy()

        evaluate.__doc__ = f"{_TITLES[name]}, evaluated element-wise."
        return evaluate

    return NumericActivation(as_array(raw_function), as_array(raw_derivative))


# ---------------------------------------------------------------------------
# Gradient bound through depth
# ---------------------------------------------------------------------------

DEPTH = sp.Symbol("L", integer=True, positive=True)


def derivative_supremum(name: str) -> sp.Expr:
    """The largest factor f' can contribute per layer (exact): 1/4 for the
    sigmoid, 1 for tanh and ReLU, 1.7159·2/3 + 0.01 = 17309/15000 for LeCun."""
    return activation(name).derivative_supremum


def gradient_bound(activation_name: str, depth: int) -> sp.Expr:
    """sup(f')^depth: the most the activations of ``depth`` layers can pass
    back, before weights are counted. Exact, e.g. (1/4)^L."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise UserError(f"depth must be a non-negative integer, got {depth!r}")
    return derivative_supremum(activation_name) ** int(depth)


def gradient_bound_curve(activation_name: str, depths: Sequence[int]) -> np.ndarray:
    """:func:`gradient_bound` for each depth, as floats for a plot."""
    return np.array([float(gradient_bound(activation_name, depth)) for depth in depths])


def _bounds() -> dict[str, sp.Expr]:
    """The displayed bound per activation: (sup f')^L."""
    return {name: _range(name)[2] ** DEPTH for name in ACTIVATION_NAMES}


@provides_equations
@functools.lru_cache(maxsize=None)
def gradient_bound_equations() -> tuple[Equation, ...]:
    rows = " \\\\\n".join(rf"<<{name}>> & \text{{{_TITLES[name]}}}" for name in ACTIVATION_NAMES)
    template = (
        "\\begin{aligned}\n"
        r"\left|\prod_{l=1}^{L} f'\left(z^{l}\right)\right| &\le \left(\sup_{x} f'(x)\right)^{L} \\"
        "\n&= \\begin{cases}\n" + rows + "\n\\end{cases}\n\\end{aligned}"
    )
    return (
        Equation(
            "eq-gradient-bound",
            template,
            _bounds(),
            "What the activations of L layers can pass back at most, before the weights are counted.",
            check="gradient-bound",
            settings=_LECUN_PRINTING,
        ),
    )


@check(
    "gradient-bound",
    "sympy.diff of a 3-layer scalar chain is Π w_l f'(z_l); each displayed bound at L = 1 is the supremum of f' "
    "found by function_range (not by the derivation above), its infimum is ≥ 0, and the bound at L is that supremum to the L.",
)
def check_gradient_bound(bounds=None, chain_factor=None, layers: int = 3) -> bool:
    """``bounds`` (default: the displayed ones, by activation) against an
    independent supremum; ``chain_factor(point)`` (default f'(point)) is the
    factor a layer contributes to the chain rule's product."""
    from analysis.symbolic.backprop import F, F_PRIME

    bounds = _bounds() if bounds is None else bounds
    chain_factor = chain_factor or F_PRIME
    x = sp.Symbol("x0", real=True)
    weights = sp.symbols(f"w1:{layers + 1}", real=True)
    value, factors = x, []
    for weight in weights:
        point = weight * value
        factors.append(weight * chain_factor(point))
        value = F(point)
    chain_rule = sp.expand(sp.diff(value, x) - sp.Mul(*factors)) == 0
    for name in ACTIVATION_NAMES:
        bound = _exact(sp.sympify(bounds[name]))
        if name == "relu":
            values = _relu_values()
            infimum, supremum = values.inf, values.sup
        else:
            independent = sp.calculus.util.function_range(sp.diff(_exact(_FUNCTIONS[name]), X), X, sp.S.Reals)
            infimum, supremum = independent.inf, independent.sup
        if infimum < 0 or sp.simplify(bound.subs(DEPTH, 1) - supremum) != 0:
            return False
        if any(sp.simplify(bound.subs(DEPTH, depth) - supremum**depth) != 0 for depth in (2, 5)):
            return False
    return bool(chain_rule)


def gradient_bound_equation() -> Equation:
    """The registered ``eq-gradient-bound``."""
    return gradient_bound_equations()[0]
