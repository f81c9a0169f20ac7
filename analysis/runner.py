"""Experiments: declared once, computed once, read from the cache ever after.

An experiment is a function in ``analysis.experiments.<chapter>`` decorated
with :func:`experiment`::

    @experiment(datasets=("mnist",), config=lambda p: {"epochs": p.mlp.epochs,
                                                       "seeds": p.seed_list()})
    def optimizers(run, config):
        data = run.data("mnist")
        ...
        return {"test_accuracy": [...], "confusion": np.array(...)}

Calling ``optimizers()`` (or ``optimizers("smoke")``) returns a :class:`Result`.
The cache key hashes everything that can change the result: the experiment's
name, its configuration (budgets and seeds from the profile), the source code of
its module and of every ``analysis`` module it imports (transitively), the
fingerprints of its datasets, the Keras backend and the versions of numeric
packages. Anything else -- the profile's name, prose, plots -- does not count.

An experiment that builds on another one's result calls it inside its body
and puts the other experiment's key into its own configuration
(``"upstream_key": other.key(profile)``), so it is recomputed whenever the
result it builds on would be.

``NNSTUDY_REFRESH=all`` or ``NNSTUDY_REFRESH=name[,name]`` recomputes (once per
process, so a chapter that reads one result in several cells trains once).
"""

from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import joblib
import numpy as np

from analysis import cache, environment, profiles, quiet_tensorflow_imports
from analysis.errors import UserError

#: Every experiment, by full name ``chapter.name``, in definition order.
REGISTRY: dict[str, "Experiment"] = {}

# loky replaces a worker whose memory grew by more than 300 MB over a task (its
# leak guard; a CNN run's data and compiled programs do) and then warns "A
# worker stopped while some jobs were given to the executor ... memory leak".
# The worker exits cleanly between tasks and its queued runs go to the new
# one, so nothing is lost; the warning would only alarm a reader of the log.
# https://github.com/joblib/loky/blob/master/loky/process_executor.py
warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the executor",
                        category=UserWarning)

_refreshed: set[str] = set()  # keys already recomputed under NNSTUDY_REFRESH


# --------------------------------------------------------------------------
# Results


@dataclass
class Result:
    """What a chapter cell gets back: metrics (JSON), arrays, provenance."""

    experiment: str
    key: str
    metrics: dict
    arrays: dict[str, np.ndarray]
    provenance: dict
    path: Path
    from_cache: bool = False

    def __getitem__(self, name: str):
        """``result["x"]``: an array if there is one by that name, else a metric."""
        return self.arrays[name] if name in self.arrays else self.metrics[name]

    def data_source(self, dataset: str | None = None) -> str:
        """The dataset's source name, for captions and table notes."""
        records = self.provenance["data"]
        if dataset is None:
            return "; ".join(r["source_name"] for r in records.values())
        return records[dataset]["source_name"]

    @property
    def substitutes(self) -> list[dict]:
        """Provenance of every offline default or stand-in this result used."""
        return [r for r in self.provenance["data"].values() if r.get("substitute")]

    def model(self, name: str):
        """A model the experiment saved, loaded in Keras's safe mode."""
        import keras

        path = self.path / "models" / f"{name}.keras"
        if not path.is_file():
            raise UserError(f"experiment {self.experiment} saved no model named {name!r}")
        return keras.saving.load_model(path, safe_mode=True)


# --------------------------------------------------------------------------
# What an experiment sees while it runs


def progress_enabled() -> bool:
    """Bars on a terminal (or when NNSTUDY_PROGRESS=1), never inside a rendered page."""
    setting = os.environ.get("NNSTUDY_PROGRESS", "").strip()
    if setting:
        return setting not in ("0", "false", "no")
    return sys.stderr.isatty()


@dataclass
class Run:
    """Handed to an experiment: its profile, datasets, scratch directory, progress."""

    experiment: "Experiment"
    profile: profiles.Profile
    config: dict
    directory: Path                         # becomes the cache entry
    _data: dict = field(default_factory=dict)
    #: For an experiment that declares runs: each run's output, in the order
    #: ``runs(profile, config)`` listed them (see :func:`experiment`).
    results: list[dict] = field(default_factory=list)

    def data(self, name: str):
        """A dataset the experiment declared (undeclared ones would escape the key)."""
        if name not in self.experiment.datasets:
            raise RuntimeError(
                f"{self.experiment.name} uses dataset {name!r} without declaring it in "
                "@experiment(datasets=...); its fingerprint would be missing from the key"
            )
        return self._data[name]

    def progress(self, iterable, description: str, total: int | None = None, leave=False):
        """A progress bar over trials/seeds/configurations (tqdm on stderr)."""
        from tqdm import tqdm

        return tqdm(iterable, desc=description, total=total, leave=leave,
                    disable=not progress_enabled(), file=sys.stderr)

    def epoch_bar(self, description: str = "epochs"):
        """A Keras callback that shows one bar per ``fit`` over its epochs."""
        from analysis.training import EpochProgress

        return EpochProgress(description, enabled=progress_enabled())

    def save_model(self, name: str, model) -> Path:
        path = self.directory / "models" / f"{name}.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        return path

    def subdirectory(self, name: str) -> Path:
        """A directory inside the entry (e.g. a keras-tuner project)."""
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# --------------------------------------------------------------------------
# Code fingerprint: the experiment's module and the analysis modules it imports


# ast.parse is not thread-safe on CPython 3.11: two threads parsing at once
# (two renders in one process) can fail with "SystemError: AST constructor
# recursion depth mismatch".
_PARSING = threading.Lock()


def _analysis_imports(module_name: str) -> set[str]:
    """Names of ``analysis`` modules imported by ``module_name``'s source."""
    spec = importlib.util.find_spec(module_name)
    if not spec.origin or not spec.origin.endswith(".py"):
        return set()  # a namespace package or a compiled module: no source to read
    with _PARSING:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    package = module_name if spec.submodule_search_locations else module_name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module or ""
            # ``from analysis import data`` imports a module named after the alias.
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "analysis" and _is_module(name):
                found.add(name)
    return found


def _is_module(name: str) -> bool:
    """True for a module; False for a function or class imported by name."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


#: Modules that cannot change a result's numbers, left out of code fingerprints:
#: budgets reach an experiment through its configuration (which is hashed),
#: paths and errors never touch numbers, and the store's own format has
#: ``cache.FORMAT_VERSION`` in every key. Without this, editing one chapter's
#: budget in profiles.py would recompute every chapter.
INFRASTRUCTURE = frozenset({
    "analysis", "analysis.runner", "analysis.cache", "analysis.profiles",
    "analysis.config", "analysis.errors", "analysis.environment",
    "analysis.experiments",  # only the list of chapters
})


@functools.cache
def code_closure(module_name: str) -> tuple[str, ...]:
    """``module_name`` and every analysis module reachable through its imports.

    Infrastructure modules (:data:`INFRASTRUCTURE`) are neither included nor
    followed.
    """
    seen, pending = set(), [module_name]
    while pending:
        name = pending.pop()
        if name in seen or name in INFRASTRUCTURE:
            continue
        seen.add(name)
        pending.extend(_analysis_imports(name) - seen)
        # A package's __init__ runs whenever one of its modules is imported.
        parent = name.rpartition(".")[0]
        if parent and parent not in seen:
            pending.append(parent)
    return tuple(sorted(seen))


def code_fingerprint(module_name: str) -> str:
    digest = hashlib.sha256()
    for name in code_closure(module_name):
        origin = importlib.util.find_spec(name).origin
        source = Path(origin).read_bytes() if origin and origin.endswith(".py") else b""
        digest.update(name.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()


# --------------------------------------------------------------------------
# The experiment itself


def _json_config(value):
    """Profiles' dataclasses and tuples as plain JSON values (for the key)."""
    import dataclasses

    if dataclasses.is_dataclass(value):
        return _json_config(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _json_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_config(v) for v in value]
    return value


def _data():
    """analysis.data, imported only by experiments that use a dataset."""
    from analysis import data

    return data


class Experiment:
    """A registered experiment; call it to get its :class:`Result`."""

    def __init__(self, function: Callable, datasets: tuple[str, ...], config: Callable,
                 runs: Callable | None = None, each: Callable | None = None):
        functools.update_wrapper(self, function)
        self.function = function
        self.module = function.__module__
        self.chapter = self.module.rpartition(".")[2]
        self.name = f"{self.chapter}.{function.__name__}"
        self.datasets = tuple(datasets)
        self.make_config = config
        if (runs is None) != (each is None):
            raise TypeError(f"{self.name}: declare both runs= and each=, or neither")
        self.make_runs = runs
        self.each = each

    def config(self, profile=None) -> dict:
        return _json_config(self.make_config(profiles.resolve(profile)))

    def fingerprints(self) -> dict:
        """Its datasets' fingerprints, without loading them: what load() would
        use. On a machine with internet this downloads the real files first, so
        results cached on a stand-in earlier are not mistaken for results on
        the real data."""
        return {name: _data().resolve_for_load(name).fingerprint for name in self.datasets}

    def key_material(self, profile=None, fingerprints: dict | None = None) -> dict:
        if fingerprints is None:
            fingerprints = self.fingerprints()
        return {
            "experiment": self.name,
            "config": self.config(profile),
            "code": code_fingerprint(self.module),
            "data": fingerprints,
            "backend": environment.backend(),
            "versions": environment.numeric_versions(),
            "store_format": cache.FORMAT_VERSION,
        }

    def key(self, profile=None, fingerprints: dict | None = None) -> str:
        return joblib.hash(self.key_material(profile, fingerprints), hash_name="sha1")

    def cached(self, profile=None) -> Path | None:
        """The entry directory if this profile's result is cached, else None."""
        path = cache.entry_dir(self.name, self.key(profile))
        return path if path.is_dir() else None

    def __call__(self, profile=None) -> Result:
        profile = profiles.resolve(profile)
        key = self.key(profile)
        with cache.lock(self.name, key):
            if not self._must_refresh(key):
                entry = self._read(key)
                if entry is not None:
                    return self._result(entry, from_cache=True)
            entry = self._compute(profile, key)
            _refreshed.add(key)
            return self._result(entry, from_cache=False)

    def _must_refresh(self, key: str) -> bool:
        wanted = {n.strip() for n in os.environ.get("NNSTUDY_REFRESH", "").split(",") if n.strip()}
        named = bool(wanted & {"all", self.name, self.name.rpartition(".")[2], self.chapter})
        return named and key not in _refreshed

    def _read(self, key: str):
        try:
            return cache.read(self.name, key)
        except cache.CorruptEntry as problem:
            cache.discard(self.name, key, str(problem))
            return None

    def _compute(self, profile: profiles.Profile, key: str) -> cache.Entry:
        datasets = {name: _data().load(name) for name in self.datasets}
        # Loading may have downloaded the real files that resolving only
        # looked for; file the result under the data it was really computed on.
        key = self.key(profile, {n: d.provenance.fingerprint for n, d in datasets.items()})
        config = self.config(profile)
        started, wall = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
        results = self._run_all(profile, datasets) if self.each else []
        with cache.building(self.name, key) as scratch:
            run = Run(self, profile, config, scratch, datasets, results)
            output = self.function(run, config)
            if not isinstance(output, dict):
                raise TypeError(f"{self.name} must return a dict, not {type(output).__name__}")
            arrays = {k: v for k, v in output.items() if isinstance(v, np.ndarray)}
            metrics = {k: v for k, v in output.items() if k not in arrays}
            provenance = {
                "key": key,
                "experiment": self.name,
                "profile": profile.name,
                "seeds": config.get("seeds", config.get("seed")),
                "config": config,
                "data": {name: d.provenance.to_dict() for name, d in datasets.items()},
                "environment": environment.summary(),
                "wall_seconds": round(time.perf_counter() - wall, 3),
                "date": started.isoformat(timespec="seconds"),
            }
            return cache.commit(scratch, self.name, key, metrics, arrays, provenance)

    # -- independent runs ----------------------------------------------------

    def runs(self, profile=None) -> list[dict]:
        """The independent runs this profile's configuration declares."""
        profile = profiles.resolve(profile)
        return [_json_config(item) for item in self.make_runs(profile, self.config(profile))]

    def run_key(self, item: dict, fingerprints: dict) -> str:
        """A run's own key: what it depends on, not the experiment's whole
        configuration, so that adding a seed leaves the other runs cached."""
        material = {
            "experiment": self.name,
            "run": item,
            "code": code_fingerprint(self.module),
            "data": fingerprints,
            "backend": environment.backend(),
            "versions": environment.numeric_versions(),
            "store_format": cache.FORMAT_VERSION,
        }
        return joblib.hash(material, hash_name="sha1")

    def _run_all(self, profile: profiles.Profile, datasets: dict) -> list[dict]:
        """Every declared run, each read from or written to its own cache entry.

        Missing runs execute through ``joblib.Parallel`` (processes, ``NNSTUDY_JOBS``
        of them, default: every core), so a cluster backend chosen with
        ``joblib.parallel_config`` (Dask, Ray) runs them unchanged. A finished
        run is committed at once: an interrupted experiment resumes where it
        stopped.
        """
        from tqdm import tqdm

        items = self.runs(profile)
        fingerprints = {n: d.provenance.fingerprint for n, d in datasets.items()}
        keys = [self.run_key(item, fingerprints) for item in items]
        # Each cached run is read (and its checksums verified) once.
        entries = {key: None if self._must_refresh(key) else self._read(key) for key in keys}
        missing = [i for i, key in enumerate(keys) if entries[key] is None]
        task = RunTask(self.name, self.module, _module_root(self.module), profile,
                       str(cache.root()), environment.backend())
        bar = tqdm(total=len(items), initial=len(items) - len(missing), unit="run",
                   desc=f"{self.name} runs", disable=not progress_enabled(), file=sys.stderr)
        processes = jobs(len(missing))
        if processes > 1:
            _shut_workers_down_at_exit()
        with bar:
            calls = (joblib.delayed(task)(items[i], keys[i]) for i in missing)
            for _ in joblib.Parallel(n_jobs=processes, return_as="generator_unordered")(calls):
                bar.update()
        _refreshed.update(keys[i] for i in missing)
        for i in missing:
            entries[keys[i]] = cache.read(self.name, keys[i])
        return [{**entries[key].record["metrics"], **entries[key].arrays} for key in keys]

    def run_entry(self, profile=None, item: dict | None = None) -> tuple[cache.Entry, bool]:
        """One declared run, read from or computed into its own cache entry here,
        under the key :meth:`_run_all` uses; ``(entry, computed)``.

        For work done outside the runner (a distributed search) that one run
        of the experiment then adopts; the experiment assembles it with its
        other runs as usual.
        """
        profile = profiles.resolve(profile)
        if item not in self.runs(profile):
            raise ValueError(f"{self.name} declares no run {item!r} in profile {profile.name}")
        key = self.run_key(item, self.fingerprints())   # compute_run loads the data itself
        entry = None if self._must_refresh(key) else self._read(key)
        if entry is not None:
            return entry, False
        self.compute_run(profile, item, key)
        _refreshed.add(key)
        return cache.read(self.name, key), True

    def run_cached(self, profile=None, item: dict | None = None) -> bool:
        """True if that run's entry is cached (and not to be refreshed)."""
        key = self.run_key(item, self.fingerprints())
        return not self._must_refresh(key) and cache.entry_dir(self.name, key).is_dir()

    def compute_run(self, profile: profiles.Profile, item: dict, key: str) -> None:
        """Compute one run and commit it under ``key`` (in a worker process)."""
        with cache.lock(self.name, key):
            if self._read(key) is not None and not self._must_refresh(key):
                return  # another process computed it while we waited
            datasets = {name: _data().load(name) for name in self.datasets}
            wall = time.perf_counter()
            with cache.building(self.name, key) as scratch:
                run = Run(self, profile, item, scratch, datasets)
                output = self.each(run, item)
                arrays = {k: v for k, v in output.items() if isinstance(v, np.ndarray)}
                metrics = {k: v for k, v in output.items() if k not in arrays}
                provenance = {"key": key, "experiment": self.name, "run": item,
                              "profile": profile.name,
                              "wall_seconds": round(time.perf_counter() - wall, 3)}
                cache.commit(scratch, self.name, key, metrics, arrays, provenance)

    def _result(self, entry: cache.Entry, from_cache: bool) -> Result:
        record = entry.record
        return Result(self.name, record["key"], record["metrics"], entry.arrays,
                      record["provenance"], entry.path, from_cache)

    def __repr__(self) -> str:
        return f"<experiment {self.name}>"


def experiment(*, datasets: tuple[str, ...] = (), config: Callable = lambda profile: {},
               runs: Callable | None = None, each: Callable | None = None):
    """Register a function of ``(run, config) -> dict`` as a cached experiment.

    ``config(profile)`` picks the budgets the experiment uses; it is hashed
    into the key. The returned dict's NumPy arrays are stored in ``.npz``;
    everything else must be JSON-able (NumPy scalars are converted).

    An experiment made of independent runs (seeds, sweep points, pool
    members) declares them: ``runs(profile, config)`` lists one JSON-able dict
    per run, holding everything that run needs (it may read an upstream
    experiment's result, e.g. a chosen learning rate, which then enters the
    run's key), and ``each(run, item) -> dict``, a
    module-level function, computes one. Each run is cached on its own and
    the runs execute in parallel processes (:meth:`Experiment._run_all`); the
    experiment's function then assembles ``run.results`` into its result.
    """

    def register(function: Callable) -> Experiment:
        wrapped = Experiment(function, datasets, config, runs, each)
        REGISTRY[wrapped.name] = wrapped
        return wrapped

    return register


# --------------------------------------------------------------------------
# Runs in worker processes


def jobs(runs: int) -> int:
    """How many processes run independent runs: ``NNSTUDY_JOBS``, else every core."""
    setting = os.environ.get("NNSTUDY_JOBS", "").strip()
    if setting:
        try:
            wanted = int(setting)
        except ValueError:
            raise UserError(f"NNSTUDY_JOBS={setting!r} is not a whole number; "
                            "set it to the number of processes (1 runs everything here)") from None
        if wanted < 1:
            raise UserError(f"NNSTUDY_JOBS={setting!r} must be at least 1")
    else:
        wanted = os.cpu_count() or 1
    return max(1, min(wanted, runs))


@functools.cache
def _shut_workers_down_at_exit() -> None:
    """Stop joblib's reusable worker processes when this process ends.

    They are kept between experiments (starting one costs an import of Keras),
    but left running at exit they make the resource tracker warn about leaked
    semaphores, which would land in a render's log.
    """
    import atexit

    def shut_down():
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)

    atexit.register(shut_down)


def _module_root(module: str) -> str:
    """The sys.path entry a worker needs to import ``module``."""
    origin = Path(importlib.util.find_spec(module).origin)
    return str(origin.parents[module.count(".")])


@dataclass(frozen=True)
class RunTask:
    """What a worker process needs to compute one run: picklable, and
    independent of the worker's history (a reused worker may have served
    another cache or profile)."""

    experiment: str
    module: str
    module_root: str
    profile: profiles.Profile   # the object, so a profile made in a test works too
    cache_root: str
    backend: str

    def __call__(self, item: dict, key: str) -> None:
        os.environ["NNSTUDY_CACHE"] = self.cache_root
        os.environ["KERAS_BACKEND"] = self.backend
        os.environ["NNSTUDY_PROGRESS"] = "0"  # one bar, the parent's, over all runs
        # A worker's stderr is the parent's: in a render, Quarto's log. Keep
        # TensorFlow's start-up lines and retracing notes out of it, on JAX
        # too (keras-tuner, tf.data and .h5 saving import TensorFlow there).
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        quiet_tensorflow_imports()
        if self.module_root not in sys.path:
            sys.path.insert(0, self.module_root)
        if "keras" in sys.modules and environment.backend() != self.backend:
            raise RuntimeError(f"worker has Keras on {environment.backend()}, run needs {self.backend}")
        importlib.import_module(self.module)
        REGISTRY[self.experiment].compute_run(self.profile, item, key)


# --------------------------------------------------------------------------
# Lookup by name, for the command line


def load_all() -> dict[str, Experiment]:
    """Import every chapter module so that its experiments register."""
    from analysis.experiments import CHAPTERS

    for chapter in CHAPTERS:
        importlib.import_module(f"analysis.experiments.{chapter}")
    return REGISTRY


def chapters() -> dict[str, list[Experiment]]:
    grouped: dict[str, list[Experiment]] = {}
    for item in load_all().values():
        grouped.setdefault(item.chapter, []).append(item)
    return grouped


def declared() -> dict[str, list[str]]:
    """Every experiment's full name per chapter, read from the modules' source.

    Parsing instead of importing lets the command line reject a wrong name in
    a fraction of a second, before a Keras backend is imported. Experiments
    already registered (imported modules outside ``CHAPTERS``) count too.
    """
    from analysis.experiments import CHAPTERS

    names: dict[str, list[str]] = {}
    for item in REGISTRY.values():
        names.setdefault(item.chapter, []).append(item.name)
    for chapter in CHAPTERS:
        path = Path(importlib.util.find_spec(f"analysis.experiments.{chapter}").origin)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [f"{chapter}.{node.name}" for node in tree.body
                 if isinstance(node, ast.FunctionDef)
                 and any(_decorator_name(d) == "experiment" for d in node.decorator_list)]
        known = names.setdefault(chapter, [])
        known += [name for name in found if name not in known]
    return names


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")


def check_target(target: str) -> tuple[str, str | None]:
    """The chapter a target names and, if it names one experiment, that
    experiment's full name; read from the source, before any backend loads.
    Raises the one-line error for a name that is no chapter or experiment."""
    grouped = declared()
    if target in grouped:
        return target, None
    names = [name for chapter in grouped.values() for name in chapter]
    matches = [n for n in names if target in (n, n.rpartition(".")[2])]
    if len(matches) == 1:
        return matches[0].partition(".")[0], matches[0]
    valid = ", ".join(list(grouped) + names) or "(no experiments are defined yet)"
    problem = "is ambiguous" if matches else "is neither a chapter nor an experiment"
    raise UserError(f"{target!r} {problem}; valid choices: {valid}")


def select(target: str) -> list[Experiment]:
    """A chapter's experiments, or one experiment (``chapter.name`` or ``name``).

    Imports only the chapter that declares the target (and whatever that
    chapter imports): ``run mlp.optimizers`` need not load keras-tuner or
    scikit-learn for the other chapters, seconds of start-up.
    """
    from analysis.experiments import CHAPTERS

    chapter, wanted = check_target(target)
    if chapter in CHAPTERS:
        importlib.import_module(f"analysis.experiments.{chapter}")
    if wanted is not None:
        return [REGISTRY[wanted]]
    return [e for e in REGISTRY.values() if e.chapter == chapter]
