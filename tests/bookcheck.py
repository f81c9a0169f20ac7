"""The book check: what a ``quarto render`` would catch, without Quarto.

Quarto cannot be installed everywhere the tests run (it downloads itself while
installing), so these functions check a book's sources the way a render would:

1. every chapter listed in ``_quarto.yml`` exists, and every ``.qmd`` under
   ``chapters/`` is listed;
2. every cross-reference ``@fig-``/``@tbl-``/``@eq-``/``@sec-`` resolves to
   exactly one label;
3. every citation is a key of ``references.bib``, whose entries all parse;
4. every document's Python cells run, in order, in a fresh Jupyter kernel at
   the project root (as Quarto's Jupyter engine runs them), inline
   ``{python}`` expressions included; ``fig-`` cells produce an image and
   ``tbl-`` cells a table;
5. no inline expression evaluates to blank text (Quarto then prints the
   expression's source in the page) or to Markdown markup such as ``**`` (an
   inline result is escaped, so the reader would see the asterisks).

Each check returns a list of problems (strings); an empty list means "fine".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CROSSREF_KINDS = ("fig", "tbl", "eq", "sec")
FENCE = re.compile(r"^```+\s*\{(\w+)([^}]*)\}\s*$")
PLAIN_FENCE = re.compile(r"^```+")
LABEL_ATTRIBUTE = re.compile(r"\{\{?#((?:fig|tbl|eq|sec)-[\w-]+)[^}]*\}")
LABEL_KEYWORD = re.compile(r"""label\s*=\s*["']((?:fig|tbl|eq|sec)-[\w-]+)["']""")
CROSSREF = re.compile(r"(?<![\w@.])@((?:fig|tbl|eq|sec)-[\w-]*\w)")
CITATION = re.compile(r"(?<![\w@.\\])-?@([A-Za-z_][\w:.#$%&+?<>~/-]*)")
INLINE_CODE = re.compile(r"`\{python\}\s*([^`]+)`")
ANY_INLINE_CODE = re.compile(r"`[^`]*`")


@dataclass
class Cell:
    """A fenced code block of a .qmd file."""

    language: str
    source: str          # without the fence lines
    options: dict
    line: int            # line of the opening fence (1-based)


@dataclass
class Document:
    path: Path
    prose: list[tuple[int, str]] = field(default_factory=list)   # (line, text) outside code
    cells: list[Cell] = field(default_factory=list)
    # The reading order of prose and cells: ("prose", index) / ("cell", index).
    order: list[tuple[str, int]] = field(default_factory=list)


def _cell_options(source: str) -> dict:
    lines = [line[3:] for line in source.splitlines() if line.startswith("#| ")]
    try:
        return yaml.safe_load("\n".join(lines)) or {}
    except yaml.YAMLError:
        return {"__invalid__": True}


def parse(path: Path) -> Document:
    """Split a .qmd into prose lines and code cells (the YAML header is prose)."""
    document = Document(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if PLAIN_FENCE.match(lines[index]):
            fence = lines[index][: len(lines[index]) - len(lines[index].lstrip("`"))]
            start = index
            index += 1
            body = []
            while index < len(lines) and not lines[index].startswith(fence):
                body.append(lines[index])
                index += 1
            index += 1  # the closing fence
            source = "\n".join(body)
            if opening:  # an executable cell such as ```{python}
                cell = Cell(opening.group(1), source, _cell_options(source), start + 1)
                document.order.append(("cell", len(document.cells)))
                document.cells.append(cell)
            continue  # plain ``` blocks are verbatim: no labels, refs or citations
        document.order.append(("prose", len(document.prose)))
        document.prose.append((index + 1, lines[index]))
        index += 1
    return document


# --------------------------------------------------------------------------
# 1. Chapters


def _listed(entries) -> list[str]:
    files = []
    for entry in entries or []:
        if isinstance(entry, str):
            files.append(entry)
        elif isinstance(entry, dict):
            if "part" in entry and str(entry["part"]).endswith(".qmd"):
                files.append(entry["part"])
            files.extend(_listed(entry.get("chapters")))
    return files


def book_files(root: Path) -> list[str]:
    """The documents of the book in reading order, as listed in _quarto.yml."""
    config = yaml.safe_load((root / "_quarto.yml").read_text(encoding="utf-8"))
    book = config.get("book", {})
    return _listed(book.get("chapters")) + _listed(book.get("appendices"))


def check_chapters(root: Path) -> list[str]:
    listed = book_files(root)
    problems = [f"_quarto.yml lists {name}, which does not exist"
                for name in listed if not (root / name).is_file()]
    duplicates = {name for name in listed if listed.count(name) > 1}
    problems += [f"_quarto.yml lists {name} more than once" for name in sorted(duplicates)]
    on_disk = sorted(p.relative_to(root).as_posix() for p in (root / "chapters").rglob("*.qmd"))
    problems += [f"{name} is not listed in _quarto.yml's chapters" for name in on_disk
                 if name not in listed]
    return problems


# --------------------------------------------------------------------------
# 2. Cross-references


def _prose_text(document: Document) -> list[tuple[int, str]]:
    """Prose without inline code, plus the cell options (captions hold refs)."""
    texts = [(line, ANY_INLINE_CODE.sub("", text)) for line, text in document.prose]
    for cell in document.cells:
        for offset, text in enumerate(cell.source.splitlines()):
            if text.startswith("#|"):
                texts.append((cell.line + 1 + offset, text))
    return texts


def labels(document: Document) -> list[tuple[str, int]]:
    """Labels the document defines: attributes, cell options, label= in code."""
    found = []
    for line, text in document.prose:
        found += [(match, line) for match in LABEL_ATTRIBUTE.findall(text)]
    for cell in document.cells:
        label = cell.options.get("label")
        if isinstance(label, str) and label.split("-")[0] in CROSSREF_KINDS:
            found.append((label, cell.line))
        code = "\n".join(l for l in cell.source.splitlines() if not l.startswith("#|"))
        found += [(match, cell.line) for match in LABEL_ATTRIBUTE.findall(code)]
        found += [(match, cell.line) for match in LABEL_KEYWORD.findall(code)]
    return found


def check_crossrefs(root: Path) -> list[str]:
    documents = [parse(root / name) for name in book_files(root) if (root / name).is_file()]
    defined: dict[str, list[str]] = {}
    for document in documents:
        for label, line in labels(document):
            defined.setdefault(label, []).append(f"{document.path.name}:{line}")
    problems = [f"label {label} is defined {len(places)} times ({', '.join(places)})"
                for label, places in defined.items() if len(places) > 1]
    for document in documents:
        for line, text in _prose_text(document):
            for reference in CROSSREF.findall(text):
                if reference not in defined:
                    problems.append(f"{document.path.name}:{line}: @{reference} refers to no label")
    return problems


def check_figure_cells(root: Path) -> list[str]:
    """Every fig- cell has a caption and alt text (r4ds convention; accessibility)."""
    problems = []
    for name in book_files(root):
        if not (root / name).is_file():
            continue
        for cell in parse(root / name).cells:
            label = str(cell.options.get("label", ""))
            if label.startswith("fig-"):
                for option in ("fig-cap", "fig-alt"):
                    if not cell.options.get(option):
                        problems.append(f"{name}:{cell.line}: {label} has no {option}")
            if label.startswith("tbl-") and not cell.options.get("tbl-cap"):
                problems.append(f"{name}:{cell.line}: {label} has no tbl-cap")
    return problems


# --------------------------------------------------------------------------
# 3. Citations


def bibliography(root: Path) -> tuple[set[str], list[str]]:
    """The keys of references.bib and the problems parsing it."""
    import bibtexparser

    library = bibtexparser.parse_string((root / "references.bib").read_text(encoding="utf-8"))
    problems = [f"references.bib: cannot parse block at line {block.start_line + 1}: "
                f"{type(block).__name__}" for block in library.failed_blocks]
    return {entry.key for entry in library.entries}, problems


def check_citations(root: Path) -> list[str]:
    keys, problems = bibliography(root)
    for name in book_files(root):
        if not (root / name).is_file():
            continue
        for line, text in _prose_text(parse(root / name)):
            for key in CITATION.findall(text):
                key = key.rstrip(".,:;")
                if key.split("-")[0] in CROSSREF_KINDS or key == "refs":
                    continue
                if key not in keys:
                    problems.append(f"{name}:{line}: citation @{key} is not in references.bib")
    return problems


# --------------------------------------------------------------------------
# 4. Execution


def _evaluates(cell: Cell) -> bool:
    return cell.language == "python" and cell.options.get("eval", True) is not False


# What an inline expression's cell returns: a verdict on its value as Quarto
# would print it (an IPython display object's text, else str()). Blank text
# makes Quarto keep the source; markup is escaped and shows literally.
INLINE_PROBE = """\
__value = ({expression})
__text = str(getattr(__value, "data", __value))
"blank" if not __text.strip() else ("markup" if any(m in __text for m in ("**", "`")) else "ok")"""


def notebook(document: Document):
    """The document as a notebook of its Python cells and inline expressions."""
    import nbformat

    cells, origins = [], []
    for kind, index in document.order:
        if kind == "cell" and _evaluates(document.cells[index]):
            cell = document.cells[index]
            cells.append(nbformat.v4.new_code_cell(cell.source))
            origins.append((cell.line, cell))
        elif kind == "prose":
            line, text = document.prose[index]
            for expression in INLINE_CODE.findall(text):
                cells.append(nbformat.v4.new_code_cell(
                    INLINE_PROBE.format(expression=expression.strip())))
                origins.append((line, expression.strip()))
    return nbformat.v4.new_notebook(cells=cells), origins


def _has_image(outputs) -> bool:
    return any(key.startswith("image/") for out in outputs for key in out.get("data", {}))


def _has_table(outputs) -> bool:
    texts = []
    for out in outputs:
        data = out.get("data", {})
        texts += [data.get("text/markdown", ""), data.get("text/html", ""), out.get("text", "")]
    text = "\n".join(t if isinstance(t, str) else "".join(t) for t in texts)
    return "<table" in text or re.search(r"^\s*\|?\s*:?-{3,}", text, re.MULTILINE) is not None


def execute(root: Path, name: str, timeout: int = 900,
            env: dict[str, str] | None = None) -> list[str]:
    """Run one document's cells in a fresh kernel; returns the problems.

    ``env`` is the kernel's environment (default: this process's), so that
    documents can run side by side under different settings."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    document = parse(root / name)
    nb, origins = notebook(document)
    if not nb.cells:
        return []
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(root)}})
    try:
        client.execute(cwd=str(root), env=dict(os.environ if env is None else env))
    except CellExecutionError as error:
        failed = next((i for i, c in enumerate(nb.cells)
                       if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        where = f"line {origins[failed][0]}" if failed is not None else "unknown cell"
        summary = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        return [f"{name}: cell at {where} raised: {summary}"]
    problems = []
    for cell, (line, origin) in zip(nb.cells, origins):
        if isinstance(origin, str):
            problems += _inline_problems(name, line, origin, cell.outputs)
            continue
        label = str(origin.options.get("label", ""))
        if label.startswith("fig-") and not _has_image(cell.outputs):
            problems.append(f"{name}:{line}: {label} produced no image")
        if label.startswith("tbl-") and not _has_table(cell.outputs):
            problems.append(f"{name}:{line}: {label} produced no table")
    return problems


def _inline_problems(name: str, line: int, expression: str, outputs) -> list[str]:
    verdict = next((out["data"].get("text/plain", "") for out in outputs
                    if out.get("output_type") == "execute_result"), "")
    if "blank" in verdict:
        return [f"{name}:{line}: inline expression `{expression}` is blank, and Quarto "
                "would print its source; put optional text in a cell that returns Markdown"]
    if "markup" in verdict:
        return [f"{name}:{line}: inline expression `{expression}` returns Markdown markup, "
                "which Quarto escapes; put formatted text in a cell that returns Markdown"]
    return []


def static_problems(root: Path) -> list[str]:
    """Checks 1-3 (and captions), which need no kernel."""
    return (check_chapters(root) + check_crossrefs(root) + check_citations(root)
            + check_figure_cells(root))
