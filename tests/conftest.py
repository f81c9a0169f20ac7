"""Shared test settings: never touch the network, never touch the user's cache."""

import os

import pytest

# Set before anything imports analysis or Keras.
os.environ["NNSTUDY_OFFLINE"] = "1"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty result cache for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("NNSTUDY_CACHE", str(path))
    monkeypatch.delenv("NNSTUDY_REFRESH", raising=False)
    return path
