"""The one mechanism behind every displayed equation: the typed LaTeX of each
``$$ … $$ {#eq-…}`` in a chapter equals ``sympy.latex`` of the expressions
registered under its label in ``analysis.symbolic`` (which its check tests)."""

import re
from pathlib import Path

import pytest
import sympy as sp

from analysis import symbolic
from analysis.symbolic import backprop
from analysis.symbolic.core import _GENERATED

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.qmd"))

# Displays that a chapter still generates outside the registry (a cell with
# ``label="eq-…"`` calling a table helper), by the helper that must become a
# typed display. The test fails once one is moved: then drop it here.
NOT_YET_MOVED: dict[str, str] = {}
_CELL_LABEL = re.compile(r"""label\s*=\s*["'](eq-[\w-]+)["']""")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name)
def test_every_display_matches_its_registered_expression(chapter):
    assert symbolic.chapter_problems(chapter) == []


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name)
def test_every_equation_label_in_a_chapter_is_registered(chapter):
    source = chapter.read_text(encoding="utf-8")
    typed = {label for label, _, _ in symbolic.displayed_equations(source)}
    generated = set(_GENERATED.findall(source))
    missing = sorted((typed | generated) - set(symbolic.registry()))
    assert missing == [], f"{chapter.name}: not registered: {', '.join(missing)}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name)
def test_no_display_is_generated_outside_the_registry(chapter):
    outside = sorted(set(_CELL_LABEL.findall(chapter.read_text(encoding="utf-8"))) - set(NOT_YET_MOVED))
    assert outside == [], f"{chapter.name}: {', '.join(outside)} generated outside analysis.symbolic"


def test_the_not_yet_moved_list_is_current():
    everywhere = "".join(path.read_text(encoding="utf-8") for path in CHAPTERS)
    for label in NOT_YET_MOVED:
        assert f'label="{label}"' in everywhere, f"{label} has moved: drop it from NOT_YET_MOVED"


def _mutated_chapter(tmp_path, old, new, label="eq-hidden-delta"):
    source = (ROOT / "chapters" / "backprop.qmd").read_text(encoding="utf-8")
    block_end = source.index(f"{{#{label}}}")
    block_start = source.rindex("$$\n", 0, source.rindex("$$", 0, block_end))
    block = source[block_start:block_end]
    assert old in block, block
    path = tmp_path / "backprop.qmd"
    path.write_text(source[:block_start] + block.replace(old, new) + source[block_end:], encoding="utf-8")
    return path


def test_dropping_the_transpose_from_the_display_is_caught(tmp_path):
    path = _mutated_chapter(tmp_path, r"\left(W^{l+1}\right)^{\top}", r"W^{l+1}")
    problems = symbolic.chapter_problems(path)
    assert len(problems) == 1
    assert "eq-hidden-delta" in problems[0] and "backprop.qmd" in problems[0]


def test_a_changed_sign_or_factor_is_caught(tmp_path):
    path = _mutated_chapter(tmp_path, r"\mathbf{p} - \mathbf{y}", r"\mathbf{y} - \mathbf{p}", "eq-output-delta")
    assert ["eq-output-delta" in line for line in symbolic.chapter_problems(path)] == [True]


def test_whitespace_and_line_breaks_do_not_matter():
    assert symbolic.normalise("a  +\n b") == symbolic.normalise("a+b")
    assert symbolic.normalise(r"\circ f") != symbolic.normalise(r"\circf")


def test_an_unregistered_display_is_named(tmp_path):
    path = tmp_path / "extra.qmd"
    path.write_text("Text.\n\n$$\nx = 1\n$$ {#eq-nowhere}\n", encoding="utf-8")
    assert symbolic.chapter_problems(path) == ["extra.qmd:3: eq-nowhere is not registered in analysis.symbolic"]


def test_the_registered_expression_is_what_the_check_tests():
    # Dropping the transpose from the *registered* expression (so that the
    # display could follow it) makes the check fail: the two cannot drift.
    wrong = sp.HadamardProduct(backprop.W_NEXT * backprop.DELTA_NEXT, backprop.F_PRIME_OF_Z, evaluate=False)
    assert symbolic.check_hidden_delta(formula=wrong) is False
    assert symbolic.equation("eq-hidden-delta")["formula"] is backprop.HIDDEN_DELTA


def test_definitions_are_marked_and_checks_counted_once():
    definitions = ("eq-forward", "eq-loss", "eq-two-layer-loss", "eq-layernorm-mean", "eq-layernorm-std",
                   "eq-layernorm-normalize", "eq-layernorm-affine", "eq-hpo-matern")
    for label in definitions:
        assert symbolic.equation(label).is_definition
    for label, item in symbolic.registry().items():
        if label not in definitions:
            assert not item.is_definition, label
    twice = [symbolic.equation("eq-hidden-delta"), symbolic.equation("eq-hidden-delta"),
             symbolic.equation("eq-forward"), symbolic.equation("eq-two-layer-gradients")]
    assert symbolic.check_summary(twice) == (3, 3)


_FORMATTING = re.compile(
    r"\\(left|right|mathbf|boldsymbol|operatorname|mathcal|mathbb|hat|text|tfrac|frac|begin|end|quad|qquad|substack)"
)


def visible_width(line: str) -> int:
    """Rough count of the symbols a line of a display shows side by side:
    formatting commands count nothing, other commands one symbol each."""
    text = _FORMATTING.sub("", line)
    text = re.sub(r"\\[A-Za-z]+", "#", text)
    return len(re.sub(r"[{}&\s^_]", "", text))


def test_visible_width_counts_symbols_not_markup():
    assert visible_width(r"\mathbf{p} - \mathbf{y}") == 3
    assert visible_width(r"\left(W^{l+1}\right)^{\top}") == 7


def test_every_display_is_narrow_enough():
    # About 700 px: at most ~50 symbols per line of a display; longer ones
    # are broken over lines with \begin{aligned}.
    for label, item in symbolic.registry().items():
        for line in item.latex.split("\\\\"):
            assert visible_width(line) <= 50, f"{label}: {visible_width(line)} symbols on one line; break it"


def test_no_odot_in_any_display():
    for item in symbolic.registry().values():
        assert r"\odot" not in item.latex
    for path in CHAPTERS:
        for label, typed, _ in symbolic.displayed_equations(path.read_text(encoding="utf-8")):
            assert r"\odot" not in typed, label
