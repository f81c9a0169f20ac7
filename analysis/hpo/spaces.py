"""Search spaces: what each hyper-parameter may take, checked before any training.

A space maps a name to either a list of values (a categorical or discrete
dimension) or a ``{"low": a, "high": b, "log": bool}`` range. The random pool
and keras-tuner's searches draw from the same description.
"""

from __future__ import annotations

import math

import numpy as np

from analysis.errors import UserError

#: The original random-search exercise's dimensions (batch size, units,
#: learning rate, activation, dropout), with ranges of our own choosing.
POOL_SPACE = {
    "batch_size": [32, 64, 128, 256],
    "units": [16, 32, 64, 128, 256],
    "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    "activation": ["relu", "tanh", "sigmoid"],
    "dropout": {"low": 0.0, "high": 0.8, "log": False},
}

#: keras-tuner's comparison: the three dimensions that matter most in the pool.
TUNER_SPACE = {
    "units": [16, 32, 64, 128, 256],
    "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    "dropout": {"low": 0.0, "high": 0.8, "log": False},
}


def check(space: dict) -> dict:
    """The space itself, or a one-line UserError naming the empty dimension."""
    if not space:
        raise UserError("the search space is empty; give at least one hyper-parameter, "
                        "e.g. {'units': [32, 64]} or {'dropout': {'low': 0.0, 'high': 0.5}}")
    for name, values in space.items():
        if isinstance(values, dict):
            low, high = values.get("low"), values.get("high")
            if low is None or high is None or not float(low) < float(high):
                raise UserError(f"hyper-parameter {name!r} has no values: its range needs low < high, "
                                f"got {values}")
            if values.get("log") and float(low) <= 0:
                raise UserError(f"hyper-parameter {name!r} is log-scaled, so its low end must be > 0")
        elif not isinstance(values, (list, tuple)) or len(values) == 0:
            raise UserError(f"hyper-parameter {name!r} has no values; give a non-empty list "
                            "or a {'low': ..., 'high': ...} range")
    return space


def sample(space: dict, count: int, seed: int) -> list[dict]:
    """``count`` independent configurations, uniform per dimension (log-uniform
    where the range says so)."""
    check(space)
    generator = np.random.default_rng(seed)
    configurations = []
    for _ in range(count):
        configuration = {}
        for name, values in space.items():
            if isinstance(values, dict):
                low, high = float(values["low"]), float(values["high"])
                if values.get("log"):
                    configuration[name] = float(math.exp(generator.uniform(math.log(low), math.log(high))))
                else:
                    configuration[name] = float(generator.uniform(low, high))
            else:
                value = values[int(generator.integers(len(values)))]
                configuration[name] = value.item() if hasattr(value, "item") else value
        configurations.append(configuration)
    return configurations


def encode(space: dict, configuration: dict) -> np.ndarray:
    """A configuration as a point of the unit cube, as keras-tuner encodes it:
    a range linearly (or in log), a list by the centre of its value's slot."""
    point = []
    for name, values in space.items():
        value = configuration[name]
        if isinstance(values, dict):
            low, high = float(values["low"]), float(values["high"])
            if values.get("log"):
                point.append((math.log(value) - math.log(low)) / (math.log(high) - math.log(low)))
            else:
                point.append((value - low) / (high - low))
        else:
            point.append((list(values).index(value) + 0.5) / len(values))
    return np.asarray(point, dtype=float)
