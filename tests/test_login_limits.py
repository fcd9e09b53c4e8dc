"""Staff sign-in is limited: failed attempts per account and per client address, counted in Redis
(every instance together), answered 429 `too_many_attempts` with Retry-After, the same for a name
that exists and one that does not; password checks never keep a webhook waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from routing import keys
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.staff import AHMED, SANNE, add_staff

WRONG = "not-the-password"


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)


async def sign_in(
    http: httpx.AsyncClient, name: str, password: str, *, via: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": via} if via else {}
    return await http.post(
        "/api/token", data={"username": name, "password": password}, headers=headers
    )


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "too_many_attempts"
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= keys.LOGIN_WINDOW_SECONDS
    assert response.json()["params"]["retry_after"] == wait
    assert "access_token" not in response.text


@pytest.fixture
def staffed(make_app: Callable[..., FastAPI]) -> Callable[..., FastAPI]:
    """make_app, with Sanne and Ahmed in the (shared) database."""

    def factory(**overrides: object) -> FastAPI:
        app = make_app(**overrides)
        add_staff(app.state.services.db_engine, SANNE, AHMED)
        return app

    return factory


async def test_five_wrong_passwords_then_even_the_right_one_waits(
    staffed: Callable[..., FastAPI],
) -> None:
    async with client_of(staffed()) as http:
        for _ in range(5):
            assert (await sign_in(http, SANNE.name, WRONG)).status_code == 401
        assert_limited(await sign_in(http, SANNE.name, SANNE.password))
        # Only that account: Ahmed, from the same address, still signs in.
        assert (await sign_in(http, AHMED.name, AHMED.password)).status_code == 200


async def test_an_unknown_name_is_limited_exactly_like_a_known_one(
    staffed: Callable[..., FastAPI],
) -> None:
    async with client_of(staffed()) as http:
        answers: dict[str, list[httpx.Response]] = {}
        for name in (SANNE.name, "nobody-here"):
            answers[name] = [await sign_in(http, name, WRONG) for _ in range(6)]
        known, unknown = answers.values()
        assert [r.status_code for r in known] == [401] * 5 + [429]
        assert [r.status_code for r in known] == [r.status_code for r in unknown]
        assert [r.json() for r in known[:5]] == [r.json() for r in unknown[:5]]
        for response in (known[5], unknown[5]):
            assert_limited(response)
        assert known[5].json()["detail"] == unknown[5].json()["detail"]


async def test_one_address_guessing_many_names_is_limited_and_others_are_not(
    staffed: Callable[..., FastAPI],
) -> None:
    app = staffed(login_address_failures=4, trusted_proxies="127.0.0.1")
    async with client_of(app) as http:
        guesser, colleague = "203.0.113.9", "198.51.100.7"
        for name in ("a1", "a2", "a3", "a4"):
            assert (await sign_in(http, name, WRONG, via=guesser)).status_code == 401
        # Any name from there now waits, the right password too ...
        assert_limited(await sign_in(http, SANNE.name, SANNE.password, via=guesser))
        # ... while a colleague behind the same proxy signs in.
        assert (await sign_in(http, SANNE.name, SANNE.password, via=colleague)).status_code == 200


async def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    staffed: Callable[..., FastAPI],
) -> None:
    async with client_of(staffed(login_address_failures=3)) as http:
        for index in range(3):  # a new forged address each time
            response = await sign_in(http, f"n{index}", WRONG, via=f"192.0.2.{index}")
            assert response.status_code == 401
        assert_limited(await sign_in(http, SANNE.name, SANNE.password, via="192.0.2.200"))


async def test_the_count_is_shared_by_every_instance(
    staffed: Callable[..., FastAPI], make_app: Callable[..., FastAPI]
) -> None:
    first, second = staffed(), make_app()  # the second instance shares the first's database
    async with client_of(first) as one, client_of(second) as other:
        for http in (one, other, one, other, one):
            assert (await sign_in(http, SANNE.name, WRONG)).status_code == 401
        assert_limited(await sign_in(other, SANNE.name, SANNE.password))


async def test_a_good_sign_in_does_not_clear_the_failures_of_others_from_its_address(
    staffed: Callable[..., FastAPI],
) -> None:
    async with client_of(staffed(login_address_failures=3)) as http:
        assert (await sign_in(http, "x1", WRONG)).status_code == 401
        assert (await sign_in(http, "x2", WRONG)).status_code == 401
        assert (await sign_in(http, AHMED.name, AHMED.password)).status_code == 200
        assert (await sign_in(http, "x3", WRONG)).status_code == 401
        assert_limited(await sign_in(http, AHMED.name, AHMED.password))


async def test_a_good_sign_in_starts_the_accounts_count_afresh(
    staffed: Callable[..., FastAPI],
) -> None:
    async with client_of(staffed()) as http:
        for _ in range(4):
            assert (await sign_in(http, SANNE.name, WRONG)).status_code == 401
        assert (await sign_in(http, SANNE.name, SANNE.password)).status_code == 200
        for _ in range(4):  # a typo later in the day does not lock her out
            assert (await sign_in(http, SANNE.name, WRONG)).status_code == 401
        assert (await sign_in(http, SANNE.name, SANNE.password)).status_code == 200


async def test_a_webhook_is_answered_while_twenty_wrong_sign_ins_are_checked(
    staffed: Callable[..., FastAPI],
) -> None:
    """The password checks queue in their worker threads: a call coming in meanwhile is
    answered before the last of them."""
    app = staffed(login_address_failures=100, login_account_failures=100)
    finished: list[str] = []
    async with client_of(app) as http:

        async def guess(index: int) -> None:
            response = await sign_in(http, SANNE.name, f"{WRONG}-{index}")
            assert response.status_code == 401
            finished.append(f"login {index}")

        async def call() -> None:
            await asyncio.sleep(0.05)  # the guesses are under way
            phone = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
            turn = await phone.dial()
            assert turn.gather_url is not None  # the caller hears the menu
            finished.append("webhook")

        await asyncio.gather(*(guess(i) for i in range(20)), call())
    assert finished.index("webhook") < len(finished) - 1, finished
    assert finished[-1].startswith("login")
