"""The browser phone on the desk and supervisor pages, in headless Chromium (Playwright).

A real `kcc serve` with a Twilio API key and TwiML App (and otherwise the simulated telephony of
the demo) hands out real access tokens. The real vendored Voice SDK is loaded and must define
`Twilio.Device` with every request that would leave the app blocked. The Device itself needs
Twilio, so the wiring of the page is checked against a fake `Twilio.Device` put in the page
before its scripts run (the SDK keeps a `Twilio.Device` it finds): registered on load, the token
renewed on tokenWillExpire, and the buttons calling accept, reject, mute, disconnect and
sendDigits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.conftest import REDIS_UP, SECRET_KEY
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in, wait_until
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import adviser, supervisor

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

PHONE_REDIS_URL = os.environ.get("KCC_TEST_DESK_REDIS_URL", "redis://127.0.0.1:6379/12")
PASSWORD = "correct horse battery staple"
API_KEY_SECRET = "page-test-api-key-secret-0123456789ab"
VOICE_ENV = {
    "TWILIO_API_KEY_SID": "SK" + "0123456789abcdef" * 2,
    "TWILIO_API_KEY_SECRET": API_KEY_SECRET,
    "TWILIO_TWIML_APP_SID": "AP" + "fedcba9876543210" * 2,
}
ANNA = adviser("anna", PASSWORD)
PIET = adviser("piet", PASSWORD, device="+31201234567")
SANNE = supervisor("s.jansen", PASSWORD)
DESK = "Adviseursdesk - Justis klantcontactcentrum"
SUPERVISOR = "Supervisor - Justis klantcontactcentrum"

# A stand-in for the SDK's Device and Call: it records what the page asks of it in
# window.__fake.log, and the test makes it emit the SDK's events. The KccDesk hook is recorded
# too, and still reaches a page's own reportPhone.
FAKE_DEVICE = """
(() => {
  const log = [];
  class Emitter {
    constructor() { this.handlers = {}; }
    on(name, handler) { (this.handlers[name] ||= []).push(handler); return this; }
    emit(name, ...args) { for (const handler of this.handlers[name] || []) handler(...args); }
  }
  class FakeCall extends Emitter {
    constructor(parameters) { super(); this.parameters = parameters; }
    accept() { log.push(["accept"]); this.emit("accept", this); }
    reject() { log.push(["reject"]); this.emit("reject"); }
    mute(muted) { log.push(["mute", muted]); this.emit("mute", muted, this); }
    disconnect() { log.push(["disconnect"]); this.emit("disconnect", this); }
    sendDigits(digits) { log.push(["sendDigits", digits]); }
  }
  class FakeDevice extends Emitter {
    constructor(token, options) { super(); log.push(["new", token]); window.__fake.device = this; }
    async register() { log.push(["register"]); this.emit("registered"); }
    updateToken(token) { log.push(["updateToken", token]); }
    async connect(options) { log.push(["connect", options.params]); return new FakeCall({}); }
    destroy() { log.push(["destroy"]); }
  }
  window.__fake = {
    log,
    device: null,
    ring(from) {
      const call = new FakeCall({ From: from, CallSid: "CA" + "1".repeat(32) });
      window.__fake.call = call;
      window.__fake.device.emit("incoming", call);
    },
  };
  window.Twilio = { Device: FakeDevice };
  let desk;
  const hook = {
    reportPhone(state) {
      log.push(["reportPhone", state]);
      if (desk && typeof desk.reportPhone === "function") desk.reportPhone(state);
    },
  };
  Object.defineProperty(window, "KccDesk", {
    configurable: true,
    get() { return hook; },
    set(value) { desk = value; },
  });
})();
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    """`kcc serve` with the browser phone set up (API key, TwiML App)."""
    with open_kcc_serve(
        tmp_path_factory.mktemp("phone"),
        secret_key=SECRET_KEY,
        staff=[ANNA, PIET, SANNE],
        redis_url=PHONE_REDIS_URL if REDIS_UP else None,
        **VOICE_ENV,
    ) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1280, height=900) as opened:
        yield opened


@pytest.fixture
def faked(page: Page) -> Page:
    page.add_init_script(FAKE_DEVICE)
    return page


def _log(page: Page) -> list[list[Any]]:
    log: list[list[Any]] = page.evaluate("window.__fake.log")
    return log


def _wait_for(page: Page, entry: str) -> None:
    """Until the fake has recorded `entry` (a JSON array, e.g. '["accept"]')."""
    wait_until(
        page, f"window.__fake.log.some((e) => JSON.stringify(e) === JSON.stringify({entry}))"
    )


def _identity(token: str) -> str:
    claims = jwt.decode(token, API_KEY_SECRET, algorithms=["HS256"])
    identity: str = claims["grants"]["identity"]
    return identity


def _tokens(page: Page, kind: str) -> list[str]:
    return [entry[1] for entry in _log(page) if entry[0] == kind]


# -- the real SDK ------------------------------------------------------------------------------


def test_the_vendored_voice_sdk_defines_twilio_device_in_the_page(page: Page) -> None:
    page.goto("/desk")
    expect(page).to_have_title(DESK)
    wait_until(page, "window.Twilio && typeof window.Twilio.Device === 'function'")
    assert page.evaluate("typeof window.Twilio.Device.prototype.register") == "function"
    assert page.evaluate("typeof window.Twilio.Call") == "function"
    # open_page fails the test on a JavaScript error or a request that would leave the app.


# -- the desk's wiring, against the fake Device ------------------------------------------------


def test_the_desk_registers_the_advisers_browser_phone_on_sign_in(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, ANNA)

    state = faked.get_by_test_id("phone-state")
    expect(state).to_have_text("Telefoon aangemeld")
    expect(state).to_have_attribute("data-state", "registered")
    _wait_for(faked, '["register"]')
    assert [_identity(token) for token in _tokens(faked, "new")] == ["anna"]
    _wait_for(faked, '["reportPhone", "registered"]')
    expect(faked.get_by_test_id("phone-microphone")).to_contain_text("Microfoon:")

    faked.evaluate("window.__fake.device.emit('unregistered')")
    expect(state).to_have_text("Telefoon niet aangemeld")
    _wait_for(faked, '["reportPhone", "unregistered"]')
    faked.get_by_test_id("phone-register").click()
    expect(state).to_have_text("Telefoon aangemeld")


def test_the_desk_renews_its_token_before_it_expires(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, ANNA)
    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon aangemeld")

    faked.evaluate("window.__fake.device.emit('tokenWillExpire', window.__fake.device)")

    wait_until(faked, "window.__fake.log.some((e) => e[0] === 'updateToken')")
    (renewed,) = _tokens(faked, "updateToken")
    assert _identity(renewed) == "anna"


def test_an_offered_call_rings_in_the_page_and_the_buttons_drive_the_call(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, ANNA)
    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon aangemeld")

    faked.evaluate("window.__fake.ring('+31612345678')")
    card = faked.get_by_test_id("phone-call")
    expect(card).to_be_visible()
    expect(faked.get_by_test_id("phone-call-state")).to_have_text("Inkomend gesprek")
    expect(faked.get_by_test_id("phone-keypad")).to_be_hidden()
    faked.get_by_test_id("phone").get_by_role("button", name="Opnemen").click()
    _wait_for(faked, '["accept"]')
    expect(faked.get_by_test_id("phone-call-state")).to_have_text("In gesprek")

    mute = faked.get_by_test_id("phone-mute")
    mute.click()
    _wait_for(faked, '["mute", true]')
    expect(mute).to_have_text("Dempen opheffen")
    expect(mute).to_have_attribute("aria-pressed", "true")
    mute.click()
    _wait_for(faked, '["mute", false]')
    expect(mute).to_have_text("Dempen")

    # A department's own menu: its keys go down the line.
    for key in ("1", "#"):
        faked.get_by_role("button", name=f"Toets {key}").click()
    _wait_for(faked, '["sendDigits", "#"]')
    assert [e[1] for e in _log(faked) if e[0] == "sendDigits"] == ["1", "#"]

    faked.get_by_test_id("phone-hang-up").click()
    _wait_for(faked, '["disconnect"]')
    expect(card).to_be_hidden()


def test_a_call_can_be_rejected_and_a_colleague_is_named(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, ANNA)
    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon aangemeld")

    faked.evaluate("window.__fake.ring('client:s_jansen')")
    expect(faked.get_by_test_id("phone-call-state")).to_have_text(
        "Inkomend gesprek van collega s_jansen"
    )
    faked.get_by_test_id("phone").get_by_role("button", name="Weigeren").click()
    _wait_for(faked, '["reject"]')
    expect(faked.get_by_test_id("phone-call")).to_be_hidden()


def test_calls_out_go_to_a_number_or_a_colleagues_browser_phone(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, ANNA)
    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon aangemeld")
    to = faked.get_by_label("Bellen naar")

    to.fill("0612345678")
    faked.get_by_test_id("phone-dial-button").click()
    expect(faked.get_by_test_id("phone-detail")).to_have_text(
        "Vul een nummer in als +31612345678, of de naam van een collega."
    )
    to.fill("+31612345678")
    faked.get_by_test_id("phone-dial-button").click()
    _wait_for(faked, '["connect", {"To": "+31612345678"}]')
    expect(faked.get_by_test_id("phone-call-state")).to_have_text("Bellen naar +31612345678...")
    faked.get_by_test_id("phone-hang-up").click()
    expect(faked.get_by_test_id("phone-call")).to_be_hidden()

    to.fill("s_jansen")
    faked.get_by_test_id("phone-dial-button").click()
    _wait_for(faked, '["connect", {"To": "client:s_jansen"}]')


def test_an_adviser_whose_phone_is_a_number_is_told_so(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, PIET)
    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon: je telefoonnummer")
    expect(faked.get_by_test_id("phone-detail")).to_have_text(
        "Gesprekken voor jou gaan naar je telefoonnummer, niet naar de browser."
    )
    assert _tokens(faked, "new") == []


def test_signing_out_takes_the_phone_down(faked: Page) -> None:
    open_signed_in(faked, "/desk", DESK, ANNA)
    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon aangemeld")
    faked.get_by_test_id("sign-out").click()
    _wait_for(faked, '["destroy"]')
    _wait_for(faked, '["reportPhone", "unregistered"]')
    expect(faked.get_by_test_id("phone")).to_be_hidden()


# -- the supervisor's page has the same phone -------------------------------------------------


def test_the_supervisor_page_registers_the_supervisors_own_phone(faked: Page) -> None:
    open_signed_in(faked, "/supervisor", SUPERVISOR, SANNE)

    expect(faked.get_by_test_id("phone-state")).to_have_text("Telefoon aangemeld")
    assert [_identity(token) for token in _tokens(faked, "new")] == ["s_jansen"]
    faked.evaluate("window.__fake.ring('client:anna')")
    faked.get_by_test_id("phone").get_by_role("button", name="Opnemen").click()
    _wait_for(faked, '["accept"]')


# -- the demo: no Twilio, no browser phone -----------------------------------------------------


def test_without_twilio_the_desk_keeps_the_simulated_phone(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with (
        open_kcc_serve(
            tmp_path_factory.mktemp("demo"), secret_key=SECRET_KEY, staff=[ANNA]
        ) as demo,
        open_page(browser, demo.url, width=1280, height=900) as page,
    ):
        page.add_init_script(FAKE_DEVICE)
        open_signed_in(page, "/desk", DESK, ANNA)
        expect(page.get_by_test_id("demo-phone")).to_be_visible()
        wait_until(
            page,
            "performance.getEntriesByType('resource')"
            ".some((e) => e.name.endsWith('/api/me/voice-token'))",
        )
        expect(page.get_by_test_id("phone")).to_be_hidden()
        assert _tokens(page, "new") == []
