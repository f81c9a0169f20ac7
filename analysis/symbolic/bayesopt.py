"""Bayesian optimisation (chapters/hpo.qmd): the Gaussian-process posterior,
the acquisition functions and the TPE criterion.

* eq-hpo-gp-posterior is checked by conditioning a joint Gaussian for two
  observations and one new point: the joint quadratic form splits into the
  observations' own plus (f − μ)²/σ², and the joint determinant into
  det(K + σ²ₙI)·σ² (the Schur complement), which is exactly the statement
  that f | y ~ N(μ, σ²) with the displayed μ and σ²;
* eq-hpo-pi and eq-hpo-ei by SymPy integrating the Gaussian (and the
  improvement against it) above the incumbent;
* eq-hpo-ucb by showing it is the Φ(β)-quantile of the posterior, and that
  keras-tuner's minimised μ − βσ of the GP on negated scores is −UCB
  (the posterior mean is linear in y, its variance does not depend on y);
* eq-hpo-tpe-ei by integrating the improvement under TPE's model for a
  Gaussian p(y) and showing that the result is a positive constant times the
  displayed criterion, which increases with l/g.
"""

from __future__ import annotations

import functools

import sympy as sp

from analysis.symbolic.core import Equation, check, provides_equations, safely, zero_expression


class NormalCDF(sp.Function):
    """Φ, the standard normal distribution function (printed Φ)."""

    def _latex(self, printer, exp=None):
        return rf"\Phi\left({printer._print(self.args[0])}\right)"


class NormalPDF(sp.Function):
    """φ, the standard normal density (printed φ)."""

    def _latex(self, printer, exp=None):
        return rf"\varphi\left({printer._print(self.args[0])}\right)"


def explicit(expression):
    """Φ and φ written out: Φ(a) = (1 + erf(a/√2))/2, φ(a) = exp(−a²/2)/√(2π)."""
    return sp.sympify(expression).replace(
        NormalCDF, lambda a: (1 + sp.erf(a / sp.sqrt(2))) / 2).replace(
        NormalPDF, lambda a: sp.exp(-a**2 / 2) / sp.sqrt(2 * sp.pi))


# --- symbols ------------------------------------------------------------------

N = sp.Symbol("n", integer=True, positive=True)
K = sp.MatrixSymbol("K", N, N)
K_STAR = sp.MatrixSymbol("k_{*}", N, 1)
K_STAR_STAR = sp.MatrixSymbol("k_{**}", 1, 1)
Y = sp.MatrixSymbol("y", N, 1)
NOISE = sp.Symbol(r"\sigma_{n}", positive=True)

MU = sp.Symbol(r"\mu", real=True)
SIGMA = sp.Symbol(r"\sigma", positive=True)
INCUMBENT = sp.Symbol("f^{*}", real=True)
BETA = sp.Symbol(r"\beta", positive=True)
Z = sp.Symbol("z", real=True)
F = sp.Symbol("f", real=True)

R = sp.Symbol("r", nonnegative=True)
LENGTH = sp.Symbol(r"\ell", positive=True)
SIGNAL = sp.Symbol(r"\sigma_{f}", positive=True)

GOOD = sp.Symbol("l", positive=True)        # l(x)
OTHER = sp.Symbol("g", positive=True)       # g(x)
GAMMA = sp.Symbol(r"\gamma", positive=True)
THRESHOLD = sp.Symbol("y^{*}", real=True)
#: ∫_{-∞}^{y*} y p(y) dy, printed as a name.
PARTIAL_MEAN = sp.Symbol(r"\bar{y}_{\gamma}", real=True)


def _add(*terms):
    return sp.Add(*terms, evaluate=False)


def _mul(*factors):
    return sp.Mul(*factors, evaluate=False)


_REGULARISED = sp.MatAdd(K, sp.MatMul(NOISE**2, sp.Identity(N)), evaluate=False)
POSTERIOR_MEAN = sp.MatMul(K_STAR.T, sp.Inverse(_REGULARISED), Y)
POSTERIOR_VARIANCE = sp.MatAdd(K_STAR_STAR, sp.MatMul(-1, K_STAR.T, sp.Inverse(_REGULARISED), K_STAR, evaluate=False),
                               evaluate=False)

MATERN = _mul(SIGNAL**2, _add(1, _mul(sp.sqrt(5), R, 1 / LENGTH), 5 * R**2 / (3 * LENGTH**2)),
              sp.exp(_mul(-1, sp.sqrt(5), R, 1 / LENGTH)))

_Z = _mul(_add(MU, -INCUMBENT), sp.Pow(SIGMA, -1))
PI = NormalCDF(Z)
EI = _add(_mul(_add(MU, -INCUMBENT), NormalCDF(Z)), _mul(SIGMA, NormalPDF(Z)))
UCB = _add(MU, _mul(BETA, SIGMA))

TPE_EI = _mul(GOOD, _add(_mul(GAMMA, THRESHOLD), -PARTIAL_MEAN),
              sp.Pow(_add(_mul(GAMMA, GOOD), _mul(_add(1, -GAMMA), OTHER)), -1))
TPE_CRITERION = sp.Pow(_add(GAMMA, _mul(_add(1, -GAMMA), OTHER, 1 / GOOD)), -1)

_SETTINGS = {"order": "none"}


@provides_equations
@functools.lru_cache(maxsize=None)
def bayesopt_equations() -> tuple[Equation, ...]:
    return (
        Equation(
            "eq-hpo-matern",
            "k(r) = <<kernel>>",
            {"kernel": MATERN},
            "The Matérn 5/2 covariance of two configurations at distance r (keras-tuner's kernel).",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-hpo-gp-posterior",
            "\\begin{aligned}\n\\mu(x_{*}) &= <<mean>>, \\\\\n\\sigma^{2}(x_{*}) &= <<variance>>\n\\end{aligned}",
            {"mean": POSTERIOR_MEAN, "variance": POSTERIOR_VARIANCE},
            "The GP posterior at a new configuration: the joint Gaussian conditioned on the observed scores.",
            check="gp-posterior",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-hpo-pi",
            "\\mathrm{PI}(x) = P\\left(f(x) > f^{*}\\right) = <<pi>>, \\qquad z = <<z>>",
            {"pi": PI, "z": _Z},
            "The probability that a configuration beats the best score so far.",
            check="probability-of-improvement",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-hpo-ei",
            "\\mathrm{EI}(x) = \\mathbb{E}\\left[\\max\\left(f(x) - f^{*}, 0\\right)\\right] = <<ei>>",
            {"ei": EI},
            "Expected improvement over the best score so far, in closed form.",
            check="expected-improvement",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-hpo-ucb",
            "\\mathrm{UCB}(x) = <<ucb>>",
            {"ucb": UCB},
            "The upper confidence bound: an optimistic score, β posterior standard deviations above the mean.",
            check="confidence-bound",
            settings=_SETTINGS,
        ),
        Equation(
            "eq-hpo-tpe-ei",
            "\\mathrm{EI}_{y^{*}}(x) = <<ei>> \\propto <<criterion>>",
            {"ei": TPE_EI, "criterion": TPE_CRITERION},
            "Expected improvement under TPE's model grows with l(x)/g(x).",
            check="tpe-criterion",
            settings=_SETTINGS,
        ),
    )


def _part(label: str, name: str, candidate=None):
    """The ``candidate`` a test feeds a check, or by default the display's own part."""
    if candidate is not None:
        return candidate
    return next(item for item in bayesopt_equations() if item.label == label)[name]


def _gaussian(variable, mean, std):
    return sp.exp(-(variable - mean) ** 2 / (2 * std**2)) / (std * sp.sqrt(2 * sp.pi))


# --- checks ---------------------------------------------------------------------


def _case(size: int, numbers=None):
    """``size`` observations and one new point; every covariance entry a
    symbol, or (``numbers``, a random generator) an exact random rational."""
    def entry(name):
        if numbers is None:
            return sp.Symbol(name, real=True)
        return sp.Rational(numbers.randint(-40, 40), numbers.randint(1, 9))

    covariance = sp.Matrix(size, size, lambda i, j: entry(f"K{min(i, j)}{max(i, j)}"))
    if numbers is not None:   # a symmetric matrix: mirror the upper triangle
        covariance = sp.Matrix(size, size, lambda i, j: covariance[min(i, j), max(i, j)])
    cross = sp.Matrix(size, 1, lambda i, _: entry(f"k{i}"))
    values = {K: covariance, K_STAR: cross, K_STAR_STAR: sp.Matrix([[entry("s")]]),
              Y: sp.Matrix(size, 1, lambda i, _: entry(f"y{i}")), NOISE: sp.sqrt(entry("t") ** 2 + 1)}
    return values


def _instantiate(expression, values, size: int):
    from analysis.symbolic.core import instantiate

    # The display's matrices are n × n; the case's are size × size.
    result = instantiate(sp.sympify(expression).subs(N, size), {key.subs(N, size): value
                                                                for key, value in values.items()})
    return result[0, 0] if isinstance(result, sp.MatrixBase) else result


def _conditioning_holds(mean, variance, values, size: int) -> bool:
    """The joint Gaussian of (y, f) factorises into p(y)·N(f; μ, σ²): its
    quadratic form splits and its determinant is det(K + σ²ₙI)·σ²."""
    f = sp.Symbol("f", real=True)
    regularised = values[K] + values[NOISE] ** 2 * sp.eye(size)
    joint = sp.Matrix(sp.BlockMatrix([[regularised, values[K_STAR]], [values[K_STAR].T, values[K_STAR_STAR]]]))
    z = sp.Matrix([*values[Y], f])
    mu, var = _instantiate(mean, values, size), _instantiate(variance, values, size)
    quadratic = (z.T * joint.inv() * z)[0, 0]
    observed = (values[Y].T * regularised.inv() * values[Y])[0, 0]
    symbols = sorted(sp.Matrix(joint).free_symbols | z.free_symbols, key=str)
    return (zero_expression(sp.together(quadratic - observed - (f - mu) ** 2 / var), symbols)
            and zero_expression(sp.together(joint.det() - regularised.det() * var), symbols))


@check(
    "gp-posterior",
    "For one observation and a new point with symbolic covariances (and for two observations at random exact "
    "rational covariances), the joint Gaussian's quadratic form equals the observations' own plus (f − μ)²/σ², "
    "and its determinant equals det(K + σ²ₙI)·σ² (Schur complement), with the displayed μ and σ²: the "
    "conditional of f given y is N(μ, σ²).",
)
def check_gp_posterior(mean=None, variance=None) -> bool:
    import random

    mean = _part("eq-hpo-gp-posterior", "mean", mean)
    variance = _part("eq-hpo-gp-posterior", "variance", variance)
    numbers = random.Random(0)

    def compare():
        return (_conditioning_holds(mean, variance, _case(1), 1)
                and all(_conditioning_holds(mean, variance, _case(2, numbers), 2) for _ in range(3)))

    return safely(compare)


#: The posterior as f = μ + σu with u standard normal: f > f* ⇔ u > w.
_U = sp.Symbol("u", real=True)
_W = sp.Symbol("w", real=True)
_STANDARD = sp.exp(-_U**2 / 2) / sp.sqrt(2 * sp.pi)


def _integrate_above(integrand):
    """∫ integrand(f) N(f; μ, σ²) df over f > f*, in the standardised variable."""
    result = sp.integrate(sp.sympify(integrand).subs(F, MU + SIGMA * _U) * _STANDARD, (_U, _W, sp.oo))
    return result.subs(_W, (INCUMBENT - MU) / SIGMA)


def _same_function(a, b, symbols) -> bool:
    return zero_expression(sp.simplify((sp.sympify(a) - sp.sympify(b)).rewrite(sp.erf)), symbols)


def _integral_is_shown(integrand, shown, z) -> bool:
    """∫ integrand(f) N(f; μ, σ²) df over f > f* equals the displayed ``shown`` with z = ``z``."""
    return safely(lambda: _same_function(_integrate_above(integrand), explicit(sp.sympify(shown).subs(Z, z)),
                                         (MU, SIGMA, INCUMBENT)))


@check(
    "probability-of-improvement",
    "SymPy integrates the posterior density N(μ, σ²) from f⋆ to ∞ and obtains the displayed Φ(z).",
)
def check_probability_of_improvement(pi=None, z=None) -> bool:
    pi = _part("eq-hpo-pi", "pi", pi)
    z = _part("eq-hpo-pi", "z", z)
    return _integral_is_shown(1, pi, z)


@check(
    "expected-improvement",
    "SymPy integrates the improvement f − f⋆ against N(μ, σ²) from f⋆ to ∞ and obtains the displayed "
    "(μ − f⋆)Φ(z) + σφ(z) with z = (μ − f⋆)/σ.",
)
def check_expected_improvement(ei=None, z=None) -> bool:
    ei = _part("eq-hpo-ei", "ei", ei)
    z = _part("eq-hpo-pi", "z", z)
    return _integral_is_shown(F - INCUMBENT, ei, z)


@check(
    "confidence-bound",
    "SymPy integrates N(μ, σ²) up to the displayed bound and obtains Φ(β) (it is the posterior's Φ(β)-quantile); "
    "and the displayed posterior mean, fed −y, gives −μ while the variance does not involve y, so keras-tuner's "
    "minimised μ − βσ on negated scores is −UCB.",
)
def check_confidence_bound(ucb=None) -> bool:
    ucb = _part("eq-hpo-ucb", "ucb", ucb)

    def compare():
        bound = sp.simplify((sp.sympify(ucb) - MU) / SIGMA)          # f ≤ UCB ⇔ u ≤ bound
        below = sp.integrate(_STANDARD, (_U, -sp.oo, _W)).subs(_W, bound)
        quantile = _same_function(below, explicit(NormalCDF(BETA)), (MU, SIGMA, BETA))
        values = _case(1)
        mean = _part("eq-hpo-gp-posterior", "mean")
        negated = _instantiate(mean, {**values, Y: -values[Y]}, 1)
        linear = zero_expression(sp.together(negated + _instantiate(mean, values, 1)),
                                 sorted(negated.free_symbols, key=str))
        free = Y not in _part("eq-hpo-gp-posterior", "variance").free_symbols
        # keras-tuner minimises μ' − βσ for the GP on −y, where μ' = −μ.
        flipped = zero_expression((-MU - BETA * SIGMA) + sp.sympify(ucb), (MU, SIGMA, BETA))
        return quantile and linear and free and flipped

    return safely(compare)


@check(
    "tpe-criterion",
    "With p(y) standard normal, l and g the densities of x below and above y⋆, and p(y ∣ x) from Bayes' rule, "
    "SymPy integrates (y⋆ − y) p(y ∣ x) up to y⋆ and obtains the displayed expression (γ = Φ(y⋆)); divided by the "
    "displayed criterion it no longer depends on l or g, and the criterion increases with l for fixed g.",
)
def check_tpe_criterion(ei=None, criterion=None) -> bool:
    ei = _part("eq-hpo-tpe-ei", "ei", ei)
    criterion = _part("eq-hpo-tpe-ei", "criterion", criterion)
    y = sp.Symbol("y", real=True)

    def compare():
        density = _gaussian(y, 0, 1)
        share = sp.integrate(density, (y, -sp.oo, THRESHOLD))
        partial_mean = sp.integrate(y * density, (y, -sp.oo, THRESHOLD))
        evidence = share * GOOD + (1 - share) * OTHER           # p(x)
        direct = sp.integrate((THRESHOLD - y) * GOOD * density / evidence, (y, -sp.oo, THRESHOLD))
        claimed = sp.sympify(ei).subs({GAMMA: share, PARTIAL_MEAN: partial_mean})
        symbols = (THRESHOLD, GOOD, OTHER)
        matches = _same_function(direct, claimed, symbols)
        ratio = sp.simplify(sp.sympify(ei) / sp.sympify(criterion))
        constant = sp.diff(ratio, GOOD) == 0 and sp.diff(ratio, OTHER) == 0
        q = sp.Symbol("q", positive=True)                          # γ = 1/(1 + q) ∈ (0, 1)
        slope = sp.simplify(sp.diff(sp.sympify(criterion), GOOD).subs(GAMMA, 1 / (1 + q)))
        return bool(matches and constant and slope.is_positive)

    return safely(compare)
