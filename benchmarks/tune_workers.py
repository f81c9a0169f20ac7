"""How much faster does a search get with two workers than with one?

Runs one keras-tuner search (by default the test search ``examples.tiny_random``,
or any registered search) with ``python -m analysis tune SEARCH --workers 1``
and ``--workers 2``, each from an empty, private result cache, and prints
both wall times, their ratio (1 worker / 2 workers: above 1 means two are
faster) and whether both evaluated the same configurations (they should, for
random and grid search).

    python benchmarks/tune_workers.py [--profile default] [--search examples.tiny_random]

What to expect: each worker is a process that loads Keras, builds its own
data and compiles each trial's model; on a 2-core CPU shared with other work
two workers gain little or nothing. The point of the engine is that the same
command scales where there are more cores or more machines; this script
measures what it gives here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_search(search: str, profile: str, workers: int) -> tuple[float, set]:
    """Wall seconds of the search with ``workers`` local workers, and its configurations."""
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as cache:
        environment = {k: v for k, v in os.environ.items() if k != "NNSTUDY_REFRESH"}
        environment.update(NNSTUDY_CACHE=cache, NNSTUDY_PROGRESS="0", TF_CPP_MIN_LOG_LEVEL="3")
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "analysis", "tune", search,
                                   "--profile", profile, "--workers", str(workers)],
                                  cwd=ROOT, env=environment, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if finished.returncode != 0:
            tail = finished.stderr.strip().splitlines()[-1:] or ["(no message)"]
            sys.exit(f"error: {search} with {workers} worker(s) failed: {tail[0]}")
        tried = set()
        for result in Path(cache).glob("*/*/tuner/*/trial_*/trial.json"):
            values = json.loads(result.read_text())["hyperparameters"]["values"]
            tried.add(tuple(sorted(values.items())))
    return elapsed, tried


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--search", default="examples.tiny_random")
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    one, tried_one = timed_search(args.search, args.profile, 1)
    two, tried_two = timed_search(args.search, args.profile, 2)
    print(f"{args.search} [{args.profile}] on {os.cpu_count()} CPU cores "
          f"(load average {load:.1f} at the start)")
    print(f"  1 worker : {one:6.1f} s")
    print(f"  2 workers: {two:6.1f} s")
    print(f"  ratio 1 worker / 2 workers: {one / two:.2f}")
    print(f"  same configurations evaluated: {tried_one == tried_two} "
          f"({len(tried_one)} and {len(tried_two)})")


if __name__ == "__main__":
    main()
