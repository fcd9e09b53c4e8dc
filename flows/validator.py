"""Checks that span a whole flow: targets, prompts, translations, labels, reachability, loops.

Each check yields a `Finding`: the document path (the loader turns it into a line number), a
problem code and its params (flows/problems.py has the English words for each code).

A draft whose parts did not all fit the model is checked too, on what parsed (`Gaps` names the
rest): a node that failed still exists as a target, its kind still needs its prompts, and
nothing is said that follows from a part already reported (no "unreachable" behind a node
whose targets could not be read, no "missing translation" when `languages` itself is wrong).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.holiday_names import known_holiday_names, unknown_holiday_names
from flows.model import (
    DEPARTMENT_PROMPTS,
    END_KINDS,
    STATUS_PROMPTS,
    SURVEY_TEXTS,
    SYSTEM_PROMPTS,
    VERIFY_PROMPTS,
    Calendar,
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


class Finding(NamedTuple):
    path: Path
    code: str
    params: dict[str, str]


def _finding(path: Path, code: str, *, where: str | None = None, **params: str) -> Finding:
    """A problem at `path`; its message starts with `where` (by default the path, dotted)."""
    return Finding(path, code, {"where": ".".join(path) if where is None else where, **params})


@dataclass(frozen=True)
class BrokenNode:
    """A node that did not fit the model: its kind when that is a known one, and every text in
    it (a superset of the nodes it leads to)."""

    kind: str | None
    names: frozenset[str]


@dataclass(frozen=True)
class Gaps:
    """What of a draft did not fit the model, so that the checks judge only the rest."""

    broken: frozenset[Path] = frozenset()  # parts that failed as a whole, e.g. ("languages",)
    nodes: Mapping[str, BrokenNode] = field(default_factory=dict)  # nodes that failed
    prompts: frozenset[str] = frozenset()  # prompts that are there but failed
    products: frozenset[str] = frozenset()  # products that are there but failed
    departments: frozenset[str] = frozenset()  # departments that are there but failed
    # the number in the document of each calendar exception that parsed (None: all did)
    exception_numbers: tuple[int, ...] | None = None

    def ok(self, *path: str) -> bool:
        """Whether `path` parsed: neither it nor a part around it failed as a whole."""
        return not any(path[:end] in self.broken for end in range(1, len(path) + 1))


NO_GAPS = Gaps()


def validate_flow(flow: Flow, gaps: Gaps = NO_GAPS) -> list[Finding]:
    checks = (
        _languages,
        _prompts,
        _products,
        _labels,
        _nodes,
        _loops_without_input,
        _calendar,
        _hold_music,
        _departments,
        _wrap_up_codes,
        _survey,
    )
    findings = [finding for check in checks for finding in check(flow, gaps)]
    if _has_unknown_target(flow, gaps) or not (gaps.ok("start") and gaps.ok("nodes")):
        # Reachability and exits follow the targets: with one missing they would report every
        # node behind it too, burying the one line the supervisor must fix.
        return findings
    return findings + [
        finding for check in (_reachability, _exits) for finding in check(flow, gaps)
    ]


def _node_ids(flow: Flow, gaps: Gaps) -> set[str]:
    """Every node of the document, parsed or not: a target may name any of them."""
    return set(flow.nodes) | set(gaps.nodes)


def _has_unknown_target(flow: Flow, gaps: Gaps) -> bool:
    known = _node_ids(flow, gaps)
    return (gaps.ok("start") and flow.start not in known) or any(
        target not in known for node in flow.nodes.values() for _, target in targets(node)
    )


def _languages(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    if not gaps.ok("languages"):
        return
    if len(set(flow.languages)) != len(flow.languages):
        yield _finding(("languages",), "language_twice")
    for language in flow.languages:
        if not LANGUAGE.match(language):
            yield _finding(("languages",), "language_code", language=language)
    if not gaps.ok("voices"):
        return
    for language in flow.languages:
        if language not in flow.voices:
            yield _finding(("voices",), "voice_missing", language=language)
    for language in flow.voices:
        if language not in flow.languages:
            yield _finding(("voices", language), "language_not_listed", language=language)


def _translations(
    path: Path, texts: Mapping[str, str], flow: Flow, gaps: Gaps
) -> Iterator[Finding]:
    """Every language of the flow has a text, and every text is in a language of the flow."""
    if not gaps.ok("languages"):
        return
    for language in flow.languages:
        if not texts.get(language, "").strip():
            yield _finding(path, "translation_missing", language=language)
    for language in texts:
        if language not in flow.languages:
            yield _finding((*path, language), "language_not_listed", language=language)


def _prompts(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    for prompt_id, texts in flow.prompts.items():
        if prompt_id != "queue_hold":
            yield from _translations(("prompts", prompt_id), texts, flow, gaps)
        elif gaps.ok("languages"):
            for language in texts:
                if language not in flow.languages:
                    path = ("prompts", prompt_id, language)
                    yield _finding(path, "language_not_listed", language=language)
        for language, text in texts.items():
            path = ("prompts", prompt_id, language)
            bad = _unspeakable(text)
            if bad is not None:
                yield _finding(path, "unspeakable_character", character=f"{ord(bad):04X}")
            allowed = allowed_placeholders(prompt_id)
            if not _formats(text, allowed):
                if allowed:
                    names = ", ".join(f"{{{name}}}" for name in sorted(allowed))
                    yield _finding(path, "unknown_placeholder", allowed=names)
                else:
                    yield _finding(path, "placeholder_not_allowed")
    if not gaps.ok("prompts"):
        return
    kinds: set[str] = {node.kind for node in flow.nodes.values()}
    kinds |= {node.kind for node in gaps.nodes.values() if node.kind}
    needed = [
        *SYSTEM_PROMPTS,
        *(VERIFY_PROMPTS if "verify" in kinds else ()),
        *(STATUS_PROMPTS if "status" in kinds else ()),
    ]
    present = set(flow.prompts) | gaps.prompts
    for prompt_id in needed:
        if prompt_id not in present:
            yield _finding(("prompts",), "prompt_missing", prompt=prompt_id)


# The values the engine passes with a prompt, besides the hours of the calendar.
PLACEHOLDERS = {
    "queue_position": {"position"},
    "queue_wait": {"minutes"},
    "department_whisper": {"product", "question"},
    "department_whisper_note": {"note"},
    **{prompt: {"product", "date"} for prompt in STATUS_PROMPTS if prompt.startswith("status_")},
}


def allowed_placeholders(prompt_id: str) -> set[str]:
    """What a prompt may say: its own values and the hours (flows/spoken_hours.py). {hours}
    needs the moment of the call, which the system prompts are said without (by the queue and
    the call handler); {weekly_hours} is the same every day, so every prompt may say it."""
    said_without_a_moment = (*SYSTEM_PROMPTS, *DEPARTMENT_PROMPTS)
    hours = {WEEKLY_HOURS} if prompt_id in said_without_a_moment else set(DAY_PLACEHOLDERS)
    return PLACEHOLDERS.get(prompt_id, set()) | hours


LANGUAGE = re.compile(r"^[a-z]{2}$")
SAMPLES: dict[str, object] = {
    "position": 3,
    "minutes": 5,
    "product": "een VOG",
    "date": "3 november",
    "question": "Status aanvraag",
    "note": "de beller wacht op een besluit",
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


def _hold_music(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    """Music per language: only the flow's languages (another would never be played)."""
    music = flow.queue.hold_music
    if not (gaps.ok("queue") and gaps.ok("languages") and isinstance(music, dict)):
        return
    for language in music:
        if language not in flow.languages:
            path = ("queue", "hold_music", language)
            yield _finding(path, "language_not_listed", language=language)


def _products(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    for product, names in flow.products.items():
        if gaps.ok("languages"):
            for language in flow.languages:
                if not names.get(language, "").strip():
                    yield _finding(("products", product), "name_missing", language=language)
    if not gaps.ok("products"):
        return
    known = set(flow.products) | gaps.products
    if gaps.ok("queue") and flow.queue.general_product not in known:
        path = ("queue", "general_product")
        yield _finding(path, "unknown_product", product=flow.queue.general_product)
    for node_id, node in flow.nodes.items():
        if isinstance(node, QueueNode) and node.product not in known:
            yield _finding(("nodes", node_id, "product"), "unknown_product", product=node.product)


def _labels(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    """Labels for products, themes and nodes the flow has, in every language of the flow."""
    if not gaps.ok("labels"):
        return
    products = set(flow.products) | gaps.products if gaps.ok("products") else None
    themes: set[str] | None = None
    if gaps.ok("nodes") and gaps.ok("queue"):
        themes = set(flow.themes())
        for node in gaps.nodes.values():
            themes |= node.names  # a broken queue node may name any of them
    nodes = _node_ids(flow, gaps) if gaps.ok("nodes") else None
    labels = flow.labels
    for product, texts in labels.products.items():
        path = ("labels", "products", product)
        if products is not None and product not in products:
            yield _finding(path, "unknown_product", product=product)
        yield from _translations(path, texts, flow, gaps)
    for theme, texts in labels.themes.items():
        path = ("labels", "themes", theme)
        if themes is not None and theme not in themes:
            yield _finding(path, "unknown_theme", theme=theme)
        yield from _translations(path, texts, flow, gaps)
    for node_id, texts in labels.nodes.items():
        path = ("labels", "nodes", node_id)
        if nodes is not None and node_id not in nodes:
            yield _finding(path, "unknown_node", node=node_id)
        yield from _translations(path, texts, flow, gaps)


def _nodes(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    known = _node_ids(flow, gaps)
    if gaps.ok("start") and gaps.ok("nodes") and flow.start not in known:
        yield _finding(("start",), "unknown_target", target=flow.start)
    prompts = set(flow.prompts) | gaps.prompts if gaps.ok("prompts") else None
    for node_id, node in flow.nodes.items():
        for field_name, target in targets(node):
            if target not in known:
                path = ("nodes", node_id, *field_name.split("."))
                where = f"nodes.{node_id}.{field_name}"
                yield _finding(path, "unknown_target", where=where, target=target)
        for field_name, prompt in prompts_used(node):
            if prompts is not None and prompt not in prompts:
                yield _finding(("nodes", node_id, field_name), "unknown_prompt", prompt=prompt)
        if isinstance(node, MenuNode):
            yield from _menu(flow, gaps, node_id, node)


def _menu(flow: Flow, gaps: Gaps, node_id: str, node: MenuNode) -> Iterator[Finding]:
    if node.repeat is not None and node.repeat in node.options:
        yield _finding(("nodes", node_id, "repeat"), "repeat_is_option", key=node.repeat)
    if not gaps.ok("languages"):
        return
    for key, option in node.options.items():
        if not isinstance(option, MenuOption) or option.language is None:
            continue
        if option.language not in flow.languages:
            path = ("nodes", node_id, "options", key, "language")
            where = f"nodes.{node_id}.options.{key}"
            yield _finding(path, "unknown_language", where=where, language=option.language)


def _graph(flow: Flow, gaps: Gaps) -> dict[str, list[str]]:
    """Where each node leads; a node that failed may lead to any node it names."""
    known = _node_ids(flow, gaps)
    graph = {
        node_id: [t for _, t in targets(node) if t in known] for node_id, node in flow.nodes.items()
    }
    for node_id, broken in gaps.nodes.items():
        graph[node_id] = sorted(name for name in broken.names if name in known)
    return graph


def _reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start] if start in graph else []
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(graph[node_id])
    return seen


def _reachability(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    graph = _graph(flow, gaps)
    if flow.start not in graph:
        return
    reachable = _reachable(graph, flow.start)
    for node_id in graph:
        if node_id not in reachable:
            yield _finding(("nodes", node_id), "unreachable", start=flow.start)


def _exits(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    """Every reachable node must be able to reach a queue or a hang-up."""
    graph = _graph(flow, gaps)
    reverse: dict[str, list[str]] = {node_id: [] for node_id in graph}
    for node_id, outs in graph.items():
        for target in outs:
            reverse[target].append(node_id)
    ends = [n for n, node in flow.nodes.items() if node.kind in END_KINDS]
    ends += list(gaps.nodes)  # a node that failed might end the call: say nothing about it
    can_exit: set[str] = set()
    for end in ends:
        can_exit |= _reachable(reverse, end)
    for node_id in sorted(_reachable(graph, flow.start) - can_exit):
        yield _finding(("nodes", node_id), "no_exit")


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


def _loops_without_input(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
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
            yield _finding(("nodes", first), "loop_without_input", nodes=names)


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


def _calendar(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    if not gaps.ok("calendar"):
        return
    numbers = gaps.exception_numbers or range(len(flow.calendar.exceptions))
    yield from _calendar_at(("calendar",), flow.calendar, numbers, flow, gaps)


def _calendar_at(
    at: Path, calendar: Calendar, numbers: Iterable[int], flow: Flow, gaps: Gaps
) -> Iterator[Finding]:
    """The checks of a calendar at `at`: the KCC's, or a department's hours (same format).
    `numbers`: the place in the document of each exception that parsed."""
    prefix = ".".join(at)
    if gaps.ok(*at, "timezone"):
        try:
            ZoneInfo(calendar.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            path: Path = (*at, "timezone")
            yield _finding(path, "unknown_timezone", timezone=calendar.timezone)
    holidays = calendar.public_holidays
    if holidays is not None and gaps.ok(*at, "public_holidays"):
        country = holidays.country
        if not known_holiday_names(country):
            path = (*at, "public_holidays", "country")
            yield _finding(path, "unknown_country", country=country)
        for number, name in enumerate(holidays.observe):
            if name in unknown_holiday_names(country, [name]) and known_holiday_names(country):
                known = ", ".join(sorted(known_holiday_names(country)))
                path = (*at, "public_holidays", "observe", str(number))
                where = f"{prefix}.public_holidays.observe"
                yield _finding(path, "unknown_holiday", where=where, holiday=name, known=known)
        if gaps.ok("languages"):
            for language in flow.languages:
                if language not in holidays.announcement:
                    path = (*at, "public_holidays", "announcement")
                    yield _finding(path, "translation_missing", language=language)
        yield from _announced(
            (*at, "public_holidays", "announcement"),
            holidays.announcement,
            {"holiday", *DAY_PLACEHOLDERS},
            "a holiday has no hours",
        )
    for number, exception in zip(numbers, calendar.exceptions, strict=False):
        if not gaps.ok("languages"):
            break
        for language in flow.languages:
            if language not in exception.announcement:
                path = (*at, "exceptions", str(number), "announcement")
                where = f"{prefix}.exceptions[{number}]"
                yield _finding(path, "translation_missing", where=where, language=language)
        own = OWN_HOURS_PLACEHOLDERS if exception.hours is not None else frozenset()
        yield from _announced(
            (*at, "exceptions", str(number), "announcement"),
            exception.announcement,
            {*DAY_PLACEHOLDERS, *own},
            "this exception closes the day (it has no hours)",
            where=f"{prefix}.exceptions[{number}].announcement",
        )
    reason = calendar.weekly_closed_reason
    if reason is not None:
        if gaps.ok("languages"):
            for language in flow.languages:
                if not reason.get(language, "").strip():
                    path = (*at, "weekly_closed_reason")
                    yield _finding(path, "translation_missing", language=language)
        yield from _announced(
            (*at, "weekly_closed_reason"),
            reason,
            {WEEKDAY},
            "it is given on a day without hours",
        )


def _departments(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    """Each department: a name in every language, a language and products the flow has, and its
    hours checked as the KCC's are; a flow with departments says the whisper prompts."""
    products = set(flow.products) | gaps.products if gaps.ok("products") else None
    for key, department in flow.departments.items():
        at: Path = ("departments", key)
        if gaps.ok("languages"):
            for language in flow.languages:
                if not department.name.get(language, "").strip():
                    yield _finding((*at, "name"), "name_missing", language=language)
            for language in department.name:
                if language not in flow.languages:
                    path = (*at, "name", language)
                    yield _finding(path, "language_not_listed", language=language)
            if department.language is not None and department.language not in flow.languages:
                path = (*at, "language")
                yield _finding(path, "unknown_language", language=department.language)
        for number, product in enumerate(department.products):
            if products is not None and product not in products:
                path = (*at, "products", str(number))
                where = f"departments.{key}.products"
                yield _finding(path, "unknown_product", where=where, product=product)
        if department.hours is not None:
            hours = department.hours
            yield from _calendar_at((*at, "hours"), hours, range(len(hours.exceptions)), flow, gaps)
    if (flow.departments or gaps.departments) and gaps.ok("prompts"):
        present = set(flow.prompts) | gaps.prompts
        for prompt_id in DEPARTMENT_PROMPTS:
            if prompt_id not in present:
                yield _finding(("prompts",), "prompt_missing", prompt=prompt_id)


def _wrap_up_codes(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    """Each list has codes, each code a label in every language, each product's list is for a
    product of the flow and repeats no shared code (one code, one label); and when the block
    is there, every product has a code to pick."""
    if not gaps.ok("wrap_up_codes"):
        return
    codes = flow.wrap_up_codes
    products = set(flow.products) | gaps.products if gaps.ok("products") else None
    lists: list[tuple[Path, dict[str, dict[str, str]]]] = [
        (("wrap_up_codes", "shared"), codes.shared)
    ]
    lists += [(("wrap_up_codes", "per_product", p), own) for p, own in codes.per_product.items()]
    for path, listed in lists:
        if not listed and (path[-1] != "shared" or "shared" in codes.model_fields_set):
            yield _finding(path, "wrap_up_codes_empty")
        for code, labels in listed.items():
            yield from _translations((*path, code), labels, flow, gaps)
    for product, own in codes.per_product.items():
        at: Path = ("wrap_up_codes", "per_product", product)
        if products is not None and product not in products:
            yield _finding(at, "unknown_product", product=product)
        for code in own:
            if code in codes.shared:
                yield _finding((*at, code), "wrap_up_code_duplicate", wrap_up_code=code)
    if codes.shared or products is None or not codes.model_fields_set:
        return
    for product in sorted(products - set(codes.per_product)):
        path = ("wrap_up_codes", "per_product")
        where = "wrap_up_codes"
        yield _finding(path, "wrap_up_codes_missing", where=where, product=product)


def _survey(flow: Flow, gaps: Gaps) -> Iterator[Finding]:
    """Every text of the survey in every language of the flow (on or off: turning it on must
    not be what makes a flow invalid), and sayable."""
    survey = flow.survey
    if survey is None or not gaps.ok("survey"):
        return
    for name in SURVEY_TEXTS:
        texts: dict[str, str] = getattr(survey, name)
        yield from _translations(("survey", name), texts, flow, gaps)
        for language, text in texts.items():
            bad = _unspeakable(text)
            if bad is not None:
                path = ("survey", name, language)
                yield _finding(path, "unspeakable_character", character=f"{ord(bad):04X}")


def _announced(
    path: Path,
    texts: dict[str, str],
    allowed: set[str],
    why: str,
    *,
    where: str | None = None,
) -> Iterator[Finding]:
    """A placeholder of the calendar's texts where it cannot be filled."""
    for language, text in texts.items():
        for name in _ANNOUNCED.findall(text):
            if name not in allowed:
                listed = ", ".join(f"{{{n}}}" for n in sorted(allowed))
                yield _finding(
                    (*path, language),
                    "placeholder_cannot_be_filled",
                    where=f"{where or '.'.join(path)}.{language}",
                    name=name,
                    why=why,
                    allowed=listed,
                )
