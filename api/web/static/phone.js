// The browser phone of the staff pages (/desk and /supervisor): a Twilio Voice SDK Device
// (static/vendor/twilio-voice/twilio.min.js, served by the app: no CDN) registered as the signed-in
// staff member's own `client:NAME`, with an access token from POST /api/me/voice-token.
// An offered call rings here: answer, reject, mute (in the browser), hang up, a keypad for a
// department's own menu; calls out (a number or a colleague) go through the TwiML App's voice
// URL, /twilio/outbound. Without Twilio credentials the service answers 503
// `voice_not_configured` and the panel stays hidden: the demo keeps its simulated phone.
//
// A page calls KccPhone.start({ api, panel }) once signed in and KccPhone.stop() when its session
// ends. Registration changes are reported to window.KccDesk?.reportPhone?.("registered" |
// "unregistered") (the desk's presence). Plain JavaScript, no build step.
"use strict";

window.KccPhone = (() => {
  const TOKEN_PATH = "/api/me/voice-token";
  const RETRY_MS = 15000; // a failed registration (network, token) is tried again after this
  const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
  const E164 = /^\+[1-9][0-9]{6,14}$/;
  const COLLEAGUE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/; // a client name, as staff names begin

  const MESSAGES = {
    voice_not_configured: () => "De telefoon in de browser is niet ingesteld.",
    device_is_a_number: () =>
      "Gesprekken voor jou gaan naar je telefoonnummer, niet naar de browser.",
  };
  const MICROPHONE = {
    granted: "Microfoon: toegestaan",
    denied: "Microfoon: geweigerd. Sta de microfoon toe in de instellingen van de browser.",
    prompt: "Microfoon: nog niet toegestaan. De browser vraagt het bij het eerste gesprek.",
    unknown: "Microfoon: onbekend",
  };

  const phone = {
    api: null,
    panel: null,
    device: null,
    call: null,
    muted: false,
    registered: null, // true / false once known, null before
    retry: null,
    generation: 0, // a start() after a stop() ignores what the previous session still answers
  };

  function el(id) {
    return phone.panel ? phone.panel.querySelector(`[data-phone="${id}"]`) : null;
  }

  function setText(id, text) {
    const node = el(id);
    if (node) {
      node.textContent = text;
    }
  }

  function show(id, shown) {
    const node = el(id);
    if (node) {
      node.hidden = !shown;
    }
  }

  function render() {
    const panel = phone.panel;
    panel.innerHTML = `
      <h2 data-phone="title">Telefoon</h2>
      <p class="phone-state" data-phone="state" data-testid="phone-state" data-state="" role="status" aria-live="polite"></p>
      <p class="phone-detail" data-phone="detail" data-testid="phone-detail"></p>
      <p class="phone-microphone" data-phone="microphone" data-testid="phone-microphone"></p>
      <div class="buttons">
        <button type="button" class="button" data-phone="allow-microphone" data-testid="phone-allow-microphone" hidden>Microfoon toestaan</button>
        <button type="button" class="button" data-phone="register" data-testid="phone-register" hidden>Opnieuw aanmelden</button>
      </div>
      <div class="phone-call" data-phone="call" data-testid="phone-call" hidden>
        <p class="phone-call-state" data-phone="call-state" data-testid="phone-call-state" aria-live="assertive"></p>
        <div class="buttons" role="group" aria-label="Gesprek">
          <button type="button" class="button button-primary" data-phone="accept" data-testid="phone-accept">Opnemen</button>
          <button type="button" class="button" data-phone="reject" data-testid="phone-reject">Weigeren</button>
          <button type="button" class="button" data-phone="mute" data-testid="phone-mute" aria-pressed="false">Dempen</button>
          <button type="button" class="button button-danger" data-phone="hang-up" data-testid="phone-hang-up">Ophangen</button>
        </div>
        <div class="phone-keypad" data-phone="keypad" data-testid="phone-keypad" role="group" aria-label="Toetsen">
          ${KEYS.map((key) => `<button type="button" class="button" data-key="${key}" aria-label="Toets ${key}">${key}</button>`).join("")}
        </div>
      </div>
      <form class="phone-dial" data-phone="dial" data-testid="phone-dial" novalidate hidden>
        <div class="field">
          <label for="phone-to">Bellen naar <span class="hint">(+31... of de naam van een collega)</span></label>
          <input id="phone-to" data-phone="to" data-testid="phone-to" autocomplete="off" spellcheck="false">
        </div>
        <button type="submit" class="button" data-phone="dial-button" data-testid="phone-dial-button">Bellen</button>
      </form>`;
    el("accept").addEventListener("click", () => phone.call && phone.call.accept());
    el("reject").addEventListener("click", () => phone.call && phone.call.reject());
    el("hang-up").addEventListener("click", () => phone.call && phone.call.disconnect());
    el("mute").addEventListener("click", () => {
      if (phone.call) {
        // Muted in the browser: the microphone's sound stops here (the SDK says so by "mute").
        const muted = !phone.muted;
        phone.call.mute(muted);
        setMuted(muted);
      }
    });
    for (const key of el("keypad").querySelectorAll("[data-key]")) {
      key.addEventListener("click", () => phone.call && phone.call.sendDigits(key.dataset.key));
    }
    el("register").addEventListener("click", () => register());
    el("allow-microphone").addEventListener("click", allowMicrophone);
    el("dial").addEventListener("submit", (event) => {
      event.preventDefault();
      dial(el("to").value);
    });
  }

  // -- the Device's state -----------------------------------------------------------------

  function setState(state, text, detail = "") {
    const node = el("state");
    if (!node) {
      return; // stopped: the panel is gone
    }
    node.dataset.state = state;
    node.textContent = text;
    setText("detail", detail);
    show("register", state === "unregistered");
    show("dial", state === "registered" && !phone.call);
  }

  function report(registered) {
    if (phone.registered === registered) {
      return;
    }
    phone.registered = registered;
    if (window.KccDesk && typeof window.KccDesk.reportPhone === "function") {
      window.KccDesk.reportPhone(registered ? "registered" : "unregistered");
    }
  }

  function unregistered(detail) {
    setState("unregistered", "Telefoon niet aangemeld", detail);
    report(false);
  }

  function translate(err) {
    return window.KccStaff.translate(err, MESSAGES);
  }

  async function token() {
    return phone.api(TOKEN_PATH, { method: "POST" });
  }

  async function register() {
    const generation = phone.generation;
    clearTimeout(phone.retry);
    setState("registering", "Telefoon wordt aangemeld...");
    let grant;
    try {
      grant = await token();
    } catch (err) {
      if (generation !== phone.generation) {
        return;
      }
      if (err.code === "voice_not_configured") {
        phone.panel.hidden = true; // the demo: the simulated phone stays
        return;
      }
      phone.panel.hidden = false;
      if (err.code === "device_is_a_number") {
        setState("number", "Telefoon: je telefoonnummer", translate(err));
        return;
      }
      if (err.status === 401) {
        return; // the page's session has ended
      }
      unregistered(translate(err));
      phone.retry = setTimeout(register, RETRY_MS);
      return;
    }
    if (generation !== phone.generation) {
      return;
    }
    phone.panel.hidden = false;
    if (!window.Twilio || typeof window.Twilio.Device !== "function") {
      unregistered("De telefoonsoftware is niet geladen. Vernieuw de pagina.");
      return;
    }
    if (phone.device) {
      phone.device.updateToken(grant.token);
    } else {
      phone.device = makeDevice(grant.token);
    }
    try {
      await phone.device.register();
    } catch (err) {
      if (generation === phone.generation) {
        unregistered("Aanmelden bij Twilio lukte niet. Het wordt zo opnieuw geprobeerd.");
        phone.retry = setTimeout(register, RETRY_MS);
      }
    }
  }

  function makeDevice(accessToken) {
    const device = new window.Twilio.Device(accessToken, {
      closeProtection: "Je hebt een gesprek. Weet je zeker dat je de pagina wilt sluiten?",
      codecPreferences: ["opus", "pcmu"],
      tokenRefreshMs: 60000, // ask for a new token a minute before this one ends
    });
    // Events of a Device this page has since destroyed (signed out) change nothing.
    const current = (handler) => (...args) => phone.device === device && handler(...args);
    device.on("registered", current(() => {
      setState("registered", "Telefoon aangemeld", "Gesprekken voor jou gaan over in deze pagina.");
      report(true);
    }));
    device.on(
      "unregistered",
      current(() => unregistered("Je ontvangt geen gesprekken in deze pagina."))
    );
    device.on(
      "error",
      current((error) => {
        const code = error && error.code ? ` (code ${error.code})` : "";
        setText("detail", `De telefoon meldt een fout${code}.`);
      })
    );
    device.on("tokenWillExpire", current(renewToken));
    device.on("incoming", current(ringing));
    return device;
  }

  async function renewToken() {
    try {
      const grant = await token();
      if (phone.device) {
        phone.device.updateToken(grant.token);
      }
    } catch (err) {
      if (err.status !== 401) {
        setText("detail", `Het aanmelden verlengen lukte niet: ${translate(err)}`);
      }
    }
  }

  // -- calls ------------------------------------------------------------------------------

  function who(call) {
    const from = (call.parameters && call.parameters.From) || "";
    return from.startsWith("client:") ? ` van collega ${from.slice("client:".length)}` : "";
  }

  function ringing(call) {
    if (phone.call) {
      call.reject(); // one conversation at a time: the caller goes back to routing
      return;
    }
    watch(call);
    showCall("ringing", `Inkomend gesprek${who(call)}`);
    el("accept").focus();
  }

  function watch(call) {
    phone.call = call;
    setMuted(false);
    call.on("accept", () => showCall("open", "In gesprek"));
    call.on("mute", (muted) => setMuted(muted));
    for (const ending of ["disconnect", "cancel", "reject"]) {
      call.on(ending, () => endCall(call));
    }
    call.on("error", (error) => {
      const code = error && error.code ? ` (code ${error.code})` : "";
      setText("detail", `Het gesprek meldt een fout${code}.`);
    });
  }

  function showCall(state, text) {
    el("call").dataset.state = state;
    setText("call-state", text);
    show("call", true);
    show("dial", false);
    const ringingNow = state === "ringing";
    show("accept", ringingNow);
    show("reject", ringingNow);
    show("mute", !ringingNow);
    show("hang-up", !ringingNow);
    show("keypad", !ringingNow);
  }

  function endCall(call) {
    if (phone.call !== call) {
      return;
    }
    phone.call = null;
    setMuted(false);
    show("call", false);
    show("dial", phone.registered === true);
  }

  function setMuted(muted) {
    phone.muted = muted;
    const button = el("mute");
    if (button) {
      button.textContent = muted ? "Dempen opheffen" : "Dempen";
      button.setAttribute("aria-pressed", String(muted));
    }
  }

  // A call out: a number (+31...) or a colleague's browser phone (their name). The service
  // decides who may be called (/twilio/outbound); the page only spells it out.
  async function dial(target) {
    const to = (target || "").trim();
    const address = E164.test(to) ? to : COLLEAGUE.test(to) ? `client:${to}` : null;
    if (!address) {
      setText("detail", "Vul een nummer in als +31612345678, of de naam van een collega.");
      el("to").focus();
      return null;
    }
    if (!phone.device || phone.call) {
      return null;
    }
    const call = await phone.device.connect({ params: { To: address } });
    watch(call);
    showCall("dialling", `Bellen naar ${to}...`);
    return call;
  }

  // -- the microphone ---------------------------------------------------------------------

  async function watchMicrophone() {
    const generation = phone.generation;
    let status = null;
    try {
      status = await navigator.permissions.query({ name: "microphone" });
    } catch (err) {
      status = null; // a browser without the Permissions API for the microphone
    }
    if (generation !== phone.generation) {
      return;
    }
    const showPermission = () => {
      const state = status ? status.state : "unknown";
      const node = el("microphone");
      if (node) {
        node.dataset.state = state;
        node.textContent = MICROPHONE[state] || MICROPHONE.unknown;
      }
      show("allow-microphone", state === "prompt");
    };
    if (status) {
      status.onchange = showPermission;
    }
    showPermission();
  }

  async function allowMicrophone() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      for (const track of stream.getTracks()) {
        track.stop();
      }
    } catch (err) {
      setText("detail", "De microfoon is niet toegestaan.");
    }
    watchMicrophone();
  }

  // -- start and stop ---------------------------------------------------------------------

  function start({ api, panel }) {
    stop();
    phone.api = api;
    phone.panel = panel;
    render();
    panel.hidden = true; // shown once the service says the browser phone is set up
    watchMicrophone();
    register();
  }

  function stop() {
    phone.generation += 1;
    clearTimeout(phone.retry);
    if (phone.call) {
      phone.call.disconnect();
      phone.call = null;
    }
    if (phone.device) {
      phone.device.destroy();
      phone.device = null;
      report(false);
    }
    phone.registered = null;
    if (phone.panel) {
      phone.panel.hidden = true;
      phone.panel.innerHTML = "";
    }
  }

  return { start, stop, dial };
})();
