"""Shared test settings: never touch the network, never touch the user's cache."""

import os
from pathlib import Path

import pytest

# Set before anything imports analysis or Keras. The render test hands Quarto
# the environment without the quietening set here (TEST_ONLY_ENV), so that the
# render logs what a reader's `quarto render` logs.
os.environ["NNSTUDY_OFFLINE"] = "1"
TEST_ONLY_ENV = [name for name in ("TF_CPP_MIN_LOG_LEVEL",) if name not in os.environ]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The book's default Keras backend (analysis.config.default_backend), unless
# KERAS_BACKEND is set: importing analysis sets it before any test imports Keras.
import analysis  # noqa: E402,F401

# Tests that render the book with Quarto run after every other test: they reuse
# the results the book check trained into the shared cache (book_cache below).
RUN_LAST = ("test_render.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: Path(str(item.fspath)).name in RUN_LAST)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty result cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("NNSTUDY_CACHE", str(path))
    monkeypatch.delenv("NNSTUDY_REFRESH", raising=False)
    return path


@pytest.fixture(scope="session")
def book_cache(tmp_path_factory):
    """The result cache shared by the book check and the render test.

    Both execute the chapters under the smoke profile, so the render finds
    every result the book check trained: training happens once per test run.
    By default the cache is private and temporary. NNSTUDY_CACHE=project uses
    the project's own cache (a developer's second run then reuses what the
    first trained); NNSTUDY_TEST_CACHE=/some/dir uses that directory.
    """
    if os.environ.get("NNSTUDY_CACHE") == "project":
        from analysis.config import PROJECT_ROOT
        return PROJECT_ROOT / ".nnstudy-cache"
    if os.environ.get("NNSTUDY_TEST_CACHE"):
        return Path(os.environ["NNSTUDY_TEST_CACHE"])
    return tmp_path_factory.mktemp("book-cache")


@pytest.fixture(scope="session")
def executed_documents():
    """The documents the book check executed without a problem in this session
    (the render test then expects their results in book_cache)."""
    return set()


@pytest.fixture(scope="session")
def smoke_environment(book_cache):
    """The environment a smoke-profile render sees: profile, cache, no refresh."""
    saved = dict(os.environ)
    os.environ["QUARTO_PROFILE"] = "smoke"
    os.environ["NNSTUDY_CACHE"] = str(book_cache)
    os.environ.pop("NNSTUDY_PROFILE", None)
    os.environ.pop("NNSTUDY_REFRESH", None)
    yield book_cache
    os.environ.clear()
    os.environ.update(saved)
