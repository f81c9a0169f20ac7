"""How much faster does a multi-seed experiment get: backend, fast path, parallel runs?

Computes one multi-seed experiment of the MLP chapter (``mlp.optimizers``,
with the learning-rate sweep it depends on) from an empty result cache, four
ways, each in its own process:

1. TensorFlow, Keras's plain ``fit``, one run after another (the book before);
2. TensorFlow, our fast path (``steps_per_execution``), one run after another;
3. JAX, fast path, one run after another;
4. JAX, fast path, independent runs in parallel processes (every core).

It prints each wall time and its ratio to the first. The runs are the same
in every variant (same seeds, initial weights and batches), so the ratios
measure only how the work is executed. Each variant also starts from an empty
JAX compilation cache (the book keeps one in ``.jax-cache/``), so JAX is timed
as on a first render: it compiles every program once, and the later seeds of
the experiment reuse them as they would anywhere.

    python benchmarks/parallel_runs.py [--profile default] [--experiment mlp.optimizers]

The default profile takes several minutes per variant on a 2-core CPU;
``--profile smoke`` checks that the script works (its ratios mostly measure
start-up and compilation).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

VARIANTS = (
    ("TensorFlow, plain fit, sequential", {"KERAS_BACKEND": "tensorflow",
                                           "NNSTUDY_STEPS_PER_EXECUTION": "1", "NNSTUDY_JOBS": "1"}),
    ("TensorFlow, fast path, sequential", {"KERAS_BACKEND": "tensorflow", "NNSTUDY_JOBS": "1"}),
    ("JAX, fast path, sequential", {"KERAS_BACKEND": "jax", "NNSTUDY_JOBS": "1"}),
    (f"JAX, fast path, {os.cpu_count()} parallel processes",
     {"KERAS_BACKEND": "jax", "NNSTUDY_JOBS": str(os.cpu_count() or 1)}),
)


def timed_run(experiment: str, profile: str, settings: dict) -> float:
    """Wall seconds of `python -m analysis run` into a fresh, private cache."""
    with tempfile.TemporaryDirectory(prefix="nnstudy-bench-") as cache:
        # Nothing of the caller's that changes what runs, except the settings.
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("NNSTUDY_REFRESH", "NNSTUDY_STEPS_PER_EXECUTION")}
        environment.update(settings, NNSTUDY_CACHE=cache, NNSTUDY_PROGRESS="0",
                           TF_CPP_MIN_LOG_LEVEL="3",
                           JAX_COMPILATION_CACHE_DIR=str(Path(cache) / "jax-compilation-cache"))
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "analysis", "run", experiment,
                                   "--profile", profile], cwd=ROOT, env=environment,
                                  capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        tail = finished.stderr.strip().splitlines()[-1:] or ["(no message)"]
        sys.exit(f"error: {settings} failed: {tail[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", help="smoke, default or full")
    parser.add_argument("--experiment", default="mlp.optimizers")
    args = parser.parse_args()
    print(f"{args.experiment}, profile {args.profile}, {os.cpu_count()} cores; "
          "each variant from an empty cache")
    baseline = None
    for label, settings in VARIANTS:
        seconds = timed_run(args.experiment, args.profile, settings)
        baseline = baseline or seconds
        print(f"  {label:<45} {seconds:7.1f} s   {baseline / seconds:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
