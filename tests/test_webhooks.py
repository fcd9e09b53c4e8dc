"""The Twilio contract over HTTP: signatures, retries, state in Redis, and no application error."""

from __future__ import annotations

import asyncio
import random
import string
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from api.cli.phone import Phone, parse_twiml
from api.webhooks.signature import compute_signature, is_signed, parse_form, signed_url
from ivr.records import CallRecord
from routing import keys
from routing.clock import FixedClock
from routing.queue import CallQueue
from routing.sealing import Sealer
from tests.conftest import AUTH_TOKEN, IN_CI, PUBLIC_URL, REDIS_UP, SECRET_KEY
from tests.support.clock import AMSTERDAM

PhoneFactory = Callable[..., Phone]
# Off CI without a Redis server the instances would each get their own embedded store; in CI the
# test runs and the redis_client fixture fails loudly if Redis is missing.
needs_shared_redis = pytest.mark.skipif(
    not REDIS_UP and not IN_CI, reason="several app instances need the real Redis"
)


def test_twilio_published_signature_vector() -> None:
    validator = RequestValidator("12345")
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert validator.compute_signature(url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert validator.validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")

    # The app's check reads the header and asks the same validator.
    def scope(signature: str) -> dict[str, object]:
        return {"headers": [(b"x-twilio-signature", signature.encode())]}

    assert is_signed(validator, url, params, scope("0/KCTR6DLpKmkAf8muzZqo1nDgQ="))
    assert not is_signed(validator, url, params, scope("1/KCTR6DLpKmkAf8muzZqo1nDgQ="))
    assert not is_signed(
        validator, url, {**params, "Digits": "1"}, scope("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    )
    assert not is_signed(validator, url, params, {"headers": []})
    assert compute_signature(b"12345", url, params) == b"0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_signature_check_agrees_with_twilios_validator_on_random_forms() -> None:
    """The one-HMAC check accepts and refuses exactly what RequestValidator.validate does,
    including a signature over the URL with the default port added or left out."""
    rng = random.Random(11)
    alphabet = "aZ09+-_.~ %&=?#/:é€\u00a0😀"
    validator = RequestValidator("tok-" + "".join(rng.choices(string.ascii_letters, k=20)))

    def text(k: int) -> str:
        return "".join(rng.choices(alphabet, k=rng.randint(0, k)))

    def scope(signature: str) -> dict[str, object]:
        return {"headers": [(b"x-twilio-signature", signature.encode())]}

    urls = [
        "https://ivr.example.nl/twilio/step?seq=1&lang=nl",
        "https://ivr.example.nl:443/twilio/voice",
        "http://127.0.0.1:8000/twilio/wait?lang=nl",
    ]
    for _ in range(300):
        url = rng.choice(urls)
        params = {text(8) or "x": text(20) for _ in range(rng.randint(0, 8))}
        signed_over = rng.choice([url, url.replace(":443", ""), url.replace(".nl/", ".nl:443/")])
        right = validator.compute_signature(signed_over, params)
        for signature in (right, right[:-2] + "x=", validator.compute_signature(url, {"a": "1"})):
            assert is_signed(validator, url, params, scope(signature)) == validator.validate(
                url, params, signature
            )
        assert is_signed(validator, url, params, scope(right))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "&&",
        "a",
        "a=&=b&=",
        "a=1&a=2",
        "From=%2B31612345678&To=%2b31703704900",
        "x+y=a+b%20c",
        "bad=%zz%2&half=%e2%82&euro=%E2%82%AC",
        "q=%3D%26%25&r=a=b=c",
        "Digits=",
    ],
)
def test_the_form_parser_reads_odd_forms_as_parse_qsl_does(body: str) -> None:
    assert parse_form(body) == dict(parse_qsl(body, keep_blank_values=True))


def test_the_form_parser_reads_random_forms_as_parse_qsl_does() -> None:
    rng = random.Random(7)
    alphabet = "aZ09+-_.~ %&=?#/:é€\u00a0😀"
    for _ in range(500):
        form = {
            "".join(rng.choices(alphabet, k=rng.randint(1, 6))): "".join(
                rng.choices(alphabet, k=rng.randint(0, 12))
            )
            for _ in range(rng.randint(0, 6))
        }
        encoded = urlencode(form)
        raw = "&".join(
            "".join(rng.choices(alphabet, k=rng.randint(0, 8))) for _ in range(rng.randint(0, 5))
        )
        for body in (encoded, raw, encoded + "&" + raw):
            assert parse_form(body) == dict(parse_qsl(body, keep_blank_values=True)), body
        assert parse_form(encoded) == form


def test_the_form_parser_unquotes_broken_and_mixed_escapes_as_parse_qsl_does() -> None:
    # Escapes that make half a character, raw characters beside them, '+' for spaces.
    rng = random.Random(11)
    pieces = ["%", "+", "a", "0", "%C3", "%a9", "%E2%82", "%AC", "%F0%9F", "%98%80", "%zz"]
    pieces += ["é", "€", "😀", "\u00a0", "%2B31612345678", "=", "%26", "%3D", "%"]
    for _ in range(3000):
        body = "&".join(
            "".join(rng.choices(pieces, k=rng.randint(0, 8))) for _ in range(rng.randint(1, 4))
        )
        assert parse_form(body) == dict(parse_qsl(body, keep_blank_values=True)), body


def test_signed_url_comes_from_the_public_url_not_the_host_header() -> None:

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/twilio/step",
        "query_string": b"seq=2&lang=nl",
        "headers": [(b"host", b"10.0.0.7:8000"), (b"x-forwarded-host", b"evil.example")],
        "scheme": "http",
        "server": ("10.0.0.7", 8000),
    }
    assert (
        signed_url("https://ivr.justis.nl", scope)
        == "https://ivr.justis.nl/twilio/step?seq=2&lang=nl"
    )


async def test_a_call_walks_the_menu_into_the_queue(
    phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    caller = phone()
    turn = await caller.dial()
    assert "Welkom bij Justis" in turn.text
    assert turn.gather_url is not None and turn.gather_url.startswith(
        f"{PUBLIC_URL}/twilio/step?seq=1"
    )
    assert turn.no_input_url is not None and "event=timeout" in turn.no_input_url
    turn = await caller.press("1")
    assert "status van uw aanvraag" in turn.text
    turn = await caller.press("4")
    assert "Heeft u een aanvraagnummer?" in turn.text
    turn = await caller.press("#")
    assert turn.queue == "kcc-vog_np"
    # The waitUrl carries the sealed entry: a call Redis lost comes back with its context.
    assert turn.wait_url is not None
    assert turn.wait_url.startswith(f"{PUBLIC_URL}/twilio/wait?lang=nl&ctx=2.")
    assert "%" not in turn.wait_url  # nothing for the wait webhook to unquote
    hold = await caller.hold()
    assert "U bent nummer 1 in de wachtrij." in hold.text
    assert await redis_client.zrank(keys.queue("vog_np"), caller.call_sid) == 0
    assert await redis_client.ttl(keys.session(caller.call_sid)) > 0


async def test_every_webhook_answer_is_twiml(phone: PhoneFactory) -> None:
    caller = phone()
    for answer in [await caller.dial(), await caller.stay_silent(), await caller.press("2")]:
        assert ET.fromstring(answer.twiml).tag == "Response"


async def test_wrong_signature_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    params = {"CallSid": "CA" + "f" * 32, "From": "+31612345678"}
    forged = RequestValidator("not-the-token").compute_signature(
        f"{PUBLIC_URL}/twilio/voice", params
    )
    response = await http.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": forged})
    assert response.status_code == 403
    assert await redis_client.exists(keys.session("CA" + "f" * 32)) == 0


async def test_missing_signature_is_refused(
    http: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    response = await http.post("/twilio/voice", data={"CallSid": "CA" + "e" * 32})
    assert response.status_code == 403
    assert await redis_client.keys("*") == []


async def test_signature_over_other_parameters_is_refused(phone: PhoneFactory) -> None:
    caller = phone()
    await caller.dial()
    url = caller.last.gather_url  # type: ignore[union-attr]
    params = caller._params({"Digits": "1"})
    signature = caller.validator.compute_signature(url, params)
    params["Digits"] = "2"  # tampered after signing
    response = await caller.client.post(
        url.removeprefix(PUBLIC_URL), data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


async def test_status_callback_needs_a_signature_too(http: httpx.AsyncClient) -> None:
    response = await http.post("/twilio/status", data={"CallSid": "CA1", "CallStatus": "completed"})
    assert response.status_code == 403


async def test_repeated_step_gets_the_same_answer_and_advances_once(phone: PhoneFactory) -> None:
    caller = phone()
    await caller.dial()
    url = caller.last.gather_url  # type: ignore[union-attr]
    first = await caller.post(url, {"Digits": "1"})
    second = await caller.post(url, {"Digits": "1"})  # Twilio retried
    assert first.text == second.text
    # The call is in the VOG submenu once: key 2 there is "procedure", not the main menu's VOG RP.
    caller.last = parse_twiml(second.text)
    await caller.press("2")
    turn = await caller.press("#")
    assert turn.queue == "kcc-vog_np"


async def test_repeated_first_webhook_starts_one_call(
    phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    caller = phone()
    first = await caller.dial()
    second = await caller.dial()
    assert first.twiml == second.twiml
    assert await redis_client.hget(keys.session(caller.call_sid), "seq") == "1"


async def test_repeated_queue_step_queues_the_call_once(
    phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    url = caller.last.gather_url  # type: ignore[union-attr]
    answers = await asyncio.gather(*(caller.post(url, {"Digits": "#"}) for _ in range(5)))
    assert len({a.text for a in answers}) == 1
    assert await redis_client.zcard(keys.queue("vog_rp")) == 1


@needs_shared_redis
async def test_two_instances_share_the_call(make_app: Callable[..., FastAPI]) -> None:
    """Any app instance can serve any step: Twilio's requests may land on different ones."""
    first, second = make_app(), make_app()
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url=PUBLIC_URL) as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url=PUBLIC_URL) as two,
    ):
        on_one = Phone(one, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        await on_one.dial()
        on_two = Phone(two, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid=on_one.call_sid)
        on_two.last = on_one.last
        on_one.last = await on_two.press("5")
        turn = await on_one.press("#")  # and back to the first instance
        assert turn.queue == "kcc-pardon"


@needs_shared_redis
async def test_a_retry_on_the_instance_that_was_overtaken_gets_the_stored_reply(
    make_app: Callable[..., FastAPI],
) -> None:
    """An instance answers a call's next step from its own copy of the session (no read); when
    another instance has moved the call on meanwhile, that copy is refused, not used."""
    first, second = make_app(), make_app()
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url=PUBLIC_URL) as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url=PUBLIC_URL) as two,
    ):
        on_one = Phone(one, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        await on_one.dial()  # the first instance holds the call at the main menu
        on_two = Phone(two, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, call_sid=on_one.call_sid)
        url = on_one.last.gather_url  # type: ignore[union-attr]
        on_second = await on_two.post(url, {"Digits": "5"})  # pardon, answered by the second
        # A late duplicate of that step with other keys reaches the first instance: it must not
        # run the main menu again from its copy, but answer what the second one answered.
        on_first = await on_one.post(url, {"Digits": "1"})
        assert on_first.text == on_second.text
        on_one.last = parse_twiml(on_first.text)
        turn = await on_one.press("#")
        assert turn.queue == "kcc-pardon"


async def test_status_callback_ends_the_call_and_leaves_the_queue(
    phone: PhoneFactory, redis_client: aioredis.Redis, app: FastAPI
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("3")
    await caller.press("#")
    assert await redis_client.zcard(keys.queue("gva")) == 1
    response = await caller.hang_up("completed")
    assert response.status_code == 200
    assert await redis_client.zcard(keys.queue("gva")) == 0
    assert (
        await redis_client.exists(keys.session(caller.call_sid), keys.queue_entry(caller.call_sid))
        == 0
    )
    await app.state.services.records.flush()  # records are written in the background
    with Session(app.state.services.db_engine) as db:
        record = db.exec(select(CallRecord)).one()
    assert record.call_sid == caller.call_sid
    assert (record.product, record.theme, record.outcome) == (
        "gva",
        "general",
        "abandoned_in_queue",
    )
    assert record.path == ["main_menu=3", "verify_gva=skipped"]


@pytest.mark.parametrize(
    ("status", "waiting"),
    [("busy", 0), ("failed", 0), ("no-answer", 0), ("canceled", 0), ("in-progress", 1)],
)
async def test_every_final_status_leaves_the_queue_and_in_progress_changes_nothing(
    phone: PhoneFactory, redis_client: aioredis.Redis, status: str, waiting: int
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    await caller.press("#")
    await caller.hang_up(status)
    assert await redis_client.zcard(keys.queue("vog_rp")) == waiting


async def test_hang_up_in_the_menu_is_recorded_without_personal_data(
    phone: PhoneFactory, app: FastAPI
) -> None:
    caller = phone(caller="+31687654321")
    await caller.dial()
    await caller.hang_up()
    await caller.hang_up()  # Twilio may deliver it twice
    await app.state.services.records.flush()  # records are written in the background
    with Session(app.state.services.db_engine) as db:
        [record] = db.exec(select(CallRecord)).all()
    assert record.outcome == "abandoned_in_menu"
    assert "87654321" not in record.model_dump_json()


async def test_step_for_an_unknown_call_gets_an_apology_and_the_general_queue(
    phone: PhoneFactory,
) -> None:
    caller = phone()
    response = await caller.post(f"{PUBLIC_URL}/twilio/step?seq=3&lang=en", {"Digits": "1"})
    assert response.status_code == 200
    turn = parse_twiml(response.text)
    assert turn.heard[0].text.startswith("We are sorry, something went wrong.")
    assert turn.queue == "kcc-general"


async def test_redis_down_mid_call_still_answers_twiml(
    make_app: Callable[..., FastAPI], phone: PhoneFactory
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("9")  # the caller chose English
    broken = make_app(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=broken), base_url=PUBLIC_URL
    ) as client:
        caller.client = client
        turn = await caller.press("1")
    assert (
        turn.heard[0].text
        == "We are sorry, something went wrong. We are putting you through to an adviser."
    )
    assert turn.heard[0].language == "en-GB"
    assert turn.queue == "kcc-general"


async def test_redis_down_after_hours_asks_to_call_back(
    make_app: Callable[..., FastAPI], phone: PhoneFactory, clock: FixedClock
) -> None:
    broken = make_app(redis_url="redis://127.0.0.1:1/0")
    clock.set(datetime(2026, 12, 1, 19, 0, tzinfo=AMSTERDAM))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=broken), base_url=PUBLIC_URL
    ) as client:
        turn = await Phone(client, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN).dial()
    assert turn.heard[0].text.startswith("Excuses, er ging iets mis. Belt u later opnieuw")
    assert turn.hung_up


async def test_call_queued_by_the_apology_is_adopted_into_the_general_queue(
    phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    caller = phone()
    response = await caller.post(f"{PUBLIC_URL}/twilio/step?seq=1&lang=nl", {"Digits": "1"})
    caller.last = parse_twiml(response.text)
    hold = await caller.hold(position=4)
    assert "U bent nummer 1 in de wachtrij." in hold.text
    entry = await CallQueue(redis_client, Sealer(SECRET_KEY)).get(caller.call_sid)
    assert entry is not None and entry.product == "general"
    assert entry.path == ["fallback"]


async def test_queue_result_after_a_bridged_call_hangs_up(phone: PhoneFactory) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    turn = await caller.press("#")
    response = await caller.post(turn.queue_result_url or "", {"QueueResult": "bridged"})
    assert parse_twiml(response.text).hung_up


async def test_queue_full_is_told_and_ends_politely(
    phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    turn = await caller.press("#")
    response = await caller.post(turn.queue_result_url or "", {"QueueResult": "queue-full"})
    answer = parse_twiml(response.text)
    assert "erg druk" in answer.text and answer.hung_up
    assert await redis_client.zcard(keys.queue("vog_rp")) == 0


async def test_no_input_path_is_a_redirect_after_the_gather(phone: PhoneFactory) -> None:
    caller = phone()
    turn = await caller.dial()
    root = ET.fromstring(turn.twiml)
    assert [child.tag for child in root][-2:] == ["Gather", "Redirect"]
    turn = await caller.stay_silent()
    assert turn.heard[0].text == "U heeft geen keuze gemaakt."


async def test_every_key_in_redis_has_a_ttl(
    phone: PhoneFactory, redis_client: aioredis.Redis
) -> None:
    callers = [phone() for _ in range(3)]
    for caller, key in zip(callers, ("1", "2", "3"), strict=True):
        await caller.dial()
        await caller.press(key)
    ended = phone()
    await ended.dial()
    await ended.hang_up()
    names = await redis_client.keys("*")
    # Not an empty loop: the calls' sessions and the ended call's marker are among the keys.
    expected = {keys.session(caller.call_sid) for caller in callers}
    assert expected | {keys.ended(ended.call_sid)} <= set(names), names
    for name in names:
        assert await redis_client.ttl(name) > 0, name


async def test_wait_url_with_redis_down_keeps_the_caller_on_hold_with_valid_wait_twiml(
    make_app: Callable[..., FastAPI], phone: PhoneFactory
) -> None:
    broken = make_app(redis_url="redis://127.0.0.1:1/0")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=broken), base_url=PUBLIC_URL
    ) as client:
        caller = Phone(client, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        response = await caller.post(f"{PUBLIC_URL}/twilio/wait?lang=nl", {"QueuePosition": "4"})
    root = ET.fromstring(response.text)
    allowed_in_wait_url = {"Play", "Say", "Pause", "Hangup", "Redirect", "Leave", "Gather"}
    assert {verb.tag for verb in root} <= allowed_in_wait_url
    assert "U bent nummer 4 in de wachtrij." in response.text


async def test_queue_result_after_a_conversation_with_redis_down_just_ends(
    make_app: Callable[..., FastAPI],
) -> None:
    broken = make_app(redis_url="redis://127.0.0.1:1/0")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=broken), base_url=PUBLIC_URL
    ) as client:
        caller = Phone(client, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        response = await caller.post(
            f"{PUBLIC_URL}/twilio/queue-result?lang=nl", {"QueueResult": "bridged"}
        )
    assert "Enqueue" not in response.text and "Excuses" not in response.text


async def test_malformed_query_still_gets_twiml(phone: PhoneFactory) -> None:
    caller = phone()
    await caller.dial()
    response = await caller.post(
        f"{PUBLIC_URL}/twilio/step?seq=banana&lang=xx-very-long-code", {"Digits": "1"}
    )
    assert response.status_code == 200
    assert ET.fromstring(response.text).tag == "Response"


async def test_status_callback_before_the_queue_step_never_leaves_a_ghost_in_the_queue(
    phone: PhoneFactory, redis_client: aioredis.Redis, app: FastAPI
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    url = caller.last.gather_url  # type: ignore[union-attr]
    await caller.hang_up()  # Twilio's status callback overtakes the last step
    await caller.post(url, {"Digits": ""})
    assert await app.state.services.queue.waiting() == []


async def test_twilio_error_leaving_the_queue_while_open_puts_the_caller_back(
    phone: PhoneFactory,
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    turn = await caller.press("#")
    response = await caller.post(turn.queue_result_url or "", {"QueueResult": "error"})
    back = parse_twiml(response.text)
    assert back.queue == "kcc-vog_rp"
