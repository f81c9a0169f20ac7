"""The book check on the real book: what `quarto render` would catch."""

from __future__ import annotations

import os

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


@pytest.fixture(scope="session")
def smoke_environment(tmp_path_factory):
    """Chapters execute under the smoke profile with a private result cache.

    Setting NNSTUDY_CACHE=project keeps the project's own cache instead, so a
    developer's second run reuses what the first one trained.
    """
    saved = dict(os.environ)
    os.environ["QUARTO_PROFILE"] = "smoke"
    os.environ.pop("NNSTUDY_PROFILE", None)
    os.environ.pop("NNSTUDY_REFRESH", None)
    if os.environ.get("NNSTUDY_CACHE") == "project":
        os.environ.pop("NNSTUDY_CACHE")
    else:
        os.environ["NNSTUDY_CACHE"] = str(tmp_path_factory.mktemp("book-cache"))
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_executes(document, smoke_environment):
    assert bookcheck.execute(PROJECT_ROOT, document) == []
