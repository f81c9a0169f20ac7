"""Tables and summaries of the depth chapter (chapters/depth.qmd).

Besides the tables, this module holds the small summaries the chapter's prose
quotes (per-layer factors, first/last ratios, and verdicts such as "learned"
or "the error vanishes"), so that every sentence is computed from a result.
Every verdict over seeds goes through :mod:`analysis.stats`.
``analysis.plots.depth`` uses the same summaries for its figures.

A result of ``analysis.experiments.depth`` holds ``runs``: one record per
architecture and seed with ``depth``, ``activation``, ``initializer``,
``normalization``, ``seed``, ``history`` (per evaluation: ``step``, ``loss``,
``accuracy``, ``val_loss``, ``val_accuracy``), ``test_loss``,
``test_accuracy``, and per Dense layer (input side first, the output layer
last) at two stages, ``initial`` and ``trained`` (after the snapshot steps):
``<stage>_gradients``, max |∂ℒ/∂W| of the kernel, and ``<stage>_errors``,
max |∂ℒ/∂b| of the bias just before the activation, which is the error δ
(eq-bias-grad).

Ratios and per-layer factors use only the hidden-to-hidden layers (Dense
layers 2 to D of a network with D hidden layers): the first layer reads 784
pixels rather than a hidden layer, and the output layer has the softmax.
"""

from __future__ import annotations

import numpy as np

from analysis import stats, symbolic
from analysis.tables import markdown

ACTIVATION_TITLES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid", "lecun": "LeCun"}
INITIALIZER_TITLES = {"glorot_uniform": "Glorot uniform", "he_normal": "He normal",
                      "glorot_x16": "Glorot × 4 std"}
NORMALIZATION_TITLES = {None: "none", "batch": "batch norm", "layer": "layer norm"}
_NORMALIZATION_PHRASES = {None: "no normalization", "batch": "batch normalization",
                          "layer": "layer normalization"}
STAGES = ("initial", "trained")
#: What is measured per layer, and the record field that holds it.
QUANTITIES = {"error": "errors", "weight": "gradients"}

#: A network "learned" when its test accuracy beats always guessing the most
#: common digit by at least this much (judged over seeds, see :func:`learning`).
TRAINS_MARGIN = 0.10

#: The error "vanishes" when the first hidden-to-hidden layer's largest error
#: is below this fraction of the last hidden layer's (two orders of magnitude).
VANISHING_RATIO = 1e-2


# --------------------------------------------------------------------------
# Selecting runs


def select(result, **where) -> list[dict]:
    """The runs whose fields equal ``where`` (e.g. ``depth=40, activation="relu"``)."""
    chosen = [run for run in result["runs"] if all(run.get(k) == v for k, v in where.items())]
    if not chosen:
        raise ValueError(f"{result.experiment} has no runs with {where}")
    return chosen


def architectures(result) -> list[dict]:
    """The distinct (depth, activation, initializer, normalization), in run order."""
    seen = []
    for run in result["runs"]:
        key = {k: run[k] for k in ("depth", "activation", "initializer", "normalization")}
        if key not in seen:
            seen.append(key)
    return seen


def values(result, metric: str, **where) -> list[float]:
    """``metric`` (``test_accuracy``, ``test_loss``, …) of every selected run, in seed order."""
    return [float(run[metric]) for run in sorted(select(result, **where), key=lambda r: r["seed"])]


def record_key(stage: str, quantity: str = "error") -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; choose from {', '.join(QUANTITIES)}")
    return f"{stage}_{QUANTITIES[quantity]}"


def layer_values(result, stage: str, quantity: str = "error", **where) -> np.ndarray:
    """Array (seeds, Dense layers) of max |δ| (``error``) or max |∂ℒ/∂W|
    (``weight``), output layer last, seeds in order."""
    key = record_key(stage, quantity)
    runs = sorted(select(result, **where), key=lambda r: r["seed"])
    return np.array([run[key] for run in runs], dtype=float)


# --------------------------------------------------------------------------
# Per-seed measurements


def geometric_mean(numbers, axis=None):
    """The geometric mean; 0 where any number is exactly 0 (a layer that
    received no gradient at all, e.g. behind a layer of inactive ReLUs)."""
    numbers = np.asarray(numbers, dtype=float)
    if np.any(numbers < 0):
        raise ValueError("a geometric mean needs non-negative numbers")
    with np.errstate(divide="ignore"):
        means = np.exp(np.mean(np.log(numbers), axis=axis))
    return float(means) if np.ndim(means) == 0 else means


def _hidden_to_hidden(grid: np.ndarray) -> np.ndarray:
    """Dense layers 2..D of (seeds, D + 1) values."""
    if grid.shape[1] < 4:
        raise ValueError("ratios over hidden-to-hidden layers need at least three hidden layers")
    return grid[:, 1:-1]


def seed_ratios(result, stage: str, quantity: str = "error", **where) -> np.ndarray:
    """Per seed: layer 2's value over the last hidden layer's (how much of it
    survives the trip back through the hidden-to-hidden layers). 0 when layer 2
    received nothing; NaN (undefined) when the last hidden layer received nothing."""
    span = _hidden_to_hidden(layer_values(result, stage, quantity, **where))
    first, last = span[:, 0], span[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(last > 0, first / np.where(last > 0, last, 1.0), np.nan)


def first_to_last(result, stage: str, quantity: str = "error", **where) -> float:
    """The geometric mean over seeds of :func:`seed_ratios` (NaN seeds left out;
    NaN when every seed is undefined)."""
    ratios = seed_ratios(result, stage, quantity, **where)
    ratios = ratios[np.isfinite(ratios)]
    return geometric_mean(ratios) if ratios.size else float("nan")


def seed_factors(result, stage: str, quantity: str = "error", **where) -> np.ndarray:
    """Per seed: the average factor per hidden-to-hidden layer on the way
    back, ``ratio ** (1 / (D - 2))`` for D hidden layers."""
    transitions = layer_values(result, stage, quantity, **where).shape[1] - 3
    return seed_ratios(result, stage, quantity, **where) ** (1.0 / transitions)


def seed_log_ratios(result, stage: str, quantity: str = "error", **where) -> np.ndarray:
    """log10 of :func:`seed_ratios`; a ratio of exactly 0 (nothing arrived)
    counts as the smallest float, not as a missing run."""
    ratios = seed_ratios(result, stage, quantity, **where)
    return np.log10(np.where(ratios == 0, np.finfo(float).tiny, ratios))


def layers_without_gradient(result, stage: str, **where) -> int:
    """How many layers received exactly zero weight gradient on at least one seed."""
    return int(np.sum(np.any(layer_values(result, stage, "weight", **where) == 0, axis=0)))


def last_hidden(result, stage: str, quantity: str = "error", **where) -> float:
    """The last hidden layer's largest value, geometric mean over seeds."""
    return geometric_mean(layer_values(result, stage, quantity, **where)[:, -2])


def check_comparable(first, second) -> None:
    """Raise ValueError unless two results were trained under the same protocol."""
    shared = ("data", "steps", "snapshot_steps", "seeds", "gradient_batch", "units",
              "learning_rate", "batch_size", "loss")
    one, two = first.provenance["config"], second.provenance["config"]
    different = [key for key in shared if one.get(key) != two.get(key)]
    if different:
        raise ValueError(f"{first.experiment} and {second.experiment} differ in "
                         f"{', '.join(different)}; recompute them under one profile")


# --------------------------------------------------------------------------
# Verdicts (through analysis.stats)


def against(per_seed, level: float) -> stats.Comparison:
    """Per-seed values against a fixed level (a paired comparison with a
    constant): ``wins`` counts seeds above it, ``losses`` seeds below."""
    per_seed = np.asarray(per_seed, dtype=float)
    return stats.compare(per_seed, np.full(per_seed.shape, float(level)), names=("value", "level"))


def position(comparison: stats.Comparison, above: str, below: str, level: str) -> str:
    """A verb phrase for where per-seed values lie relative to a level, for
    every outcome of :func:`against`: all runs undefined, one seed, a tie, a
    clear position either way, or no clear position. ``above`` and ``below``
    are verb phrases too ("learned", "vanishes")."""
    c = comparison
    dropped = (f"; {c.dropped} undefined run{'s' if c.dropped != 1 else ''} left out"
               if c.dropped else "")
    if c.outcome == "empty":
        return f"is undefined on every seed (no finite value to compare with {level})"
    if c.outcome == "tie":
        return f"sits exactly at {level} on every seed{dropped}"
    if c.outcome == "single":
        return f"{above if c.difference > 0 else below} on the single seed (no interval){dropped}"
    counts = f"{c.wins} of {c.n} seeds above, {c.losses} below"
    if c.outcome == "unclear":
        return f"is not clearly above or below {level} ({counts}){dropped}"
    return f"{above if c.outcome == 'a_better' else below} ({counts}){dropped}"


def learning(result, chance: float, **where) -> stats.Comparison:
    """Test accuracy per seed against chance + :data:`TRAINS_MARGIN`."""
    return against(values(result, "test_accuracy", **where), chance + TRAINS_MARGIN)


def learned(result, **where) -> str | None:
    """"yes" / "no" when the seeds decide whether the network learned, else None."""
    outcome = learning(result, result["chance_accuracy"], **where)
    if outcome.outcome == "single":
        return "yes" if outcome.difference > 0 else "no"
    return {"a_better": "yes", "b_better": "no"}.get(outcome.outcome)


def learning_phrase(result, **where) -> str:
    level = f"chance + {100 * TRAINS_MARGIN:.0f} points"
    return position(learning(result, result["chance_accuracy"], **where), "learned",
                    "stayed at or near chance", level)


def vanishing(result, stage: str, quantity: str = "error", **where) -> stats.Comparison:
    """log10 first/last ratio per seed against log10 :data:`VANISHING_RATIO`."""
    return against(seed_log_ratios(result, stage, quantity, **where), np.log10(VANISHING_RATIO))


def vanishes(result, stage: str, quantity: str = "error", **where) -> bool | None:
    """True/False when the seeds decide (a single seed decides alone), else None."""
    c = vanishing(result, stage, quantity, **where)
    if c.outcome == "single":
        return c.difference < 0
    return {"b_better": True, "a_better": False}.get(c.outcome)


def vanishing_phrase(result, stage: str, quantity: str = "error", **where) -> str:
    return position(vanishing(result, stage, quantity, **where), "does not vanish", "vanishes",
                    f"the threshold {VANISHING_RATIO:.0e}")


def factor_phrase(result, activation: str, stage: str = "initial", **where) -> str:
    """The error's per-layer factor against the activation's sup f′ (SymPy)."""
    supremum = float(symbolic.activation(activation).derivative_supremum)
    factors = seed_factors(result, stage, "error", activation=activation, **where)
    level = f"sup f′ = {supremum:.3g}"
    return position(against(factors, supremum), f"lies above {level}", f"lies below {level}", level)


# --------------------------------------------------------------------------
# Tables


def title(activation: str) -> str:
    return ACTIVATION_TITLES.get(activation, activation)


def scientific(value: float) -> str:
    """1.2e-05; exactly 0 as "0 (no gradient)"; NaN as "undefined"."""
    if np.isnan(value):
        return "undefined"
    return "0 (no gradient)" if value == 0 else f"{value:.1e}"


def _accuracy(result, **where) -> str:
    return stats.summary(values(result, "test_accuracy", **where)).text(digits=1, percent=True)


def scores(result):
    """Test loss and accuracy, mean ± std over seeds, per depth and activation."""
    rows = []
    for item in architectures(result):
        where = {"depth": item["depth"], "activation": item["activation"]}
        rows.append((item["depth"], title(item["activation"]),
                     stats.summary(values(result, "test_loss", **where)).text(),
                     _accuracy(result, **where)))
    note = (f"Mean ± sample std over seeds {result.provenance['config']['seeds']}; "
            f"{result['sizes']['test']:,} test images. Data: {result.data_source()}")
    return markdown(rows, ("Hidden layers", "Activation", "Test loss", "Test accuracy"),
                    note=note, align=("right", "left", "right", "right"))


def decay(result, stage: str = "initial"):
    """Per depth and activation: the error's and the weight gradient's factor
    per hidden-to-hidden layer, the error's first/last ratio, and sup f′."""
    rows = []
    for item in architectures(result):
        if item["depth"] < 3:
            continue
        where = {"depth": item["depth"], "activation": item["activation"]}
        supremum = symbolic.activation(item["activation"]).derivative_supremum
        rows.append((item["depth"], title(item["activation"]),
                     stats.summary(seed_factors(result, stage, "error", **where)).text(),
                     f"{float(supremum):.3g}",
                     stats.summary(seed_factors(result, stage, "weight", **where)).text(),
                     scientific(first_to_last(result, stage, "error", **where))))
    headers = ("Hidden layers", "Activation", "Error δ: factor per layer", "sup f′",
               "Weight gradient: factor per layer", "δ: layer 2 / last hidden")
    note = ("Largest |δ| (= |∂ℒ/∂b|) and |∂ℒ/∂W| of each layer on one fixed mini-batch of "
            f"{result['sizes']['batch']} training images, over the hidden-to-hidden layers "
            "(layer 2 to the last hidden layer); factors are mean ± std over seeds, the ratio a "
            f"geometric mean; sup f′ from SymPy. Data: {result.data_source()}")
    return markdown(rows, headers, note=note,
                    align=("right", "left", "right", "right", "right", "right"))


def remedy_rows(grid, remedies) -> list[dict]:
    """The deepest networks of ``grid`` (baseline) and every remedy, per activation."""
    check_comparable(grid, remedies)
    depth = remedies.provenance["config"]["depth"]
    rows = []
    for activation in ("relu", "tanh", "sigmoid"):
        variants = [(grid, {"depth": depth, "activation": activation})]
        variants += [(remedies, item) for item in architectures(remedies)
                     if item["activation"] == activation]
        for source, where in variants:
            run = select(source, **where)[0]
            rows.append({"result": source, "where": where, "activation": activation,
                         "initializer": run["initializer"],
                         "normalization": run["normalization"],
                         "baseline": source is grid})
    return rows


def _initializer_title(name: str) -> str:
    return INITIALIZER_TITLES.get(name, name)


def remedies(grid, remedies_result):
    """Baseline and remedies at the largest depth: the error's ratios and test scores."""
    snapshot = remedies_result.provenance["config"]["snapshot_steps"]
    table = []
    for row in remedy_rows(grid, remedies_result):
        source, where = row["result"], row["where"]
        table.append((title(row["activation"]), _initializer_title(row["initializer"]),
                      NORMALIZATION_TITLES[row["normalization"]],
                      scientific(first_to_last(source, "initial", **where)),
                      scientific(first_to_last(source, "trained", **where)),
                      _accuracy(source, **where)))
    headers = ("Activation", "Initialisation", "Normalization", "δ ratio, initial",
               f"δ ratio, after {snapshot:,} steps", "Test accuracy")
    config = remedies_result.provenance["config"]
    note = (f"{config['depth']} hidden layers of {config['units']} units. δ ratio: the largest "
            "error of layer 2 over that of the last hidden layer (geometric mean over seeds). "
            "Rows with no normalization and Glorot uniform initialisation are the baseline "
            "networks of the first experiment; Glorot × 4 std is VarianceScaling(scale=16, "
            "mode=\"fan_avg\"). Chance level (most common digit): "
            f"{100 * remedies_result['chance_accuracy']:.1f}%. Data: {remedies_result.data_source()}")
    return markdown(table, headers, note=note,
                    align=("left", "left", "left", "right", "right", "right"))


# --------------------------------------------------------------------------
# Sentences computed from the numbers (the prose never types a result)


def join(names) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'; an empty list -> 'none'."""
    names = list(names)
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _markdown(lines):
    from IPython.display import Markdown

    return Markdown("\n".join(lines))


def depths_of(result) -> list[int]:
    return sorted({a["depth"] for a in architectures(result)})


def observations(result):
    """Bullet points on the test scores (@tbl-depth-scores): who learned at
    each depth, and what going deeper did to each activation."""
    depths, lines = depths_of(result), []
    for depth in depths:
        names = [a["activation"] for a in architectures(result) if a["depth"] == depth]
        verdicts = "; ".join(f"{title(n)} {learning_phrase(result, depth=depth, activation=n)}"
                             for n in names)
        lines.append(f"- **{depth} hidden layers**: {verdicts}.")
    if len(depths) > 1:
        shallow, deep = depths[0], depths[-1]
        for name in dict.fromkeys(a["activation"] for a in architectures(result)):
            # Different depths start from different weights: unpaired.
            comparison = stats.compare(
                values(result, "test_accuracy", depth=deep, activation=name),
                values(result, "test_accuracy", depth=shallow, activation=name),
                names=(f"the {deep}-layer network", f"the {shallow}-layer network"), paired=False)
            lines.append(f"- **{title(name)}**: {comparison.sentence('test accuracy')}.")
    return _markdown(lines)


def decay_verdicts(result, depth: int):
    """Bullet points for @tbl-depth-decay at one depth: the error's factor per
    layer against sup f′, and whether the error vanishes."""
    lines = []
    for item in architectures(result):
        if item["depth"] != depth:
            continue
        name = item["activation"]
        where = {"depth": depth, "activation": name}
        error = stats.summary(seed_factors(result, "initial", "error", **where))
        weight = stats.summary(seed_factors(result, "initial", "weight", **where))
        lines.append(
            f"- **{title(name)}**: the error changes by a factor of {error.text()} per layer, "
            f"which {factor_phrase(result, name, depth=depth)}; the weight gradient by "
            f"{weight.text()}. From the last hidden layer back to layer 2 the error "
            f"{vanishing_phrase(result, 'initial', **where)}.")
    return _markdown(lines)


def dead_layers(result, depth: int, activation: str = "relu"):
    """A sentence on layers without any gradient after the snapshot, or nothing."""
    where = {"depth": depth, "activation": activation}
    dead = layers_without_gradient(result, "trained", **where)
    if not dead:
        return _markdown([])
    steps = result.provenance["config"]["snapshot_steps"]
    return _markdown([
        f"After {steps:,} steps of training, {dead} of the {depth + 1} layers of the "
        f"{depth}-layer {title(activation)} networks received no gradient at all (on at least "
        "one seed): a ReLU unit that is inactive on every image of the mini-batch passes back "
        "no error, and a layer with no active unit cuts the gradient off for every layer below it."])


def lecun_comparison(grid, lecun):
    """Bullet points per depth: LeCun's activation against tanh in test
    accuracy, paired by seed (the same seed gives both networks the same
    initial weights and batches)."""
    check_comparable(grid, lecun)
    lines = []
    for depth in depths_of(lecun):
        accuracy = stats.compare(values(lecun, "test_accuracy", depth=depth, activation="lecun"),
                                 values(grid, "test_accuracy", depth=depth, activation="tanh"),
                                 names=("the LeCun network", "the tanh network"))
        lines.append(f"- **{depth} hidden layers**: {accuracy.sentence('test accuracy')}.")
    return _markdown(lines)


def growth_phrase(result, activation: str, **where) -> str:
    """Does the error grow or shrink towards the input (per-layer factor
    against 1, per seed)?"""
    factors = seed_factors(result, "initial", "error", activation=activation, **where)
    return position(against(factors, 1.0), "grows towards the input",
                    "shrinks towards the input", "a factor of 1 per layer")


def remedy_verdicts(grid, remedies_result):
    """Bullet points for every row of @tbl-depth-remedies: does the error still
    vanish at initialisation, does the network learn, and how does it compare
    with the baseline (paired where the initial weights are the same)."""
    lines = []
    rows = remedy_rows(grid, remedies_result)
    for row in rows:
        source, where = row["result"], row["where"]
        name = (f"{title(row['activation'])} with {_initializer_title(row['initializer'])} "
                f"initialisation and {_NORMALIZATION_PHRASES[row['normalization']]}")
        text = (f"- {name}: at initialisation the error {vanishing_phrase(source, 'initial', **where)}; "
                f"the network {learning_phrase(source, **where)}")
        if not row["baseline"]:
            base = next(r for r in rows if r["baseline"] and r["activation"] == row["activation"])
            comparison = stats.compare(
                values(source, "test_accuracy", **where),
                values(base["result"], "test_accuracy", **base["where"]),
                names=("this network", "the baseline"),
                paired=row["initializer"] == base["initializer"])
            text += f"; {comparison.sentence('test accuracy')}"
        lines.append(text + ".")
    return _markdown(lines)


def _grouped(names, verdicts) -> dict:
    groups = {}
    for name, verdict in zip(names, verdicts):
        groups.setdefault(verdict, []).append(title(name))
    return groups


def _listing(groups: dict, phrases: dict) -> str:
    """Join ``phrases[verdict].format(names=...)`` over the verdict groups present."""
    parts = [phrase.format(names=join(groups[key])) for key, phrase in phrases.items()
             if groups.get(key)]
    return "; ".join(parts) if parts else "no network could be judged"


def synthesis(grid, lecun, remedies_result):
    """The chapter's summary: one bullet per question, each a list of
    verdicts computed above and a pointer to where they are shown."""
    depths = depths_of(grid)
    deep = depths[-1]
    names = [a["activation"] for a in architectures(grid) if a["depth"] == deep]
    learn_phrases = {"yes": "{names} learned", "no": "{names} did not learn",
                     None: "the seeds do not decide for {names}"}
    lines = []
    for depth in depths:
        groups = _grouped(names, [learned(grid, depth=depth, activation=n) for n in names])
        lines.append(f"- **{depth} hidden layers** (@tbl-depth-scores): "
                     f"{_listing(groups, learn_phrases)}.")
    vanishing_groups = _grouped(names, [vanishes(grid, "initial", depth=deep, activation=n)
                                        for n in names])
    lines.append(f"- **The error at initialisation, {deep} hidden layers** (@tbl-depth-decay): "
                 + _listing(vanishing_groups, {True: "it vanishes for {names}",
                                               False: "it does not vanish for {names}",
                                               None: "the seeds do not decide for {names}"}) + ".")
    hidden = []
    for name in names:
        where = {"depth": deep, "activation": name}
        comparison = stats.compare(seed_factors(grid, "initial", "weight", **where),
                                   seed_factors(grid, "initial", "error", **where))
        hidden.append(comparison.outcome == "a_better")
    masked = [title(n) for n, flag in zip(names, hidden) if flag]
    lines.append("- **The weight gradient as a witness** (@tbl-depth-decay): "
                 + (f"for {join(masked)}, the weight gradient's factor per layer is clearly "
                    "higher than the error's, so the weight gradient understates how much of the "
                    "error is lost" if masked else
                    "for no activation is the weight gradient's factor per layer clearly higher "
                    "than the error's") + ".")
    outcomes = {}
    for depth in depths_of(lecun):
        comparison = stats.compare(values(lecun, "test_accuracy", depth=depth, activation="lecun"),
                                   values(grid, "test_accuracy", depth=depth, activation="tanh"))
        outcomes.setdefault(comparison.outcome, []).append(str(depth))
    words = {"a_better": "higher at {names} hidden layers", "b_better": "lower at {names}",
             "tie": "the same at {names}", "unclear": "not clearly different at {names}",
             "single": "from a single seed only at {names}", "empty": "not comparable at {names}"}
    lines.append("- **LeCun's activation against tanh** (@sec-depth-lecun): its test accuracy is "
                 + "; ".join(words[key].format(names=join(found)) for key, found in outcomes.items())
                 + ".")
    rows = remedy_rows(grid, remedies_result)
    fixed = [row for row in rows if not row["baseline"]
             and vanishes(row["result"], "initial", **row["where"]) is False]
    learners = [row for row in rows if learned(row["result"], **row["where"]) == "yes"]

    def describe(row):
        return (f"{title(row['activation'])} with {_initializer_title(row['initializer'])} and "
                f"{_NORMALIZATION_PHRASES[row['normalization']]}")

    lines.append(f"- **Remedies at {remedies_result.provenance['config']['depth']} hidden layers** "
                 f"(@tbl-depth-remedies): the error clearly does not vanish at initialisation "
                 f"with {join([describe(r) for r in fixed])}; the networks that learned: "
                 f"{join([describe(r) for r in learners])}.")
    return _markdown(lines)
