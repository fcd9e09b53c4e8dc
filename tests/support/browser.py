"""The pages' tests (/desk, /supervisor) in a real browser: headless Debian Chromium driven by
Playwright.

Chromium comes from Debian (`scripts/browser`, run by `scripts/test` in CI); Playwright never
downloads a browser here. In CI a missing Playwright or Chromium fails the tests, it never skips
them. Import Playwright's names from here, so that a test module without it is skipped off CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.slow import require_slow
from tests.support.staff import Account

try:
    from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
except ImportError:  # pragma: no cover - installed with the test extras
    if IN_CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

__all__ = [
    "CHROMIUM",
    "WAIT_MS",
    "Browser",
    "Page",
    "chromium",
    "expect",
    "open_page",
    "open_signed_in",
    "submit_sign_in",
]

CHROMIUM = Path(os.environ.get("KCC_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # every wait in the browser is bounded by this


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; a missing one skips the test, and fails it in CI."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run scripts/browser (Debian chromium, chromium-driver)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    require_slow("Chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def open_page(browser: Browser, base_url: str, *, width: int, height: int) -> Iterator[Page]:
    """A page in a fresh context (Dutch, every wait bounded by WAIT_MS); a JavaScript error on
    it, or anything its Content-Security-Policy blocks, fails the test. Every request that would
    leave the app (a CDN, web fonts, a validator) is blocked and counted: one fails the test
    too."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="nl-NL", base_url=base_url
    )
    context.set_default_timeout(WAIT_MS)
    app = base_url.rstrip("/") + "/"
    outside: list[str] = []

    def block(route: Route) -> None:
        outside.append(route.request.url)
        route.abort("blockedbyclient")

    context.route(
        lambda url: not (url + "/").startswith(app) and not url.startswith("data:"), block
    )
    errors: list[str] = []
    blocked_by_policy: list[str] = []  # Chromium reports each CSP violation on the console
    opened = context.new_page()
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console",
        lambda message: (
            blocked_by_policy.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not blocked_by_policy, f"blocked by the Content-Security-Policy: {blocked_by_policy}"
    assert not outside, f"requests that would leave the app (blocked): {outside}"


def wait_until(page: Page, expression: str, *, timeout_ms: int = WAIT_MS) -> None:
    """Until the JavaScript `expression` is truthy on the page. Polled with `evaluate` (run by the
    DevTools protocol): `wait_for_function` compiles its predicate with eval in the page, which
    the Content-Security-Policy (no 'unsafe-eval') refuses."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout_ms} ms: {expression}")
        page.wait_for_timeout(50)


def open_signed_in(page: Page, path: str, title: str, account: Account) -> None:
    """Open the staff page at `path` (Dutch, titled `title`) and sign in there as `account`."""
    page.goto(path)
    expect(page).to_have_title(title)
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    submit_sign_in(page, account.name, account.password)


def submit_sign_in(page: Page, name: str, password: str) -> None:
    """Fill in the sign-in form of a staff page (/desk, /supervisor: staff.js) and send it."""
    page.get_by_label("Gebruikersnaam").fill(name)
    page.get_by_label("Wachtwoord").fill(password)
    page.get_by_role("button", name="Inloggen").click()
