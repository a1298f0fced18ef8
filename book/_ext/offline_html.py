"""Small fixes to the HTML pages, so that the book loads with an empty browser console.

Two extensions that Jupyter Book 1 always loads (sphinx-thebe, sphinx-togglebutton) register their
inline configuration scripts once when the builder starts and once more later, and Sphinx writes
both copies into every page. The second ``const THEBE_JS_URL`` is a SyntaxError in the browser.
Identical scripts are dropped here, keeping the first of each.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        # the two registrations differ only in filename None against "" for an inline script
        name = getattr(script, "filename", script) or ""
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
