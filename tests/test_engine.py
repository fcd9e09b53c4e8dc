"""The call engine on the shipped flow and on small flows: every node kind and every branch."""

from __future__ import annotations

from datetime import datetime

import pytest

from flows.loader import load_flow, parse_flow
from flows.model import Flow
from ivr.engine import Engine, EngineError
from ivr.hours import OpeningHours
from ivr.session import CallPhase, CallSession
from ivr.turn import AskKeys, HangUp, JoinQueue, Turn
from tests.support.clock import AMSTERDAM, TUESDAY_MORNING
from tests.support.paths import SHIPPED

EVENING = datetime(2026, 12, 1, 18, 0, tzinfo=AMSTERDAM)
KINGS_DAY = datetime(2026, 4, 27, 10, 0, tzinfo=AMSTERDAM)
SILENCE = None


@pytest.fixture(scope="module")
def flow() -> Flow:
    return load_flow(SHIPPED)


@pytest.fixture(scope="module")
def engine(flow: Flow) -> Engine:
    return Engine(flow, OpeningHours(flow.calendar))


def new_session(flow: Flow) -> CallSession:
    return CallSession(
        call_sid="CA" + "1" * 32,
        caller="+31612345678",
        flow=flow.name,
        flow_version="test",
        language=flow.default_language,
        started_at=TUESDAY_MORNING,
    )


def walk(
    engine: Engine, keys: list[str | None], at: datetime = TUESDAY_MORNING
) -> tuple[CallSession, list[Turn]]:
    session = new_session(engine.flow)
    turns = [engine.start(session, at)]
    for key in keys:
        turns.append(engine.answer(session, key, at))
    return session, turns


def spoken(turn: Turn) -> str:
    texts = [say.text for say in turn.says]
    if isinstance(turn.ending, AskKeys):
        texts += [say.text for say in turn.ending.prompt]
    return " ".join(texts)


def test_call_opens_with_welcome_and_main_menu(engine: Engine) -> None:
    session, [turn] = walk(engine, [])
    assert turn.says[0].text == "Welkom bij Justis, de screeningsautoriteit."
    assert turn.says[0].language == "nl-NL" and turn.says[0].voice == "Polly.Lotte"
    assert isinstance(turn.ending, AskKeys) and turn.ending.num_digits == 1
    assert "toets 1" in spoken(turn)
    assert session.node == "main_menu"


# keys pressed -> (product, theme) of the queue the call joins
BRANCHES = {
    ("1", "1"): ("vog_np", "status"),
    ("1", "2"): ("vog_np", "procedure"),
    ("1", "3"): ("vog_np", "objection"),
    ("1", "4"): ("vog_np", "childcare"),
    ("1", "5"): ("vog_np", "other"),
    ("2",): ("vog_rp", "general"),
    ("3",): ("gva", "general"),
    ("4",): ("name_change", "general"),
    ("5",): ("pardon", "general"),
    ("6", "1"): ("boa", "general"),
    ("6", "2"): ("wpbr", "general"),
    ("6", "3"): ("wwm", "general"),
    ("6", "4"): ("track", "general"),
}


@pytest.mark.parametrize(("keys", "queue"), BRANCHES.items(), ids=["-".join(k) for k in BRANCHES])
def test_every_menu_branch_reaches_its_queue(
    engine: Engine, keys: tuple[str, ...], queue: tuple[str, str]
) -> None:
    session, turns = walk(engine, [*keys, "#"])  # "#": no application number at hand
    assert "aanvraagnummer" in spoken(turns[-2])
    assert turns[-1].ending == JoinQueue(product=queue[0], theme=queue[1], priority=0)
    assert session.phase is CallPhase.QUEUED
    assert (session.product, session.theme) == queue
    assert session.path[0] == f"main_menu={keys[0]}"
    assert "doorverbonden met een adviseur" in spoken(turns[-1])


def test_nine_switches_the_rest_of_the_call_to_english(engine: Engine) -> None:
    session, turns = walk(engine, ["9", "1", "2", "#"])
    assert "For a question about a certificate of conduct" in spoken(turns[1])
    assert turns[1].ending.prompt[0].language == "en-GB"  # type: ignore[union-attr]
    assert turns[1].ending.prompt[0].voice == "Polly.Amy"  # type: ignore[union-attr]
    assert "To hear the status of your application" in spoken(turns[2])
    assert session.language == "en"
    assert turns[4].ending == JoinQueue(product="vog_np", theme="procedure", priority=0)
    assert "putting you through" in spoken(turns[4])


def test_zero_repeats_the_menu_without_counting_as_a_mistake(engine: Engine) -> None:
    session, turns = walk(engine, ["0", "0", "0", "0", "0", "2", "#"])
    assert all("toets 1" in spoken(t) for t in turns[1:6])
    assert session.attempts == 0
    assert turns[-1].ending == JoinQueue(product="vog_rp", theme="general", priority=0)


def test_star_goes_back_to_the_main_menu(engine: Engine) -> None:
    _, turns = walk(engine, ["1", "*", "3", "#"])
    assert "Gedragsverklaring aanbesteden" in spoken(turns[2])
    assert turns[4].ending == JoinQueue(product="gva", theme="general", priority=0)


@pytest.mark.parametrize(
    ("mistake", "complaint"),
    [(SILENCE, "U heeft geen keuze gemaakt."), ("7", "Die keuze is niet mogelijk.")],
    ids=["no input", "wrong key"],
)
def test_menu_asks_again_three_times_then_queues_as_general(
    engine: Engine, mistake: str | None, complaint: str
) -> None:
    session, turns = walk(engine, [mistake] * 3)
    for turn in turns[1:]:
        assert turn.says[0].text == complaint
        assert isinstance(turn.ending, AskKeys)  # asked again
    final = engine.answer(session, mistake, TUESDAY_MORNING)
    assert final.says[0].text == complaint
    assert final.ending == JoinQueue(product="general", theme="general", priority=0)
    assert session.path == ["main_menu=failed"]


def test_mistakes_in_a_submenu_also_end_in_the_general_queue(engine: Engine) -> None:
    session, turns = walk(engine, ["1", "8", SILENCE, "9", SILENCE])
    assert turns[-1].ending == JoinQueue(product="general", theme="general", priority=0)
    assert session.path == ["main_menu=1", "vog_np_menu=failed"]


def test_a_good_key_after_mistakes_still_counts(engine: Engine) -> None:
    _, turns = walk(engine, ["7", SILENCE, "8", "2", "#"])
    assert turns[-1].ending == JoinQueue(product="vog_rp", theme="general", priority=0)


def test_closed_in_the_evening_says_hours_offers_status_then_goodbye(engine: Engine) -> None:
    session, [turn, last] = walk(engine, [SILENCE], at=EVENING)
    text = spoken(turn)
    assert "van maandag tot en met vrijdag" in text and "justis.nl" in text
    assert "status van uw aanvraag horen? Toets dan 1." in text
    assert "Koningsdag" not in text
    assert spoken(last) == "Bedankt voor uw telefoontje. Tot ziens."
    assert isinstance(last.ending, HangUp)
    assert session.phase is CallPhase.ENDED


def test_closed_on_kings_day_says_why(engine: Engine) -> None:
    _, [turn] = walk(engine, [], at=KINGS_DAY)
    assert (
        turn.says[1].text
        == "Vandaag is het Koningsdag. Het klantcontactcentrum is vandaag gesloten."
    )
    assert "van maandag tot en met vrijdag van 9.00 tot 17.00 uur" in spoken(turn)


def test_shortened_day_is_announced_while_open(engine: Engine) -> None:
    _, [turn] = walk(engine, [], at=datetime(2026, 12, 24, 11, 0, tzinfo=AMSTERDAM))
    assert "bereikbaar tot 15.00 uur" in spoken(turn)
    assert isinstance(turn.ending, AskKeys)


def test_call_reaching_the_queue_after_closing_time_is_not_queued(engine: Engine) -> None:
    session = new_session(engine.flow)
    engine.start(session, datetime(2026, 12, 1, 16, 59, 30, tzinfo=AMSTERDAM))
    engine.answer(session, "2", datetime(2026, 12, 1, 16, 59, 40, tzinfo=AMSTERDAM))
    turn = engine.answer(session, "#", datetime(2026, 12, 1, 17, 0, 5, tzinfo=AMSTERDAM))
    assert "van maandag tot en met vrijdag van 9.00 tot 17.00 uur" in spoken(turn)
    assert session.phase is CallPhase.MENU and session.node == "closed_menu"
    assert session.path == ["main_menu=2", "verify_vog_rp=skipped", "queue_vog_rp=closed"]


def test_answer_when_not_waiting_for_keys_is_an_engine_error(engine: Engine) -> None:
    session, _ = walk(engine, ["2", "#"])
    with pytest.raises(EngineError):
        engine.answer(session, "1", TUESDAY_MORNING)


def test_replay_asks_the_waiting_question_again(engine: Engine) -> None:
    session, _ = walk(engine, ["1"])
    turn = engine.replay(session, TUESDAY_MORNING)
    assert "status van uw aanvraag" in spoken(turn)


# -- a small flow for the node kinds the shipped flow does not use (yet) ----------------------

SMALL = """
name: small
languages: [nl, en]
voices:
  nl: {language: nl-NL, voice: Polly.Lotte}
  en: {language: en-GB, voice: Polly.Amy}
products:
  test: {nl: test, en: test}
  general: {nl: vraag, en: question}
calendar:
  weekly: {monday: "00:00-24:00", tuesday: "00:00-24:00", wednesday: "00:00-24:00",
           thursday: "00:00-24:00", friday: "00:00-24:00", saturday: "00:00-24:00",
           sunday: "00:00-24:00"}
start: intro
nodes:
  intro: {kind: say, prompt: hello, next: jump}
  jump: {kind: goto, next: number}
  number:
    kind: gather
    prompt: ask_number
    store: reference
    min_digits: 4
    max_digits: 6
    pattern: "[1-9][0-9]*"
    retries: 2
    no_input: nothing
    invalid: wrong
    next: check
    on_fail: bye
  check: {kind: verify, verified: line, unverified: line}
  line: {kind: queue, product: test, theme: general, priority: 5}
  bye: {kind: hangup, prompt: goodbye}
prompts:
  hello: {nl: Hallo, en: Hello}
  ask_number: {nl: Toets uw nummer, en: Enter your number}
  nothing: {nl: Niets gehoord, en: Nothing heard}
  wrong: {nl: Onjuist nummer, en: Wrong number}
  goodbye: {nl: Tot ziens, en: Goodbye}
  queue_position: {nl: "Nummer {position}", en: "Number {position}"}
  queue_hold: {nl: "", en: ""}
  error_apology: {nl: Excuses, en: Sorry}
  error_call_back: {nl: Bel later, en: Call later}
  queue_full: {nl: Vol, en: Full}
  queue_return: {nl: Terug, en: Back}
  call_end: {nl: Dag, en: Bye}
  queue_wait: {nl: "{minutes} min", en: "{minutes} min"}
  callback_offer: {nl: Terugbellen, en: Call back}
  callback_confirmed: {nl: Wij bellen, en: We call}
  callback_greeting: {nl: Justis belt, en: Justis calling}
  verify_number_required: {nl: Uw nummer, en: Your number}
  verify_number_optional: {nl: Uw nummer of hekje, en: Your number or hash}
  verify_number_invalid: {nl: Fout nummer, en: Bad number}
  verify_date_of_birth: {nl: Geboortedatum, en: Date of birth}
  verify_date_invalid: {nl: Ongeldige datum, en: Invalid date}
  verify_no_input: {nl: Geen invoer, en: No input}
  verify_mismatch: {nl: Niet bevestigd, en: Not confirmed}
  verify_failed: {nl: Mislukt, en: Failed}
  verify_skipped: {nl: Overgeslagen, en: Skipped}
  verify_ok: {nl: Gecontroleerd, en: Checked}
"""


@pytest.fixture
def small() -> Engine:
    flow = parse_flow(SMALL, "small.yaml")
    return Engine(flow, OpeningHours(flow.calendar))


def test_say_and_goto_lead_to_the_gather(small: Engine) -> None:
    session, [turn] = walk(small, [])
    assert [s.text for s in turn.says] == ["Hallo"]
    assert isinstance(turn.ending, AskKeys)
    assert turn.ending.finish_on_key == "#" and turn.ending.num_digits is None
    assert session.node == "number"


def test_gather_keeps_valid_digits_but_not_in_the_path(small: Engine) -> None:
    session, turns = walk(small, ["48213#", "#"])
    assert session.values == {"reference": "48213"}
    assert session.path == ["number=entered", "check=skipped"]
    assert "48213" not in " ".join(session.path)
    assert turns[-1].ending == JoinQueue(product="test", theme="general", priority=5)


@pytest.mark.parametrize(
    ("digits", "complaint"),
    [
        ("123", "Onjuist nummer"),
        ("1234567", "Onjuist nummer"),
        ("0123", "Onjuist nummer"),
        (SILENCE, "Niets gehoord"),
        ("#", "Niets gehoord"),
    ],
    ids=["too short", "too long", "fails pattern", "no input", "only finish key"],
)
def test_gather_refuses_digits_that_do_not_fit(
    small: Engine, digits: str | None, complaint: str
) -> None:
    session, turns = walk(small, [digits])
    assert turns[-1].says[0].text == complaint
    assert isinstance(turns[-1].ending, AskKeys)
    assert session.values == {}


def test_gather_gives_up_after_its_retries(small: Engine) -> None:
    session, turns = walk(small, ["1", "2", "3"])
    assert [s.text for s in turns[-1].says] == ["Onjuist nummer", "Tot ziens"]
    assert isinstance(turns[-1].ending, HangUp)
    assert session.path == ["number=failed"]
