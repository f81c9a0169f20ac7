"""Hyper-parameter searches by name, run in one process or on keras-tuner's chief/worker engine.

* :mod:`searches`   -- the registry (``register``, and ``register_run`` for a
  search that is one run of an experiment, as the HPO chapter's ``hpo.*``
  are) and :func:`run_search`, which an experiment calls instead of
  ``tuner.search``;
* :mod:`addresses`  -- HOST:PORT parsed and checked, loopback by default;
* :mod:`chief`      -- keras-tuner's oracle served over gRPC until the search ends;
* :mod:`worker`     -- keras-tuner's worker loop, bounded in time;
* :mod:`supervisor` -- local workers started, restarted with the same tuner id, stopped;
* :mod:`cli`        -- ``python -m analysis tune``;
* :mod:`examples`   -- the tiny search the tests and the benchmark run.
"""

from analysis.tuning.searches import register, run_search

__all__ = ["register", "run_search"]
