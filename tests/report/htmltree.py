"""A minimal DOM tree of an HTML page (stdlib ``html.parser``), shared by the HTML report's tests:
the rendered markup (tests/report/test_html.py) and what headless Chromium serialized after its
scripts ran (tests/report/browser.py)."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

__all__ = ["VOID", "Node", "TreeBuilder", "parse_html"]

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants (document order) with ``tag`` (any when None) whose attributes include
        ``attrs`` (``data_s`` = ``data-s``)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(child.attrs.get(k) == v for k, v in wanted.items()):
                    found.append(child)
                found.extend(child.all(tag, **attrs))
        return found

    def has(self, name: str) -> list[Node]:
        """Descendants with an attribute ``name``."""
        return [n for n in self.all() if name in n.attrs]

    def by_class(self, cls: str, tag: str | None = None) -> list[Node]:
        return [n for n in self.all(tag) if cls in n.classes]

    def by_id(self, id_: str) -> Node:
        (node,) = [n for n in self.all() if n.attrs.get("id") == id_]
        return node

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()


class TreeBuilder(HTMLParser):
    """Builds the tree; ``tags`` lists every start tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self.stack[-1].children.append(Node(tag, dict(attrs)))  # <path .../> in serialized SVG

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    """The document tree of ``text`` (markup as the browser serialized it, or as rendered)."""
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root
