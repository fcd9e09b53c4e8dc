"""Checks that span a whole flow: targets, prompts, translations, reachability and loops.

Each check yields (document path, message); the loader turns the path into a line number.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.holiday_names import known_holiday_names, unknown_holiday_names
from flows.model import (
    END_KINDS,
    STATUS_PROMPTS,
    SYSTEM_PROMPTS,
    VERIFY_PROMPTS,
    Flow,
    GatherNode,
    MenuNode,
    MenuOption,
    Node,
    QueueNode,
    StatusNode,
    VerifyNode,
    prompts_used,
    targets,
)
from flows.spoken_hours import (
    CLOSES,
    DAY_PLACEHOLDERS,
    HOURS,
    OPENS,
    OWN_HOURS_PLACEHOLDERS,
    WEEKDAY,
    WEEKLY_HOURS,
)

Path = tuple[str, ...]
Finding = tuple[Path, str]


def _path(*parts: str) -> Path:
    return parts


def validate_flow(flow: Flow) -> list[Finding]:
    checks = (_languages, _prompts, _products, _nodes, _loops_without_input, _calendar)
    findings = [finding for check in checks for finding in check(flow)]
    if _has_unknown_target(flow):
        # Reachability and exits follow the targets: with one missing they would report every
        # node behind it too, burying the one line the supervisor must fix.
        return findings
    return findings + [finding for check in (_reachability, _exits) for finding in check(flow)]


def _has_unknown_target(flow: Flow) -> bool:
    return flow.start not in flow.nodes or any(
        target not in flow.nodes for node in flow.nodes.values() for _, target in targets(node)
    )


def _languages(flow: Flow) -> Iterator[Finding]:
    if len(set(flow.languages)) != len(flow.languages):
        yield ("languages",), "languages: a language is listed twice"
    for language in flow.languages:
        if not LANGUAGE.match(language):
            yield ("languages",), f"languages: {language!r} is not a language code like nl or en"
    for language in flow.languages:
        if language not in flow.voices:
            yield ("voices",), f"voices: no voice for language {language!r}"
    for language in flow.voices:
        if language not in flow.languages:
            yield ("voices", language), f"voices.{language}: {language!r} is not in languages"


def _prompts(flow: Flow) -> Iterator[Finding]:
    for prompt_id, texts in flow.prompts.items():
        for language in flow.languages:
            if not texts.get(language, "").strip() and prompt_id != "queue_hold":
                yield (
                    ("prompts", prompt_id),
                    f"prompts.{prompt_id}: missing translation for {language!r}",
                )
        for language in texts:
            if language not in flow.languages:
                path = _path("prompts", prompt_id, language)
                yield path, f"prompts.{prompt_id}.{language}: {language!r} is not in languages"
        for language, text in texts.items():
            bad = _unspeakable(text)
            if bad is not None:
                yield (
                    _path("prompts", prompt_id, language),
                    f"prompts.{prompt_id}.{language}: contains U+{ord(bad):04X}, a control or "
                    "surrogate character that cannot be spoken or written in TwiML",
                )
            if not _formats(text, allowed_placeholders(prompt_id)):
                path = _path("prompts", prompt_id, language)
                allowed = ", ".join(
                    f"{{{name}}}" for name in sorted(allowed_placeholders(prompt_id))
                )
                yield (
                    path,
                    (
                        f"prompts.{prompt_id}.{language}: unknown {{placeholder}} in the text "
                        f"(allowed here: {allowed or 'none'}; write {{{{ and }}}} for braces)"
                    ),
                )
    kinds = {node.kind for node in flow.nodes.values()}
    needed = [
        *SYSTEM_PROMPTS,
        *(VERIFY_PROMPTS if "verify" in kinds else ()),
        *(STATUS_PROMPTS if "status" in kinds else ()),
    ]
    for prompt_id in needed:
        if prompt_id not in flow.prompts:
            yield ("prompts",), f"prompts: missing prompt {prompt_id!r} (the engine says it)"


# The values the engine passes with a prompt, besides the hours of the calendar.
PLACEHOLDERS = {
    "queue_position": {"position"},
    "queue_wait": {"minutes"},
    **{prompt: {"product", "date"} for prompt in STATUS_PROMPTS if prompt.startswith("status_")},
}


def allowed_placeholders(prompt_id: str) -> set[str]:
    """What a prompt may say: its own values and the hours (flows/spoken_hours.py). {hours}
    needs the moment of the call, which the system prompts are said without (by the queue and
    the call handler); {weekly_hours} is the same every day, so every prompt may say it."""
    hours = {WEEKLY_HOURS} if prompt_id in SYSTEM_PROMPTS else set(DAY_PLACEHOLDERS)
    return PLACEHOLDERS.get(prompt_id, set()) | hours


LANGUAGE = re.compile(r"^[a-z]{2}$")
SAMPLES: dict[str, object] = {
    "position": 3,
    "minutes": 5,
    "product": "een VOG",
    "date": "3 november",
    WEEKLY_HOURS: "van maandag tot en met vrijdag van 9.00 tot 17.00 uur",
    HOURS: "van maandag tot en met vrijdag van 9.00 tot 17.00 uur",
    OPENS: "9.00",
    CLOSES: "17.00",
}
# In the calendar's texts (not format strings: only these names are replaced, other braces stay).
_ANNOUNCED = re.compile(
    r"\{(" + "|".join((OPENS, CLOSES, HOURS, WEEKLY_HOURS, "holiday", WEEKDAY)) + r")\}"
)


def _formats(text: str, allowed: set[str]) -> bool:
    """The text formats with the engine's values, exactly as it will be said."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        if not names <= allowed:
            return False
        text.format(**{name: SAMPLES[name] for name in allowed})
    except (ValueError, KeyError, IndexError, AttributeError):
        return False
    return True


def _unspeakable(text: str) -> str | None:
    """The first character XML 1.0 cannot carry (TwiML is XML), if any."""
    for char in text:
        code = ord(char)
        if (code < 0x20 and char not in "\t\n\r") or 0xD800 <= code <= 0xDFFF or code >= 0xFFFE:
            return char
    return None


def _products(flow: Flow) -> Iterator[Finding]:
    for product, names in flow.products.items():
        for language in flow.languages:
            if not names.get(language, "").strip():
                yield ("products", product), f"products.{product}: missing name for {language!r}"
    if flow.queue.general_product not in flow.products:
        path = _path("queue", "general_product")
        yield path, f"queue.general_product: unknown product {flow.queue.general_product!r}"
    for node_id, node in flow.nodes.items():
        if isinstance(node, QueueNode) and node.product not in flow.products:
            path = _path("nodes", node_id, "product")
            yield path, f"nodes.{node_id}.product: unknown product {node.product!r}"


def _nodes(flow: Flow) -> Iterator[Finding]:
    if flow.start not in flow.nodes:
        yield ("start",), f"start: unknown target {flow.start!r}"
    for node_id, node in flow.nodes.items():
        for field, target in targets(node):
            if target not in flow.nodes:
                path = _path("nodes", node_id, *field.split("."))
                yield path, f"nodes.{node_id}.{field}: unknown target {target!r}"
        for field, prompt in prompts_used(node):
            if prompt not in flow.prompts:
                yield (
                    ("nodes", node_id, field),
                    f"nodes.{node_id}.{field}: unknown prompt {prompt!r}",
                )
        if isinstance(node, MenuNode):
            yield from _menu(flow, node_id, node)


def _menu(flow: Flow, node_id: str, node: MenuNode) -> Iterator[Finding]:
    if node.repeat is not None and node.repeat in node.options:
        path = _path("nodes", node_id, "repeat")
        yield path, f"nodes.{node_id}.repeat: key {node.repeat!r} is also an option"
    for key, option in node.options.items():
        if isinstance(option, MenuOption) and option.language not in (None, *flow.languages):
            path = _path("nodes", node_id, "options", key, "language")
            yield path, f"nodes.{node_id}.options.{key}: unknown language {option.language!r}"


def _graph(flow: Flow) -> dict[str, list[str]]:
    return {
        node_id: [t for _, t in targets(node) if t in flow.nodes]
        for node_id, node in flow.nodes.items()
    }


def _reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start] if start in graph else []
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(graph[node_id])
    return seen


def _reachability(flow: Flow) -> Iterator[Finding]:
    reachable = _reachable(_graph(flow), flow.start)
    if flow.start not in flow.nodes:
        return
    for node_id in flow.nodes:
        if node_id not in reachable:
            yield ("nodes", node_id), f"nodes.{node_id}: unreachable from start {flow.start!r}"


def _exits(flow: Flow) -> Iterator[Finding]:
    """Every reachable node must be able to reach a queue or a hang-up."""
    graph = _graph(flow)
    reverse: dict[str, list[str]] = {node_id: [] for node_id in graph}
    for node_id, outs in graph.items():
        for target in outs:
            reverse[target].append(node_id)
    ends = [n for n, node in flow.nodes.items() if node.kind in END_KINDS]
    can_exit: set[str] = set()
    for end in ends:
        can_exit |= _reachable(reverse, end)
    for node_id in sorted(_reachable(graph, flow.start) - can_exit):
        yield (
            ("nodes", node_id),
            f"nodes.{node_id}: loop without an exit (never reaches a queue or hangup)",
        )


def _passes_without_input(node: Node) -> list[str]:
    """The targets a node can go to without waiting for the caller."""
    match node:
        case VerifyNode():
            return [node.verified, node.unverified]  # already verified, or out of tries
        case StatusNode():
            return [node.adviser, node.goodbye]  # not verified
        case MenuNode() | GatherNode():
            return []
    return [target for _, target in targets(node)]


def _loops_without_input(flow: Flow) -> Iterator[Finding]:
    """A cycle that never waits for a key would spin for ever (or until Twilio gives up)."""
    automatic = {
        node_id: [t for t in _passes_without_input(node) if t in flow.nodes]
        for node_id, node in flow.nodes.items()
    }
    for component in _strongly_connected(automatic):
        looping = len(component) > 1 or component[0] in automatic[component[0]]
        if looping:
            first = sorted(component)[0]
            names = " -> ".join(sorted(component))
            yield (
                ("nodes", first),
                f"nodes.{first}: loop without input ({names}) never waits for the caller",
            )


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so that a long flow cannot overflow the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


def _calendar(flow: Flow) -> Iterator[Finding]:
    calendar = flow.calendar
    try:
        ZoneInfo(calendar.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield (
            ("calendar", "timezone"),
            f"calendar.timezone: unknown time zone {calendar.timezone!r}",
        )
    if calendar.public_holidays is not None:
        country = calendar.public_holidays.country
        if not known_holiday_names(country):
            path = _path("calendar", "public_holidays", "country")
            yield path, f"calendar.public_holidays.country: no holidays known for {country!r}"
        for number, name in enumerate(calendar.public_holidays.observe):
            if name in unknown_holiday_names(country, [name]) and known_holiday_names(country):
                known = ", ".join(sorted(known_holiday_names(country)))
                path = _path("calendar", "public_holidays", "observe", str(number))
                yield (
                    path,
                    f"calendar.public_holidays.observe: unknown holiday {name!r} (known: {known})",
                )
        for language in flow.languages:
            if language not in calendar.public_holidays.announcement:
                path = _path("calendar", "public_holidays", "announcement")
                yield (
                    path,
                    f"calendar.public_holidays.announcement: missing translation for {language!r}",
                )
        announcement = calendar.public_holidays.announcement
        yield from _announced(
            ("calendar", "public_holidays", "announcement"),
            "calendar.public_holidays.announcement",
            announcement,
            {"holiday", *DAY_PLACEHOLDERS},
            "a holiday has no hours",
        )
    for number, exception in enumerate(calendar.exceptions):
        for language in flow.languages:
            if language not in exception.announcement:
                path = _path("calendar", "exceptions", str(number), "announcement")
                yield path, f"calendar.exceptions[{number}]: missing translation for {language!r}"
        own = OWN_HOURS_PLACEHOLDERS if exception.hours is not None else frozenset()
        yield from _announced(
            ("calendar", "exceptions", str(number), "announcement"),
            f"calendar.exceptions[{number}].announcement",
            exception.announcement,
            {*DAY_PLACEHOLDERS, *own},
            "this exception closes the day (it has no hours)",
        )
    if calendar.weekly_closed_reason is not None:
        for language in flow.languages:
            if not calendar.weekly_closed_reason.get(language, "").strip():
                path = _path("calendar", "weekly_closed_reason")
                yield path, f"calendar.weekly_closed_reason: missing translation for {language!r}"
        yield from _announced(
            ("calendar", "weekly_closed_reason"),
            "calendar.weekly_closed_reason",
            calendar.weekly_closed_reason,
            {WEEKDAY},
            "it is given on a day without hours",
        )


def _announced(
    path: Path, where: str, texts: dict[str, str], allowed: set[str], why: str
) -> Iterator[Finding]:
    """A placeholder of the calendar's texts where it cannot be filled."""
    for language, text in texts.items():
        for name in _ANNOUNCED.findall(text):
            if name not in allowed:
                listed = ", ".join(f"{{{n}}}" for n in sorted(allowed))
                yield (
                    (*path, language),
                    f"{where}.{language}: {{{name}}} cannot be filled here ({why}; "
                    f"allowed here: {listed})",
                )
