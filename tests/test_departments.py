"""Departments from the flow (issue 12): the checker, open now, the API and the whisper."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from xml.etree import ElementTree as ET

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from twilio.twiml.voice_response import VoiceResponse

from api.cli.phone import Phone
from flows.loader import check_flow_text, parse_flow
from ivr.departments import Departments, DepartmentUnknown, Whisper, whisper_url
from ivr.engine import Engine
from ivr.hours import OpeningHours
from routing import keys
from tests.conftest import PUBLIC_URL
from tests.support.clock import AMSTERDAM
from tests.support.flow_drafts import TEXT, edit, line_of
from tests.support.staff import AHMED, SANNE, add_staff, signed_in

PhoneFactory = Callable[..., Phone]
DEPARTMENTS = "departments:"  # where the departments start in the shipped flow

# -- the checker: every problem with its code and line --------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "code", "fragment"),
    [
        # YAML reads a number without quotes as a number, and drops the plus.
        ('phone: "+31700000102"', "phone: +31700000102", "phone_unquoted", "phone: +3170"),
        ('phone: "+31700000103"', 'phone: "+31 70 000 01 03"', "phone_not_e164", 'phone: "+31 70'),
        ('phone: "+31700000103"', 'phone: "0700000103"', "phone_not_e164", 'phone: "0700'),
        ('phone: "+31700000103"', 'phone: "+310"', "phone_not_e164", 'phone: "+310"'),
        (
            'name: {nl: "BOA", en: "Special investigating officers (BOA)"}',
            'name: {nl: "BOA"}',
            "name_missing",
            'name: {nl: "BOA"}',
        ),
        (
            'name: {nl: "Bezwaar", en: "Objections"}',
            'name: {nl: "Bezwaar", en: "Objections", de: "Einspruch"}',
            "language_not_listed",
            'name: {nl: "Bezwaar"',
        ),
        (
            "    language: nl\n    products: [vog_np",
            "    language: de\n    products: [vog_np",
            "unknown_language",
            "language: de",
        ),
        (
            "products: [wpbr, track]",
            "products: [wpbr, tracks]",
            "unknown_product",
            "products: [wpbr",
        ),
        (
            'phone: "+31700000104"',
            'phone: "+31700000104"\n    fax: "+31700000199"',
            "unknown_key",
            'fax: "',
        ),
        (
            '        monday: "13:00-17:00"',
            '        monday: "13-17"',
            "hours_format",
            'monday: "13-17"',
        ),
        (
            '      weekly:\n        monday: "13:00-17:00"',
            '      timezone: Mars/Olympus\n      weekly:\n        monday: "13:00-17:00"',
            "unknown_timezone",
            "timezone: Mars",
        ),
        (
            "        observe: [New Year's Day, Easter",
            "        observe: [Kings Day, Easter",
            "unknown_holiday",
            "observe: [Kings Day",
        ),
        (
            '          nl: "Vandaag is het {holiday}."\n          en: "Today is {holiday}."\n',
            '          nl: "Vandaag is het {holiday}."\n',
            "translation_missing",
            'announcement:\n          nl: "Vandaag is het {holiday}."',
        ),
        (
            'nl: "Notitie van de adviseur: {note}"',
            'nl: "Notitie van de adviseur: {note}, van {caller}"',
            "unknown_placeholder",
            'nl: "Notitie van de adviseur',
        ),
    ],
)
def test_each_department_problem_is_reported_with_its_code_on_its_line(
    old: str, new: str, code: str, fragment: str
) -> None:
    text = edit(TEXT, old, new)
    _, problems = check_flow_text(text, "kcc.yaml")
    found = [(p.line, p.code) for p in problems]
    after = None if code == "unknown_placeholder" else DEPARTMENTS
    assert found == [(line_of(text, fragment, after=after), code)], [str(p) for p in problems]
    assert str(problems[0]).startswith(f"kcc.yaml:{found[0][0]}: ")


def test_a_phone_number_without_quotes_is_explained() -> None:
    text = edit(TEXT, 'phone: "+31700000102"', "phone: +31700000102")
    _, problems = check_flow_text(text, "kcc.yaml")
    assert problems[0].message == (
        "departments.wwm.phone: the phone number is read as the number 31700000102: write it in "
        "quotes, e.g. '+31700000101'"
    )
    assert dict(problems[0].params) == {"where": "departments.wwm.phone", "number": "31700000102"}


def test_a_department_without_a_phone_is_a_missing_key() -> None:
    text = edit(TEXT, '    phone: "+31700000105"\n', "")
    _, problems = check_flow_text(text, "kcc.yaml")
    assert [(p.line, p.code, dict(p.params)["key"]) for p in problems] == [
        (line_of(text, "  bezwaar:", after=DEPARTMENTS), "missing_key", "phone")
    ]


NOTE_PROMPT = """  department_whisper_note:
    nl: "Notitie van de adviseur: {note}"
    en: "The adviser's note: {note}"
"""
WHISPER_PROMPT = """  department_whisper:
    nl: "Doorverbonden gesprek van het klantcontactcentrum over {product}. Vraag: {question}."
    en: "A call transferred by the contact centre about {product}. Question: {question}."
"""


def test_departments_need_the_whisper_prompts() -> None:
    text = edit(TEXT, NOTE_PROMPT, "")
    _, problems = check_flow_text(text, "kcc.yaml")
    assert [(p.code, dict(p.params).get("prompt")) for p in problems] == [
        ("prompt_missing", "department_whisper_note")
    ]
    # A flow without departments does not need them.
    start = TEXT.index("\ndepartments:\n")
    without = TEXT[:start] + "\n" + TEXT[TEXT.index("\nqueue:\n") :]
    without = edit(edit(without, NOTE_PROMPT, ""), WHISPER_PROMPT, "")
    assert check_flow_text(without, "kcc.yaml")[1] == []


def test_a_broken_department_does_not_hide_the_problems_of_the_others() -> None:
    text = edit(TEXT, 'phone: "+31700000102"', "phone: +31700000102")
    text = edit(text, "products: [wpbr, track]", "products: [wpbr, tracks]")
    _, problems = check_flow_text(text, "kcc.yaml")
    assert sorted(p.code for p in problems) == ["phone_unquoted", "unknown_product"]


# -- the domain: lookup, open now, whisper ---------------------------------------------------


def _departments(text: str = TEXT) -> Departments:
    flow = parse_flow(text)
    return Departments(Engine(flow, OpeningHours(flow.calendar)))


def test_an_unknown_department_is_a_coded_domain_error() -> None:
    with pytest.raises(DepartmentUnknown) as raised:
        _departments().get("nergens")
    assert raised.value.code == "department_unknown"
    assert raised.value.params == {"department": "nergens"}


@pytest.mark.parametrize(
    ("at", "open_keys"),
    [
        # Tuesday morning: the KCC is open, the pardons team only answers in the afternoon.
        (datetime(2026, 12, 1, 10, 0, tzinfo=AMSTERDAM), ["wwm", "boa", "wpbr_track", "bezwaar"]),
        (
            datetime(2026, 12, 1, 14, 0, tzinfo=AMSTERDAM),
            ["gratie", "wwm", "boa", "wpbr_track", "bezwaar"],
        ),
        (
            datetime(2026, 12, 1, 16, 59, tzinfo=AMSTERDAM),
            ["gratie", "wwm", "boa", "wpbr_track", "bezwaar"],
        ),
        # After 17:00, a Saturday, King's Day (its own holidays and the KCC's): all closed.
        (datetime(2026, 12, 1, 17, 0, tzinfo=AMSTERDAM), []),
        (datetime(2026, 12, 5, 14, 0, tzinfo=AMSTERDAM), []),
        (datetime(2026, 4, 27, 14, 0, tzinfo=AMSTERDAM), []),
        # 24 December: the KCC closes at 15:00, so do the departments without hours of their own.
        (datetime(2026, 12, 24, 16, 0, tzinfo=AMSTERDAM), ["gratie"]),
    ],
)
def test_departments_are_open_by_their_own_hours_or_else_the_kccs(
    at: datetime, open_keys: list[str]
) -> None:
    departments = _departments()
    assert [s.key for s in departments.statuses(at, open_only=True)] == open_keys
    every = [s.key for s in departments.statuses(at)]
    assert every == ["gratie", "wwm", "boa", "wpbr_track", "bezwaar"]
    assert [departments.is_open(key, at) for key in every] == [key in open_keys for key in every]


def test_the_whisper_says_product_question_and_note_in_the_departments_language() -> None:
    departments = _departments()
    whisper = Whisper(product="vog_np", theme="objection", note="Beller wacht op <besluit> & belt")
    expected = VoiceResponse()
    expected.say(
        "Doorverbonden gesprek van het klantcontactcentrum over een VOG. Vraag: Bezwaar.",
        language="nl-NL",
        voice="Polly.Lotte",
    )
    expected.say(
        "Notitie van de adviseur: Beller wacht op <besluit> & belt",
        language="nl-NL",
        voice="Polly.Lotte",
    )
    assert departments.whisper_twiml("bezwaar", whisper) == str(expected)

    english = _departments(
        edit(
            TEXT,
            "    language: nl\n    products: [vog_np",
            "    language: en\n    products: [vog_np",
        )
    )
    says = english.whisper_says("bezwaar", Whisper(product="gva", theme="status"))
    assert [(s.text, s.language) for s in says] == [
        (
            "A call transferred by the contact centre about a certificate of conduct for "
            "tenders. Question: Application status.",
            "en-GB",
        )
    ]


# -- the API ---------------------------------------------------------------------------------


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, AHMED)


async def test_departments_need_a_signed_in_user(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/departments")
    assert response.status_code == 401
    assert response.json()["code"] == "not_signed_in"


@pytest.mark.usefixtures("staff")
async def test_advisers_see_every_department_with_open_now_and_todays_hours(
    http: httpx.AsyncClient,
) -> None:
    headers = await signed_in(http, AHMED)
    response = await http.get("/api/departments", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert [d["key"] for d in body] == ["gratie", "wwm", "boa", "wpbr_track", "bezwaar"]
    gratie = body[0]
    assert gratie == {
        "key": "gratie",
        "name": "Gratie",
        "open": False,  # the test clock: Tuesday 10:00
        "hours_today": {"opens": "13:00", "closes": "17:00"},
        "products": ["pardon"],
    }
    assert body[3]["products"] == ["wpbr", "track"]
    assert body[3]["hours_today"] == {"opens": "09:00", "closes": "17:00"}  # the KCC's


@pytest.mark.usefixtures("staff")
async def test_supervisors_ask_for_the_open_ones_in_english(http: httpx.AsyncClient) -> None:
    headers = await signed_in(http, SANNE)
    response = await http.get(
        "/api/departments", params={"open": "true", "lang": "en"}, headers=headers
    )
    body = response.json()
    assert [(d["key"], d["name"], d["open"]) for d in body] == [
        ("wwm", "Weapons and Ammunition Act", True),
        ("boa", "Special investigating officers (BOA)", True),
        ("wpbr_track", "Private security and TRACK", True),
        ("bezwaar", "Objections", True),
    ]


def test_the_openapi_schema_documents_the_departments_and_their_refusals(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/api/departments"]["get"]
    assert {"200", "401"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["open", "lang"]


# -- the whisper webhook ---------------------------------------------------------------------


async def test_the_department_hears_the_whisper_the_transfer_stored(
    app: FastAPI, phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    caller_sid = "CA" + "1" * 32
    services = app.state.services
    await services.whispers.put(
        caller_sid, Whisper(product="pardon", theme="general", note="Vraagt naar 1234567")
    )
    stored = await redis_client.get(keys.call_whisper(caller_sid))
    assert stored is not None and "1234567" not in stored  # sealed: the note may be personal
    assert 0 < await redis_client.ttl(keys.call_whisper(caller_sid)) <= keys.WHISPER_TTL

    department_leg = phone(caller="+31612345678", to="+31700000101")
    url = whisper_url(PUBLIC_URL, "gratie", caller_sid)
    assert url == f"{PUBLIC_URL}/twilio/department-whisper?department=gratie&call={caller_sid}"
    response = await department_leg.post(url)
    assert response.status_code == 200
    says = [element.text for element in ET.fromstring(response.text).iter("Say")]
    assert says == [
        "Doorverbonden gesprek van het klantcontactcentrum over gratie. Vraag: Overig.",
        "Notitie van de adviseur: Vraagt naar 1234567",
    ]


async def test_the_whisper_without_a_stored_one_or_department_still_answers_twiml(
    phone: PhoneFactory,
) -> None:
    leg = phone()
    url = whisper_url(PUBLIC_URL, "boa", "CA" + "2" * 32)  # nothing stored (expired)
    response = await leg.post(url)
    says = [element.text for element in ET.fromstring(response.text).iter("Say")]
    assert says == [
        "Doorverbonden gesprek van het klantcontactcentrum over uw vraag. Vraag: Overig."
    ]
    unknown = await leg.post(whisper_url(PUBLIC_URL, "nergens", "CA" + "2" * 32))
    assert unknown.status_code == 200
    assert ET.fromstring(unknown.text).tag == "Response"  # put through without a whisper


async def test_the_whisper_needs_twilios_signature(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/twilio/department-whisper?department=gratie&call=CA1", data={"CallSid": "CA2"}
    )
    assert response.status_code == 403
