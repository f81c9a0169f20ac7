"""The book rendered by real Quarto (smoke profile), checked in a browser and page by page.

One ``quarto render --profile smoke`` writes the site and the PDF to the smoke
profile's output directory. It runs after every other test (tests/conftest.py)
and reads the result cache the book check filled, so nothing is trained twice.

Without Quarto, Chromium or poppler these tests skip, except when
NNSTUDY_REQUIRE_RENDER=1 (set by .ci/run): then a missing tool is a failure,
so CI can never pass without rendering. Screenshots of every page (desktop and
phone width) and an image of each chapter's first PDF page are written to
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import bookcheck
import conftest
import pdfcheck
import sitecheck
from analysis.config import PROJECT_ROOT

REQUIRED = os.environ.get("NNSTUDY_REQUIRE_RENDER") == "1"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
PDF_PAGES = ARTIFACTS / "pdf-pages"
DOCUMENTS = bookcheck.book_files(PROJECT_ROOT)
MATHJAX_VERSION = "3.2.2"
RENDER_TIMEOUT = 40 * 60

# Lines of the render log that are not problems of the book. ipykernel (not
# Quarto, pandoc or typst) notes that the kernel Quarto starts talks to it over
# localhost TCP; nothing in the book can change that.
BENIGN = (re.compile(r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without "
                     r"encryption\.[^\n]*"),)
# Quarto's progress lines name cells by label ("Cell 3/9: 'fig-error-curve'").
PROGRESS = re.compile(r"Cell \d+/\d+: '[^']*'")
PROBLEM = re.compile(r"\bwarn(ing)?\b|\berror\b|\?\?", re.IGNORECASE)


# The book check executes every document here, before the render: pytest-xdist
# (pytest.ini, --dist loadfile) runs a module in one process, so the render
# reads the results the book check stored in the shared smoke cache
# (tests/conftest.py) and trains nothing again.

# Every chapter runs under both Keras backends. The book's own backend (the
# process's KERAS_BACKEND, set by analysis) goes first: its results are the
# ones the render reuses. The other backend's runs keep a cache of their own,
# so that they can go on while the book renders (they are the render's only
# company in the last minutes of a test run, when the other test modules are
# done) without their entries being taken for something the render trained.
BOOK_BACKEND = os.environ["KERAS_BACKEND"]
BACKENDS = sorted({"jax", "tensorflow"}, key=lambda name: name != BOOK_BACKEND)
# Two kernels at a time: one kernel keeps only one of CI's two cores busy.
BOOK_CHECK_KERNELS = 2


@dataclass
class BookCheck:
    runs: dict          # (document, backend) -> Future of the problems found
    render: Future | None = None     # the render, started once the book's backend is done


def _selected(request, test_name: str) -> list:
    return [item for item in request.session.items if getattr(item, "originalname", "") == test_name]


@pytest.fixture(scope="session")
def book_check(smoke_environment, tmp_path_factory, request):
    """Each selected (document, backend) execution, started in book order on a
    small pool of kernels (the book's backend first); a test waits for its own.
    If the render tests run too, the render starts as soon as every document
    has run under the book's backend."""
    selected = {(item.callspec.params["document"], item.callspec.params["backend"])
                for item in _selected(request, "test_document_executes")}
    other_cache = tmp_path_factory.mktemp("book-cache-other-backend")

    def environment(backend: str) -> dict:
        cache = smoke_environment if backend == BOOK_BACKEND else other_cache
        return {**os.environ, "KERAS_BACKEND": backend, "NNSTUDY_CACHE": str(cache)}

    pool = ThreadPoolExecutor(max_workers=BOOK_CHECK_KERNELS)
    check = BookCheck({(document, backend): pool.submit(bookcheck.execute, PROJECT_ROOT, document,
                                                        env=environment(backend))
                       for backend in BACKENDS for document in DOCUMENTS
                       if (document, backend) in selected})
    renderer = ThreadPoolExecutor(max_workers=1)
    if any("rendered" in item.fixturenames for item in request.session.items):
        book_runs = [run for (_, backend), run in check.runs.items() if backend == BOOK_BACKEND]

        def render_after_book_runs():
            wait(book_runs)
            return render_book(smoke_environment)

        check.render = renderer.submit(render_after_book_runs)
    yield check
    for run in check.runs.values():
        run.cancel()
    pool.shutdown(wait=True)
    renderer.shutdown(wait=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_executes(document, backend, book_check, executed_documents):
    assert book_check.runs[(document, backend)].result() == []
    if backend == BOOK_BACKEND:
        executed_documents.add(document)


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (NNSTUDY_REQUIRE_RENDER=1 makes this a failure)")
    pytest.skip(reason)


def log_problems(log: str) -> list[str]:
    """Every log line with a warning or an error (Quarto, pandoc, typst, Python)."""
    for benign in BENIGN:
        log = benign.sub("", log)
    return [line.strip() for line in log.splitlines()
            if PROBLEM.search(PROGRESS.sub("", line))]


def output_dir(profile: str = "smoke") -> Path:
    config = yaml.safe_load((PROJECT_ROOT / f"_quarto-{profile}.yml").read_text())
    return PROJECT_ROOT / config["project"]["output-dir"]


def html_page(document: str) -> str:
    return str(Path(document).with_suffix(".html"))


@dataclass
class Render:
    site: Path
    log: str
    returncode: int
    seconds: float
    cached_before: set      # result-cache entries before the render
    cached_after: set

    @property
    def pdf(self) -> Path:
        pdfs = sorted(self.site.glob("*.pdf"))
        if len(pdfs) != 1:
            pytest.fail(f"expected one PDF in {self.site}, found {[p.name for p in pdfs]}")
        return pdfs[0]


def cache_entries(cache: Path) -> set[str]:
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_dir()} \
        if cache.is_dir() else set()


def render_book(cache: Path):
    """``quarto render --profile smoke``: both formats in one render (a project
    render ``--to typst`` alone would first empty the HTML output); None if
    there is no Quarto."""
    quarto = shutil.which("quarto")
    if quarto is None:
        return None
    site = output_dir()
    shutil.rmtree(site, ignore_errors=True)
    before = cache_entries(cache)
    started = time.monotonic()
    environment = {name: value for name, value in os.environ.items()
                   if name not in conftest.TEST_ONLY_ENV}
    environment["NNSTUDY_CACHE"] = str(cache)
    result = subprocess.run([quarto, "render", "--profile", "smoke"], cwd=PROJECT_ROOT,
                            env=environment, capture_output=True, text=True,
                            timeout=RENDER_TIMEOUT)
    render = Render(site, result.stdout + result.stderr, result.returncode,
                    time.monotonic() - started, before, cache_entries(cache))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "render.log").write_text(render.log)
    return render


@pytest.fixture(scope="session")
def rendered(smoke_environment, request) -> Render:
    """The render the book check started, or one started now (when only the
    render tests run)."""
    started = request.getfixturevalue("book_check").render \
        if _selected(request, "test_document_executes") else None
    render = started.result() if started is not None else render_book(smoke_environment)
    if render is None:
        unavailable("quarto is not on PATH (see README: Build the book)")
    return render


def test_render_succeeds_without_warnings(rendered):
    assert rendered.returncode == 0, rendered.log[-3000:]
    assert log_problems(rendered.log) == []


def test_render_trains_nothing_the_book_check_trained(rendered, executed_documents):
    """The render reads the results the book check stored: one training per run."""
    if set(DOCUMENTS) - executed_documents:
        pytest.skip("the book check did not execute every document in this session")
    assert rendered.cached_after - rendered.cached_before == set()


def test_render_writes_both_formats(rendered):
    for document in DOCUMENTS:
        assert (rendered.site / html_page(document)).is_file(), document
    assert rendered.pdf.stat().st_size > 0


# --------------------------------------------------------------------------
# The site in Chromium


@pytest.fixture(scope="session")
def mathjax(tmp_path_factory) -> Path:
    """A local MathJax 3 (npm), so the browser never reaches a CDN."""
    if os.environ.get("NNSTUDY_MATHJAX"):
        return Path(os.environ["NNSTUDY_MATHJAX"])
    prefix = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
        "nnstudy" / f"mathjax-{MATHJAX_VERSION}"
    package = prefix / "node_modules" / "mathjax"
    if not (package / "es5" / "tex-chtml-full.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            unavailable("npm is needed once to fetch MathJax (or set NNSTUDY_MATHJAX)")
        fetched = subprocess.run([npm, "install", "--no-save", "--prefix", str(prefix),
                                  f"mathjax@{MATHJAX_VERSION}"], capture_output=True, text=True)
        if fetched.returncode != 0:
            unavailable(f"npm could not fetch mathjax: {fetched.stderr[-500:]}")
    return package


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("selenium is not installed (pip install -r requirements-dev.txt)")
    if sitecheck.browser_binaries() is None:
        unavailable("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")
    driver = sitecheck.start_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def site(rendered, mathjax, tmp_path_factory):
    """The rendered site, served offline from a copy with a local MathJax."""
    if rendered.returncode != 0:
        pytest.fail("the render failed; see test_render_succeeds_without_warnings")
    copy = tmp_path_factory.mktemp("site") / "book"
    assert sitecheck.offline_copy(rendered.site, mathjax, copy) == []
    with sitecheck.Server(copy) as server:
        yield server.url


@pytest.mark.parametrize("document", DOCUMENTS)
def test_page_in_the_browser(document, site, browser):
    """At desktop and phone width: no console errors, every image loaded,
    every equation typeset, nothing clipped, nothing leaked or unresolved."""
    problems = []
    stem = Path(document).stem
    for label, size in (("desktop", sitecheck.DESKTOP), ("phone", sitecheck.PHONE)):
        sitecheck.set_width(browser, size, phone=label == "phone")
        browser.get(site + html_page(document))
        problems += [f"[{label}] {p}" for p in sitecheck.check_loaded_page(browser, document)]
        sitecheck.screenshot(browser, SCREENSHOTS / f"{stem}-{label}.png")
    sitecheck.set_width(browser, sitecheck.DESKTOP)
    assert problems == []


def test_search_finds_backpropagation(site, browser):
    browser.get(site + "index.html")
    hits = sitecheck.search(browser, "backpropagation")
    assert "error" not in hits, hits
    assert any("backprop" in hit["text"].lower() for hit in hits["items"]), hits
    assert any("chapters/backprop.html" in hit["href"] for hit in hits["items"]), hits


def test_sidebar_links_every_chapter(site, browser):
    browser.get(site + "index.html")
    missing = [d for d in DOCUMENTS if html_page(d) not in sitecheck.sidebar_links(browser)]
    assert missing == []


# --------------------------------------------------------------------------
# The PDF


@pytest.fixture(scope="session")
def pdf(rendered) -> Path:
    if pdfcheck.tools_missing():
        unavailable(f"poppler-utils is not installed ({', '.join(pdfcheck.tools_missing())})")
    if rendered.returncode != 0:
        pytest.fail("the render failed; see test_render_succeeds_without_warnings")
    return rendered.pdf


def titles() -> dict[str, str]:
    """Each document's title: its first level-1 heading."""
    found = {}
    for name in DOCUMENTS:
        for _, text in bookcheck.parse(PROJECT_ROOT / name).prose:
            if text.startswith("# "):
                found[name] = text[2:]
                break
    return found


def captions() -> dict[str, str]:
    found = {}
    for name in DOCUMENTS:
        for cell in bookcheck.parse(PROJECT_ROOT / name).cells:
            for option in ("fig-cap", "tbl-cap"):
                if isinstance(cell.options.get(option), str):
                    found[f"{name}:{cell.options.get('label')}"] = cell.options[option]
    return found


def cited_titles() -> dict[str, str]:
    """Citation key -> title, for every work the book cites."""
    import bibtexparser

    library = bibtexparser.parse_string((PROJECT_ROOT / "references.bib").read_text())
    titles_by_key = {entry.key: entry["title"].replace("{", "").replace("}", "")
                     for entry in library.entries}
    cited = set()
    for name in DOCUMENTS:
        for _, text in bookcheck._prose_text(bookcheck.parse(PROJECT_ROOT / name)):
            cited.update(key.rstrip(".,:;") for key in bookcheck.CITATION.findall(text))
    return {key: titles_by_key[key] for key in sorted(cited) if key in titles_by_key}


def test_pdf_has_every_title_and_caption(pdf):
    pages = pdfcheck.page_texts(pdf)
    assert len(pages) == pdfcheck.page_count(pdf)
    assert len(pages) > len(DOCUMENTS)
    text = "\n".join(pages)
    assert pdfcheck.missing_phrases(text, titles()) == []
    assert pdfcheck.missing_phrases(text, captions()) == []


STRING = re.compile(r"[rfb]*\"[^\"]*\"|[rfb]*'[^']*'")


def test_pdf_prints_results_not_code(pdf):
    """The PDF hides the code (echo: false for typst); the HTML folds it."""
    text = pdfcheck.squash("\n".join(pdfcheck.page_texts(pdf)))
    printed = []
    for name in DOCUMENTS:
        for cell in bookcheck.parse(PROJECT_ROOT / name).cells:
            # Lines that are code apart from their strings: a string may be
            # printed as output (a sentence the cell returns), code may not.
            code = [line.strip() for line in cell.source.splitlines()
                    if len(STRING.sub("", line).strip()) >= 25
                    and not line.lstrip().startswith("#")]
            if cell.options.get("echo") is True or not code:
                continue
            longest = max(code, key=len)
            if pdfcheck.squash(longest) in text:
                printed.append(f"{name}:{cell.line}: {longest}")
    assert printed == []


def test_pdf_has_no_unresolved_references(pdf):
    text = "\n".join(pdfcheck.page_texts(pdf))
    assert re.findall(r".{0,30}(?:\?\?|\?@).{0,30}", text) == []
    # A reference to a chapter mid-sentence reads "Chapter 1 shows", not "Chapter 1. shows".
    assert re.findall(r"Chapter \d+\.\s+[a-z]\w*", text) == []


def test_pdf_references_chapter_holds_the_bibliography(pdf):
    """The References chapter's own pages list every cited work."""
    pages = pdfcheck.page_texts(pdf)
    first = pdfcheck.start_page(pages, titles()["references.qmd"])
    assert first is not None, "no page starts with the References chapter"
    cited = cited_titles()
    assert cited, "the book cites nothing?"
    on_first_page = pdfcheck.missing_phrases(pages[first], cited, words=5)
    assert len(on_first_page) < len(cited), "the References chapter's first page is empty"
    assert pdfcheck.missing_phrases("\n".join(pages[first:]), cited, words=5) == []


def test_pdf_text_stays_in_the_text_block(pdf):
    """No table (or equation) runs past the margins or into the footer, and
    no table prints its columns over each other."""
    words, size = pdfcheck.words(pdf)
    block = pdfcheck.text_block(size)
    # The template's margins, confirmed by where the justified body text ends.
    left, right = pdfcheck.body_edges(words)
    assert abs(left - block["left"]) < 1 and abs(right - block["right"]) < 1, (left, right)
    assert pdfcheck.outside_text_block(words, block) == []
    assert pdfcheck.overprinted(words) == []


def test_pdf_first_page_of_each_chapter_is_saved(pdf):
    pages = pdfcheck.page_texts(pdf)
    after = 1   # the cover
    for name, title in titles().items():
        first = pdfcheck.start_page(pages, title, after=after)
        assert first is not None, f"no page starts with {title!r}"
        image = pdfcheck.render_page(pdf, first + 1, PDF_PAGES / f"{Path(name).stem}.png")
        assert image.stat().st_size > 0
        after = first + 1


# --------------------------------------------------------------------------
# The checks themselves, on inputs made to fail (no render needed)


def test_log_check_flags_warnings_and_errors():
    log = ("Starting python3 kernel...[IPKernelApp] WARNING | Kernel is running over TCP "
           "without encryption. All communication is sent in plain text.\n"
           "  Cell 3/9: 'fig-error-curve'.....Done\n"
           "WARNING (quarto) Unable to resolve crossref @fig-missing\n"
           "[WARNING] Citeproc: citation nobody not found\n"
           "warning: `dot.circle` is deprecated\n"
           "ERROR: compilation failed\n")
    assert [line.split()[0] for line in log_problems(log)] == [
        "WARNING", "[WARNING]", "warning:", "ERROR:"]


def test_pdf_checks_flag_overprinted_and_overflowing_words():
    block = {"left": 50.0, "right": 545.0, "top": 50.0, "bottom": 780.0}
    words = [pdfcheck.Word(1, "fits", 60, 100, 90, 110),
             pdfcheck.Word(1, "column", 100, 100, 160, 110),
             pdfcheck.Word(1, "overprinted", 120, 101, 200, 111),
             pdfcheck.Word(1, "1.2", 20, 120, 40, 130),          # a section number
             pdfcheck.Word(1, "header", 500, 20, 560, 30),       # running header
             pdfcheck.Word(1, "toowide", 500, 200, 560, 210),
             pdfcheck.Word(1, "footer", 100, 790, 130, 800),
             pdfcheck.Word(1, "12", 290, 800, 300, 810),         # the page number
             pdfcheck.Word(0, "cover", 0, 300, 600, 400)]
    outside = pdfcheck.outside_text_block(words, block)
    assert ["toowide" in outside[0], "footer" in outside[1], len(outside)] == [True, True, 2]
    assert len(pdfcheck.overprinted(words)) == 1
    assert pdfcheck.missing_phrases("Table 1: The source of each dataset",
                                    {"a": "The source of each `{python} x` dataset",
                                     "b": "The checksum of each dataset"}) == [
        "b: 'The checksum of each dataset' not found in the PDF"]


BROKEN_PAGE = """<!doctype html><html><head>
<script>window.MathJax = {tex: {inlineMath: [['\\\\(', '\\\\)']]}};</script>
<script src="/_test-mathjax/es5/tex-chtml-full.js"></script>
<style>.narrow { width: 200px; overflow: hidden; }</style></head><body>
<p>Inline <span class="math inline">\\(x^2\\)</span>.</p>
<p>A raw \\(y that MathJax cannot typeset: never closed.</p>
<div class="narrow"><span class="math display">\\[a + b + c + d + e + f + g + h + i + j + k
 + l + m + n + o + p + q + r + s + t + u + v + w \\tag{1.4}\\]</span></div>
<p>Leaked: <code>{python} f"{x}"</code>, see ?@fig-nothing.</p>
<img src="missing.png" alt="a missing image"></body></html>"""


def test_browser_check_flags_a_broken_page(browser, mathjax, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "broken.html").write_text(BROKEN_PAGE)
    copy = tmp_path / "copy"
    assert sitecheck.offline_copy(root, mathjax, copy) == []
    with sitecheck.Server(copy) as server:
        browser.get(server.url + "broken.html")
        problems = "\n".join(sitecheck.check_loaded_page(browser, "broken.html"))
    for expected in ("console error", "image not loaded", "display equation clipped",
                     "raw TeX delimiter left in the text: '\\\\('", "leaked", "?@fig-nothing"):
        assert expected in problems, problems
    assert "not typeset" not in problems


# --------------------------------------------------------------------------
# Publishing


def test_publish_workflow_renders_with_the_result_cache_and_pinned_quarto():
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/publish.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("quarto-dev/quarto-actions/setup@") for u in uses)
    publish = next(s for s in steps if s.get("uses", "").startswith(
        "quarto-dev/quarto-actions/publish@"))
    assert publish["with"]["target"] == "gh-pages"
    pinned = re.search(r"^quarto-cli==(\S+)", (PROJECT_ROOT / "requirements.txt").read_text(),
                       re.MULTILINE).group(1)
    setup = next(s for s in steps if s.get("uses", "").startswith("quarto-dev/quarto-actions/setup@"))
    assert str(setup["with"]["version"]) == pinned
    caches = [s["with"] for s in steps if s.get("uses", "").startswith("actions/cache")]
    results = next(c for c in caches if c["path"].strip() == ".nnstudy-cache")
    assert results["restore-keys"] and results["key"].startswith(results["restore-keys"])
    # `on:` parses as True in YAML 1.1; the workflow runs on pushes to main.
    triggers = workflow.get("on", workflow.get(True))
    assert "main" in triggers["push"]["branches"]
    assert workflow["permissions"]["contents"] == "write"
