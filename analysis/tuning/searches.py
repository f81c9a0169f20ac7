"""The keras-tuner searches that ``python -m analysis tune`` can run, by name.

A search is registered under the name of the experiment that runs it
(``chapter.experiment``) with a *factory*::

    def random_search(profile, directory):
        tuner = keras_tuner.RandomSearch(build_model, ..., seed=0,
                                         directory=directory, project_name="random",
                                         overwrite=False)
        return tuner, {"x": x, "y": y, "validation_data": (xv, yv), "epochs": 3}

    register("hpo.random_search", "analysis.experiments.hpo:random_search")

``factory(profile, directory)`` builds the tuner in ``directory`` (with
``overwrite=False``: a distributed search and the experiment that adopts its
result both rely on reloading the project) and returns the keyword arguments
of ``tuner.search``. It loads its own data: a worker on another machine has
nothing but the profile. A factory given as ``"module:function"`` is imported
only when the search runs, so the command line can reject a wrong name before
Keras loads.

The experiment itself calls :func:`run_search` where it would call
``tuner.search``::

    @experiment(datasets=("mnist",), config=...)
    def random_search(run, config):
        tuner = tuning.run_search("hpo.random_search", run.profile, run.subdirectory("tuner"))
        ...   # read tuner.oracle, retrain the best configuration, etc.

In one process that is exactly ``tuner.search``. Under ``python -m analysis
tune SEARCH --workers N`` the chief first runs the search with keras-tuner's
chief/worker engine, then computes the experiment in its own process, where
:func:`run_search` copies the finished project into ``directory`` and reloads
it instead of searching again: the cache entry is made by the same code, under
the same key, as a single-process search's.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from analysis.errors import UserError


@dataclass(frozen=True)
class Search:
    name: str                       # the experiment's full name, chapter.experiment
    factory_ref: Callable | str     # a callable or "module:function"

    def factory(self) -> Callable:
        if callable(self.factory_ref):
            return self.factory_ref
        module, _, function = self.factory_ref.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def module(self) -> str:
        ref = self.factory_ref
        return ref.__module__ if callable(ref) else ref.partition(":")[0]


#: Every registered search, by name.
REGISTRY: dict[str, Search] = {}


def register(name: str, factory: Callable | str) -> None:
    """Make ``name`` (an experiment's ``chapter.name``) runnable by ``tune``."""
    if "." not in name:
        raise ValueError(f"search name {name!r} must be the experiment's chapter.name")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"factory {factory!r} must be a callable or 'module:function'")
    REGISTRY[name] = Search(name, factory)


def lookup(name: str) -> Search:
    """The search ``name`` (or its unique short name); a one-line error listing the valid ones."""
    matches = [s for s in REGISTRY.values() if name in (s.name, s.name.rpartition(".")[2])]
    if len(matches) == 1:
        return matches[0]
    valid = ", ".join(sorted(REGISTRY)) or "(none registered)"
    problem = "is ambiguous" if matches else "is not a registered search"
    raise UserError(f"{name!r} {problem}; valid searches: {valid}")


def experiment_for(search: Search):
    """The cached experiment that runs ``search`` (same name)."""
    from analysis import runner

    search.factory()  # imports the module that defines (and registers) it
    if search.name not in runner.REGISTRY:
        runner.load_all()
    if search.name not in runner.REGISTRY:
        raise UserError(f"search {search.name!r} is registered, but no experiment of that "
                        "name exists; name the search after the experiment that runs it")
    return runner.REGISTRY[search.name]


# --------------------------------------------------------------------------
# Running a search inside its experiment


@dataclass(frozen=True)
class _Finished:
    """A search the chief finished: its directory and what to leave out of it."""

    directory: Path
    trials: int
    exclude: frozenset[str]     # the workers' own state files (worker-0.json, ...)


_finished: dict[str, _Finished] = {}


@contextlib.contextmanager
def adopting(name: str, directory: Path, trials: int, exclude=()):
    """While active, :func:`run_search` for ``name`` adopts the search in ``directory``."""
    _finished[name] = _Finished(Path(directory), trials, frozenset(exclude))
    try:
        yield
    finally:
        _finished.pop(name, None)


def run_search(name: str, profile, directory):
    """Build search ``name``'s tuner in ``directory`` and search; return the tuner.

    If the chief of a distributed search is computing this experiment, the
    finished project is copied into ``directory`` and reloaded (keras-tuner
    then finds every trial done and ``search`` returns at once).
    """
    search = lookup(name)
    finished = _finished.get(search.name)
    if finished is not None:
        shutil.copytree(finished.directory, directory, dirs_exist_ok=True,
                        ignore=lambda _, names: [n for n in names if n in finished.exclude])
    # Reloading, keras-tuner prints "Reloading Tuner from ..."; a search run in
    # one process says nothing of the kind, and neither should its adoption.
    quiet = contextlib.redirect_stdout(io.StringIO()) if finished else contextlib.nullcontext()
    with quiet:
        tuner, search_kwargs = search.factory()(profile, Path(directory))
    if finished is not None and len(tuner.oracle.trials) != finished.trials:
        raise RuntimeError(
            f"search {search.name} reloaded {len(tuner.oracle.trials)} trials of the "
            f"{finished.trials} its workers finished; its factory must build the tuner "
            "in the directory it is given, with overwrite=False")
    tuner.search(**search_kwargs)
    if finished is not None and len(tuner.oracle.trials) != finished.trials:
        raise RuntimeError(f"search {search.name} ran more trials after adopting the "
                           "distributed search; its oracle did not reload as finished")
    return tuner


# --------------------------------------------------------------------------
# The searches ``tune`` knows. The HPO chapter's searches are added here.

register("examples.tiny_random", "analysis.tuning.examples:tiny_random_search")
