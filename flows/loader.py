"""Load a flow document: YAML text -> checked `Flow`, or every problem with its file and line."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flows.errors import FlowInvalid, Problem
from flows.model import NODE_KINDS, Flow
from flows.validator import validate_flow
from flows.yaml_source import YamlSource, YamlSyntaxError, read_yaml


def load_flow(path: str | Path) -> Flow:
    """Read and check a flow file; raises `FlowInvalid` listing every problem."""
    return parse_flow(read_flow_text(path), str(path))


def read_flow_text(path: str | Path) -> str:
    """The text of a flow file; unreadable or not UTF-8 is a `FlowInvalid` too."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowInvalid([Problem(str(path), 0, f"cannot read the flow: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise FlowInvalid([Problem(str(path), 0, f"not UTF-8 text: {exc.reason}")]) from exc


def parse_flow(text: str, filename: str = "<flow>") -> Flow:
    flow, problems = check_flow_text(text, filename)
    if problems or flow is None:
        raise FlowInvalid(problems)
    return flow


def check_flow_text(text: str, filename: str = "<flow>") -> tuple[Flow | None, list[Problem]]:
    """All problems of a flow document (empty when it is good) and the flow when it is good."""
    try:
        source = read_yaml(text)
    except YamlSyntaxError as exc:
        return None, [Problem(filename, exc.line, str(exc))]
    problems = [Problem(filename, line, message) for line, message in source.duplicates]
    if not isinstance(source.data, dict):
        return None, [*problems, Problem(filename, 1, "a flow must be a mapping of keys")]
    try:
        flow = Flow.model_validate(source.data)
    except ValidationError as exc:
        problems += [_problem(filename, source, error) for error in exc.errors()]
        return None, sorted(set(problems))
    for path, message in validate_flow(flow):
        problems.append(Problem(filename, source.line_of(path), message))
    problems = sorted(set(problems))
    return (None if problems else flow), problems


def _problem(filename: str, source: YamlSource, error: ErrorDetails) -> Problem:
    loc = _document_path(source.data, error["loc"])
    where = ".".join(loc) or "flow"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        message = f"{where}: unknown key{hint}"
    elif kind == "missing":
        message = f"{'.'.join(loc[:-1]) or 'flow'}: missing key {loc[-1]!r}"
        loc = loc[:-1]
    elif kind == "union_tag_not_found":
        message = f"{where}: missing key 'kind' (one of: {', '.join(NODE_KINDS)})"
    elif kind == "union_tag_invalid":
        loc = (*loc, "kind")
        message = f"{where}: unknown node kind {_tag(error)!r} (one of: {', '.join(NODE_KINDS)})"
    else:
        message = f"{where}: {_clean(error['msg'])}"
    return Problem(filename, source.line_of(loc), message)


def _tag(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    return str(ctx.get("tag", "?"))


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


def _document_path(data: Any, loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """Pydantic's error location without the parts that are not in the document (union tags)."""
    path: list[str] = []
    current = data
    for index, part in enumerate(loc):
        key = str(part)
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
        return _step(models[0], part) if len(models) == 1 else None
    return None
