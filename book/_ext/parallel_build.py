"""`jupyter-book build` with Sphinx's parallel reading, so that chapters execute side by side.

MyST-NB executes a chapter while Sphinx reads it, and most chapters train small models on one
torch thread, so a serial build keeps one of the two cores idle for most of its ten minutes.
Sphinx reads in parallel (``-j N``: the documents split into chunks, each read, and so executed,
in a worker process) when every extension says it is safe, which those of this book do; cross-page
pastes (``{glue:text}`` of another page) are resolved after every page is read, so they do not
depend on the order. jupyter-book 1's command line has no ``-j``, but its ``build_sphinx`` takes
``jobs``: this wrapper sets it and otherwise runs the ordinary command::

    python book/_ext/parallel_build.py JOBS <jupyter-book build arguments>

``JOBS`` is a number or ``auto`` (the cores this process may use). Each chapter's kernel gets
cores / JOBS threads (``OMP_NUM_THREADS``, unless set already).

Sphinx hands its readers a few chunks of documents in name order; with two readers one chunk held
chapters 7 to 10 (about 260 s of execution) while the other finished its 205 s and waited. Here
each document is a chunk of its own, the longest-running chapters first, so that a reader takes
the next document as soon as it is free and both stay busy to the end. The order changes only when
a chapter is executed, never what it computes.
"""

from __future__ import annotations

import functools
import os
import sys


# The chapters whose execution takes longest at the book's CPU scale, longest first (chapter 8 is
# about a quarter of the build; measured on AMD EPYC, the same order on Intel Xeon). A document not
# named here follows them in name order.
LONGEST_FIRST = ("book/ch08_non_conservative", "book/ch07_margins_tpt", "book/ch02_neural_collapse",
                 "book/ch05_covering", "book/ch09_related", "book/ch06_hoeffding", "book/ch04_margin_bound",
                 "book/ch03_ce_svm", "book/ch10_reference", "book/own_model")


def one_document_per_chunk(docnames, nproc: int, maxbatch: int = 10) -> list[list[str]]:
    """Sphinx's ``make_chunks`` for this book: every document its own chunk, in an order that
    makes Sphinx's task pool start them longest first. The pool starts the first ``nproc`` tasks
    as they are added and the others, queued, last in first out (it pops them from the end of a
    dict), so the queued ones are listed in reverse."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    ranked = sorted(docnames, key=lambda name: (rank.get(name, len(rank)), name))
    return [[name] for name in ranked[:nproc] + ranked[nproc:][::-1]]


def usable_cores() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def jobs_from(text: str) -> int:
    """The number of parallel readers: a positive integer, or ``auto`` for the usable cores."""
    if text == "auto":
        return usable_cores()
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise SystemExit(f"parallel_build: JOBS must be a positive integer or 'auto', got {text!r}")
    return jobs


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    import jupyter_book.sphinx
    import sphinx.builders
    from jupyter_book.cli.main import main as jupyter_book_main

    jobs = jobs_from(argv[0])
    # The cores split between the readers: a chapter that keeps torch's default (every core) while
    # another chapter computes beside it oversubscribes the cores, and OpenMP's spinning threads
    # then slow it several times over (measured: chapter 2 took 203 s instead of 33 s). Kernels
    # inherit this; a chapter that sets its own thread count still does.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // jobs)))
    # The HTML book shows each explorer's precomputed version: the kernels create no live widget
    # (nclib.widgets.STATIC_ONLY_ENV says why)
    os.environ.setdefault("NCLIB_STATIC_EXPLORERS", "1")
    # The builders call make_chunks by this name to split the documents between the readers.
    sphinx.builders.make_chunks = one_document_per_chunk
    # The build command imports build_sphinx from this module when it runs, so it gets this one.
    jupyter_book.sphinx.build_sphinx = functools.partial(jupyter_book.sphinx.build_sphinx, jobs=jobs)
    jupyter_book_main(["build", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
