"""Each chapter page's download menu offers the executed notebook (book/_ext/notebook_download.py).

Reads the built HTML as files, after the book build like the rest of tests/browser. For every page
of the table of contents executed from a notebook (a jupytext ``.py`` chapter): the header's
download dropdown holds a link ending in ``.ipynb``, next to the ``.py`` source, whose target is in
the site and is the notebook as executed (nbformat 4, code cells with outputs), not the source.
A Markdown page has no such entry.

``NCLIB_SITE`` names another built site (default: ``_build/html``); its pages are taken from the
``_toc.yml`` two folders above it when there is one (a throw-away book), else from the project's.
"""

from __future__ import annotations

import json
import os
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("NCLIB_SITE") or ROOT / "_build" / "html").resolve()
BOOK = SITE.parents[1] if (SITE.parents[1] / "_toc.yml").exists() else ROOT


def _toc_files() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]


def _source(file: str) -> Path | None:
    return next((BOOK / f"{file}{suffix}" for suffix in (".py", ".ipynb", ".md")
                 if (BOOK / f"{file}{suffix}").exists()), None)


NOTEBOOK_PAGES = [f"{f}.html" for f in _toc_files() if (s := _source(f)) is not None and s.suffix != ".md"]
MARKDOWN_PAGES = [f"{f}.html" for f in _toc_files() if (s := _source(f)) is not None and s.suffix == ".md"]


class _DownloadMenu(HTMLParser):
    """The links (href, class, title, text) inside the page's ``dropdown-download-buttons``."""

    def __init__(self):
        super().__init__()
        self.depth = 0  # nesting depth of <div> inside the download dropdown; 0 outside it
        self.links: list[dict] = []
        self._link: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div":
            if self.depth:
                self.depth += 1
            elif "dropdown-download-buttons" in (attrs.get("class") or "").split():
                self.depth = 1
        elif tag == "a" and self.depth:
            self._link = {"href": attrs.get("href") or "", "class": attrs.get("class") or "",
                          "title": attrs.get("title") or "", "text": ""}
            self.links.append(self._link)

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
        elif tag == "a":
            self._link = None

    def handle_data(self, data):
        if self._link is not None:
            self._link["text"] += data.strip()


def download_links(page: str) -> list[dict]:
    path = SITE / page
    if not path.exists():
        pytest.fail(f"no {page} in the built book at {SITE}: run `make book` first")
    menu = _DownloadMenu()
    menu.feed(path.read_text(encoding="utf-8"))
    return menu.links


def test_the_book_has_notebook_chapters_to_check():
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book at {SITE}: run `make book` (or `make test`, which builds it first)")
    assert NOTEBOOK_PAGES, f"no page of {BOOK / '_toc.yml'} is executed from a notebook"
    assert all((SITE / page).exists() for page in NOTEBOOK_PAGES), "a notebook chapter of the toc was not built"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_a_chapter_offers_its_executed_notebook_beside_the_source(page):
    links = download_links(page)
    texts = [link["text"] for link in links]
    assert ".ipynb" in texts, f"{page}: download menu has {texts}, no .ipynb"
    assert ".py" in texts and texts.index(".ipynb") == texts.index(".py") + 1, texts  # right after the source
    link = links[texts.index(".ipynb")]
    assert link["href"].endswith(".ipynb") and "executed notebook" in link["title"].lower(), link
    assert not urlparse(link["href"]).scheme and not link["href"].startswith("/"), \
        f"{page}: {link['href']} is not relative (the book is read from disk and under a sub-path)"

    target = (SITE / page).parent / unquote(link["href"])
    assert target.resolve().is_relative_to(SITE), f"{page}: {link['href']} leaves the site"
    assert target.is_file(), f"{page}: {link['href']} is not in the site"
    notebook = json.loads(target.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert any(cell.get("outputs") for cell in code), f"{target}: no code cell has an output (not executed)"
    assert any(cell.get("execution_count") for cell in code), f"{target}: no code cell was executed"


@pytest.mark.parametrize("page", MARKDOWN_PAGES)
def test_a_markdown_page_offers_no_notebook(page):
    links = download_links(page)
    assert not [link for link in links if link["href"].endswith(".ipynb")], links
