"""The rendered site, checked in a real browser: Debian's headless Chromium
driven by Selenium through Debian's chromedriver (no browser downloads).

The site is served from a copy on 127.0.0.1. Quarto pages load MathJax from a
CDN; the copy points that one script at a local MathJax (npm ``mathjax``), so
the check runs offline while the rendered book that readers get is unchanged.
Any other request that leaves the machine fails and shows up as a console
error. Each check returns a list of problems (strings); empty means "fine".
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MATHJAX_CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/mathjax@[^/\"']+/(es5/[^\"']+)")
LOCAL_MATHJAX = "/_test-mathjax/"
# Pandoc's HTML template loads an ES6 polyfill before MathJax; Chromium needs
# none, so the served copy leaves it out rather than fail to fetch it.
POLYFILL = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/polyfill/[^"]*"></script>\s*')

# Flags for a quiet, sandbox-free, offline Chromium (CI runs as root in a container).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")

DESKTOP = (1280, 900)
PHONE = (390, 844)
MAX_SCREENSHOT_HEIGHT = 15000   # Chromium refuses captures much taller than 16k px


def browser_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) from PATH, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def start_browser(user_data_dir: Path):
    """A fresh headless Chromium with its console log readable."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver))
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    return browser


# --------------------------------------------------------------------------
# The served copy


def offline_copy(site: Path, mathjax: Path, target: Path) -> list[str]:
    """Copy the site to ``target`` with MathJax served locally.

    ``mathjax`` is the npm package directory (holding ``es5/``). Returns the
    pages that load MathJax from somewhere this rewrite does not recognise.
    """
    shutil.copytree(site, target)
    shutil.copytree(mathjax, target / LOCAL_MATHJAX.strip("/"))
    problems = []
    for page in target.rglob("*.html"):
        if page.is_relative_to(target / LOCAL_MATHJAX.strip("/")):
            continue
        text = page.read_text(encoding="utf-8")
        rewritten = MATHJAX_CDN.sub(lambda m: LOCAL_MATHJAX + m.group(1), text)
        rewritten = POLYFILL.sub("", rewritten)
        if "mathjax" in rewritten.lower() and LOCAL_MATHJAX not in rewritten \
                and 'class="math' in rewritten:
            problems.append(f"{page.relative_to(target)}: MathJax loaded from an unknown URL")
        page.write_text(rewritten, encoding="utf-8")
    return problems


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test output is not a web server log
        pass


class Server:
    """Serves a directory on 127.0.0.1 (search needs http://, not file://)."""

    def __init__(self, directory: Path):
        handler = functools.partial(QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------
# One page

# Runs in the page once MathJax has finished typesetting (or at once when the
# page has no MathJax). Text checks skip <pre> (code listings may quote LaTeX).
PAGE_REPORT = r"""
const done = arguments[arguments.length - 1];
function report() {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, script, style, mjx-container, mjx-assistive-mml')
      .forEach(e => e.remove());
  const prose = body.textContent;
  const notSet = [...document.querySelectorAll('span.math')]
      .filter(s => !s.querySelector('mjx-container'))
      .map(s => s.textContent.slice(0, 60));
  const mathErrors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
      .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80));
  const images = [...document.images]
      .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src);
  // A display equation is clipped when it is wider than the block it sits in
  // (MathJax gives tagged equations a min-width), or when its content is wider
  // than itself and it does not scroll.
  const block = e => { let b = e.parentElement;
    while (b && getComputedStyle(b).display.startsWith('inline')) b = b.parentElement;
    return b; };
  const clipped = [...document.querySelectorAll('mjx-container[display="true"]')]
      .filter(m => m.getBoundingClientRect().width > block(m).clientWidth + 1 ||
                   (m.scrollWidth > m.clientWidth + 1 &&
                    !['auto', 'scroll'].includes(getComputedStyle(m).overflowX)))
      .map(m => (m.querySelector('mjx-assistive-mml') || m).textContent.slice(0, 60));
  const unresolved = [...document.querySelectorAll('.quarto-unresolved-ref')]
      .map(e => e.textContent);
  return {
    mathjax: !!window.MathJax, notSet, mathErrors, images, clipped, unresolved,
    rawMath: ['$$', '\\(', '\\)', '\\[', '\\]'].filter(t => prose.includes(t)),
    questionAt: (prose.match(/\?@[\w-]+/g) || []),
    leaked: (prose.match(/\{python\}[^\n]{0,60}/g) || []),
    pageWidth: document.documentElement.scrollWidth, viewWidth: window.innerWidth,
    mathCount: document.querySelectorAll('span.math').length,
  };
}
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
ready.then(() => done(report()), e => done({failed: String(e)}));
"""


def console_errors(browser) -> list[str]:
    """SEVERE console entries, except the 404 of /favicon.ico: Chromium asks
    every site for one on its own, and a book without an icon is not broken."""
    return [entry["message"] for entry in browser.get_log("browser")
            if entry.get("level") == "SEVERE" and "/favicon.ico " not in entry["message"]]


def check_loaded_page(browser, name: str) -> list[str]:
    """Everything a reader would see go wrong on the page now loaded."""
    report = browser.execute_async_script(PAGE_REPORT)
    if "failed" in report:
        return [f"{name}: MathJax failed to start: {report['failed']}"]
    problems = [f"{name}: console error: {message}" for message in console_errors(browser)]
    if report["mathCount"] and not report["mathjax"]:
        problems.append(f"{name}: has math but MathJax did not load")
    labels = {
        "notSet": "equation not typeset by MathJax",
        "mathErrors": "MathJax error",
        "images": "image not loaded",
        "clipped": "display equation clipped (wider than its column and not scrollable)",
        "unresolved": "unresolved cross-reference",
        "rawMath": "raw TeX delimiter left in the text",
        "questionAt": "unresolved cross-reference",
        "leaked": "inline {python} code leaked into the page",
    }
    for key, label in labels.items():
        problems += [f"{name}: {label}: {item!r}" for item in report[key]]
    if report["pageWidth"] > report["viewWidth"] + 1:
        problems.append(f"{name}: the page scrolls sideways ({report['pageWidth']} px content "
                        f"in a {report['viewWidth']} px window)")
    return problems


def set_width(browser, size: tuple[int, int], phone: bool = False) -> None:
    """Emulate a viewport (a phone's is narrow and touch-first)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": phone})


def screenshot(browser, path: Path) -> None:
    """The whole page (up to MAX_SCREENSHOT_HEIGHT px) as a PNG."""
    import base64

    width = browser.execute_script("return document.documentElement.clientWidth")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width,
                 "height": min(height, MAX_SCREENSHOT_HEIGHT), "scale": 1}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


# --------------------------------------------------------------------------
# The whole site


def sidebar_links(browser) -> set[str]:
    """Paths (relative to the site root) that the sidebar links to."""
    hrefs = browser.execute_script(
        "return [...document.querySelectorAll('#quarto-sidebar a[href]')]"
        ".map(a => new URL(a.href).pathname)")
    return {(href + "index.html" if href.endswith("/") else href).lstrip("/") for href in hrefs}


SEARCH_SCRIPT = r"""
const [term, done] = [arguments[0], arguments[arguments.length - 1]];
const button = document.querySelector('.aa-DetachedSearchButton');
if (button) button.click();
setTimeout(() => {
  const input = document.querySelector('input.aa-Input');
  if (!input) { done({error: 'no search box'}); return; }
  input.focus();
  input.value = term;
  input.dispatchEvent(new Event('input', {bubbles: true}));
  let waited = 0;
  const poll = setInterval(() => {
    const items = [...document.querySelectorAll('.aa-Item')];
    waited += 200;
    if (items.length || waited > 15000) {
      clearInterval(poll);
      done({items: items.map(i => ({text: i.textContent,
        href: (i.querySelector('a[href]') || {}).href || ''}))});
    }
  }, 200);
}, 300);
"""


def search(browser, term: str) -> dict:
    """Type ``term`` into Quarto's search box; the hits' text and links."""
    return browser.execute_async_script(SEARCH_SCRIPT, term)
