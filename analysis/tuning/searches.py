"""The keras-tuner searches that ``python -m analysis tune`` can run, by name.

A search is registered under the name of the experiment that runs it
(``chapter.experiment``) with a *factory*::

    def random_search(profile, directory):
        tuner = keras_tuner.RandomSearch(build_model, ..., seed=1,  # 0: unseeded
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

A search can also be *one run* of an experiment made of independent runs
(:func:`register_run`): the HPO chapter's ``hpo.random``, ``hpo.bayesian`` and
``hpo.hyperband``, each with a tuner seed (``--seed``), are runs of
``hpo.tuner_search``. The chief then searches in the directory that run
resumes from (``overwrite=False``) and computes that one run
(:meth:`analysis.runner.Experiment.run_entry`), which reloads the finished
search; the experiment later reads the run from the cache with its others.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from analysis.errors import UserError


@dataclass(frozen=True)
class Search:
    name: str                       # the experiment's full name (a run search: chapter.NAME)
    factory_ref: Callable | str     # a callable or "module:function"
    #: For a search that is one run of an experiment made of runs: that
    #: experiment's name, the factory's fixed keyword arguments, and the seed.
    run_of: str | None = None
    arguments: tuple = ()
    seed: int | None = None

    def factory(self) -> Callable:
        if callable(self.factory_ref):
            return self.factory_ref
        module, _, function = self.factory_ref.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def module(self) -> str:
        ref = self.factory_ref
        return ref.__module__ if callable(ref) else ref.partition(":")[0]

    @property
    def experiment_name(self) -> str:
        return self.run_of or self.name

    def with_seed(self, seed: int | None) -> "Search":
        """This search with seed ``seed`` (a run search's default: 0)."""
        if self.run_of is None:
            if seed is not None:
                raise UserError(f"--seed is only for a search with seeds ("
                                f"{', '.join(s for s in sorted(REGISTRY) if REGISTRY[s].run_of)}); "
                                f"{self.name} has none")
            return self
        if seed is not None and seed < 0:
            raise UserError(f"--seed {seed} must be 0 or more")
        return replace(self, seed=0 if seed is None else seed)

    def named(self, profile):
        """A run search's named search: ``.item`` (the run), ``.directory``, ``.build``."""
        return self.factory()(profile, seed=self.seed, **dict(self.arguments))

    def build(self, profile, directory):
        """The tuner working in ``directory`` and the keyword arguments of its search."""
        if self.run_of is None:
            return self.factory()(profile, Path(directory))
        return self.named(profile).build(Path(directory))

    @property
    def title(self) -> str:
        return self.name if self.seed is None else f"{self.name} seed {self.seed}"


#: Every registered search, by name.
REGISTRY: dict[str, Search] = {}


def register(name: str, factory: Callable | str) -> None:
    """Make ``name`` (an experiment's ``chapter.name``) runnable by ``tune``."""
    if "." not in name:
        raise ValueError(f"search name {name!r} must be the experiment's chapter.name")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"factory {factory!r} must be a callable or 'module:function'")
    REGISTRY[name] = Search(name, factory)


def register_run(name: str, experiment: str, factory: str, **arguments) -> None:
    """Make ``name`` one run of ``experiment`` (an experiment made of runs).

    ``factory(profile, seed=S, **arguments)`` returns the named search: its
    run item ``.item`` (as the experiment lists it), ``.directory`` (where the
    experiment's run resumes a search from, with ``overwrite=False``) and
    ``.build(directory) -> (tuner, search keyword arguments)``. The chief
    searches in ``.directory``, then computes that one run of the experiment
    (:meth:`analysis.runner.Experiment.run_entry`), which finds every trial done.
    """
    register(name, factory)
    REGISTRY[name] = replace(REGISTRY[name], run_of=experiment,
                             arguments=tuple(sorted(arguments.items())))


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

    name = search.experiment_name
    search.factory()  # imports the module that defines (and registers) it
    if name not in runner.REGISTRY:
        runner.load_all()
    if name not in runner.REGISTRY:
        raise UserError(f"search {search.name!r} is registered, but no experiment {name!r} "
                        "exists; name the search after the experiment that runs it")
    return runner.REGISTRY[name]


def workspace(search: Search, profile, staging: Path) -> Path:
    """Where the chief's search works: a run search's own resumable directory
    (an interrupted search resumes from there, as the experiment's run would),
    else ``staging/search`` (removed with the staging directory)."""
    return Path(search.named(profile).directory) if search.run_of else staging / "search"


def cached(search: Search, profile) -> bool:
    """True if the result the search would make is cached (and not to be refreshed)."""
    experiment = experiment_for(search)
    if search.run_of:
        return experiment.run_cached(profile, search.named(profile).item)
    return bool(experiment.cached(profile)) and not experiment._must_refresh(experiment.key(profile))


def compute(search: Search, profile, finished: "_Finished | None" = None) -> str:
    """Compute (or read) the search's cache entry in this process; one line saying where.

    ``finished``: the search the chief has just run distributed, adopted
    instead of searched again.
    """
    experiment = experiment_for(search)
    if search.run_of is None:
        context = (adopting(search.name, finished.directory, finished.trials, finished.exclude)
                   if finished else contextlib.nullcontext())
        with context:
            result = experiment(profile)
        where = ("cache" if result.from_cache
                 else f"computed in {result.provenance['wall_seconds']:.1f} s")
        return f"{result.experiment}: {where} -> {result.path}"
    named = search.named(profile)
    if finished is not None:
        # The local workers' own state files: not part of a single-process search.
        for name in finished.exclude:
            for path in Path(finished.directory).glob(f"*/{name}"):
                path.unlink()
        # The run reloads the search from this directory; were a trial missing
        # there, it would train it again instead of adopting the search.
        with contextlib.redirect_stdout(io.StringIO()):
            reloaded, _ = named.build(finished.directory)
        if len(reloaded.oracle.trials) != finished.trials:
            raise RuntimeError(f"search {search.title} reloaded {len(reloaded.oracle.trials)} "
                               f"trials of the {finished.trials} its workers finished")
    entry, computed = experiment.run_entry(profile, named.item)
    trials = len(entry.record["metrics"]["trial"])
    if finished is not None and trials != finished.completed:
        raise RuntimeError(f"run {search.title} of {experiment.name} holds {trials} completed "
                           f"trials, the distributed search completed {finished.completed}")
    where = (f"computed in {entry.record['provenance']['wall_seconds']:.1f} s" if computed
             else "cache")
    return (f"{experiment.name} run {search.title} ({trials} trials): {where} -> {entry.path}; "
            f"`python -m analysis run {experiment.name}` (or the render) reads it with its other runs")


# --------------------------------------------------------------------------
# Running a search inside its experiment


@dataclass(frozen=True)
class _Finished:
    """A search the chief finished: its directory and what to leave out of it."""

    directory: Path
    trials: int
    exclude: frozenset[str]     # the workers' own state files (worker-0.json, ...)
    completed: int = 0          # of the trials, those completed


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
# The searches ``tune`` knows.

register("examples.tiny_random", "analysis.tuning.examples:tiny_random_search")

#: The HPO chapter's keras-tuner searches: each is one run (tuner × seed) of
#: hpo.tuner_search. Listed here, not imported from analysis.hpo.tuners.TUNERS,
#: so that ``tune`` checks a name before Keras loads (a test keeps them equal).
HPO_TUNERS = ("random", "bayesian", "hyperband")
for _tuner in HPO_TUNERS:
    register_run(f"hpo.{_tuner}", "hpo.tuner_search", "analysis.experiments.hpo:tuning_search",
                 tuner=_tuner)
