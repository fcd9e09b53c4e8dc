"""Read YAML safely into plain data plus the line of every key, for messages with line numbers.

Only true/false are booleans (not on/off/yes/no), times like 17:00 stay text (YAML 1.1 would
read them as base-60 numbers), and a key that appears twice in one mapping is an error instead
of silently winning.

A draft comes from a page, so reading it is bounded: an alias repeats a whole subtree, and ten
aliases of ten aliases of ... make a few hundred bytes expand to millions of nodes. Nesting
deeper than MAX_DEPTH or more than MAX_NODES nodes (aliases counted each time they are used) is
refused with the line where the limit was crossed, as are characters YAML does not allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from flows.errors import FlowError
from flows.problems import render

DocPath = tuple[str, ...]

# The demo flow has about 1,300 nodes, nested 6 deep: room to grow, nowhere near a bomb.
MAX_NODES = 50_000
MAX_DEPTH = 40


class _FlowLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # The composer recurses once per level: bounded here, before Python's own limit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_deep(self.peek_event().start_mark.line + 1)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_FlowLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|false)$", "tf"),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^[-+]?[0-9]*\.[0-9]+$", "-+.0123456789"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|)$", ["~", "n", ""]),
):
    _FlowLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


@dataclass
class YamlSource:
    data: Any
    lines: dict[DocPath, int] = field(default_factory=dict)
    # keys that cannot be read or are there twice: (line, problem code, params)
    duplicates: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)

    def line_of(self, path: DocPath) -> int:
        """The line of the deepest part of `path` that exists in the document (1-based)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


class YamlSyntaxError(FlowError):
    code = "yaml_syntax"

    def __init__(self, line: int, detail: str, opened_line: int | None = None) -> None:
        self.line = line
        self.problem_params = {"detail": detail}
        if opened_line is not None:
            self.problem_params["opened_line"] = str(opened_line)
        super().__init__(render(self.code, self.problem_params))


class YamlTooLarge(YamlSyntaxError):
    """Nested too deep, or too many nodes once aliases are expanded."""

    code = "yaml_too_large"

    def __init__(self, line: int, detail: str, limit: int) -> None:
        super().__init__(line, detail)
        self.problem_params["limit"] = str(limit)
        self.args = (render(self.code, self.problem_params),)


def _too_deep(line: int) -> YamlTooLarge:
    return YamlTooLarge(line, f"nested deeper than {MAX_DEPTH} levels", MAX_DEPTH)


def read_yaml(text: str) -> YamlSource:
    try:
        loader = _FlowLoader(text)  # the reader refuses control characters right here
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise YamlSyntaxError(line, f"character #x{exc.character:04x} is not allowed") from exc
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        detail = str(exc.problem or exc)
        opened = None
        if exc.context_mark is not None and exc.context_mark.line + 1 != line:
            opened = exc.context_mark.line + 1
            detail += f" ({exc.context} on line {opened})"
        raise YamlSyntaxError(line, detail, opened) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, str(exc)) from exc
    finally:
        loader.dispose()
    source = YamlSource(data=None)
    if root is not None:
        source.lines[()] = root.start_mark.line + 1
        source.data = _convert(root, (), loader, source, _Budget())
    return source


class _Budget:
    """Nodes left to convert; an alias costs its whole subtree each time it is used."""

    def __init__(self) -> None:
        self.nodes = MAX_NODES

    def spend(self, node: yaml.Node, path: DocPath, source: YamlSource) -> None:
        self.nodes -= 1
        if self.nodes < 0:
            # A node inside an alias carries its anchor's line: name the top-level key whose
            # value expanded past the limit instead.
            detail = f"more than {MAX_NODES} values once aliases are expanded"
            raise YamlTooLarge(source.line_of(path[:1]), detail, MAX_NODES)
        if len(path) > MAX_DEPTH:  # an alias of a deep part, used deep down
            raise _too_deep(node.start_mark.line + 1)


def _refuse_key(source: YamlSource, line: int, code: str, **params: str) -> None:
    source.duplicates.append((line, code, params))


def _convert(
    node: yaml.Node, path: DocPath, loader: _FlowLoader, source: YamlSource, budget: _Budget
) -> Any:
    budget.spend(node, path, source)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                _refuse_key(source, key_node.start_mark.line + 1, "key_not_text")
                continue
            key = str(loader.construct_object(key_node, deep=True))
            line = key_node.start_mark.line + 1
            if key in result:
                first = source.lines[(*path, key)]
                where = ".".join((*path, key))
                _refuse_key(
                    source, line, "duplicate_key", where=where, key=key, first_line=str(first)
                )
                continue
            source.lines[(*path, key)] = line
            result[key] = _convert(value_node, (*path, key), loader, source, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            source.lines[(*path, str(index))] = item.start_mark.line + 1
            items.append(_convert(item, (*path, str(index)), loader, source, budget))
        return items
    return loader.construct_object(node, deep=True)
