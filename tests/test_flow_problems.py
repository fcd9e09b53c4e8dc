"""The problems of a flow draft: all of them at once, each with a code and params from one list,
and a Dutch translation of every code for the supervisor page."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from flows.errors import Problem
from flows.loader import check_flow_text
from flows.problems import PROBLEM_CODES, ProblemCode, render
from flows.yaml_source import YamlSyntaxError, YamlTooLarge
from ivr.flow_publishing import FlowPublisher
from tests.support.flow_drafts import MISTAKES, TEXT, edit, line_of, several_mistakes
from tests.support.paths import ROOT

PROBLEMS_JS = ROOT / "api" / "web" / "static" / "draft_problems_nl.js"
# Everything that makes problems: the flows package and the publisher's own checks.
SOURCES = [*sorted((ROOT / "flows").glob("*.py")), ROOT / "ivr" / "flow_publishing.py"]


def found(problems: list[Problem]) -> set[tuple[int, str]]:
    return {(p.line, p.code) for p in problems}


# -- every problem at once ---------------------------------------------------------------------


def test_a_draft_with_several_mistakes_of_different_kinds_gets_all_of_them() -> None:
    text = several_mistakes()
    flow, problems = check_flow_text(text, "draft.yaml")
    assert flow is None
    for mistake in MISTAKES:
        matching = [p for p in problems if p.message.startswith(mistake.message)]
        assert len(matching) == 1, (mistake.message, [str(p) for p in problems])
        assert matching[0].line == line_of(text, mistake.fragment, mistake.after), matching[0]
        assert matching[0].code == mistake.code
    assert len(problems) == len(MISTAKES), [str(p) for p in problems]


def test_nothing_is_said_that_follows_from_a_node_that_failed() -> None:
    """The hours node is the only way to the menus: with its kind wrong, no node behind it is
    called unreachable, and the nodes that lead to it do not name an unknown target."""
    text = edit(TEXT, "  opening_hours:\n    kind: hours\n", "  opening_hours:\n    kind: hour\n")
    _, problems = check_flow_text(text, "draft.yaml")
    assert [(p.code, p.line) for p in problems] == [("unknown_kind", line_of(text, "kind: hour"))]


def test_a_wrong_key_in_a_node_hides_nothing_else_in_it_or_elsewhere() -> None:
    text = edit(TEXT, "    retries: 0\n", "    retries: -1\n")
    text = edit(
        text, "  queue_general:\n    kind: queue\n", "  queue_general:\n    kind: queue\n    x: 1\n"
    )
    text = edit(text, "    next: opening_hours", "    next: opening_hourz")
    _, problems = check_flow_text(text, "draft.yaml")
    assert found(problems) == {
        (line_of(text, "retries: -1"), "too_small"),
        (line_of(text, "    x: 1"), "unknown_key"),
        (line_of(text, "next: opening_hourz"), "unknown_target"),
    }
    [small] = [p for p in problems if p.code == "too_small"]
    assert dict(small.params)["limit"] == "0"


def test_a_wrong_key_in_a_menu_option_is_one_problem() -> None:
    """An option is a node id or {next, language}: a mapping with a wrong key is not also
    called "not a valid string"."""
    text = edit(TEXT, "{next: main_menu, language: en}", "{next: main_menu, lang: en}")
    _, problems = check_flow_text(text, "draft.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (
            line_of(text, "lang: en}"),
            "nodes.main_menu.options.9.lang: unknown key (allowed: next, language)",
        )
    ]


def test_a_wrong_list_of_languages_is_one_problem_not_one_per_text() -> None:
    text = edit(TEXT, "languages: [nl, en]", "languages: nl")
    _, problems = check_flow_text(text, "draft.yaml")
    assert [(p.code, dict(p.params)["expected"]) for p in problems] == [("wrong_type", "list")]


def test_a_broken_prompt_still_exists_for_the_nodes_that_say_it() -> None:
    text = edit(TEXT, '  goodbye:\n    nl: "', '  goodbye:\n    de: 3\n    nl: "')
    _, problems = check_flow_text(text, "draft.yaml")
    assert [(p.code, p.line) for p in problems] == [("wrong_type", line_of(text, "de: 3"))]


def test_a_draft_that_is_not_yaml_says_only_that() -> None:
    text = edit(TEXT, "  welcome:\n    kind: say", "  welcome:\n    kind: [say")
    _, problems = check_flow_text(text, "draft.yaml")
    [problem] = problems
    assert problem.code == "yaml_syntax"
    assert problem.message.startswith("YAML syntax: ")
    assert dict(problem.params)["opened_line"] == str(line_of(text, "kind: [say"))


def test_a_duplicate_key_names_the_first_line() -> None:
    text = edit(TEXT, "start: welcome\n", "start: welcome\nstart: main_menu\n")
    _, problems = check_flow_text(text, "draft.yaml")
    [problem] = problems
    assert problem.code == "duplicate_key"
    assert dict(problem.params) == {
        "where": "start",
        "key": "start",
        "first_line": str(line_of(text, "start: welcome")),
    }
    assert (
        problem.message
        == f"start: duplicate key 'start' (first on line {line_of(text, 'start: welcome')})"
    )


@pytest.mark.parametrize(
    ("old", "new", "code", "params"),
    [
        (
            "  verify_closed_status:\n    kind: verify\n",
            "  verify_closed_status:\n    kind: verify\n"
            "    number_min_digits: 9\n    number_max_digits: 7\n",
            "max_below_min",
            {"max_field": "number_max_digits", "min_field": "number_min_digits"},
        ),
        ('monday: "09:00-17:00"', 'monday: "9-17"', "hours_format", {"text": "9-17"}),
        (
            'monday: "09:00-17:00"',
            'monday: "09:00-25:00"',
            "hours_invalid",
            {"text": "09:00-25:00"},
        ),
        (
            "    - date: 2026-12-24\n",
            "    - date: 2026-12-24\n      until: 2026-12-23\n",
            "until_before_date",
            {},
        ),
    ],
    ids=["digits", "hours format", "hours invalid", "until"],
)
def test_the_model_s_own_checks_have_codes(
    old: str, new: str, code: str, params: dict[str, str]
) -> None:
    text = edit(TEXT, old, new)
    _, problems = check_flow_text(text, "draft.yaml")
    assert [p.code for p in problems] == [code], [str(p) for p in problems]
    assert {k: v for k, v in problems[0].params if k != "where"} == params


# -- labels ------------------------------------------------------------------------------------


def test_labels_name_only_what_the_flow_has_in_every_language() -> None:
    text = edit(
        TEXT,
        '    procedure: {nl: "Procedure", en: "Procedure"}',
        '    procedures: {nl: "Procedure", en: "Procedure"}',
    )
    text = edit(
        text,
        '    main_menu: {nl: "Hoofdmenu", en: "Main menu"}',
        '    main: {nl: "Hoofdmenu", en: "Main menu"}',
    )
    text = edit(text, '    pardon: {nl: "Gratie", en: "Pardon"}', '    pardon: {nl: "Gratie"}')
    text = edit(
        text,
        '    wwm: {nl: "Wet wapens en munitie", en: "Weapons and Ammunition Act"}',
        '    wwm: {nl: "Wet wapens en munitie", de: "Waffengesetz", en: "Weapons Act"}',
    )
    _, problems = check_flow_text(text, "draft.yaml")
    assert {(p.line, p.message) for p in problems} == {
        (
            line_of(text, "procedures: {"),
            "labels.themes.procedures: unknown theme 'procedures' (no queue names it)",
        ),
        (line_of(text, "main: {"), "labels.nodes.main: unknown node 'main'"),
        (
            line_of(text, 'pardon: {nl: "Gratie"}'),
            "labels.products.pardon: missing translation for 'en'",
        ),
        (line_of(text, "Waffengesetz"), "labels.products.wwm.de: 'de' is not in languages"),
    }
    assert {p.code for p in problems} == {
        "unknown_theme",
        "unknown_node",
        "translation_missing",
        "language_not_listed",
    }


def test_a_flow_without_labels_is_good() -> None:
    """Stored versions from before labels keep loading."""
    start, end = TEXT.index("\nlabels:\n"), TEXT.index("\ncalendar:\n")
    flow, problems = check_flow_text(TEXT[:start] + TEXT[end:], "old.yaml")
    assert problems == [] and flow is not None
    assert flow.labels.products == {}


# -- one list of codes, and Dutch for each -----------------------------------------------------


def test_every_problem_s_message_is_rendered_from_its_code_and_params() -> None:
    _, problems = check_flow_text(several_mistakes(), "draft.yaml")
    for problem in problems:
        params = dict(problem.params)
        assert problem.code in PROBLEM_CODES, problem
        assert set(params) <= PROBLEM_CODES[problem.code].params | {"where"}, problem
        assert all(isinstance(value, str) for value in params.values()), problem
        assert problem.message == render(problem.code, params)


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    return (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )


# The functions that make a problem, and which of their arguments is the code.
CODE_ARGUMENT = {
    "problem": 2,
    "_finding": 1,
    "FlowValueError": 0,
    "render": 0,
    "add": 2,
    "_refuse_key": 2,
}


def _codes_in_sources() -> dict[str, str]:
    """Every literal code the sources make a problem with: code -> where."""
    codes: dict[str, str] = {}
    for source in SOURCES:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for call in _calls(tree):
            index = CODE_ARGUMENT.get(_name(call))
            if index is not None and len(call.args) > index:
                argument = call.args[index]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    codes[argument.value] = f"{source.name}:{call.lineno}"
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for node in (n for function in functions for n in ast.walk(function)):
            # `code = "..."`: a code picked before the call that makes the problem
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if "code" in names and isinstance(node.value.value, str):
                    codes.setdefault(node.value.value, f"{source.name}:{node.lineno}")
    # The syntax error of the YAML reader is reported under its class's code.
    codes[YamlSyntaxError.code] = "yaml_source.py"
    codes[YamlTooLarge.code] = "yaml_source.py"
    return codes


def test_every_code_the_flows_package_makes_is_in_the_one_list() -> None:
    from flows.loader import _PYDANTIC_CODES

    codes = _codes_in_sources()
    assert len(codes) > 30, codes  # the scan found the calls
    unlisted = {code: at for code, at in codes.items() if code not in PROBLEM_CODES}
    assert unlisted == {}
    assert {code for code, _ in _PYDANTIC_CODES.values()} <= set(PROBLEM_CODES)
    # ... and every listed code is made somewhere (no dead entries).
    made = set(codes) | {code for code, _ in _PYDANTIC_CODES.values()} | {"wrong_type", "invalid"}
    assert set(PROBLEM_CODES) - made == set()


def test_every_problem_is_made_from_the_list() -> None:
    """No problem is built by hand (its code would default to "invalid")."""
    for source in [*SOURCES, *sorted((ROOT / "api").rglob("*.py"))]:
        if source.name == "problems.py":
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        made = [call.lineno for call in _calls(tree) if _name(call) == "Problem"]
        assert made == [], f"{source}: Problem(...) on lines {made}; use flows.problems.problem"


def test_every_template_renders_with_its_params() -> None:
    for code, entry in PROBLEM_CODES.items():
        params = {name: f"<{name}>" for name in entry.params}
        message = render(code, {**params, "where": "nodes.x"})
        assert message.startswith("nodes.x: "), code
        assert "{" not in message.replace("{placeholder}", "").replace("{{", "").replace(
            "}}", ""
        ) or code in {"pattern_repeats_group", "placeholder_cannot_be_filled"}
    with pytest.raises(ValueError, match="no params"):
        render("unknown_target", {"target": "x", "colour": "red"})
    assert isinstance(PROBLEM_CODES["unknown_key"], ProblemCode)


def _dutch_messages() -> dict[str, str]:
    """code -> the source of its Dutch translation in draft_problems_nl.js."""
    text = PROBLEMS_JS.read_text(encoding="utf-8")
    block = text[
        text.index("const MESSAGES = {") : text.index("\n  };", text.index("const MESSAGES = {"))
    ]
    entries = re.split(r"\n    (?=[a-z0-9_]+: \()", block)[1:]
    return {entry.split(":", 1)[0]: entry for entry in entries}


def test_the_supervisor_page_has_dutch_for_every_code_with_its_params() -> None:
    dutch = _dutch_messages()
    assert set(dutch) == set(PROBLEM_CODES), (
        f"no Dutch for {sorted(set(PROBLEM_CODES) - set(dutch))}; "
        f"Dutch for unknown codes {sorted(set(dutch) - set(PROBLEM_CODES))}"
    )
    for code, source in dutch.items():
        used = set(re.findall(r"\bp\.([a-z_]+)", source))
        assert used <= PROBLEM_CODES[code].params, (code, used - PROBLEM_CODES[code].params)
        assert "message" not in used


# -- the publisher's own checks ----------------------------------------------------------------


def _publisher(skills: dict[str, list[str]]) -> FlowPublisher:
    """Only `check` is used: it needs the centre's flow name and the advisers' skills."""
    return FlowPublisher(
        registry=SimpleNamespace(name="kcc"),  # type: ignore[arg-type]
        versions=None,  # type: ignore[arg-type]
        adviser_skills=lambda: skills,
        run_sync=None,  # type: ignore[arg-type]
        now=lambda: datetime.now(UTC),
    )


def test_the_publisher_adds_its_problems_and_warnings_to_a_draft_with_others() -> None:
    text = edit(several_mistakes(), "name: kcc\n", "name: kcc-test\n")
    text = edit(text, '  pardon: {nl: "gratie", en: "a pardon"}\n', "")
    text = edit(text, '    pardon: {nl: "Gratie", en: "Pardon"}\n', "")
    text = edit(text, "    product: pardon\n", "    product: general\n")
    text = edit(text, "    products: [pardon]\n", "    products: []\n")  # the gratie department
    text = edit(text, "    pardon:\n      status:", "    general:\n      status:")  # wrap-up codes
    checked = _publisher({"wim": ["wwm", "pardon"], "ria": ["vog_np"]}).check(text)
    assert not checked.ok and checked.flow is None
    found_problems = {(p.line, p.code): dict(p.params) for p in checked.problems}
    assert found_problems[(line_of(text, "name: kcc-test"), "wrong_flow_name")] == {
        "where": "name",
        "expected": "kcc",
        "name": "kcc-test",
    }
    assert found_problems[(line_of(text, "products:"), "skill_not_a_product")] == {
        "where": "products",
        "adviser": "wim",
        "product": "pardon",
    }
    assert len(checked.problems) == len(MISTAKES) + 2, [str(p) for p in checked.problems]
    # gva is queued, and nobody takes it; wapens is no product, so nobody is warned about it.
    warned = {dict(p.params)["where"]: p for p in checked.warnings}
    assert set(warned) == {
        "products.gva",
        "products.vog_rp",
        "products.name_change",
        "products.boa",
        "products.wpbr",
        "products.track",
        "products.general",
    }
    gva = warned["products.gva"]
    assert (gva.code, gva.line) == ("product_without_adviser", line_of(text, "  gva: {nl:"))
    assert gva.message == (
        "products.gva: no adviser has this skill; its callers would wait until one has"
    )


# -- hold music per language --------------------------------------------------------------------


def test_hold_music_per_language_is_checked_against_the_flows_languages() -> None:
    music = (
        "queue:\n  hold_music:\n    nl: https://music.example/nl.mp3\n"
        "    de: https://music.example/de.mp3\n"
    )
    text = edit(TEXT, "queue:\n", music)
    flow, problems = check_flow_text(text, "draft.yaml")
    assert flow is None
    assert [(p.code, p.line, p.message) for p in problems] == [
        (
            "language_not_listed",
            line_of(text, "    de: https"),
            "queue.hold_music.de: 'de' is not in languages",
        )
    ]


def test_hold_music_is_one_url_or_one_per_language_and_never_silence_on_hold() -> None:
    text = edit(TEXT, "queue:\n", "queue:\n  hold_music:\n    en: https://music.example/en.mp3\n")
    flow, problems = check_flow_text(text, "draft.yaml")
    assert problems == [] and flow is not None
    assert flow.queue.music_for("en") == "https://music.example/en.mp3"
    assert flow.queue.music_for("nl") is None  # silence between announcements in the queue
    assert flow.queue.conversation_hold_music("nl").startswith("http://com.twilio.music.")
    bad = edit(TEXT, "queue:\n", "queue:\n  hold_music:\n    nl: ftp://music.example/x\n")
    _, problems = check_flow_text(bad, "draft.yaml")
    assert [p.line for p in problems] == [line_of(bad, "    nl: ftp")]
