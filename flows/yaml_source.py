"""Read YAML safely into plain data plus the line of every key, for messages with line numbers.

Only true/false are booleans (not on/off/yes/no), times like 17:00 stay text (YAML 1.1 would
read them as base-60 numbers), and a key that appears twice in one mapping is an error instead
of silently winning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from flows.errors import FlowError
from flows.problems import render

DocPath = tuple[str, ...]


class _FlowLoader(yaml.SafeLoader):
    pass


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


def read_yaml(text: str) -> YamlSource:
    loader = _FlowLoader(text)
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
        source.data = _convert(root, (), loader, source)
    return source


def _refuse_key(source: YamlSource, line: int, code: str, **params: str) -> None:
    source.duplicates.append((line, code, params))


def _convert(node: yaml.Node, path: DocPath, loader: _FlowLoader, source: YamlSource) -> Any:
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
            result[key] = _convert(value_node, (*path, key), loader, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            source.lines[(*path, str(index))] = item.start_mark.line + 1
            items.append(_convert(item, (*path, str(index)), loader, source))
        return items
    return loader.construct_object(node, deep=True)
