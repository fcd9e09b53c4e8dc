"""Staff tokens stop working when they should: signed out (POST /api/logout, this token only), a
changed password or role or revoke_all_tokens (every token of the user), and a deleted account's
token never works for a new account with the same name."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlmodel import Session

from api.accounts import Role, change_password, change_role, get_user, revoke_all_tokens
from api.web.tokens import decode_token
from routing import keys
from tests.conftest import SECRET_KEY
from tests.support.staff import AHMED, SANNE, add_staff, signed_in, supervisor


async def me(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await http.get("/api/me", headers=headers)).status_code


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_logout_signs_out_this_token_only_until_it_would_expire(
    app: FastAPI, http: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    add_staff(app.state.services.db_engine, SANNE)
    laptop, phone = await signed_in(http, SANNE), await signed_in(http, SANNE)
    assert await me(http, laptop) == 200

    response = await http.post("/api/logout", headers=laptop)

    assert response.status_code == 204
    assert await me(http, laptop) == 401
    assert (await http.get("/api/queue", headers=laptop)).status_code == 401
    assert await me(http, phone) == 200  # her other session stays signed in
    claims = decode_token(token_of(laptop), secret=SECRET_KEY)
    ttl = await redis_client.ttl(keys.revoked_token(claims.jti))
    assert 0 < ttl <= app.state.services.settings.token_ttl_seconds + 1
    assert (await http.post("/api/logout")).status_code == 401  # no token, nothing to sign out


async def test_a_deleted_accounts_token_does_not_work_for_a_new_account_of_that_name(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    engine = app.state.services.db_engine
    add_staff(engine, SANNE)
    old = await signed_in(http, SANNE)
    with Session(engine) as session:
        user = get_user(session, SANNE.name)
        session.delete(user)
        session.commit()
    add_staff(engine, supervisor(SANNE.name, "another-password"))

    assert await me(http, old) == 401
    assert await me(http, await signed_in(http, supervisor(SANNE.name, "another-password"))) == 200


async def test_a_changed_password_signs_out_every_earlier_token(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    engine = app.state.services.db_engine
    add_staff(engine, AHMED)
    before = [await signed_in(http, AHMED), await signed_in(http, AHMED)]
    with Session(engine) as session:
        user = get_user(session, AHMED.name)
        assert user is not None
        change_password(session, user, "a-new-password")
        session.commit()

    assert [await me(http, headers) for headers in before] == [401, 401]
    after = await http.post(
        "/api/token", data={"username": AHMED.name, "password": "a-new-password"}
    )
    assert after.status_code == 200
    assert await me(http, {"Authorization": f"Bearer {after.json()['access_token']}"}) == 200


async def test_a_changed_role_signs_out_earlier_tokens(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    engine = app.state.services.db_engine
    add_staff(engine, AHMED)
    before = await signed_in(http, AHMED)
    with Session(engine) as session:
        user = get_user(session, AHMED.name)
        assert user is not None
        change_role(session, user, Role.ADVISER)  # the same role: nothing changes
        session.commit()
    assert await me(http, before) == 200
    with Session(engine) as session:
        user = get_user(session, AHMED.name)
        assert user is not None
        change_role(session, user, Role.SUPERVISOR)
        session.commit()

    assert await me(http, before) == 401
    now = await signed_in(http, AHMED)
    assert (await http.get("/api/me", headers=now)).json()["role"] == "supervisor"


async def test_revoke_all_tokens_signs_the_user_out_everywhere_and_nobody_else(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    engine = app.state.services.db_engine
    add_staff(engine, SANNE, AHMED)
    hers, his = await signed_in(http, SANNE), await signed_in(http, AHMED)
    with Session(engine) as session:
        user = get_user(session, SANNE.name)
        assert user is not None
        revoke_all_tokens(session, user)
        session.commit()

    assert await me(http, hers) == 401
    assert await me(http, his) == 200
    assert await me(http, await signed_in(http, SANNE)) == 200
