"""The rendered PDF, checked page by page with poppler's command-line tools.

``pdftotext`` gives each page's text (titles, captions, references, no
unresolved ``??``); ``pdftotext -bbox-layout`` gives every word's box, which
shows text outside the page's text block (a table wider than the page, or
running into the footer) and words printed over each other (table columns too
narrow for their content). Each check returns a list of problems.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("pdftotext", "pdfinfo", "pdftoppm")
POINTS_PER_CM = 72 / 2.54
TOLERANCE = 1.5        # points: rounding in poppler's boxes


def tools_missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def page_count(pdf: Path) -> int:
    match = re.search(r"^Pages:\s+(\d+)", _run("pdfinfo", str(pdf)), re.MULTILINE)
    return int(match.group(1))


def page_texts(pdf: Path) -> list[str]:
    """The text of each page, in reading order (pdftotext separates pages by \\f)."""
    pages = _run("pdftotext", "-layout", str(pdf), "-").split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def squash(text: str) -> str:
    """Only lower-case letters and digits: immune to line breaks, hyphenation
    and the spacing differences between Markdown and typeset text."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def plain(markdown: str) -> str:
    """A caption or title without the parts typesetting changes: inline code
    and math, cross-references, citations, emphasis and attributes."""
    text = re.sub(r"`[^`]*`", " ", markdown)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[?-?@[\w:-]+\]?", " ", text)
    return text


def missing_phrases(pdf_text: str, phrases: dict[str, str], words: int = 8) -> list[str]:
    """Names of ``phrases`` (name -> Markdown) whose first words are not in the text.

    Only the leading run of plain words is compared: a caption's later part
    may hold a number or a formula that typesets differently.
    """
    haystack = squash(pdf_text)
    missing = []
    for name, markdown in phrases.items():
        leading = re.split(r"\s{2,}", plain(markdown).strip())[0].split()[:words]
        if not squash(" ".join(leading)):
            continue
        if squash(" ".join(leading)) not in haystack:
            missing.append(f"{name}: {' '.join(leading)!r} not found in the PDF")
    return missing


def is_contents(page: str) -> bool:
    """A page of the table of contents (its entries end in dot leaders)."""
    return len(re.findall(r"(?:\. ){3,}", page)) >= 3


def start_page(pages: list[str], title: str, after: int = 1) -> int | None:
    """The first page (0-based, from ``after``; the cover is page 0) whose top
    lines hold ``title``, skipping the table of contents."""
    key = squash(plain(title))
    for number in range(after, len(pages)):
        top = "".join(pages[number].strip().splitlines()[:4])
        if key and key in squash(top) and not is_contents(pages[number]):
            return number
    return None


# --------------------------------------------------------------------------
# Word boxes


@dataclass
class Word:
    page: int
    text: str
    x0: float
    y0: float
    x1: float
    y1: float

    def overlap(self, other: "Word") -> float:
        """Shared area as a fraction of the smaller box."""
        width = min(self.x1, other.x1) - max(self.x0, other.x0)
        height = min(self.y1, other.y1) - max(self.y0, other.y0)
        if width <= 0 or height <= 0:
            return 0.0
        smaller = min((self.x1 - self.x0) * (self.y1 - self.y0),
                      (other.x1 - other.x0) * (other.y1 - other.y0))
        return width * height / smaller if smaller > 0 else 0.0


def words(pdf: Path) -> tuple[list[Word], tuple[float, float]]:
    """Every word's box (points, origin top left) and the page size."""
    xml = _run("pdftotext", "-bbox-layout", str(pdf), "-")
    xml = re.sub(r"<!DOCTYPE[^>]*>", "", xml)
    root = ElementTree.fromstring(xml)
    found, size = [], (0.0, 0.0)
    for number, page in enumerate(root.iter("{http://www.w3.org/1999/xhtml}page")):
        size = (float(page.get("width")), float(page.get("height")))
        for word in page.iter("{http://www.w3.org/1999/xhtml}word"):
            found.append(Word(number, word.text or "", *(float(word.get(k)) for k in
                                                         ("xMin", "yMin", "xMax", "yMax"))))
    return found, size


# The page layout of Quarto's typst book format (the orange-book template,
# 0.7.1): A4 with margins of 3 cm left, right and top and 2.5 cm at the bottom.
# test_render checks these against the PDF's own body text before using them.
MARGIN_CM = {"left": 3.0, "right": 3.0, "top": 3.0, "bottom": 2.5}
# Section numbers sit in the left margin by design; page numbers in the footer.
NUMBERING = re.compile(r"^[\dA-Z]+(\.\d+)*\.?$")
OVERHANG = 2.5        # points: typst lets punctuation hang into the margin
DESCENT = 4.0         # points: a last line's descenders reach below the block
# A chapter's title is set in a box that reaches into the right margin by
# design; its words are the only ones this tall (body text is about 11 pt).
HEADING = 18.0


def text_block(page_size: tuple[float, float]) -> dict[str, float]:
    """The text block's edges in points (origin top left)."""
    width, height = page_size
    margin = {side: cm * POINTS_PER_CM for side, cm in MARGIN_CM.items()}
    return {"left": margin["left"], "right": width - margin["right"],
            "top": margin["top"], "bottom": height - margin["bottom"]}


def body_edges(all_words: list[Word]) -> tuple[float, float]:
    """The most common left and right ends of text lines: the block's edges
    as the PDF's justified paragraphs show them."""
    from collections import Counter

    lines: dict[tuple[int, float], list[Word]] = {}
    for word in all_words:
        lines.setdefault((word.page, round(word.y1)), []).append(word)
    lefts = Counter(round(min(w.x0 for w in line)) for line in lines.values())
    rights = Counter(round(max(w.x1 for w in line)) for line in lines.values())
    return float(lefts.most_common(1)[0][0]), float(rights.most_common(1)[0][0])


def outside_text_block(all_words: list[Word], block: dict[str, float],
                       first_page: int = 1) -> list[str]:
    """Words of the body that stick out left or right of the text block, and
    words below it (in the footer) other than the page number. The cover
    (page 0), the running header above the block and chapter titles are not
    body text."""
    problems = []
    for word in all_words:
        if word.page < first_page or word.y1 <= block["top"] or word.y1 - word.y0 > HEADING:
            continue
        if word.y1 > block["bottom"] + DESCENT:
            if not NUMBERING.match(word.text):
                problems.append(f"page {word.page + 1}: {word.text!r} in the footer "
                                f"(bottom {word.y1:.0f} > {block['bottom']:.0f})")
        elif word.x1 > block["right"] + OVERHANG or (
                word.x0 < block["left"] - OVERHANG and not NUMBERING.match(word.text)):
            problems.append(f"page {word.page + 1}: {word.text!r} outside the text block "
                            f"(x {word.x0:.0f}-{word.x1:.0f}, block "
                            f"{block['left']:.0f}-{block['right']:.0f})")
    return problems


def overprinted(all_words: list[Word], least: float = 0.4) -> list[str]:
    """Pairs of words printed over each other (sharing ``least`` of the smaller
    box). Only words of three or more letters or digits count, so a formula's
    accents and sub/superscripts, which overlap by design, are left out."""
    candidates = [w for w in all_words if len(re.sub(r"\W", "", w.text)) >= 3]
    rows: dict[tuple[int, int], list[Word]] = {}
    for word in candidates:
        rows.setdefault((word.page, int(word.y0 // 10)), []).append(word)
    problems = []
    for (page, row), members in rows.items():
        neighbours = members + rows.get((page, row + 1), [])
        for i, first in enumerate(members):
            for second in neighbours[i + 1:]:
                if first.overlap(second) >= least:
                    problems.append(f"page {page + 1}: {first.text!r} and {second.text!r} "
                                    f"overprint each other")
    return problems


def render_page(pdf: Path, page: int, target: Path, dpi: int = 60) -> Path:
    """One page (1-based) as ``target`` .png."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stem = target.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page),
                    "-singlefile", str(pdf), str(stem)], check=True, capture_output=True)
    return stem.with_suffix(".png")
