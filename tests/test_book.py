"""The book check on the real book: what `quarto render` would catch."""

from __future__ import annotations

import os

import pytest

import bookcheck
from analysis.config import PROJECT_ROOT

DOCUMENTS = bookcheck.book_files(PROJECT_ROOT)

# One process runs the book check and then the render (pytest-xdist's
# loadgroup): the render reads the cache the book check filled.
pytestmark = pytest.mark.xdist_group("book")


def test_every_chapter_exists_and_is_listed():
    assert bookcheck.check_chapters(PROJECT_ROOT) == []


def test_cross_references_resolve_to_exactly_one_label():
    assert bookcheck.check_crossrefs(PROJECT_ROOT) == []


def test_citations_are_in_the_bibliography_and_it_parses():
    assert bookcheck.check_citations(PROJECT_ROOT) == []


def test_figures_and_tables_have_captions_and_alt_text():
    assert bookcheck.check_figure_cells(PROJECT_ROOT) == []


# smoke_environment (tests/conftest.py) shares its result cache with the render
# test (tests/test_render.py), which runs last and so trains nothing new.


# Every chapter runs under both Keras backends. The book's own backend (the
# process's KERAS_BACKEND, set by analysis) goes first: its results are the
# ones the render reuses.
BACKENDS = sorted({"jax", "tensorflow"}, key=lambda name: name != os.environ["KERAS_BACKEND"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_executes(document, backend, smoke_environment, executed_documents,
                           monkeypatch):
    book_backend = os.environ["KERAS_BACKEND"]
    monkeypatch.setenv("KERAS_BACKEND", backend)   # the kernel inherits it
    assert bookcheck.execute(PROJECT_ROOT, document) == []
    if backend == book_backend:
        executed_documents.add(document)
