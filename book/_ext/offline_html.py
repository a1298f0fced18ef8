"""Small fixes to the HTML pages, so that the book loads with an empty browser console and loads
no script that renders nothing.

Two extensions that Jupyter Book 1 always loads (sphinx-thebe, sphinx-togglebutton) register their
inline configuration scripts once when the builder starts and once more later, and Sphinx writes
both copies into every page. The second ``const THEBE_JS_URL`` is a SyntaxError in the browser.
Identical scripts are dropped here, keeping the first of each.

Dropped as well, because nothing on the page uses them:

- the widget state that myst-nb inlines into every page whose notebook made a widget (a
  ``<script type="application/vnd.jupyter.widget-state+json">`` block holding the explorers' whole
  widget tree). Only a widget manager reads it, and the HTML book has none: it shows each
  explorer's precomputed version (``nb_mime_priority_overrides`` and ``nb_ipywidgets_js: {}`` in
  _config.yml; live widgets are for ``make lab``).
- sphinx-thebe's script, stylesheet and per-page configuration, when the book's
  ``launch_buttons: thebe`` is off: with no launch button nothing ever starts Thebe.
"""

import re

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# the per-page configuration that sphinx-thebe appends to the body as raw HTML
_THEBE_BODY = re.compile(r'\s*<script type="text/x-thebe-config">.*?</script>\s*<script>kernelName = [^<]*</script>',
                         re.S)


def _thebe_on(app) -> bool:
    options = getattr(app.config, "html_theme_options", None) or {}
    return bool((options.get("launch_buttons") or {}).get("thebe"))


def _is_thebe(asset) -> bool:
    name = str(getattr(asset, "filename", asset) or "")
    body = str((getattr(asset, "attributes", {}) or {}).get("body", ""))
    return name.split("?")[0].endswith(("sphinx-thebe.js", "sphinx-thebe.css")) or "THEBE_JS_URL" in body


def _filter_assets(app, pagename, templatename, context, doctree):
    thebe = _thebe_on(app)
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        if attributes.get("type") == WIDGET_STATE or (not thebe and _is_thebe(script)):
            continue
        # the two registrations differ only in filename None against "" for an inline script
        name = getattr(script, "filename", script) or ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique
    if not thebe:
        context["css_files"] = [css for css in context.get("css_files", []) if not _is_thebe(css)]
        if isinstance(context.get("body"), str):
            context["body"] = _THEBE_BODY.sub("\n", context["body"])


def setup(app):
    # after myst-nb's html-page-context handler (priority 500), which adds the widget state
    app.connect("html-page-context", _filter_assets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
