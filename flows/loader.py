"""Load a flow document: YAML text -> checked `Flow`, or every problem with its file and line.

Every problem comes at once: when parts of a draft do not fit the model, the rest is still
judged by the checks across the flow (flows/validator.py), so an unknown target or a missing
translation shows up next to an unknown key instead of after it is fixed. Those checks judge
what parsed, each node on its own, and say nothing that follows from a part already reported.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from flows.errors import FlowInvalid, Problem
from flows.model import (
    NODE_KINDS,
    Calendar,
    CalendarException,
    Department,
    DepartmentId,
    Flow,
    Labels,
    Node,
    NodeId,
    ProductId,
    PromptId,
    PublicHolidays,
    ThemeId,
)
from flows.problems import FlowValueError, problem
from flows.validator import NO_GAPS, BrokenNode, Gaps, validate_flow
from flows.yaml_source import DocPath, YamlSource, YamlSyntaxError, read_yaml


def load_flow(path: str | Path) -> Flow:
    """Read and check a flow file; raises `FlowInvalid` listing every problem."""
    return parse_flow(read_flow_text(path), str(path))


def read_flow_text(path: str | Path) -> str:
    """The text of a flow file; unreadable or not UTF-8 is a `FlowInvalid` too."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FlowInvalid([problem(str(path), 0, "unreadable", reason=reason)]) from exc
    except UnicodeDecodeError as exc:
        raise FlowInvalid([problem(str(path), 0, "not_utf8", reason=exc.reason)]) from exc


def parse_flow(text: str, filename: str = "<flow>") -> Flow:
    flow, problems = check_flow_text(text, filename)
    if problems or flow is None:
        raise FlowInvalid(problems)
    return flow


def check_flow_text(text: str, filename: str = "<flow>") -> tuple[Flow | None, list[Problem]]:
    """All problems of a flow document (empty when it is good) and the flow when it is good."""
    checked = inspect_flow_text(text, filename)
    return checked.flow, checked.problems


@dataclass(frozen=True)
class FlowCheck:
    """A flow document after every check: the problems; the flow when there are none; and what
    parsed (`draft`, with `gaps` naming what did not) for checks that add their own."""

    problems: list[Problem]
    flow: Flow | None = None
    draft: Flow | None = None  # None: not even YAML of a mapping
    gaps: Gaps = NO_GAPS
    source: YamlSource | None = None


def inspect_flow_text(text: str, filename: str = "<flow>") -> FlowCheck:
    try:
        source = read_yaml(text)
    except YamlSyntaxError as exc:
        return FlowCheck([problem(filename, exc.line, exc.code, **exc.problem_params)])
    problems = [problem(filename, line, code, **params) for line, code, params in source.duplicates]
    if not isinstance(source.data, dict):
        problems.append(problem(filename, 1, "not_a_mapping"))
        return FlowCheck(sorted(set(problems)), source=source)
    try:
        flow: Flow | None = Flow.model_validate(source.data)
        draft, gaps = flow, NO_GAPS
    except ValidationError as exc:
        flow = None
        problems += [p for p in (_problem(filename, source, error) for error in exc.errors()) if p]
        draft, gaps = _partial(source.data)
    assert draft is not None
    for finding in validate_flow(draft, gaps):
        line = source.line_of(finding.path)
        problems.append(problem(filename, line, finding.code, **finding.params))
    problems = sorted(set(problems))
    return FlowCheck(problems, None if problems else flow, draft, gaps, source)


# -- the model's refusals as problems ------------------------------------------------------------


def _problem(filename: str, source: YamlSource, error: ErrorDetails) -> Problem | None:
    loc = _document_path(source.data, error["loc"])
    if _other_branch(source.data, error):
        return None
    where = ".".join(loc) or "flow"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        key = str(error["loc"][-1])
        if allowed:
            line = source.line_of(loc)
            allowed_text = ", ".join(allowed)
            return problem(
                filename, line, "unknown_key", where=where, key=key, allowed=allowed_text
            )
        return problem(filename, source.line_of(loc), "unknown_key_unlisted", where=where, key=key)
    if kind == "missing":
        parent = loc[:-1]
        where = ".".join(parent) or "flow"
        return problem(filename, source.line_of(parent), "missing_key", where=where, key=loc[-1])
    kinds = ", ".join(NODE_KINDS)
    if kind == "union_tag_not_found":
        return problem(filename, source.line_of(loc), "missing_kind", where=where, kinds=kinds)
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", "?"))
        line = source.line_of((*loc, "kind"))
        return problem(filename, line, "unknown_kind", where=where, kind=tag, kinds=kinds)
    line = source.line_of(loc)
    cause = ctx.get("error")
    if kind == "value_error" and isinstance(cause, FlowValueError):
        return problem(filename, line, cause.code, where=where, **cause.params)
    code, extra = _pydantic_code(kind, ctx)
    detail = error["msg"].removeprefix("Value error, ")
    return problem(filename, line, code, where=where, detail=detail, **extra)


# pydantic's error types -> our code and the ctx value its extra param comes from
_PYDANTIC_CODES: dict[str, tuple[str, str | None]] = {
    "string_pattern_mismatch": ("wrong_pattern", "pattern"),
    "literal_error": ("wrong_value", "expected"),
    "enum": ("wrong_value", "expected"),
    "greater_than_equal": ("too_small", "ge"),
    "greater_than": ("too_small", "gt"),
    "less_than_equal": ("too_large", "le"),
    "less_than": ("too_large", "lt"),
    "too_short": ("too_short", "min_length"),
    "too_long": ("too_long", "max_length"),
    "string_too_long": ("text_too_long", "max_length"),
}
_EXTRA_PARAM = {"wrong_pattern": "pattern", "wrong_value": "expected"}
# the first word of pydantic's type errors (string_type, int_parsing ...) -> what was expected
_EXPECTED = {
    "string": "text",
    "int": "whole_number",
    "float": "number",
    "bool": "true_false",
    "dict": "mapping",
    "model": "mapping",
    "list": "list",
    "time": "time",
    "date": "date",
    "datetime": "date",
}


def _pydantic_code(kind: str, ctx: dict[str, Any]) -> tuple[str, dict[str, str]]:
    if kind in _PYDANTIC_CODES:
        code, key = _PYDANTIC_CODES[kind]
        limit = ctx.get(key) if key else None
        return code, {_EXTRA_PARAM.get(code, "limit"): str(limit)}
    first = kind.split("_", 1)[0]
    if kind.endswith(("_type", "_parsing")) or "_from_" in kind:
        if kind.startswith("model_attributes"):
            first = "model"
        return "wrong_type", {"expected": _EXPECTED.get(first, "other")}
    return "invalid", {}


def _other_branch(data: Any, error: ErrorDetails) -> bool:
    """A union's text branch refusing a mapping or list (a menu option written as {next: ...}):
    the mapping branch says what is wrong with it."""
    if error["type"] != "string_type":
        return False
    value, tags = data, 0
    for part in error["loc"]:
        if isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        elif isinstance(value, dict) and str(part) in value:
            value = value[str(part)]
        else:
            tags += 1  # a union member's name, not in the document
    return tags > 0 and isinstance(value, (dict, list))


def _document_path(data: Any, loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """Pydantic's error location without the parts that are not in the document (union tags)."""
    path: list[str] = []
    current = data
    for index, part in enumerate(loc):
        key = str(part)
        if key == "[key]":  # the key itself is wrong: the entry is the place
            continue
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif isinstance(current, (dict, list)) and index == len(loc) - 1:
            pass  # a missing or extra key: keep it for the message
        else:
            continue
        path.append(key)
    return tuple(path)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at `loc` accepts, by walking the annotations of `Flow`."""
    model: Any = Flow
    for part in loc:
        model = _step(model, part)
        if model is None:
            return []
    if typing.get_origin(model) in (typing.Union, types.UnionType):  # an optional block
        models = [a for a in typing.get_args(model) if isinstance(a, type)]
        blocks = [m for m in models if issubclass(m, BaseModel)]
        model = blocks[0] if len(blocks) == 1 else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _step(annotation: Any, part: int | str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field else None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _step(args[0], part)
    if origin is dict:
        return args[1]
    if origin is list:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        if isinstance(part, str) and part in NODE_KINDS:
            return NODE_KINDS[part]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        named = [m for m in models if m.__name__ == part]
        if named:
            return named[0]
        return _step(models[0], part) if len(models) == 1 else None
    return None


# -- what parsed, for the checks across the flow -------------------------------------------------


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _field_adapter(name: str) -> TypeAdapter[Any]:
    info = Flow.model_fields[name]
    annotation: Any = info.annotation
    return _adapter(Annotated[annotation, *info.metadata] if info.metadata else annotation)


_NODE = Annotated[Node, Field(discriminator="kind")]
_TEXTS = dict[str, str]


def _fits(annotation: Any, value: Any) -> tuple[bool, Any]:
    try:
        return True, _adapter(annotation).validate_python(value)
    except ValidationError:
        return False, None


@dataclass
class _Parts:
    """What `_partial` found: parsed values by field, and what failed."""

    values: dict[str, Any] = field(default_factory=dict)
    broken: set[DocPath] = field(default_factory=set)

    def entries(
        self, data: dict[str, Any], path: DocPath, key: Any, value: Any
    ) -> tuple[dict[str, Any], set[str]]:
        """A mapping checked entry by entry: the entries that fit, and the ids of the others."""
        raw = _at(data, path)
        if not isinstance(raw, dict):
            self.broken.add(path)
            return {}, set()
        good: dict[str, Any] = {}
        bad: set[str] = set()
        for entry_id, entry in raw.items():
            key_ok, _ = _fits(key, entry_id)
            value_ok, parsed = _fits(value, entry)
            if key_ok and value_ok:
                good[entry_id] = parsed
            else:
                bad.add(entry_id)
        return good, bad


def _at(data: Any, path: DocPath) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


_EMPTY: dict[str, Callable[[], Any]] = {
    "name": str,
    "languages": list,
    "voices": dict,
    "start": str,
}


def _partial(data: dict[str, Any]) -> tuple[Flow, Gaps]:
    """The parts of an invalid document that fit the model, as a Flow built without checks, and
    the gaps: what did not fit."""
    parts = _Parts()
    by_entry = {"products", "labels", "prompts", "calendar", "nodes", "departments"}
    for name, info in Flow.model_fields.items():
        if name in by_entry:
            continue
        if name not in data:
            if info.is_required():
                parts.broken.add((name,))
                parts.values[name] = _EMPTY[name]()
            else:
                parts.values[name] = info.get_default(call_default_factory=True)
            continue
        try:
            parts.values[name] = _field_adapter(name).validate_python(data[name])
        except ValidationError:
            parts.broken.add((name,))
            default = info.get_default(call_default_factory=True)
            parts.values[name] = default if not info.is_required() else _EMPTY[name]()
    products, bad_products = parts.entries(data, ("products",), ProductId, _TEXTS)
    prompts, bad_prompts = parts.entries(data, ("prompts",), PromptId, _TEXTS)
    nodes, bad_nodes = parts.entries(data, ("nodes",), NodeId, _NODE)
    departments: dict[str, Any] = {}
    bad_departments: set[str] = set()
    if "departments" in data:  # optional: none is no gap
        departments, bad_departments = parts.entries(
            data, ("departments",), DepartmentId, Department
        )
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    assert isinstance(raw_nodes, dict)
    broken_nodes = {node_id: _broken_node(raw_nodes[node_id]) for node_id in bad_nodes}
    calendar, exception_numbers = _partial_calendar(data, parts)
    labels = _partial_labels(data, parts)
    flow = Flow.model_construct(
        **parts.values,
        products=products,
        prompts=prompts,
        nodes=nodes,
        calendar=calendar,
        labels=labels,
        departments=departments,
    )
    gaps = Gaps(
        broken=frozenset(parts.broken),
        nodes=broken_nodes,
        prompts=frozenset(bad_prompts),
        products=frozenset(bad_products),
        departments=frozenset(bad_departments),
        exception_numbers=exception_numbers,
    )
    return flow, gaps


def _broken_node(raw: Any) -> BrokenNode:
    kind = raw.get("kind") if isinstance(raw, dict) else None
    return BrokenNode(
        kind=kind if isinstance(kind, str) and kind in NODE_KINDS else None,
        names=frozenset(_texts(raw)),
    )


def _texts(value: Any) -> list[str]:
    """Every text in a value, nested too: a broken node may lead to any node it names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _partial_calendar(data: dict[str, Any], parts: _Parts) -> tuple[Calendar, tuple[int, ...]]:
    raw = data.get("calendar")
    fits, calendar = _fits(Calendar, raw)
    if fits:
        return calendar, tuple(range(len(calendar.exceptions)))
    if not isinstance(raw, dict):
        parts.broken.add(("calendar",))
        return Calendar.model_construct(weekly={}, exceptions=[]), ()
    values: dict[str, Any] = {"weekly": {}}
    parts.broken.add(("calendar", "weekly"))  # nothing checks it across the flow
    if "timezone" in raw:
        fits, values["timezone"] = _fits(str, raw["timezone"])
        if not fits:
            parts.broken.add(("calendar", "timezone"))
            values.pop("timezone")
    if raw.get("public_holidays") is not None:
        fits, values["public_holidays"] = _fits(PublicHolidays, raw["public_holidays"])
        if not fits:
            parts.broken.add(("calendar", "public_holidays"))
            values["public_holidays"] = None
    exceptions, numbers = [], []
    listed = raw.get("exceptions", [])
    for number, item in enumerate(listed if isinstance(listed, list) else []):
        fits, exception = _fits(CalendarException, item)
        if fits:
            exceptions.append(exception)
            numbers.append(number)
    if not isinstance(listed, list):
        parts.broken.add(("calendar", "exceptions"))
    return Calendar.model_construct(**values, exceptions=exceptions), tuple(numbers)


def _partial_labels(data: dict[str, Any], parts: _Parts) -> Labels:
    if "labels" not in data:
        return Labels()
    fits, labels = _fits(Labels, data["labels"])
    if fits:
        assert isinstance(labels, Labels)
        return labels
    if not isinstance(data["labels"], dict):
        parts.broken.add(("labels",))
        return Labels()
    found: dict[str, dict[str, Any]] = {}
    for name, key in (("products", ProductId), ("themes", ThemeId), ("nodes", NodeId)):
        if name in data["labels"]:
            found[name], _ = parts.entries(data, ("labels", name), key, _TEXTS)
    return Labels.model_construct(
        products=found.get("products", {}),
        themes=found.get("themes", {}),
        nodes=found.get("nodes", {}),
    )
