"""The book check must fail on each defect a render would fail on."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import bookcheck

GOOD_CHAPTER = """
# Results {#sec-results}

As @fig-line shows, and @tbl-numbers lists [see @rumelhart1986], $$x^2$$ {#eq-square}
appears in @eq-square.

```{python}
#| label: fig-line
#| fig-cap: "A line."
#| fig-alt: "A straight line rising from left to right."
import matplotlib.pyplot as plt
plt.plot([0, 1], [0, 1])
plt.show()
```

```{python}
#| label: tbl-numbers
#| tbl-cap: "Numbers."
from IPython.display import Markdown
Markdown("| a | b |\\n|---|---|\\n| 1 | 2 |")
```

```{python}
#| eval: false
raise RuntimeError("not evaluated")
```

The answer is `{python} 6 * 7`.
"""

BIB = """
@article{rumelhart1986,
  author = {Rumelhart, David E.}, title = {Learning representations}, year = {1986}
}
"""


def make_book(root: Path, chapter: str = GOOD_CHAPTER, extra_files=None, listed=None) -> Path:
    listed = listed or ["index.qmd", "chapters/results.qmd"]
    (root / "chapters").mkdir(parents=True)
    (root / "_quarto.yml").write_text(
        "project:\n  type: book\nbook:\n  chapters:\n"
        + "".join(f"    - {name}\n" for name in listed)
    )
    (root / "index.qmd").write_text("# Preface {.unnumbered}\n\nSee @sec-results.\n")
    (root / "chapters" / "results.qmd").write_text(textwrap.dedent(chapter))
    (root / "references.bib").write_text(BIB)
    for name, text in (extra_files or {}).items():
        (root / name).write_text(text)
    return root


def test_a_good_book_passes(tmp_path):
    root = make_book(tmp_path)
    assert bookcheck.static_problems(root) == []
    assert bookcheck.execute(root, "chapters/results.qmd") == []


def test_broken_cross_reference(tmp_path):
    root = make_book(tmp_path, GOOD_CHAPTER + "\nSee @fig-missing.\n")
    problems = bookcheck.check_crossrefs(root)
    assert len(problems) == 1 and "@fig-missing" in problems[0]


def test_duplicated_label(tmp_path):
    root = make_book(tmp_path, GOOD_CHAPTER + "\n## Again {#sec-results}\n")
    problems = bookcheck.check_crossrefs(root)
    assert len(problems) == 1 and "sec-results is defined 2 times" in problems[0]


def test_missing_citation_key(tmp_path):
    root = make_book(tmp_path, GOOD_CHAPTER + "\nAs shown [@nobody2020].\n")
    problems = bookcheck.check_citations(root)
    assert len(problems) == 1 and "@nobody2020" in problems[0]


def test_unparsable_bibliography_entry(tmp_path):
    root = make_book(tmp_path)
    (root / "references.bib").write_text(BIB + "\n@article{broken, title = {unclosed\n")
    assert any("cannot parse" in p for p in bookcheck.check_citations(root))


def test_chapter_file_not_listed(tmp_path):
    root = make_book(tmp_path)
    (root / "chapters" / "orphan.qmd").write_text("# Orphan\n")
    assert bookcheck.check_chapters(root) == ["chapters/orphan.qmd is not listed in _quarto.yml's chapters"]


def test_listed_chapter_missing(tmp_path):
    root = make_book(tmp_path, listed=["index.qmd", "chapters/results.qmd", "chapters/gone.qmd"])
    assert bookcheck.check_chapters(root) == ["_quarto.yml lists chapters/gone.qmd, which does not exist"]


def test_cell_that_raises(tmp_path):
    chapter = GOOD_CHAPTER + "\n```{python}\n1 / 0\n```\n"
    root = make_book(tmp_path, chapter)
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and "ZeroDivisionError" in problems[0] and "line" in problems[0]


def test_inline_expression_that_raises(tmp_path):
    root = make_book(tmp_path, GOOD_CHAPTER + "\nBroken: `{python} undefined_name`.\n")
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and "NameError" in problems[0]


def test_figure_cell_without_image(tmp_path):
    chapter = GOOD_CHAPTER.replace("plt.plot([0, 1], [0, 1])\nplt.show()", "x = 1")
    root = make_book(tmp_path, chapter)
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and problems[0].endswith("fig-line produced no image")


def test_table_cell_without_table(tmp_path):
    chapter = GOOD_CHAPTER.replace('Markdown("| a | b |\\n|---|---|\\n| 1 | 2 |")', 'print("no table")')
    root = make_book(tmp_path, chapter)
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and problems[0].endswith("tbl-numbers produced no table")


def test_figure_without_caption_or_alt_text(tmp_path):
    chapter = GOOD_CHAPTER.replace('#| fig-alt: "A straight line rising from left to right."\n', "")
    root = make_book(tmp_path, chapter)
    problems = bookcheck.check_figure_cells(root)
    assert len(problems) == 1 and problems[0].endswith("fig-line has no fig-alt")


def test_cells_run_at_the_project_root(tmp_path):
    chapter = "```{python}\nimport os\nassert os.path.exists('_quarto.yml'), os.getcwd()\n```\n"
    root = make_book(tmp_path, chapter)
    assert bookcheck.execute(root, "chapters/results.qmd") == []


def test_inline_expression_that_is_blank(tmp_path):
    # Quarto keeps the source of an inline expression whose value is falsy.
    chapter = GOOD_CHAPTER + "\nMaybe: `{python} 'a sentence' if 1 > 2 else ''`.\n"
    root = make_book(tmp_path, chapter)
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and "is blank" in problems[0]


def test_inline_expression_that_is_blank_markdown(tmp_path):
    chapter = ("```{python}\nfrom IPython.display import Markdown\n```\n\n"
               "Empty: `{python} Markdown('   ')`.\n")
    root = make_book(tmp_path, chapter)
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and "is blank" in problems[0]


def test_inline_expression_with_markup(tmp_path):
    root = make_book(tmp_path, GOOD_CHAPTER + "\nBold: `{python} '**yes**'`.\n")
    problems = bookcheck.execute(root, "chapters/results.qmd")
    assert len(problems) == 1 and "Markdown markup" in problems[0]
