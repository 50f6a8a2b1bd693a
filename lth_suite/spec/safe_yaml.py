"""YAML read with bounds: a hostile spec is refused in bounded time and memory.

PyYAML's ``safe_load`` builds whatever a file describes: anchors that refer to themselves
become recursive objects, a "billion laughs" alias bomb expands when the data is copied,
thousands of nested brackets exhaust the recursion limit, and duplicate keys silently keep
the last value. Specs are small, hand-written files, so the bounds below are generous for
them and tight for an attack: the text is bounded before it is parsed, nesting is counted
while the node graph is composed, and the graph's expanded size is counted (aliases
included) before it becomes Python objects.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1 << 20  # a spec of a thousand lines is ~30 kB
MAX_DEPTH = 64
MAX_NODES = 100_000  # after aliases are expanded

_OPENING = (yaml.MappingStartEvent, yaml.SequenceStartEvent)


class YamlRefused(ValueError):
    """Why a YAML text was refused; the caller names the file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, with nesting bounded and duplicate keys of one mapping refused."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        # Counted as the node graph is composed, before the composer's own recursion runs
        # out: a collection deeper than ``MAX_DEPTH`` is refused where it opens.
        opening = self.check_event(*_OPENING)
        if opening:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise YamlRefused(f"line {line}: nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            if opening:
                self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden by the keys beside it
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise YamlRefused(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes the data would have once aliases are expanded; refuse cycles."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise YamlRefused(f"line {node.start_mark.line + 1}: an anchor refers to itself "
                              f"(recursive data)")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise YamlRefused(f"more than {MAX_NODES:,} values once aliases are expanded "
                                  f"(an alias bomb?)")
        on_path.discard(key)
        sizes[key] = total
        return total

    size(root)


def parse(text: str) -> Any:
    """The data of one YAML document, or ``YamlRefused`` / ``yaml.YAMLError`` saying why not."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlRefused(f"larger than {MAX_BYTES // 1024} KiB; a spec is a small text file")
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expansion(root)
        return loader.construct_document(root)
    except ValueError as exc:  # int('9'*5000): Python's int-from-string digit limit
        if isinstance(exc, YamlRefused):
            raise
        digits = "integer string conversion" in str(exc)
        raise YamlRefused("an integer has too many digits for Python to read" if digits
                          else f"a value cannot be read ({exc})") from None
    finally:
        loader.dispose()
