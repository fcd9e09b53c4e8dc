"""Every path `kcc flows paths` lists is replayed through the real engine: the same words, the
same end. flows/paths.py and ivr/engine.py read the same flow document; this keeps them honest.

The shipped flow is replayed in each of its languages, and so are two small flows written here
to reach what the shipped one does not: a gather, a status node for an unverified caller, a
closure of several days, an exception that never applies, an announcement left empty, a queue
with a `closed:` branch and no hours node before it, identity checks passed without asking, a
loop back to a say node, menus without complaints. Each path is played twice, with different
keys for the same choices (tests/support/path_replay.py says how).

A test of its own makes a wrong expectation on purpose for each kind of difference (another
queue, an extra or missing prompt, a wrong count of mistakes, another language, another loop or
same-as node, a clock that cannot be both open and closed) and checks that it is caught.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import yaml

from flows.loader import load_flow, parse_flow
from flows.model import STATUS_PROMPTS, SYSTEM_PROMPTS, VERIFY_PROMPTS, Flow
from flows.paths import EndKind, FlowPath, PathReport, Said, flow_paths
from tests.support.path_replay import replay_problems
from tests.support.paths import SHIPPED

VARIANTS = (0, 1)  # two ways of pressing the same path's keys (see tests/support/path_replay.py)


def _texts(prompts: list[str]) -> dict[str, dict[str, str]]:
    """nl and en texts for the engine's and the nodes' prompts; status texts with placeholders."""
    texts = {name: {"nl": f"NL {name}.", "en": f"EN {name}."} for name in prompts}
    for name in STATUS_PROMPTS:
        if not name.startswith("status_options"):
            texts[name] = {
                "nl": f"{name}: {{product}}, {{date}}.",
                "en": f"{name} {{product}} {{date}}",
            }
    texts["queue_position"] = {"nl": "Nummer {position}.", "en": "Number {position}."}
    texts["queue_wait"] = {"nl": "{minutes} minuten.", "en": "{minutes} minutes."}
    return texts


def _document(name: str, nodes: dict[str, Any], start: str, calendar: dict[str, Any]) -> str:
    own = sorted(
        {n[f] for n in nodes.values() for f in ("prompt", "no_input", "invalid") if f in n}
    )
    document = {
        "name": name,
        "languages": ["nl", "en"],
        "voices": {
            "nl": {"language": "nl-NL", "voice": "Polly.Lotte"},
            "en": {"language": "en-GB", "voice": "Polly.Amy"},
        },
        "products": {
            "permit": {"nl": "een vergunning", "en": "a permit"},
            "general": {"nl": "uw vraag", "en": "your question"},
        },
        "calendar": calendar,
        "start": start,
        "nodes": nodes,
        "prompts": _texts([*SYSTEM_PROMPTS, *VERIFY_PROMPTS, *STATUS_PROMPTS, *own]),
    }
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


WEEKDAYS = {day: "09:00-17:00" for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}

# With opening hours: a holiday, a shortened day inside a closure of several days (announced in
# Dutch only), a day open until midnight and an exception that never applies, a menu with
# a repeat key and complaints, a gather with a pattern, two identity checks, a status node, queues
# with and without a closed branch, a language switch, a goto and a loop back to a say node.
DESK = _document(
    "desk",
    {
        "hello": {"kind": "say", "prompt": "hello", "next": "hours"},
        "hours": {"kind": "hours", "open": "main", "closed": "night"},
        "main": {
            "kind": "menu",
            "prompt": "main",
            "options": {
                "1": "code",
                "2": {"next": "main", "language": "en"},
                "3": "check",
                "4": "sub",
            },
            "repeat": "0",
            "retries": 2,
            "no_input": "no_input",
            "invalid": "invalid",
            "on_fail": "fallback",
        },
        "fallback": {"kind": "goto", "next": "q_general"},
        "code": {
            "kind": "gather",
            "prompt": "code",
            "store": "code",
            "min_digits": 4,
            "max_digits": 4,
            "pattern": "[1-9][0-9]{3}",
            "retries": 1,
            "no_input": "no_input",
            "invalid": "invalid",
            "next": "check",
            "on_fail": "bye",
        },
        "check": {"kind": "verify", "tries": 2, "verified": "status", "unverified": "q_permit"},
        "status": {"kind": "status", "adviser": "q_status", "goodbye": "bye", "retries": 1},
        "q_status": {
            "kind": "queue",
            "product": "permit",
            "theme": "status",
            "prompt": "connecting",
            "closed": "night",
        },
        "q_permit": {
            "kind": "queue",
            "product": "permit",
            "theme": "general",
            "prompt": "connecting",
            "closed": "night",
        },
        "q_general": {"kind": "queue", "product": "general", "theme": "general"},
        "sub": {
            "kind": "menu",
            "prompt": "sub",
            "options": {"1": "q_permit", "*": "main"},
            "retries": 0,
            "invalid": "invalid",
            "on_fail": "hello",
        },
        "night": {
            "kind": "menu",
            "prompt": "night",
            "options": {"1": "night_check"},
            "retries": 0,
            "no_input": "no_input",
            "on_fail": "bye",
        },
        "night_check": {
            "kind": "verify",
            "required": True,
            "verified": "status",
            "unverified": "bye",
        },
        "bye": {"kind": "hangup", "prompt": "bye"},
    },
    "hello",
    {
        "timezone": "Europe/Amsterdam",
        "weekly": WEEKDAYS,
        "public_holidays": {
            "country": "NL",
            "observe": ["King's Day", "Christmas Day"],
            "announcement": {"nl": "Vandaag is het {holiday}.", "en": "Today is {holiday}."},
        },
        "exceptions": [
            {
                "date": "2026-12-24",
                "hours": "09:00-13:00",
                "announcement": {"nl": "Vandaag tot 13 uur.", "en": "Open until 1 pm today."},
            },
            {
                "date": "2026-12-24",
                "until": "2026-12-31",
                "announcement": {"nl": "Gesloten tot januari.", "en": ""},  # nothing in English
            },
            {
                "date": "2026-12-31",
                "hours": "10:00-24:00",
                "announcement": {"nl": "Vandaag vanaf 10 uur.", "en": "Open from 10 am today."},
            },
            {  # never decides a day: the one above, listed first, does
                "date": "2026-12-31",
                "hours": "09:00-12:00",
                "announcement": {"nl": "Nooit gezegd.", "en": "Never said."},
            },
        ],
    },
)

# Without opening hours: a language choice first, menus without complaints, two identity checks
# in a row (the second passed once verified or out of tries), a status node reached verified and
# unverified with the clock unknown, a queue with a closed branch, a hang-up without words.
LEAN = _document(
    "lean",
    {
        "lang": {
            "kind": "menu",
            "prompt": "lang",
            "options": {"1": {"next": "first", "language": "en"}, "2": "first", "3": "q"},
            "retries": 0,
            "on_fail": "first",
        },
        "first": {
            "kind": "verify",
            "tries": 2,
            "retries": 0,
            "verified": "second",
            "unverified": "second",
        },
        "second": {"kind": "verify", "tries": 1, "verified": "info", "unverified": "info"},
        "info": {"kind": "status", "adviser": "q", "goodbye": "out", "retries": 0},
        "q": {"kind": "queue", "product": "general", "theme": "general", "closed": "out"},
        "out": {"kind": "hangup"},
    },
    "lang",
    {"timezone": "Europe/Amsterdam", "weekly": WEEKDAYS},
)


KCC = load_flow(SHIPPED)


@cache
def flows() -> dict[str, Flow]:
    return {
        "kcc": KCC,
        "desk": parse_flow(DESK, "desk.yaml"),
        "lean": parse_flow(LEAN, "lean.yaml"),
    }


@cache
def report(flow: str, language: str) -> PathReport:
    return flow_paths(flows()[flow], language)


def _cases() -> list[Any]:
    return [
        pytest.param(name, language, path.number, id=f"{name}-{language}-{path.number:03d}")
        for name, flow in flows().items()
        for language in flow.languages
        for path in report(name, language).paths
    ]


CASES = _cases()


@pytest.mark.parametrize(("flow", "language", "number"), CASES)
def test_the_engine_takes_the_listed_path(flow: str, language: str, number: int) -> None:
    listed = report(flow, language)
    path = listed.paths[number - 1]
    assert path.number == number
    problems = [p for v in VARIANTS for p in replay_problems(flows()[flow], listed, path, v)]
    assert not problems, "\n".join(problems)


def test_every_listed_path_is_replayed() -> None:
    for name, flow in flows().items():
        for language in flow.languages:
            numbers = [c.values[2] for c in CASES if c.values[:2] == (name, language)]
            fresh = flow_paths(flow, language)
            assert numbers == [p.number for p in fresh.paths] == list(range(1, len(numbers) + 1))
    counts = {(c.values[0], c.values[1]) for c in CASES}
    assert counts == {(n, lang) for n, f in flows().items() for lang in f.languages}


def test_the_small_flows_reach_every_kind_of_node_branch_and_end() -> None:
    reports = [report(name, language) for name in ("desk", "lean") for language in ("nl", "en")]
    paths = [path for listed in reports for path in listed.paths]
    assert {step.kind for path in paths for step in path.steps} == {
        "say", "goto", "hours", "menu", "gather", "verify", "status", "queue", "hangup"
    }  # fmt: skip
    assert {path.end.kind for path in paths} == set(EndKind)
    choices = {choice for path in paths for choice in path.choices}
    assert {
        "(open)",
        "(closed)",
        "(holiday)",
        "(2026-12-24 09:00-13:00: open)",
        "(2026-12-24 09:00-13:00: closed)",
        "(2026-12-24..2026-12-31: closed)",
        "(2026-12-31 10:00-24:00: open)",
        "(2026-12-31 10:00-24:00: closed)",  # before ten: closed
    } <= choices
    assert "(2026-12-31 09:00-12:00: open)" not in choices  # another exception decides its day
    assert {
        "2 (en)",
        "1 (en)",
        "(no or wrong key 3×)",  # retries 2, a no-input and an invalid prompt
        "(no or wrong key)",  # retries 0: one complaint per variant, or none at all
        "digits (code)",
        "(no or wrong key 2×)",
        "number + date (verified)",
        "number + date (not verified)",
        "# (skip)",
        "(already verified)",
        "(already failed)",
        "1 (adviser)",
        "(not verified, open)",
        "(not verified, closed)",
        "(closed meanwhile)",
    } <= choices
    loops = {(path.end.node, path.end.language) for path in paths if path.end.kind is EndKind.LOOP}
    assert {("main", "en"), ("main", "nl"), ("hello", "nl")} <= loops  # a menu and a say node
    queues = {(step.kind, step.choice) for path in paths for step in path.steps}
    assert {("queue", None), ("queue", "(closed)"), ("queue", "(closed meanwhile)")} <= queues


# -- the comparison can fail -----------------------------------------------------------------------


def _find(listed: PathReport, *choices: str) -> FlowPath:
    found = [path for path in listed.paths if path.choices == list(choices)]
    assert len(found) == 1, choices
    return found[0]


def _step(path: FlowPath, node: str) -> int:
    return next(i for i, step in enumerate(path.steps) if step.node == node)


def _with_says(path: FlowPath, node: str, says: list[Said]) -> FlowPath:
    steps = list(path.steps)
    at = _step(path, node)
    steps[at] = steps[at].model_copy(update={"says": says})
    return path.model_copy(update={"steps": steps})


def _with_end(path: FlowPath, **changes: Any) -> FlowPath:
    return path.model_copy(update={"end": path.end.model_copy(update=changes)})


def _another_product(listed: PathReport) -> FlowPath:
    return _with_end(_find(listed, "(open)", "1", "2", "# (skip)"), product="gva")


def _an_extra_prompt(listed: PathReport) -> FlowPath:
    path = _find(listed, "(open)", "1", "2", "# (skip)")
    menu = path.steps[_step(path, "main_menu")].says
    extra = Said(prompt="no_input", text=KCC.text("no_input", "nl"), seconds=1.0)
    return _with_says(path, "main_menu", [*menu, extra])


def _a_complaint_left_out(listed: PathReport) -> FlowPath:
    path = _find(listed, "(open)", "(no or wrong key 4×)")
    says = [s for s in path.steps[_step(path, "main_menu")].says if s.prompt != "invalid_key"]
    return _with_says(path, "main_menu", says)


def _one_mistake_too_few(listed: PathReport) -> FlowPath:
    path = _find(listed, "(open)", "(no or wrong key 4×)")
    steps = list(path.steps)
    at = _step(path, "main_menu")
    steps[at] = steps[at].model_copy(update={"choice": "(no or wrong key 3×)"})
    return path.model_copy(update={"steps": steps})


def _an_english_text(listed: PathReport) -> FlowPath:
    path = _find(listed, "(open)", "1", "2", "# (skip)")
    welcome = path.steps[0].says[0].model_copy(update={"text": KCC.text("welcome", "en")})
    return _with_says(path, "welcome", [welcome])


def _another_product_in_the_status(listed: PathReport) -> FlowPath:
    path = _find(listed, "(open)", "1", "1", "number + date (verified)", "1 (adviser)")
    status, options = path.steps[_step(path, "status_self_service")].says
    text = status.text.replace("een VOG", "een wapenvergunning")
    return _with_says(
        path, "status_self_service", [status.model_copy(update={"text": text}), options]
    )


def _the_wrong_language_after_9(listed: PathReport) -> FlowPath:
    return _with_end(_find(listed, "(open)", "9 (en)"), language="nl")


def _the_wrong_node_looped_back_to(listed: PathReport) -> FlowPath:
    return _with_end(_find(listed, "(open)", "1", "*"), node="vog_np_menu")


def _goes_on_as_the_closed_paths(listed: PathReport) -> FlowPath:
    closed = _find(listed, "(2026-12-24 09:00-15:00: closed)").end
    return _with_end(
        _find(listed, "(2026-12-24 09:00-15:00: open)"), node=closed.node, same_as=closed.same_as
    )


def _hangs_up_instead(listed: PathReport) -> FlowPath:
    path = _find(listed, "(closed)", "(no or wrong key)")
    queued = _find(listed, "(open)", "1", "2", "# (skip)")
    return _with_end(path, kind=EndKind.QUEUE, node=queued.end.node, product="vog_np", theme="x")


def _closed_right_after_pressing_1_for_an_adviser(listed: PathReport) -> FlowPath:
    """What paths.py listed before it knew the engine reads the clock once per call: the status
    node's 1 (only while open) and a queue found closed, in one engine call."""
    path = _find(listed, "(open)", "1", "1", "number + date (verified)", "1 (adviser)")
    late = _find(listed, "(open)", "1", "2", "number + date (verified)", "(closed meanwhile)")
    closed = path.steps[-1].model_copy(update={"choice": late.steps[-1].choice, "says": []})
    return path.model_copy(update={"steps": [*path.steps[:-1], closed], "end": late.end})


TAMPERED = {
    "another product": (_another_product, "the path joins queue gva/procedure"),
    "an extra prompt": (_an_extra_prompt, "step 3 (main_menu, 1)"),
    "a complaint left out": (_a_complaint_left_out, "step 3 (main_menu, (no or wrong key 4×))"),
    "one mistake too few": (_one_mistake_too_few, "step 4 (queue_general, None)"),
    "an English text": (_an_english_text, "step 1 (welcome, None)"),
    "another product in the status": (_another_product_in_the_status, "status_self_service"),
    "the wrong language after 9": (_the_wrong_language_after_9, "the call ends in 'en'"),
    "the wrong node looped back to": (_the_wrong_node_looped_back_to, "goes back to vog_np_menu"),
    "goes on as the closed paths": (_goes_on_as_the_closed_paths, "at closed_menu the engine"),
    "hangs up instead": (_hangs_up_instead, "the engine ends with hang-up"),
    "closed right after 1 for an adviser": (
        _closed_right_after_pressing_1_for_an_adviser,
        "would have to be open for step 6 1 (adviser) and closed for step 7 (closed meanwhile)",
    ),
}


@pytest.mark.parametrize("tamper", list(TAMPERED))
def test_a_wrong_expectation_is_caught(tamper: str) -> None:
    make, expected = TAMPERED[tamper]
    listed = report("kcc", "nl")
    path = make(listed)
    assert path != listed.paths[path.number - 1]
    for variant in VARIANTS:
        problems = replay_problems(KCC, listed, path, variant)
        assert any(expected in problem for problem in problems), problems
    # The untouched path agrees.
    assert replay_problems(KCC, listed, listed.paths[path.number - 1]) == []
