"""Flow versions: publish, refuse, roll back, audit; new calls take the live version, calls in
progress keep theirs; every instance on the same Redis follows."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy import Engine

from api.cli.phone import Phone
from api.settings import DEFAULT_FLOW
from flows.versions import AlreadyLive, AuditAction, SqlFlowVersions, UnknownVersion, flow_digest
from routing import keys
from tests.conftest import AUTH_TOKEN, PUBLIC_URL
from tests.support.flow_drafts import (
    MISTAKES,
    NEW_WELCOME,
    OLD_WELCOME,
    TEXT,
    edit,
    edited,
    line_of,
    several_mistakes,
)
from tests.support.staff import AHMED, SANNE, add_staff, adviser, signed_in, supervisor

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# -- the database ------------------------------------------------------------------------------


def test_versions_are_numbered_and_exactly_one_is_live(db_engine: Engine) -> None:
    versions = SqlFlowVersions(db_engine)
    assert versions.live("kcc") is None
    first = versions.publish("kcc", TEXT, author="system", comment="first", at=AT)
    second = versions.publish("kcc", edited(), author="sanne", comment="kerst", at=AT)
    assert (first.number, second.number) == (1, 2)
    assert second.digest == flow_digest(edited())
    live = versions.live("kcc")
    assert live is not None and live.number == 2 and live.text == edited()
    assert [v.number for v in versions.history("kcc")] == [2, 1]
    with pytest.raises(AlreadyLive):  # the same text again would change nothing
        versions.publish("kcc", edited(), author="sanne", comment="again", at=AT)

    back = versions.rollback("kcc", 1, actor="piet", comment="te vroeg", at=AT)
    assert back.number == 1
    live = versions.live("kcc")
    assert live is not None and live.number == 1
    with pytest.raises(AlreadyLive):
        versions.rollback("kcc", 1, actor="piet", comment="", at=AT)
    with pytest.raises(UnknownVersion):
        versions.rollback("kcc", 7, actor="piet", comment="", at=AT)
    # Publishing after a rollback takes the next number; history keeps everything.
    third = versions.publish("kcc", edited(new="Goedemiddag."), author="sanne", comment="", at=AT)
    assert third.number == 3

    audit = versions.audit("kcc")
    assert [(a.action, a.actor, a.from_number, a.to_number) for a in audit] == [
        (AuditAction.PUBLISH, "sanne", 1, 3),
        (AuditAction.ROLLBACK, "piet", 2, 1),
        (AuditAction.PUBLISH, "sanne", 1, 2),
        (AuditAction.PUBLISH, "system", None, 1),
    ]
    assert audit[1].comment == "te vroeg"


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, AHMED, adviser("wim", skills=["wwm", "boa"]))


BROKEN_DRAFTS = [
    # (what is wrong, edit of the live text, the fragment on the line the error must name)
    (
        "a target that does not exist",
        lambda t: t.replace("    next: opening_hours", "    next: opening_hourz", 1),
        "next: opening_hourz",
    ),
    (
        "an unknown key",
        lambda t: t.replace("    kind: say\n", "    kind: say\n    volume: 11\n", 1),
        "volume: 11",
    ),
    (
        "a YAML syntax error",
        lambda t: t.replace("name: kcc", "name: kcc: justis", 1),
        "name: kcc: justis",
    ),
    (
        "a missing English text",
        lambda t: t.replace('    en: "Welcome to Justis, the screening authority."\n', "", 1),
        "  welcome:\n    nl:",
    ),
    (
        "a duplicate key",
        lambda t: t.replace("start: welcome\n", "start: welcome\nstart: main_menu\n", 1),
        "start: main_menu",
    ),
    (
        "another flow's name",
        lambda t: t.replace("name: kcc", "name: kcc-test", 1),
        "name: kcc-test",
    ),
    (
        "a queue for an unknown product",
        lambda t: t.replace("product: wwm", "product: wapens", 1),
        "product: wapens",
    ),
    (
        "a product an adviser still has as a skill",
        lambda t: t.replace(
            '  wwm: {nl: "een wapenvergunning", en: "a weapons licence"}\n', "", 1
        ).replace("product: wwm", "product: general", 1),
        "products:",
    ),
]


@pytest.mark.usefixtures("staff")
@pytest.mark.parametrize(
    ("what", "edit", "fragment"), BROKEN_DRAFTS, ids=[d[0] for d in BROKEN_DRAFTS]
)
async def test_an_invalid_draft_is_refused_with_its_line_and_nothing_changes(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    what: str,
    edit: Callable[[str], str],
    fragment: str,
) -> None:
    headers = await signed_in(http, SANNE)
    draft = edit(edited())
    checked = (await http.post("/api/flows/validate", json={"text": draft}, headers=headers)).json()
    assert checked["ok"] is False, what
    assert line_of(draft, fragment) in [p["line"] for p in checked["problems"]], (
        what,
        checked["problems"],
    )

    response = await http.post(
        "/api/flows/publish", json={"text": draft, "comment": "oeps"}, headers=headers
    )
    assert response.status_code == 422
    refusal = response.json()
    assert refusal["code"] == "flow_invalid"
    assert refusal["problems"] == checked["problems"]
    versions = (await http.get("/api/flows", headers=headers)).json()
    assert versions["live"] == 1 and len(versions["versions"]) == 1
    assert OLD_WELCOME in (await phone().dial()).text


@pytest.mark.usefixtures("staff")
async def test_every_mistake_of_a_draft_comes_back_at_once_with_its_code(
    http: httpx.AsyncClient,
) -> None:
    """The checker as you type and the publish refusal: every mistake, not the first few, each
    with its line, code and params (the page says it in Dutch from those)."""
    headers = await signed_in(http, SANNE)
    draft = edit(several_mistakes(), "name: kcc\n", "name: kcc-test\n")
    checked = (await http.post("/api/flows/validate", json={"text": draft}, headers=headers)).json()
    assert checked["ok"] is False
    problems = checked["problems"]
    for mistake in MISTAKES:
        line = line_of(draft, mistake.fragment, mistake.after)
        matching = [p for p in problems if p["message"].startswith(mistake.message)]
        assert [(p["line"], p["code"]) for p in matching] == [(line, mistake.code)], problems
        assert matching[0]["params"]["where"] == mistake.message.split(": ", 1)[0]
    [name] = [p for p in problems if p["code"] == "wrong_flow_name"]
    assert name == {
        "line": line_of(draft, "name: kcc-test"),
        "message": "name: this centre runs the flow 'kcc', not 'kcc-test'",
        "code": "wrong_flow_name",
        "params": {"where": "name", "expected": "kcc", "name": "kcc-test"},
    }
    assert len(problems) == len(MISTAKES) + 1

    response = await http.post(
        "/api/flows/publish", json={"text": draft, "comment": "alles tegelijk"}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "flow_invalid"
    assert response.json()["problems"] == problems


@pytest.mark.usefixtures("staff")
async def test_advisers_cannot_see_or_change_flows(http: httpx.AsyncClient) -> None:
    headers = await signed_in(http, AHMED)
    assert (await http.get("/api/flows", headers=headers)).status_code == 403
    response = await http.post(
        "/api/flows/publish", json={"text": edited(), "comment": "x"}, headers=headers
    )
    assert response.status_code == 403
    assert (await http.get("/api/flows")).status_code == 401


@pytest.mark.usefixtures("staff")
async def test_publish_reaches_new_calls_while_a_call_in_progress_keeps_its_version(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    headers = await signed_in(http, SANNE)
    before = phone(caller="+31611111111")
    assert OLD_WELCOME in (await before.dial()).text

    response = await http.post(
        "/api/flows/publish",
        json={"text": edited(text=edited("toets 1.", "kies 1.")), "comment": "kerst"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["number"] == 2 and response.json()["author"] == "sanne"

    after = phone(caller="+31622222222")
    assert NEW_WELCOME in (await after.dial()).text
    # The caller who was already in the menu hears the rest of the version they started on.
    assert "toets 1." in (await before.press("7")).text  # an invalid key: the menu again
    assert "kies 1." in (await after.press("7")).text

    audit = (await http.get("/api/flows/audit", headers=headers)).json()
    assert audit[0]["action"] == "publish" and audit[0]["actor"] == "sanne"
    assert (audit[0]["from_version"], audit[0]["to_version"]) == (1, 2)


@pytest.mark.usefixtures("staff")
async def test_rollback_is_one_action_and_is_audited(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    headers = await signed_in(http, SANNE)
    published = await http.post(
        "/api/flows/publish", json={"text": edited(), "comment": "kerst"}, headers=headers
    )
    assert published.status_code == 201
    assert NEW_WELCOME in (await phone().dial()).text

    response = await http.post(
        "/api/flows/rollback", json={"version": 1, "comment": "te vroeg"}, headers=headers
    )
    assert response.status_code == 200 and response.json()["live"] is True
    assert OLD_WELCOME in (await phone().dial()).text
    listing = (await http.get("/api/flows", headers=headers)).json()
    assert listing["live"] == 1
    assert [(v["number"], v["live"]) for v in listing["versions"]] == [(2, False), (1, True)]
    audit = (await http.get("/api/flows/audit", headers=headers)).json()
    assert datetime.fromisoformat(audit[0]["at"]).utcoffset() is not None  # SQLite too
    assert datetime.fromisoformat(listing["versions"][0]["created_at"]).utcoffset() is not None
    assert audit[0] == {
        "at": audit[0]["at"],
        "actor": "sanne",
        "action": "rollback",
        "from_version": 2,
        "to_version": 1,
        "comment": "te vroeg",
    }
    again = await http.post("/api/flows/rollback", json={"version": 1}, headers=headers)
    assert again.status_code == 409
    unknown = await http.post("/api/flows/rollback", json={"version": 9}, headers=headers)
    assert unknown.status_code == 404


@pytest.mark.usefixtures("staff")
async def test_versions_diff_tree_and_calendar(http: httpx.AsyncClient) -> None:
    headers = await signed_in(http, SANNE)
    await http.post("/api/flows/publish", json={"text": edited(), "comment": "k"}, headers=headers)
    diff = (await http.get("/api/flows/diff", params={"a": 1}, headers=headers)).json()
    assert diff["b"] == 2
    assert f'-    nl: "{OLD_WELCOME}"' in diff["diff"]
    assert f'+    nl: "{NEW_WELCOME}"' in diff["diff"]
    text = (await http.get("/api/flows/versions/1", headers=headers)).json()
    assert text["text"] == TEXT and text["live"] is False
    assert (await http.get("/api/flows/versions/5", headers=headers)).status_code == 404

    tree = (await http.get("/api/flows/tree", headers=headers)).json()
    first = tree["nodes"][0]
    assert first["id"] == "welcome" and first["prompts"][0]["texts"]["nl"] == NEW_WELCOME
    menu = next(n for n in tree["nodes"] if n["id"] == "main_menu")
    assert {"on": "1", "to": "vog_np_menu"} in menu["edges"]
    assert {"on": "9 (en)", "to": "main_menu"} in menu["edges"]
    assert {"on": "0 (repeat)", "to": "main_menu"} in menu["edges"]
    old_tree = (await http.get("/api/flows/tree?version=1", headers=headers)).json()
    assert old_tree["nodes"][0]["prompts"][0]["texts"]["nl"] == OLD_WELCOME

    days = (
        await http.get("/api/flows/calendar", params={"start": "2026-12-24"}, headers=headers)
    ).json()
    assert len(days) == 30
    assert days[0]["date"] == "2026-12-24" and days[0]["open"] is True
    christmas = days[1]
    assert christmas["open"] is False and christmas["reason"] == "Eerste kerstdag"
    saturday = days[2 + 1]  # 27 December 2026 is a Sunday, the 26th a holiday
    assert saturday["open"] is False
    monday = next(d for d in days if d["date"] == "2026-12-28")
    assert monday == {"date": "2026-12-28", "open": True, "hours": "09:00-17:00", "reason": None}


@pytest.mark.usefixtures("staff")
async def test_an_adviser_skill_for_a_product_no_queue_serves_is_only_a_warning(
    http: httpx.AsyncClient,
) -> None:
    headers = await signed_in(http, SANNE)
    checked = (
        await http.post("/api/flows/validate", json={"text": edited()}, headers=headers)
    ).json()
    assert checked["ok"] is True and checked["problems"] == []
    # ahmed (no skills) takes every product: nothing is left without an adviser.
    assert checked["warnings"] == []


# -- several instances on one Redis ------------------------------------------------------------


async def test_another_instance_takes_the_new_version_on_its_next_call(
    make_app: Callable[..., FastAPI], tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    """Instance B never heard the announcement (no lifespan runs here); its next call still
    reads the live pointer from Redis and takes the new version."""
    first, second = make_app(), make_app()
    services = first.state.services
    version = await services.publisher.publish(edited(), author="sanne", comment="kerst")
    assert await redis_client.get(keys.live_flow("kcc")) == f"2:2:{version.digest}"

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second), base_url=PUBLIC_URL
    ) as http:
        call = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        assert NEW_WELCOME in (await call.dial()).text
    assert second.state.services.flows.number == 2


async def test_a_lost_redis_pointer_is_restored_from_the_database(
    app: FastAPI, redis_client: aioredis.Redis, phone: Callable[..., Phone]
) -> None:
    services = app.state.services
    await services.publisher.publish(edited(), author="sanne", comment="kerst")
    await redis_client.delete(keys.live_flow("kcc"))  # Redis restarted empty
    assert NEW_WELCOME in (await phone().dial()).text
    assert await redis_client.get(keys.live_flow("kcc")) == f"2:2:{flow_digest(edited())}"
    assert await redis_client.ttl(keys.live_flow("kcc")) > 0


# -- races, restarts and failures --------------------------------------------------------------


async def test_a_late_announcement_never_puts_an_older_version_back(
    make_app: Callable[..., FastAPI], redis_client: aioredis.Redis
) -> None:
    first, second = make_app(), make_app()
    publisher = first.state.services.publisher
    await publisher.publish(edited(), author="sanne", comment="kerst")  # generation 2
    stale = first.state.services.flow_versions.live_pointer("kcc")
    await publisher.rollback(1, actor="sanne", comment="te vroeg")  # generation 3

    # The publish's announcement (or a re-sync that read the database before the rollback)
    # arrives last, on another instance: it must change nothing.
    await second.state.services.flows.announce(stale)

    assert await redis_client.get(keys.live_flow("kcc")) == f"3:1:{flow_digest(TEXT)}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second), base_url=PUBLIC_URL
    ) as http:
        call = Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
        assert OLD_WELCOME in (await call.dial()).text
    assert second.state.services.flows.number == 1


def test_concurrent_publishes_and_rollbacks_keep_one_unbroken_audit_chain(
    db_engine: Engine,
) -> None:
    versions = SqlFlowVersions(db_engine)
    versions.publish("kcc", TEXT, author="system", comment="first", at=AT)
    versions.publish("kcc", edited(), author="sanne", comment="2", at=AT)

    def publish(n: int) -> None:
        text = edited(new=f"Welkom, versie {n}.")
        versions.publish("kcc", text, author=f"p{n}", comment="", at=AT)

    def rollback(n: int) -> None:
        with contextlib.suppress(AlreadyLive):
            versions.rollback("kcc", 1 + n % 2, actor=f"r{n}", comment="", at=AT)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(job, n) for n in range(8) for job in (publish, rollback)]:
            future.result()

    chain = list(reversed(versions.audit("kcc")))
    for before, after in itertools.pairwise(chain):
        assert after.from_number == before.to_number, (before, after)
    live = versions.live("kcc")
    assert live is not None and live.number == chain[-1].to_number


async def test_a_pointer_to_a_version_this_database_does_not_have_is_repaired(
    app: FastAPI, redis_client: aioredis.Redis, phone: Callable[..., Phone]
) -> None:
    """A restored database, or another environment on the same Redis: callers still get the
    database's live version, never the apology."""
    await redis_client.set(keys.live_flow("kcc"), "99:9:0123456789abcdef")
    assert OLD_WELCOME in (await phone().dial()).text
    pointer = await redis_client.get(keys.live_flow("kcc"))
    assert pointer == f"1:1:{flow_digest(TEXT)}"


@pytest.mark.usefixtures("staff")
async def test_a_publish_while_redis_is_away_is_live_and_says_it_was_not_announced(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    app = make_app(redis_url="redis://127.0.0.1:9/0")  # nothing listens there
    piet = supervisor("piet")
    add_staff(app.state.services.db_engine, piet)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
    ) as http:
        headers = await signed_in(http, piet)
        response = await http.post(
            "/api/flows/publish", json={"text": edited(), "comment": "k"}, headers=headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["number"] == 2 and response.json()["announced"] is False
        listing = await http.get("/api/flows", headers=headers)
        assert listing.status_code == 200 and listing.json()["live"] == 2


def test_after_the_first_start_the_flow_file_cannot_stop_or_change_the_service(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    first = make_app()
    first.state.services.flow_versions.publish("kcc", edited(), author="sanne", comment="k", at=AT)
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(TEXT.replace("name: kcc", "name: kcc-nieuw", 1), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: kcc\nnodes: [", encoding="utf-8")

    for flow_file in (renamed, broken, tmp_path / "missing.yaml"):
        restarted = make_app(flow=flow_file)
        flows = restarted.state.services.flows
        assert (flows.name, flows.number) == ("kcc", 2), flow_file
        assert flows.current.engine.flow.prompts["welcome"]["nl"] == NEW_WELCOME


def test_two_instances_seeding_an_empty_database_at_once_both_start(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.services import live_flow

    versions = SqlFlowVersions(sqlite_engine)
    live_flow(DEFAULT_FLOW, versions, AT)  # the other instance was a moment quicker
    monkeypatch.setattr(versions, "flows", lambda: [])  # ... after this one looked
    loaded, pointer = live_flow(DEFAULT_FLOW, versions, AT)
    assert (pointer.number, loaded.digest) == (1, flow_digest(TEXT))


@pytest.mark.usefixtures("staff")
async def test_publishing_an_earlier_text_again_shows_its_new_number(
    http: httpx.AsyncClient,
) -> None:
    headers = await signed_in(http, SANNE)
    for text in (edited(), TEXT):
        response = await http.post(
            "/api/flows/publish", json={"text": text, "comment": "x"}, headers=headers
        )
        assert response.status_code == 201, response.text
    assert response.json()["number"] == 3
    assert (await http.get("/api/flows", headers=headers)).json()["live"] == 3
    assert (await http.get("/healthz")).json()["flow_number"] == "3"
