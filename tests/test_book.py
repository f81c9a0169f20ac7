"""The book check on the real book: what `quarto render` would catch."""

from __future__ import annotations

import pytest

import bookcheck
from analysis.config import PROJECT_ROOT

DOCUMENTS = bookcheck.book_files(PROJECT_ROOT)


def test_every_chapter_exists_and_is_listed():
    assert bookcheck.check_chapters(PROJECT_ROOT) == []


def test_cross_references_resolve_to_exactly_one_label():
    assert bookcheck.check_crossrefs(PROJECT_ROOT) == []


def test_citations_are_in_the_bibliography_and_it_parses():
    assert bookcheck.check_citations(PROJECT_ROOT) == []


def test_figures_and_tables_have_captions_and_alt_text():
    assert bookcheck.check_figure_cells(PROJECT_ROOT) == []


# Each document's cells are executed by tests/test_render.py, in the same
# process as the render that follows (see there).
