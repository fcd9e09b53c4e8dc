"""Pages and the API answer with the security headers (a Content-Security-Policy without inline
script, no framing, no sniffing, no referrer), the pages keep working under that policy in a
real browser, and a request whose body stalls is answered 408 instead of holding on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.web.security import CONTENT_SECURITY_POLICY
from tests.conftest import PUBLIC_URL, SECRET_KEY
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in, wait_until
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import adviser, supervisor

PASSWORD = "correct horse battery staple"
SUPERVISOR = supervisor("s.jansen", PASSWORD)
ADVISER = adviser("a.bakker", PASSWORD)
# Every violation of the policy, as the page itself sees it.
LISTEN = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation', (e) =>"
    " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
PATHS = ["/", "/desk", "/supervisor", "/docs", "/static/desk.js", "/api/me", "/openapi.json"]


def assert_secured(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    directives = {
        part.strip().partition(" ")[0]: part.strip().partition(" ")[2] for part in policy.split(";")
    }
    assert directives["script-src"] == "'self'", policy  # no 'unsafe-inline', no CDN
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", PATHS)
async def test_pages_and_the_api_carry_the_security_headers(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code in {200, 401}, response.text
    assert_secured(response)


async def test_a_refusal_carries_them_too(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/token", data={"username": "x", "password": "y"})
    assert response.status_code == 401
    assert_secured(response)


# -- a stalled body, in the app itself -----------------------------------------------------------


async def send_stalled(app: FastAPI, path: str) -> list[dict[str, Any]]:
    """An ASGI request that sends part of its body and then nothing: what the app answered."""
    first = True
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"username=sa", "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"kcc.test"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"1000"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("kcc.test", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=20)
    return sent


@pytest.mark.parametrize("path", ["/api/token", "/twilio/voice"])
async def test_a_body_that_stalls_is_answered_408(make_app: Any, path: str) -> None:
    app = make_app(body_timeout_seconds=0.3)
    sent = await send_stalled(app, path)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [408], sent
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"did not arrive in time" in body


async def test_a_body_that_arrives_in_time_is_served_as_ever(make_app: Any) -> None:
    app = make_app(body_timeout_seconds=5)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
    ) as http:
        response = await http.post("/api/token", data={"username": "x", "password": "y"})
    assert response.status_code == 401


# -- a real server, in a real browser -------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    with open_kcc_serve(
        tmp_path_factory.mktemp("security"),
        secret_key=SECRET_KEY,
        staff=[SUPERVISOR, ADVISER],
        KCC_BODY_TIMEOUT_SECONDS="1",
    ) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1366, height=768) as opened:
        opened.add_init_script(LISTEN)
        yield opened


@pytest.mark.slow
def test_a_real_server_answers_a_stalled_body_with_408(server: KccServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /api/token HTTP/1.1\r\nHost: kcc\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
            b"username=s.jansen&pass"
        )
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "title", "account", "shown"),
    [
        ("/desk", "Adviseursdesk - Justis klantcontactcentrum", ADVISER, "desk"),
        ("/supervisor", "Supervisor - Justis klantcontactcentrum", SUPERVISOR, "tools"),
    ],
)
def test_the_staff_pages_work_under_the_policy_without_a_violation(
    page: Page, path: str, title: str, account: Any, shown: str
) -> None:
    response = page.goto(path)
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    open_signed_in(page, path, title, account)
    expect(page.get_by_test_id(shown)).to_be_visible()
    page.wait_for_timeout(500)  # the page's first requests and renders are done
    assert page.evaluate("window.__violations") == []


@pytest.mark.slow
def test_the_browser_refuses_an_inline_script_and_reports_it(
    browser: Browser, server: KccServer
) -> None:
    """The check above can fail: an inline script put on the desk is refused and reported."""
    page = browser.new_page(base_url=server.url)
    try:
        page.add_init_script(LISTEN)
        page.goto("/desk")
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__inline = true'; document.body.append(s); }"
        )
        wait_until(page, "window.__violations.length > 0")
        assert page.evaluate("window.__inline === undefined")
        assert any("script-src" in v for v in page.evaluate("window.__violations"))
    finally:
        page.close()
