"""The chief of a distributed search: keras-tuner's oracle served over gRPC.

This is keras-tuner's own engine -- its ``OracleServicer`` answering its
``OracleClient`` in the workers, its oracle deciding every trial -- with one
change: the loop that waits for the search to end is ours. keras-tuner's
``oracle_chief.start_server`` blocks in ``sleep`` calls (up to 20 s between
checks once the search is done) and offers no place to watch the workers; the
:mod:`supervisor` needs both. The end condition is keras-tuner's
(``oracle_chief.exit_chief``): every trial ended *and* every worker that asked
for trials was told to stop. Waiting for the second part is what keeps a
worker from hanging on a chief that has already gone (keras-team/keras-tuner
pull request 645).
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass

from analysis.errors import UserError
from analysis.tuning.addresses import Address


@dataclass(frozen=True)
class TrialEvent:
    """A trial that a worker started or ended, as the chief saw it."""

    kind: str                 # "started" or "ended"
    trial_id: str
    tuner_id: str
    status: str = ""
    score: float | None = None
    values: dict | None = None


def _servicer_class():
    from keras_tuner.src.distribute import oracle_chief

    class Servicer(oracle_chief.OracleServicer):
        """keras-tuner's servicer, reporting each trial's start and end to a queue."""

        def __init__(self, oracle):
            super().__init__(oracle)
            self.events: queue.Queue[TrialEvent] = queue.Queue()

        def CreateTrial(self, request, context):
            response = super().CreateTrial(request, context)
            # A worker that holds a trial after this call was handed one: a new
            # trial, or (restarted with the same tuner id) the one it had.
            trial = self.oracle.ongoing_trials.get(request.tuner_id)
            if trial is not None:
                self.events.put(TrialEvent("started", trial.trial_id, request.tuner_id,
                                           values=dict(trial.hyperparameters.values)))
            return response

        def EndTrial(self, request, context):
            tuner_id = next((tid for tid, trial in self.oracle.ongoing_trials.items()
                             if trial.trial_id == request.trial.trial_id), "?")
            response = super().EndTrial(request, context)
            trial = self.oracle.trials[request.trial.trial_id]
            self.events.put(TrialEvent("ended", trial.trial_id, tuner_id, str(trial.status),
                                       trial.score, dict(trial.hyperparameters.values)))
            return response

    return Servicer


class Chief:
    """A gRPC server bound at ``address`` at once; it serves a tuner's oracle from :meth:`serve`.

    Binding first tells the workers the port (port 0: a free one, picked by
    the operating system at bind time) before Keras has even loaded, so they
    start while the chief builds its tuner; until :meth:`serve` starts the
    server they wait for it like workers on another machine would.
    """

    def __init__(self, address: Address):
        # gRPC's C core logs a failed bind on its own; the error below says it in one line.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        import grpc
        from concurrent import futures

        # One thread, as in keras-tuner: the oracle's calls are serialised anyway.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        try:
            port = self.server.add_insecure_port(str(address))
        except RuntimeError:  # what gRPC raises when it cannot bind
            port = 0
        if port == 0:
            raise UserError(f"the chief cannot listen on {address}: the port is taken or "
                            "the address is not this machine's; pick another --port/--address")
        self.address = Address(address.host, port)
        self.tuner = self.oracle = self.servicer = None

    def serve(self, tuner) -> None:
        """Serve ``tuner``'s oracle from now on."""
        from keras_tuner.src import protos

        self.tuner, self.oracle = tuner, tuner.oracle
        self.oracle.verbose = 0  # the supervisor prints one line per trial instead
        self.servicer = _servicer_class()(self.oracle)
        protos.get_service_grpc().add_OracleServicer_to_server(self.servicer, self.server)
        # The tuner's own state file: the experiment that adopts the finished
        # search reloads the project through it (BaseTuner.__init__).
        self.tuner.save()
        self.server.start()

    def finished(self) -> bool:
        """keras-tuner's end condition: stop sent, no trial running, no worker left."""
        from keras_tuner.src.distribute import oracle_chief

        return self.servicer.stop_triggered and oracle_chief.exit_chief(self.oracle)

    def events(self):
        """The trial events since the last call."""
        while self.servicer is not None:
            try:
                yield self.servicer.events.get_nowait()
            except queue.Empty:
                return

    def running_trial(self, tuner_id: str):
        """The trial the worker ``tuner_id`` holds, or None."""
        return self.oracle.ongoing_trials.get(tuner_id) if self.oracle else None

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait(grace + 1)
        if self.oracle is not None:
            self.oracle.save()


def wait(chief: Chief, tick, interval: float = 0.1) -> None:
    """Call ``tick()`` every ``interval`` s until the search has ended."""
    while not chief.finished():
        tick()
        time.sleep(interval)
    tick()
