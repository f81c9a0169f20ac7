"""Tables and sentences of the digit-recognizer chapter (chapters/digits.qmd).

One model is scored on three test sets. Each accuracy carries a 95% Wilson
interval over the test digits (scipy's ``binomtest``): the sampling error of
a finite test set, not the spread over training runs (the chapter trains the
one model it exports). Photos and clean digits are the same digits, so that
comparison counts the digits whose verdict changed, in each direction.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from analysis.tables import budget_note, count, markdown

SETS = ("mnist", "sklearn", "photo", "clean")
SET_NAMES = {
    "mnist": "MNIST test digits",
    "sklearn": "scikit-learn's digits (other writers)",
    "photo": "MNIST test digits as photos, after the pipeline",
    "clean": "the same digits, clean",
}
SOURCES = {
    "mnist": lambda result: result.data_source("mnist"),
    "sklearn": lambda result: "scikit-learn load_digits (UCI optical digits), preprocessed to MNIST form",
    "photo": lambda result: f"{result.data_source('mnist')}, test digits made into photos",
    "clean": lambda result: result.data_source("mnist"),
}


def labels_and_predictions(result, which: str) -> tuple[np.ndarray, np.ndarray]:
    label_key = {"mnist": "mnist_labels", "sklearn": "sklearn_labels",
                 "photo": "photo_labels", "clean": "photo_labels"}[which]
    probabilities = result[f"{which}_probabilities"]
    return np.asarray(result[label_key]), np.asarray(probabilities).argmax(axis=1)


def accuracy(result, which: str) -> float:
    labels, predicted = labels_and_predictions(result, which)
    return float(np.mean(labels == predicted)) if len(labels) else float("nan")


def interval(result, which: str, confidence: float = 0.95) -> tuple[float, float]:
    labels, predicted = labels_and_predictions(result, which)
    test = scipy_stats.binomtest(int(np.sum(labels == predicted)), len(labels))
    found = test.proportion_ci(confidence_level=confidence, method="wilson")
    return float(found.low), float(found.high)


def confusion(result, which: str) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    labels, predicted = labels_and_predictions(result, which)
    return confusion_matrix(labels, predicted, labels=list(range(10)))


def accuracies(result):
    """The model's accuracy on each test set, with its interval."""
    rows = []
    for which in SETS:
        labels, _ = labels_and_predictions(result, which)
        low, high = interval(result, which)
        rows.append((SET_NAMES[which], f"{len(labels):,}", f"{accuracy(result, which):.1%}",
                     f"{low:.1%} – {high:.1%}"))
    return markdown(rows, ("Test set", "Digits", "Accuracy", "95% interval (Wilson)"),
                    note=f"One model, trained on {result.data_source('mnist')}.",
                    align=("left", "right", "right", "right"))


def photo_changes(result) -> tuple[int, int]:
    """Digits right when clean and wrong as photos, and the reverse."""
    labels, photo = labels_and_predictions(result, "photo")
    _, clean = labels_and_predictions(result, "clean")
    return int(np.sum((clean == labels) & (photo != labels))), int(np.sum((clean != labels) & (photo == labels)))


def agreement(result) -> float:
    """Share of the photos read as the same digit as their clean version."""
    _, photo = labels_and_predictions(result, "photo")
    _, clean = labels_and_predictions(result, "clean")
    return float(np.mean(photo == clean))


def photo_sentence(result) -> str:
    """What turning digits into photos did, for every outcome (ties included)."""
    lost, gained = photo_changes(result)
    total = len(labels_and_predictions(result, "photo")[0])
    clean, photo = accuracy(result, "clean"), accuracy(result, "photo")
    if lost == gained == 0:
        return (f"every one of the {total:,} digits got the same verdict as a photo as clean "
                f"(accuracy {clean:.1%} both ways)")
    # An exact two-sided sign test on the digits whose verdict changed (McNemar's).
    p_value = scipy_stats.binomtest(lost, lost + gained).pvalue
    direction = ("lost accuracy" if photo < clean else "gained accuracy" if photo > clean
                 else "kept the same accuracy")
    evidence = ("a difference the sign test does not tell apart from chance"
                if p_value >= 0.05 else f"unlikely by chance (exact sign test, p = {p_value:.2g})")
    return (f"as photos the digits {direction}: {photo:.1%} against {clean:.1%} clean; "
            f"{lost:,} of {total:,} digits were read correctly only when clean and "
            f"{gained:,} only as photos, {evidence}")


def worst_confusions(result, which: str = "sklearn", count: int = 3) -> list[tuple[int, int, int]]:
    """The most frequent (true, predicted, count) mistakes, most frequent first."""
    matrix = confusion(result, which).astype(int)
    np.fill_diagonal(matrix, 0)
    order = np.argsort(matrix, axis=None, kind="stable")[::-1][:count]   # ties: larger index first
    pairs = [(int(i // 10), int(i % 10), int(matrix.flat[i])) for i in order]
    return [pair for pair in pairs if pair[2] > 0]


def confusion_sentence(result, which: str = "sklearn") -> str:
    """Markdown: the most frequent mistakes, or that there were none."""
    pairs = worst_confusions(result, which)
    if not pairs:
        return "The model misread none of these digits."
    described = [f"{true} read as {predicted} ({n:,} {'time' if n == 1 else 'times'})"
                 for true, predicted, n in pairs]
    joined = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " and " + described[-1]
    return f"The most frequent mistakes: {joined}."


def per_digit_accuracy(result, which: str) -> np.ndarray:
    matrix = confusion(result, which)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def shape_measures(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per 28 × 28 digit: ink share (pixels above half intensity, a measure of
    stroke thickness) and the bounding box's width over its height."""
    images = np.asarray(images, dtype=float)
    images = images / 255.0 if images.max() > 1 else images
    ink = (images > 0.5).mean(axis=(1, 2))
    widths = (images.max(axis=1) > 0.05).sum(axis=1)
    heights = (images.max(axis=2) > 0.05).sum(axis=1)
    return {"ink share": ink, "width / height": widths / np.maximum(heights, 1)}


def failure_profile(result, which: str = "sklearn") -> list[dict]:
    """For each shape measure: its mean over misread and over correctly read
    digits (means, because the box's width and height are whole pixels and
    medians tie), and a two-sided Mann-Whitney test of the difference."""
    labels, predicted = labels_and_predictions(result, which)
    measures = shape_measures(result["sklearn_images"])
    wrong = labels != predicted
    rows = []
    for name, values in measures.items():
        if wrong.all() or not wrong.any():
            rows.append({"measure": name, "wrong": float(np.mean(values[wrong])) if wrong.any() else np.nan,
                         "right": float(np.mean(values[~wrong])) if (~wrong).any() else np.nan,
                         "p": np.nan})
            continue
        test = scipy_stats.mannwhitneyu(values[wrong], values[~wrong], alternative="two-sided")
        rows.append({"measure": name, "wrong": float(np.mean(values[wrong])),
                     "right": float(np.mean(values[~wrong])), "p": float(test.pvalue)})
    return rows


def failure_sentence(result, which: str = "sklearn") -> str:
    """Markdown: how misread digits differ in shape from correctly read ones."""
    rows = failure_profile(result, which)
    if any(np.isnan(row["p"]) for row in rows):
        return ("With no digit misread (or none read correctly) there is nothing to set the "
                "misread digits' shapes against.")
    formats = {"ink share": "{:.1%}", "width / height": "{:.3f}"}
    parts = []
    for row in rows:
        wrong, right = (formats[row["measure"]].format(row[k]) for k in ("wrong", "right"))
        relation = ("larger than" if row["wrong"] > row["right"] else
                    "smaller than" if row["wrong"] < row["right"] else "equal to")
        verdict = (f"a difference unlikely by chance (Mann-Whitney, p = {row['p']:.2g})" if row["p"] < 0.05
                   else f"not a difference the Mann-Whitney test tells apart from chance (p = {row['p']:.2g})")
        parts.append(f"their mean {row['measure']} is {relation} that of the digits read "
                     f"correctly ({wrong} against {right}), {verdict}")
    return ("The ink share (pixels above half intensity, which grows with stroke thickness) and the "
            "width-to-height ratio of the digit's box compare as follows: "
            + "; ".join(parts) + ".")


def weakest_digits(result, which: str = "sklearn", count: int = 3) -> str:
    """The digits read correctly least often, with their accuracies, as words."""
    accuracies = per_digit_accuracy(result, which)
    present = [d for d in range(10) if np.isfinite(accuracies[d])]
    order = sorted(present, key=lambda d: (accuracies[d], d))[:count]
    described = [f"{d} ({accuracies[d]:.1%})" for d in order]
    joined = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " and " + described[-1]
    return f"The digits read correctly least often were {joined}"


def budget_callout(profile, result) -> str:
    """What the profile's budget allows (the smoke caveat only under smoke)."""
    config = result.provenance["config"]
    sizes = result["sizes"]
    lines = [f"This copy was built with the **{profile.name}** profile: one model, "
             f"{count(config['epochs'], 'epoch')} on {sizes['train']:,} training digits "
             f"({sizes['validation']:,} for validation), scored on {sizes['test']:,} MNIST test digits, "
             f"{result['sklearn_count']:,} of scikit-learn's digits and {result['photo_count']:,} photos."]
    if profile.name == "smoke":
        lines.append("That is far too little training for a good recognizer: under the `smoke` profile "
                     "the numbers only show that the code runs.")
    return budget_note(lines)
