"""A worker of a distributed search: keras-tuner's own worker loop, bounded in time.

keras-tuner makes a tuner a worker when ``KERASTUNER_ORACLE_IP`` /
``KERASTUNER_ORACLE_PORT`` name a chief and ``KERASTUNER_TUNER_ID`` does not
contain "chief": its oracle becomes an ``OracleClient`` that asks the chief
for each trial and reports each result. The tuner id is what lets a restarted
worker resume: the chief's oracle hands a tuner id that still holds a trial
that same trial again (``Oracle.create_trial``).

Two additions keep a worker from hanging (keras-team/keras-tuner issues 915,
990, pull request 645): it first waits a bounded time for the chief to answer
and says so if none does, and every later call to the chief times out after
the same time instead of keras-tuner's hour. A worker started by the local
supervisor also exits when the supervisor is gone, so none is left orphaned.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from analysis.errors import UserError
from analysis.tuning.addresses import Address, wait_for_chief

#: Set by the supervisor: its process id, which a local worker outlives by at most a second.
SUPERVISOR_VARIABLE = "NNSTUDY_TUNE_SUPERVISOR"


class ChiefLost(RuntimeError):
    """The chief stopped answering in the middle of the search."""


def check_tuner_id(tuner_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", tuner_id or ""):
        raise UserError(f"--tuner-id {tuner_id!r} must be letters, digits, '.', '_' or '-'")
    if "chief" in tuner_id:
        # keras-tuner makes any tuner whose id contains "chief" a chief.
        raise UserError(f"--tuner-id {tuner_id!r} must not contain 'chief' (keras-tuner "
                        "would make that process a chief); pick e.g. worker-1")
    return tuner_id


def _exit_with_supervisor(supervisor_pid: int) -> None:
    """Exit at once when the supervising chief is gone (killed, even with SIGKILL)."""

    def watch():
        while os.getppid() == supervisor_pid:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def run(search, profile, chief: Address, tuner_id: str, timeout: float,
        directory: Path | None = None) -> None:
    """Take trials from the chief at ``chief`` until it says the search is done."""
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if supervisor:
        # A local worker loads Keras and builds its tuner while its chief does.
        _exit_with_supervisor(int(supervisor))
    else:
        wait_for_chief(chief, timeout)  # before Keras loads: a wrong address fails fast

    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = chief.host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(chief.port)
    from analysis import import_tensorflow_quietly

    import_tensorflow_quietly()
    import grpc
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = timeout

    # A worker on another machine keeps its trial files (checkpoints) in a
    # temporary directory: what the search needs travels to the chief.
    scratch = (contextlib.nullcontext(directory) if directory is not None
               else tempfile.TemporaryDirectory(prefix="nnstudy-tune-worker-"))
    with scratch as where:
        tuner, search_kwargs = search.build(profile, Path(where))
        wait_for_chief(chief, timeout)
        try:
            tuner.search(**search_kwargs)
        except grpc.RpcError as error:
            raise ChiefLost(f"{tuner_id} lost the chief at {chief} ({error.code().name}); "
                            "start this worker again with the same --tuner-id to resume "
                            "its trial once the chief is back") from None
    print(f"{tuner_id}: the chief reports the search is done", file=sys.stderr)
