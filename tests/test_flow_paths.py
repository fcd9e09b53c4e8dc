"""`kcc flows paths`: every way through a flow, what the caller hears, and what is too long."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from api.cli.main import app
from flows.loader import check_flow_text, load_flow
from flows.model import SYSTEM_PROMPTS, VERIFY_PROMPTS, MenuNode
from flows.paths import (
    MAX_MENU_OPTIONS,
    MAX_PROMPT_SECONDS,
    WORDS_PER_SECOND,
    EndKind,
    FlowPath,
    PathReport,
    WarningKind,
    flow_paths,
    format_report,
)
from tests.support.paths import SHIPPED

KCC = load_flow(SHIPPED)
runner = CliRunner()


def _said(path: FlowPath) -> list[str]:
    return [said.prompt for step in path.steps for said in step.says]


def _path(report: PathReport, *choices: str) -> FlowPath:
    found = [p for p in report.paths if p.choices == list(choices)]
    assert len(found) == 1, [p.choices for p in report.paths]
    return found[0]


def _words(count: int) -> str:
    return " ".join(["woord"] * count)


def _flow_document(nodes: dict[str, Any], prompts: dict[str, str], start: str) -> dict[str, Any]:
    """A small valid flow: one weekday open, the engine's own prompts, and `prompts` in nl/en."""
    texts = {name: f"{name}." for name in SYSTEM_PROMPTS}
    texts["queue_position"] = "Nummer {position}."
    texts["queue_wait"] = "{minutes} minuten."
    texts.update(prompts)
    return {
        "name": "small",
        "languages": ["nl", "en"],
        "voices": {
            "nl": {"language": "nl-NL", "voice": "Polly.Lotte"},
            "en": {"language": "en-GB", "voice": "Polly.Amy"},
        },
        "products": {"general": {"nl": "uw vraag", "en": "your question"}},
        "calendar": {"weekly": {"monday": "09:00-17:00"}},
        "start": start,
        "nodes": nodes,
        "prompts": {name: {"nl": text, "en": f"EN {text}"} for name, text in texts.items()},
    }


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    file = tmp_path / "flow.yaml"
    file.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    flow, problems = check_flow_text(file.read_text(encoding="utf-8"), str(file))
    assert flow is not None, [str(p) for p in problems]
    return file


QUEUE = {"kind": "queue", "product": "general", "theme": "general", "prompt": "bye"}
HANGUP = {"kind": "hangup", "prompt": "bye"}


def _menu(options: dict[str, Any], prompt: str = "menu", on_fail: str = "out") -> dict[str, Any]:
    return {"kind": "menu", "prompt": prompt, "options": options, "on_fail": on_fail}


# -- the shipped flow --------------------------------------------------------------------------


def test_vog_procedure_without_a_number_reaches_its_queue_with_every_prompt_in_order() -> None:
    report = flow_paths(KCC)
    path = _path(report, "(open)", "1", "2", "# (skip)")
    assert (path.end.kind, path.end.product, path.end.theme) == (
        EndKind.QUEUE,
        "vog_np",
        "procedure",
    )
    assert _said(path) == [
        "welcome",
        "main_menu",
        "vog_np_menu",
        "verify_number_optional",
        "verify_skipped",
        "connecting",
    ]
    texts = [said.text for step in path.steps for said in step.says]
    assert texts[0] == "Welkom bij Justis, de screeningsautoriteit."
    assert texts[-1] == KCC.text("connecting", "nl")


def test_every_queue_and_hangup_of_the_shipped_flow_is_an_end_and_the_count_is_sane() -> None:
    report = flow_paths(KCC)
    ends = {p.end.node for p in report.paths if p.end.kind in (EndKind.QUEUE, EndKind.HANGUP)}
    expected = {n for n, node in KCC.nodes.items() if node.kind in ("queue", "hangup")}
    assert ends == expected
    # 13 product questions x 3 identity outcomes, the status questions, failed menus, closed...
    assert 60 <= len(report.paths) <= 150
    assert report.ends[EndKind.QUEUE] >= 13 * 3
    assert [p.number for p in report.paths] == list(range(1, len(report.paths) + 1))


def test_no_path_passes_a_node_twice_or_runs_longer_than_the_flow() -> None:
    for language in KCC.languages:
        for path in flow_paths(KCC, language).paths:
            nodes = [step.node for step in path.steps]
            assert len(nodes) == len(set(nodes)), path.choices
            assert len(nodes) <= len(KCC.nodes)


def test_back_to_the_main_menu_and_switching_to_english_are_loops_not_ends() -> None:
    report = flow_paths(KCC)
    back = _path(report, "(open)", "1", "*")
    assert (back.end.kind, back.end.node) == (EndKind.LOOP, "main_menu")
    english = _path(report, "(open)", "9 (en)")
    assert (english.end.kind, english.end.node, english.end.language) == (
        EndKind.LOOP,
        "main_menu",
        "en",
    )
    assert report.ends[EndKind.LOOP] == 3  # * in both submenus, and 9


def test_three_mistakes_and_a_fourth_in_the_main_menu_go_to_the_general_queue() -> None:
    path = _path(flow_paths(KCC), "(open)", "(no or wrong key 4×)")
    assert (path.end.kind, path.end.product) == (EndKind.QUEUE, "general")
    assert _said(path) == ["welcome", "main_menu", "no_input", "invalid_key", "connecting_general"]


def test_closed_callers_hear_their_status_without_the_adviser_option() -> None:
    report = flow_paths(KCC)
    closed = [p for p in report.paths if p.choices[0] == "(closed)"]
    assert {p.end.kind for p in closed} == {EndKind.HANGUP}
    verified = _path(report, "(closed)", "1", "number + date (verified)", "(no or wrong key 3×)")
    assert _said(verified)[-3:] == ["status_in_progress", "status_options_closed", "goodbye"]
    assert not any("1 (adviser)" in p.choices for p in closed)
    # While open a verified caller can press 1 for an adviser.
    adviser = _path(report, "(open)", "1", "1", "number + date (verified)", "1 (adviser)")
    assert adviser.end.node == "queue_vog_np_status"
    assert "status_options_open" in _said(adviser)


def test_every_identity_check_outcome_is_a_path() -> None:
    report = flow_paths(KCC)
    outcomes = {p.choices[3] for p in report.paths if p.choices[:3] == ["(open)", "1", "3"]}
    assert outcomes == {"number + date (verified)", "number + date (not verified)", "# (skip)"}
    failed = _path(report, "(open)", "1", "3", "number + date (not verified)")
    assert _said(failed)[-3:] == ["verify_mismatch", "verify_failed", "connecting"]


def test_the_calendar_days_are_branches_with_their_announcements() -> None:
    report = flow_paths(KCC)
    firsts = [p.choices[0] for p in report.paths if len(p.choices) == 1]
    assert firsts == [
        "(holiday)",
        "(2026-12-24 09:00-15:00: open)",
        "(2026-12-24 09:00-15:00: closed)",
        "(2026-12-31 09:00-15:00: open)",
        "(2026-12-31 09:00-15:00: closed)",
    ]
    holiday = _path(report, "(holiday)")
    assert holiday.steps[1].says[0].text.startswith("Vandaag is het New Year's Day.")
    # The rest is listed once: an open day goes on as the ordinary open paths do.
    open_paths = [p.number for p in report.paths if p.choices[0] == "(open)"]
    shortened = _path(report, "(2026-12-24 09:00-15:00: open)")
    assert shortened.end.kind is EndKind.SAME_AS
    assert shortened.end.same_as == (min(open_paths), max(open_paths))


def test_a_queue_reached_after_closing_time_goes_to_its_closed_branch() -> None:
    report = flow_paths(KCC)
    late = _path(report, "(open)", "2", "# (skip)", "(closed meanwhile)")
    assert (late.end.kind, late.end.node) == (EndKind.SAME_AS, "closed_menu")
    assert late.end.same_as is not None
    first, last = late.end.same_as
    assert {p.choices[0] for p in report.paths[first - 1 : last]} == {"(closed)"}


def test_english_report_says_the_english_texts() -> None:
    report = flow_paths(KCC, "en")
    path = _path(report, "(open)", "1", "2", "# (skip)")
    assert path.steps[0].says[0].text == "Welcome to Justis, the screening authority."
    status = _path(report, "(open)", "1", "1", "number + date (verified)", "1 (adviser)")
    assert "Your application for a certificate of conduct has been in progress since" in (
        " ".join(s.text for step in status.steps for s in step.says)
    )


def test_shipped_main_menus_are_flagged_for_too_many_options() -> None:
    warnings = flow_paths(KCC).warnings
    flagged = {(w.kind, w.subject) for w in warnings}
    assert flagged == {
        (WarningKind.MANY_OPTIONS, "main_menu"),
        (WarningKind.MANY_OPTIONS, "vog_np_menu"),
    }
    other = KCC.nodes["other_menu"]
    assert isinstance(other, MenuNode) and len(other.options) == MAX_MENU_OPTIONS


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language 'de'"):
        flow_paths(KCC, "de")


# -- small flows ---------------------------------------------------------------------------------


def test_a_prompt_over_30_seconds_and_a_six_option_menu_are_flagged(tmp_path: Path) -> None:
    too_long = int(MAX_PROMPT_SECONDS * WORDS_PER_SECOND) + 1
    just_fits = int(MAX_PROMPT_SECONDS * WORDS_PER_SECOND)
    nodes = {
        "big": _menu({str(k): "out" for k in range(1, 7)}, prompt="long", on_fail="small"),
        "small": _menu({str(k): "out" for k in range(1, 6)}, prompt="fits"),
        "out": QUEUE,
    }
    prompts = {"long": _words(too_long), "fits": _words(just_fits), "menu": "Kies.", "bye": "Dag."}
    report = flow_paths(load_flow(_write(tmp_path, _flow_document(nodes, prompts, "big"))))
    assert {(w.kind, w.subject) for w in report.warnings} == {
        (WarningKind.LONG_PROMPT, "long"),
        (WarningKind.MANY_OPTIONS, "big"),
    }
    long_said = report.paths[0].steps[0].says[0]
    assert long_said.seconds > MAX_PROMPT_SECONDS
    text = "\n".join(format_report(report))
    assert "warning: prompt long (nl) takes about 30.4 s (76 words), more than 30 s" in text
    assert "warning: menu big has 6 options (1 2 3 4 5 6), more than 5" in text


def test_going_back_to_an_earlier_menu_ends_the_path_without_counting_it(tmp_path: Path) -> None:
    nodes = {
        "hello": {"kind": "say", "prompt": "hello", "next": "main"},
        "main": _menu({"1": "sub", "2": "out"}, on_fail="out"),
        "sub": _menu({"1": "out", "9": "main"}, prompt="submenu", on_fail="main"),
        "out": HANGUP,
    }
    prompts = {"hello": "Hallo.", "menu": "Kies.", "submenu": "Terug: 9.", "bye": "Dag."}
    report = flow_paths(load_flow(_write(tmp_path, _flow_document(nodes, prompts, "hello"))))
    assert [(p.choices, p.end.kind, p.end.node) for p in report.paths] == [
        (["1", "1"], EndKind.HANGUP, "out"),
        (["1", "9"], EndKind.LOOP, "main"),
        (["1", "(no or wrong key 4×)"], EndKind.LOOP, "main"),
        (["2"], EndKind.HANGUP, "out"),
        (["(no or wrong key 4×)"], EndKind.HANGUP, "out"),
    ]
    assert report.ends[EndKind.HANGUP] == 3
    lines = format_report(report)
    assert "2. 1 → 9  → back to main" in lines
    assert "5 paths (small, language nl)" in lines
    assert (
        "  0 end in a queue, 3 hang up, 2 go back to an earlier node, 0 go on as other paths"
        in (lines)
    )


def test_a_second_identity_check_is_passed_once_verified_or_failed(tmp_path: Path) -> None:
    verify = {"kind": "verify", "verified": "again", "unverified": "again"}
    nodes = {
        "check": verify,
        "again": {"kind": "verify", "verified": "out", "unverified": "out"},
        "out": QUEUE,
    }
    prompts = {name: f"{name}." for name in VERIFY_PROMPTS} | {"bye": "Dag."}
    report = flow_paths(load_flow(_write(tmp_path, _flow_document(nodes, prompts, "check"))))
    choices = [p.choices for p in report.paths]
    assert ["number + date (verified)", "(already verified)"] in choices
    assert ["number + date (not verified)", "(already failed)"] in choices
    # Skipping is not failing: the second check asks again.
    assert ["# (skip)", "# (skip)"] in choices
    assert all(p.end.kind is EndKind.QUEUE for p in report.paths)


def test_a_gather_has_an_entered_and_a_failed_branch(tmp_path: Path) -> None:
    nodes = {
        "ask": {
            "kind": "gather",
            "prompt": "ask",
            "store": "code",
            "no_input": "none",
            "invalid": "wrong",
            "retries": 2,
            "next": "out",
            "on_fail": "stop",
        },
        "out": QUEUE,
        "stop": HANGUP,
    }
    prompts = {"ask": "Code?", "none": "Niets.", "wrong": "Fout.", "bye": "Dag."}
    report = flow_paths(load_flow(_write(tmp_path, _flow_document(nodes, prompts, "ask"))))
    assert [(p.choices, p.end.kind) for p in report.paths] == [
        (["digits (code)"], EndKind.QUEUE),
        (["(no or wrong key 3×)"], EndKind.HANGUP),
    ]
    assert _said(report.paths[1]) == ["ask", "none", "wrong", "bye"]


def test_without_an_hours_node_a_queue_with_a_closed_branch_shows_both(tmp_path: Path) -> None:
    nodes = {"q": {**QUEUE, "closed": "shut"}, "shut": HANGUP}
    report = flow_paths(load_flow(_write(tmp_path, _flow_document(nodes, {"bye": "Dag."}, "q"))))
    assert [(p.choices, p.end.kind) for p in report.paths] == [
        ([], EndKind.QUEUE),
        (["(closed)"], EndKind.HANGUP),
    ]


# -- the command ---------------------------------------------------------------------------------


def test_command_prints_every_path_and_a_summary() -> None:
    result = runner.invoke(app, ["flows", "paths", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    report = flow_paths(KCC)
    number = _path(report, "(open)", "1", "2", "# (skip)").number
    assert f"{number}. (open) → 1 → 2 → # (skip)  ⇒ queue vog_np/procedure\n" in result.stdout
    # The block only repeats what differs from the path above it.
    block = result.stdout.split(f"\n{number}. ")[1].split("\n\n")[0].splitlines()
    assert block[1:] == [
        f"   … as path {number - 1} up to verify_number_optional",
        "   verify_skipped (0.8 s): “Geen probleem.”",
        "   connecting (3.6 s): “Een ogenblik geduld. U wordt doorverbonden met een adviseur.”",
    ]
    assert "   welcome (2 s): “Welkom bij Justis, de screeningsautoriteit.”" in result.stdout
    assert f"\n{len(report.paths)} paths (kcc, language nl)\n" in result.stdout
    assert "warning: menu main_menu has 7 options (1 2 3 4 5 6 9), more than 5" in result.stdout


def test_command_in_english_with_full_texts() -> None:
    result = runner.invoke(app, ["flows", "paths", str(SHIPPED), "--lang", "en", "--full"])
    assert result.exit_code == 0, result.output
    welcome = "   welcome (2.4 s): “Welcome to Justis, the screening authority.”"
    assert result.stdout.count(welcome) == len(flow_paths(KCC, "en").paths)
    assert "…" not in result.stdout


def test_command_json_parses_and_matches_the_report() -> None:
    result = runner.invoke(app, ["flows", "paths", str(SHIPPED), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    report = flow_paths(KCC)
    assert data["language"] == "nl"
    assert len(data["paths"]) == len(report.paths)
    assert data["ends"]["queue"] == report.ends[EndKind.QUEUE]
    first = data["paths"][0]
    assert first["choices"] == report.paths[0].choices
    assert first["steps"][0]["says"][0]["text"] == "Welkom bij Justis, de screeningsautoriteit."
    assert {w["kind"] for w in data["warnings"]} == {"many_options"}


def test_command_on_an_invalid_flow_prints_file_and_line_and_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        SHIPPED.read_text(encoding="utf-8").replace('"2": verify_vog_rp', '"2": verify_vog_rpp'),
        encoding="utf-8",
    )
    result = runner.invoke(app, ["flows", "paths", str(broken)])
    assert result.exit_code == 1
    line = next(
        n for n, text in enumerate(broken.read_text().splitlines(), 1) if "verify_vog_rpp" in text
    )
    expected = f"{broken}:{line}: nodes.main_menu.options.2: unknown target 'verify_vog_rpp'"
    assert expected in result.stdout.splitlines()
    assert "⇒" not in result.stdout
    check = runner.invoke(app, ["flows", "check", str(broken)])
    assert check.stdout == result.stdout  # the same lines as `kcc flows check`


def test_command_refuses_a_language_the_flow_does_not_have() -> None:
    result = runner.invoke(app, ["flows", "paths", str(SHIPPED), "--lang", "de"])
    assert result.exit_code == 2
    assert "'de' is not a language of the flow (nl, en)" in result.output


def test_command_on_a_missing_file_fails(tmp_path: Path) -> None:
    result = runner.invoke(app, ["flows", "paths", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read" in result.output
