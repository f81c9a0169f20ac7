"""Tables and computed sentences of the autoencoder sections."""

from __future__ import annotations

import numpy as np

from analysis import stats
from analysis.plots.autoencoders import LABELS
from analysis.tables import markdown


def at_level(result, level: float) -> dict:
    """The per-image scores at ``level`` (a level the profile scored)."""
    levels = np.asarray(result["levels"], dtype=float)
    matches = np.flatnonzero(np.isclose(levels, level))
    if matches.size == 0:
        raise ValueError(f"level {level} was not scored; scored: {', '.join(f'{x:g}' for x in levels)}")
    return result["scores"][int(matches[0])]


def mean(values) -> float:
    return stats.summary(values).mean


def quality_table(result):
    rows = []
    for level, scores in zip(result["levels"], result["scores"]):
        rows.append([f"{level:g}"] + [f"{mean(scores[m]['psnr']):.1f} / {mean(scores[m]['ssim']):.2f}"
                                      for m in result["methods"]])
    headers = ["level"] + [LABELS[m] for m in result["methods"]]
    count = len(result["scores"][0]["noisy"]["psnr"])
    return markdown(rows, headers, note=f"Mean PSNR (dB) / mean SSIM over {count:,} test digits against the "
                                        f"clean digit. Data: {result.data_source('mnist')}.")


def image_comparison(result, a: str, b: str, metric: str = "psnr", level: float = 0.4) -> str:
    """a against b at one level, paired over the test digits (each digit gets the same noise).

    stats.compare words its verdict over "seeds"; here the pairs are test
    digits, scored by one trained model, so the sentence says so.
    """
    scores = at_level(result, level)
    comparison = stats.compare(scores[a][metric], scores[b][metric], names=(LABELS[a], LABELS[b]))
    unit = "PSNR (dB)" if metric == "psnr" else "SSIM"
    text = comparison.sentence(unit, percent=False, digits=2 if metric == "psnr" else 2)
    return text.replace(" seeds", " test digits")


def best_at(result, metric: str = "psnr") -> list[str]:
    """Per level, the method with the highest mean score."""
    return [max(result["methods"], key=lambda m: mean(scores[m][metric])) for scores in result["scores"]]


def crossover(result, method: str, other: str, metric: str = "psnr") -> str:
    """The scored levels at which ``method``'s mean score is above ``other``'s, in words."""
    levels = [level for level, scores in zip(result["levels"], result["scores"])
              if mean(scores[method][metric]) > mean(scores[other][metric])]
    if not levels:
        return "at none of the scored levels"
    if len(levels) == len(result["levels"]):
        return "at every scored level"
    named = [f"{x:g}" for x in levels]
    if len(named) == 1:
        return f"only at level {named[0]}"
    return f"at levels {', '.join(named[:-1])} and {named[-1]}"


GENERATORS = {"real": "real test digits", "noise_uniform": "decoded uniform noise",
              "noise_normal": "decoded normal noise", "gaussian": "class Gaussians, decoded",
              "vae": "VAE, decoded N(0, I)"}


def generation_table(result):
    rows = []
    for key, label in GENERATORS.items():
        verdict = result["verdicts"][key]
        rows.append([label, f"{100 * verdict['good']:.0f}%", f"{verdict['classes']}",
                     f"{verdict['entropy']:.2f}", f"{verdict['spread']:.2f}"])
    headers = ["images", "judged good", "classes seen", "class entropy (bits)", "mean distance"]
    note = (f"Judged good: the judge CNN gives the intended class (any class for noise and the VAE) a "
            f"probability of at least {result['confidence']:g}. Classes seen and their entropy (at most "
            f"log2 10 = 3.32 bits): how the judge's predicted classes spread. Mean distance: the average "
            f"Euclidean distance between two images of the set (pixels in [0, 1]). "
            f"Data: {result.data_source('mnist')}.")
    return markdown(rows, headers, note=note)


def times(value: float) -> str:
    return f"{value:.1f}×" if np.isfinite(value) else "an undefined multiple"


def variation(generated) -> str:
    """How much decoded noise varies, against real digits, in words (pixel-wise std across samples)."""
    real = generated["real_pixel_std"]
    ratios = {kind: value / real for kind, value in generated["noise_pixel_std"].items()}
    worst = max(ratios.values())
    if not np.isfinite(worst):
        return "the variation of the decoded images could not be measured"
    if worst < 0.5:
        how = "differ far less from one another than real digits do"
    elif worst < 0.9:
        how = "differ less from one another than real digits do"
    else:
        how = "differ about as much as real digits do, or more, so this copy does not reproduce the failure"
    return (f"the decoded images {how}: their pixel-wise standard deviation across samples is "
            f"{generated['noise_pixel_std']['uniform']:.3g} (uniform) and "
            f"{generated['noise_pixel_std']['normal']:.3g} (normal), against {real:.3g} over real test digits")


def sparsity(codes) -> str:
    """What the share of zero code entries says, in words."""
    share = codes["zero_share"]
    if share >= 0.5:
        return (f"{100 * share:.0f}% of all code entries were zero: the codes of real digits are sparse, "
                "so most directions of a dense random code are ones the decoder never saw used")
    return (f"{100 * share:.0f}% of all code entries were zero: apart from the dead units the codes are "
            "not especially sparse, so sparsity alone does not explain the failure")


def distance(codes, kind: str = "uniform") -> str:
    """How far noise codes are from real ones, against real codes' own spacing."""
    ratio = codes["noise_nearest"][kind] / codes["real_nearest"]
    if ratio > 1.2:
        place = "farther from the real codes than they are from one another"
    elif ratio < 0.8:
        place = "closer to real codes than real codes are to one another"
    else:
        place = "about as close as real codes are to one another"
    return f"{times(ratio)} that distance: {place}"


def scale(codes) -> str:
    """The noise codes' length against real codes' length, in words."""
    ratios = {kind: value / codes["real_norm"] for kind, value in codes["noise_norm"].items()}
    if max(ratios.values()) < 0.5:
        verdict = "the noise codes are far shorter than real ones: they sit near the origin, away from the codes digits produce"
    elif min(ratios.values()) > 2:
        verdict = "the noise codes are far longer than real ones"
    else:
        verdict = "length alone does not set the noise codes apart"
    return (f"a real code is {codes['real_norm']:.3g} long on average, a uniform noise code "
            f"{codes['noise_norm']['uniform']:.3g} ({ratios['uniform']:.2f} times as long) and a normal one "
            f"{codes['noise_norm']['normal']:.3g} ({ratios['normal']:.2f} times): {verdict}")


def top_share(verdict) -> str:
    """The judge's most common class for a set of images and its share, in words."""
    counts = np.asarray(verdict["counts"])
    if counts.sum() == 0:
        return "no images were judged"
    top = int(counts.argmax())
    return f"{100 * counts[top] / counts.sum():.0f}% to the digit {top}"
