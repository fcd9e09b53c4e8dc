"""Closing the contact centre for a day (or part of one) and the outage message, as edits of a
flow's YAML text: the result is a new version that goes through the same checks, audit and
numbering as any edit (ivr/flow_publishing.py). The edit touches only the lines it adds or
removes, so the rest of the text (comments, order) stays as the author wrote it.

A closure is a calendar exception (flows/model.py CalendarException): without `hours` the day
is closed; closing part of a day leaves the hours before or after it open. Undoing a closure
removes the exception of that date."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from flows.errors import ErrorKind, FlowError
from flows.model import OpeningRange

# What callers hear on a closed day unless the supervisor says otherwise ({opens}/{closes}:
# the hours left open, flows/spoken_hours.py).
CLOSED_ALL_DAY = {
    "nl": "Het klantcontactcentrum is vandaag gesloten.",
    "en": "The contact centre is closed today.",
}
CLOSED_PART_OF_DAY = {
    "nl": "Vandaag is het klantcontactcentrum bereikbaar van {opens} tot {closes} uur.",
    "en": "Today the contact centre is open from {opens} to {closes}.",
}
OUTAGE_MESSAGE = {
    "nl": "Door een storing kunnen wij u op dit moment minder goed helpen. Excuses voor het "
    "ongemak.",
    "en": "Because of a technical problem we cannot help you as well as usual at the moment. "
    "We apologise for the inconvenience.",
}


class ClosureError(FlowError):
    """A closure or outage change that cannot be made; `code` says why."""

    kind = ErrorKind.INVALID

    def __init__(self, code: str, message: str, *, conflict: bool = False, **params: str) -> None:
        super().__init__(message, **params)
        self.code = code
        if conflict:
            self.kind = ErrorKind.CONFLICT  # type: ignore[misc]


@dataclass(frozen=True)
class ClosedPart:
    """The part of a day to close: [closed_from, closed_until) local time."""

    closed_from: dt.time
    closed_until: dt.time


def hours_left_open(normal: OpeningRange | None, part: ClosedPart | None) -> OpeningRange | None:
    """The day's hours after closing `part` of it (None: closed all day). A part in the middle
    of the day would need two ranges, which the calendar cannot hold: it is refused."""
    if normal is None:
        raise ClosureError("already_closed", "the contact centre is closed that day", conflict=True)
    if part is None:
        return None
    start, end = part.closed_from, part.closed_until
    if end <= start:
        raise ClosureError("range_invalid", "the end of the closure must be after its start")
    if end <= normal.opens or start >= normal.closes:
        raise ClosureError("closure_outside_hours", "the contact centre is not open then")
    if start <= normal.opens and end >= normal.closes:
        return None
    if start <= normal.opens:
        return OpeningRange(opens=end, closes=normal.closes)
    if end >= normal.closes:
        return OpeningRange(opens=normal.opens, closes=start)
    raise ClosureError(
        "closure_splits_day",
        "close from a time until the end of the day, or from the opening until a time",
    )


def range_text(hours: OpeningRange) -> str:
    closes = "24:00" if hours.closes >= dt.time(23, 59, 59) else f"{hours.closes:%H:%M}"
    return f"{hours.opens:%H:%M}-{closes}"


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _texts(texts: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{code}: {_quoted(text)}" for code, text in texts.items()) + "}"


def _exception_item(
    day: dt.date, hours: OpeningRange | None, announcement: Mapping[str, str]
) -> str:
    parts = [f"date: {day.isoformat()}"]
    if hours is not None:
        parts.append(f"hours: {_quoted(range_text(hours))}")
    parts.append(f"announcement: {_texts(announcement)}")
    return "{" + ", ".join(parts) + "}"


def _value(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _end(node: yaml.Node) -> int:
    """Where the node's own text ends (a block collection's end mark is the next token)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _end(node.value[-1])
    return int(node.end_mark.index)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_after(text: str, index: int) -> int:
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _root(text: str) -> yaml.MappingNode:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise ClosureError("flow_not_a_mapping", "the live flow is not a YAML mapping")
    return root


def _calendar(root: yaml.MappingNode) -> yaml.MappingNode:
    found = _value(root, "calendar")
    if found is None or not isinstance(found[1], yaml.MappingNode) or found[1].flow_style:
        raise ClosureError("calendar_not_editable", "the flow's calendar is not a block mapping")
    return found[1]


def _item_date(item: yaml.Node) -> str | None:
    if isinstance(item, yaml.MappingNode):
        found = _value(item, "date")
        if found is not None and isinstance(found[1], yaml.ScalarNode):
            return str(found[1].value)
    return None


def with_closure(
    text: str, day: dt.date, hours: OpeningRange | None, announcement: Mapping[str, str]
) -> str:
    """`text` with a calendar exception for `day` (closed, or open only `hours`)."""
    root = _root(text)
    calendar = _calendar(root)
    item = _exception_item(day, hours, announcement)
    found = _value(calendar, "exceptions")
    if found is None:
        indent = " " * calendar.value[0][0].start_mark.column
        at = _line_after(text, _end(calendar))
        block = f"{indent}exceptions:\n{indent}  - {item}\n"
        prefix = "" if text[:at].endswith("\n") else "\n"
        return text[:at] + prefix + block + text[at:]
    key, sequence = found
    if not isinstance(sequence, yaml.SequenceNode):
        raise ClosureError("calendar_not_editable", "calendar.exceptions is not a list")
    if any(_item_date(i) == day.isoformat() for i in sequence.value):
        raise ClosureError("day_has_exception", "that day already has its own hours", conflict=True)
    if sequence.flow_style:
        start, end = sequence.start_mark.index, sequence.end_mark.index
        inner = text[start + 1 : end - 1].strip().rstrip(",")
        indent = " " * (key.start_mark.column + 2)
        items = [*(line for line in [inner] if line), item]
        if inner:
            return text[:start] + "[" + ", ".join(items) + "]" + text[end:]
        return text[: key.end_mark.index] + f":\n{indent}- {item}" + text[end:]
    first = sequence.value[0]
    dash = _line_start(text, first.start_mark.index)
    indent = " " * (text.index("-", dash) - dash)
    later = [i for i in sequence.value if (_item_date(i) or "") > day.isoformat()]
    at = (
        _line_start(text, later[0].start_mark.index) if later else _line_after(text, _end(sequence))
    )
    prefix = "" if text[:at].endswith("\n") else "\n"
    return text[:at] + prefix + f"{indent}- {item}\n" + text[at:]


def without_closure(text: str, day: dt.date) -> str:
    """`text` without the calendar exception of `day`."""
    calendar = _calendar(_root(text))
    found = _value(calendar, "exceptions")
    sequence = found[1] if found is not None else None
    if not isinstance(sequence, yaml.SequenceNode):
        sequence = None
    items = sequence.value if sequence is not None else []
    match = [i for i in items if _item_date(i) == day.isoformat()]
    if not match or found is None or sequence is None:
        raise ClosureError("no_closure", "that day has no closure", conflict=True)
    item = match[0]
    if sequence.flow_style or len(items) == 1:
        # Rewrite the list as a flow list of the others (none: an empty list).
        others = [text[i.start_mark.index : _end(i)] for i in items if i is not item]
        start = found[0].end_mark.index
        end = _end(sequence) if not sequence.flow_style else sequence.end_mark.index
        return text[:start] + ": [" + ", ".join(others) + "]" + text[end:]
    start = _line_start(text, item.start_mark.index)
    return text[:start] + text[_line_after(text, _end(item)) :]


def with_outage(text: str, *, active: bool, prompt: Mapping[str, str]) -> str:
    """`text` with its outage message on or off (added when the flow has none)."""
    root = _root(text)
    value = f"{{active: {'true' if active else 'false'}, prompt: {_texts(prompt)}}}"
    found = _value(root, "outage")
    if found is None:
        prefix = "" if text.endswith("\n") else "\n"
        comment = "# Said at the start of every call while active (the supervisor page).\n"
        return f"{text}{prefix}\n{comment}outage: {value}\n"
    key, node = found
    start = key.end_mark.index
    return text[:start] + ": " + value + text[_end(node) :]
