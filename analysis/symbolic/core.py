"""The registry that ties each displayed equation to the SymPy expression its
check tests.

The book's rule: a reader reads and edits an equation in the chapter, as a
literal ``$$ … $$ {#eq-…}`` display. The same equation is registered here
under its label, as SymPy expressions (its *parts*) placed into a small LaTeX
*template*. The template holds layout (``&``, ``\\\\``, ``\\qquad``, text) and the
fixed names a display starts with (``f'(x) &=``, ``\\frac{\\partial \\mathcal{L}}
{\\partial W_2} &=``); every formula a check tests is a part. The check named
by the equation tests those very parts, and
:func:`chapter_problems` compares the typed LaTeX of every display with
``sympy.latex`` of the registered parts, so neither can change without the
other (tests/test_equations.py runs it on every chapter).

An equation without a check is a *definition* (a forward pass, a loss): the
check table says so instead of showing a tick. Every check is a function that
takes the candidate formula as a keyword argument (defaulting to the
displayed one), so a test can feed it a wrong formula and see it fail.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import sympy as sp
from sympy.printing.latex import LatexPrinter

from analysis.errors import UserError

# ---------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------


class BookLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the book's notation.

    Sums keep the order in which they were written, a transpose is
    ``^{\\top}``, the all-ones vector is ``\\mathbf{1}``, a first derivative
    is ``\\frac{\\partial L}{\\partial x}``, and a Hadamard square stays
    ``a \\circ a``.
    """

    def _print_MatAdd(self, expr):
        pieces = []
        for index, term in enumerate(expr.args):
            negative = _negative_term(term)
            text = self._print(-term if negative else term)
            if isinstance(term, sp.MatAdd) or (negative and isinstance(-term, sp.MatAdd)):
                text = rf"\left({text}\right)"
            if index == 0:
                pieces.append(f"- {text}" if negative else text)
            else:
                pieces.append(f" - {text}" if negative else f" + {text}")
        return "".join(pieces)

    def _print_Mul(self, expr):
        # (1/N) Σ … stays a mean: "\frac{1}{N} \sum", not "\frac{\sum …}{N}".
        factors = list(expr.args)
        reciprocal = [f for f in factors if isinstance(f, sp.Pow) and f.exp == -1 and f.base.is_Symbol]
        if len(reciprocal) == 1 and any(isinstance(f, sp.Sum) for f in factors):
            rest = [f for f in factors if f is not reciprocal[0]]
            sign = ""
            if -1 in rest:
                rest.remove(-1)
                sign = "- "
            body = self._print(sp.Mul(*rest, evaluate=False)) if len(rest) > 1 else self._print(rest[0])
            return rf"{sign}\frac{{1}}{{{self._print(reciprocal[0].base)}}} {body}"
        return super()._print_Mul(expr)

    def _print_Sum(self, expr):
        # A double sum prints as two sums (pandoc has no \substack for typst).
        if len(expr.limits) > 1:
            inner = sp.Sum(expr.function, *expr.limits[:-1])
            outer = sp.Sum(sp.Symbol("INNER"), expr.limits[-1])
            return super()._print_Sum(outer).replace("INNER", self._print(inner))
        return super()._print_Sum(expr)

    def _print_Indexed(self, expr):
        indices = ",".join(self._print(index) for index in expr.indices)
        return f"{self._print(expr.base.label)}_{{{indices}}}"

    def _print_Transpose(self, expr):
        text = super()._print_Transpose(expr)
        return text[: -len("^{T}")] + r"^{\top}" if text.endswith("^{T}") else text

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"

    def _print_HadamardPower(self, expr):
        if expr.exp == 2:
            base = self.parenthesize(expr.base, 1000, strict=True)
            return rf"{base} \circ {base}"
        return super()._print_HadamardPower(expr)

    def _print_Derivative(self, expr):
        if len(expr.variable_count) == 1 and expr.variable_count[0][1] == 1:
            variable = expr.variable_count[0][0]
            if expr.expr.is_Atom or isinstance(expr.expr, (sp.Indexed, sp.MatrixSymbol)):
                return rf"\frac{{\partial {self._print(expr.expr)}}}{{\partial {self._print(variable)}}}"
            return rf"\frac{{\partial}}{{\partial {self._print(variable)}}} {self._print(expr.expr)}"
        return super()._print_Derivative(expr)


def _negative_term(term) -> bool:
    """Whether a term of a matrix sum carries a minus sign (−c·M or −M)."""
    if isinstance(term, sp.MatMul):
        coefficient = term.args[0]
        return bool(coefficient.is_number and coefficient.is_negative) or (
            not coefficient.is_Matrix and coefficient.could_extract_minus_sign()
        )
    return term.could_extract_minus_sign()


def latex(expression, **settings) -> str:
    """``sympy.latex`` with :class:`BookLatexPrinter` (strings pass through)."""
    if isinstance(expression, str):
        return expression
    return BookLatexPrinter(settings).doprint(expression)


class Mean(sp.Function):
    """The mean of a vector's entries, printed as ``mean(v)``; evaluates once
    its argument is an explicit matrix."""

    is_commutative = True

    @classmethod
    def eval(cls, argument):
        if isinstance(argument, sp.MatrixBase):
            return sum(argument) / len(argument)
        return None

    def _latex(self, printer):
        return rf"\operatorname{{mean}}\left({printer._print(self.args[0])}\right)"


class FrobeniusNorm(sp.Function):
    """‖W‖_F, printed as ``\\left\\| W \\right\\|_F``; evaluates once its
    argument is an explicit matrix."""

    is_commutative = True

    @classmethod
    def eval(cls, argument):
        if isinstance(argument, sp.MatrixBase):
            return sp.sqrt(sum(entry**2 for entry in argument))
        return None

    def _latex(self, printer, exp=None):
        text = rf"\left\| {printer._print(self.args[0])} \right\|_F"
        return text if exp is None else rf"{text}^{{{exp}}}"


# ---------------------------------------------------------------------------
# Equations and checks
# ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<<(\w+)>>")


@dataclass(frozen=True, eq=False)
class Equation:
    """One numbered display equation of the book.

    Attributes:
        label: the Quarto label, e.g. ``"eq-output-delta"``.
        template: the display's LaTeX with ``<<name>>`` where each part goes;
            it holds layout (alignment, line breaks, spacing, text) and fixed
            names such as ``f'(x) &=``, never a formula that is checked.
        parts: SymPy objects by name; the check tests these.
        description: one sentence saying what the equation states.
        check: the key of the check that verifies it (or a tuple of keys),
            or ``None`` for a definition (nothing to verify: it says what a
            symbol means).
        settings: printer settings (e.g. ``symbol_names``) for this display.
    """

    label: str
    template: str
    parts: Mapping[str, object]
    description: str
    check: str | tuple[str, ...] | None = None
    settings: Mapping[str, object] = field(default_factory=dict)

    @property
    def is_definition(self) -> bool:
        return self.check is None

    @property
    def checks(self) -> tuple[str, ...]:
        """The keys of its checks (empty for a definition)."""
        if self.check is None:
            return ()
        return (self.check,) if isinstance(self.check, str) else tuple(self.check)

    @functools.cached_property
    def latex(self) -> str:
        """The display's body, every part printed by SymPy."""

        def fill(match):
            name = match.group(1)
            if name not in self.parts:
                raise KeyError(f"{self.label}: the template names no part {name!r}")
            return latex(self.parts[name], **self.settings)

        return _PLACEHOLDER.sub(fill, self.template)

    def markdown(self) -> str:
        """The equation as a Quarto display block with its label."""
        return f"$$\n{self.latex}\n$$ {{#{self.label}}}"

    def __getitem__(self, name: str):
        return self.parts[name]


@dataclass(frozen=True)
class Check:
    """A SymPy check: ``function()`` verifies the displayed formula and
    returns a bool; it accepts the candidate formula as a keyword argument
    (see each check's docstring) so a test can feed it a wrong one."""

    key: str
    description: str
    function: Callable[..., bool]


_EQUATION_PROVIDERS: list[Callable[[], Iterable[Equation]]] = []
_CHECKS: dict[str, Check] = {}


def provides_equations(provider: Callable[[], Iterable[Equation]]):
    """Register a function that returns a topic's equations (called lazily:
    building them may need SymPy derivations)."""
    _EQUATION_PROVIDERS.append(provider)
    return provider


def check(key: str, description: str):
    """Decorator: register ``function`` as the check ``key``."""

    def register(function):
        if key in _CHECKS:
            raise RuntimeError(f"check {key!r} registered twice")
        _CHECKS[key] = Check(key, description, function)
        return function

    return register


def registry() -> dict[str, Equation]:
    """Every registered equation by label."""
    found: dict[str, Equation] = {}
    for provider in _EQUATION_PROVIDERS:
        for item in provider():
            if item.label in found:
                raise RuntimeError(f"equation {item.label} registered twice")
            for key in item.checks:
                if key not in _CHECKS:
                    raise RuntimeError(f"{item.label} names check {key!r}, which is not registered")
            found[item.label] = item
    return found


def equation(label: str) -> Equation:
    """The registered equation ``label``; a one-line error for an unknown one."""
    equations = registry()
    if label not in equations:
        raise UserError(f"no equation labelled {label!r} is registered in analysis.symbolic")
    return equations[label]


def checks() -> dict[str, Check]:
    """Every registered check by key (the topic modules register theirs when
    imported)."""
    return dict(_CHECKS)


@functools.lru_cache(maxsize=None)
def run_check(key: str) -> bool:
    """Run the check ``key`` on the displayed formula (cached)."""
    if key not in _CHECKS:
        raise UserError(f"no check named {key!r}; known: {', '.join(sorted(_CHECKS))}")
    return bool(_CHECKS[key].function())


def run_checks(keys: Iterable[str]) -> dict[str, bool]:
    """``{key: passed}`` for the given check keys, each run once."""
    return {key: run_check(key) for key in dict.fromkeys(keys)}


def check_summary(equations: Iterable[Equation]) -> tuple[int, int]:
    """(passed, total) over the *distinct* checks of ``equations``:
    definitions have none, and a check shared by several equations counts
    once."""
    keys = [key for item in equations for key in item.checks]
    results = run_checks(keys)
    return sum(results.values()), len(results)


# ---------------------------------------------------------------------------
# The displays in the chapters
# ---------------------------------------------------------------------------

_DISPLAY = re.compile(r"\$\$(.*?)\$\$\s*\{#(eq-[\w-]+)\}", re.DOTALL)
_GENERATED = re.compile(r"""symbolic\.display\(\s*["'](eq-[\w-]+)["']""")


def normalise(text: str) -> str:
    """LaTeX with insignificant whitespace removed: runs of whitespace become
    one space between two letters or digits (``\\circ f``) and disappear
    elsewhere."""
    text = re.sub(r"\s+", " ", text.strip())
    return re.sub(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])", "", text)


def displayed_equations(source: str) -> list[tuple[str, str, int]]:
    """(label, typed LaTeX, line) of every ``$$ … $$ {#eq-…}`` display."""
    return [
        (match.group(2), match.group(1), source.count("\n", 0, match.start()) + 1)
        for match in _DISPLAY.finditer(source)
    ]


def chapter_problems(path: Path) -> list[str]:
    """One line per display of the chapter at ``path`` that is not
    registered, or whose typed LaTeX differs from the registered expression
    printed by SymPy; empty when every display matches."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    equations = registry()
    problems = []
    for label, typed, line in displayed_equations(source):
        if label not in equations:
            problems.append(f"{path.name}:{line}: {label} is not registered in analysis.symbolic")
        elif normalise(typed) != normalise(equations[label].latex):
            problems.append(
                f"{path.name}:{line}: {label} differs from its registered SymPy expression; "
                f"SymPy prints: {equations[label].latex!r}"
            )
    for match in _GENERATED.finditer(source):
        if match.group(1) not in equations:
            line = source.count("\n", 0, match.start()) + 1
            problems.append(f"{path.name}:{line}: {match.group(1)} is not registered in analysis.symbolic")
    return problems


def display(label: str):
    """A display generated from the registry, for an equation whose content
    SymPy computes: ``symbolic.display("eq-…")`` in a cell."""
    from IPython.display import Markdown

    return Markdown(equation(label).markdown())


# ---------------------------------------------------------------------------
# Helpers the checks share
# ---------------------------------------------------------------------------


def instantiate(expression, values: Mapping):
    """Replace symbols and matrix symbols by concrete SymPy objects and
    evaluate: a matrix expression becomes an explicit ``sp.Matrix``. Raises
    ``sympy.ShapeError`` when the shapes do not compose."""
    replacements = {
        key: sp.ImmutableMatrix(value) if isinstance(value, sp.MatrixBase) else sp.sympify(value)
        for key, value in values.items()
    }
    result = sp.sympify(expression).xreplace(replacements).doit()
    if isinstance(result, (sp.MatrixExpr, sp.MatrixBase)):
        return sp.Matrix(result.as_explicit())
    return result


def matrix(name: str, rows: int, columns: int) -> sp.Matrix:
    return sp.Matrix(rows, columns, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def vector(name: str, rows: int) -> sp.Matrix:
    return sp.Matrix(rows, 1, lambda i, _: sp.Symbol(f"{name}_{i + 1}", real=True))


def zero_expression(expression: sp.Expr, symbols) -> bool:
    """Whether an expression is identically zero.

    Exact algebra decides first (``cancel`` after ``expand``). If that leaves
    something, the expression is evaluated to 30 digits at random rational
    points: a clearly non-zero value is a witness that it is not zero. Only
    if every point gives ~0 do we fall back to the slow ``simplify``, and
    raise if even that cannot decide.
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


def safely(function: Callable[[], bool]) -> bool:
    """Run a comparison; a candidate whose shapes do not compose (a dropped
    transpose) or that SymPy cannot evaluate fails the check."""
    try:
        return bool(function())
    except (sp.ShapeError, ValueError, TypeError, KeyError, IndexError):
        return False
