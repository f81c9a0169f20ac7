"""What every chapter's hidden first cell loads (the r4ds pattern).

``from analysis.book import *`` gives a chapter the active profile, a plotting
style shared by all figures, and helpers that turn results into Markdown:
the data callout that must appear whenever an offline default or stand-in
was used, and number formatting for inline expressions.
"""

from __future__ import annotations

from IPython.display import Markdown

from analysis import profiles

__all__ = ["profile", "Markdown", "data_callout", "percent", "number", "setup", "chapter_list"]

profile = profiles.current()


def setup() -> None:
    """One look for every figure; called once by the chapter's first cell."""
    import matplotlib
    import matplotlib.pyplot as plt
    import seaborn as sns

    # Figures appear because a cell returns them, once; in interactive mode
    # the inline backend would show every open figure a second time. The
    # backend switches interactive mode on when it first starts, so start it
    # (by opening and closing a figure) before switching it off.
    plt.close(plt.figure())
    plt.ioff()
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.figsize": (7, 4), "figure.dpi": 110,
                                "savefig.bbox": "tight", "axes.titlesize": "medium"})


def data_callout(*results) -> Markdown:
    """A warning callout naming every substitute dataset the results used.

    Empty when all data were real, so a chapter can always call it. Use it in
    a cell with ``#| output: asis``-free display: it returns Markdown.
    """
    seen = {}
    for result in results:
        for record in result.substitutes:
            seen[record["dataset"]] = record
    if not seen:
        return Markdown("")
    items = "\n".join(
        f"- **{r['dataset']}**: {r['source_name']}. To use the real data: {r['how_to_get_real']}"
        for r in seen.values()
    )
    return Markdown(
        "::: {.callout-warning}\n## Not the real dataset\n"
        "Some results in this chapter were computed on substitute data, so their "
        "numbers are not comparable with published ones:\n\n" + items + "\n:::\n"
    )


def percent(value: float, digits: int = 1) -> str:
    """0.9731 -> '97.3%' (for inline expressions)."""
    return f"{100 * float(value):.{digits}f}%"


def number(value: float, digits: int = 3) -> str:
    """A float with thousands separators for integers."""
    value = float(value)
    return f"{int(value):,}" if value.is_integer() else f"{value:.{digits}g}"


def chapter_list() -> Markdown:
    """A bullet per chapter of ``_quarto.yml``: its cross-reference.

    Read from the book's configuration, so the front page never promises a
    chapter that does not exist or forgets one that does.
    """
    import re

    import yaml

    from analysis.config import PROJECT_ROOT

    book = yaml.safe_load((PROJECT_ROOT / "_quarto.yml").read_text(encoding="utf-8"))["book"]
    items = []
    for entry in book["chapters"]:
        path = entry if isinstance(entry, str) else entry.get("href", "")
        if not path.startswith("chapters/"):
            continue
        heading = next(line for line in (PROJECT_ROOT / path).read_text(encoding="utf-8").splitlines()
                       if line.startswith("# "))
        match = re.match(r"# (.*?)\s*\{#(sec-[\w-]+)", heading)
        if match:
            # A chapter's cross-reference shows its number and title.
            items.append(f"- @{match.group(2)}")
    return Markdown("\n".join(items))
