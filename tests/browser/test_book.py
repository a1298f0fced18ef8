"""The built HTML book in a real browser (Debian's Chromium, headless, through ChromeDriver).

Runs after the book build (`make test` orders it so; `make browser-test` on an existing build).
Every page of the table of contents is served from localhost and must load with no console error
and no request to another host, with its math typeset, every image loaded, every internal link
and theorem reference resolved, and every precomputed explorer changing when a control moves.
A screenshot of each page is saved under _build/screenshots.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def toc_pages() -> list[str]:
    """HTML paths (relative to the site) of the root and every chapter in _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    return [f"{f}.html" for f in files]


PAGES = toc_pages()


@pytest.fixture(scope="session")
def site():
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run `make book` (or `make test`, which builds it first)")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
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
        message = entry["message"]
        if '"Network.requestWillBeSent"' in message:
            match = re.search(r'"url":"([^"]+)"', message)
            if match:
                requests.append(match.group(1))
    return console, requests


def external(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in ("127.0.0.1", "localhost")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(browser, site, page):
    console, requests = load(browser, urljoin(site, page))
    errors = [e["message"] for e in console if e["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors {errors}"
    leaving = sorted({u for u in requests if external(u)})
    assert not leaving, f"{page}: requests to other hosts {leaving}"
    state = browser.execute_script("""
        const imgs = Array.from(document.querySelectorAll("main img"));
        return {
            math: document.querySelectorAll("main .math").length,
            typeset: document.querySelectorAll("main mjx-container").length,
            merrors: document.querySelectorAll("mjx-merror").length,
            images: imgs.length,
            broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
        };
    """)
    if state["math"]:
        assert state["typeset"] >= state["math"], f"{page}: {state['math']} math blocks, {state['typeset']} typeset"
    assert state["merrors"] == 0, f"{page}: MathJax reported {state['merrors']} errors"
    assert not state["broken"], f"{page}: images that did not load {state['broken']}"
    if re.search(r"/ch0[2-9]_", page):  # the experiment chapters draw figures in the build
        assert state["images"] > 0, f"{page}: no figure"
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(max(int(height), 800), 16000))
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")))
    browser.set_window_size(1280, 1600)


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


def test_verdict_table_links_every_row_to_its_evidence():
    text = (SITE / PAGES[0]).read_text(encoding="utf-8")
    table = text[text.index("what this book found"):]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S)[1:]
    assert len(rows) >= 14
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
        assert re.search(r'href="ch0\d_[a-z_]+\.html"', cells[-1]), f"row without evidence link: {row[:200]}"
        verdict = re.sub(r"<[^>]+>", "", cells[3]).strip()
        assert verdict, f"empty verdict cell in row {row[:200]}"


def test_search_finds_the_book_content(browser, site):
    browser.get(urljoin(site, "search.html?q=simplex"))
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function poll() {
            const hits = document.querySelectorAll("#search-results li").length;
            if (hits > 0 || Date.now() - t0 > 30000) done(hits); else setTimeout(poll, 200);
        })();
    """)
    hits = browser.find_elements("css selector", "#search-results li")
    assert hits, "searching for 'simplex' found nothing"
