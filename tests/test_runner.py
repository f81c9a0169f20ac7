"""The experiment runner and its result cache, through the public API and CLI."""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest

from analysis import cache, cli, runner
from analysis.config import PROJECT_ROOT

TOY_SOURCE = '''
import numpy as np
from analysis.runner import experiment
from analysis import training

CALLS = []

@experiment(config=lambda profile: {{"seeds": profile.seed_list(), "scale": {scale}}})
def tiny(run, config):
    """Trains a two-unit Keras model for two epochs per seed."""
    import keras
    CALLS.append(config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    accuracies = []
    for seed in run.progress(config["seeds"], "seeds"):
        training.set_seed(seed)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        training.compile_model(model, "sgd")
        history = training.fit(model, x * config["scale"], y, epochs=2, batch_size=8)
        accuracies.append(history["accuracy"][-1])
    run.save_model("last", model)
    return {{"accuracy": accuracies, "loss": history["loss"], "weights": model.get_weights()[0]}}

@experiment()
def tuned(run, config):
    """A two-trial keras-tuner search whose project lives inside the entry."""
    import keras, keras_tuner
    def build(hp):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(hp.Int("units", 2, 4)),
                                  keras.layers.Dense(2, activation="softmax")])
        return training.compile_model(model, "sgd")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=2, seed=0,
                                     directory=run.subdirectory("tuner"), project_name="search")
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    return {{"best_units": tuner.get_best_hyperparameters()[0].get("units")}}

@experiment()
def slow(run, config):
    import time
    CALLS.append("slow")
    time.sleep(0.5)
    return {{"value": 42}}

@experiment()
def interrupted(run, config):
    CALLS.append("interrupted")
    (run.directory / "half-written.json").write_text("{{")
    raise KeyboardInterrupt
'''


@pytest.fixture
def toy(tmp_path, monkeypatch, cache_dir):
    """A fresh experiment module on sys.path; returns a function to (re)load it."""
    name = f"toy_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / f"{name}.py"

    def load(scale: float = 1.0):
        path.write_text(textwrap.dedent(TOY_SOURCE.format(scale=scale)))
        runner.code_closure.cache_clear()
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    yield load
    for key in [k for k in runner.REGISTRY if k.startswith(name)]:
        del runner.REGISTRY[key]


def test_second_call_is_a_cache_hit_without_training(toy):
    module = toy()
    first = module.tiny("smoke")
    second = module.tiny("smoke")
    assert len(module.CALLS) == 1
    assert not first.from_cache and second.from_cache
    assert second.metrics == first.metrics
    np.testing.assert_array_equal(second["weights"], first["weights"])


def test_result_records_its_provenance(toy):
    result = toy().tiny("smoke")
    provenance = result.provenance
    assert provenance["key"] == result.key
    assert provenance["profile"] == "smoke"
    assert provenance["seeds"] == [0, 1]
    assert provenance["environment"]["backend"] == os.environ["KERAS_BACKEND"]
    assert "numpy" in provenance["environment"]["versions"]
    assert provenance["wall_seconds"] > 0 and provenance["date"]


def test_config_change_recomputes(toy, monkeypatch):
    module = toy()
    module.tiny("smoke")
    module.tiny("default")  # three seeds instead of two: another key
    assert len(module.CALLS) == 2


def test_code_change_recomputes(toy):
    module = toy(scale=1.0)
    key_before = module.tiny.key("smoke")
    module.tiny("smoke")
    module = toy(scale=2.0)  # the module's source changed
    assert module.tiny.key("smoke") != key_before
    assert not module.tiny("smoke").from_cache
    assert len(module.CALLS) == 1  # the reloaded module trained again


def test_code_fingerprint_follows_imported_analysis_modules(toy):
    module = toy()
    closure = set(runner.code_closure(module.__name__))
    assert {module.__name__, "analysis.training"} <= closure
    assert "analysis.plots" not in closure
    # Budgets enter through the configuration, not through profiles.py's source.
    assert not closure & {"analysis.profiles", "analysis.runner", "analysis.cache"}


def test_data_fingerprint_change_recomputes(toy, monkeypatch):
    module = toy()
    material = module.tiny.key_material("smoke", fingerprints={"mnist": "a"})
    other = module.tiny.key_material("smoke", fingerprints={"mnist": "b"})
    assert material != other
    assert module.tiny.key("smoke", {"mnist": "a"}) != module.tiny.key("smoke", {"mnist": "b"})


def test_refresh_recomputes_once_per_process(toy, monkeypatch):
    module = toy()
    module.tiny("smoke")
    # A later render (a new process) asks for a refresh: it trains once, and a
    # second cell reading the same result in that render gets the fresh entry.
    monkeypatch.setattr(runner, "_refreshed", set())
    monkeypatch.setenv("NNSTUDY_REFRESH", module.tiny.name)
    assert not module.tiny("smoke").from_cache
    assert module.tiny("smoke").from_cache
    assert len(module.CALLS) == 2


@pytest.mark.parametrize("damage", ["json", "npz", "checksum", "missing"])
def test_corrupted_entry_is_reported_and_recomputed(toy, capsys, damage):
    module = toy()
    entry = module.tiny("smoke").path
    if damage == "json":
        (entry / "result.json").write_text('{"truncated": ')
    elif damage == "npz":
        data = (entry / "arrays.npz").read_bytes()
        (entry / "arrays.npz").write_bytes(data[: len(data) // 2])
    elif damage == "checksum":
        record = json.loads((entry / "result.json").read_text())
        record["metrics"]["accuracy"] = [1.0, 1.0]  # edited by hand
        (entry / "result.json").write_text(json.dumps(record))
    else:
        (entry / "models" / "last.keras").unlink()
    again = module.tiny("smoke")
    assert len(module.CALLS) == 2 and not again.from_cache
    lines = [line for line in capsys.readouterr().err.splitlines() if "corrupted" in line]
    assert len(lines) == 1 and "recomputing" in lines[0]


def test_interrupted_computation_leaves_nothing(toy, cache_dir):
    module = toy()
    with pytest.raises(KeyboardInterrupt):
        module.interrupted("smoke")
    leftovers = [p for p in cache_dir.rglob("*") if p.is_dir()]
    assert all(p.name == module.interrupted.name for p in leftovers), leftovers
    assert cache.entries() == [] and cache.partials() == []


def test_two_renders_at_once_compute_once(toy):
    module = toy()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: module.slow("smoke"), range(2)))
    assert module.CALLS == ["slow"]
    assert sorted(r.from_cache for r in results) == [False, True]
    assert results[0].metrics == results[1].metrics == {"value": 42}


def test_same_experiment_twice_gives_identical_metrics(toy, monkeypatch):
    module = toy()
    first = module.tiny("smoke")
    monkeypatch.setattr(runner, "_refreshed", set())
    monkeypatch.setenv("NNSTUDY_REFRESH", "all")
    second = module.tiny("smoke")
    assert len(module.CALLS) == 2
    assert first.metrics == second.metrics
    np.testing.assert_array_equal(first["weights"], second["weights"])


def _looks_like_pickle(data: bytes) -> bool:
    return data[:1] == b"\x80" and data[1:2] in {bytes([n]) for n in range(2, 6)}


def test_nothing_in_the_store_is_a_pickle(toy, cache_dir):
    result = toy().tiny("smoke")
    files = [p for p in cache_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert {p.suffix for p in files} <= {".json", ".npz", ".keras"}
    for file in files:
        assert not _looks_like_pickle(file.read_bytes())
        if file.suffix in {".npz", ".keras"}:
            with zipfile.ZipFile(file) as archive:
                for member in archive.namelist():
                    assert not _looks_like_pickle(archive.read(member)), (file, member)
    with np.load(result.path / "arrays.npz", allow_pickle=False) as arrays:
        assert arrays["weights"].dtype == np.float32
    assert result.model("last").count_params() == 8


def test_a_tuner_directory_lives_inside_the_entry(toy):
    """Runs on every Keras backend. keras-tuner (1.4) needs TensorFlow only
    on the TensorFlow backend (for tf.io.gfile); on JAX it uses plain files
    and Keras 3, and a search there works with TensorFlow not installed
    (checked by hand with ``sys.modules["tensorflow"] = None``)."""
    result = toy().tuned("smoke")
    project = result.path / "tuner" / "search"
    assert (project / "oracle.json").is_file()
    assert 2 <= result["best_units"] <= 4
    files = [p for p in project.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".json", ".h5"}  # weights in HDF5, no code
    assert not any(_looks_like_pickle(p.read_bytes()) for p in files)


def test_an_object_array_cannot_enter_the_store(cache_dir):
    with cache.building("x", "k") as scratch, pytest.raises(ValueError):
        cache.commit(scratch, "x", "k", {}, {"bad": np.array([{}], dtype=object)}, {})
    assert cache.entries() == [] and cache.partials() == []


def test_cli_run_list_clear(toy, capsys):
    module = toy()
    chapter = module.tiny.chapter
    assert cli.main(["run", module.tiny.name, "--profile", "smoke"]) == 0
    assert "computed" in capsys.readouterr().out
    assert cli.main(["list", "--profile", "smoke"]) == 0
    listing = capsys.readouterr().out
    assert chapter in listing and "cached" in listing
    assert cli.main(["run", chapter, "--profile", "smoke"]) == 130  # `interrupted` stops it
    assert "nothing half-written" in capsys.readouterr().err
    assert cli.main(["cache", "verify"]) == 0
    assert cli.main(["cache", "clear", module.tiny.name]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert cache.entries(module.tiny.name) == [] and cache.entries(module.slow.name) != []


@pytest.mark.parametrize("arguments, expected", [
    (["run", "no-such-chapter"], "valid choices"),
    (["run", "x", "--profile", "bogus"], "valid profiles"),
    (["list", "--profile", "bogus"], "valid profiles"),
    (["cache", "clear", "no-such-experiment"], "valid choices"),
    (["cache", "explode"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_rejects_bad_input_in_one_line(cache_dir, capsys, arguments, expected):
    assert cli.main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error


def test_declared_names_match_the_registry_without_importing_keras():
    import subprocess

    code = ("import sys, itertools; from analysis import runner; d = runner.declared(); "
            "assert 'keras' not in sys.modules; runner.load_all(); "
            "assert sorted(itertools.chain(*d.values())) == sorted(runner.REGISTRY), d")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


def test_cli_says_a_wrong_name_in_one_line_before_loading_a_backend():
    import subprocess

    # A fresh process, as a user runs it: stderr must hold the error and
    # nothing else (no TensorFlow start-up lines).
    finished = subprocess.run([sys.executable, "-m", "analysis", "run", "nope"],
                              capture_output=True, text=True, cwd=PROJECT_ROOT,
                              env={**os.environ, "NNSTUDY_CACHE": "/nonexistent-cache"})
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [finished.stderr.strip()]
    assert finished.stderr.startswith("error: 'nope' is neither a chapter nor an experiment")


@pytest.mark.parametrize("quiet", [False, True])
def test_tensorflow_imported_late_on_jax_prints_nothing(quiet):
    """Workers and kernels on JAX no longer import TensorFlow up front; whoever
    imports it later (as keras-tuner's file I/O does) must not print its C++
    start-up lines.
    Without the hook the same import does print them: the check can fail."""
    import subprocess

    code = ("import sys, analysis; "
            + ("analysis.quiet_tensorflow_imports(); " if quiet else "")
            + "assert 'tensorflow' not in sys.modules; "
            "import tensorflow as tf; tf.io.gfile.exists('.')")
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=PROJECT_ROOT, env={**environment, "KERAS_BACKEND": "jax"})
    assert finished.returncode == 0, finished.stderr
    assert (finished.stderr == "") == quiet, finished.stderr


def test_lokys_worker_replacement_warning_stays_out_of_the_log():
    """loky's leak guard replaces a worker after a big run (nothing is lost) and
    warns as if something were wrong; the runner keeps that line out of logs,
    and only that one."""
    import subprocess

    code = ("import warnings, analysis.runner; "
            "warnings.warn('A worker stopped while some jobs were given to the executor. '"
            "'This can be caused by a too short worker timeout or by a memory leak.', UserWarning); "
            "warnings.warn('another warning', UserWarning)")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=PROJECT_ROOT, check=True)
    assert "A worker stopped" not in finished.stderr
    assert "another warning" in finished.stderr


RUNS_SOURCE = '''
import os
from pathlib import Path
import numpy as np
from analysis.runner import experiment
from analysis import training

LOG = Path({log!r})

def one_seed(run, item):
    with LOG.open("a") as log:
        log.write(f"{{item['seed']}}\\n")
    if str(item["seed"]) == os.environ.get("TOY_FAIL_SEED"):
        raise KeyboardInterrupt
    import keras
    training.set_seed(item["seed"])
    rng = np.random.default_rng(item["seed"])
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return {{"loss": history.history["loss"],
             "weights": np.concatenate([w.ravel() for w in model.get_weights()])}}

@experiment(config=lambda p: {{"seeds": list({seeds})}},
            runs=lambda profile, config: [{{"seed": s}} for s in config["seeds"]], each=one_seed)
def seeds(run, config):
    return {{"final_loss": [r["loss"][-1] for r in run.results],
             "weights": np.stack([r["weights"] for r in run.results])}}
'''


@pytest.fixture
def runs_toy(tmp_path, monkeypatch, cache_dir):
    """An experiment of independent runs; returns (load(seeds), log of computed seeds)."""
    name = f"runs_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    log = tmp_path / "computed.txt"

    def load(seeds=(0, 1, 2)):
        (tmp_path / f"{name}.py").write_text(RUNS_SOURCE.format(log=str(log), seeds=tuple(seeds)))
        runner.code_closure.cache_clear()
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    computed = lambda: log.read_text().split() if log.exists() else []  # noqa: E731
    yield load, computed
    for key in [k for k in runner.REGISTRY if k.startswith(name)]:
        del runner.REGISTRY[key]


def test_parallel_runs_equal_sequential_runs(runs_toy, monkeypatch):
    load, computed = runs_toy
    monkeypatch.setenv("NNSTUDY_JOBS", "1")
    sequential = load().seeds("smoke")
    cache.clear()
    monkeypatch.setenv("NNSTUDY_JOBS", "2")
    parallel = load().seeds("smoke")
    assert not parallel.from_cache and sorted(computed()) == ["0", "0", "1", "1", "2", "2"]
    assert parallel.metrics["final_loss"] == sequential.metrics["final_loss"]
    np.testing.assert_array_equal(parallel["weights"], sequential["weights"])


def test_interrupted_runs_resume_and_a_new_seed_trains_alone(runs_toy, monkeypatch):
    load, computed = runs_toy
    monkeypatch.setenv("NNSTUDY_JOBS", "1")
    monkeypatch.setenv("TOY_FAIL_SEED", "1")
    with pytest.raises(BaseException):
        load().seeds("smoke")
    assert computed() == ["0", "1"]          # seed 0 finished, seed 1 was interrupted
    assert cache.partials() == []
    monkeypatch.delenv("TOY_FAIL_SEED")
    load().seeds("smoke")
    assert computed() == ["0", "1", "1", "2"]  # seed 0 was not trained again
    result = load(seeds=(0, 1, 2, 3)).seeds("smoke")
    assert computed()[-1:] == ["3"] and len(result.metrics["final_loss"]) == 4


def test_nnstudy_jobs_must_be_a_positive_number(monkeypatch):
    monkeypatch.setenv("NNSTUDY_JOBS", "many")
    with pytest.raises(runner.UserError, match="not a whole number"):
        runner.jobs(4)
    monkeypatch.setenv("NNSTUDY_JOBS", "8")
    assert runner.jobs(3) == 3


def test_runs_go_through_a_dask_cluster_unchanged(runs_toy, monkeypatch):
    """A cluster user switches joblib's backend; the experiment does not change.

    Every run is computed on the cluster and cached, and the experiment
    assembles them. The numbers are not compared with a local run's: Keras
    seeds initial weights from Python's global ``random``, which a Dask
    worker's own threads also draw from (README: Independent runs).
    """
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    load, computed = runs_toy
    monkeypatch.setenv("NNSTUDY_JOBS", "2")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        on_dask = load().seeds("smoke")
    assert sorted(computed()) == ["0", "1", "2"]
    assert on_dask["weights"].shape == (3, 34) and len(on_dask.metrics["final_loss"]) == 3
    load().seeds("smoke")                       # every run is in the cache now
    assert sorted(computed()) == ["0", "1", "2"]
