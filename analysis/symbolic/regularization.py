"""Regularization (chapters/generalization.qmd): the L2 penalty and its
gradient, SGD with L2 as weight decay, Adam with L2 against AdamW for one
step, and inverted dropout's mean and variance.

Every display is checked: the gradient against ``sympy.diff`` of the
penalised loss, the decayed SGD step against the plain step with that
gradient, the two Adam steps against Adam's recursions run from a zero state
(in the order Keras applies AdamW's decay), and dropout's moments against
``sympy.stats`` expectations over a Bernoulli mask.
"""

from __future__ import annotations

import functools

import sympy as sp
from sympy import stats as sp_stats

from analysis.symbolic.core import Equation, check, provides_equations, safely, zero_expression

# --- symbols ------------------------------------------------------------------

_N = sp.Symbol("n", integer=True, positive=True)
_J = sp.Symbol("j", integer=True, positive=True)
_WEIGHTS = sp.IndexedBase("w")
LOSS = sp.Symbol("L", real=True)
PENALISED = sp.Symbol(r"\tilde{L}", real=True)
LAMBDA = sp.Symbol(r"\lambda", positive=True)
ETA = sp.Symbol(r"\eta", positive=True)
EPSILON = sp.Symbol(r"\epsilon", positive=True)
DECAY = sp.Symbol("d", positive=True)          # AdamW's weight_decay (Keras)
BETA_1 = sp.Symbol(r"\beta_{1}", positive=True)
BETA_2 = sp.Symbol(r"\beta_{2}", positive=True)

#: ∂L/∂w_j and ∂L̃/∂w_j as printed symbols: the checks replace them by real
#: derivatives of a symbolic loss.
LOSS_GRADIENT = sp.Symbol(r"\frac{\partial L}{\partial w_{j}}", real=True)
PENALISED_GRADIENT = sp.Symbol(r"\frac{\partial \tilde{L}}{\partial w_{j}}", real=True)
WEIGHT = _WEIGHTS[_J]

#: One weight w and its loss gradient g at the first Adam step.
W = sp.Symbol("w", real=True)
G = sp.Symbol("g", real=True)

#: Dropout: the activation h, the drop rate p, the keep mask m ∈ {0, 1}.
ACTIVATION = sp.Symbol("h", real=True)
RATE = sp.Symbol("p", positive=True)
MASK = sp.Symbol("m", nonnegative=True)


def _add(*terms):
    return sp.Add(*terms, evaluate=False)


def _mul(*factors):
    return sp.Mul(*factors, evaluate=False)


#: λ Σ w_j² added to the loss: what ``keras.regularizers.L2(λ)`` adds for a
#: layer's kernel (no ½).
PENALTY = _add(LOSS, _mul(LAMBDA, sp.Sum(WEIGHT**2, (_J, 1, _N))))
GRADIENT = _add(LOSS_GRADIENT, _mul(2, LAMBDA, WEIGHT))
SGD_STEP = _add(WEIGHT, _mul(-1, ETA, PENALISED_GRADIENT))
DECAYED_STEP = _add(_mul(_add(1, _mul(-2, ETA, LAMBDA)), WEIGHT), _mul(-1, ETA, LOSS_GRADIENT))

_L2_GRADIENT = _add(G, _mul(2, LAMBDA, W))
ADAM_L2_STEP = _add(W, _mul(-1, ETA, _L2_GRADIENT, sp.Pow(_add(sp.Abs(_L2_GRADIENT), EPSILON), -1,
                                                            evaluate=False)))
ADAMW_STEP = _add(_mul(_add(1, _mul(-1, ETA, DECAY)), W),
                  _mul(-1, ETA, G, sp.Pow(_add(sp.Abs(G), EPSILON), -1, evaluate=False)))

DROPPED = _mul(MASK, ACTIVATION, sp.Pow(_add(1, -RATE), -1, evaluate=False))
DROPOUT_MEAN = ACTIVATION
DROPOUT_VARIANCE = _mul(RATE, ACTIVATION**2, sp.Pow(_add(1, -RATE), -1, evaluate=False))

_SETTINGS = {"order": "none"}


@provides_equations
@functools.lru_cache(maxsize=None)
def regularization_equations() -> tuple[Equation, ...]:
    """eq-generalization-l2, -sgd-decay, -adamw and -dropout, each checked."""
    return (
        Equation(
            "eq-generalization-l2",
            "\\begin{aligned}\n<<penalised>> &= <<penalty>>, \\\\\n<<gradient_name>> &= <<gradient>>\n\\end{aligned}",
            {"penalised": PENALISED, "penalty": PENALTY,
             "gradient_name": PENALISED_GRADIENT, "gradient": GRADIENT},
            "Keras's L2(λ) adds λ Σ w² to the loss; each weight's gradient gains 2λw.",
            check="l2-gradient",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-generalization-sgd-decay",
            "w_{j}^{+} = <<step>> = <<decayed>>",
            {"step": SGD_STEP, "decayed": DECAYED_STEP},
            "One SGD step on the penalised loss multiplies each weight by 1 − 2ηλ before the usual step.",
            check="sgd-weight-decay",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-generalization-adamw",
            "\\begin{aligned}\nw_{\\mathrm{L2}}^{+} &= <<adam_l2>>, \\\\\nw_{\\mathrm{W}}^{+} &= <<adamw>>\n"
            "\\end{aligned}",
            {"adam_l2": ADAM_L2_STEP, "adamw": ADAMW_STEP},
            "Adam's first step with the L2 gradient, and AdamW's (decay d applied to the weight, "
            "not to the gradient).",
            check="adam-first-step",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-generalization-dropout",
            "\\tilde{h} = <<dropped>>, \\qquad \\mathbb{E}\\left[\\tilde{h}\\right] = <<mean>>, "
            "\\qquad \\operatorname{Var}\\left[\\tilde{h}\\right] = <<variance>>",
            {"dropped": DROPPED, "mean": DROPOUT_MEAN, "variance": DROPOUT_VARIANCE},
            "Inverted dropout keeps a unit with probability 1 − p and rescales it, so its mean is h.",
            check="inverted-dropout",
            settings=_SETTINGS,
        ),
    )


def _part(label: str, name: str):
    return next(item for item in regularization_equations() if item.label == label)[name]


# --- checks ---------------------------------------------------------------------

_SIZE = 3   # weights of the symbolic layer the L2 checks use


def _loss_and_weights():
    weights = sp.symbols(f"w1:{_SIZE + 1}", real=True)
    return sp.Function("L")(*weights), weights


def _at_weight(expression, loss, weights, k: int):
    """A formula in w_j, ∂L/∂w_j written for weight k of the symbolic layer."""
    return sp.sympify(expression).subs({
        LOSS_GRADIENT: sp.diff(loss, weights[k]), LOSS: loss,
    }).replace(lambda e: isinstance(e, sp.Indexed) and e.base == _WEIGHTS,
               lambda e: weights[k] if e.indices[0] == _J else weights[int(e.indices[0]) - 1])


@check(
    "l2-gradient",
    "For a symbolic loss L(w₁, w₂, w₃), sympy.diff of the displayed penalised loss with respect to each weight "
    "equals the displayed gradient ∂L/∂w_j + 2λw_j.",
)
def check_l2_gradient(penalty=None, gradient=None) -> bool:
    penalty = _part("eq-generalization-l2", "penalty") if penalty is None else penalty
    gradient = _part("eq-generalization-l2", "gradient") if gradient is None else gradient
    loss, weights = _loss_and_weights()

    def compare():
        total = sp.sympify(penalty).subs({_N: _SIZE, LOSS: loss}).doit()
        total = total.replace(lambda e: isinstance(e, sp.Indexed) and e.base == _WEIGHTS,
                              lambda e: weights[int(e.indices[0]) - 1])
        return all(zero_expression(sp.diff(total, weights[k]) - _at_weight(gradient, loss, weights, k),
                                   (*weights, LAMBDA))
                   for k in range(_SIZE))

    return safely(compare)


@check(
    "sgd-weight-decay",
    "The SGD step w − η ∂L̃/∂w with the displayed L2 gradient substituted equals the displayed decayed step "
    "(1 − 2ηλ)w − η ∂L/∂w, identically in w, η, λ and ∂L/∂w.",
)
def check_sgd_weight_decay(decayed=None, gradient=None) -> bool:
    decayed = _part("eq-generalization-sgd-decay", "decayed") if decayed is None else decayed
    gradient = _part("eq-generalization-l2", "gradient") if gradient is None else gradient
    step = _part("eq-generalization-sgd-decay", "step").subs(PENALISED_GRADIENT, gradient)
    symbols = (WEIGHT, ETA, LAMBDA, LOSS_GRADIENT)
    return safely(lambda: zero_expression(sp.sympify(step) - sp.sympify(decayed), symbols))


def adam_first_step(weight, gradient, learning_rate=ETA, epsilon=EPSILON, beta_1=BETA_1, beta_2=BETA_2):
    """Adam's update from a zero state, as Keras computes it: m and v are
    running averages of the gradient and its square, both bias-corrected."""
    first = (1 - beta_1) * gradient
    second = (1 - beta_2) * gradient**2
    corrected_first = first / (1 - beta_1)
    corrected_second = second / (1 - beta_2)
    return weight - learning_rate * corrected_first / (sp.sqrt(corrected_second) + epsilon)


def _same(a, b, symbols) -> bool:
    """Identically equal: zero_expression after writing |x| as sqrt(x²)."""
    difference = sp.sympify(a - b).replace(sp.Abs, lambda x: sp.sqrt(x**2))
    return zero_expression(sp.simplify(difference), symbols)


@check(
    "adam-first-step",
    "Adam's recursions run from a zero state give the displayed Adam + L2 step when fed the L2 gradient g + 2λw, "
    "and the displayed AdamW step when the weight is first decayed by ηd (Keras's order) and fed g; at the "
    "strength that makes them equal for SGD (d = 2λ) the two steps still differ.",
)
def check_adam_first_step(adam_l2=None, adamw=None) -> bool:
    adam_l2 = _part("eq-generalization-adamw", "adam_l2") if adam_l2 is None else adam_l2
    adamw = _part("eq-generalization-adamw", "adamw") if adamw is None else adamw
    gradient = _part("eq-generalization-l2", "gradient").subs({LOSS_GRADIENT: G, WEIGHT: W})
    symbols = (W, G, ETA, LAMBDA, EPSILON, DECAY, BETA_1, BETA_2)

    def compare():
        with_l2 = adam_first_step(W, gradient)
        decoupled = adam_first_step(W - ETA * DECAY * W, G)   # the decay, then Adam's step
        matched = sp.sympify(adam_l2 - adamw).subs(DECAY, 2 * LAMBDA)
        return (_same(with_l2, adam_l2, symbols) and _same(decoupled, adamw, symbols)
                and not zero_expression(matched, symbols))

    return safely(compare)


@check(
    "inverted-dropout",
    "With the keep mask m ~ Bernoulli(1 − p), sympy.stats gives the displayed mean h and variance p h²/(1 − p) of "
    "the displayed masked activation.",
)
def check_inverted_dropout(dropped=None, mean=None, variance=None) -> bool:
    dropped = _part("eq-generalization-dropout", "dropped") if dropped is None else dropped
    mean = DROPOUT_MEAN if mean is None else mean
    variance = DROPOUT_VARIANCE if variance is None else variance
    rate = sp.Symbol("p", positive=True)
    keep = sp_stats.Bernoulli("m", 1 - rate)

    def compare():
        # The rate is a probability: evaluate the moments for 0 < p < 1 by
        # substituting p = 1/(1 + q) with q > 0.
        q = sp.Symbol("q", positive=True)
        masked = sp.sympify(dropped).subs({RATE: rate, MASK: keep})
        moments = (sp_stats.E(masked), sp_stats.variance(masked))
        claimed = (sp.sympify(mean).subs(RATE, rate), sp.sympify(variance).subs(RATE, rate))
        return all(zero_expression(sp.simplify((m - c).subs(rate, 1 / (1 + q))), (ACTIVATION, q))
                   for m, c in zip(moments, claimed))

    return safely(compare)

