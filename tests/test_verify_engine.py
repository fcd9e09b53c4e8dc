"""Identity verification and self-service status in the engine (pure: no Redis, no database)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from flows.loader import load_flow
from ivr.engine import Engine
from ivr.hours import OpeningHours
from ivr.identity.check import CheckOutcome, CheckResult, IdentityCheck
from ivr.session import CallPhase, CallSession, Verification, VerifyStage
from ivr.turn import AskKeys, HangUp, JoinQueue, Turn
from tests.support.clock import AMSTERDAM, TUESDAY_MORNING
from tests.support.paths import SHIPPED

EVENING = datetime(2026, 12, 1, 19, 0, tzinfo=AMSTERDAM)
NUMBER = "1234567"
BORN = "03111985"
VERIFIED = CheckOutcome(
    CheckResult.VERIFIED, product="vog_np", status="in_progress", status_date=date(2026, 11, 3)
)
MISMATCH = CheckOutcome(CheckResult.MISMATCH)
LOCKED = CheckOutcome(CheckResult.LOCKED)


@pytest.fixture(scope="module")
def engine() -> Engine:
    flow = load_flow(SHIPPED)
    return Engine(flow, OpeningHours(flow.calendar))


def spoken(turn: Turn) -> str:
    texts = [say.text for say in turn.says]
    if isinstance(turn.ending, AskKeys):
        texts += [say.text for say in turn.ending.prompt]
    return " ".join(texts)


class Call:
    """Drives the engine as the call handler does, with canned identity check outcomes."""

    def __init__(self, engine: Engine, at: datetime = TUESDAY_MORNING) -> None:
        self.engine = engine
        self.at = at
        self.session = CallSession(
            call_sid="CA" + "2" * 32,
            caller="+31612345678",
            flow="kcc",
            flow_version="test",
            language="nl",
            started_at=at,
        )
        self.checks: list[IdentityCheck] = []
        self.turn = engine.start(self.session, at)

    def press(self, keys: str | None, outcome: CheckOutcome | None = None) -> Turn:
        request = self.engine.identity_check(self.session, keys, self.at)
        if request is not None:
            self.checks.append(request)
            assert outcome is not None, "the engine asked for an identity check"
        self.turn = self.engine.answer(self.session, keys, self.at, outcome if request else None)
        return self.turn


def to_status_verification(engine: Engine, at: datetime = TUESDAY_MORNING) -> Call:
    call = Call(engine, at)
    if at == TUESDAY_MORNING:
        call.press("1")
    call.press("1")
    return call


def test_status_question_asks_for_the_application_number_first(engine: Engine) -> None:
    call = to_status_verification(engine)
    assert "controleren wij eerst wie u bent" in spoken(call.turn)
    assert call.turn.ending.finish_on_key == "#"  # type: ignore[union-attr]
    assert call.session.verify_stage is VerifyStage.NUMBER


def test_number_then_date_of_birth_is_asked_in_eight_digits(engine: Engine) -> None:
    call = to_status_verification(engine)
    call.press(f"{NUMBER}#")
    assert "geboortedatum in acht cijfers" in spoken(call.turn)
    assert call.turn.ending.num_digits == 8  # type: ignore[union-attr]
    assert call.session.verify_stage is VerifyStage.DATE_OF_BIRTH


def test_verified_caller_hears_status_and_date_in_dutch(engine: Engine) -> None:
    call = to_status_verification(engine)
    call.press(f"{NUMBER}#")
    turn = call.press(BORN, VERIFIED)
    assert [c.application_number for c in call.checks] == [NUMBER]
    assert call.checks[0].born == date(1985, 11, 3)
    text = spoken(turn)
    assert "Dank u wel, uw gegevens zijn gecontroleerd." in text
    assert "Uw aanvraag voor een VOG is op 3 november in behandeling genomen." in text
    assert "Wilt u een adviseur spreken, toets 1." in text
    assert call.session.verification is Verification.VERIFIED
    assert call.session.self_service is True


def test_verified_caller_hears_status_in_english(engine: Engine) -> None:
    call = Call(engine)
    call.press("9")
    call.press("1")
    call.press("1")
    call.press(f"{NUMBER}#")
    text = spoken(call.press(BORN, VERIFIED))
    assert (
        "Your application for a certificate of conduct has been in progress since 3 November."
        in text
    )
    assert "To speak to an adviser, press 1." in text


def test_after_status_one_queues_with_the_verified_context(engine: Engine) -> None:
    call = to_status_verification(engine)
    call.press(f"{NUMBER}#")
    call.press(BORN, VERIFIED)
    turn = call.press("1")
    assert turn.ending == JoinQueue(product="vog_np", theme="status", priority=0)
    session = call.session
    assert session.application_number == NUMBER
    assert (session.application_status, session.application_status_date) == (
        "in_progress",
        date(2026, 11, 3),
    )
    assert session.path[-2:] == ["verify_vog_np_status=verified", "status_self_service=adviser"]
    assert session.pending_number is None


def test_after_status_two_repeats_it_and_silence_says_goodbye(engine: Engine) -> None:
    call = to_status_verification(engine)
    call.press(f"{NUMBER}#")
    call.press(BORN, VERIFIED)
    assert "in behandeling genomen" in spoken(call.press("2"))
    call.press(None)
    call.press(None)
    last = call.press(None)
    assert spoken(last) == "Bedankt voor uw telefoontje. Tot ziens."
    assert isinstance(last.ending, HangUp)
    assert call.session.self_service is True


@pytest.mark.parametrize(
    "born",
    ["31022000", "01011899", "01012099", "0311198", "99999999"],
    ids=["no such day", "before 1900", "future", "too short", "nonsense"],
)
def test_impossible_date_is_refused_at_once_and_not_counted(engine: Engine, born: str) -> None:
    call = to_status_verification(engine)
    call.press(f"{NUMBER}#")
    turn = call.press(born)
    assert call.checks == []  # nothing was checked
    assert turn.says[0].text == "Dat is geen geldige geboortedatum."
    assert "geboortedatum in acht cijfers" in spoken(turn)
    assert call.session.verify_failures == 0
    call.press(BORN, VERIFIED)
    assert call.session.verification is Verification.VERIFIED


def test_three_mismatches_end_unverified_in_the_queue(engine: Engine) -> None:
    call = to_status_verification(engine)
    for _ in range(2):
        call.press(f"{NUMBER}#")
        turn = call.press(BORN, MISMATCH)
        assert turn.says[0].text == "Wij kunnen deze gegevens niet bevestigen."
        assert "Toets uw aanvraagnummer" in spoken(turn)  # asked again
    call.press(f"{NUMBER}#")
    turn = call.press(BORN, MISMATCH)
    assert [s.text for s in turn.says][:2] == [
        "Wij kunnen deze gegevens niet bevestigen.",
        "Wij gaan verder zonder uw aanvraaggegevens.",
    ]
    assert turn.ending == JoinQueue(product="vog_np", theme="status", priority=0)
    assert call.session.verification is Verification.FAILED
    assert call.session.application_number is None
    assert call.session.self_service is False


def test_locked_number_sounds_exactly_like_a_wrong_date(engine: Engine) -> None:
    wrong, locked = to_status_verification(engine), to_status_verification(engine)
    for call, outcome in ((wrong, MISMATCH), (locked, LOCKED)):
        call.press(f"{NUMBER}#")
        call.press(BORN, outcome)
    assert wrong.turn == locked.turn


def test_a_locked_try_makes_the_outcome_locked(engine: Engine) -> None:
    call = to_status_verification(engine)
    for outcome in (MISMATCH, LOCKED, MISMATCH):
        call.press(f"{NUMBER}#")
        call.press(BORN, outcome)
    assert call.session.verification is Verification.LOCKED
    assert call.session.path[-1] == "verify_vog_np_status=locked"


def test_hash_alone_skips_and_goes_on_unverified(engine: Engine) -> None:
    call = to_status_verification(engine)
    turn = call.press("#")
    assert turn.says[0].text == "Geen probleem."
    assert turn.ending == JoinQueue(product="vog_np", theme="status", priority=0)
    assert call.session.verification is Verification.SKIPPED


def test_empty_digits_count_as_hash_alone(engine: Engine) -> None:
    call = to_status_verification(engine)
    call.press("")
    assert call.session.verification is Verification.SKIPPED


def test_wrong_length_number_is_asked_again_then_skipped(engine: Engine) -> None:
    call = to_status_verification(engine)
    for _ in range(2):
        turn = call.press("123#")
        assert (
            turn.says[0].text == "Een aanvraagnummer heeft 6 tot 12 cijfers. Probeer het opnieuw."
        )
        assert isinstance(turn.ending, AskKeys)
    turn = call.press("1234567890123#")
    assert isinstance(turn.ending, JoinQueue)
    assert call.session.verification is Verification.SKIPPED


def test_silence_at_the_number_counts_as_having_no_number(engine: Engine) -> None:
    """With actionOnEmptyResult Twilio posts "#" alone and silence alike: both skip."""
    call = to_status_verification(engine)
    assert call.turn.ending.action_on_empty is True  # type: ignore[union-attr]
    turn = call.press(None)
    assert turn.says[0].text == "Geen probleem."
    assert call.session.verification is Verification.SKIPPED


def test_verify_tries_are_per_call_not_per_verify_node(engine: Engine) -> None:
    call = to_status_verification(engine)
    for _ in range(3):
        call.press(f"{NUMBER}#")
        call.press(BORN, MISMATCH)
    assert call.session.verification is Verification.FAILED
    call.session.phase = CallPhase.MENU  # as if the flow led to another verify node
    turn = call.engine._run(call.session, "verify_vog_rp", TUESDAY_MORNING, Turn())
    assert turn.ending == JoinQueue(product="vog_rp", theme="general", priority=0)


def test_optional_verification_is_offered_for_other_products(engine: Engine) -> None:
    call = Call(engine)
    turn = call.press("2")
    assert "Heeft u een aanvraagnummer?" in spoken(turn)
    call.press("3456789#")
    verified_rp = CheckOutcome(
        CheckResult.VERIFIED,
        product="vog_rp",
        status="waiting_for_information",
        status_date=date(2026, 10, 12),
    )
    turn = call.press("30071978", verified_rp)
    assert turn.ending == JoinQueue(product="vog_rp", theme="general", priority=0)
    assert call.session.application_number == "3456789"


def test_objection_requires_verification_but_never_traps(engine: Engine) -> None:
    call = Call(engine)
    call.press("1")
    turn = call.press("3")
    assert "controleren wij eerst wie u bent" in spoken(turn)
    turn = call.press("#")
    assert turn.ending == JoinQueue(product="vog_np", theme="objection", priority=0)


def test_closed_offers_self_service_status_without_an_adviser(engine: Engine) -> None:
    call = to_status_verification(engine, at=EVENING)
    call.press(f"{NUMBER}#")
    text = spoken(call.press(BORN, VERIFIED))
    assert "in behandeling genomen" in text
    assert "Wilt u het nogmaals horen, toets 2." in text
    assert "adviseur spreken" not in text
    turn = call.press("1")  # no adviser while closed: treated as no choice
    assert not isinstance(turn.ending, JoinQueue)
    assert "in behandeling genomen" in spoken(call.press("2"))


def test_closed_and_not_verified_says_goodbye(engine: Engine) -> None:
    call = to_status_verification(engine, at=EVENING)
    turn = call.press("#")
    assert spoken(turn) == "Geen probleem. Bedankt voor uw telefoontje. Tot ziens."
    assert isinstance(turn.ending, HangUp)
    assert call.session.phase is CallPhase.ENDED


def test_the_session_never_holds_the_date_of_birth(engine: Engine) -> None:
    call = to_status_verification(engine)
    call.press(f"{NUMBER}#")
    call.press(BORN, MISMATCH)
    call.press(f"{NUMBER}#")
    call.press(BORN, VERIFIED)
    dump = call.session.model_dump_json()
    for form in (BORN, "1985-11-03", "1985", "03-11"):
        assert form not in dump


def test_identity_check_repr_hides_the_date(engine: Engine) -> None:
    request = IdentityCheck(application_number=NUMBER, born=date(1985, 11, 3))
    assert "1985" not in repr(request) and NUMBER not in repr(request)
