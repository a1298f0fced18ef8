"""Tables for the chapters and for a terminal: one class, :class:`Table`, which notebooks and the
book render as HTML and a terminal prints as aligned text."""

from __future__ import annotations

import html

__all__ = ["Table"]


class Table:
    """A small table for the chapters: HTML in notebooks and the book (myst_nb renders HTML
    outputs; its Markdown outputs are CommonMark, which has no tables) and aligned text elsewhere."""

    def __init__(self, header, rows, caption: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[str(c) for c in r] for r in rows]
        if any(len(r) != len(self.header) for r in self.rows):
            raise ValueError("every row needs one cell per header column")
        self.caption = caption

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        cap = f"<caption>{esc(self.caption)}</caption>" if self.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [max(len(x) for x in col) for col in zip(self.header, *self.rows)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        out = ([self.caption] if self.caption else []) + [line(self.header), line(["-" * w for w in widths])]
        return "\n".join(out + [line(r) for r in self.rows])
