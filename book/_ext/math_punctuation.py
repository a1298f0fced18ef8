"""Keep the punctuation that follows an inline formula on the formula's line.

A browser may break a line between a typeset formula (an inline box) and the text that follows
it, so a sentence's full stop or comma could start the next line on its own. This transform
wraps every inline formula that is directly followed by punctuation, together with that
punctuation, in ``<span class="nowrap">`` (book/static/nclib.css keeps such a span on one line).
Only the punctuation moves into the span; the words after it still wrap as before.
"""

import re

from docutils import nodes
from sphinx.transforms import SphinxTransform

# closing punctuation that must not start a line: stops, commas, closing brackets and quotes
LEADING_PUNCTUATION = re.compile(r"^[.,;:!?)\]}’”…]+")


def keep_punctuation_with_math(document: nodes.Node) -> int:
    """Wrap each inline ``math`` node followed by punctuation with that punctuation in an inline
    node of class ``nowrap``; return how many were wrapped."""
    wrapped = 0
    for math in list(document.findall(nodes.math)):
        parent = math.parent
        if parent is None or (isinstance(parent, nodes.inline) and "nowrap" in parent["classes"]):
            continue
        index = parent.index(math)
        if index + 1 >= len(parent) or not isinstance(parent[index + 1], nodes.Text):
            continue
        text = parent[index + 1]
        found = LEADING_PUNCTUATION.match(text.astext())
        if not found:
            continue
        rest = text.astext()[found.end():]
        box = nodes.inline(classes=["nowrap"])
        parent.replace(math, box)
        box += math
        box += nodes.Text(found.group())
        if rest:
            parent.replace(text, nodes.Text(rest))
        else:
            parent.remove(text)
        wrapped += 1
    return wrapped


class KeepPunctuationWithMath(SphinxTransform):
    default_priority = 900  # after MyST has made its math nodes and glue has filled in its values

    def apply(self, **kwargs) -> None:
        keep_punctuation_with_math(self.document)


def setup(app):
    app.add_transform(KeepPunctuationWithMath)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
