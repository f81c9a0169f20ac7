"""Tables and summaries of the depth chapter (chapters/depth.qmd).

Besides the tables, this module holds the small summaries the chapter's prose
quotes (means over seeds, gradient ratios, verdicts such as "trains" or "the
gradient vanishes"), so that every sentence is computed from a result.
``analysis.plots.depth`` uses the same summaries for its figures.

A result of ``analysis.experiments.depth`` holds ``runs``: one record per
architecture and seed with ``depth``, ``activation``, ``initializer``,
``normalization``, ``seed``, ``history``, ``test_loss``, ``test_accuracy``,
and the per-layer ``initial_gradients`` / ``trained_gradients`` (max |dL/dW|
of each Dense kernel, input side first, the output layer last).
"""

from __future__ import annotations

import numpy as np

from analysis import symbolic
from analysis.tables import markdown, mean_std

ACTIVATION_TITLES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid", "lecun": "LeCun"}
INITIALIZER_TITLES = {"glorot_uniform": "Glorot uniform", "he_normal": "He normal"}
NORMALIZATION_TITLES = {None: "none", "batch": "batch norm", "layer": "layer norm"}
_NORMALIZATION_PHRASES = {None: "no normalization", "batch": "batch normalization",
                          "layer": "layer normalization"}
STAGES = {"initial": "initial_gradients", "trained": "trained_gradients"}

#: A network "trains" when its mean test accuracy beats always guessing the
#: most common digit by at least this much.
TRAINS_MARGIN = 0.10

#: The gradient "vanishes" when the first hidden layer's largest gradient is
#: below this fraction of the last hidden layer's (two orders of magnitude).
VANISHING_RATIO = 1e-2


# --------------------------------------------------------------------------
# Selecting and summarising runs


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
    """``metric`` (``test_accuracy``, ``test_loss``, …) of every selected run."""
    return [float(run[metric]) for run in select(result, **where)]


def mean(result, metric: str, **where) -> float:
    return float(np.mean(values(result, metric, **where)))


def final(result, history_key: str, **where) -> float:
    """The mean over seeds of a history entry's last epoch (e.g. ``val_accuracy``)."""
    return float(np.mean([run["history"][history_key][-1] for run in select(result, **where)]))


def stage_key(stage: str) -> str:
    try:
        return STAGES[stage]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}") from None


def layer_gradients(result, stage: str, **where) -> np.ndarray:
    """Array (seeds, layers) of max |dL/dW| per Dense layer, output layer last."""
    return np.array([run[stage_key(stage)] for run in select(result, **where)], dtype=float)


def geometric_mean(numbers, axis=None):
    """The geometric mean; 0 where any number is exactly 0 (a layer that
    received no gradient at all, e.g. behind a layer of inactive ReLUs)."""
    numbers = np.asarray(numbers, dtype=float)
    if np.any(numbers < 0):
        raise ValueError("a geometric mean needs non-negative numbers")
    with np.errstate(divide="ignore"):
        means = np.exp(np.mean(np.log(numbers), axis=axis))
    return float(means) if np.ndim(means) == 0 else means


def first_to_last(result, stage: str, **where) -> float:
    """Max gradient of the first hidden layer over that of the last hidden
    layer (geometric mean over seeds): how much of it survives the trip back.

    The geometric mean of ratios is the ratio of geometric means; it is 0
    when some seed's first layer received no gradient, and NaN (undefined)
    when the last hidden layer received none either.
    """
    grads = layer_gradients(result, stage, **where)
    first, last = geometric_mean(grads[:, 0]), geometric_mean(grads[:, -2])
    return first / last if last > 0 else float("nan")


def layers_without_gradient(result, stage: str, **where) -> int:
    """How many layers received exactly zero gradient on at least one seed."""
    return int(np.sum(np.any(layer_gradients(result, stage, **where) == 0, axis=0)))


def per_layer_factor(result, stage: str, **where) -> float:
    """The average factor by which the max gradient changes per hidden layer
    on the way back: ``first_to_last ** (1 / (hidden layers - 1))``."""
    depth = layer_gradients(result, stage, **where).shape[1] - 1
    if depth < 2:
        raise ValueError("a per-layer factor needs at least two hidden layers")
    return first_to_last(result, stage, **where) ** (1.0 / (depth - 1))


def vanishes(result, stage: str, **where) -> bool:
    return first_to_last(result, stage, **where) < VANISHING_RATIO


def trains(result, **where) -> bool:
    return mean(result, "test_accuracy", **where) >= result["chance_accuracy"] + TRAINS_MARGIN


def ranking(result, depth: int) -> list[str]:
    """The activations at ``depth`` from best to worst mean test accuracy."""
    names = [a["activation"] for a in architectures(result) if a["depth"] == depth]
    return sorted(names, key=lambda name: -mean(result, "test_accuracy", depth=depth,
                                                activation=name))


def check_comparable(first, second) -> None:
    """Raise ValueError unless two results were trained under the same protocol."""
    shared = ("data", "epochs", "snapshot_epochs", "seeds", "gradient_batch", "units",
              "learning_rate", "batch_size", "loss")
    one, two = first.provenance["config"], second.provenance["config"]
    different = [key for key in shared if one.get(key) != two.get(key)]
    if different:
        raise ValueError(f"{first.experiment} and {second.experiment} differ in "
                         f"{', '.join(different)}; recompute them under one profile")


# --------------------------------------------------------------------------
# Tables


def title(activation: str) -> str:
    return ACTIVATION_TITLES.get(activation, activation)


def scores(result):
    """Test loss and accuracy, mean ± std over seeds, per depth and activation."""
    rows = []
    for item in architectures(result):
        where = {"depth": item["depth"], "activation": item["activation"]}
        rows.append((item["depth"], title(item["activation"]),
                     mean_std(values(result, "test_loss", **where)),
                     mean_std(values(result, "test_accuracy", **where), digits=1, percent=True)))
    note = (f"Mean ± sample std over seeds {result.provenance['config']['seeds']}; "
            f"{result['sizes']['test']:,} test images. Data: {result.data_source()}")
    return markdown(rows, ("Hidden layers", "Activation", "Test loss", "Test accuracy"),
                    note=note, align=("right", "left", "right", "right"))


def scientific(value: float) -> str:
    """1.2e-05; exactly 0 as "0 (no gradient)"; NaN as "undefined"."""
    if np.isnan(value):
        return "undefined"
    return "0 (no gradient)" if value == 0 else f"{value:.1e}"


def decay(result, stage: str = "initial"):
    """Per depth and activation: last hidden layer's max gradient, first/last
    ratio, measured per-layer factor, and the activation's sup f' (SymPy)."""
    rows = []
    for item in architectures(result):
        where = {"depth": item["depth"], "activation": item["activation"]}
        grads = layer_gradients(result, stage, **where)
        supremum = symbolic.derivative_supremum(item["activation"])
        rows.append((item["depth"], title(item["activation"]),
                     scientific(geometric_mean(grads[:, -2])),
                     scientific(first_to_last(result, stage, **where)),
                     f"{per_layer_factor(result, stage, **where):.3f}",
                     f"{float(supremum):.3g}"))
    headers = ("Hidden layers", "Activation", "Max gradient, last hidden layer",
               "First / last hidden", "Per-layer factor", "sup f′")
    note = ("Geometric means over seeds of the largest |∂L/∂W| on one fixed mini-batch of "
            f"{result['sizes']['batch']} training images; sup f′ from SymPy. "
            f"Data: {result.data_source()}")
    return markdown(rows, headers, note=note, align=("right", "left", "right", "right", "right", "right"))


def remedy_rows(grid, remedies) -> list[dict]:
    """The deepest networks of ``grid`` (baseline) and every remedy, per activation."""
    check_comparable(grid, remedies)
    depth = remedies.provenance["config"]["depth"]
    rows = []
    for activation in [a for a in ("relu", "tanh", "sigmoid")]:
        variants = [(grid, {"depth": depth, "activation": activation})]
        variants += [(remedies, item) for item in architectures(remedies)
                     if item["activation"] == activation]
        for source, where in variants:
            run = select(source, **where)[0]
            rows.append({"result": source, "where": where, "activation": activation,
                         "initializer": run["initializer"],
                         "normalization": run["normalization"]})
    return rows


def remedies(grid, remedies_result):
    """Baseline and remedies at the largest depth: gradient ratios and test scores."""
    snapshot = remedies_result.provenance["config"]["snapshot_epochs"]
    table = []
    for row in remedy_rows(grid, remedies_result):
        source, where = row["result"], row["where"]
        table.append((title(row["activation"]), INITIALIZER_TITLES.get(row["initializer"], row["initializer"]),
                      NORMALIZATION_TITLES[row["normalization"]],
                      scientific(first_to_last(source, "initial", **where)),
                      scientific(first_to_last(source, "trained", **where)),
                      mean_std(values(source, "test_accuracy", **where), digits=1, percent=True)))
    headers = ("Activation", "Initialisation", "Normalization", "First / last hidden, initial",
               f"First / last hidden, after {snapshot} epochs", "Test accuracy")
    note = (f"{remedies_result.provenance['config']['depth']} hidden layers of "
            f"{remedies_result.provenance['config']['units']} units; rows with no normalization and "
            "Glorot uniform initialisation are the baseline networks of the first experiment. "
            f"Chance level (most common digit): {100 * remedies_result['chance_accuracy']:.1f}%. "
            f"Data: {remedies_result.data_source()}")
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


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def observations(result):
    """Bullet points on the test scores: who learns at each depth, and what
    depth does to each activation."""
    from IPython.display import Markdown

    depths = sorted({a["depth"] for a in architectures(result)})
    lines = []
    for depth in depths:
        order = ranking(result, depth)
        learners = [title(n) for n in order if trains(result, depth=depth, activation=n)]
        stuck = [title(n) for n in order if not trains(result, depth=depth, activation=n)]
        scores_text = ", ".join(
            f"{title(n)} {_percent(mean(result, 'test_accuracy', depth=depth, activation=n))}"
            for n in order)
        sentence = f"- **{depth} hidden layers** (best to worst: {scores_text}): "
        if not stuck:
            sentence += "every activation learned."
        elif not learners:
            sentence += "no activation learned."
        else:
            verb = "was" if len(stuck) == 1 else "were"
            sentence += f"{join(learners)} learned; {join(stuck)} {verb} at or near chance."
        lines.append(sentence)
    if len(depths) > 1:
        shallow, deep = depths[0], depths[-1]
        for name in dict.fromkeys(a["activation"] for a in architectures(result)):
            before = mean(result, "test_accuracy", depth=shallow, activation=name)
            after = mean(result, "test_accuracy", depth=deep, activation=name)
            change = "fell" if after < before else "rose"
            lines.append(f"- **{title(name)}**: going from {shallow} to {deep} hidden layers, the "
                         f"mean test accuracy {change} from {_percent(before)} to {_percent(after)}.")
    return Markdown("\n".join(lines))


def lecun_comparison(grid, lecun):
    """Bullet points: final validation accuracy and loss of LeCun vs tanh per depth."""
    from IPython.display import Markdown

    check_comparable(grid, lecun)
    lines = []
    for depth in sorted({run["depth"] for run in lecun["runs"]}):
        ours = {key: final(lecun, key, depth=depth, activation="lecun")
                for key in ("val_accuracy", "val_loss")}
        theirs = {key: final(grid, key, depth=depth, activation="tanh")
                  for key in ("val_accuracy", "val_loss")}
        leader = "LeCun's activation" if ours["val_accuracy"] > theirs["val_accuracy"] else "tanh"
        lines.append(
            f"- **{depth} hidden layers**: after the last epoch, validation accuracy "
            f"{_percent(ours['val_accuracy'])} with LeCun's activation against "
            f"{_percent(theirs['val_accuracy'])} with tanh (loss {ours['val_loss']:.3f} against "
            f"{theirs['val_loss']:.3f}); {leader} is ahead.")
    return Markdown("\n".join(lines))


def remedy_verdicts(grid, remedies_result):
    """Bullet points: for every row of the remedies table, does the gradient
    still vanish at initialisation, and does the network train?"""
    from IPython.display import Markdown

    lines = []
    for row in remedy_rows(grid, remedies_result):
        source, where = row["result"], row["where"]
        ratio = first_to_last(source, "initial", **where)
        vanish = ratio < VANISHING_RATIO
        learns = trains(source, **where)
        name = (f"{title(row['activation'])} with "
                f"{INITIALIZER_TITLES.get(row['initializer'], row['initializer'])} initialisation "
                f"and {_NORMALIZATION_PHRASES[row['normalization']]}")
        gradient = ("the gradient vanishes" if vanish else "the gradient does not vanish")
        verdict = "and the network trains" if learns else "and the network does not train"
        if vanish and learns:
            verdict = "yet the network trains"
        if not vanish and not learns:
            verdict = "yet the network does not train"
        if ratio == 0:
            gradient = "the first layer receives no gradient at all"
        lines.append(f"- {name}: {gradient} (first/last ratio {scientific(ratio)}) {verdict} "
                     f"(test accuracy {_percent(mean(source, 'test_accuracy', **where))}).")
    return Markdown("\n".join(lines))


def last_hidden(result, stage: str, **where) -> float:
    """The last hidden layer's largest gradient, geometric mean over seeds."""
    return geometric_mean(layer_gradients(result, stage, **where)[:, -2])


def lecun_delta_equation(label: str):
    """@eq-hidden-delta with LeCun's slope, printed from SymPy's derivation
    (written in t = tanh(2 z / 3), element-wise), as a labelled display."""
    import re

    from IPython.display import Markdown

    derivation = symbolic.activation("lecun")
    standalone_x = re.compile(r"(?<![\\A-Za-z])x(?![A-Za-z])")
    definition = standalone_x.sub(r"\\mathbf{z}^{l}", derivation.latex_auxiliary_definition)
    latex = (r"\boldsymbol{\delta}^{l} = \left(\left(W^{l+1}\right)^{\top} \boldsymbol{\delta}^{l+1}"
             r"\right) \odot \left(" + derivation.latex_derivative_in_auxiliary + r"\right), \qquad "
             r"t = " + definition + r", \qquad f'(x) \in " + derivation.latex_derivative_range)
    return Markdown(f"$$\n{latex}\n$$ {{#{label}}}")
