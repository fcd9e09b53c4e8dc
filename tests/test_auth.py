"""Staff accounts, tokens and the auth router, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlmodel import select

from api.accounts import (
    InvalidUser,
    Role,
    User,
    UserError,
    UserExists,
    authenticate,
    create_user,
    get_user,
)
from api.database.engine import make_engine, session_scope
from api.sign_in_guard import SignInGuard
from api.web.deps import SupervisorUser
from api.web.errors import install_error_handlers
from api.web.routes.auth import BAD_LOGIN, router
from api.web.tokens import InvalidToken, decode_token, issue_token
from routing.sealing import Pseudonymizer
from tests.support.staff import Account, add_staff, adviser, signed_in, supervisor

SECRET = "x" * 40
PASSWORD = "correct horse battery"


# httpx's ASGITransport rather than starlette's TestClient, which warns (an error here) when
# it finds httpx instead of httpx2.
@pytest.fixture
async def client(
    db_engine: Engine, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)

    @app.get("/test/supervisor-only")
    def supervisor_only(user: SupervisorUser) -> dict[str, str]:
        return {"name": user.name}

    app.state.services = SimpleNamespace(
        db_engine=db_engine,
        redis=redis_client,
        settings=SimpleNamespace(secret_key=SECRET, token_ttl_seconds=3600),
        sign_in=SignInGuard(redis_client, Pseudonymizer(SECRET), account_limit=5, address_limit=20),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kcc.test") as test_client:
        yield test_client


ANNA = adviser("anna", PASSWORD)
SAM = supervisor("sam", PASSWORD)


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/token", data={"username": name, "password": password})


async def token_for(client: httpx.AsyncClient, name: str) -> str:
    response = await login(client, name)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- users -------------------------------------------------------------------------------


def test_password_is_stored_as_argon2_hash_not_plain(db_engine: Engine) -> None:
    add_staff(db_engine, ANNA)
    with session_scope(db_engine) as session:
        user = get_user(session, "anna")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.role is Role.ADVISER
    assert user.active


def test_role_is_stored_as_its_plain_value(db_engine: Engine) -> None:
    add_staff(db_engine, SAM)
    query = text('SELECT role FROM "user" WHERE name = :name')
    with db_engine.connect() as connection:
        stored = connection.execute(query, {"name": "sam"}).scalar_one()
    assert stored == "supervisor"


def test_duplicate_user_name_is_refused(db_engine: Engine) -> None:
    add_staff(db_engine, ANNA)
    with pytest.raises(UserExists, match="already exists"):
        add_staff(db_engine, supervisor("anna", PASSWORD))
    with session_scope(db_engine) as session:
        assert len(session.exec(select(User)).all()) == 1


def test_short_password_is_refused(db_engine: Engine) -> None:
    with pytest.raises(InvalidUser, match="at least 8 characters"):
        add_staff(db_engine, adviser("anna", "1234567"))
    with session_scope(db_engine) as session:
        assert get_user(session, "anna") is None


@pytest.mark.parametrize("name", ["a", "Anna", "1anna", "anna smith", "anna\n", "a" * 65, ""])
def test_malformed_user_name_is_refused(db_engine: Engine, name: str) -> None:
    with pytest.raises(InvalidUser, match="invalid user name"):
        add_staff(db_engine, adviser(name, PASSWORD))


def test_user_errors_share_one_base_class() -> None:
    assert issubclass(UserExists, UserError)
    assert issubclass(InvalidUser, UserError)


def test_authenticate_upgrades_a_hash_made_with_weaker_parameters(db_engine: Engine) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with session_scope(db_engine) as session:
        session.add(User(name="old", role=Role.ADVISER, password_hash=weak))
    with session_scope(db_engine) as session:
        assert authenticate(session, name="old", password=PASSWORD) is not None
    with session_scope(db_engine) as session:
        user = get_user(session, "old")
    assert user is not None
    assert user.password_hash != weak
    assert not PasswordHasher().check_needs_rehash(user.password_hash)
    assert PasswordHasher().verify(user.password_hash, PASSWORD)


# --- login -------------------------------------------------------------------------------


async def test_right_password_gets_a_bearer_token(
    client: httpx.AsyncClient, db_engine: Engine
) -> None:
    add_staff(db_engine, SAM)
    response = await login(client, "sam")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["role"] == "supervisor"
    claims = decode_token(body["access_token"], secret=SECRET)
    assert (claims.sub, claims.role) == ("sam", "supervisor")
    me = await client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    public = me.json()
    assert isinstance(public.pop("id"), int)
    assert public == {"name": "sam", "role": "supervisor"}  # no password hash


async def test_unknown_user_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, db_engine: Engine
) -> None:
    add_staff(db_engine, ANNA)
    wrong_password = await login(client, "anna", "not the password")
    unknown_user = await login(client, "nobody")
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"detail": BAD_LOGIN, "code": "bad_login", "params": {}}


async def test_inactive_user_cannot_log_in_and_loses_an_earlier_token(
    client: httpx.AsyncClient, db_engine: Engine
) -> None:
    add_staff(db_engine, ANNA)
    token = await token_for(client, "anna")
    with session_scope(db_engine) as session:
        user = get_user(session, "anna")
        assert user is not None
        user.active = False
        session.add(user)
    response = await login(client, "anna")
    assert response.status_code == 401
    assert response.json() == {"detail": BAD_LOGIN, "code": "bad_login", "params": {}}
    assert (await client.get("/api/me", headers=bearer(token))).status_code == 401


# --- tokens ------------------------------------------------------------------------------


async def test_request_without_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_expired_token_gets_401(client: httpx.AsyncClient, db_engine: Engine) -> None:
    add_staff(db_engine, ANNA)
    token = issue_token(
        subject="anna",
        role="adviser",
        user_id=1,
        version=0,
        secret=SECRET,
        ttl_seconds=3600,
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    response = await client.get("/api/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_token_with_altered_claims_gets_401(
    client: httpx.AsyncClient, db_engine: Engine
) -> None:
    add_staff(db_engine, ANNA)
    add_staff(db_engine, SAM)
    header, _payload, signature = (await token_for(client, "anna")).split(".")
    now = int(datetime.now(UTC).timestamp())
    forged_payload = _b64({"sub": "sam", "role": "supervisor", "iat": now, "exp": now + 3600})
    forged = f"{header}.{forged_payload}.{signature}"
    assert (await client.get("/api/me", headers=bearer(forged))).status_code == 401


async def test_token_signed_with_another_secret_gets_401(
    client: httpx.AsyncClient, db_engine: Engine
) -> None:
    add_staff(db_engine, SAM)
    forged = issue_token(
        subject="sam", role="supervisor", user_id=1, version=0, secret="y" * 40, ttl_seconds=3600
    )
    assert (await client.get("/api/me", headers=bearer(forged))).status_code == 401


async def test_unsigned_token_gets_401(client: httpx.AsyncClient, db_engine: Engine) -> None:
    add_staff(db_engine, SAM)
    now = int(datetime.now(UTC).timestamp())
    header = _b64({"alg": "none", "typ": "JWT"})
    payload = _b64({"sub": "sam", "role": "supervisor", "iat": now, "exp": now + 3600})
    response = await client.get("/api/me", headers=bearer(f"{header}.{payload}."))
    assert response.status_code == 401


async def test_token_of_a_user_no_longer_there_gets_401(
    client: httpx.AsyncClient, db_engine: Engine
) -> None:
    token = issue_token(
        subject="ghost", role="adviser", user_id=99, version=0, secret=SECRET, ttl_seconds=3600
    )
    assert (await client.get("/api/me", headers=bearer(token))).status_code == 401


def test_decode_token_returns_the_claims() -> None:
    issued = datetime.now(UTC).replace(microsecond=0)  # JWT times are whole seconds
    token = issue_token(
        subject="anna",
        role="adviser",
        user_id=7,
        version=2,
        secret=SECRET,
        ttl_seconds=60,
        now=issued,
    )
    claims = decode_token(token, secret=SECRET)
    assert claims.sub == "anna"
    assert claims.role == "adviser"
    assert claims.exp == issued + timedelta(seconds=60)
    assert (claims.uid, claims.ver) == (7, 2) and len(claims.jti) >= 16


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_decode_token_rejects_garbage(token: str) -> None:
    with pytest.raises(InvalidToken):
        decode_token(token, secret=SECRET)


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "status", "body"),
    [
        (
            ANNA,
            403,
            {
                "detail": "requires role supervisor",
                "code": "role_required",
                "params": {"role": "supervisor"},
            },
        ),
        (SAM, 200, {"name": "sam"}),
    ],
    ids=["forbids an adviser", "admits a supervisor"],
)
async def test_supervisor_only_route(
    client: httpx.AsyncClient, db_engine: Engine, account: Account, status: int, body: object
) -> None:
    add_staff(db_engine, account)
    response = await client.get("/test/supervisor-only", headers=await signed_in(client, account))
    assert response.status_code == status
    assert response.json() == body


# --- db ----------------------------------------------------------------------------------


def test_make_engine_creates_the_sqlite_directory_and_shares_across_threads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nested" / "dir" / "kcc.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        results: list[int] = []
        with engine.connect() as connection:
            # A connection made in one thread used in another: what FastAPI's threadpool does.
            worker = threading.Thread(
                target=lambda: results.append(connection.execute(text("SELECT 1")).scalar_one())
            )
            worker.start()
            worker.join()
        assert results == [1]
    finally:
        engine.dispose()


def test_make_engine_uses_psycopg_3_for_postgresql_urls() -> None:
    engine = make_engine("postgresql://kcc@db.example:5432/kcc")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()


def test_session_scope_commits_on_success_and_rolls_back_on_error(db_engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(db_engine) as session:
        create_user(session, name="anna", role=Role.ADVISER, password=PASSWORD)
        raise RuntimeError("boom")
    with session_scope(db_engine) as session:
        assert get_user(session, "anna") is None
        create_user(session, name="anna", role=Role.ADVISER, password=PASSWORD)
    with session_scope(db_engine) as session:
        assert get_user(session, "anna") is not None
