"""Wrap-up codes per product (issue 13): the flow's `wrap_up_codes`, its checks at their lines,
the codes the desk is given, and the wrap-up API's 422 and 409."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from api.cli.phone import Phone
from api.web.routes.config import staff_config
from flows.errors import WrapUpCodeUnknown
from flows.loader import check_flow_text, parse_flow
from routing.adviser_history import WrapUp
from tests.conftest import PUBLIC_URL
from tests.support.flow_drafts import TEXT, edit, line_of
from tests.support.staff import SANNE, add_staff, adviser, signed_in

BLOCK = "wrap_up_codes:"  # where the codes start in the shipped flow
ANN = adviser("ann", skills=["vog_rp", "vog_np"])

# -- the checker: every problem with its code and line --------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "code", "fragment"),
    [
        # a list for a product the flow does not have
        ("    track:\n      login:", "    trak:\n      login:", "unknown_product", "    trak:"),
        # a product's code that is shared too: two labels for one code
        (
            '      childcare: {nl: "Kinderopvang", en: "Childcare"}',
            '      childcare: {nl: "Kinderopvang", en: "Childcare"}\n'
            '      other: {nl: "Anders", en: "Other"}',
            "wrap_up_code_duplicate",
            '      other: {nl: "Anders"',
        ),
        # the same code twice in one list
        (
            '      childcare: {nl: "Kinderopvang", en: "Childcare"}',
            '      childcare: {nl: "Kinderopvang", en: "Childcare"}\n'
            '      childcare: {nl: "Kinderen", en: "Children"}',
            "duplicate_key",
            '      childcare: {nl: "Kinderen"',
        ),
        # a label missing in a language of the flow
        (
            '    no_question: {nl: "Geen vraag", en: "No question"}',
            '    no_question: {nl: "Geen vraag"}',
            "translation_missing",
            "    no_question:",
        ),
        # a label in a language the flow does not speak
        (
            '    called_back: {nl: "Teruggebeld", en: "Called back"}',
            '    called_back: {nl: "Teruggebeld", en: "Called back", de: "Zurückgerufen"}',
            "language_not_listed",
            "    called_back:",
        ),
        # an empty list
        (
            '    wwm:\n      status: {nl: "Status aanvraag", en: "Application status"}\n'
            '      procedure: {nl: "Procedure", en: "How to apply"}\n',
            "    wwm: {}\n",
            "wrap_up_codes_empty",
            "    wwm: {}",
        ),
        # a code that is not a key
        (
            '    no_question: {nl: "Geen vraag", en: "No question"}',
            '    No_question: {nl: "Geen vraag", en: "No question"}',
            "wrong_pattern",
            "    No_question:",
        ),
    ],
)
def test_each_wrap_up_code_problem_is_reported_with_its_code_on_its_line(
    old: str, new: str, code: str, fragment: str
) -> None:
    text = edit(TEXT, old, new)
    _, problems = check_flow_text(text, "kcc.yaml")
    found = [(p.line, p.code) for p in problems]
    assert found == [(line_of(text, fragment, after=BLOCK), code)], [str(p) for p in problems]
    assert str(problems[0]).startswith("kcc.yaml:")


def test_a_product_without_any_code_is_reported_when_nothing_is_shared() -> None:
    start, end = TEXT.index("  shared:\n"), TEXT.index("  per_product:\n")
    text = TEXT[:start] + TEXT[end:]
    _, problems = check_flow_text(text, "kcc.yaml")
    assert [(p.line, p.code, dict(p.params)["product"]) for p in problems] == [
        (line_of(text, "  per_product:", after=BLOCK), "wrap_up_codes_missing", "general")
    ]
    assert problems[0].message == (
        "wrap_up_codes: no wrap-up code for product 'general': give it a list, or add shared codes"
    )


def test_a_flow_without_the_block_is_valid_and_offers_no_codes() -> None:
    start, end = TEXT.index("\nwrap_up_codes:\n"), TEXT.index("\nqueue:\n")
    flow = parse_flow(TEXT[:start] + TEXT[end:])
    assert flow.wrap_up_codes.for_product("vog_np") == {}
    with pytest.raises(WrapUpCodeUnknown):
        flow.wrap_up_codes.check("vog_np", "status")


def test_the_desk_is_given_each_products_own_codes_then_the_shared_ones_in_dutch() -> None:
    config = staff_config(parse_flow(TEXT), "nl", simulated_telephony=True)
    shared = {
        "transferred": "Doorverbonden",
        "referred": "Doorverwezen naar afdeling",
        "called_back": "Teruggebeld",
        "no_question": "Geen vraag",
        "other": "Overig",
    }
    assert list(config.wrap_up_codes["vog_np"].items()) == [
        ("status", "Status aanvraag"),
        ("procedure", "Procedure"),
        ("objection", "Bezwaar"),
        ("childcare", "Kinderopvang"),
        ("screening_profile", "Screeningsprofiel"),
        ("costs", "Kosten en betaling"),
        ("no_application", "Geen aanvraag bekend"),
        *shared.items(),
    ]
    assert config.wrap_up_codes["general"] == shared  # no codes of its own
    assert config.wrap_up_codes[""] == shared  # a call whose product is unknown
    english = staff_config(parse_flow(TEXT), "en", simulated_telephony=True)
    assert english.wrap_up_codes["vog_rp"]["eherkenning"] == "eHerkenning"
    assert english.wrap_up_codes["vog_rp"]["called_back"] == "Called back"


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, ANN)


async def talked_to_a_vog_rp_caller(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> tuple[dict[str, str], Phone]:
    """Ann answered a VOG RP call and the conversation ended: she is in wrap-up."""
    ann = await signed_in(http, ANN)
    await http.post("/api/advisers/me/status", json={"status": "available"}, headers=ann)
    caller = phone()
    await caller.dial()
    await caller.press("2")
    assert (await caller.press("#")).queue == "kcc-vog_rp"
    await caller.post(f"{PUBLIC_URL}/twilio/offer-answered?offer=1", {"CallStatus": "in-progress"})
    await caller.post(
        f"{PUBLIC_URL}/twilio/dial-result?offer=1&lang=nl", {"DialCallStatus": "completed"}
    )
    assert (await http.get("/api/advisers/me", headers=ann)).json()["status"] == "wrap_up"
    return ann, caller


def saved_wrap_ups(app: FastAPI) -> list[tuple[str, str, str]]:
    with Session(app.state.services.db_engine) as db:
        return [(w.call_sid, w.category, w.note) for w in db.exec(select(WrapUp)).all()]


@pytest.mark.usefixtures("staff")
async def test_a_code_of_another_product_is_refused_naming_the_calls_product(
    http: httpx.AsyncClient, phone: Callable[..., Phone], app: FastAPI
) -> None:
    ann, caller = await talked_to_a_vog_rp_caller(http, phone)
    for code in ("childcare", "nonsense"):  # VOG NP's own, and nobody's
        response = await http.post(
            "/api/advisers/me/wrap-up", json={"category": code, "note": ""}, headers=ann
        )
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "wrap_up_code_unknown"
        assert body["params"] == {"wrap_up_code": code, "product": "vog_rp"}
    assert saved_wrap_ups(app) == []

    # VOG RP's own code, and a shared one, are taken (the first one only: see below).
    good = await http.post(
        "/api/advisers/me/wrap-up", json={"category": "eherkenning", "note": "uitleg"}, headers=ann
    )
    assert good.status_code == 204
    assert saved_wrap_ups(app) == [(caller.call_sid, "eherkenning", "uitleg")]


@pytest.mark.usefixtures("staff")
async def test_a_second_wrap_up_of_the_same_call_is_a_conflict_and_keeps_the_first(
    http: httpx.AsyncClient, phone: Callable[..., Phone], app: FastAPI
) -> None:
    ann, caller = await talked_to_a_vog_rp_caller(http, phone)
    first = await http.post(
        "/api/advisers/me/wrap-up", json={"category": "referred", "note": "bezwaar"}, headers=ann
    )
    assert first.status_code == 204
    again = await http.post(
        "/api/advisers/me/wrap-up", json={"category": "other", "note": "nog eens"}, headers=ann
    )
    assert again.status_code == 409
    assert again.json()["code"] == "wrap_up_done"
    assert saved_wrap_ups(app) == [(caller.call_sid, "referred", "bezwaar")]
    # The adviser goes on as before: ready for the next call.
    ready = await http.post("/api/advisers/me/status", json={"status": "ready"}, headers=ann)
    assert ready.json()["status"] == "available"
