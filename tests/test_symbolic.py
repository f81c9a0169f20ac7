"""The SymPy derivations: derivatives, their ranges, backprop and layer norm."""

import numpy as np
import pytest
import sympy as sp

from analysis import symbolic
from analysis.errors import UserError

x, a, t = symbolic.X, symbolic.OUTPUT, symbolic.AUXILIARY
LECUN_SUPREMUM = sp.Rational(17159, 10000) * sp.Rational(2, 3) + sp.Rational(1, 100)


# --- activations -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected_range",
    [
        ("sigmoid", sp.Interval.Lopen(0, sp.Rational(1, 4))),
        ("tanh", sp.Interval.Lopen(0, 1)),
        ("relu", sp.FiniteSet(0, 1)),
        ("lecun", sp.Interval.Lopen(sp.Rational(1, 100), LECUN_SUPREMUM)),
    ],
)
def test_derivative_ranges_are_the_known_exact_sets(name, expected_range):
    derivation = symbolic.activation(name)
    assert derivation.derivative_range == expected_range
    assert derivation.derivative_infimum == expected_range.inf
    assert derivation.derivative_supremum == expected_range.sup
    assert derivation.range_cross_checked in (True, None)


def test_bounds_attained_only_at_finite_points():
    sigmoid = symbolic.activation("sigmoid")
    assert sigmoid.derivative_supremum == sp.Rational(1, 4)
    assert sigmoid.supremum_attained and not sigmoid.infimum_attained
    assert sigmoid.critical_points == (0,)
    lecun = symbolic.activation("lecun")
    assert lecun.derivative_infimum == sp.Rational(1, 100) and not lecun.infimum_attained
    assert lecun.derivative_supremum == sp.Rational(17309, 15000) and lecun.supremum_attained
    relu = symbolic.activation("relu")
    assert relu.infimum_attained and relu.supremum_attained


@pytest.mark.parametrize("name", symbolic.ACTIVATION_NAMES)
def test_derivative_is_sympys_derivative_of_the_function(name):
    derivation = symbolic.activation(name)
    assert sp.simplify(derivation.derivative - sp.diff(derivation.function, x)) == 0
    assert derivation.identity_verified


def test_functions_are_the_chapters_definitions():
    assert symbolic.activation("sigmoid").function == 1 / (1 + sp.exp(-x))
    assert symbolic.activation("tanh").function == sp.tanh(x)
    assert symbolic.activation("relu").function == sp.Max(0, x)
    lecun = sp.Rational(17159, 10000) * sp.tanh(sp.Rational(2, 3) * x) + sp.Rational(1, 100) * x
    assert sp.simplify(symbolic.activation("lecun").function - lecun) == 0


def test_derivatives_in_terms_of_the_output_hold():
    for name, form in [("sigmoid", a * (1 - a)), ("tanh", 1 - a**2)]:
        derivation = symbolic.activation(name)
        assert sp.expand(derivation.derivative_in_output - form) == 0
        residual = derivation.derivative - form.subs(a, derivation.function)
        assert sp.simplify(residual.rewrite(sp.exp)) == 0

    relu = symbolic.activation("relu")
    for point, slope in [(sp.Rational(3, 2), 1), (-sp.Rational(3, 2), 0)]:
        assert relu.derivative.subs(x, point) == slope
        assert relu.derivative_in_output.subs(a, relu.function.subs(x, point)) == slope

    lecun = symbolic.activation("lecun")
    assert lecun.derivative_in_output is None
    assert "closed form" in lecun.note
    expected = sp.Rational(17159, 10000) * sp.Rational(2, 3) * (1 - t**2) + sp.Rational(1, 100)
    assert sp.expand(lecun.derivative_in_auxiliary - expected) == 0
    assert lecun.auxiliary_definition == sp.tanh(2 * x / 3)
    assert sp.simplify(lecun.derivative - expected.subs(t, sp.tanh(2 * x / 3))) == 0


def test_latex_is_printed_for_the_reader():
    lecun = symbolic.activation("lecun")
    assert "1.7159" in lecun.latex_function and "0.01" in lecun.latex_function
    assert r"\tfrac{2}{3}" in lecun.latex_derivative_range
    assert symbolic.activation("sigmoid").latex_derivative_range == r"\left(0, \frac{1}{4}\right]"
    assert symbolic.activation("tanh").latex_derivative_in_output == "1 - a^{2}"
    equation = symbolic.activation("sigmoid").equation()
    assert equation.label == "eq-activation-sigmoid"
    assert equation.markdown().startswith("$$\n\\begin{aligned}")
    assert equation.markdown().endswith("$$ {#eq-activation-sigmoid}")
    assert all(symbolic.check_activations().values())


def test_activation_names_are_checked():
    assert symbolic.activation("ReLU") is symbolic.activation("relu")
    with pytest.raises(UserError, match="unknown activation"):
        symbolic.activation("swish")


@pytest.mark.parametrize("name", symbolic.ACTIVATION_NAMES)
def test_numeric_derivative_matches_finite_differences(name):
    function, derivative = symbolic.numeric_activation(name)
    # Points away from ReLU's kink at 0.
    points = np.array([-4.1, -1.3, -0.2, 0.3, 0.9, 2.2, 5.7])
    step = 1e-6
    finite = (function(points + step) - function(points - step)) / (2 * step)
    np.testing.assert_allclose(derivative(points), finite, rtol=1e-7, atol=1e-9)
    exact = [float(symbolic.activation(name).function.subs(x, sp.Float(p))) for p in points]
    np.testing.assert_allclose(function(points), exact, rtol=1e-12)


def test_numeric_functions_keep_shape_and_stay_finite():
    function, derivative = symbolic.numeric_activation("sigmoid")
    values = np.array([[-1000.0, 0.0], [1000.0, 3.0]])
    assert function(values).shape == (2, 2)
    assert np.all(np.isfinite(function(values))) and np.all(np.isfinite(derivative(values)))
    relu, relu_slope = symbolic.numeric_activation("relu")
    np.testing.assert_array_equal(relu_slope(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(relu(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 2.0])


# --- depth bound -----------------------------------------------------------


def test_gradient_bound_through_depth():
    assert symbolic.gradient_bound("sigmoid", 5) == sp.Rational(1, 1024)
    assert symbolic.gradient_bound("tanh", 40) == 1
    assert symbolic.gradient_bound("lecun", 2) == LECUN_SUPREMUM**2
    curve = symbolic.gradient_bound_curve("sigmoid", [1, 2, 3])
    np.testing.assert_allclose(curve, [0.25, 0.0625, 0.015625])
    with pytest.raises(UserError):
        symbolic.gradient_bound("sigmoid", -1)
    with pytest.raises(UserError):
        symbolic.gradient_bound("sigmoid", 2.5)


# --- backpropagation -------------------------------------------------------


def test_backprop_equations_all_verified():
    checks = symbolic.check_backprop_equations()
    assert checks == {
        "forward": True,
        "output-delta": True,
        "hidden-delta": True,
        "weight-grad": True,
        "bias-grad": True,
        "batch-mean": True,
    }


def test_backprop_check_detects_a_wrong_derivative(monkeypatch):
    # Backpropagate as if f'(z) were 1: the δ recursion and every gradient
    # below the output layer must then fail to match sympy.diff.
    monkeypatch.setattr(symbolic, "_f_prime", lambda point: sp.Integer(1))
    checks = symbolic.check_backprop_equations.__wrapped__()
    assert checks["forward"] and checks["output-delta"]
    assert not checks["hidden-delta"]
    assert not checks["weight-grad"] and not checks["bias-grad"] and not checks["batch-mean"]


def test_every_equation_names_a_check_that_exists():
    equations = symbolic.backprop_equations() + symbolic.layernorm_equations()
    labels = [equation.label for equation in equations]
    assert len(set(labels)) == len(labels)
    assert all(label.startswith("eq-") for label in labels)
    assert {"eq-forward", "eq-output-delta", "eq-hidden-delta", "eq-weight-grad", "eq-bias-grad",
            "eq-batch-mean"} <= set(labels)
    known = set(symbolic.check_backprop_equations()) | set(symbolic.check_layernorm_equations())
    assert {equation.check for equation in equations} <= known
    block = symbolic.backprop_equations()[2].markdown()
    assert block == "$$\n" + symbolic.backprop_equations()[2].latex + "\n$$ {#eq-output-delta}"


# --- layer normalization ---------------------------------------------------


def test_layernorm_backward_formula_is_verified():
    assert symbolic.check_layernorm_backward(units=3) is True
    assert symbolic.check_layernorm_equations() == {
        "layernorm-forward": True,
        "layernorm-backward": True,
    }


def test_layernorm_check_detects_wrong_formulas():
    def without_normalized_term(normalized, scaled, sigma):
        mean = sum(scaled) / len(scaled)
        return [(g - mean) / sigma for g in scaled]

    def without_mean(normalized, scaled, sigma):
        mean_gx = sum(g * x for g, x in zip(scaled, normalized)) / len(scaled)
        return [(g - x * mean_gx) / sigma for g, x in zip(scaled, normalized)]

    assert symbolic.check_layernorm_backward(3, backward=without_normalized_term) is False
    assert symbolic.check_layernorm_backward(3, backward=without_mean) is False
    with pytest.raises(UserError):
        symbolic.check_layernorm_backward(units=1)


def test_layernorm_formula_works_on_numbers():
    normalized, scaled, sigma = [1.0, -1.0], [0.5, 0.25], 2.0
    result = symbolic.layernorm_backward_formula(normalized, scaled, sigma)
    # mean(ĝ) = 0.375, mean(ĝ ⊙ x̂) = 0.125
    np.testing.assert_allclose(result, [(0.5 - 0.375 - 0.125) / 2, (0.25 - 0.375 + 0.125) / 2])


# --- the rest of the backpropagation chapter ---------------------------------


def test_chapter_derivations_all_verified():
    assert symbolic.check_backprop_derivations() == {
        "softmax-instance": True,
        "gradient-bound": True,
        "central-difference": True,
        "two-layer-loss": True,
        "two-layer-gradients": True,
    }
    keys = (
        set(symbolic.check_backprop_equations())
        | set(symbolic.check_activations())
        | set(symbolic.check_backprop_derivations())
    )
    assert keys <= set(symbolic.CHECK_DESCRIPTIONS)


def test_softmax_instance_is_printed_by_sympy():
    equation = symbolic.softmax_gradient_instance(3)
    assert equation.label == "eq-softmax-instance" and equation.check == "softmax-instance"
    assert r"p_{1} \left(y_{1} + y_{2} + y_{3}\right) - y_{1} = p_{1} - y_{1}" in equation.latex
    assert symbolic.softmax_gradient_instance(2).latex != equation.latex
    with pytest.raises(UserError):
        symbolic.softmax_gradient_instance(1)


def test_gradient_bound_equation_prints_each_supremum_to_the_power_L():
    latex = symbolic.gradient_bound_equation().latex
    assert r"\left(\frac{1}{4}\right)^{L} & \text{sigmoid}" in latex
    assert r"\left(\frac{17309}{15000}\right)^{L}" in latex
    assert r"1 & \text{ReLU}" in latex and r"1 & \text{tanh}" in latex


def test_two_layer_checks_detect_mistakes(monkeypatch):
    # Backpropagating through the hidden layer as if f' were 1 breaks the
    # first layer's gradients; the chain-rule check of the bound breaks too.
    monkeypatch.setattr(symbolic, "_f_prime", lambda point: sp.Integer(1))
    assert symbolic._check_two_layer_gradients() is False
    assert symbolic._check_gradient_bound() is False


def test_two_layer_gradient_check_covers_the_penalty():
    # A penalty gradient of λW (the "½‖W‖²" convention) must fail: the loss
    # of eq-two-layer-loss has no ½, so its gradient is 2λW.
    def with_half(X, hidden, G, W1, W2, reg, slopes):
        gradients = symbolic.two_layer_gradient_formula(X, hidden, G, W1, W2, reg, slopes)
        gradients["W2"] = gradients["W2"] - reg * W2
        return gradients

    def without_slopes(X, hidden, G, W1, W2, reg, slopes):
        return symbolic.two_layer_gradient_formula(X, hidden, G, W1, W2, reg, sp.ones(*slopes.shape))

    assert symbolic._check_two_layer_gradients() is True
    assert symbolic._check_two_layer_gradients(formula=with_half) is False
    assert symbolic._check_two_layer_gradients(formula=without_slopes) is False
    assert r"2 \lambda W_2" in symbolic.two_layer_equations()[1].latex


def test_central_difference_error_is_second_order():
    x, h = sp.symbols("x h")
    f = sp.Function("f")
    error = symbolic.central_difference_error()
    assert sp.simplify(error - h**2 * f(x).diff(x, 3) / 6) == 0
    # The one-sided difference is only first order: the same check rejects it.
    one_sided = sp.series((f(x + h) - f(x)) / h, h, 0, 3).removeO().doit() - f(x).diff(x)
    assert sp.simplify(one_sided - h**2 * f(x).diff(x, 3) / 6) != 0
