"""The built HTML book in a real browser (Debian's Chromium, headless, through ChromeDriver).

Runs after the book build (`make test` orders it so; `make browser-test` on an existing build).
The book is checked the two ways it is published:

- served over HTTP under a sub-path, as a project site is (``http://127.0.0.1:PORT/nclib-book/``,
  from a parent folder that holds nothing else): every page of the table of contents must load
  with no console error, no request to another host or outside the sub-path, no script outside the
  list the book needs (no widget manager, no require.js), with its math typeset, every image
  loaded, every internal link and theorem reference resolved, and every precomputed explorer
  changing when a control moves;
- opened from disk (``file://``, no server): styles, MathJax and images load, no console error.

Reading checks at a 1280 px window and on a phone (390 px): no figure scaled below a readable size
(on a phone a wide figure scrolls in its box instead), nothing running past the text column, a
table cell or a box that would cut it off, the introduction's verdict table not wider than its
column; at 1280 px no code cell scrolling sideways. On every page: no raw TeX in the text, one
search entry point (checked on the first pages), and search snippets free of TeX. A screenshot
of each page is saved under ``screenshots/`` next to the site.

``NCLIB_SITE`` names another built site (default: ``_build/html``); its pages are taken from the
``_toc.yml`` two folders above it when there is one (a throw-away book), else from the project's.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import struct
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("NCLIB_SITE") or ROOT / "_build" / "html").resolve()
BOOK = SITE.parents[1] if (SITE.parents[1] / "_toc.yml").exists() else ROOT
SHOTS = SITE.parent / "screenshots"
SUBPATH = "nclib-book"  # the site is served at /nclib-book/, as GitHub serves a project site
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SEARCH_WORD = "simplex"  # in the introduction


def toc_pages() -> list[str]:
    """HTML paths (relative to the site) of the root and every chapter in _toc.yml."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    return [f"{f}.html" for f in files]


PAGES = toc_pages()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site served under a sub-path: a parent folder holding only ``nclib-book`` → the site, so
    that a link that leaves the sub-path (an absolute ``/_static/…``) is a 404 here as on a project
    site. Yields the site's URL; the requests the server saw are in ``site.requests``."""
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run `make book` (or `make test`, which builds it first)")
    parent = tmp_path_factory.mktemp("served")
    (parent / SUBPATH).symlink_to(SITE, target_is_directory=True)
    seen: list[tuple[str, int]] = []
    handler = functools.partial(_QuietHandler, seen, directory=str(parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _Site(f"http://127.0.0.1:{server.server_address[1]}/{SUBPATH}/", seen)
    server.shutdown()
    server.server_close()


class _Site(str):
    def __new__(cls, url, requests):
        self = super().__new__(cls, url)
        self.requests = requests
        return self


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, seen, *args, **kwargs):
        self._seen = seen
        super().__init__(*args, **kwargs)

    def log_request(self, code="-", size="-"):
        self._seen.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: `make browser` installs "
                    "them where apt-get may be used, or install them by hand")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Flags for a closed network: without the background-networking ones Chromium keeps trying
    # Google's hosts, which would show up as requests leaving localhost.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def load(browser, url):
    """Open ``url``, wait for MathJax to finish and images to settle; return (console, requests)."""
    browser.get_log("browser")
    browser.get_log("performance")
    browser.get(url)
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const ready = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
            ? MathJax.startup.promise.then(() => done(true)) : done(false);
        if (document.readyState === "complete") ready(); else window.addEventListener("load", ready);
    """)
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight); window.scrollTo(0, 0);")
    console = browser.get_log("browser")
    requests = []
    for entry in browser.get_log("performance"):
        if '"Network.requestWillBeSent"' in entry["message"]:
            message = json.loads(entry["message"])["message"]
            url = message.get("params", {}).get("request", {}).get("url", "")
            if message.get("method") == "Network.requestWillBeSent" and url and not url.startswith("data:"):
                requests.append(url)
    return console, requests


def external(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in ("127.0.0.1", "localhost")


# Every script a page may load, as a path inside the site: Sphinx's own, the theme's, the
# extensions that act on the pages (copy buttons on code cells, toggles on hidden cells, sphinx-design
# tabs) and MathJax with the components it loads on demand. Nothing else: the HTML book has no
# widget manager (its explorers are precomputed), so no require.js and no @jupyter-widgets.
ALLOWED_SCRIPTS = {
    "_static/documentation_options.js", "_static/doctools.js", "_static/sphinx_highlight.js",
    "_static/searchtools.js", "_static/language_data.js", "searchindex.js",
    "_static/scripts/bootstrap.js", "_static/scripts/pydata-sphinx-theme.js",
    "_static/scripts/fontawesome.js", "_static/scripts/sphinx-book-theme.js",
    "_static/clipboard.min.js", "_static/copybutton.js", "_static/togglebutton.js", "_static/design-tabs.js",
}
ALLOWED_SCRIPT_FOLDERS = ("_static/mathjax/",)
# What the widget manager was made of; none of it may be shipped or referenced.
WIDGET_MANAGER = ("require.js", "require.min.js", "embed-amd.js", "html-manager", "widgets-paths.js",
                  "application/vnd.jupyter.widget-state+json")


def site_path(url: str, base: str) -> str | None:
    """``url`` as a path inside the site at ``base`` (query dropped); None when outside it."""
    url = url.split("#")[0].split("?")[0]
    return unquote(url[len(base):]) if url.startswith(base) else None


def disallowed_scripts(urls, base: str) -> list[str]:
    bad = []
    for url in urls:
        path = site_path(url, base)
        if path is None or not (path in ALLOWED_SCRIPTS or path.startswith(ALLOWED_SCRIPT_FOLDERS)):
            bad.append(url)
    return sorted(set(bad))


PAGE_STATE = """
    const imgs = Array.from(document.querySelectorAll("main img"));
    const sheets = Array.from(document.querySelectorAll('link[rel="stylesheet"]'));
    return {
        math: document.querySelectorAll("main .math").length,
        typeset: document.querySelectorAll("main mjx-container").length,
        merrors: document.querySelectorAll("mjx-merror").length,
        images: imgs.length,
        broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
        scripts: Array.from(document.scripts).map(s => s.src).filter(Boolean),
        sheets: sheets.length,
        unstyled: sheets.filter(l => !l.sheet).map(l => l.href),
        // the theme's stylesheet defines its colours as CSS variables on <html>
        themed: getComputedStyle(document.documentElement).getPropertyValue("--pst-color-primary").trim(),
    };
"""


def check_rendered(page, console, state):
    """What every page must show however it is opened: no console error, styles applied, math
    typeset, images loaded."""
    errors = [e["message"] for e in console if e["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors {errors}"
    assert state["sheets"] and not state["unstyled"], f"{page}: stylesheets that did not load {state['unstyled']}"
    assert state["themed"], f"{page}: the theme's styles are not applied"
    if state["math"]:
        assert state["typeset"] >= state["math"], f"{page}: {state['math']} math blocks, {state['typeset']} typeset"
    assert state["merrors"] == 0, f"{page}: MathJax reported {state['merrors']} errors"
    assert not state["broken"], f"{page}: images that did not load {state['broken']}"
    if re.search(r"/ch0[2-9]_", page):  # the experiment chapters draw figures in the build
        assert state["images"] > 0, f"{page}: no figure"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(browser, site, page):
    del site.requests[:]
    console, requests = load(browser, urljoin(site, page))
    state = browser.execute_script(PAGE_STATE)
    check_rendered(page, console, state)
    leaving = sorted({u for u in requests if external(u)})
    assert not leaving, f"{page}: requests to other hosts {leaving}"
    outside = sorted({u for u in requests if urlparse(u).scheme in ("http", "https") and site_path(u, site) is None})
    assert not outside, f"{page}: requests outside the site's sub-path /{SUBPATH}/ {outside}"
    missing = sorted({path for path, code in site.requests if code >= 400})
    assert not missing, f"{page}: the server answered an error to {missing}"
    scripts = [u for u in requests if site_path(u, site) is not None and site_path(u, site).endswith(".js")]
    bad = disallowed_scripts(state["scripts"] + scripts, site)
    assert not bad, f"{page}: scripts the book does not use {bad} (allowed: ALLOWED_SCRIPTS in {Path(__file__).name})"
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(max(int(height), 800), 16000))
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")))
    browser.set_window_size(1280, 1600)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_from_disk(browser, page):
    """The site opened as files (``file://``, no server), as a reader who downloads it does."""
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run `make book` (or `make test`, which builds it first)")
    base = SITE.as_uri() + "/"
    console, requests = load(browser, base + page)
    state = browser.execute_script(PAGE_STATE)
    check_rendered(page, console, state)
    leaving = sorted({u for u in requests if external(u) or (u.startswith("file:") and site_path(u, base) is None)})
    assert not leaving, f"{page}: requests outside the site folder {leaving}"
    scripts = [u for u in requests if u.startswith("file:") and u.split("?")[0].endswith(".js")]
    bad = disallowed_scripts(state["scripts"] + scripts, base)
    assert not bad, f"{page}: scripts the book does not use {bad}"


class _Assets(HTMLParser):
    """The scripts and stylesheets a page names (src, href, type), not its prose."""

    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.refs += [attrs.get("src") or "", attrs.get("type") or ""]
        elif tag == "link":
            self.refs.append(attrs.get("href") or "")


def test_no_widget_manager_is_shipped_or_referenced():
    """The HTML book shows precomputed explorers; require.js, the widget manager and the widget
    state it would read must be neither in _static nor named by any page's scripts."""
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run `make book` (or `make test`, which builds it first)")
    shipped = sorted(path for path in (str(p.relative_to(SITE)) for p in (SITE / "_static").rglob("*"))
                     if not path.startswith(ALLOWED_SCRIPT_FOLDERS)  # MathJax has a TeX extension require.js
                     and any(name in path for name in WIDGET_MANAGER[:-1]))
    assert not shipped, f"widget-manager files in the site: {shipped[:10]}"
    referencing = {}
    for path in sorted(SITE.rglob("*.html")):
        assets = _Assets()
        assets.feed(path.read_text(encoding="utf-8", errors="replace"))
        found = sorted({name for ref in assets.refs for name in WIDGET_MANAGER if name in ref})
        if found:
            referencing[str(path.relative_to(SITE))] = found
    assert not referencing, f"pages that load the widget manager or its state: {referencing}"


@pytest.mark.parametrize("page", [p for p in PAGES if (SITE / p).exists()
                                  and "nclib-static-explorer" in (SITE / p).read_text()] or ["(none)"])
def test_every_explorer_responds_to_its_controls(browser, site, page):
    assert page != "(none)", "no page of the book carries a precomputed explorer"
    load(browser, urljoin(site, page))
    explorers = browser.find_elements("css selector", ".nclib-static-explorer")
    assert explorers, f"{page}: the explorer's HTML is in the file but not on the page"
    for explorer in explorers:
        frame = explorer.find_element("css selector", ".nclib-frame")
        for control in explorer.find_elements("css selector", "[data-control]"):
            before = frame.get_attribute("innerHTML")
            assert before, f"{page}: an explorer shows nothing before any control moves"
            browser.execute_script("""
                const el = arguments[0];
                const n = el.tagName === "SELECT" ? el.options.length : (+el.max + 1);
                el.value = String((+el.value + 1) % n);
                el.dispatchEvent(new Event("input", {bubbles: true}));
            """, control)
            after = frame.get_attribute("innerHTML")
            assert after != before, f"{page}: moving {control.get_attribute('aria-label')} changed nothing"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append((attrs["href"], attrs.get("class") or ""))


@functools.lru_cache(maxsize=None)
def parsed(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_internal_links_and_theorem_references_resolve():
    bad, theorem_refs = [], 0
    for page in PAGES:
        path = SITE / page
        for href, cls in parsed(path).hrefs:
            if urlparse(href).scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target, _, fragment = href.partition("#")
            target_path = (path.parent / unquote(target)).resolve() if target else path
            if not target_path.exists():
                bad.append(f"{page} → {href} (no such file)")
            elif fragment and target_path.suffix == ".html" and unquote(fragment) not in parsed(target_path).ids:
                bad.append(f"{page} → {href} (no such anchor)")
            if fragment.startswith(("thm-", "def-", "rem-", "cor-")):
                theorem_refs += 1
    assert not bad, "broken internal links:\n" + "\n".join(bad)
    assert theorem_refs > 0, "no reference to a theorem or definition was found to check"


#: What a page may weigh with the images it loads from the site (its own HTML, inline frames
#: included, plus every local <img> it references): a reader on a phone downloads all of it.
PAGE_WEIGHT_LIMIT = 2.5e6


@pytest.mark.parametrize("page", PAGES)
def test_no_page_weighs_more_than_the_limit_with_its_images(page):
    path = SITE / page
    html = path.read_text(encoding="utf-8")
    weight = path.stat().st_size
    for src in set(re.findall(r'<img[^>]+src="([^"#?]+)"', html)):
        if not src.startswith(("data:", "http:", "https:")) and (path.parent / src).is_file():
            weight += (path.parent / src).stat().st_size
    assert weight <= PAGE_WEIGHT_LIMIT, f"{page}: {weight / 1e6:.2f} MB with its images (limit {PAGE_WEIGHT_LIMIT / 1e6:g} MB)"


@pytest.mark.parametrize("page", PAGES)
def test_no_table_cell_or_output_shows_a_python_none(page):
    """A missing value reads as words ("never", "n/a", "not recorded"), not as Python's None."""
    html = (SITE / page).read_text(encoding="utf-8")
    cells = re.findall(r"<td[^>]*>\s*None\s*</td>", html)
    outputs = re.findall(r"(?:^|\s{2})None(?:\s{2}|$)", " ".join(
        re.findall(r'<div class="cell_output[^"]*">(.*?)</div>', html, re.S)), re.M)
    assert not cells and not outputs, f"{page}: {len(cells)} table cell(s) and {len(outputs)} output column(s) read None"


class _Figures(HTMLParser):
    """The images of a page's cell outputs and the figures around them: ``images`` holds, per
    ``<img>`` inside a ``div.cell_output``, the index of its enclosing ``<figure>`` (None when
    there is none); ``figures`` holds, per ``<figure>``, its id and the text of its
    ``<figcaption>``. An explorer's precomputed frames sit in a JSON ``<script>``, which the parser
    reads as text: they are not images of the page until a control moves."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []  # (tag, role): "output", "figure", "caption"
        self.images: list[int | None] = []
        self.figures: list[dict] = []

    def _inside(self, role):
        return any(r == role for _, r in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            if self._inside("output"):
                self.images.append(len(self.figures) - 1 if self._inside("figure") else None)
            return
        if tag in self.VOID:
            return
        role = None
        if tag == "div" and "cell_output" in (attrs.get("class") or "").split():
            role = "output"
        elif tag == "figure":
            role = "figure"
            self.figures.append({"id": attrs.get("id") or "", "caption": ""})
        elif tag == "figcaption" and self._inside("figure"):
            role = "caption"
        self.stack.append((tag, role))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):  # tolerant of unclosed elements
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if self._inside("caption"):
            self.figures[-1]["caption"] += data


def test_every_output_figure_is_numbered_captioned_and_labelled_once():
    """Every image a chapter's cells draw is a numbered figure: it sits in a ``<figure>`` whose
    ``<figcaption>`` reads "Figure N" and says what to look at (MyST-NB's cell-level
    ``mystnb: {figure: {caption, name}}``, numbered by Sphinx's numfig). No two figures of the
    book share a number or a name."""
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run `make book` (or `make test`, which builds it first)")
    chapters = [p for p in PAGES if re.search(r"(^|/)ch\d\d_", p)]
    bare, unnumbered, numbers, names, images = [], [], {}, {}, 0
    for page in chapters:
        parser = _Figures()
        parser.feed((SITE / page).read_text(encoding="utf-8"))
        images += len(parser.images)
        bare += [f"{page}: image {k + 1} of its cell outputs" for k, f in enumerate(parser.images)
                 if f is None]
        for figure in (parser.figures[f] for f in sorted({f for f in parser.images if f is not None})):
            caption = " ".join(figure["caption"].split())
            number = re.match(r"Figure (\d+(?:\.\d+)*)\s+\S", caption)
            if not number:
                unnumbered.append(f"{page}#{figure['id']}: {caption[:80]!r}")
                continue
            numbers.setdefault(number[1], []).append(f"{page}#{figure['id']}")
            if figure["id"].startswith("fig-"):
                names.setdefault(figure["id"], []).append(page)
    assert images, "no chapter page has an image in its cell outputs: is this the built book?"
    assert not bare, "images outside a <figure> (give the cell mystnb figure metadata):\n  " + "\n  ".join(bare)
    assert not unnumbered, ("figures whose caption does not start with 'Figure N' and a text:\n  "
                            + "\n  ".join(unnumbered))
    shared = {f"Figure {n}": where for n, where in numbers.items() if len(where) > 1}
    shared.update({name: pages for name, pages in names.items() if len(pages) > 1})
    assert not shared, f"figures that share a number or a name: {shared}"


def test_verdict_table_links_every_row_to_its_evidence():
    """Each row's first cell (the result) links to the chapter that decided it; its verdict cell
    holds a coloured badge and its key-number cell is not empty."""
    text = (SITE / PAGES[0]).read_text(encoding="utf-8")
    table = text[text.index("what this book found"):]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S)[1:]
    assert len(rows) >= 14
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        assert re.search(r'href="ch\d\d_[a-z_]+\.html(#[\w-]+)?"', cells[0]), f"row without evidence link: {row[:200]}"
        assert 'class="verdict verdict-' in cells[2], f"no verdict badge in row {row[:200]}"
        assert re.sub(r"<[^>]+>", "", cells[3]).strip(), f"empty key number in row {row[:200]}"


@pytest.mark.parametrize("how", ["served", "from disk"])
def test_search_finds_the_book_content(browser, site, how):
    base = site if how == "served" else SITE.as_uri() + "/"
    browser.get(base + "search.html?q=" + SEARCH_WORD)
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function poll() {
            const hits = document.querySelectorAll("#search-results li").length;
            if (hits > 0 || Date.now() - t0 > 30000) done(hits); else setTimeout(poll, 200);
        })();
    """)
    hits = browser.find_elements("css selector", "#search-results li")
    assert hits, f"searching for {SEARCH_WORD!r} ({how}) found nothing"


# Raw TeX as a reader would see it in a snippet: a control word (\frac, \mathbf, \gamma), an
# inline or display delimiter (\( \) \[ \]) or a dollar sign.
RAW_TEX = re.compile(r"\\[A-Za-z]+|\\[()\[\]]|\$")


@pytest.mark.parametrize("word", ["margin", SEARCH_WORD])
def test_search_snippets_show_no_raw_tex(browser, site, word):
    """The text under a search result (served over HTTP, where Sphinx fetches the result page to
    cut it from) shows no raw TeX. Sphinx 7.4 cuts it from the page's HTML as written, where every
    formula is still TeX source (MathJax typesets it only in the browser), and from the whole of
    the theme's <main>, header and print-only table of contents included; _config.yml turns the
    snippets off (html_show_search_summary), which this holds after a build. Snippets that come
    back must be free of TeX."""
    browser.get(site + "search.html?q=" + word)
    result = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        let last = -1, stableSince = Date.now();
        (function poll() {
            const hits = document.querySelectorAll("#search-results li").length;
            const snippets = Array.from(document.querySelectorAll("#search-results li p.context"));
            if (snippets.length !== last) { last = snippets.length; stableSince = Date.now(); }
            // the snippets arrive one fetch at a time after the list: wait until none came for 2 s
            if ((hits > 0 && Date.now() - stableSince > 2000) || Date.now() - t0 > 30000)
                done({hits, summaries: DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY,
                      snippets: snippets.map(p => [p.parentElement.querySelector("a").textContent,
                                                   p.textContent])});
            else setTimeout(poll, 200);
        })();
    """)
    assert result["hits"], f"searching for {word!r} found nothing"
    tex = [f"{title}: {' '.join(text.split())[:160]!r}" for title, text in result["snippets"]
           if RAW_TEX.search(text)]
    assert not tex, (f"search for {word!r}: {len(tex)} of {len(result['snippets'])} snippets show raw TeX "
                     f"(SHOW_SEARCH_SUMMARY {result['summaries']}):\n  " + "\n  ".join(tex[:8]))


# --- reading checks at a 1280 px window and on a phone ----------------------------------------------
#
# A matplotlib figure is drawn with 10 pt labels by default and saved at 100 dpi, so a label is
# 10 × 100/72 ≈ 14 px tall (its em) in the PNG. Shown at a fraction s of its width it is 14·s px:
# at s = 0.6 that is 8.3 px, whose capitals and digits are about 6 px tall, the smallest that can
# still be read on an ordinary (not high-density) screen. Below that, tick labels and legends turn
# into smudges, and the browser offers no way to zoom one image. So a figure must be shown at no
# less than 0.6 of its width at 100 dpi; a PNG saved at another resolution (its pHYs chunk says
# which) is held to the same label size in CSS pixels: s × dpi/100 ≥ 0.6 (a 200 dpi figure for
# high-density screens may be shown at half its width, not less than 0.3).
WINDOW = (1280, 1600)
PHONE = (390, 844)  # a phone's CSS viewport
MIN_SCALE_AT_100_DPI = 0.6


def png_dpi(data: bytes) -> float | None:
    """The resolution a PNG records in its pHYs chunk (pixels per metre), in dots per inch."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"pHYs" and length >= 9:
            x_per_unit, _, unit = struct.unpack(">IIB", data[at + 8:at + 17])
            return x_per_unit * 0.0254 if unit == 1 else None
        if kind in (b"IDAT", b"IEND"):
            return None
        at += 12 + length
    return None


def image_bytes(src: str, base: str) -> bytes | None:
    if src.startswith("data:"):
        header, _, payload = src.partition(",")
        return base64.b64decode(payload) if header.endswith(";base64") else None
    path = site_path(src, base)
    if path is None or not (SITE / path).is_file():
        return None
    return (SITE / path).read_bytes()


def image_dpi(src: str, base: str) -> float:
    """The resolution an image was drawn at, in the terms of the 0.6 rule: the PNG's own record,
    matplotlib's default of 100 for other bitmaps, and 96 for SVG. Matplotlib sizes an SVG in
    points (``width="576pt"``), which the browser reports as its natural width in CSS pixels
    (576 pt = 768 px), so a 10 pt label is 13.3 px tall at that natural width, as in a PNG drawn
    at 96 dpi. (This said 72, as if the natural width were counted in points, which held SVG
    figures to a label a third larger than PNG ones.)"""
    if src.split("?")[0].endswith(".svg") or src.startswith("data:image/svg"):
        return 96.0
    data = image_bytes(src, base)
    return (png_dpi(data) if data else None) or 100.0


# The images a reader sees, with their drawn (natural) and shown widths.
IMAGES_SHOWN = """
    return Array.from(document.querySelectorAll("main img"))
        .filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0)
        .map(i => ({src: i.src, natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
                    alt: i.alt || ""}));
"""

def figures_below_a_readable_size(facts, site, page, window) -> list[str]:
    """No figure scaled below a readable size, at a 1280 px window and on a phone. On a phone a
    figure may be wider than the column: its output cell then scrolls sideways
    (book/static/nclib.css), which the check that nothing runs past the column holds it to."""
    images = facts["images"]
    small = []
    for image in images:
        dpi = image_dpi(image["src"], site)
        scale = image["shown"] / image["natural"]
        if scale * dpi / 100 < MIN_SCALE_AT_100_DPI:
            name = image["src"] if not image["src"].startswith("data:") else f"inline image ({image['alt']})"
            small.append(f"{site_path(name, site) or name[:80]}: {image['natural']} px wide at {dpi:.0f} dpi, "
                         f"shown at {image['shown']:.0f} px (scale {scale:.2f}; a 10 pt label at "
                         f"{10 * dpi / 72 * scale:.1f} px)")
    if not small:
        return []
    return [f"{page}: figures shown below {MIN_SCALE_AT_100_DPI} of their width at 100 dpi "
            f"in a {window[0]} px window:\n  " + "\n  ".join(small)]


@pytest.mark.parametrize("window", [WINDOW, PHONE], ids=["desktop", "phone"])
def test_verdict_table_fits_its_column(browser, site, window):
    """The introduction's table (the section "… what this book found") must not be wider than the
    element that holds it, at a 1280 px window and on a phone: a reader should not have to scroll
    it sideways to reach its last columns."""
    browser.set_window_size(*window)
    load(browser, urljoin(site, PAGES[0]))
    found = browser.execute_script("""
        const heading = Array.from(document.querySelectorAll("main h1, main h2, main h3"))
            .find(h => h.textContent.includes("what this book found"));
        const section = heading && heading.closest("section");
        const table = section && section.querySelector("table");
        if (!table) return null;
        const wrapper = table.parentElement;
        const columns = Array.from(table.querySelectorAll("thead th, tr:first-child th"))
            .map(th => [th.textContent.trim(), Math.round(th.getBoundingClientRect().width)]);
        return {table: Math.round(table.getBoundingClientRect().width), scroll: wrapper.scrollWidth,
                client: wrapper.clientWidth, wrapper: wrapper.className || wrapper.tagName, columns};
    """)
    assert found, f"{PAGES[0]}: no table under a heading with 'what this book found'"
    assert found["scroll"] <= found["client"] + 1, (
        f"{PAGES[0]}: the verdict table is {found['scroll']} px wide in a {found['client']} px column "
        f"({found['wrapper']}) at a {window[0]} px window; column widths {found['columns']}")


# Code cells (folded ones opened) wider than their column: [scroll width, shown width, widest line].
WIDE_CODE_CELLS = """
    document.querySelectorAll("details").forEach(d => d.open = true);
    return Array.from(document.querySelectorAll("main div.cell_input pre"))
        .filter(p => p.getBoundingClientRect().width > 0 && p.scrollWidth > p.clientWidth + 1)
        .map(p => [p.scrollWidth, p.clientWidth, p.textContent.split("\\n")
            .reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 70)]);
"""


def code_cells_scrolling_sideways(facts, page) -> list[str]:
    """At a 1280 px window every code cell a reader sees unfolded fits its column: the chapters keep
    shown lines to 90 characters (tests/test_chapter_layout.py) and book/static/nclib.css makes 90
    fit. Folded cells are opened first, so they are held to it as well."""
    wide = facts["wide_code"]
    return [f"{page}: code cells wider than their column (scroll / shown px, widest line): {wide}"] if wide else []


# What runs past a right edge it may not cross, by more than a pixel, as [element, the edge, px
# past it, start of its text], outermost elements only. An element's extent is its border box less
# its right padding and border (empty room, as a formula keeps for an overhanging glyph). The
# edges: the text column (the article's content box) for what is in the article, and the column
# that holds the article for its header and the previous/next links under it; the content box of
# the table cell that holds it (past it, it covers the next column); the padding box of a box
# that clips its overflow (overflow-x hidden or clip: what runs past it is cut off and cannot be
# read at all). Exempt: what lies inside an element that scrolls sideways by design (a <pre>, a
# table's or an output's scroll wrapper, a formula's box: overflow-x auto or scroll; the scroller
# itself must fit), what is invisible (visibility: hidden, as a heading's "#" link until hovered)
# and what is visually hidden for screen readers only (a `clip` or `clip-path`, as MathJax's
# assistive MathML). Folded cells are opened first.
PAST_THE_COLUMN = """
    document.querySelectorAll("main details").forEach(d => d.open = true);
    const article = document.querySelector("main article") || document.querySelector("main");
    const scope = article.closest(".bd-article-container") || article;
    const column = article.getBoundingClientRect().right - parseFloat(getComputedStyle(article).paddingRight);
    const outside = scope.getBoundingClientRect().right - parseFloat(getComputedStyle(scope).paddingRight);
    const scrolls = el => el.tagName === "PRE" || ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
    const clips = el => ["hidden", "clip"].includes(getComputedStyle(el).overflowX);
    const srOnly = el => { const s = getComputedStyle(el);
                           return (s.clip && s.clip !== "auto") || (s.clipPath && s.clipPath !== "none"); };
    const name = el => el.tagName.toLowerCase() + (typeof el.className === "string" && el.className.trim()
        ? "." + el.className.trim().split(/\\s+/).slice(0, 3).join(".") : "");
    // The edge that holds an element: [right, label], or null when it may scroll sideways there.
    const edgeOf = el => {
        for (let a = el.parentElement; a && a !== scope; a = a.parentElement) {
            if (srOnly(a)) return null;
            if (scrolls(a)) return null;
            if (a.tagName === "TD" || a.tagName === "TH")
                return [a.getBoundingClientRect().right - parseFloat(getComputedStyle(a).paddingRight), "its table cell"];
            if (clips(a)) return [a.getBoundingClientRect().left + a.clientLeft + a.clientWidth,
                                  "the box that clips it (" + name(a) + ")"];
        }
        return article.contains(el) ? [column, "the text column"] : [outside, "the page's column"];
    };
    const found = [], reported = new Set();
    for (const el of scope.querySelectorAll("*")) {
        if (el.contains(article)) continue;
        const box = el.getBoundingClientRect();
        if (box.width === 0 && box.height === 0) continue;
        if (getComputedStyle(el).visibility !== "visible" || srOnly(el)) continue;
        const edge = edgeOf(el);
        // the element's content: its right padding and border may reach past the edge, empty
        const style = getComputedStyle(el);
        const right = box.right - parseFloat(style.paddingRight) - parseFloat(style.borderRightWidth);
        if (!edge || right <= edge[0] + 1) continue;
        let parentReported = false;
        for (let a = el.parentElement; a && a !== scope; a = a.parentElement) if (reported.has(a)) parentReported = true;
        reported.add(el);
        if (!parentReported)
            found.push([name(el), edge[1], Math.round(right - edge[0]), (el.textContent || "").trim().slice(0, 60)]);
    }
    return {column: Math.round(column), found};
"""


def past_an_edge(facts, page, window) -> list[str]:
    """Nothing a reader should see runs past the right edge of the text column, of its table cell
    or of a box that cuts it off, at a 1280 px window and on a phone: a long inline formula, a file
    path or a commit hash in the prose, an API signature, a verdict badge wider than its table
    column, a long word in the previous/next links. Past the edge it is cut off (the theme clips an
    inline formula to the column, and a link title to its half of the page), makes the whole page
    scroll sideways, or covers the next column's text. A formula, a figure, a code cell or a table
    too wide for the column scrolls in its own box instead (book/static/nclib.css)."""
    result = facts["past"]
    found = result["found"]
    if not found:
        return []
    return [f"{page}: {len(found)} element(s) run past an edge in a {window[0]} px window "
            f"(text column at x = {result['column']} px; element, edge, px past it, text):\n  "
            + "\n  ".join(map(str, found[:15]))]


# Punctuation right after an inline formula that the browser moved to the next line, alone at its
# start: [start of the formula's text, the text after it]. Folded cells are skipped (not laid out).
PUNCTUATION_AFTER_MATH = """
    const found = [];
    for (const el of document.querySelectorAll("main span.math")) {
        const next = el.nextSibling;
        if (!next || next.nodeType !== Node.TEXT_NODE || !/^[.,;:!?)\\]]/.test(next.textContent)) continue;
        const range = document.createRange();
        range.setStart(next, 0);
        range.setEnd(next, 1);
        const mark = range.getBoundingClientRect(), formula = el.getBoundingClientRect();
        if (mark.height === 0 || formula.height === 0) continue;
        if (mark.top >= formula.bottom - 2)
            found.push([(el.textContent || "").trim().slice(0, 40), next.textContent.slice(0, 20)]);
    }
    return found;
"""


def punctuation_alone_at_a_line_start(facts, page, window) -> list[str]:
    """A sentence's full stop or comma stays on the line of the formula it follows, at any width
    (book/_ext/math_punctuation.py with the span.nowrap rule of book/static/nclib.css)."""
    found = facts["punctuation"]
    return [f"{page}: {len(found)} punctuation mark(s) after a formula start a line in a {window[0]} px "
            "window (formula, text after it):\n  " + "\n  ".join(map(str, found[:15]))] if found else []


# Display formulas wider than the text column at a 1280 px window: they scroll in their own box,
# which is right on a phone but, on a wide screen, hides the end of a theorem behind a scrollbar.
# As [typeset width, box width, start of the formula].
WIDE_DISPLAY_MATH = """
    return Array.from(document.querySelectorAll("main div.math mjx-container"))
        .filter(m => m.getBoundingClientRect().width > 0 && m.scrollWidth > m.clientWidth + 1)
        .map(m => [m.scrollWidth, m.clientWidth, (m.textContent || "").trim().slice(0, 60)]);
"""


def display_math_scrolling(facts, page) -> list[str]:
    """Every display formula fits the text column at 1280 px (a long one is split over lines)."""
    found = facts["wide_math"]
    return [f"{page}: {len(found)} display formula(s) scroll sideways at 1280 px (typeset width, box "
            "width, formula):\n  " + "\n  ".join(map(str, found))] if found else []


# What opens a search, wherever the theme puts it: the search fields and buttons of the header,
# the sidebar and the article's header, and any search input outside the (closed) search dialog.
SEARCH_ENTRY_POINTS = """
    const seen = new Set(document.querySelectorAll(
        ".search-button__button, input[type=search], input[name=q], form[action$='search.html']"));
    return Array.from(seen).filter(el => {
        if (el.closest("dialog:not([open])")) return false;
        const box = el.getBoundingClientRect(), style = getComputedStyle(el);
        return box.width > 0 && box.height > 0 && style.visibility === "visible" && style.opacity !== "0"
            && box.bottom > 0 && box.right > 0 && box.left < innerWidth;
    }).map(el => {
        const place = el.closest("header, .bd-sidebar-primary, .bd-header-article, .bd-sidebar-secondary, main");
        return [el.tagName.toLowerCase() + "." + (el.className || "").split(" ").slice(0, 3).join("."),
                place ? (place.id || place.className.split(" ")[0]) : "?"];
    });
"""


@pytest.mark.parametrize("window", [WINDOW, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("page", PAGES[:2])
def test_one_search_entry_point(browser, site, page, window):
    """A page offers one way into search, not two boxes that do the same thing: at a 1280 px window
    the field at the top of the left sidebar, on a phone the magnifier in the article's header.
    (pydata-sphinx-theme 0.17 adds a header bar with a second field unless navbar_persistent is
    set, which _config.yml does.)"""
    browser.set_window_size(*window)
    load(browser, urljoin(site, page))
    found = browser.execute_script(SEARCH_ENTRY_POINTS)
    assert len(found) == 1, (f"{page}: {len(found)} visible search entry points in a {window[0]} px "
                             f"window (element, where): {found}")


# Visible text of the article, outside code and typeset math, that reads as TeX source: a control
# word (\frac, \mathbf) or a dollar sign that opens math. As [element, start of the text].
RAW_TEX_ON_PAGE = """
    document.querySelectorAll("main details").forEach(d => d.open = true);
    const article = document.querySelector("main article") || document.querySelector("main");
    const tex = /\\\\[A-Za-z]{2,}|\\$[^$\\s]/;
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (el.closest("pre, code, kbd, samp, script, style, .highlight, mjx-container, .math")) continue;
        if (!tex.test(node.textContent)) continue;
        const box = el.getBoundingClientRect();
        if (box.width === 0 && box.height === 0) continue;
        found.push([el.tagName.toLowerCase() + (el.className ? "." + el.className : ""),
                    node.textContent.trim().slice(0, 100)]);
    }
    return found;
"""


def raw_tex_in_the_text(facts, page) -> list[str]:
    """Every formula is typeset: no TeX source shows in the text of a page (outside code). A line
    of a formula that starts with "+" or "-" in the Markdown source opens a list item and leaves
    the formula as text; a BibTeX title's $…$ reaches the reference list as it is."""
    found = facts["raw_tex"]
    return [f"{page}: raw TeX in the text (element, text):\n  " + "\n  ".join(map(str, found))] if found else []


@pytest.mark.parametrize("window", [WINDOW, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("page", PAGES)
def test_page_reads_well(browser, site, page, window):
    """The reading checks above, on one load of the page in each window (a load is most of a
    check's time): figures at a readable size, nothing past an edge and no punctuation cut off
    from its formula, at a 1280 px window and on a phone; no raw TeX in the text and no code cell
    or display formula scrolling sideways, at 1280 px. The figures are measured first: the other
    checks open the folded cells."""
    browser.set_window_size(*window)
    load(browser, urljoin(site, page))
    facts = {"images": browser.execute_script(IMAGES_SHOWN),
             "punctuation": browser.execute_script(PUNCTUATION_AFTER_MATH)}
    facts["past"] = browser.execute_script(PAST_THE_COLUMN)  # opens the folded cells
    problems = (figures_below_a_readable_size(facts, site, page, window) + past_an_edge(facts, page, window)
                + punctuation_alone_at_a_line_start(facts, page, window))
    if window == WINDOW:
        facts["raw_tex"] = browser.execute_script(RAW_TEX_ON_PAGE)
        facts["wide_code"] = browser.execute_script(WIDE_CODE_CELLS)
        facts["wide_math"] = browser.execute_script(WIDE_DISPLAY_MATH)
        problems += (raw_tex_in_the_text(facts, page) + code_cells_scrolling_sideways(facts, page)
                     + display_math_scrolling(facts, page))
    assert not problems, "\n".join(problems)
