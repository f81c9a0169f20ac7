"""``python -m analysis tune SEARCH``: a keras-tuner search, in one process or distributed.

    tune SEARCH [--seed S] [--profile P]            one process (as ``run``)
    tune SEARCH --workers N [--profile P]           chief + N local workers on 127.0.0.1
    tune SEARCH --chief [--port P] [--address A]    chief for workers on other machines
                [--workers N]                       (plus N local workers)
    tune SEARCH --worker --chief-address HOST:P     a worker, on any machine
                [--tuner-id ID]

SEARCH is a registered search: ``hpo.random``, ``hpo.bayesian`` or
``hpo.hyperband`` (the HPO chapter's, each one run of ``hpo.tuner_search``,
with ``--seed S``, one of the profile's tuner seeds, default 0) or the test
search ``examples.tiny_random``.

Everything is checked before Keras is imported, so a wrong name, address or
port is a one-line error (exit status 2) at once (a tuner seed the profile
does not have is one too, once the chapter's module has loaded).
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

from analysis.errors import UserError
from analysis.tuning import addresses, searches


def add_commands(commands) -> None:
    tune = commands.add_parser("tune", help="run a keras-tuner search (optionally distributed)")
    tune.add_argument("search", help="the search's name: " + ", ".join(sorted(searches.REGISTRY)))
    tune.add_argument("--seed", type=int, help="hpo.* searches: the tuner seed, one of the "
                      "profile's (default: 0); the search is that run of hpo.tuner_search")
    tune.add_argument("--profile", help="smoke, default or full (default: the active one)")
    tune.add_argument("--workers", type=int, help="local worker processes (default: none, "
                      "i.e. one process; with --chief: 0)")
    role = tune.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true",
                      help="run the chief that workers on other machines connect to")
    role.add_argument("--worker", action="store_true",
                      help="run a worker of the chief at --chief-address")
    tune.add_argument("--port", help="chief: port to listen on (default: a free one)")
    tune.add_argument("--address", help="chief: address to listen on (default: 127.0.0.1)")
    tune.add_argument("--allow-wildcard", action="store_true",
                      help="chief: allow --address 0.0.0.0 or :: (the service has no "
                      "authentication; only on a private network)")
    tune.add_argument("--chief-address", help="worker: the chief's HOST:PORT")
    tune.add_argument("--tuner-id", help="worker: its id, unique per worker; restart a dead "
                      "worker with the same id to resume its trial (default: worker-HOSTNAME)")
    tune.add_argument("--chief-timeout", type=float, default=60.0,
                      help="seconds a worker waits for the chief to answer (default: 60)")
    tune.add_argument("--max-restarts", type=int, default=2,
                      help="restarts of each local worker before the search fails (default: 2)")
    # Set by the supervisor for its local workers: the chief's own search directory.
    tune.add_argument("--directory", help=argparse.SUPPRESS)
    tune.set_defaults(handler=tune_command)


def _check(args) -> None:
    """Every combination that cannot work, as one line each."""
    if args.worker:
        if not args.chief_address:
            raise UserError("--worker needs --chief-address HOST:PORT (printed by the chief)")
        for option in ("workers", "port", "address"):
            if getattr(args, option) is not None:
                raise UserError(f"--{option} is for the chief, not for a --worker")
    else:
        for option in ("chief_address", "tuner_id", "directory"):
            if getattr(args, option) is not None:
                raise UserError(f"--{option.replace('_', '-')} is only for a --worker")
    chief_options = args.port is not None or args.address is not None or args.allow_wildcard
    if not args.chief and chief_options:
        raise UserError("--port, --address and --allow-wildcard are only for --chief "
                        "(with --workers alone the chief listens on 127.0.0.1, on a free port)")
    if args.workers is not None and args.workers < (0 if args.chief else 1):
        raise UserError(f"--workers {args.workers}: give at least {0 if args.chief else 1}")
    if args.chief_timeout <= 0:
        raise UserError(f"--chief-timeout {args.chief_timeout:g} must be positive (seconds)")
    if args.max_restarts < 0:
        raise UserError(f"--max-restarts {args.max_restarts} must be 0 or more")


def tune_command(args) -> int:
    from analysis import profiles

    _check(args)
    search = searches.lookup(args.search).with_seed(args.seed)
    profile = profiles.get(args.profile) if args.profile else profiles.current()
    if args.worker:
        from analysis.tuning import worker

        chief = addresses.parse(args.chief_address)
        tuner_id = worker.check_tuner_id(args.tuner_id or f"worker-{socket.gethostname()}")
        try:
            worker.run(search, profile, chief, tuner_id, args.chief_timeout, args.directory)
        except worker.ChiefLost as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    if args.chief or args.workers:
        address = addresses.listen_address(args.address, args.port,
                                           allow_wildcard=args.allow_wildcard)
        return _distributed(search, profile, address, args)
    return _single_process(search, profile)


def _single_process(search, profile) -> int:
    from analysis import import_tensorflow_quietly

    import_tensorflow_quietly()
    print(searches.compute(search, profile), flush=True)
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _distributed(search, profile, address, args) -> int:
    from analysis import cache, import_tensorflow_quietly
    from analysis.tuning.chief import Chief, wait
    from analysis.tuning.supervisor import Progress, Supervisor, TuningFailed

    # A SIGTERM (e.g. from a batch system) shuts the workers down like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    chief = Chief(address)
    # The search happens in a partial entry directory: removed on every way
    # out (Ctrl-C included) and never mistaken for a result.
    # A run search (hpo.*) works in its run's own resumable directory instead,
    # which an interrupted search leaves for the next attempt to resume.
    if search.run_of:
        import_tensorflow_quietly()  # naming the run's directory loads the chapter's module
        if _already_cached(search, profile):  # before its directory is made
            return 0
    with cache.building(search.experiment_name, "tune") as staging:
        directory = searches.workspace(search, profile, staging)
        extra = () if search.seed is None else ("--seed", str(search.seed))
        supervisor = Supervisor(search.name, profile.name, chief.address, directory,
                                staging / "logs", args.workers or 0, args.max_restarts,
                                args.chief_timeout, extra=extra)
        try:
            supervisor.start()  # the workers load Keras while the chief does
            import_tensorflow_quietly()
            if not search.run_of and _already_cached(search, profile):
                return 0
            tuner, _ = search.build(profile, directory)
            chief.serve(tuner)
            print(_announce(search, profile, chief, supervisor), flush=True)
            progress = Progress(chief)

            def tick():
                progress()
                supervisor.check(chief)

            try:
                wait(chief, tick)
            finally:
                chief.stop()
            # Every worker has been told to stop and writes nothing more:
            # adopt the search while they exit.
            exclude = frozenset(f"{tuner_id}.json" for tuner_id in supervisor.tuner_ids)
            completed = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
            finished = searches._Finished(directory, len(tuner.oracle.trials), exclude, completed)
            report = searches.compute(search, profile, finished)
            supervisor.finish()
        except TuningFailed as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            supervisor.stop()
    print(report, flush=True)
    return 0


def _already_cached(search, profile) -> bool:
    """Cached and not named in NNSTUDY_REFRESH (the runner's own rule): nothing to search."""
    if not searches.cached(search, profile):
        return False
    print(f"{search.title}: already cached; nothing to search", flush=True)
    return True


def _announce(search, profile, chief, supervisor) -> str:
    local = ", ".join(f"{w.tuner_id} (pid {w.process.pid})" for w in supervisor.workers.values())
    line = (f"chief of {search.title} [{profile.name}] listening on {chief.address}; "
            f"local workers: {local or 'none'}")
    if not supervisor.workers or chief.address.host not in ("127.0.0.1", "::1", "localhost"):
        seed = "" if search.seed is None else f" --seed {search.seed}"
        line += (f"; on each other machine run: python -m analysis tune {search.name}{seed} "
                 f"--worker --chief-address {chief.address} --profile {profile.name} "
                 "--tuner-id worker-NAME")
    return line
