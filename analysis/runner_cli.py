"""The ``list``, ``run`` and ``cache`` commands of ``python -m analysis``."""

from __future__ import annotations

import os
import sys

from analysis import cache, import_tensorflow_quietly, profiles, runner


def add_commands(commands) -> None:
    listing = commands.add_parser("list", help="experiments per chapter and their cache state")
    listing.add_argument("--profile", help="profile to check (default: the active one)")
    listing.set_defaults(handler=list_experiments)

    run = commands.add_parser("run", help="precompute a chapter or one experiment")
    run.add_argument("target", help="chapter id or experiment name (see `list`)")
    run.add_argument("--profile", help="smoke, default or full (default: the active one)")
    run.set_defaults(handler=run_experiments)

    store = commands.add_parser("cache", help="inspect or clear the result cache")
    actions = store.add_subparsers(dest="action", required=True, parser_class=type(store))
    clear = actions.add_parser("clear", help="remove cached results")
    clear.add_argument("experiment", nargs="?", help="only this experiment (default: all)")
    clear.set_defaults(handler=clear_cache)
    verify = actions.add_parser("verify", help="re-check every entry's checksums")
    verify.set_defaults(handler=verify_cache)


def _profile(args) -> profiles.Profile:
    return profiles.get(args.profile) if args.profile else profiles.current()


def _size(num_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return "just now"


def list_experiments(args) -> int:
    from tabulate import tabulate

    profile = _profile(args)
    import_tensorflow_quietly()
    rows = []
    for chapter, experiments in runner.chapters().items():
        for item in experiments:
            path = item.cached(profile)
            state = ("cached", _size(cache.size_bytes(path)),
                     _age(cache.age_seconds(path))) if path else ("missing", "", "")
            rows.append((chapter, item.name.rpartition(".")[2], *state))
    print(f"profile: {profile.name}    cache: {cache.root()}")
    print(tabulate(rows, headers=("chapter", "experiment", "state", "size", "age")) if rows
          else "no experiments are defined yet")
    return 0


def run_experiments(args) -> int:
    from tqdm import tqdm

    profile = _profile(args)
    runner.check_target(args.target)  # a wrong name fails before a backend loads
    import_tensorflow_quietly()
    selected = runner.select(args.target)
    os.environ.setdefault("NNSTUDY_PROGRESS", "1")  # bars even when piped to a log
    bar = tqdm(selected, desc=f"{args.target} [{profile.name}]", unit="experiment",
               disable=not runner.progress_enabled(), file=sys.stderr)
    for item in bar:
        bar.set_postfix_str(item.name)
        result = item(profile)
        where = "cache" if result.from_cache else f"computed in {result.provenance['wall_seconds']:.1f} s"
        tqdm.write(f"{item.name}: {where} -> {result.path}", file=sys.stdout)
    return 0


def clear_cache(args) -> int:
    if args.experiment:
        names = [name for chapter in runner.declared().values() for name in chapter]
        if args.experiment not in names:
            choices = ", ".join(names) or "(none defined)"
            raise runner.UserError(f"unknown experiment {args.experiment!r}; valid choices: {choices}")
    removed = cache.clear(args.experiment)
    print(f"removed {removed} cached result(s) from {cache.root()}")
    return 0


def verify_cache(args) -> int:
    report = cache.verify()
    damaged = [(path, reason) for path, reason in report if reason]
    for path, reason in damaged:
        print(f"corrupted: {path} ({reason})")
    print(f"{len(report) - len(damaged)} sound, {len(damaged)} corrupted"
          + ("; they will be recomputed when next used" if damaged else ""))
    return 1 if damaged else 0
