"""The front page lists exactly the book's chapters, read from _quarto.yml."""

from __future__ import annotations

import yaml

from analysis.book import chapter_list
from analysis.config import PROJECT_ROOT


def test_every_listed_chapter_is_on_the_front_page_with_its_label():
    chapters = [path for path in yaml.safe_load((PROJECT_ROOT / "_quarto.yml").read_text())
                ["book"]["chapters"] if path.startswith("chapters/")]
    lines = chapter_list().data.splitlines()
    assert len(lines) == len(chapters)
    for line, path in zip(lines, chapters):
        label = line.removeprefix("- @")
        assert f"{{#{label}}}" in (PROJECT_ROOT / path).read_text().splitlines()[0]
