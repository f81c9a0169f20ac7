"""Local worker processes of a distributed search: started, watched, restarted, stopped.

Each worker is ``python -m analysis tune SEARCH --worker ...`` with a fixed
tuner id (``worker-0``, ``worker-1``, ...). A worker that dies (killed, out of
memory) is started again with the *same* tuner id, so the chief's oracle hands
it back its unfinished trial; after ``max_restarts`` restarts of one worker the
search fails with a one-line error naming the trial. Workers run in sessions
of their own, so a Ctrl-C in the terminal reaches only the chief, which then
stops them all (:meth:`Supervisor.stop`); were the chief killed outright, each
worker notices its parent is gone and exits (:mod:`worker`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from analysis import config
from analysis.tuning.addresses import Address
from analysis.tuning.worker import SUPERVISOR_VARIABLE


class TuningFailed(RuntimeError):
    """The search cannot finish (a worker keeps dying); one line, exit status 1."""


@dataclass
class Worker:
    tuner_id: str
    process: subprocess.Popen
    log: Path
    restarts: int = 0
    done: bool = False


def _cause(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""


@dataclass
class Supervisor:
    """``count`` local workers of search ``search`` talking to the chief at ``chief``."""

    search: str
    profile: str
    chief: Address
    directory: Path          # shared with the chief: checkpoints land next to its trials
    log_dir: Path
    count: int
    max_restarts: int = 2
    chief_timeout: float = 60.0
    extra: tuple = ()        # more arguments of every worker's command (e.g. --seed S)
    out: object = sys.stdout
    workers: dict[str, Worker] = field(default_factory=dict)

    @property
    def tuner_ids(self) -> list[str]:
        return [f"worker-{index}" for index in range(self.count)]

    def _spawn(self, tuner_id: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "analysis", "tune", self.search, "--worker",
                   "--chief-address", str(self.chief), "--tuner-id", tuner_id,
                   "--profile", self.profile, "--chief-timeout", f"{self.chief_timeout:g}",
                   "--directory", str(self.directory), *self.extra]
        environment = dict(os.environ)
        environment[SUPERVISOR_VARIABLE] = str(os.getpid())
        environment["NNSTUDY_PROGRESS"] = "0"
        # The worker imports this very checkout of `analysis`.
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(config.PROJECT_ROOT)] + [p for p in [environment.get("PYTHONPATH")] if p])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{tuner_id}.log", "ab") as log:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=environment,
                                    start_new_session=True)

    def start(self) -> None:
        for tuner_id in self.tuner_ids:
            self.workers[tuner_id] = Worker(tuner_id, self._spawn(tuner_id),
                                            self.log_dir / f"{tuner_id}.log")

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def check(self, chief) -> None:
        """Restart dead workers (same tuner id), or fail once one has died too often."""
        for worker in self.workers.values():
            returncode = None if worker.done else worker.process.poll()
            if returncode is None:
                continue
            if returncode == 0:
                worker.done = True  # the chief told it the search is over
                continue
            trial = chief.running_trial(worker.tuner_id)
            during = (f"during trial {trial.trial_id} {dict(trial.hyperparameters.values)}"
                      if trial is not None else "while holding no trial")
            cause = _cause(returncode)
            if worker.restarts >= self.max_restarts:
                tail = _last_line(worker.log)
                deaths = worker.restarts + 1
                raise TuningFailed(
                    f"{worker.tuner_id} died {deaths} time{'s' if deaths > 1 else ''} "
                    f"(last: {cause}) {during}; gave up after {self.max_restarts} "
                    f"restart{'' if self.max_restarts == 1 else 's'} (--max-restarts)"
                    + (f"; its log ends: {tail}" if tail else ""))
            worker.restarts += 1
            self.say(f"{worker.tuner_id} (pid {worker.process.pid}) {cause} {during}; "
                     f"restarting it with the same tuner id "
                     f"({worker.restarts} of {self.max_restarts} restarts)")
            worker.process = self._spawn(worker.tuner_id)

    def finish(self, timeout: float = 30.0) -> None:
        """After the search: give the workers ``timeout`` s to exit on their own."""
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.stop()

    def stop(self, grace: float = 5.0) -> None:
        """Stop every worker still running: SIGTERM, then SIGKILL after ``grace`` s."""
        running = [w.process for w in self.workers.values() if w.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Progress:
    """One line per finished trial, from the chief's trial events."""

    def __init__(self, chief, out=sys.stdout):
        self.chief, self.out = chief, out
        self.started: dict[str, float] = {}
        self.ended = 0

    def __call__(self) -> None:
        oracle = self.chief.oracle
        for event in self.chief.events():
            if event.kind == "started":
                self.started[event.trial_id] = time.monotonic()
                continue
            self.ended += 1
            seconds = time.monotonic() - self.started.get(event.trial_id, time.monotonic())
            total = f"/{oracle.max_trials}" if oracle.max_trials else ""
            score = "n/a" if event.score is None else f"{event.score:.4g}"
            print(f"trial {event.trial_id} {event.status.lower()} on {event.tuner_id} "
                  f"in {seconds:.1f} s: {oracle.objective.name} = {score} "
                  f"[{self.ended}{total} ended] {event.values}", file=self.out, flush=True)
