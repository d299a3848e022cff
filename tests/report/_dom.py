"""A tiny HTML reader for the report tests: elements with attributes and text, by id/tag."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "img", "br", "hr", "link", "input"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [*self.text_parts, *(c.text for c in self.children)]
        return " ".join(" ".join(parts).split())

    def iter(self, tag: str | None = None):
        for c in self.children:
            if tag is None or c.tag == tag:
                yield c
            yield from c.iter(tag)

    def by_id(self, id_: str) -> Element | None:
        return next((e for e in self.iter() if e.attrs.get("id") == id_), None)

    def rows(self) -> list[list[str]]:
        """The cells' text of every ``tr`` below this element."""
        return [[c.text for c in tr.children if c.tag in ("td", "th")] for tr in self.iter("tr")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].text_parts.append(data)


def parse(html: str) -> Element:
    b = _Builder()
    b.feed(html)
    b.close()
    return b.root


def external_refs(root: Element) -> list[str]:
    """Every src/href that would need something outside the file (not data:, not #anchor)."""
    refs = []
    for el in root.iter():
        for attr in ("src", "href"):
            v = el.attrs.get(attr)
            if v is not None and not v.startswith(("data:", "#")):
                refs.append(v)
        if el.tag in ("script", "link", "iframe", "object", "embed"):
            refs.append(f"<{el.tag}>")
    return refs
