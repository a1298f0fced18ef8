"""book/_ext/parallel_build.py: the parallel book build's job count, and its use by the Makefile."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from parallel_build import LONGEST_FIRST, jobs_from, one_document_per_chunk  # noqa: E402


def test_auto_is_the_usable_cores_and_numbers_are_taken_as_they_are():
    assert jobs_from("auto") == len(os.sched_getaffinity(0))
    assert jobs_from("1") == 1 and jobs_from("3") == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_a_bad_job_count_names_the_argument_and_what_it_takes(bad):
    with pytest.raises(SystemExit, match=r"JOBS must be a positive integer or 'auto', got"):
        jobs_from(bad)


def test_the_readers_start_one_document_at_a_time_longest_first(tmp_path):
    """Through Sphinx's own task pool, as the build uses it: the documents start in the order of
    LONGEST_FIRST, then the others by name. One reader, so that the order of starts is exact (with
    two, the pool starts two at a time, which a log cannot order); the chunks follow the same rule
    for any number of readers."""
    import time

    import sphinx.builders
    from sphinx.util.parallel import ParallelTasks

    toc = re.findall(r"(?:root|file): (\S+)", (ROOT / "_toc.yml").read_text())
    assert set(LONGEST_FIRST) <= set(toc)  # the order names documents of the book, not old ones
    assert [c[0] for c in one_document_per_chunk(sorted(toc), 2)[:2]] == list(LONGEST_FIRST[:2])
    chunks = one_document_per_chunk(sorted(toc), 1)
    assert all(len(c) == 1 for c in chunks) and sorted(c[0] for c in chunks) == sorted(toc)
    log = tmp_path / "started"

    def read(chunk):  # a forked reader: note the start, take a moment
        with open(log, "a") as f:
            f.write(chunk[0] + "\n")
        time.sleep(0.05)

    tasks = ParallelTasks(1)
    for chunk in chunks:
        tasks.add_task(read, chunk)
    tasks.join()
    started = log.read_text().split()
    assert started == list(LONGEST_FIRST) + sorted(set(toc) - set(LONGEST_FIRST))
    # the name the wrapper replaces is still the one Sphinx's builders call
    assert sphinx.builders.make_chunks.__module__ == "sphinx.util.parallel"


def test_every_book_build_of_the_makefile_goes_through_the_wrapper():
    makefile = (ROOT / "Makefile").read_text()
    assert "JUPYTER_BOOK_BUILD := $(BIN)/python book/_ext/parallel_build.py $(BOOK_JOBS)" in makefile
    # A recipe line calling jupyter-book's own build would silently run serially.
    assert not re.search(r"^\t.*jupyter-book build", makefile, flags=re.M)
    assert makefile.count("$(JUPYTER_BOOK_BUILD)") == 3  # book, book-strict, book-seeds


def test_every_extension_of_the_book_allows_parallel_reading(tmp_path):
    """Otherwise Sphinx warns, reads serially, and the strict build fails on the warning."""
    from jupyter_book.config import get_final_config
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    config, _ = get_final_config(user_yaml=ROOT / "_config.yml", cli_config={"latex_individualpages": False},
                                 sourcedir=ROOT, use_external_toc=True)
    with patch_docutils(str(ROOT)), docutils_namespace():
        app = Sphinx(str(ROOT), None, str(tmp_path / "html"), str(tmp_path / "doctrees"), "html",
                     confoverrides=config, status=None, warning=None, parallel=2)
        undeclared = [name for name, ext in app.extensions.items() if ext.parallel_read_safe is not True]
        assert undeclared == []
        assert app.is_parallel_allowed("read")
        # and every domain can merge what the parallel readers found (Sphinx stops the build otherwise)
        from sphinx.domains import Domain

        unmergeable = [name for name, domain in app.env.domains.items()
                       if type(domain).merge_domaindata is Domain.merge_domaindata]
        assert unmergeable == []
