"""SymPy derivations that the chapters show, and the checks that prove them.

The book's rule is that every equation a reader sees is produced or checked by
SymPy; nothing is hand-typed and left unchecked. This module therefore gives
three kinds of things:

* SymPy objects (expressions, sets, exact numbers) that tests and chapters
  compute with;
* LaTeX that chapters embed, wrapped in :class:`Equation` objects that carry
  the Quarto cross-reference label (``eq-…``) and the name of the check that
  verifies them; ``Equation.markdown()`` gives the ``$$ … $$ {#eq-…}`` block;
* check functions that return ``True`` or ``False`` so that a chapter cell and
  a test can both assert them.

Contents, in the order the backpropagation chapter uses them:

* activations (ReLU, tanh, sigmoid, LeCun's scaled tanh): :func:`activation`,
  :func:`activations`, :func:`numeric_activation`;
* the bound that an activation puts on gradient flow through depth:
  :func:`gradient_bound`, :func:`gradient_bound_curve`;
* backpropagation for an L-layer perceptron: :func:`backprop_equations`,
  :func:`check_backprop_equations`;
* layer normalization (the MNIST chapter): :func:`layernorm_equations`,
  :func:`layernorm_backward_formula`, :func:`check_layernorm_backward`,
  :func:`check_layernorm_equations`.

Nothing heavy runs at import; every derivation is computed on first use and
cached with :func:`functools.lru_cache`.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import sympy as sp

from analysis.errors import UserError

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


# ---------------------------------------------------------------------------
# Equations as data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Equation:
    """One numbered display equation of the book.

    Attributes:
        label: the Quarto cross-reference label, e.g. ``"eq-output-delta"``;
            prose refers to it as ``@eq-output-delta``.
        latex: the body of the display, without the ``$$`` delimiters.
        description: one sentence saying what the equation states.
        check: the key, in the dictionary returned by the check function named
            in the equation's group (:func:`check_backprop_equations`,
            :func:`check_layernorm_equations` or :func:`check_activations`),
            whose value says whether SymPy verified it.
    """

    label: str
    latex: str
    description: str
    check: str

    def markdown(self) -> str:
        """The equation as a Quarto display block with its label."""
        return f"$$\n{self.latex}\n$$ {{#{self.label}}}"


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationDerivation:
    """Everything the book says about one activation, derived by SymPy.

    Attributes:
        name: canonical name, one of :data:`ACTIVATION_NAMES`.
        title: the name as prose writes it.
        function: f(x) as an exact SymPy expression in :data:`X`.
        derivative: f'(x), computed by ``sympy.diff``.
        derivative_in_output: f'(x) written in the output a = f(x)
            (symbol :data:`OUTPUT`), or ``None`` where no closed form exists
            (LeCun's activation; see ``note``).
        derivative_in_auxiliary: for LeCun's activation, f'(x) in
            t = tanh(2x/3) (symbol :data:`AUXILIARY`); ``None`` otherwise.
        auxiliary_definition: the expression t stands for, or ``None``.
        identity_verified: SymPy confirmed that the derivative equals the
            output (or auxiliary) form: ``simplify(f'(x) - g(f(x))) == 0``, and
            for ReLU on both half-lines x > 0 and x < 0 separately.
        derivative_range: the set of values f' takes on the real line, as a
            SymPy set: ``Interval.Lopen(0, 1/4)`` for the sigmoid,
            ``FiniteSet(0, 1)`` for ReLU.
        derivative_infimum, derivative_supremum: exact bounds of f'.
        infimum_attained, supremum_attained: whether f' reaches the bound at
            a finite x (a bound reached only as x → ±∞ is not attained).
        critical_points: where f'' = 0 (empty for ReLU).
        range_cross_checked: whether ``sympy.calculus.util.function_range``
            independently gives the same range (``None`` for ReLU, whose
            derivative it cannot handle).
        latex_function, latex_derivative, latex_derivative_in_output,
        latex_derivative_in_auxiliary, latex_auxiliary_definition,
        latex_derivative_range: LaTeX of the matching objects, printed by
            SymPy. LeCun's constants print as 1.7159, 2/3 and 0.01 because its
            LaTeX is printed from the parametric form A tanh(Bx) + cx, which is
            verified to equal the exact expression.
        note: one or two sentences for the chapter on what the range means
            for gradient flow, and why LeCun's derivative has no output form.
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
        """The activation, its derivative and the derivative's range as one
        aligned display, labelled ``eq-activation-<name>``."""
        lines = [rf"f(x) &= {self.latex_function}"]
        derivative_line = rf"f'(x) &= {self.latex_derivative}"
        if self.latex_derivative_in_output is not None:
            derivative_line += (
                rf" = {self.latex_derivative_in_output}, \quad a = f(x)"
            )
        lines.append(derivative_line)
        if self.latex_derivative_in_auxiliary is not None:
            lines.append(
                rf"&= {self.latex_derivative_in_auxiliary}, \quad "
                rf"t = {self.latex_auxiliary_definition}"
            )
        lines.append(rf"f'(x) &\in {self.latex_derivative_range}")
        body = "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
        return Equation(
            label=f"eq-activation-{self.name}",
            latex=body,
            description=f"{self.title[0].upper()}{self.title[1:]}: the activation, its derivative and the derivative's range.",
            check=self.name,
        )


class NumericActivation(NamedTuple):
    """NumPy versions of an activation, lambdified from the SymPy expressions.

    Unpacks as ``function, derivative = numeric_activation("tanh")``. Both
    take and return float arrays of any shape.
    """

    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]


def canonical_activation_name(name: str) -> str:
    """Map a user-facing activation name ("ReLU", "lecun_tanh", …) to one of
    :data:`ACTIVATION_NAMES`; raise :class:`UserError` for an unknown name."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise UserError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATION_NAMES)}"
        )
    return _ALIASES[key]


def _lecun_parametric():
    """LeCun's activation as A tanh(Bx) + cx with positive symbols, the values
    of A, B, c, and how to print them (so LaTeX shows 1.7159, 2/3, 0.01)."""
    scale, slope, leak = sp.symbols("A B c", positive=True)
    expression = scale * sp.tanh(slope * X) + leak * X
    values = {scale: LECUN_SCALE, slope: LECUN_SLOPE, leak: LECUN_LEAK}
    names = {scale: "1.7159", slope: r"\tfrac{2}{3}", leak: "0.01"}
    return expression, values, names


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
        sp.simplify(left.subs(X, point) - right.subs(X, point)) == 0
        for point in (positive, negative)
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
        return any(
            at_point and sp.simplify(value - bound) == 0 for value, at_point in candidates
        )

    inf_attained, sup_attained = attained(infimum), attained(supremum)
    interval = sp.Interval(
        infimum, supremum, left_open=not inf_attained, right_open=not sup_attained
    )
    return interval, infimum, supremum, inf_attained, sup_attained, tuple(critical)


def activation(name: str) -> ActivationDerivation:
    """Derive one activation: f, f', f' in terms of the output, and f''s range.

    ``name`` is one of :data:`ACTIVATION_NAMES` (aliases such as "ReLU" or
    "lecun_tanh" are accepted). Everything is computed by SymPy: the
    derivative by ``sympy.diff``, the output form verified by simplification,
    the range from the stationary points and the limits at ±∞ (and, for the
    smooth activations, cross-checked against ``function_range``).
    """
    return _activation(canonical_activation_name(name))


@functools.lru_cache(maxsize=None)
def _activation(name: str) -> ActivationDerivation:
    return {
        "relu": _derive_relu,
        "tanh": _derive_tanh,
        "sigmoid": _derive_sigmoid,
        "lecun": _derive_lecun,
    }[name]()


def activations() -> tuple[ActivationDerivation, ...]:
    """All four derivations, in the order of :data:`ACTIVATION_NAMES`."""
    return tuple(activation(name) for name in ACTIVATION_NAMES)


def check_activations() -> dict[str, bool]:
    """For each activation, whether its output-form identity and its range
    are verified (the range cross-check counts where it applies)."""
    return {
        item.name: bool(item.identity_verified and item.range_cross_checked is not False)
        for item in activations()
    }


def _smooth_derivation(
    name: str,
    function: sp.Expr,
    output_form: sp.Expr | None,
    note: str,
    auxiliary: tuple[sp.Expr, sp.Expr] | None = None,
    latex_function: str | None = None,
    latex_derivative: str | None = None,
    latex_auxiliary: tuple[str, str] | None = None,
    latex_range: str | None = None,
) -> ActivationDerivation:
    """Shared work for tanh, sigmoid and LeCun's activation."""
    derivative = sp.diff(function, X)
    if output_form is not None:
        verified = _equal_everywhere(derivative, output_form.subs(OUTPUT, function))
    else:
        auxiliary_form, definition = auxiliary
        verified = _equal_everywhere(derivative, auxiliary_form.subs(AUXILIARY, definition))
    interval, infimum, supremum, inf_attained, sup_attained, critical = _smooth_range(derivative)
    cross_checked = sp.calculus.util.function_range(derivative, X, sp.S.Reals) == interval
    return ActivationDerivation(
        name=name,
        title=_TITLES[name],
        function=function,
        derivative=derivative,
        derivative_in_output=output_form,
        derivative_in_auxiliary=None if auxiliary is None else auxiliary[0],
        auxiliary_definition=None if auxiliary is None else auxiliary[1],
        identity_verified=bool(verified),
        derivative_range=interval,
        derivative_infimum=infimum,
        derivative_supremum=supremum,
        infimum_attained=inf_attained,
        supremum_attained=sup_attained,
        critical_points=critical,
        range_cross_checked=bool(cross_checked),
        latex_function=latex_function or sp.latex(function),
        latex_derivative=latex_derivative or sp.latex(derivative),
        latex_derivative_in_output=None if output_form is None else sp.latex(output_form),
        latex_derivative_in_auxiliary=None if latex_auxiliary is None else latex_auxiliary[0],
        latex_auxiliary_definition=None if latex_auxiliary is None else latex_auxiliary[1],
        latex_derivative_range=latex_range or sp.latex(interval),
        note=note,
    )


def _derive_tanh() -> ActivationDerivation:
    return _smooth_derivation(
        "tanh",
        sp.tanh(X),
        1 - OUTPUT**2,
        note=(
            "tanh' lies in (0, 1] and equals 1 only at x = 0: a tanh layer never "
            "amplifies the gradient and shrinks it wherever units saturate."
        ),
    )


def _derive_sigmoid() -> ActivationDerivation:
    return _smooth_derivation(
        "sigmoid",
        1 / (1 + sp.exp(-X)),
        OUTPUT * (1 - OUTPUT),
        note=(
            "The sigmoid's derivative is at most 1/4 (at x = 0), so each sigmoid "
            "layer passes back at most a quarter of the gradient: through L layers "
            "at most (1/4)^L, before the weights are counted."
        ),
    )


def _derive_lecun() -> ActivationDerivation:
    parametric, values, names = _lecun_parametric()
    function = parametric.subs(values)
    parametric_derivative = sp.diff(parametric, X)
    scale, slope, leak = values  # the symbols A, B, c, in insertion order
    tanh_term = sp.tanh(slope * X)
    parametric_auxiliary = parametric_derivative.subs(tanh_term, AUXILIARY)
    auxiliary_form = parametric_auxiliary.subs(values)
    definition = tanh_term.subs(values)
    # The ranges of the parametric and the exact forms must agree; the printed
    # range uses the parametric form so the reader sees 1.7159 · 2/3 + 0.01.
    parametric_interval = _smooth_range(parametric_derivative)[0]

    def latex(expression):
        return sp.latex(expression, symbol_names=names, mul_symbol="dot")

    derivation = _smooth_derivation(
        "lecun",
        function,
        None,
        auxiliary=(auxiliary_form, definition),
        latex_function=latex(parametric),
        latex_derivative=latex(parametric_derivative),
        latex_auxiliary=(latex(parametric_auxiliary), latex(tanh_term)),
        latex_range=latex(parametric_interval),
        note=(
            "Because of the linear term 0.01x, f' cannot be written in closed form "
            "in the output a = f(x): f is strictly increasing, but inverting "
            "a = 1.7159 tanh(2x/3) + 0.01x has no closed form, so f' is given in "
            "t = tanh(2x/3) instead. f' lies in (0.01, 1.7159·2/3 + 0.01]: the linear "
            "term keeps at least 1/100 of the gradient flowing through saturated "
            "units, and near x = 0 a layer can amplify it by up to about 1.15."
        ),
    )
    parametric_matches = (
        sp.simplify(function - parametric.subs(values)) == 0
        and parametric_interval.subs(values) == derivation.derivative_range
    )
    if not parametric_matches:
        raise RuntimeError("LeCun's printed (parametric) form disagrees with the exact one")
    return derivation


def _derive_relu() -> ActivationDerivation:
    function = sp.Max(0, X)
    derivative = sp.diff(function, X)  # Heaviside(x): undefined at 0
    output_form = sp.Piecewise((1, OUTPUT > 0), (0, True))
    displayed_derivative = sp.Piecewise((1, X > 0), (0, X < 0))
    verified = _equal_on_half_lines(
        derivative, output_form.subs(OUTPUT, function)
    ) and _equal_on_half_lines(derivative, displayed_derivative)
    # The derivative is constant on each half-line; its values are the range.
    values = sp.FiniteSet(
        *(
            sp.simplify(derivative.subs(X, point))
            for point in (sp.Symbol("x_pos", positive=True), sp.Symbol("x_neg", negative=True))
        )
    )
    return ActivationDerivation(
        name="relu",
        title=_TITLES["relu"],
        function=function,
        derivative=derivative,
        derivative_in_output=output_form,
        derivative_in_auxiliary=None,
        auxiliary_definition=None,
        identity_verified=bool(verified),
        derivative_range=values,
        derivative_infimum=values.inf,
        derivative_supremum=values.sup,
        infimum_attained=True,
        supremum_attained=True,
        critical_points=(),
        range_cross_checked=None,
        latex_function=sp.latex(function),
        latex_derivative=sp.latex(displayed_derivative),
        latex_derivative_in_output=sp.latex(output_form),
        latex_derivative_in_auxiliary=None,
        latex_auxiliary_definition=None,
        latex_derivative_range=sp.latex(values),
        note=(
            "ReLU's derivative is 0 or 1 (undefined at 0; software takes 0): an "
            "active unit passes the gradient unchanged, an inactive one blocks it."
        ),
    )


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
    derivation = activation(name)
    function, derivative = derivation.function, derivation.derivative
    if derivation.name == "sigmoid":
        stable = (1 + sp.tanh(X / 2)) / 2
        if not _equal_everywhere(stable, function):
            raise RuntimeError("the stable form of the sigmoid disagrees with its definition")
        function, derivative = stable, sp.diff(stable, X)
    if derivation.name == "relu":
        derivative = derivative.replace(sp.Heaviside, lambda argument, *_: sp.Heaviside(argument, 0))
    raw_function = sp.lambdify(X, function, modules="numpy")
    raw_derivative = sp.lambdify(X, derivative, modules="numpy")

    def as_array(raw):
        def evaluate(values):
            values = np.asarray(values, dtype=float)
            return np.broadcast_to(np.asarray(raw(values), dtype=float), values.shape).copy()

        evaluate.__doc__ = f"{derivation.title}, evaluated element-wise."
        return evaluate

    return NumericActivation(as_array(raw_function), as_array(raw_derivative))


# ---------------------------------------------------------------------------
# Gradient bound through depth
# ---------------------------------------------------------------------------


def derivative_supremum(name: str) -> sp.Expr:
    """The largest factor f' can contribute per layer (exact): 1/4 for the
    sigmoid, 1 for tanh and ReLU, 1.7159·2/3 + 0.01 = 17309/15000 for LeCun."""
    return activation(name).derivative_supremum


def gradient_bound(activation_name: str, depth: int) -> sp.Expr:
    """sup(f')^depth: the most the activations of ``depth`` layers can pass
    back, before weights are counted (the gradient also picks up a factor
    (W^l)ᵀ per layer, which this bound leaves out). Exact, e.g. (1/4)^L."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise UserError(f"depth must be a non-negative integer, got {depth!r}")
    return derivative_supremum(activation_name) ** int(depth)


def gradient_bound_curve(activation_name: str, depths: Sequence[int]) -> np.ndarray:
    """:func:`gradient_bound` for each depth, as floats for a "bound vs depth"
    plot (a log-scale axis shows the sigmoid's (1/4)^L as a straight line)."""
    return np.array([float(gradient_bound(activation_name, depth)) for depth in depths])


# ---------------------------------------------------------------------------
# Backpropagation
# ---------------------------------------------------------------------------

_VECTOR = r"\mathbf"
_LOSS = r"\mathcal{L}"


@functools.lru_cache(maxsize=None)
def backprop_equations() -> tuple[Equation, ...]:
    """The backpropagation equations of an L-layer perceptron with a softmax
    output and cross-entropy loss, in the order the chapter shows them.

    Labels: ``eq-forward``, ``eq-loss``, ``eq-output-delta``,
    ``eq-hidden-delta``, ``eq-weight-grad``, ``eq-bias-grad``,
    ``eq-batch-mean``. Each ``check`` is a key of
    :func:`check_backprop_equations`.
    """
    z, a, b, y, p = (rf"{_VECTOR}{{{s}}}" for s in "zabyp")
    delta = r"\boldsymbol{\delta}"
    return (
        Equation(
            "eq-forward",
            rf"{z}^{{l}} = W^{{l}} {a}^{{l-1}} + {b}^{{l}}, \qquad "
            rf"{a}^{{l}} = f\left({z}^{{l}}\right), \qquad l = 1, \dots, L-1",
            "The forward pass: an affine map followed by the activation, element-wise.",
            "forward",
        ),
        Equation(
            "eq-loss",
            rf"{p} = \operatorname{{softmax}}\left({z}^{{L}}\right), \quad "
            rf"p_k = \frac{{e^{{z^{{L}}_k}}}}{{\sum_j e^{{z^{{L}}_j}}}}, \qquad "
            rf"{_LOSS} = -\sum_k y_k \log p_k",
            "The output layer: softmax probabilities and the cross-entropy with a one-hot y.",
            "output-delta",
        ),
        Equation(
            "eq-output-delta",
            rf"{delta}^{{L}} = \frac{{\partial {_LOSS}}}{{\partial {z}^{{L}}}} = {p} - {y}",
            "The error of the output layer, for softmax with cross-entropy (using sum_k y_k = 1).",
            "output-delta",
        ),
        Equation(
            "eq-hidden-delta",
            rf"{delta}^{{l}} = \frac{{\partial {_LOSS}}}{{\partial {z}^{{l}}}} = "
            rf"\left(\left(W^{{l+1}}\right)^{{\top}} {delta}^{{l+1}}\right) \odot f'\left({z}^{{l}}\right)",
            "The error of a hidden layer, passed back through the weights and the activation's derivative.",
            "hidden-delta",
        ),
        Equation(
            "eq-weight-grad",
            rf"\frac{{\partial {_LOSS}}}{{\partial W^{{l}}}} = {delta}^{{l}} \left({a}^{{l-1}}\right)^{{\top}}",
            "The weight gradient: the outer product of a layer's error and its input.",
            "weight-grad",
        ),
        Equation(
            "eq-bias-grad",
            rf"\frac{{\partial {_LOSS}}}{{\partial {b}^{{l}}}} = {delta}^{{l}}",
            "The bias gradient equals the layer's error.",
            "bias-grad",
        ),
        Equation(
            "eq-batch-mean",
            rf"\frac{{\partial}}{{\partial W^{{l}}}} \frac{{1}}{{N}} \sum_{{n=1}}^{{N}} {_LOSS}^{{(n)}} = "
            rf"\frac{{1}}{{N}} \sum_{{n=1}}^{{N}} {delta}^{{l,(n)}} \left({a}^{{l-1,(n)}}\right)^{{\top}}, \qquad "
            rf"\frac{{\partial}}{{\partial {b}^{{l}}}} \frac{{1}}{{N}} \sum_{{n=1}}^{{N}} {_LOSS}^{{(n)}} = "
            rf"\frac{{1}}{{N}} \sum_{{n=1}}^{{N}} {delta}^{{l,(n)}}",
            "For a mini-batch of N examples the loss and its gradients are averages over the examples.",
            "batch-mean",
        ),
    )


class _Atomizer:
    """Turn a derivative of the tiny network's loss into a rational function.

    ``sympy.diff`` of the loss contains f(z), f'(z) (as ``Subs`` or
    ``Derivative`` objects) and exponentials of the logits. Replacing each
    f(z_i), f'(z_i) by an independent symbol and each exp(Σ c_k z_k) by
    Π e_k^{c_k} gives a rational function; if a difference of two derivatives
    is zero as a rational function of independent symbols, it is zero for
    every activation f and every value of the weights. ``cancel`` decides that
    in milliseconds, where ``simplify`` on the raw expressions takes seconds.
    """

    def __init__(self, hidden_points: Sequence[sp.Expr], logits: Sequence[sp.Expr]):
        self.values = {point: sp.Dummy(f"h{i}") for i, point in enumerate(hidden_points)}
        self.slopes = {point: sp.Dummy(f"d{i}") for i, point in enumerate(hidden_points)}
        self.logits = [self._replace_activation(logit) for logit in logits]
        self.exponentials = [sp.Dummy(f"e{k}", positive=True) for k in range(len(logits))]
        self.coefficients = sp.symbols(f"c0:{len(logits)}", cls=sp.Dummy)
        self.base = sorted(set().union(*(logit.free_symbols for logit in self.logits)), key=str)
        self._cache: dict = {}

    def _replace_activation(self, expression):
        def is_slope(node):
            if isinstance(node, sp.Subs):
                return isinstance(node.expr, sp.Derivative)
            return isinstance(node, sp.Derivative) and node.expr.args[0] in self.slopes

        def slope(node):
            point = node.point[0] if isinstance(node, sp.Subs) else node.expr.args[0]
            return self.slopes[point]

        expression = expression.replace(is_slope, slope)
        return expression.replace(
            lambda node: isinstance(node, sp.core.function.AppliedUndef),
            lambda node: self.values[node.args[0]],
        )

    def _exponential(self, argument):
        if argument not in self._cache:
            residual = argument - sum(c * z for c, z in zip(self.coefficients, self.logits))
            equations = sp.Poly(residual, *self.base).coeffs()
            solutions = sp.solve(equations, self.coefficients, dict=True)
            if not solutions:
                raise RuntimeError(f"exp({argument}) is not a combination of the logits")
            solution = solutions[0]
            self._cache[argument] = sp.Mul(
                *(e ** solution.get(c, 0) for c, e in zip(self.coefficients, self.exponentials))
            )
        return self._cache[argument]

    def __call__(self, expression):
        return self._replace_activation(expression).replace(sp.exp, self._exponential)

    def equal(self, left, right) -> bool:
        """Whether two expressions are identical, as explained above."""
        return sp.cancel(sp.together(self(left) - self(right))) == 0


def _softmax(logits: sp.Matrix) -> sp.Matrix:
    exponentials = logits.applyfunc(sp.exp)
    return exponentials / sum(exponentials)


def _cross_entropy(logits: sp.Matrix, targets: sp.Matrix) -> sp.Expr:
    probabilities = _softmax(logits)
    return -sum(targets[k] * sp.log(probabilities[k]) for k in range(logits.rows))


def _one_hot_like(name: str, classes: int) -> sp.Matrix:
    """Targets y_1 … y_{C-1}, with y_C = 1 - Σ y_k: any distribution, in
    particular any one-hot vector."""
    free = sp.symbols(f"{name}_1:{classes}", real=True)
    return sp.Matrix([*free, 1 - sum(free)])


def _matrix(name: str, rows: int, columns: int) -> sp.Matrix:
    return sp.Matrix(rows, columns, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def _vector(name: str, rows: int) -> sp.Matrix:
    return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{name}_{i + 1}", real=True))


_F = sp.Function("f")


def _f_prime(point: sp.Expr) -> sp.Expr:
    """f'(point) for the generic activation f, as SymPy's chain rule writes it."""
    u = sp.Dummy("u")
    return sp.diff(_F(u), u).subs(u, point)


class _TinyNetwork:
    """A fully symbolic 2-2-2 network with a generic activation f.

    Two inputs, two hidden units a = f(W1 x + b1), two softmax outputs
    z2 = W2 a + b2 with cross-entropy; ``batch`` examples with their own
    inputs and targets. Builds the loss (the mean over the batch) and the
    gradients that the δ equations give, per example and averaged.
    """

    def __init__(self, batch: int):
        self.W1, self.b1 = _matrix("W1", 2, 2), _vector("b1", 2)
        self.W2, self.b2 = _matrix("W2", 2, 2), _vector("b2", 2)
        self.parameters = {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}
        self.losses, self.gradients = [], []
        hidden_points, logits = [], []
        for n in range(batch):
            inputs = _vector(f"x{n}", 2)
            targets = _one_hot_like(f"y{n}", 2)
            z1 = self.W1 * inputs + self.b1  # eq-forward
            a1 = z1.applyfunc(_F)
            z2 = self.W2 * a1 + self.b2
            self.losses.append(_cross_entropy(z2, targets))  # eq-loss
            delta2 = _softmax(z2) - targets  # eq-output-delta
            delta1 = (self.W2.T * delta2).multiply_elementwise(z1.applyfunc(_f_prime))  # eq-hidden-delta
            self.gradients.append(
                {
                    "W2": delta2 * a1.T,  # eq-weight-grad
                    "b2": delta2,  # eq-bias-grad
                    "W1": delta1 * inputs.T,
                    "b1": delta1,
                }
            )
            hidden_points += list(z1)
            logits += list(z2)
        self.atomizer = _Atomizer(hidden_points, logits)

    def mean_loss(self):
        return sum(self.losses) / len(self.losses)

    def mean_gradient(self, name):
        return sum((g[name] for g in self.gradients), sp.zeros(*self.parameters[name].shape)) / len(
            self.gradients
        )

    def gradients_match(self, loss, expected: dict, names) -> bool:
        """Whether ``sympy.diff(loss, θ)`` equals ``expected[name]`` for every
        entry θ of each named parameter."""
        for name in names:
            parameter = self.parameters[name]
            for index in range(len(parameter)):
                exact = sp.diff(loss, parameter[index])
                if not self.atomizer.equal(exact, expected[name][index]):
                    return False
        return True


def _check_forward() -> bool:
    """eq-forward: the shapes compose for any layer sizes, and the matrix form
    W a + b is the index form Σ_j W_ij a_j + b_i that the loss is built from.

    With symbolic sizes n_{l-1}, n_l, n_{l+1}: z^l has the shape of b^l,
    (W^{l+1})ᵀ δ^{l+1} has the shape of z^l (so the Hadamard product with
    f'(z^l) is defined), and δ^l (a^{l-1})ᵀ has the shape of W^l.
    """
    n_in, n_mid, n_out = sp.symbols("n_0:3", integer=True, positive=True)
    W = sp.MatrixSymbol("W", n_mid, n_in)
    W_next = sp.MatrixSymbol("V", n_out, n_mid)
    a_prev = sp.MatrixSymbol("a", n_in, 1)
    b = sp.MatrixSymbol("b", n_mid, 1)
    delta_next = sp.MatrixSymbol("D", n_out, 1)
    z = W * a_prev + b
    delta = sp.hadamard_product(W_next.T * delta_next, sp.MatrixSymbol("F", n_mid, 1))
    shapes_ok = (
        z.shape == b.shape
        and (W_next.T * delta_next).shape == z.shape
        and (delta * a_prev.T).shape == W.shape
    )
    W_small, a_small, b_small = _matrix("W", 2, 3), _vector("a", 3), _vector("b", 2)
    index_form = sp.Matrix(
        [sum(W_small[i, j] * a_small[j] for j in range(3)) + b_small[i] for i in range(2)]
    )
    return bool(shapes_ok and sp.expand(W_small * a_small + b_small - index_form) == sp.zeros(2, 1))


def _check_output_delta(classes: int = 3) -> bool:
    """eq-output-delta: for softmax over symbolic logits with cross-entropy,
    ∂L/∂z_j = p_j − y_j for every j, given Σ y_k = 1."""
    logits = _vector("z", classes)
    targets = _one_hot_like("y", classes)
    loss = _cross_entropy(logits, targets)
    probabilities = _softmax(logits)
    atomizer = _Atomizer([], list(logits))
    return all(
        atomizer.equal(sp.diff(loss, logits[j]), probabilities[j] - targets[j])
        for j in range(classes)
    )


def _check_hidden_delta() -> bool:
    """eq-hidden-delta: with the hidden pre-activations z^1 as symbols,
    ∂L/∂z^1 = ((W^2)ᵀ δ^2) ⊙ f'(z^1) for a generic activation f."""
    z1 = _vector("z1", 2)
    W2, b2 = _matrix("W2", 2, 2), _vector("b2", 2)
    targets = _one_hot_like("y", 2)
    z2 = W2 * z1.applyfunc(_F) + b2
    loss = _cross_entropy(z2, targets)
    delta2 = _softmax(z2) - targets
    delta1 = (W2.T * delta2).multiply_elementwise(z1.applyfunc(_f_prime))
    atomizer = _Atomizer(list(z1), list(z2))
    return all(atomizer.equal(sp.diff(loss, z1[i]), delta1[i]) for i in range(2))


@functools.lru_cache(maxsize=None)
def check_backprop_equations() -> dict[str, bool]:
    """Verify each backpropagation equation with SymPy.

    Keys match ``Equation.check`` of :func:`backprop_equations`:

    * ``forward``: shapes compose for symbolic layer sizes; matrix form equals
      index form.
    * ``output-delta``: 3-class softmax + cross-entropy, ∂L/∂z_j = p_j − y_j.
    * ``hidden-delta``: ∂L/∂z^1 equals the δ recursion, generic f.
    * ``weight-grad``, ``bias-grad``: on one example of a fully symbolic
      2-2-2 network with a generic activation f (so one check covers ReLU,
      tanh, sigmoid and LeCun's activation alike), ``sympy.diff`` of the loss
      with respect to every weight and bias of both layers equals the
      gradient from the δ equations.
    * ``batch-mean``: the same for the mean loss of a batch of two examples
      against the mean of the per-example gradients.
    """
    single, batch = _TinyNetwork(batch=1), _TinyNetwork(batch=2)
    return {
        "forward": _check_forward(),
        "output-delta": _check_output_delta(),
        "hidden-delta": _check_hidden_delta(),
        "weight-grad": single.gradients_match(single.mean_loss(), single.gradients[0], ("W1", "W2")),
        "bias-grad": single.gradients_match(single.mean_loss(), single.gradients[0], ("b1", "b2")),
        "batch-mean": batch.gradients_match(
            batch.mean_loss(),
            {name: batch.mean_gradient(name) for name in batch.parameters},
            tuple(batch.parameters),
        ),
    }


# ---------------------------------------------------------------------------
# The rest of the backpropagation chapter: a worked softmax instance, the
# bound through depth, and the two-layer network's loss and gradients
# ---------------------------------------------------------------------------

#: One sentence per check key, for the chapter's table "equation, check,
#: passed". Keys are those of :func:`check_backprop_equations`,
#: :func:`check_activations` and :func:`check_backprop_derivations`.
CHECK_DESCRIPTIONS = {
    "forward": "Shapes compose for symbolic layer sizes; the matrix form equals the index form.",
    "output-delta": "For 3 symbolic logits, sympy.diff of the cross-entropy equals p − y when Σ y = 1.",
    "hidden-delta": "For a generic activation f, sympy.diff with respect to z¹ equals the δ recursion.",
    "weight-grad": "On a symbolic 2-2-2 network with generic f, sympy.diff with respect to every weight equals δ aᵀ.",
    "bias-grad": "On the same network, sympy.diff with respect to every bias equals δ.",
    "batch-mean": "For a batch of two examples, sympy.diff of the mean loss equals the mean of the per-example gradients.",
    "relu": "f' from sympy.diff agrees with the output form on x > 0 and x < 0; the range is f''s values there.",
    "tanh": "f' from sympy.diff simplifies to 1 − a²; range from f'' = 0 and the limits at ±∞, cross-checked by function_range.",
    "sigmoid": "f' from sympy.diff simplifies to a(1 − a); range from f'' = 0 and the limits at ±∞, cross-checked by function_range.",
    "lecun": "f' from sympy.diff equals the form in t = tanh(2x/3); range from f'' = 0 and the limits, cross-checked by function_range.",
    "softmax-instance": "Every side is printed by SymPy; their differences simplify to 0, the last after substituting y₃ = 1 − y₁ − y₂.",
    "gradient-bound": "sympy.diff of a 3-layer scalar chain is the product of w_l f'(z_l); each f' range lies in [0, sup f'].",
    "two-layer-loss": "−log softmax(s)_c equals the cross-entropy of eq-loss at the one-hot y = e_c, for each of 3 classes.",
    "central-difference": "sympy.series of the central difference in h, minus f'(x), leaves h² f'''(x)/6 + O(h⁴), which is what is printed.",
    "two-layer-gradients": "On a symbolic 2-example, 2-2-2 network with generic f, sympy.diff of the loss (penalty included) equals every entry of the matrix formulas; ReLU's f' is the indicator of H > 0 by its verified output form.",
}


class _SoftmaxInstance(NamedTuple):
    logits: sp.Matrix
    targets: tuple
    loss: sp.Expr           # the cross-entropy with the logarithm expanded
    derivative: sp.Expr     # sympy.diff(loss, z_1), simplified
    sum_form: sp.Expr       # p_1 (y_1 + … + y_C) − y_1, with p_1 a symbol
    probability: sp.Expr    # what the symbol p_1 stands for
    final_form: sp.Expr     # p_1 − y_1


@functools.lru_cache(maxsize=None)
def _softmax_instance(classes: int) -> _SoftmaxInstance:
    logits = _vector("z", classes)
    targets = sp.symbols(f"y_1:{classes + 1}", real=True)
    probabilities = _softmax(logits)
    loss = sp.expand_log(
        -sum(y * sp.log(p) for y, p in zip(targets, probabilities)), force=True
    )
    derivative = sp.simplify(sp.diff(loss, logits[0]))
    p_1 = sp.Symbol("p_1", real=True)
    return _SoftmaxInstance(
        logits=logits,
        targets=targets,
        loss=loss,
        derivative=derivative,
        sum_form=p_1 * sum(targets) - targets[0],
        probability=probabilities[0],
        final_form=p_1 - targets[0],
    )


def softmax_gradient_instance(classes: int = 3) -> Equation:
    """eq-output-delta worked out by SymPy for ``classes`` logits, printed by
    SymPy: the cross-entropy with its logarithm expanded, SymPy's derivative
    with respect to z₁ (simplified), the same as p₁ Σ y_k − y₁, and p₁ − y₁
    once the targets sum to 1. Label ``eq-softmax-instance``, check
    ``softmax-instance``."""
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise UserError(f"a softmax needs at least 2 classes, got {classes!r}")
    item = _softmax_instance(int(classes))
    target_sum = sp.latex(sp.Eq(sum(item.targets), 1))
    body = (
        "\\begin{aligned}\n"
        rf"{_LOSS} &= {sp.latex(item.loss)} \\" "\n"
        rf"\frac{{\partial {_LOSS}}}{{\partial z_{{1}}}} &= {sp.latex(item.derivative)} \\" "\n"
        rf"&= {sp.latex(item.sum_form)} = {sp.latex(item.final_form)} "
        rf"\quad \text{{when }} {target_sum}"
        "\n\\end{aligned}"
    )
    return Equation(
        "eq-softmax-instance",
        body,
        f"The output error of eq-output-delta for {classes} classes, computed and printed by SymPy.",
        "softmax-instance",
    )


def _check_softmax_instance(classes: int = 3) -> bool:
    item = _softmax_instance(classes)
    p_1 = sp.Symbol("p_1", real=True)
    raw = sp.diff(-sum(y * sp.log(p) for y, p in zip(item.targets, _softmax(item.logits))), item.logits[0])
    sum_form = item.sum_form.subs(p_1, item.probability)
    last = item.targets[-1]
    constrained = {last: 1 - sum(item.targets[:-1])}
    return bool(
        sp.simplify(raw - item.derivative) == 0
        and sp.simplify(item.derivative - sum_form) == 0
        and sp.simplify(
            (sum_form - item.final_form.subs(p_1, item.probability)).subs(constrained)
        ) == 0
    )


@functools.lru_cache(maxsize=None)
def gradient_bound_equation() -> Equation:
    """The bound that the activations put on the gradient through L layers:
    |Π_l f'(z^l)| ≤ (sup f')^L, with (sup f')^L printed by SymPy for each
    activation. Label ``eq-gradient-bound``, check ``gradient-bound``."""
    depth = sp.Symbol("L", integer=True, positive=True)
    rows = " \\\\\n".join(
        rf"{sp.latex(item.derivative_supremum ** depth)} & \text{{{item.title}}}"
        for item in activations()
    )
    body = (
        rf"\left|\prod_{{l=1}}^{{L}} f'\left(z^{{l}}\right)\right| \le "
        rf"\left(\sup_{{x}} f'(x)\right)^{{L}} = \begin{{cases}}" "\n" + rows + "\n" + r"\end{cases}"
    )
    return Equation(
        "eq-gradient-bound",
        body,
        "What the activations of L layers can pass back at most, before the weights are counted.",
        "gradient-bound",
    )


def _check_gradient_bound(layers: int = 3) -> bool:
    """The chain rule gives the product that the bound is about, and every
    factor lies in [0, sup f'], so the product is at most (sup f')^L."""
    x = sp.Symbol("x0", real=True)
    weights = sp.symbols(f"w1:{layers + 1}", real=True)
    value, points = x, []
    for weight in weights:
        point = weight * value
        points.append(point)
        value = _F(point)
    product = sp.Mul(*weights) * sp.Mul(*(_f_prime(point) for point in points))
    chain_rule = sp.simplify(sp.diff(value, x) - product) == 0
    factors_bounded = all(
        item.derivative_range.is_subset(sp.Interval(0, item.derivative_supremum))
        for item in activations()
    )
    return bool(chain_rule and factors_bounded)


@functools.lru_cache(maxsize=None)
def two_layer_equations() -> tuple[Equation, ...]:
    """The two-layer network of :class:`analysis.scratch.TwoLayerNet` in its
    own (row) convention: examples are the rows of X, W₁ is (D, H), W₂ is
    (H, C). Labels ``eq-two-layer-loss`` and ``eq-two-layer-gradients``."""
    ones = r"\mathbf{1}"
    return (
        Equation(
            "eq-two-layer-loss",
            r"\begin{aligned}"
            "\n"
            rf"H &= \max\left(0,\; X W_1 + {ones} b_1^{{\top}}\right), \qquad "
            rf"S = H W_2 + {ones} b_2^{{\top}}, \\"
            "\n"
            rf"{_LOSS} &= \frac{{1}}{{N}} \sum_{{i=1}}^{{N}} -\log \operatorname{{softmax}}"
            rf"\left(\mathbf{{s}}_{{i}}\right)_{{y_{{i}}}} + \lambda \left( \left\| W_1 \right\|_F^{{2}} "
            rf"+ \left\| W_2 \right\|_F^{{2}} \right)"
            "\n"
            r"\end{aligned}",
            "The two-layer network's forward pass and loss: mean cross-entropy plus λ times the squared Frobenius norms (no ½).",
            "two-layer-loss",
        ),
        Equation(
            "eq-two-layer-gradients",
            r"\begin{aligned}"
            "\n"
            rf"G &= \tfrac{{1}}{{N}} \left(P - Y\right), & "
            rf"\frac{{\partial {_LOSS}}}{{\partial W_2}} &= H^{{\top}} G + 2 \lambda W_2, & "
            rf"\frac{{\partial {_LOSS}}}{{\partial b_2}} &= G^{{\top}} {ones}, \\"
            "\n"
            rf"G_H &= \left(G W_2^{{\top}}\right) \odot \mathbb{{I}}\left[H > 0\right], & "
            rf"\frac{{\partial {_LOSS}}}{{\partial W_1}} &= X^{{\top}} G_H + 2 \lambda W_1, & "
            rf"\frac{{\partial {_LOSS}}}{{\partial b_1}} &= G_H^{{\top}} {ones}"
            "\n"
            r"\end{aligned}",
            "Its gradients in batch form: P holds the softmax rows, Y the one-hot rows; "
            "eq-output-delta to eq-batch-mean, transposed to the row convention.",
            "two-layer-gradients",
        ),
    )


def _check_two_layer_loss(classes: int = 3) -> bool:
    logits = _vector("s", classes)
    probabilities = _softmax(logits)
    for label in range(classes):
        one_hot = sp.Matrix([1 if k == label else 0 for k in range(classes)])
        claimed = -sp.log(probabilities[label])
        if sp.simplify(_cross_entropy(logits, one_hot) - claimed) != 0:
            return False
    return True


def two_layer_gradient_formula(X, hidden, G, W1, W2, reg, slopes) -> dict:
    """eq-two-layer-gradients: the gradients of the two-layer loss.

    ``X`` (N, D) inputs, ``hidden`` (N, H) hidden activations f(Z1), ``G``
    = (P − Y)/N (N, C), ``W1``, ``W2`` the weights, ``reg`` the penalty
    strength λ, ``slopes`` (N, H) f'(Z1). Works on SymPy matrices; biases'
    gradients are returned as column vectors.
    """
    ones = sp.ones(X.shape[0], 1)
    G_hidden = (G * W2.T).multiply_elementwise(slopes)
    return {
        "W2": hidden.T * G + 2 * reg * W2,
        "b2": G.T * ones,
        "W1": X.T * G_hidden + 2 * reg * W1,
        "b1": G_hidden.T * ones,
    }


def _check_two_layer_gradients(
    examples: int = 2, inputs: int = 2, hidden: int = 2, classes: int = 2, formula=None
) -> bool:
    """The row-convention formulas against sympy.diff, entry by entry, for a
    generic activation f (f' enters through :func:`_f_prime`). ``formula``
    replaces :func:`two_layer_gradient_formula` (same signature) to test
    another one: a wrong one returns ``False``."""
    formula = formula or two_layer_gradient_formula
    X = _matrix("x", examples, inputs)
    W1, b1 = _matrix("W1", inputs, hidden), _vector("b1", hidden)
    W2, b2 = _matrix("W2", hidden, classes), _vector("b2", classes)
    reg = sp.Symbol("lambda", positive=True)
    ones = sp.ones(examples, 1)
    Z1 = X * W1 + ones * b1.T
    H = Z1.applyfunc(_F)
    S = H * W2 + ones * b2.T
    targets = [_one_hot_like(f"y{n}", classes) for n in range(examples)]
    loss = sum(_cross_entropy(S[n, :].T, targets[n]) for n in range(examples)) / examples
    loss += reg * (sum(w**2 for w in W1) + sum(w**2 for w in W2))
    P = sp.Matrix.vstack(*(_softmax(S[n, :].T).T for n in range(examples)))
    Y = sp.Matrix.vstack(*(t.T for t in targets))
    G = (P - Y) / examples
    claimed = formula(X, H, G, W1, W2, reg, Z1.applyfunc(_f_prime))
    parameters = {"W2": W2, "b2": b2, "W1": W1, "b1": b1}
    atomizer = _Atomizer(list(Z1), list(S))
    return all(
        atomizer.equal(sp.diff(loss, parameter[index]), claimed[name][index])
        for name, parameter in parameters.items()
        for index in range(len(parameter))
    )


@functools.lru_cache(maxsize=None)
@functools.lru_cache(maxsize=None)
def central_difference_error() -> sp.Expr:
    """The leading error of the central difference (f(x+h) - f(x-h)) / 2h.

    SymPy's Taylor series in h of the difference quotient minus f'(x), for a
    generic function f: h^2 times the third derivative over 6, so halving h quarters the
    error until rounding, of order eps/h, takes over.
    """
    x, h = sp.symbols("x h")
    f = sp.Function("f")
    quotient = (f(x + h) - f(x - h)) / (2 * h)
    return sp.simplify(sp.series(quotient, h, 0, 4).removeO().doit() - f(x).diff(x))


def central_difference_equation() -> Equation:
    """Label ``eq-central-difference``: the central difference and its error,
    the error term printed by SymPy (check ``central-difference``)."""
    error = sp.latex(central_difference_error())
    body = r"\frac{f(x+h) - f(x-h)}{2h} = f'(x) + " + error + r" + O\left(h^{4}\right)"
    return Equation(
        "eq-central-difference",
        body,
        "The central difference approximates the derivative with an error of order h squared.",
        "central-difference",
    )


def _check_central_difference() -> bool:
    x, h = sp.symbols("x h")
    f = sp.Function("f")
    expected = h**2 * f(x).diff(x, 3) / 6
    return sp.simplify(central_difference_error() - expected) == 0


def check_backprop_derivations() -> dict[str, bool]:
    """Checks behind :func:`softmax_gradient_instance`,
    :func:`gradient_bound_equation` and :func:`two_layer_equations` (see
    :data:`CHECK_DESCRIPTIONS` for what each does)."""
    return {
        "softmax-instance": _check_softmax_instance(),
        "gradient-bound": _check_gradient_bound(),
        "central-difference": _check_central_difference(),
        "two-layer-loss": _check_two_layer_loss(),
        "two-layer-gradients": bool(
            _check_two_layer_gradients() and activation("relu").identity_verified
        ),
    }


# ---------------------------------------------------------------------------
# Layer normalization (Ba, Kiros & Hinton, 2016)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def layernorm_equations() -> tuple[Equation, ...]:
    """Forward and backward pass of layer normalization over the H units of
    one example. Labels: ``eq-layernorm-mean``, ``eq-layernorm-std``,
    ``eq-layernorm-normalize``, ``eq-layernorm-affine``,
    ``eq-layernorm-backward``; checks are keys of
    :func:`check_layernorm_equations`."""
    a, x_hat, g, b, y = r"\mathbf{a}", r"\hat{\mathbf{x}}", r"\mathbf{g}", r"\mathbf{b}", r"\mathbf{y}"
    g_hat = r"\hat{\mathbf{g}}"
    return (
        Equation(
            "eq-layernorm-mean",
            r"\mu = \frac{1}{H} \sum_{i=1}^{H} a_i",
            "The mean over the H units of one example.",
            "layernorm-forward",
        ),
        Equation(
            "eq-layernorm-std",
            r"\sigma = \sqrt{\frac{1}{H} \sum_{i=1}^{H} \left(a_i - \mu\right)^{2} + \epsilon}",
            "The standard deviation over the units (population variance) with a small ε.",
            "layernorm-forward",
        ),
        Equation(
            "eq-layernorm-normalize",
            rf"{x_hat} = \frac{{{a} - \mu}}{{\sigma}}",
            "The normalized activations: mean 0 and, up to ε, variance 1 in every example.",
            "layernorm-forward",
        ),
        Equation(
            "eq-layernorm-affine",
            rf"{y} = {g} \odot {x_hat} + {b}",
            "A learned gain and bias per unit.",
            "layernorm-forward",
        ),
        Equation(
            "eq-layernorm-backward",
            rf"\frac{{\partial L}}{{\partial {a}}} = \frac{{1}}{{\sigma}} \left[ {g_hat} - "
            rf"\operatorname{{mean}}\left({g_hat}\right) - {x_hat} \, "
            rf"\operatorname{{mean}}\left({g_hat} \odot {x_hat}\right) \right], \qquad "
            rf"{g_hat} = {g} \odot \frac{{\partial L}}{{\partial {y}}}",
            "The backward pass to the layer's input; the means run over the H units.",
            "layernorm-backward",
        ),
    )


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


def _layernorm_symbols(units: int) -> _LayerNormSymbols:
    """A symbolic layer of ``units`` units: inputs a_i, gains g_i, biases b_i,
    upstream gradients dy_i = ∂L/∂y_i and ε > 0, with the forward pass."""
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 2:
        raise UserError(f"a layer-norm check needs at least 2 units, got {units!r}")
    symbols = lambda stem: sp.symbols(f"{stem}1:{units + 1}", real=True)  # noqa: E731
    inputs, gains, biases, upstream = (symbols(s) for s in ("a", "g", "b", "dy"))
    epsilon = sp.Symbol("epsilon", positive=True)
    mean = sum(inputs) / units  # eq-layernorm-mean
    sigma = sp.sqrt(sum((a - mean) ** 2 for a in inputs) / units + epsilon)  # eq-layernorm-std
    normalized = [(a - mean) / sigma for a in inputs]  # eq-layernorm-normalize
    outputs = [g * x + b for g, x, b in zip(gains, normalized, biases)]  # eq-layernorm-affine
    return _LayerNormSymbols(inputs, gains, biases, upstream, epsilon, mean, sigma, normalized, outputs)


def layernorm_backward_formula(normalized, scaled_upstream, sigma) -> list:
    """The book's backward formula (eq-layernorm-backward), element by element:
    ∂L/∂a_j = (ĝ_j − mean(ĝ) − x̂_j · mean(ĝ ⊙ x̂)) / σ.

    ``normalized`` is x̂, ``scaled_upstream`` is ĝ = g ⊙ ∂L/∂y (sequences of
    equal length), ``sigma`` is σ. Works on SymPy expressions and on numbers.
    """
    units = len(normalized)
    mean_g = sum(scaled_upstream) / units
    mean_gx = sum(g * x for g, x in zip(scaled_upstream, normalized)) / units
    return [(g - mean_g - x * mean_gx) / sigma for g, x in zip(scaled_upstream, normalized)]


def _zero_expression(expression: sp.Expr, symbols) -> bool:
    """Whether an expression is identically zero.

    Exact algebra decides first (``cancel`` after ``expand`` suffices for the
    layer-norm expressions). If that leaves something, the expression is
    evaluated to 30 digits at random rational points: a clearly non-zero
    value is a witness that it is not zero. Only if every point gives ~0 do
    we fall back to the slow ``simplify``, and raise if even that cannot
    decide.
    """
    if sp.cancel(sp.expand(expression)) == 0:
        return True
    generator = random.Random(0)
    for _ in range(3):
        point = {s: sp.Rational(generator.randint(1, 97), generator.randint(1, 13)) for s in symbols}
        if abs(sp.N(expression.subs(point), 30)) > 1e-20:
            return False
    if sp.simplify(expression) == 0:
        return True
    raise RuntimeError(f"could not decide whether {expression} is zero")


def check_layernorm_backward(units: int = 3, backward=None) -> bool:
    """Verify the layer-norm backward formula on a symbolic layer.

    On ``units`` units with symbolic a_i, g_i, b_i, upstream gradients dy_i
    and ε, compares the formula with the exact vector-Jacobian product
    ∂L/∂a_j = Σ_i dy_i ∂y_i/∂a_j from ``sympy.diff``. ``backward`` replaces
    :func:`layernorm_backward_formula` (same signature) to test another
    formula: a wrong one returns ``False``.
    """
    backward = backward or layernorm_backward_formula
    layer = _layernorm_symbols(units)
    exact = [
        sum(dy * sp.diff(y, a) for dy, y in zip(layer.upstream, layer.outputs))
        for a in layer.inputs
    ]
    scaled = [g * dy for g, dy in zip(layer.gains, layer.upstream)]
    claimed = backward(layer.normalized, scaled, layer.sigma)
    if len(claimed) != units:
        return False
    symbols = (*layer.inputs, *layer.gains, *layer.upstream, layer.epsilon)
    return all(_zero_expression(e - c, symbols) for e, c in zip(exact, claimed))


@functools.lru_cache(maxsize=None)
def check_layernorm_equations(units: int = 3) -> dict[str, bool]:
    """Checks behind :func:`layernorm_equations`.

    * ``layernorm-forward``: the normalized activations have mean 0 and
      mean square var/(var + ε), i.e. variance 1 up to ε, for symbolic inputs.
    * ``layernorm-backward``: :func:`check_layernorm_backward`.
    """
    layer = _layernorm_symbols(units)
    variance = sum((a - layer.mean) ** 2 for a in layer.inputs) / units
    mean_normalized = sum(layer.normalized) / units
    mean_square = sum(x**2 for x in layer.normalized) / units
    symbols = (*layer.inputs, layer.epsilon)
    forward = _zero_expression(mean_normalized, symbols) and _zero_expression(
        mean_square - variance / (variance + layer.epsilon), symbols
    )
    return {
        "layernorm-forward": bool(forward),
        "layernorm-backward": check_layernorm_backward(units),
    }
