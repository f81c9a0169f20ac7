"""SymPy derivations that the chapters show, and the checks that prove them.

Every displayed equation of the book is typed in its chapter as a literal
``$$ … $$ {#eq-…}`` and registered here under its label with the SymPy
expressions its check tests (:mod:`analysis.symbolic.core`); a test compares
the typed LaTeX with ``sympy.latex`` of the registered expressions. One module
per topic:

* :mod:`~analysis.symbolic.activations`: ReLU, tanh, sigmoid, LeCun's scaled
  tanh; derivatives, their ranges and the bound through depth;
* :mod:`~analysis.symbolic.backprop`: backpropagation, checked on a network
  with two hidden layers; the softmax instance, the central difference and
  the two-layer network;
* :mod:`~analysis.symbolic.layernorm`: layer normalization;
* :mod:`~analysis.symbolic.counting`: the MNIST network's parameter count.
* :mod:`~analysis.symbolic.convolution`: output sizes of convolution and
  pooling, a Conv2D layer's parameter count, pooling's backward pass.
* :mod:`~analysis.symbolic.regularization`: L2 and weight decay, Adam + L2
  against AdamW, inverted dropout.
* :mod:`~analysis.symbolic.vgg`: the parameter count of a Dense layer (the
  VGG16 table, with the Conv2D count of :mod:`~analysis.symbolic.convolution`).
* :mod:`~analysis.symbolic.bayesopt`: the Gaussian-process posterior, PI, EI,
  the confidence bound and TPE's l/g criterion.

Nothing heavy runs at import; derivations and checks run on first use and
are cached.
"""

from analysis.symbolic.core import (
    BookLatexPrinter,
    Check,
    Equation,
    chapter_problems,
    check_summary,
    checks,
    display,
    displayed_equations,
    equation,
    latex,
    normalise,
    registry,
    run_check,
    run_checks,
)
from analysis.symbolic.activations import (
    ACTIVATION_NAMES,
    AUXILIARY,
    LECUN_LEAK,
    LECUN_SCALE,
    LECUN_SLOPE,
    OUTPUT,
    X,
    ActivationDerivation,
    NumericActivation,
    activation,
    activation_equations,
    activations,
    canonical_activation_name,
    check_activation,
    check_activations,
    check_gradient_bound,
    derivative_supremum,
    gradient_bound,
    gradient_bound_curve,
    gradient_bound_equation,
    numeric_activation,
)
from analysis.symbolic.backprop import (
    backprop_equations,
    central_difference_equation,
    central_difference_error,
    check_backprop_derivations,
    check_backprop_equations,
    check_batch_mean,
    check_bias_gradient,
    check_central_difference,
    check_hidden_delta,
    check_output_delta,
    check_softmax_instance,
    check_two_layer_gradients,
    check_two_layer_penalty,
    check_weight_gradient,
    softmax_gradient_instance,
    two_layer_equations,
    two_layer_gradient_formula,
)
from analysis.symbolic.convolution import (
    check_conv_parameters,
    check_output_size,
    check_pool_backward,
    check_same_size,
    conv_parameters,
    output_size,
)
from analysis.symbolic.counting import PARAMETER_COUNT, check_parameter_count
from analysis.symbolic.layernorm import (
    check_layernorm_backward,
    check_layernorm_equations,
    check_layernorm_forward,
    layernorm_backward_formula,
    layernorm_equations,
)
from analysis.symbolic.bayesopt import (
    bayesopt_equations,
    check_confidence_bound,
    check_expected_improvement,
    check_gp_posterior,
    check_probability_of_improvement,
    check_tpe_criterion,
)
from analysis.symbolic.regularization import (
    check_adam_first_step,
    check_inverted_dropout,
    check_l2_gradient,
    check_sgd_weight_decay,
    regularization_equations,
)
from analysis.symbolic.vgg import check_dense_parameters, dense_count, vgg_equations

#: One sentence per check key, for the chapters' check tables.
CHECK_DESCRIPTIONS = {key: item.description for key, item in checks().items()}


def chapter_equations(labels):
    """The registered equations with these labels, in this order."""
    return tuple(equation(label) for label in labels)
