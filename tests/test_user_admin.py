"""Staff accounts managed by supervisors (Medewerkers on /supervisor, /api/users) and by `kcc
users`: each change is checked alike and lands in the user_audit log with who made it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session

from api.accounts import authenticate, get_user
from api.database.engine import make_engine
from api.user_admin import user_audit
from tests.support.database import sqlite_url
from tests.support.servers import invoke_kcc
from tests.support.staff import AHMED, SANNE, add_staff, signed_in, supervisor

PASSWORD = "a-new-password-1"


@pytest.fixture
async def staffed(app: FastAPI) -> FastAPI:
    add_staff(app.state.services.db_engine, SANNE, AHMED, supervisor("wim"))
    return app


def audit_rows(app: FastAPI) -> list[tuple[str, str, str, dict[str, object]]]:
    with Session(app.state.services.db_engine) as session:
        return [(r.actor, r.action, r.subject, json.loads(r.details)) for r in user_audit(session)]


# -- the API -----------------------------------------------------------------------------------


async def test_a_supervisor_adds_an_adviser_with_a_one_time_password_who_can_sign_in(
    staffed: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await signed_in(http, SANNE)

    added = await http.post(
        "/api/users",
        json={"name": "kim", "skills": ["vog_np", "pardon"], "device": "+31612345678"},
        headers=headers,
    )

    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["name"], body["role"], body["skills"]) == ("kim", "adviser", ["vog_np", "pardon"])
    assert body["device"] == "+31612345678" and body["active"] is True
    password = body["password"]
    assert len(password) >= 16
    token = await http.post("/api/token", data={"username": "kim", "password": password})
    assert token.status_code == 200
    listed = await http.get("/api/users", headers=headers)
    assert [u["name"] for u in listed.json()] == ["ahmed", "kim", "sanne", "wim"]
    assert "password" not in listed.json()[1] and "password_hash" not in listed.text
    [row] = audit_rows(staffed)
    assert row[:3] == ("sanne", "added", "kim")
    assert row[3] == {"role": "adviser", "skills": ["vog_np", "pardon"], "device": "+31612345678"}
    assert password not in json.dumps(row)


async def test_changes_are_audited_with_before_and_after_and_nothing_when_unchanged(
    staffed: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await signed_in(http, SANNE)

    changed = await http.patch(
        "/api/users/ahmed", json={"skills": ["wwm"], "device": "client:ahmed_2"}, headers=headers
    )
    same = await http.patch("/api/users/ahmed", json={"skills": ["wwm"]}, headers=headers)

    assert changed.status_code == 200, changed.text
    assert changed.json()["skills"] == ["wwm"] and changed.json()["device"] == "client:ahmed_2"
    assert same.status_code == 200
    assert audit_rows(staffed) == [
        (
            "sanne",
            "changed",
            "ahmed",
            {
                "skills": {"from": [], "to": ["wwm"]},
                "device": {"from": "client:ahmed", "to": "client:ahmed_2"},
            },
        )
    ]
    log = await http.get("/api/users/audit", headers=headers)
    assert [(e["actor"], e["action"], e["subject"]) for e in log.json()] == [
        ("sanne", "changed", "ahmed")
    ]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"skills": ["gratie"]}, "skill_unknown", "skills"),
        ({"device": "client:a.b"}, "device_invalid", "device"),
        ({"device": "0612345678"}, "device_invalid", "device"),
    ],
)
async def test_a_bad_change_is_refused_with_its_code_and_field_and_nothing_changes(
    staffed: FastAPI, http: httpx.AsyncClient, body: dict[str, object], code: str, field: str
) -> None:
    headers = await signed_in(http, SANNE)

    refused = await http.patch("/api/users/ahmed", json=body, headers=headers)

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == code
    assert refused.json()["params"]["field"] == field
    assert audit_rows(staffed) == []


async def test_bad_new_accounts_are_refused_with_code_and_field(
    staffed: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await signed_in(http, SANNE)
    cases = [
        ({"name": "Kim"}, 422, "user_invalid", "name"),
        ({"name": "kim", "password": "short"}, 422, "password_too_short", "password"),
        ({"name": "kim", "skills": ["nope"]}, 422, "skill_unknown", "skills"),
        ({"name": "ahmed"}, 409, "user_exists", None),
    ]
    for body, status, code, field in cases:
        answer = await http.post("/api/users", json=body, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (status, code), body
        assert answer.json()["params"].get("field") == field
    assert audit_rows(staffed) == []


async def test_a_supervisor_cannot_deactivate_or_demote_themself(
    staffed: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await signed_in(http, SANNE)

    deactivate = await http.post("/api/users/sanne/deactivate", headers=headers)
    demote = await http.patch("/api/users/sanne", json={"role": "adviser"}, headers=headers)

    assert (deactivate.status_code, deactivate.json()["code"]) == (409, "self_deactivation")
    assert (demote.status_code, demote.json()["code"]) == (409, "self_demotion")
    assert (await http.get("/api/me", headers=headers)).json()["role"] == "supervisor"
    # Another supervisor may.
    other = await http.patch("/api/users/wim", json={"role": "adviser"}, headers=headers)
    assert other.status_code == 200 and other.json()["role"] == "adviser"


async def test_deactivating_refuses_the_token_and_the_sign_in_and_reactivating_restores(
    staffed: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await signed_in(http, SANNE)
    ahmed = await signed_in(http, AHMED)
    assert (await http.post("/api/advisers/me/status", json={"status": "available"},
                             headers=ahmed)).status_code == 200  # fmt: skip

    gone = await http.post("/api/users/ahmed/deactivate", headers=headers)

    assert gone.status_code == 200, gone.text
    assert gone.json()["active"] is False and gone.json()["signed_out"] is True
    assert (await http.get("/api/advisers/me", headers=ahmed)).status_code == 401
    form = {"username": AHMED.name, "password": AHMED.password}
    assert (await http.post("/api/token", data=form)).status_code == 401
    board = await http.get("/api/advisers", headers=headers)
    assert {a["name"]: a["status"] for a in board.json()}["ahmed"] == "offline"

    back = await http.post("/api/users/ahmed/reactivate", headers=headers)

    assert back.status_code == 200 and back.json()["active"] is True
    assert (await http.post("/api/token", data=form)).status_code == 200
    actions = [row[1] for row in audit_rows(staffed)]
    assert actions == ["reactivated", "deactivated"]  # newest first


async def test_a_reset_password_is_generated_shown_once_and_the_old_one_stops(
    staffed: FastAPI, http: httpx.AsyncClient
) -> None:
    headers = await signed_in(http, SANNE)

    reset = await http.post("/api/users/ahmed/reset-password", headers=headers)
    given = await http.post(
        "/api/users/wim/reset-password", json={"password": PASSWORD}, headers=headers
    )

    assert reset.status_code == 200 and reset.json()["generated"] is True
    new = reset.json()["password"]
    old = {"username": AHMED.name, "password": AHMED.password}
    assert (await http.post("/api/token", data=old)).status_code == 401
    fresh = {"username": AHMED.name, "password": new}
    assert (await http.post("/api/token", data=fresh)).status_code == 200
    assert given.json() == {"name": "wim", "password": None, "generated": False}
    rows = audit_rows(staffed)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("password_reset", "wim", {"generated": False}),
        ("password_reset", "ahmed", {"generated": True}),
    ]
    assert new not in json.dumps(rows) and PASSWORD not in json.dumps(rows)


async def test_advisers_may_not_manage_accounts(staffed: FastAPI, http: httpx.AsyncClient) -> None:
    headers = await signed_in(http, AHMED)
    for method, path in [
        ("GET", "/api/users"),
        ("GET", "/api/users/audit"),
        ("POST", "/api/users"),
        ("PATCH", "/api/users/sanne"),
        ("POST", "/api/users/sanne/reset-password"),
        ("POST", "/api/users/sanne/deactivate"),
    ]:
        body = {"name": "x1"} if method != "GET" else None
        answer = await http.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path)
        assert answer.json()["code"] == "role_required"
    unknown = await http.post("/api/users/nobody/deactivate", headers=await signed_in(http, SANNE))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "user_unknown")


# -- kcc users ---------------------------------------------------------------------------------


def kcc(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    result = invoke_kcc(
        *args, env={"KCC_DATABASE_URL": sqlite_url(tmp_path), "USER": "beheer", **env}
    )
    return result.exit_code, result.stdout, result.stderr


def test_the_command_line_manages_accounts_with_the_same_rules_and_audit(tmp_path: Path) -> None:
    pw = {"KCC_PASSWORD": "long-enough-pw"}
    assert kcc(tmp_path, "users", "add", "sanne", "--role", "supervisor", **pw)[0] == 0
    assert kcc(tmp_path, "users", "add", "kim", **pw)[0] == 0

    code, out, _ = kcc(
        tmp_path, "users", "set", "kim", "--skills", "vog_np", "--device", "+31612345678"
    )
    assert code == 0, out
    assert out.strip() == "kim: adviser; skills: vog_np; device: +31612345678"
    code, _, err = kcc(tmp_path, "users", "set", "kim", "--skills", "gratie")
    assert code == 1 and "unknown product(s) gratie" in err
    code, _, err = kcc(tmp_path, "users", "set", "kim", "--device", "phone")
    assert code == 1 and "device must be" in err

    code, out, _ = kcc(tmp_path, "users", "list", "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"name": "kim", "role": "adviser", "skills": ["vog_np"], "device": "+31612345678",
         "active": True},
        {"name": "sanne", "role": "supervisor", "skills": [], "device": "client:sanne",
         "active": True},
    ]  # fmt: skip
    table = kcc(tmp_path, "users", "list")[1].splitlines()
    assert table[0] == "name\trole\tskills\tdevice\tactive"
    assert table[1] == "kim\tadviser\tvog_np\t+31612345678\tyes"

    code, out, _ = kcc(tmp_path, "users", "reset-password", "kim")
    assert code == 0 and out.startswith("new password for kim (shown once): ")
    new = out.strip().rsplit(" ", 1)[1]
    code, out, _ = kcc(tmp_path, "users", "deactivate", "kim")
    assert (code, out.strip()) == (0, "kim deactivated")

    engine = make_engine(sqlite_url(tmp_path))
    try:
        with Session(engine) as session:
            assert authenticate(session, name="kim", password=new) is None  # inactive
            user = get_user(session, "kim")
            assert user is not None and not user.active
        assert kcc(tmp_path, "users", "deactivate", "kim", "--reactivate")[0] == 0
        with Session(engine) as session:
            assert authenticate(session, name="kim", password=new) is not None
            actions = [(r.actor, r.action, r.subject) for r in user_audit(session)]
    finally:
        engine.dispose()
    assert actions == [
        ("cli:beheer", "reactivated", "kim"),
        ("cli:beheer", "deactivated", "kim"),
        ("cli:beheer", "password_reset", "kim"),
        ("cli:beheer", "changed", "kim"),
        ("cli:beheer", "added", "kim"),
        ("cli:beheer", "added", "sanne"),
    ]
    code, out, _ = kcc(tmp_path, "audit", "users", "--user", "kim")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "5 change(s)"
    assert "\tcli:beheer\tchanged\tkim\t" in lines[4] and "+31612345678" in lines[4]
    assert new not in out


def test_the_command_line_refuses_an_unknown_account(tmp_path: Path) -> None:
    code, _, err = kcc(tmp_path, "users", "deactivate", "nobody")
    assert code == 1 and "no user 'nobody'" in err
    code, _, err = kcc(tmp_path, "users", "set", "nobody")
    assert code == 2 and "nothing to change" in err
