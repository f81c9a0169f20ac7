"""Tables for the book: Markdown pipe tables (HTML and Typst both render them).

A chapter cell labelled ``tbl-...`` displays one of these; numbers come from
results, formatted here, never typed into a chapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from IPython.display import Markdown
from tabulate import tabulate


def markdown(rows: Iterable[Sequence], headers: Sequence[str], note: str | None = None,
             align: Sequence[str] | None = None) -> Markdown:
    """A pipe table, optionally followed by a note (e.g. the data's source)."""
    text = tabulate(list(rows), headers=list(headers), tablefmt="pipe",
                    colalign=align, disable_numparse=True)
    if note:
        text += f"\n\n*{note}*"
    return Markdown(text)


def count(number: int, noun: str) -> str:
    """"1 epoch", "5 epochs", "1,000 digits" (for prose and notes)."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def budget_note(lines: Sequence[str]) -> str:
    """A chapter's callout on what its profile's budget allows: ``lines``, the
    sentences about this build, in one paragraph."""
    return "::: {.callout-note}\n## How much these numbers can say\n" + " ".join(lines) + "\n:::\n"


def mean_std(values, digits: int = 3, percent: bool = False, count: bool = True) -> str:
    """"mean ± std (n=k)" over replicates; the std is the sample std (ddof=1).

    ``count=False`` leaves out "(n=k)", for tables whose note gives it.
    """
    values = np.asarray(values, dtype=float) * (100.0 if percent else 1.0)
    unit = "%" if percent else ""
    suffix = f" (n={values.size})" if count else ""
    if values.size < 2:
        return f"{values.mean():.{digits}f}{unit}" + suffix
    return f"{values.mean():.{digits}f}{unit} ± {values.std(ddof=1):.{digits}f}{unit}" + suffix


def environment() -> Markdown:
    """Python and package versions, backend, device, profile and cache location."""
    from analysis import cache, environment as env, profiles

    summary = env.summary()
    rows = [
        ("Active profile", str(profiles.current())),
        ("Keras backend", summary["backend"]),
        ("Device", summary["device"]),
        ("Platform", summary["platform"]),
        ("Result cache", f"`{cache.root()}`"),
    ]
    rows += [(f"`{name}`", version) for name, version in summary["versions"].items()]
    return markdown(rows, ("What", "Value"))


def datasets() -> Markdown:
    """For each dataset: the source actually used, its counts and checksums."""
    from analysis import data

    rows = []
    for name in data.DATASETS:
        record = data.resolve(name)
        checksums = "; ".join(f"`{Path(f.path).name}` {f.sha256[:16]}…" for f in record.files)
        counts = ", ".join(f"{k} {v:,}" for k, v in record.counts.items())
        rows.append((name, record.source_name, record.source_kind, counts, checksums or "—"))
    return markdown(rows, ("Dataset", "Source used", "Kind", "Images", "Files (sha256)"))
