"""Distributed tuning (analysis.tuning): chief and workers on 127.0.0.1, through the CLI.

Every run is the test search ``examples.tiny_random`` (a tiny Dense network on
synthetic data, smoke profile: 3 trials of one epoch). Every subprocess has a
timeout, so a hang fails the test instead of stalling the suite.

Which configurations a search evaluates with one worker or several is checked
end to end (one process against two workers: same trials, same cache entry)
and, for every kind of search, on keras-tuner's oracle itself driven as 1, 2
or 3 workers would drive it, with results arriving in many orders (cheap: no
training), at the end of this file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import cache, cli
from analysis.config import PROJECT_ROOT
from analysis.tuning import examples

SEARCH = "examples.tiny_random"
MAX_TRIALS = examples.BUDGETS["smoke"].max_trials
RUN_TIMEOUT = 300  # seconds; a run takes well under a minute on a quiet 2-core CPU


def _environment(cache_dir: Path, markers: Path | None = None, hold: float = 0) -> dict:
    environment = dict(os.environ, NNSTUDY_CACHE=str(cache_dir), NNSTUDY_PROGRESS="0")
    environment.pop("NNSTUDY_REFRESH", None)
    if markers is not None:
        environment[examples.MARKERS_VARIABLE] = str(markers)
        # Each trial waits after its marker: the search (a few seconds) must
        # not end between the marker and the test's signal on a loaded CI.
        environment[examples.HOLD_VARIABLE] = str(hold)
    return environment


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "analysis", "tune", SEARCH, "--profile", "smoke", *arguments]


def tune(cache_dir: Path, *arguments: str, timeout: float = RUN_TIMEOUT):
    return subprocess.run(_command(*arguments), cwd=PROJECT_ROOT, env=_environment(cache_dir),
                          capture_output=True, text=True, timeout=timeout)


def _as_from_a_terminal() -> None:
    # A command started in the background by a non-interactive shell (`cmd &`,
    # as a CI script may do) inherits SIGINT ignored, and so would the chief;
    # a user's Ctrl-C reaches a chief whose SIGINT is the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(cache_dir: Path, markers: Path, *arguments: str, hold: float = 3) -> subprocess.Popen:
    return subprocess.Popen(_command(*arguments), cwd=PROJECT_ROOT,
                            env=_environment(cache_dir, markers, hold), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_from_a_terminal)


def wait_for_marker(markers: Path, process: subprocess.Popen, timeout: float = 180) -> Path:
    """The first marker a trial leaves when its training starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(markers.glob("worker-*"))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no trial started within {timeout} s")


def trials_in_cache(cache_dir: Path, monkeypatch) -> list[dict]:
    """The finished search, read back through the experiment (it must be cached)."""
    monkeypatch.setenv("NNSTUDY_CACHE", str(cache_dir))
    result = examples.tiny_random("smoke")
    assert result.from_cache
    return result["trials"]


def assert_each_trial_once(trials: list[dict]) -> None:
    assert len(trials) == MAX_TRIALS
    assert len({t["trial_id"] for t in trials}) == MAX_TRIALS
    assert len({tuple(sorted(t["values"].items())) for t in trials}) == MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in trials), trials
    # The oracle counts how often each trial was ended: once, never twice.
    assert all(t["times_ended"] == 1 for t in trials), trials


def configurations(trials: list[dict]) -> set:
    return {tuple(sorted(t["values"].items())) for t in trials}


def progress_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("trial ")]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("two-workers")
    finished = tune(cache_dir, "--workers", "2")
    assert finished.returncode == 0, finished.stderr
    return cache_dir, finished


def test_chief_and_two_workers_complete_every_trial_once(two_workers, monkeypatch):
    cache_dir, finished = two_workers
    assert_each_trial_once(trials_in_cache(cache_dir, monkeypatch))
    lines = progress_lines(finished.stdout)
    assert len(lines) == MAX_TRIALS, finished.stdout
    assert "restarting" not in finished.stdout  # no worker died
    assert {re.search(r" on (worker-\d)", line).group(1) for line in lines} <= {"worker-0",
                                                                               "worker-1"}
    assert not cache.partials()


def test_a_distributed_search_lands_where_a_single_process_search_would(two_workers, tmp_path,
                                                                       monkeypatch):
    """Same cache key, same trials: a chapter reads either one with no change."""
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path))
    single = examples.tiny_random("smoke")  # one process, as `run` or a render computes it
    assert not single.from_cache
    monkeypatch.setenv("NNSTUDY_CACHE", str(two_workers[0]))
    distributed = examples.tiny_random("smoke")
    assert distributed.from_cache and distributed.key == single.key
    assert ([(t["trial_id"], t["values"]) for t in distributed["trials"]]
            == [(t["trial_id"], t["values"]) for t in single["trials"]])
    assert sorted(p.name for p in (distributed.path / "tuner" / "tiny_random").iterdir()) \
        == sorted(p.name for p in (single.path / "tuner" / "tiny_random").iterdir())


def test_a_killed_worker_is_restarted_and_finishes_its_trial(tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    chief = start(tmp_path / "cache", markers, "--workers", "2")
    try:
        marker = wait_for_marker(markers, chief)
        tuner_id, pid = marker.name.split(".")[:2]
        os.kill(int(pid), signal.SIGKILL)  # in the middle of its trial: training has begun
        stdout, stderr = chief.communicate(timeout=RUN_TIMEOUT)
    finally:
        chief.kill()
    assert chief.returncode == 0, stderr
    restart = re.search(rf"{tuner_id} \(pid {pid}\) killed by SIGKILL during trial (\d+) ",
                        stdout)
    assert restart, stdout
    trials = trials_in_cache(tmp_path / "cache", monkeypatch)
    assert_each_trial_once(trials)
    assert restart.group(1) in {t["trial_id"] for t in trials}
    assert len(progress_lines(stdout)) == MAX_TRIALS, stdout


def test_a_worker_that_dies_too_often_fails_the_search_naming_its_trial(tmp_path,
                                                                        monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    # One worker suffices here (and starts one process less than two would).
    chief = start(tmp_path / "cache", markers, "--workers", "1", "--max-restarts", "0")
    try:
        marker = wait_for_marker(markers, chief)
        tuner_id, pid = marker.name.split(".")[:2]
        os.kill(int(pid), signal.SIGKILL)
        _, stderr = chief.communicate(timeout=120)
    finally:
        chief.kill()
    assert chief.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert re.fullmatch(rf"error: {tuner_id} died 1 time \(last: killed by SIGKILL\) during "
                        r"trial \d+ \{.*\}; gave up after 0 restarts \(--max-restarts\).*",
                        stderr.strip().splitlines()[-1]), stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    assert cache.entries() == [] and cache.partials() == []


def test_ctrl_c_stops_every_worker_and_keeps_no_entry(tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    # Held long enough that only the Ctrl-C can end this search.
    chief = start(tmp_path / "cache", markers, "--workers", "2", hold=RUN_TIMEOUT)
    try:
        announced = chief.stdout.readline()
        pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", announced)]
        assert len(pids) == 2, announced
        wait_for_marker(markers, chief)
        chief.send_signal(signal.SIGINT)
        _, stderr = chief.communicate(timeout=60)
    finally:
        chief.kill()
    assert chief.returncode == 130, stderr
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "cache"))
    assert cache.entries() == [] and cache.partials() == []


@pytest.mark.parametrize("arguments, message", [
    (("--worker", "--chief-address", "127.0.0.1"), "is not HOST:PORT"),
    (("--worker", "--chief-address", "127.0.0.1:70000"), "out of range"),
    (("--worker", "--chief-address", "no-such-host.invalid:8000"), "cannot resolve"),
    (("--chief", "--address", "0.0.0.0"), "--allow-wildcard"),
    (("--chief", "--address", "::"), "--allow-wildcard"),
    (("--workers", "2", "--port", "8000"), "only for --chief"),
    (("--worker",), "needs --chief-address"),
])
def test_a_bad_address_is_one_line_and_exit_2(cache_dir, capsys, arguments, message):
    assert cli.main(["tune", SEARCH, "--profile", "smoke", *arguments]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert not cache_dir.exists()


def test_arguments_are_checked_before_keras_loads():
    probe = ("import sys; from analysis import cli; "
             "status = cli.main(['tune', 'examples.tiny_random', '--worker', "
             "'--chief-address', 'nowhere']); print(status, 'keras' in sys.modules)")
    finished = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=60)
    assert finished.stdout.split() == ["2", "False"], finished.stderr


def test_a_chief_on_a_taken_port_is_one_line_and_exit_2(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        finished = tune(tmp_path, "--chief", "--port", str(taken.getsockname()[1]), timeout=60)
    assert finished.returncode == 2, finished.stderr
    assert finished.stderr.count("\n") == 1 and "cannot listen on" in finished.stderr


def test_an_unknown_search_lists_the_valid_ones(cache_dir, capsys):
    assert cli.main(["tune", "no_such_search", "--workers", "2"]) == 2
    assert f"valid searches: {SEARCH}" in capsys.readouterr().err


def test_a_worker_without_a_chief_says_so_and_exits_2(cache_dir, capsys):
    import socket

    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert cli.main(["tune", SEARCH, "--worker", "--chief-address", f"127.0.0.1:{port}",
                     "--chief-timeout", "2"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    assert f"no tuning chief answered at 127.0.0.1:{port} within 2 s" in stderr
    assert "KERASTUNER_ORACLE_IP" not in os.environ  # it gave up before becoming a worker


# --------------------------------------------------------------------------
# What holds for which search: the chief's oracle driven as 1, 2 or 3 workers
# would drive it, with results arriving in many orders (no training needed).


def _oracle(kind: str, max_trials: int):
    import keras_tuner

    space = keras_tuner.HyperParameters()
    space.Choice("units", [4, 8, 16, 32])
    space.Choice("learning_rate", [1e-3, 1e-2, 1e-1])
    options = dict(objective=keras_tuner.Objective("score", "max"), hyperparameters=space)
    oracles = keras_tuner.oracles
    oracle = {
        "random": lambda: oracles.RandomSearchOracle(max_trials=max_trials, seed=3, **options),
        "grid": lambda: oracles.GridSearchOracle(max_trials=max_trials, **options),
        "bayesian": lambda: oracles.BayesianOptimizationOracle(
            max_trials=max_trials, seed=3, num_initial_points=2, **options),
        "hyperband": lambda: oracles.HyperbandOracle(max_epochs=9, factor=3, seed=3, **options),
    }[kind]()
    oracle.verbose = 0
    return oracle


def evaluated_configurations(kind: str, workers: int, order_seed: int, directory: Path,
                             max_trials: int = 7) -> list:
    """The configurations a search evaluates when ``workers`` workers ask for
    trials and report results in an order drawn with ``order_seed``. A trial's
    score depends on its configuration only, as if training were deterministic."""
    import random

    oracle = _oracle(kind, max_trials)
    oracle._set_project_dir(str(directory / f"{kind}-{workers}-{order_seed}"), "search")
    order, holding, asking = random.Random(order_seed), {}, [f"w{i}" for i in range(workers)]
    while asking:
        worker = order.choice(asking)
        if worker in holding:
            trial = holding.pop(worker)
            values = trial.hyperparameters.values
            score = values["units"] * values["learning_rate"] + values.get("tuner/epochs", 0)
            oracle.update_trial(trial.trial_id, {"score": score})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            continue
        trial = oracle.create_trial(worker)
        if trial.status == "STOPPED":
            asking.remove(worker)
        elif trial.status == "RUNNING":
            holding[worker] = trial
    # Hyperband's link to the trial it continues is an id, which depends on order.
    return sorted(tuple(sorted((k, v) for k, v in t.hyperparameters.values.items()
                               if k != "tuner/trial_id"))
                  for t in oracle.trials.values())


@pytest.mark.parametrize("kind", ["random", "grid"])
def test_random_and_grid_search_evaluate_one_set_whatever_the_order(kind, tmp_path):
    alone = evaluated_configurations(kind, 1, 0, tmp_path)
    assert len(alone) == 7
    for workers in (2, 3):
        for order_seed in range(4):
            assert evaluated_configurations(kind, workers, order_seed, tmp_path) == alone


@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_bayesian_optimization_and_hyperband_depend_on_the_order(kind, tmp_path):
    """What the chapter states: with several workers these two can evaluate
    other configurations, because a proposal depends on which results are in."""
    # Three trials suffice for Bayesian optimization (two random initial
    # points, then its first proposal) and keep its Gaussian-process fits quick.
    trials = 3 if kind == "bayesian" else 7
    alone = evaluated_configurations(kind, 1, 0, tmp_path, trials)
    others = [evaluated_configurations(kind, 2, seed, tmp_path, trials) for seed in range(4)]
    assert any(configurations != alone for configurations in others)


# --------------------------------------------------------------------------
# The HPO chapter's searches: each is one run (tuner × seed) of hpo.tuner_search


def test_a_distributed_hpo_search_is_the_run_the_chapter_reads(tmp_path, monkeypatch):
    """Two workers complete exactly max_trials trials, each once; the chief
    caches them as hpo.tuner_search's run of that search, under the key the
    experiment computes its runs with, so reading the run trains nothing.
    (That a single-process search lands under that same key with the same
    trials is checked for the test search above; a second search here would
    double this test's time.)"""
    from analysis import profiles
    from analysis.experiments import hpo

    max_trials = profiles.get("smoke").hpo.tuner_trials
    command = [sys.executable, "-m", "analysis", "tune", "hpo.random", "--seed", "0",
               "--workers", "2", "--profile", "smoke"]
    finished = subprocess.run(command, cwd=PROJECT_ROOT, env=_environment(tmp_path / "tuned"),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert finished.returncode == 0, finished.stderr
    lines = progress_lines(finished.stdout)
    assert len(lines) == max_trials, finished.stdout
    assert all(re.search(r" completed on worker-[01] ", line) for line in lines), lines
    assert "hpo.tuner_search run hpo.random seed 0 (2 trials)" in finished.stdout

    item = hpo.search_item("smoke", "random", 0)
    monkeypatch.setenv("NNSTUDY_CACHE", str(tmp_path / "tuned"))
    distributed, computed = hpo.tuner_search.run_entry("smoke", item)
    assert not computed  # the run tuner_search would compute is cached: it trains nothing
    assert not list((tmp_path / "tuned" / "hpo.tuner_search").glob("partial-*"))
    rows = distributed.record["metrics"]
    assert len(rows["trial"]) == len(set(rows["trial"])) == max_trials
    assert len({tuple(sorted(v.items())) for v in rows["values"]}) == max_trials
    # Each score is the one a worker reported to the chief.
    reported = sorted(float(re.search(r"val_accuracy = (\S+)", line).group(1)) for line in lines)
    assert sorted(rows["score"]) == pytest.approx(reported, abs=1e-4)


def test_the_hpo_searches_are_the_chapters_tuners_and_take_seeds(cache_dir, capsys):
    from analysis.hpo import tuners
    from analysis.tuning import searches

    assert searches.HPO_TUNERS == tuners.TUNERS
    assert cli.main(["tune", "no_such_search"]) == 2
    assert "valid searches: examples.tiny_random, hpo.bayesian, hpo.hyperband, hpo.random" \
        in capsys.readouterr().err
    assert cli.main(["tune", SEARCH, "--seed", "1", "--workers", "2"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "--seed is only for a search with seeds" in stderr
    assert cli.main(["tune", "hpo.random", "--seed", "7", "--profile", "smoke"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "profile smoke has no tuner seed 7" in stderr
    assert not cache_dir.exists() or not cache.entries()
