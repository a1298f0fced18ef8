"""Let Sphinx read (and so execute) the chapters in parallel (``make book BOOK_JOBS=2``).

Sphinx reads in parallel only when every extension declares that it may. Two that Jupyter Book 1
always loads declare nothing, so Sphinx warns and reads serially, and the strict build (-W) fails
on the warning. Both are safe, read as of the pinned versions:

- sphinx-multitoc-numbering 0.1.3 only replaces ``TocTreeCollector.assign_section_numbers``, which
  Sphinx calls in the main process after every document has been read and merged;
- sphinx-jupyterbook-latex 1.0.0 adds transforms that mark nodes of the document being read
  (docname, header level) and post-transforms for the LaTeX builder; the one value it keeps in
  the environment is set when the builder starts, before the reading processes fork.

One more declares itself safe but cannot merge: sphinx-proof 0.4.0's ``prf`` domain lacks
``merge_domaindata``, so Sphinx stops a parallel build when it merges the readers' environments.
The domain keeps nothing in its domain data (its proofs live in ``env.proof_list``, which
sphinx-proof merges itself on ``env-merge-info``), so merging that data is rightly a no-op.

This extension records all of that, once the builder exists and before reading starts.
"""

UNDECLARED_BUT_SAFE = ("sphinx_multitoc_numbering", "sphinx_jupyterbook_latex")


def _nothing_to_merge(self, docnames, otherdata):
    """The ``prf`` domain's data holds no per-document entries (see the module docstring)."""


def _declare(app):
    for name in UNDECLARED_BUT_SAFE:
        extension = app.extensions.get(name)
        if extension is not None:
            extension.parallel_read_safe = True
    try:
        from sphinx.domains import Domain
        from sphinx_proof.domain import ProofDomain
    except ImportError:
        return
    if ProofDomain.merge_domaindata is Domain.merge_domaindata:
        ProofDomain.merge_domaindata = _nothing_to_merge


def setup(app):
    app.connect("builder-inited", _declare)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
