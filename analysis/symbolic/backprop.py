"""Backpropagation for an L-layer perceptron with a softmax output, checked by
SymPy on a network with two hidden layers, plus the rest of the
backpropagation chapter: a worked softmax instance, the central difference,
and the two-layer network of the CS231n assignment.

Every display is registered with its parts (see :mod:`analysis.symbolic.core`).
The checks build a small symbolic network *from the registered parts* (the
forward pass of eq-forward, the loss of eq-loss) and compare the registered
formulas with ``sympy.diff`` of that loss, for a generic activation f: one
check covers every activation. A candidate formula can be passed to every
check, and a wrong one fails.
"""

from __future__ import annotations

import functools
from typing import Sequence

import sympy as sp

from analysis.symbolic.core import (
    Equation,
    FrobeniusNorm,
    check,
    instantiate,
    matrix,
    provides_equations,
    run_check,
    safely,
    vector,
)

# ---------------------------------------------------------------------------
# A generic activation f whose derivative SymPy writes as f'(·) (not as a
# Subs object), so that derivatives of nested layers stay readable.
# ---------------------------------------------------------------------------


class F_PRIME(sp.Function):  # noqa: N801 - named as the mathematics writes it
    """f', the derivative of the generic activation."""


class F(sp.Function):  # noqa: N801
    """A generic activation f."""

    def fdiff(self, argindex=1):
        return F_PRIME(self.args[0])


class ElementwiseMax(sp.Function):
    """max(0, M) applied entry by entry; printed as ``\\max\\left(0, M\\right)``."""

    def _latex(self, printer):
        return rf"\max\left(0, {printer._print(self.args[0])}\right)"


# ---------------------------------------------------------------------------
# Display symbols. Sizes are symbolic; the checks substitute small numbers.
# ---------------------------------------------------------------------------

_UNITS, _INPUTS, _NEXT, _CLASSES = sp.symbols("n m q C", integer=True, positive=True)
_K, _J, _EXAMPLE = sp.symbols("k j n", integer=True, positive=True)
_BATCH = sp.Symbol("N", integer=True, positive=True)


def _column(name, rows=_UNITS):
    return sp.MatrixSymbol(name, rows, 1)


Z = _column(r"\mathbf{z}^{l}")
A = _column(r"\mathbf{a}^{l}")
A_PREVIOUS = _column(r"\mathbf{a}^{l-1}", _INPUTS)
B = _column(r"\mathbf{b}^{l}")
W = sp.MatrixSymbol("W^{l}", _UNITS, _INPUTS)
F_OF_Z = _column(r"f\left(\mathbf{z}^{l}\right)")
F_PRIME_OF_Z = _column(r"f'\left(\mathbf{z}^{l}\right)")
RELU_SLOPE = _column(r"\mathbb{1}\left[\mathbf{z}^{l} > 0\right]")
DELTA = _column(r"\boldsymbol{\delta}^{l}")
DELTA_NEXT = _column(r"\boldsymbol{\delta}^{l+1}", _NEXT)
W_NEXT = sp.MatrixSymbol("W^{l+1}", _NEXT, _UNITS)
LOSS = sp.Symbol(r"\mathcal{L}")
PROBABILITIES = _column(r"\mathbf{p}", _CLASSES)
TARGETS = _column(r"\mathbf{y}", _CLASSES)
Z_OUTPUT = _column(r"\mathbf{z}^{L}", _CLASSES)
DELTA_OUTPUT = _column(r"\boldsymbol{\delta}^{L}", _CLASSES)
_P, _Y, _Z = (sp.IndexedBase(name) for name in ("p", "y", "z^{L}"))
_EXAMPLE_LOSS = sp.IndexedBase(r"\mathcal{L}")
_PARAMETER = sp.Symbol(r"\theta")
ONES = sp.OneMatrix(_UNITS, 1)
T_STORED = _column(r"\mathbf{t}^{l}")


class ElementwiseTanh(sp.Function):
    """tanh applied entry by entry to a vector; printed as ``tanh(v)``."""

    def _latex(self, printer):
        return rf"\tanh\left({printer._print(self.args[0])}\right)"


def _lecun_constants():
    from analysis.symbolic.activations import _A, _B, _C, _LECUN_PRINTING, _LECUN_VALUES

    return _A, _B, _C, _LECUN_PRINTING, _LECUN_VALUES

_VECTOR_SYMBOLS = {}  # filled per check; see _layer_values


def _hadamard(*factors):
    return sp.HadamardProduct(*factors, evaluate=False)


#: The hidden-layer recursion written for each activation: f'(z) in terms of
#: what the forward pass stored (eq-delta-relu, eq-delta-tanh, eq-delta-sigmoid).
DELTA_BY_ACTIVATION = {
    "relu": _hadamard(W_NEXT.T * DELTA_NEXT, RELU_SLOPE),
    "tanh": _hadamard(W_NEXT.T * DELTA_NEXT, sp.MatAdd(ONES, -_hadamard(A, A), evaluate=False)),
    "sigmoid": _hadamard(W_NEXT.T * DELTA_NEXT, A, sp.MatAdd(ONES, -A, evaluate=False)),
}
HIDDEN_DELTA = _hadamard(W_NEXT.T * DELTA_NEXT, F_PRIME_OF_Z)


def _lecun_slope():
    """LeCun's f'(z) = A·B·(1 − t∘t) + c, in the stored t = tanh(Bz)."""
    scale, slope, leak, _, _ = _lecun_constants()
    return sp.MatAdd(
        sp.MatMul(scale * slope, sp.MatAdd(ONES, -_hadamard(T_STORED, T_STORED), evaluate=False), evaluate=False),
        leak * ONES,
        evaluate=False,
    )


def _lecun_delta():
    return _hadamard(W_NEXT.T * DELTA_NEXT, _lecun_slope())


DELTA_BY_ACTIVATION["lecun"] = _lecun_delta()


@provides_equations
@functools.lru_cache(maxsize=None)
def backprop_equations() -> tuple[Equation, ...]:
    """eq-forward, eq-loss, eq-output-delta, eq-hidden-delta, eq-weight-grad,
    eq-bias-grad, eq-batch-mean, in the order the chapter shows them."""
    probability = sp.exp(_Z[_K]) / sp.Sum(sp.exp(_Z[_J]), (_J, 1, _CLASSES))
    return (
        Equation(
            "eq-forward",
            r"<<affine>>, \qquad <<activation>>",
            {
                "affine": sp.Eq(Z, W * A_PREVIOUS + B, evaluate=False),
                "activation": sp.Eq(A, F_OF_Z, evaluate=False),
            },
            "The forward pass: an affine map followed by the activation, element-wise.",
        ),
        Equation(
            "eq-loss",
            r"<<probability>>, \qquad <<loss>>",
            {
                "probability": sp.Eq(_P[_K], probability, evaluate=False),
                "loss": sp.Eq(LOSS, -sp.Sum(_Y[_K] * sp.log(_P[_K]), (_K, 1, _CLASSES)), evaluate=False),
            },
            "The output layer: softmax probabilities and the cross-entropy with a one-hot y.",
            settings={"order": "none"},
        ),
        Equation(
            "eq-output-delta",
            r"<<delta>> = <<derivative>> = <<formula>>",
            {
                "delta": DELTA_OUTPUT,
                "derivative": sp.Derivative(LOSS, Z_OUTPUT, evaluate=False),
                "formula": sp.MatAdd(PROBABILITIES, -TARGETS, evaluate=False),
            },
            "The error of the output layer, for softmax with cross-entropy (using Σ_k y_k = 1).",
            check="output-delta",
        ),
        Equation(
            "eq-hidden-delta",
            r"<<delta>> = <<derivative>> = <<formula>>",
            {"delta": DELTA, "derivative": sp.Derivative(LOSS, Z, evaluate=False), "formula": HIDDEN_DELTA},
            "The error of a hidden layer, passed back through the weights and the activation's derivative.",
            check="hidden-delta",
        ),
        *(
            Equation(
                f"eq-delta-{name}",
                r"<<delta>> = <<formula>>",
                {"delta": DELTA, "formula": formula},
                {
                    "relu": "eq-hidden-delta for ReLU: the error passes where the unit was active.",
                    "tanh": "eq-hidden-delta for tanh, with f' = 1 − a² from the stored output.",
                    "sigmoid": "eq-hidden-delta for the sigmoid, with f' = a(1 − a) from the stored output.",
                }[name],
                check=f"delta-{name}",
            )
            for name, formula in DELTA_BY_ACTIVATION.items()
            if name != "lecun"
        ),
        Equation(
            "eq-depth-lecun-delta",
            "\\begin{aligned}\n<<delta>> &= \\left(<<backward>>\\right) \\\\\n&\\quad \\circ \\left(<<slope>>\\right), \\\\\n"
            "<<t>> &= <<t_value>>\n\\end{aligned}",
            {
                "delta": DELTA,
                "backward": W_NEXT.T * DELTA_NEXT,
                "slope": _lecun_slope(),
                "t": T_STORED,
                "t_value": ElementwiseTanh(_lecun_constants()[1] * Z),
            },
            "eq-hidden-delta for LeCun's scaled tanh, with f' written in the stored t = tanh(2z/3).",
            check="delta-lecun",
            settings=_lecun_constants()[3],
        ),
        Equation(
            "eq-weight-grad",
            r"<<derivative>> = <<formula>>",
            {"derivative": sp.Derivative(LOSS, W, evaluate=False), "formula": DELTA * A_PREVIOUS.T},
            "The weight gradient: the outer product of a layer's error and its input.",
            check="weight-grad",
        ),
        Equation(
            "eq-bias-grad",
            r"<<derivative>> = <<formula>>",
            {"derivative": sp.Derivative(LOSS, B, evaluate=False), "formula": DELTA},
            "The bias gradient equals the layer's error.",
            check="bias-grad",
        ),
        Equation(
            "eq-batch-mean",
            r"<<mean_gradient>> = <<formula>>, \qquad \theta \in \left\{W^{l}, \mathbf{b}^{l}\right\}",
            {
                "mean_gradient": sp.Derivative(
                    sp.Sum(_EXAMPLE_LOSS[_EXAMPLE], (_EXAMPLE, 1, _BATCH)) / _BATCH, _PARAMETER, evaluate=False
                ),
                "formula": sp.Sum(
                    sp.Derivative(_EXAMPLE_LOSS[_EXAMPLE], _PARAMETER, evaluate=False), (_EXAMPLE, 1, _BATCH)
                )
                / _BATCH,
            },
            "For a mini-batch of N examples the loss, and so every gradient, is the mean over the examples.",
            check="batch-mean",
        ),
    )


def _part(label: str, name: str):
    from analysis.symbolic.core import equation

    return equation(label)[name]


# ---------------------------------------------------------------------------
# The network the checks differentiate, built from eq-forward and eq-loss
# ---------------------------------------------------------------------------


def cross_entropy(logits: sp.Matrix, targets: sp.Matrix) -> sp.Expr:
    """The loss of eq-loss for these logits and targets: its registered
    cross-entropy with its registered softmax substituted."""
    classes = logits.rows
    loss = _part("eq-loss", "loss").rhs.subs(_CLASSES, classes).doit()
    probability = _part("eq-loss", "probability").rhs

    def softmax_entry(index):
        return probability.subs({_K: index, _CLASSES: classes}).doit()

    loss = loss.replace(lambda e: isinstance(e, sp.Indexed) and e.base == _P, lambda e: softmax_entry(e.indices[0]))
    return loss.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base in (_Z, _Y),
        lambda e: (logits if e.base == _Z else targets)[int(e.indices[0]) - 1],
    )


def softmax(logits: sp.Matrix) -> sp.Matrix:
    """eq-loss's probabilities as a column."""
    probability = _part("eq-loss", "probability").rhs
    entries = [
        probability.subs({_K: k, _CLASSES: logits.rows}).doit().replace(
            lambda e: isinstance(e, sp.Indexed), lambda e: logits[int(e.indices[0]) - 1]
        )
        for k in range(1, logits.rows + 1)
    ]
    return sp.Matrix(entries)


def _targets(name: str, classes: int) -> sp.Matrix:
    """Targets y_1 … y_{C-1}, with y_C = 1 - Σ y_k: any distribution, in
    particular any one-hot vector."""
    free = sp.symbols(f"{name}_1:{classes}", real=True)
    return sp.Matrix([*free, 1 - sum(free)])


def forward(weights: sp.Matrix, inputs: sp.Matrix, biases: sp.Matrix) -> sp.Matrix:
    """z = W a + b as eq-forward states it."""
    return instantiate(
        _part("eq-forward", "affine").rhs,
        {W: weights, A_PREVIOUS: inputs, B: biases, _UNITS: weights.rows, _INPUTS: weights.cols},
    )


def output_delta(formula, logits: sp.Matrix, targets: sp.Matrix) -> sp.Matrix:
    return instantiate(
        formula, {PROBABILITIES: softmax(logits), TARGETS: targets, _CLASSES: logits.rows}
    )


def hidden_delta(formula, weights_next, delta_next, points, stored=None) -> sp.Matrix:
    """δ^l from ``formula`` (an eq-hidden-delta candidate) at pre-activations
    ``points``; ``stored`` is the activation's output a^l (for the
    activation-specific forms) or ``None`` for the generic f."""
    values = {
        W_NEXT: weights_next,
        DELTA_NEXT: delta_next,
        F_PRIME_OF_Z: points.applyfunc(F_PRIME),
        _UNITS: weights_next.cols,
        _NEXT: weights_next.rows,
    }
    if stored is not None:
        values[A] = stored
        values[RELU_SLOPE] = points.applyfunc(lambda point: sp.Heaviside(point))
    return instantiate(formula, values)


class _Atomizer:
    """Turn a derivative of the network's loss into a rational function.

    ``sympy.diff`` of the loss contains f(z), f'(z) and exponentials of the
    logits. Replacing f and f' at each pre-activation by independent symbols
    (layer by layer, so the second layer's points are written in the first
    layer's symbols) and each exp(Σ c_k z_k) by Π e_k^{c_k} gives a rational
    function; if a difference of two derivatives is zero as a rational
    function of independent symbols, it is zero for every activation f and
    every value of the weights. ``cancel`` decides that in milliseconds.
    """

    def __init__(self, layers: Sequence[Sequence[sp.Expr]], logits: Sequence[sp.Expr]):
        self.stages: list[dict] = []
        for points in layers:
            stage = {}
            for point in points:
                point = self._atoms(point)
                stage[F(point)] = sp.Dummy("h")
                stage[F_PRIME(point)] = sp.Dummy("d")
            self.stages.append(stage)
        self.logits = [self._atoms(logit) for logit in logits]
        self.exponentials = [sp.Dummy(f"e{k}", positive=True) for k in range(len(logits))]
        self.coefficients = sp.symbols(f"c0:{len(logits)}", cls=sp.Dummy)
        self.base = sorted(set().union(*(logit.free_symbols for logit in self.logits)), key=str)
        self._cache: dict = {}

    def _atoms(self, expression):
        for stage in self.stages:
            expression = expression.xreplace(stage)
        return expression

    def _exponential(self, argument):
        if argument not in self._cache:
            residual = argument - sum(c * z for c, z in zip(self.coefficients, self.logits))
            equations = sp.Poly(residual, *self.base).coeffs()
            solutions = sp.solve(equations, self.coefficients, dict=True)
            if not solutions:
                raise RuntimeError(f"exp({argument}) is not a combination of the logits")
            self._cache[argument] = sp.Mul(
                *(e ** solutions[0].get(c, 0) for c, e in zip(self.coefficients, self.exponentials))
            )
        return self._cache[argument]

    def __call__(self, expression):
        return self._atoms(expression).replace(sp.exp, self._exponential)

    def equal(self, left, right) -> bool:
        return sp.cancel(sp.together(self(left) - self(right))) == 0


# Layer sizes of the check network: 2 inputs, hidden layers of 3 and 2 units,
# 2 classes. No weight matrix is square, so a missing transpose cannot
# compose.
_SIZES = (2, 3, 2, 2)


class _Network:
    """A symbolic network with two hidden layers and a generic activation f,
    built from eq-forward and eq-loss; ``batch`` examples."""

    def __init__(self, batch: int = 1):
        sizes = _SIZES
        self.weights = [matrix(f"W{l}", sizes[l], sizes[l - 1]) for l in range(1, 4)]
        self.biases = [vector(f"b{l}", sizes[l]) for l in range(1, 4)]
        self.examples = []
        layers: list[list] = [[], []]
        logits_all = []
        for n in range(batch):
            inputs = vector(f"x{n}", sizes[0])
            activations, points = [inputs], []
            for l in range(3):
                z = forward(self.weights[l], activations[-1], self.biases[l])
                points.append(z)
                activations.append(z.applyfunc(F))
            targets = _targets(f"y{n}", sizes[-1])
            self.examples.append(
                {"inputs": inputs, "points": points, "activations": activations, "targets": targets,
                 "loss": cross_entropy(points[2], targets)}
            )
            layers[0] += list(points[0])
            layers[1] += list(points[1])
            logits_all += list(points[2])
        self.atomizer = _Atomizer(layers, logits_all)

    def deltas(self, example, output_formula=None, hidden_formula=None):
        """δ³, δ², δ¹ from the output formula and the recursion."""
        output_formula = _part("eq-output-delta", "formula") if output_formula is None else output_formula
        hidden_formula = HIDDEN_DELTA if hidden_formula is None else hidden_formula
        points = example["points"]
        deltas = [output_delta(output_formula, points[2], example["targets"])]
        for l in (1, 0):
            deltas.insert(0, hidden_delta(hidden_formula, self.weights[l + 1], deltas[0], points[l]))
        return deltas


@functools.lru_cache(maxsize=None)
def _network(batch: int) -> _Network:
    return _Network(batch)


# ---------------------------------------------------------------------------
# Checks of the backpropagation equations
# ---------------------------------------------------------------------------


@check(
    "output-delta",
    "For 3 symbolic logits and targets summing to 1, sympy.diff of eq-loss with respect to each logit equals the entry of p − y.",
)
def check_output_delta(formula=None, classes: int = 3) -> bool:
    formula = _part("eq-output-delta", "formula") if formula is None else formula

    def compare():
        logits = vector("z", classes)
        targets = _targets("y", classes)
        loss = cross_entropy(logits, targets)
        claimed = output_delta(formula, logits, targets)
        atomizer = _Atomizer([], list(logits))
        return all(atomizer.equal(sp.diff(loss, logits[j]), claimed[j]) for j in range(classes))

    return safely(compare)


def _backward_from(layer, weights, biases, targets, activation, output_formula, hidden_formula):
    """Free pre-activations u of hidden layer ``layer`` (0 or 1), the layers
    above computed from them with ``activation``, the loss of eq-loss, and δ
    at u from the output formula and the recursion ``hidden_formula``.
    Returns (u, hidden points from u upward, logits, loss, δ)."""
    free = vector(f"u{layer}", _SIZES[layer + 1])
    points, z = [free], free
    for l in range(layer + 1, 3):
        z = forward(weights[l], z.applyfunc(activation), biases[l])
        points.append(z)
    loss = cross_entropy(points[-1], targets)
    delta = output_delta(output_formula, points[-1], targets)
    for i in range(len(points) - 2, -1, -1):
        values = {
            W_NEXT: weights[layer + i + 1],
            DELTA_NEXT: delta,
            F_PRIME_OF_Z: points[i].applyfunc(F_PRIME),
            A: points[i].applyfunc(activation),
            RELU_SLOPE: points[i].applyfunc(sp.Heaviside),
            T_STORED: points[i].applyfunc(lambda point: sp.tanh(_lecun_constants()[4][_lecun_constants()[1]] * point)),
            **{symbol: value for symbol, value in _lecun_constants()[4].items()},
            _UNITS: points[i].rows,
            _NEXT: delta.rows,
        }
        delta = instantiate(hidden_formula, values)
    return free, points[:-1], points[-1], loss, delta


@check(
    "hidden-delta",
    "On a 2-3-2-2 network with two hidden layers and a generic f, built from eq-forward and eq-loss, the recursion "
    "from δ³ gives δ² and δ¹ equal to sympy.diff of the loss with respect to z² and z¹.",
)
def check_hidden_delta(formula=None) -> bool:
    formula = _part("eq-hidden-delta", "formula") if formula is None else formula
    network = _network(1)
    output_formula = _part("eq-output-delta", "formula")

    def compare():
        for layer in range(2):
            free, points, logits, loss, delta = _backward_from(
                layer, network.weights, network.biases, network.examples[0]["targets"], F,
                output_formula, formula,
            )
            atomizer = _Atomizer([list(p) for p in points], list(logits))
            if not all(atomizer.equal(sp.diff(loss, free[i]), delta[i]) for i in range(free.rows)):
                return False
        return True

    return safely(compare)


def _delta_check(name: str, formula=None) -> bool:
    """δ² and δ¹ from the recursion written for ``name`` on a 2-3-2-2 network
    with that activation, against sympy.diff of the loss at random rational
    weights, targets and pre-activations, to 30 digits."""
    import random

    import mpmath

    from analysis.symbolic.activations import X, activation

    if formula is None and name == "lecun":
        formula = _hadamard(_part("eq-depth-lecun-delta", "backward"), _part("eq-depth-lecun-delta", "slope"))
    elif formula is None:
        formula = _part(f"eq-delta-{name}", "formula")
    point = sp.Symbol("s", real=True)
    function = sp.Lambda(point, activation(name).function.subs(X, point))
    generator = random.Random(1)

    def rational():
        return sp.Rational(generator.choice([-1, 1]) * generator.randint(1, 40), generator.randint(7, 23))

    def compare():
        weights = [sp.Matrix(_SIZES[l], _SIZES[l - 1], lambda i, j: rational()) for l in range(1, 4)]
        biases = [sp.Matrix(_SIZES[l], 1, lambda i, j: rational()) for l in range(1, 4)]
        targets = sp.Matrix([sp.Rational(1, 3), sp.Rational(2, 3)])
        output_formula = _part("eq-output-delta", "formula")
        for layer in range(2):
            free, _, _, loss, delta = _backward_from(
                layer, weights, biases, targets, function, output_formula, formula
            )
            # Evaluated with mpmath at 40 digits (evalf on the nested
            # expressions is far slower).
            point = [mpmath.mpf(value.p) / value.q for value in (rational() for _ in range(free.rows))]
            for i in range(free.rows):
                exact = sp.lambdify(list(free), sp.diff(loss, free[i]), modules="mpmath")(*point)
                claimed = sp.lambdify(list(free), delta[i], modules="mpmath")(*point)
                if abs(exact - claimed) > mpmath.mpf(10) ** -20:
                    return False
        return True

    with mpmath.workdps(40):
        return safely(compare)


for _name in DELTA_BY_ACTIVATION:
    check(
        f"delta-{_name}",
        f"On a 2-3-2-2 network with {'LeCun' if _name == 'lecun' else _name} units, δ² and δ¹ from this recursion equal sympy.diff of the loss "
        "with respect to z² and z¹, evaluated to 30 digits at random rational weights and pre-activations.",
    )(functools.partial(_delta_check, _name))


def _gradient_check(parameter_names, formula_label: str, formula=None) -> bool:
    network = _network(1)
    example = network.examples[0]
    formula = _part(formula_label, "formula") if formula is None else formula

    def compare():
        deltas = network.deltas(example)
        for l in range(3):
            if "W" in parameter_names:
                claimed = instantiate(
                    formula,
                    {DELTA: deltas[l], A_PREVIOUS: example["activations"][l],
                     _UNITS: deltas[l].rows, _INPUTS: example["activations"][l].rows},
                )
                parameter = network.weights[l]
            else:
                claimed = instantiate(formula, {DELTA: deltas[l], _UNITS: deltas[l].rows})
                parameter = network.biases[l]
            if claimed.shape != parameter.shape:
                return False
            for index in range(len(parameter)):
                if not network.atomizer.equal(sp.diff(example["loss"], parameter[index]), claimed[index]):
                    return False
        return True

    return safely(compare)


@check(
    "weight-grad",
    "On the same 2-3-2-2 network, sympy.diff of the loss with respect to every weight of all three layers equals δ aᵀ, "
    "with the δ of eq-output-delta and eq-hidden-delta.",
)
def check_weight_gradient(formula=None) -> bool:
    return _gradient_check("W", "eq-weight-grad", formula)


@check("bias-grad", "On the same network, sympy.diff with respect to every bias of all three layers equals δ.")
def check_bias_gradient(formula=None) -> bool:
    return _gradient_check("b", "eq-bias-grad", formula)


@check(
    "batch-mean",
    "For a batch of two examples through the same network, both sides with N = 2, for every weight and bias "
    "of the first and last layer: sympy.diff of the mean loss equals the mean of the per-example derivatives.",
)
def check_batch_mean(formula=None) -> bool:
    equation_parts = _part("eq-batch-mean", "mean_gradient"), _part("eq-batch-mean", "formula")
    left, right = equation_parts[0], equation_parts[1] if formula is None else formula
    network = _network(2)
    losses = [example["loss"] for example in network.examples]

    def side(expression, parameter):
        expression = expression.subs(_BATCH, len(losses))
        expression = expression.replace(
            lambda e: isinstance(e, sp.Sum),
            lambda s: sp.Add(*(s.function.subs(_EXAMPLE, n) for n in range(1, len(losses) + 1))),
        )
        expression = expression.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == _EXAMPLE_LOSS,
            lambda e: losses[int(e.indices[0]) - 1],
        )
        return expression.xreplace({_PARAMETER: parameter}).doit()

    def compare():
        parameters = [*network.weights[0], *network.biases[0], *network.weights[2], *network.biases[2]]
        return all(
            network.atomizer.equal(side(left, parameter), side(right, parameter)) for parameter in parameters
        )

    return safely(compare)


def check_backprop_equations() -> dict[str, bool]:
    """The checks behind :func:`backprop_equations`, by key."""
    keys = [key for item in backprop_equations() for key in item.checks]
    return {key: run_check(key) for key in keys}


# ---------------------------------------------------------------------------
# A worked instance of eq-output-delta for three classes
# ---------------------------------------------------------------------------

_LOGITS = sp.symbols("z_1:4", real=True)
_INSTANCE_TARGETS = sp.symbols("y_1:4", real=True)
_LOG_SUM = sp.Symbol("S", positive=True)
_P1 = sp.Symbol("p_1", real=True)


@provides_equations
@functools.lru_cache(maxsize=None)
def softmax_instance_equations() -> tuple[Equation, ...]:
    z, y = _LOGITS, _INSTANCE_TARGETS
    e1, e2, e3 = (sp.exp(v) for v in z)
    loss = sum(-target * (logit - sp.log(_LOG_SUM)) for target, logit in zip(y, z))
    derivative = ((y[1] + y[2]) * e1 - y[0] * (e2 + e3)) / _LOG_SUM
    template = (
        "\\begin{aligned}\n"
        r"\mathcal{L} &= <<loss>> \\" "\n"
        r"S &= <<sum>> \\" "\n"
        r"\frac{\partial \mathcal{L}}{\partial z_{1}} &= <<derivative>> \\" "\n"
        r"&= <<sum_form>> = <<final_form>> \quad \text{when } <<constraint>>"
        "\n\\end{aligned}"
    )
    return (
        Equation(
            "eq-softmax-instance",
            template,
            {
                "loss": loss,
                "sum": e1 + e2 + e3,
                "derivative": derivative,
                "sum_form": _P1 * sum(y) - y[0],
                "final_form": _P1 - y[0],
                "constraint": sp.Eq(sum(y), 1, evaluate=False),
            },
            "The output error of eq-output-delta for three classes, worked out by SymPy.",
            check="softmax-instance",
        ),
    )


def softmax_gradient_instance(classes: int = 3) -> Equation:
    """The registered ``eq-softmax-instance`` (three classes)."""
    from analysis.errors import UserError

    if classes != 3:
        raise UserError(f"the displayed softmax instance has 3 classes, got {classes!r}")
    return softmax_instance_equations()[0]


@check(
    "softmax-instance",
    "The displayed loss equals eq-loss for 3 classes; sympy.diff of it with respect to z₁ equals the displayed "
    "fraction, which equals p₁ Σ y − y₁ with p₁ the softmax, and that equals p₁ − y₁ once y₃ = 1 − y₁ − y₂.",
)
def check_softmax_instance(derivative=None, sum_form=None, loss=None) -> bool:
    parts = softmax_instance_equations()[0].parts
    derivative = parts["derivative"] if derivative is None else derivative
    sum_form = parts["sum_form"] if sum_form is None else sum_form
    loss = parts["loss"] if loss is None else loss
    total = parts["sum"]
    z, y = sp.Matrix(_LOGITS), sp.Matrix(_INSTANCE_TARGETS)
    expanded = loss.subs(_LOG_SUM, total)
    probability = sp.exp(z[0]) / total
    matches_eq_loss = sp.simplify(sp.expand_log(expanded - cross_entropy(z, y), force=True)) == 0
    exact = sp.diff(expanded, z[0])
    constrained = {y[2]: 1 - y[0] - y[1]}
    final = parts["final_form"].subs(_P1, probability)
    sum_value = sp.sympify(sum_form).subs(_P1, probability)
    return bool(
        matches_eq_loss
        and sp.simplify(exact - sp.sympify(derivative).subs(_LOG_SUM, total)) == 0
        and sp.simplify(sp.sympify(derivative).subs(_LOG_SUM, total) - sum_value) == 0
        and sp.simplify((sum_value - final).subs(constrained)) == 0
    )


# ---------------------------------------------------------------------------
# The central difference
# ---------------------------------------------------------------------------

_x_cd, _h = sp.symbols("x h")
_f = sp.Function("f")


@provides_equations
@functools.lru_cache(maxsize=None)
def central_difference_equations() -> tuple[Equation, ...]:
    numerator = sp.Add(_f(sp.Add(_x_cd, _h, evaluate=False)), -_f(sp.Add(_x_cd, -_h, evaluate=False)), evaluate=False)
    quotient = numerator / (2 * _h)
    return (
        Equation(
            "eq-central-difference",
            r"<<quotient>> = f'(x) + <<error>> + O\left(h^{4}\right)",
            {"quotient": quotient, "error": _h**2 * _f(_x_cd).diff(_x_cd, 3) / 6},
            "The central difference approximates the derivative with an error of order h squared.",
            check="central-difference",
            settings={"order": "none"},
        ),
    )


def central_difference_equation() -> Equation:
    return central_difference_equations()[0]


def central_difference_error() -> sp.Expr:
    """The displayed leading error of the central difference, h² f'''(x)/6."""
    return central_difference_equation()["error"]


@check(
    "central-difference",
    "sympy.series in h of the quotient minus f'(x) minus the displayed error term has no term below h⁴.",
)
def check_central_difference(error=None, quotient=None) -> bool:
    parts = central_difference_equation().parts
    error = parts["error"] if error is None else error
    quotient = parts["quotient"] if quotient is None else quotient
    remainder = sp.series(quotient - _f(_x_cd).diff(_x_cd) - error, _h, 0, 4).removeO().doit()
    return sp.simplify(remainder) == 0


# ---------------------------------------------------------------------------
# The two-layer network of the CS231n assignment, in its row convention
# ---------------------------------------------------------------------------

_N2, _D2, _H2, _C2 = sp.symbols("N D H C", integer=True, positive=True)
X2 = sp.MatrixSymbol("X", _N2, _D2)
W1 = sp.MatrixSymbol("W_1", _D2, _H2)
W2 = sp.MatrixSymbol("W_2", _H2, _C2)
B1 = sp.MatrixSymbol("b_1", _H2, 1)
B2 = sp.MatrixSymbol("b_2", _C2, 1)
# The hidden activations are A (H is the hidden layer's width elsewhere in
# the book; the assignment's code calls this matrix H).
HIDDEN = sp.MatrixSymbol("A", _N2, _H2)
SCORES = sp.MatrixSymbol("S", _N2, _C2)
G = sp.MatrixSymbol("G", _N2, _C2)
G_HIDDEN = sp.MatrixSymbol("G_A", _N2, _H2)
P2 = sp.MatrixSymbol("P", _N2, _C2)
Y2 = sp.MatrixSymbol("Y", _N2, _C2)
HIDDEN_SLOPE = sp.MatrixSymbol(r"\mathbb{1}\left[A > 0\right]", _N2, _H2)
REG = sp.Symbol(r"\lambda", positive=True)
ONES_N = sp.OneMatrix(_N2, 1)
_I2, _K2 = sp.symbols("i k", integer=True, positive=True)
_PI, _YI = sp.IndexedBase("P"), sp.IndexedBase("Y")


def _penalty():
    return REG * (FrobeniusNorm(W1) ** 2 + FrobeniusNorm(W2) ** 2)


@provides_equations
@functools.lru_cache(maxsize=None)
def two_layer_equations() -> tuple[Equation, ...]:
    """eq-two-layer-loss (a definition) and eq-two-layer-gradients, for
    :class:`analysis.scratch.TwoLayerNet` (examples are the rows of X)."""
    cross_entropy_term = -sp.Sum(sp.Sum(_YI[_I2, _K2] * sp.log(_PI[_I2, _K2]), (_K2, 1, _C2)), (_I2, 1, _N2)) / _N2
    loss_template = (
        "\\begin{aligned}\n"
        r"A &= <<hidden>>, \qquad S = <<scores>>, \\" "\n"
        r"\mathcal{L} &= <<cross_entropy>> \\" "\n"
        r"&\quad + <<penalty>>"
        "\n\\end{aligned}"
    )
    gradients_template = (
        "\\begin{aligned}\n"
        r"G &= <<G>>, & \frac{\partial \mathcal{L}}{\partial W_2} &= <<W2>>, \\" "\n"
        r"\frac{\partial \mathcal{L}}{\partial b_2} &= <<b2>>, & G_A &= <<G_H>>, \\" "\n"
        r"\frac{\partial \mathcal{L}}{\partial W_1} &= <<W1>>, & \frac{\partial \mathcal{L}}{\partial b_1} &= <<b1>>"
        "\n\\end{aligned}"
    )
    return (
        Equation(
            "eq-two-layer-loss",
            loss_template,
            {
                "hidden": ElementwiseMax(X2 * W1 + ONES_N * B1.T),
                "scores": HIDDEN * W2 + ONES_N * B2.T,
                "cross_entropy": cross_entropy_term,
                "penalty": _penalty(),
            },
            "The two-layer network's forward pass and loss: mean cross-entropy of the softmax rows P of S "
            "with the one-hot rows Y, plus λ times the squared Frobenius norms (no ½).",
            settings={"order": "none"},
        ),
        Equation(
            "eq-two-layer-gradients",
            gradients_template,
            {
                "G": sp.MatMul(1 / _N2, sp.MatAdd(P2, -Y2, evaluate=False), evaluate=False),
                "W2": sp.MatAdd(HIDDEN.T * G, 2 * REG * W2, evaluate=False),
                "b2": G.T * ONES_N,
                "G_H": _hadamard(G * W2.T, HIDDEN_SLOPE),
                "W1": sp.MatAdd(X2.T * G_HIDDEN, 2 * REG * W1, evaluate=False),
                "b1": G_HIDDEN.T * ONES_N,
            },
            "Its gradients in batch form, P the softmax rows and Y the one-hot rows: eq-output-delta to "
            "eq-batch-mean, transposed to the row convention, plus the penalty's 2λW.",
            check=("two-layer-gradients", "two-layer-penalty"),
        ),
    )


def _two_layer_parts(name):
    return two_layer_equations()[1 if name in ("G", "W2", "b2", "G_H", "W1", "b1") else 0][name]


def two_layer_gradient_formula(X, hidden, G_value, W1_value, W2_value, reg, slopes, formulas=None) -> dict:
    """eq-two-layer-gradients evaluated: ``X`` (N, D), ``hidden`` f(Z1)
    (N, H), ``G_value`` = (P − Y)/N, the weights, ``reg`` λ and ``slopes``
    f'(Z1) (N, H). ``formulas`` replaces the displayed parts by name. SymPy
    matrices in; the biases' gradients come back as columns."""
    formulas = {**{name: _two_layer_parts(name) for name in ("W2", "b2", "G_H", "W1", "b1")}, **(formulas or {})}
    sizes = {_N2: X.rows, _D2: X.cols, _H2: hidden.cols, _C2: G_value.cols}
    values = {X2: X, HIDDEN: hidden, G: G_value, W1: W1_value, W2: W2_value, REG: reg, HIDDEN_SLOPE: slopes, **sizes}
    values[G_HIDDEN] = instantiate(formulas["G_H"], values)
    return {name: instantiate(formulas[name], values) for name in ("W2", "b2", "W1", "b1")}


def _two_layer_loss(X, W1_value, b1_value, W2_value, b2_value, targets, penalty=None):
    """eq-two-layer-loss for a generic activation f in place of max(0, ·):
    (loss, hidden, scores, Z1)."""
    parts = two_layer_equations()[0].parts
    sizes = {_N2: X.rows, _D2: X.cols, _H2: W1_value.cols, _C2: W2_value.cols}
    values = {X2: X, W1: W1_value, B1: b1_value, W2: W2_value, B2: b2_value, **sizes}
    Z1 = instantiate(parts["hidden"].args[0], values)
    hidden = Z1.applyfunc(F)
    scores = instantiate(parts["scores"], {**values, HIDDEN: hidden})
    probabilities = sp.Matrix.vstack(*(softmax(scores[n, :].T).T for n in range(X.rows)))
    cross = parts["cross_entropy"].subs({_N2: X.rows, _C2: W2_value.cols}).doit()
    cross = cross.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base in (_PI, _YI),
        lambda e: (probabilities if e.base == _PI else targets)[int(e.indices[0]) - 1, int(e.indices[1]) - 1],
    )
    penalty = parts["penalty"] if penalty is None else penalty
    loss = cross + instantiate(penalty, {W1: W1_value, W2: W2_value})
    return loss, hidden, probabilities, Z1


@check(
    "two-layer-gradients",
    "On a symbolic 2-example, 2-2-2 network with generic f, built from eq-two-layer-loss (penalty included), sympy.diff "
    "of the loss equals every entry of the displayed matrix formulas; ReLU's f' is the indicator of A > 0 by its verified output form.",
)
def check_two_layer_gradients(formulas=None, penalty=None, examples: int = 2, inputs: int = 2,
                              hidden_units: int = 2, classes: int = 2) -> bool:
    """``formulas`` replaces displayed gradient parts by name (``"W2"``,
    ``"G_H"``, …); ``penalty`` replaces the loss's penalty term."""

    def compare():
        X = matrix("x", examples, inputs)
        W1_value, b1_value = matrix("W1", inputs, hidden_units), vector("b1", hidden_units)
        W2_value, b2_value = matrix("W2", hidden_units, classes), vector("b2", classes)
        targets = sp.Matrix.vstack(*(_targets(f"y{n}", classes).T for n in range(examples)))
        loss, hidden, probabilities, Z1 = _two_layer_loss(
            X, W1_value, b1_value, W2_value, b2_value, targets, penalty
        )
        G_value = instantiate(
            (formulas or {}).get("G", _two_layer_parts("G")),
            {P2: probabilities, Y2: targets, _N2: examples, _C2: classes},
        )
        claimed = two_layer_gradient_formula(
            X, hidden, G_value, W1_value, W2_value, REG, Z1.applyfunc(F_PRIME), formulas
        )
        parameters = {"W2": W2_value, "b2": b2_value, "W1": W1_value, "b1": b1_value}
        scores = [forward(W2_value.T, hidden[n, :].T, b2_value) for n in range(examples)]
        atomizer = _Atomizer([list(Z1)], [entry for s in scores for entry in s])
        return all(
            claimed[name].shape == parameter.shape
            and all(
                atomizer.equal(sp.diff(loss, parameter[index]), claimed[name][index])
                for index in range(len(parameter))
            )
            for name, parameter in parameters.items()
        ) and run_check("relu")

    return safely(compare)


@check(
    "two-layer-penalty",
    "The penalty of eq-two-layer-loss on symbolic 2×3 and 3×2 weights is λ times the sum of their squared entries, "
    "and its sympy.diff equals the terms in λ of the displayed gradients of W₁ and W₂ (2λW).",
)
def check_two_layer_penalty(penalty=None, formulas=None) -> bool:
    """``penalty`` replaces the loss's penalty term, ``formulas`` the
    displayed ``"W1"``/``"W2"`` gradients."""
    penalty = _two_layer_parts("penalty") if penalty is None else penalty
    formulas = {**{name: _two_layer_parts(name) for name in ("W1", "W2")}, **(formulas or {})}

    def compare():
        weights = {W1: matrix("V", 2, 3), W2: matrix("U", 3, 2)}
        value = instantiate(penalty, weights)
        if sp.expand(value - REG * sum(w**2 for m in weights.values() for w in m)) != 0:
            return False
        # The data terms vanish when X, G, H and G_H are zero: what is left
        # of each displayed gradient is its penalty term.
        zeros = {X2: sp.zeros(1, 2), G: sp.zeros(1, 2), HIDDEN: sp.zeros(1, 3), G_HIDDEN: sp.zeros(1, 3)}
        for name, symbol in (("W1", W1), ("W2", W2)):
            shown = instantiate(formulas[name], {**weights, **zeros})
            exact = weights[symbol].applyfunc(lambda w: sp.diff(value, w))
            if sp.expand(shown - exact) != sp.zeros(*exact.shape):
                return False
        return True

    return safely(compare)


def check_backprop_derivations() -> dict[str, bool]:
    """Checks behind the softmax instance, the gradient bound, the central
    difference and the two-layer network."""
    return {
        key: run_check(key)
        for key in ("softmax-instance", "gradient-bound", "central-difference", "two-layer-penalty",
                    "two-layer-gradients")
    }
