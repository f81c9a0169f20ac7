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


# --- every check passes on the displayed formula -----------------------------


@pytest.mark.parametrize("key", sorted(symbolic.checks()))
def test_every_check_passes_on_the_displayed_formula(key):
    assert symbolic.run_check(key) is True


# --- and fails on a wrong one -------------------------------------------------

from analysis.symbolic import backprop as bp  # noqa: E402
from analysis.symbolic import convolution as cv  # noqa: E402
from analysis.symbolic import layernorm as ln  # noqa: E402
from analysis.symbolic import bayesopt as bo  # noqa: E402
from analysis.symbolic import regularization as rg  # noqa: E402
from analysis.symbolic import vgg  # noqa: E402

f_ = sp.Function("f")
xs, hs = sp.symbols("x h")


def _hadamard(*factors):
    return sp.HadamardProduct(*factors, evaluate=False)


def _backward_without_normalized_term(normalized, scaled, sigma):
    mean = sum(scaled) / len(scaled)
    return [(g - mean) / sigma for g in scaled]


# One or more wrong formulas per check: each must make its check return False.
MUTATIONS = {
    "dense-parameters": [
        lambda: symbolic.check_dense_parameters(count=vgg.N_IN * (vgg.N_OUT + 1)),
    ],
    "relu": [
        lambda: symbolic.check_activation("relu", output_form=sp.Piecewise((0, a > 0), (1, True))),
        lambda: symbolic.check_activation("relu", derivative_range=sp.FiniteSet(0, 2)),
        lambda: symbolic.check_activation("relu", derivative=sp.Piecewise((1, x > 0), (1, x < 0))),
    ],
    "tanh": [
        lambda: symbolic.check_activation("tanh", output_form=1 - a),
        lambda: symbolic.check_activation("tanh", derivative_range=sp.Interval(0, 1)),
    ],
    "sigmoid": [
        lambda: symbolic.check_activation("sigmoid", output_form=a * (1 + a)),
        lambda: symbolic.check_activation("sigmoid", derivative_range=sp.Interval.Lopen(0, sp.Rational(1, 2))),
    ],
    "lecun": [
        # A wrong tanh term in LeCun's t-form: the old check (t substituted
        # and back) passed this; now t = tanh(2x/3) is substituted and the
        # result compared with sympy.diff of f.
        lambda: symbolic.check_activation(
            "lecun", output_form=sp.Rational(17159, 10000) * sp.Rational(2, 3) * (1 + t**2) + sp.Rational(1, 100)
        ),
        lambda: symbolic.check_activation("lecun", derivative_range=sp.Interval.Lopen(0, 1)),
    ],
    "gradient-bound": [
        lambda: symbolic.check_gradient_bound(
            bounds={**symbolic.gradient_bound_equation().parts, "sigmoid": sp.Rational(1, 2) ** sp.Symbol("L", integer=True, positive=True)}
        ),
        lambda: symbolic.check_gradient_bound(chain_factor=lambda point: sp.Integer(1)),
    ],
    "output-delta": [
        lambda: symbolic.check_output_delta(formula=bp.TARGETS - bp.PROBABILITIES),
        lambda: symbolic.check_output_delta(formula=bp.PROBABILITIES),
    ],
    "hidden-delta": [
        lambda: symbolic.check_hidden_delta(formula=_hadamard(bp.W_NEXT * bp.DELTA_NEXT, bp.F_PRIME_OF_Z)),
        lambda: symbolic.check_hidden_delta(formula=bp.W_NEXT.T * bp.DELTA_NEXT),
    ],
    "delta-relu": [lambda: bp._delta_check("relu", bp.W_NEXT.T * bp.DELTA_NEXT)],
    "delta-tanh": [lambda: bp._delta_check("tanh", bp.DELTA_BY_ACTIVATION["sigmoid"])],
    "delta-sigmoid": [lambda: bp._delta_check("sigmoid", bp.DELTA_BY_ACTIVATION["tanh"])],
    "delta-lecun": [lambda: bp._delta_check("lecun", bp.DELTA_BY_ACTIVATION["tanh"])],
    "weight-grad": [
        lambda: symbolic.check_weight_gradient(formula=bp.A_PREVIOUS * bp.DELTA.T),
        lambda: symbolic.check_weight_gradient(formula=2 * bp.DELTA * bp.A_PREVIOUS.T),
    ],
    "bias-grad": [lambda: symbolic.check_bias_gradient(formula=2 * bp.DELTA)],
    "batch-mean": [
        lambda: symbolic.check_batch_mean(
            formula=sp.Sum(sp.Derivative(bp._EXAMPLE_LOSS[bp._EXAMPLE], bp._PARAMETER, evaluate=False),
                           (bp._EXAMPLE, 1, bp._BATCH))
        )
    ],
    "softmax-instance": [
        lambda: symbolic.check_softmax_instance(derivative=symbolic.equation("eq-softmax-instance")["derivative"] + 1),
        lambda: symbolic.check_softmax_instance(sum_form=sp.Symbol("p_1", real=True) - 2 * sp.Symbol("y_1", real=True)),
    ],
    "central-difference": [
        lambda: symbolic.check_central_difference(error=hs**2 * f_(xs).diff(xs, 3) / 3),
        lambda: symbolic.check_central_difference(quotient=(f_(xs + hs) - f_(xs)) / hs),
    ],
    "two-layer-gradients": [
        # the "½‖W‖²" convention's gradient λW against a loss without ½
        lambda: symbolic.check_two_layer_gradients(formulas={"W2": bp.HIDDEN.T * bp.G + bp.REG * bp.W2}),
        lambda: symbolic.check_two_layer_gradients(formulas={"G_H": bp.G * bp.W2.T}),
        lambda: symbolic.check_two_layer_gradients(formulas={"W1": bp.X2.T * bp.G_HIDDEN}),
    ],
    "two-layer-penalty": [
        lambda: symbolic.check_two_layer_penalty(
            penalty=bp.REG / 2 * (bp.FrobeniusNorm(bp.W1) ** 2 + bp.FrobeniusNorm(bp.W2) ** 2)
        ),
        lambda: symbolic.check_two_layer_penalty(penalty=bp.REG * bp.FrobeniusNorm(bp.W1) ** 2),
        lambda: symbolic.check_two_layer_penalty(formulas={"W1": bp.X2.T * bp.G_HIDDEN + bp.REG * bp.W1}),
    ],
    "layernorm-backward": [
        lambda: symbolic.check_layernorm_backward(3, backward=_backward_without_normalized_term),
        lambda: symbolic.check_layernorm_backward(
            3, expression=sp.MatMul(1 / ln.SIGMA, sp.MatAdd(ln.G_HAT, -ln.Mean(ln.G_HAT) * ln.ONES, evaluate=False),
                                    evaluate=False)
        ),
    ],
    "mlp-parameters": [
        # without the biases of the Dense layers, or with one gain per unit only
        lambda: symbolic.check_parameter_count(count=symbolic.PARAMETER_COUNT - sp.Symbol("H", positive=True, integer=True)
                                               - sp.Symbol("K", positive=True, integer=True)),
        lambda: symbolic.check_parameter_count(
            count=symbolic.PARAMETER_COUNT.subs(symbolic.counting.NU_INPUT, symbolic.counting.NU_INPUT / 2)
        ),
    ],
    "layernorm-forward": [
        lambda: symbolic.check_layernorm_forward(normalize=ln._ACTIVATIONS[ln._I] - ln.MU),
    ],
    # the "½ λ‖w‖²" gradient λw against Keras's λ Σ w²; SGD's decay factor 1 − ηλ
    "l2-gradient": [lambda: symbolic.check_l2_gradient(gradient=rg.LOSS_GRADIENT + rg.LAMBDA * rg.WEIGHT)],
    "sgd-weight-decay": [
        lambda: symbolic.check_sgd_weight_decay(decayed=(1 - rg.ETA * rg.LAMBDA) * rg.WEIGHT - rg.ETA * rg.LOSS_GRADIENT),
    ],
    # Adam + L2 written as if it were AdamW, and AdamW without its decay
    "adam-first-step": [
        lambda: symbolic.check_adam_first_step(adam_l2=rg.ADAMW_STEP.subs(rg.DECAY, 2 * rg.LAMBDA)),
        lambda: symbolic.check_adam_first_step(adamw=rg.ADAMW_STEP.subs(rg.DECAY, 0)),
    ],
    # one side's zeros only, a ceiling for the floor, and no "+ 1"
    "cnn-output-size": [
        lambda: symbolic.check_output_size(size=sp.floor((cv.SIZE + cv.PADDING - cv.KERNEL) / cv.STRIDE) + 1),
        lambda: symbolic.check_output_size(size=sp.ceiling((cv.SIZE + 2 * cv.PADDING - cv.KERNEL) / cv.STRIDE) + 1),
        lambda: symbolic.check_output_size(size=sp.floor((cv.SIZE + 2 * cv.PADDING - cv.KERNEL) / cv.STRIDE)),
    ],
    # "same" read as a floor, or as the valid formula's size
    "cnn-same-size": [
        lambda: symbolic.check_same_size(size=sp.floor(cv.SIZE / cv.STRIDE)),
        lambda: symbolic.check_same_size(size=sp.floor((cv.SIZE - cv.KERNEL) / cv.STRIDE) + 1),
    ],
    # without the biases, or with one bias per input channel
    "cnn-conv-parameters": [
        lambda: symbolic.check_conv_parameters(count=cv.KERNEL_HEIGHT * cv.KERNEL_WIDTH * cv.CHANNELS_IN * cv.CHANNELS_OUT),
        lambda: symbolic.check_conv_parameters(count=cv.CHANNELS_IN * (cv.KERNEL_HEIGHT * cv.KERNEL_WIDTH * cv.CHANNELS_OUT + 1)),
    ],
    # the mean's derivative 1/k, and a maximum that passes the gradient to every entry
    "cnn-pool-backward": [
        lambda: symbolic.check_pool_backward(average=1 / cv.KERNEL),
        lambda: symbolic.check_pool_backward(maximum=sp.Integer(1)),
        lambda: symbolic.check_pool_backward(maximum=cv.AVERAGE_DERIVATIVE),
    ],
    # dropout without the rescaling, and the variance of the mask alone
    "inverted-dropout": [
        lambda: symbolic.check_inverted_dropout(dropped=rg.MASK * rg.ACTIVATION),
        lambda: symbolic.check_inverted_dropout(variance=rg.RATE * rg.ACTIVATION**2),
    ],
    # the posterior without the noise term, and with the variance's sign flipped
    "gp-posterior": [
        lambda: symbolic.check_gp_posterior(mean=sp.MatMul(bo.K_STAR.T, sp.Inverse(bo.K), bo.Y)),
        lambda: symbolic.check_gp_posterior(variance=sp.MatAdd(bo.K_STAR_STAR, sp.MatMul(
            bo.K_STAR.T, sp.Inverse(bo.K + bo.NOISE**2 * sp.Identity(bo.N)), bo.K_STAR))),
    ],
    # Φ(−z): the probability of doing worse
    "probability-of-improvement": [lambda: symbolic.check_probability_of_improvement(pi=bo.NormalCDF(-bo.Z))],
    # EI without its exploration term σφ(z), and with φ's sign flipped
    "expected-improvement": [
        lambda: symbolic.check_expected_improvement(ei=(bo.MU - bo.INCUMBENT) * bo.NormalCDF(bo.Z)),
        lambda: symbolic.check_expected_improvement(
            ei=(bo.MU - bo.INCUMBENT) * bo.NormalCDF(bo.Z) - bo.SIGMA * bo.NormalPDF(bo.Z)),
    ],
    # the lower bound, and β times the variance instead of the standard deviation
    "confidence-bound": [
        lambda: symbolic.check_confidence_bound(ucb=bo.MU - bo.BETA * bo.SIGMA),
        lambda: symbolic.check_confidence_bound(ucb=bo.MU + bo.BETA * bo.SIGMA**2),
    ],
    # γ and 1 − γ swapped in the evidence; the criterion upside down (g/l)
    "tpe-criterion": [
        lambda: symbolic.check_tpe_criterion(ei=bo.GOOD * (bo.GAMMA * bo.THRESHOLD - bo.PARTIAL_MEAN) / (
            (1 - bo.GAMMA) * bo.GOOD + bo.GAMMA * bo.OTHER)),
        lambda: symbolic.check_tpe_criterion(criterion=1 / (bo.GAMMA + (1 - bo.GAMMA) * bo.GOOD / bo.OTHER)),
    ],
}


def test_every_check_has_a_mutation_test():
    assert set(MUTATIONS) == set(symbolic.checks())


@pytest.mark.parametrize(
    "key, index",
    [(key, index) for key, mutations in sorted(MUTATIONS.items()) for index in range(len(mutations))],
)
def test_every_check_rejects_a_wrong_formula(key, index):
    assert MUTATIONS[key][index]() is False


# --- the registry and the package's public names --------------------------------


def test_groups_of_checks_by_chapter_part():
    assert set(symbolic.check_backprop_equations()) == {
        "output-delta", "hidden-delta", "delta-relu", "delta-tanh", "delta-sigmoid", "delta-lecun",
        "weight-grad", "bias-grad", "batch-mean",
    }
    assert set(symbolic.check_backprop_derivations()) == {
        "softmax-instance", "gradient-bound", "central-difference", "two-layer-penalty", "two-layer-gradients",
    }
    assert symbolic.check_layernorm_equations() == {"layernorm-forward": True, "layernorm-backward": True}
    assert set(symbolic.CHECK_DESCRIPTIONS) == set(symbolic.checks())


def test_unknown_labels_and_checks_are_one_line_errors():
    with pytest.raises(UserError, match="eq-nowhere"):
        symbolic.equation("eq-nowhere")
    with pytest.raises(UserError, match="no check named"):
        symbolic.run_check("nothing")
    with pytest.raises(UserError):
        symbolic.softmax_gradient_instance(2)
    with pytest.raises(UserError):
        symbolic.check_layernorm_backward(units=1)


def test_layernorm_transcription_equals_the_displayed_formula():
    assert symbolic.check_layernorm_backward(3, backward=symbolic.layernorm_backward_formula) is True


def test_layernorm_formula_works_on_numbers():
    normalized, scaled, sigma = [1.0, -1.0], [0.5, 0.25], 2.0
    result = symbolic.layernorm_backward_formula(normalized, scaled, sigma)
    # mean(ĝ) = 0.375, mean(ĝ ∘ x̂) = 0.125
    np.testing.assert_allclose(result, [(0.5 - 0.375 - 0.125) / 2, (0.25 - 0.375 + 0.125) / 2])


def test_two_layer_formula_is_the_displayed_one_on_numbers():
    X = sp.Matrix([[1, 2]])
    hidden = sp.Matrix([[3, 0, 1]])
    G = sp.Matrix([[1, -1]])
    W1, W2 = sp.ones(2, 3), sp.ones(3, 2)
    slopes = sp.Matrix([[1, 0, 1]])
    gradients = symbolic.two_layer_gradient_formula(X, hidden, G, W1, W2, sp.Rational(1, 10), slopes)
    assert gradients["W2"] == hidden.T * G + sp.Rational(2, 10) * W2
    assert gradients["b1"] == ((G * W2.T).multiply_elementwise(slopes)).T


def test_central_difference_error_is_printed_from_the_checked_term():
    assert sp.simplify(symbolic.central_difference_error() - hs**2 * f_(xs).diff(xs, 3) / 6) == 0


def test_the_mlp_tables_count_with_the_displayed_formula():
    from analysis.tables import mlp

    assert sp.expand(mlp.parameter_formula() - symbolic.PARAMETER_COUNT) == 0
