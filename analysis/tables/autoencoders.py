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
    """Where ``method`` beats ``other`` on mean score, in words."""
    levels = [level for level, scores in zip(result["levels"], result["scores"])
              if mean(scores[method][metric]) > mean(scores[other][metric])]
    if not levels:
        return f"at none of the levels"
    if len(levels) == len(result["levels"]):
        return "at every level"
    return "at level" + ("s " if len(levels) > 1 else " ") + ", ".join(f"{x:g}" for x in levels)


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
    return (f"{100 * share:.0f}% of all code entries were zero: the codes are not especially sparse, "
            "so dead units are not what breaks random codes here")


def distance(codes, kind: str = "uniform") -> str:
    """How far noise codes are from real ones, against real codes' own spacing."""
    ratio = codes["noise_nearest"][kind] / codes["real_nearest"]
    place = "far outside the region real digits occupy" if ratio > 2 else "not far from real codes"
    return f"{times(ratio)} that distance, {place}"
