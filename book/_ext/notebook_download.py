"""A ".ipynb" entry in each chapter's download menu: the notebook as executed for the book.

sphinx-book-theme's download dropdown (the header button) offers the page's source file (a chapter's
``.py``) and ``.pdf``. Its own ``.ipynb`` entry appears only for a MyST-Markdown notebook with a
launch button configured, so the chapters, which are jupytext ``.py`` files, get none. MyST-NB
writes every notebook it reads, with its outputs, to ``<build>/jupyter_execute/<docname>.ipynb``
(``env.mystnb_config.output_folder``), which is outside the HTML site.

For every page that MyST-NB executed (its execution record in ``env.nb_metadata``) this extension

1. copies that notebook into the site, at ``_notebooks/<docname>.ipynb``, and
2. adds an entry ".ipynb" ("Download the executed notebook") to the page's download group, right
   after the source file's entry, with a link relative to the page, so that it works from disk
   and under a sub-path alike.

Both happen in ``html-page-context``, after the theme built its header buttons (priority 501): the
notebooks were written when the pages were read, before any page is written, and each page copies
only its own notebook, so parallel writing is safe. A page MyST-NB did not execute (a Markdown
page) gets no entry. Only the HTML builders are served (not epub, whose manifest would take the
notebooks for unknown files).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
FOLDER = "_notebooks"  # in the HTML output
LABEL = "download-executed-notebook-button"
BUILDERS = ("html", "dirhtml", "singlehtml")


def executed_notebook(app, docname: str) -> Path | None:
    """The notebook MyST-NB wrote for ``docname`` when it executed it, or None for a page it did
    not execute."""
    record = (getattr(app.env, "nb_metadata", None) or {}).get(docname) or {}
    if not record.get("exec_data"):
        return None
    config = getattr(app.env, "mystnb_config", None)
    folder = getattr(config, "output_folder", None) or Path(app.outdir).parent / "jupyter_execute"
    return Path(folder, *f"{docname}.ipynb".split("/"))


def _download_group(context) -> dict | None:
    for button in context.get("header_buttons") or []:
        if button.get("type") == "group" and button.get("label") == "download-buttons":
            return button
    return None


def add_notebook_download(app, pagename, templatename, context, doctree):
    if app.builder.name not in BUILDERS or doctree is None:
        return
    group = _download_group(context)
    if group is None:  # the theme's use_download_button is off, or the page has no source
        return
    buttons = group.setdefault("buttons", [])
    if any(button.get("text") == ".ipynb" for button in buttons):  # the theme made one already
        return
    source = executed_notebook(app, pagename)
    if source is None:
        return
    target = Path(app.outdir, FOLDER, *f"{pagename}.ipynb".split("/"))
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    elif not target.is_file():  # executed, but its notebook is gone (jupyter_execute/ cleaned by hand)
        LOGGER.warning(f"no executed notebook at {source}: no .ipynb download for this page",
                       location=pagename, type="notebook_download", subtype="missing")
        return
    entry = {
        "type": "link",
        "url": context["pathto"](f"{FOLDER}/{pagename}.ipynb", 1),
        "text": ".ipynb",
        "tooltip": "Download the executed notebook",
        "icon": "fas fa-code",
        "label": LABEL,
    }
    after = next((i + 1 for i, button in enumerate(buttons) if button.get("label") == "download-source-button"),
                 len(buttons))
    buttons.insert(after, entry)


def setup(app):
    # after sphinx-book-theme's add_header_buttons (priority 501), which builds the download group
    app.connect("html-page-context", add_notebook_download, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
