"""Flow documents: the shipped flow loads; every kind of mistake is reported at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import FlowInvalid
from flows.loader import check_flow_text, load_flow, parse_flow
from flows.model import MenuNode, MenuOption
from flows.yaml_source import read_yaml
from tests.support.flow_drafts import TEXT, line_of
from tests.support.paths import SHIPPED


def _edit(old: str, new: str, count: int = 1) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new, count)


def test_shipped_flow_is_valid() -> None:
    flow = load_flow(SHIPPED)
    assert flow.start == "welcome"
    assert flow.languages == ["nl", "en"]
    main = flow.nodes["main_menu"]
    assert isinstance(main, MenuNode)
    assert set(main.options) == {"1", "2", "3", "4", "5", "6", "9"}
    assert main.repeat == "0"
    assert main.option("9") == MenuOption(next="main_menu", language="en")


def test_every_prompt_has_dutch_and_english() -> None:
    flow = load_flow(SHIPPED)
    for prompt_id, texts in flow.prompts.items():
        assert set(texts) == {"nl", "en"}, prompt_id


# (edited text, fragment on the line the problem must point to, message fragment)
BROKEN = {
    "unknown target": (
        _edit('"2": verify_vog_rp', '"2": verify_vog_rpp'),
        '"2": verify_vog_rpp',
        "nodes.main_menu.options.2: unknown target 'verify_vog_rpp'",
    ),
    "unknown key lists the allowed ones": (
        _edit("    prompt: welcome\n", "    prompt: welcome\n    promtp: welcome\n"),
        "promtp: welcome",
        "nodes.welcome.promtp: unknown key (allowed: kind, prompt, next)",
    ),
    "missing translation": (
        _edit('    en: "Welcome to Justis, the screening authority."\n', ""),
        'nl: "Welkom bij Justis',  # the problem is on the line before: the prompt's key
        "prompts.welcome: missing translation for 'en'",
    ),
    "duplicate digit": (
        _edit('      "3": verify_gva\n', '      "3": verify_gva\n      "3": verify_pardon\n'),
        '"3": verify_pardon',
        "nodes.main_menu.options.3: duplicate key '3'",
    ),
    "repeat key is also an option": (
        _edit('      "6": other_menu\n', '      "6": other_menu\n      "0": other_menu\n'),
        'repeat: "0"',
        "nodes.main_menu.repeat: key '0' is also an option",
    ),
    "unknown prompt": (
        _edit("    prompt: connecting_general", "    prompt: connecting_generall"),
        "prompt: connecting_generall",
        "nodes.queue_general.prompt: unknown prompt 'connecting_generall'",
    ),
    "unknown node kind": (
        _edit("    kind: hangup", "    kind: hang_up"),  # the goodbye node
        "kind: hang_up",
        "unknown node kind 'hang_up'",
    ),
    "bad opening hours": (
        _edit('monday: "09:00-17:00"', 'monday: "17:00-09:00"'),
        'monday: "17:00-09:00"',
        "closes before it opens",
    ),
    "unknown holiday": (
        _edit("      - King's Day\n", "      - Kings Day\n"),
        "- Kings Day",
        "unknown holiday 'Kings Day'",
    ),
    "unknown language in a menu": (
        _edit("{next: main_menu, language: en}", "{next: main_menu, language: de}"),
        "language: de}",
        "unknown language 'de'",
    ),
    "unknown placeholder": (
        _edit("U bent nummer {position} in de wachtrij.", "U bent nummer {positie}."),
        "U bent nummer {positie}.",
        "unknown {placeholder}",
    ),
    "missing system prompt": (
        TEXT[: TEXT.index("  queue_full:\n")] + TEXT[TEXT.index("  error_apology:\n") :],
        "prompts:",
        "missing prompt 'queue_full'",
    ),
    "yaml syntax": (
        _edit("  welcome:\n    kind: say", "  welcome:\n    kind: [say"),
        "kind: [say",
        "YAML syntax",
    ),
}


# A missing translation is reported at the prompt's key, the line before its Dutch text.
# A YAML syntax error is found where the parser gives up: the line after the open bracket.
LINE_OFFSET = {"prompts.welcome: missing translation for 'en'": -1, "YAML syntax": 1}


# The code of each problem above (flows/problems.py): what the supervisor page translates.
CODES = {
    "unknown target": "unknown_target",
    "unknown key lists the allowed ones": "unknown_key",
    "missing translation": "translation_missing",
    "duplicate digit": "duplicate_key",
    "repeat key is also an option": "repeat_is_option",
    "unknown prompt": "unknown_prompt",
    "unknown node kind": "unknown_kind",
    "bad opening hours": "hours_reversed",
    "unknown holiday": "unknown_holiday",
    "unknown language in a menu": "unknown_language",
    "unknown placeholder": "unknown_placeholder",
    "missing system prompt": "prompt_missing",
    "yaml syntax": "yaml_syntax",
}


@pytest.mark.parametrize(
    ("case", "code"), [(BROKEN[n], CODES[n]) for n in BROKEN], ids=BROKEN.keys()
)
def test_broken_flow_is_reported_at_its_line(case: tuple[str, str, str], code: str) -> None:
    text, fragment, message = case
    flow, problems = check_flow_text(text, "draft.yaml")
    assert flow is None
    matching = [p for p in problems if message in p.message]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert problem.code == code
    assert problem.file == "draft.yaml"
    assert problem.line == line_of(text, fragment) + LINE_OFFSET.get(message, 0)
    assert str(problem).startswith(f"draft.yaml:{problem.line}: ")


def test_unreachable_node_is_reported() -> None:
    text = _edit("  queue_general:\n", "  orphan:\n    kind: hangup\n\n  queue_general:\n")
    _, problems = check_flow_text(text, "draft.yaml")
    assert [str(p) for p in problems] == [
        f"draft.yaml:{line_of(text, 'orphan:')}: nodes.orphan: unreachable from start 'welcome'"
    ]


def test_loop_without_exit_is_reported() -> None:
    text = _edit(
        "  queue_general:\n",
        '  trap_a:\n    kind: menu\n    prompt: main_menu\n    options: {"1": trap_b}\n'
        "    no_input: no_input\n    invalid: invalid_key\n    on_fail: trap_a\n\n"
        "  trap_b:\n    kind: goto\n    next: trap_a\n\n  queue_general:\n",
    ).replace('"6": other_menu', '"6": other_menu\n      "7": trap_a')
    _, problems = check_flow_text(text, "draft.yaml")
    messages = [p.message for p in problems]
    assert "nodes.trap_a: loop without an exit (never reaches a queue or hangup)" in messages
    assert "nodes.trap_b: loop without an exit (never reaches a queue or hangup)" in messages


def test_loop_that_never_waits_for_a_key_is_reported() -> None:
    text = _edit(
        "  welcome:\n    kind: say\n    prompt: welcome\n    next: opening_hours",
        "  welcome:\n    kind: say\n    prompt: welcome\n    next: again\n\n"
        "  again:\n    kind: hours\n    open: welcome\n    closed: closed",
    ).replace("open: main_menu", "open: main_menu\n    # unused")
    _, problems = check_flow_text(text, "draft.yaml")
    assert any("loop without input (again -> welcome)" in p.message for p in problems), problems


def test_all_problems_are_reported_at_once() -> None:
    text = _edit('"2": verify_vog_rp', '"2": nowhere').replace(
        '    en: "Welcome to Justis, the screening authority."\n', ""
    )
    _, problems = check_flow_text(text, "draft.yaml")
    assert len(problems) >= 2


def test_parse_flow_raises_with_every_problem() -> None:
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(_edit('"2": verify_vog_rp', '"2": nowhere'), "draft.yaml")
    assert "draft.yaml:" in str(raised.value)
    assert "unknown target 'nowhere'" in str(raised.value)


def test_unreadable_file_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowInvalid, match="cannot read the flow"):
        load_flow(tmp_path / "missing.yaml")


def test_yaml_words_on_off_yes_no_and_times_stay_text() -> None:
    source = read_yaml("a: on\nb: off\nc: yes\nd: 17:00\ne: true\nf: 09:30\n")
    assert source.data == {"a": "on", "b": "off", "c": "yes", "d": "17:00", "e": True, "f": "09:30"}


def test_document_that_is_not_a_mapping_is_refused() -> None:
    _, problems = check_flow_text("- just\n- a list\n", "draft.yaml")
    assert [p.message for p in problems] == ["a flow must be a mapping of keys"]


def test_a_loop_through_a_status_node_that_does_not_wait_is_reported() -> None:
    """An unverified caller passes a status node without a key: the loop would never end."""
    text = _edit("    adviser: queue_vog_np_status\n", "    adviser: back_to_status\n").replace(
        "  queue_general:\n",
        "  back_to_status:\n    kind: goto\n    next: status_self_service\n\n  queue_general:\n",
    )
    _, problems = check_flow_text(text, "draft.yaml")
    assert any(
        "loop without input (back_to_status -> status_self_service)" in p.message for p in problems
    ), problems


def test_a_format_spec_in_a_prompt_is_refused() -> None:
    text = _edit("U bent nummer {position} in de wachtrij.", "U bent nummer {position:s}.")
    _, problems = check_flow_text(text, "draft.yaml")
    assert [p.message for p in problems if "queue_position" in p.message] == [
        "prompts.queue_position.nl: unknown {placeholder} in the text "
        "(allowed here: {position}, {weekly_hours}; write {{ and }} for braces)"
    ]


def test_a_language_code_that_is_not_two_letters_is_refused() -> None:
    text = _edit("languages: [nl, en]", "languages: [nl, en_GB_oed]")
    _, problems = check_flow_text(text, "draft.yaml")
    assert any("'en_GB_oed' is not a language code" in p.message for p in problems)


def test_a_gather_pattern_that_can_backtrack_for_ever_is_refused() -> None:
    _, problems = check_flow_text(
        _small_gather('pattern: "(1+)+2"'),
        "draft.yaml",
    )
    assert any("must not repeat a group" in p.message for p in problems), problems


def _small_gather(extra: str) -> str:
    return _edit(
        '      "6": other_menu\n', '      "6": other_menu\n      "7": reference\n'
    ).replace(
        "  queue_general:\n",
        "  reference:\n    kind: gather\n    prompt: welcome\n    store: ref\n"
        f"    {extra}\n    no_input: no_input\n    invalid: invalid_key\n"
        "    next: queue_general\n    on_fail: queue_general\n\n  queue_general:\n",
    )


def test_one_broken_target_is_one_problem_not_everything_behind_it() -> None:
    text = _edit("    next: opening_hours", "    next: opening_hourz")
    _, problems = check_flow_text(text, "draft.yaml")
    assert [p.message for p in problems] == ["nodes.welcome.next: unknown target 'opening_hourz'"]


def test_a_prompt_with_a_character_twiml_cannot_carry_is_refused_at_its_line() -> None:
    text = _edit(
        'nl: "Welkom bij Justis, de screeningsautoriteit."',
        'nl: "Welkom bij Justis\\ud800, de screeningsautoriteit."',
    )
    _, problems = check_flow_text(text, "draft.yaml")
    assert [p.message for p in problems] == [
        "prompts.welcome.nl: contains U+D800, a control or surrogate character that cannot be "
        "spoken or written in TwiML"
    ]
    assert problems[0].line == text[: text.index("Welkom bij Justis\\ud800")].count("\n") + 1
