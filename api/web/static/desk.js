// The adviser desk: sign in, change state, see the offered or current call, wrap up.
// Plain JavaScript, no build step, no external resources. The token lives in sessionStorage.
// What the staff pages share (messages, calls to the service, signing in) is in staff.js.
"use strict";

(() => {
  const {
    $,
    ApiError,
    NO_CONNECTION,
    showError,
    showNotice,
    clearMessages,
    translate,
    languageName,
    dutchTime,
  } = window.KccStaff;
  const TOKEN_KEY = "kcc.desk.token";
  const RESYNC_MS = 20000; // a safety net for events lost while the stream was away
  const DEPARTMENTS_MS = 60000; // departments open and close by the clock: read them again
  const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

  const STATES = {
    offline: "Afgemeld",
    available: "Beschikbaar",
    offered: "Gesprek wordt aangeboden",
    on_call: "In gesprek",
    wrap_up: "Nawerk",
    break: "Pauze",
    missed: "Gemist - meld je opnieuw beschikbaar",
    away: "Afwezig",
  };
  // This tab's id: its event stream is the adviser's presence (docs/routing.md, "Presence").
  const DESK_TAB = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  const PHONE_STATES = new Set(["registered", "unregistered"]);
  const CALL_STATES = new Set(["offered", "on_call", "wrap_up"]);
  // What the desk shows for the live flow's products, themes and nodes comes from the flow
  // (GET /api/config: its `labels`), never from a copy here.
  const NO_CONFIG = {
    simulated_telephony: false,
    languages: [],
    products: {},
    themes: {},
    nodes: {},
    node_kinds: {},
    wrap_up_codes: {},
  };
  const STATUSES = {
    received: "Ontvangen",
    in_progress: "In behandeling",
    waiting_for_information: "Wacht op informatie",
    issued: "Afgegeven",
    refused: "Geweigerd",
    objection_in_progress: "Bezwaar in behandeling",
  };
  const VERIFICATION_DETAIL = {
    failed: "identiteitscontrole mislukt",
    locked: "aanvraagnummer geblokkeerd na te veel pogingen",
    skipped: "beller heeft geen aanvraagnummer",
    unverified: "niet gecontroleerd",
  };
  // A step in a node the flow gives no label, by the node's kind (a code of the flow model).
  const KIND_PLACES = {
    verify: "Identiteitscontrole",
    queue: "Wachtrij",
    status: "Statusinformatie",
    hours: "Openingstijden",
  };
  const OUTCOMES = {
    verified: "geverifieerd",
    failed: "mislukt",
    locked: "geblokkeerd",
    skipped: "overgeslagen (geen aanvraagnummer)",
    unverified: "niet geverifieerd",
    adviser: "adviseur gevraagd",
    entered: "ingevoerd",
    closed: "gesloten",
  };
  // The service's refusal codes in Dutch (api/web/errors.py; staff.js has the common ones).
  const MESSAGES = {
    call_in_progress: () => "Je hebt een gesprek. Rond dat eerst af.",
    break_after_call: () => "Je hebt een gesprek. Neem pauze als het gesprek is afgerond.",
    sign_in_first: () => "Meld je eerst beschikbaar voordat je pauze neemt.",
    not_in_wrap_up: (p) =>
      `'Klaar' is voor het einde van het nawerk. Je status is nu: ${stateName(p.state)}.`,
    no_call_to_wrap_up: () => "Er is geen gesprek meer om nawerk voor op te slaan.",
    wrap_up_code_unknown: (p) =>
      `Deze categorie hoort niet bij ${productName(p.product) || "dit gesprek"}. Kies een andere.`,
    wrap_up_done: () => "Het nawerk van dit gesprek is al opgeslagen.",
    no_call_ringing: () => "Er wordt op dit moment geen gesprek aangeboden.",
    no_call: () => "Er is op dit moment geen gesprek.",
    no_callback: () => "Er is geen terugbelverzoek om te bellen.",
    not_a_callback: () => "Dit gesprek is geen terugbelverzoek.",
    no_caller_id: () => "Terugbellen kan niet: er is geen KCC-nummer ingesteld (KCC_CALLER_ID).",
    role_required: () => "Dit account is geen adviseursaccount.",
    no_call_in_progress: () => "Er is op dit moment geen gesprek om in de wacht te zetten of te dempen.",
    department_unknown: (p) =>
      `De afdeling '${p.department}' bestaat niet (meer). Vernieuw de lijst en kies opnieuw.`,
  };
  // A transfer's refusals (docs/routing.md, "Transfers"), and what a consult's target did.
  const TRANSFER_MESSAGES = {
    ...MESSAGES,
    no_call_in_progress: () => "Er is op dit moment geen gesprek om door te verbinden.",
    transfer_in_progress: () => "Dit gesprek wordt al doorverbonden.",
    adviser_unavailable: () =>
      "Die collega is niet aangemeld of niet beschikbaar. Kies iemand anders of een wachtrij.",
    department_closed: (p) => `De afdeling '${p.department}' is nu gesloten.`,
    product_unknown: () => "Die wachtrij bestaat niet (meer). Vernieuw de pagina.",
    no_transfer_in_progress: () => "Er wordt op dit moment niet doorverbonden.",
    transfer_not_answered: () => "De ontvanger heeft nog niet opgenomen.",
    warm_transfer_to_queue: () =>
      "Met een wachtrij kun je niet eerst overleggen: er is nog niemand. Verbind direct door.",
    telephony_failed: () => "De telefonie gaf een fout. Probeer het opnieuw.",
    not_found: () => "Doorverbinden is op deze server nog niet beschikbaar.",
  };
  // What the transfer's target did (the desk's `transfer` event), in Dutch.
  const CONSULT_STATES = {
    calling: "De ontvanger wordt gebeld. De beller staat in de wacht.",
    answered: "In overleg met de ontvanger. De beller staat in de wacht.",
  };
  const CONSULT_ENDS = {
    cancelled: "Je bent weer verbonden met de beller.",
    ended: "De ontvanger heeft opgehangen. Je bent weer verbonden met de beller.",
    "no-answer": "De ontvanger neemt niet op. Je bent weer verbonden met de beller.",
    busy: "De ontvanger is in gesprek. Je bent weer verbonden met de beller.",
    failed: "De ontvanger is niet bereikbaar. Je bent weer verbonden met de beller.",
  };

  const desk = {
    token: null,
    phone: null, // what the browser phone last reported (phone.js): registered or unregistered
    config: NO_CONFIG,
    name: "",
    status: "",
    since: null,
    call: null, // the call's context (offer/connected/ended events, or the call of /me)
    waitedBase: 0, // seconds waited when the context arrived
    waitedAt: 0, // performance.now() then
    waitStoppedAt: null, // when the caller stopped waiting (answered)
    talkStartedAt: null,
    talkStoppedAt: null,
    wrapped: false, // the wrap-up of the current call is saved
    dialled: false, // "Terugbellen" was pressed for the current callback
    onHold: false, // the caller is held (the conversation's conference)
    muted: false, // the adviser's phone is muted in the conference
    stream: null, // AbortController of the event stream
    resync: null,
    busy: false,
    events: 0, // events received: a view fetched meanwhile may be older than they are
    departments: [], // the departments open now (GET /api/departments?open=true)
    colleagues: [], // advisers available now (GET /api/advisers/available)
    transfer: null, // a consult in progress: {to, mode, state}
    departmentsTimer: null,
  };

  // -- helpers ----------------------------------------------------------------------------

  function isCallback(call) {
    return Boolean(call) && (call.kind === "callback" || call.callback === true);
  }

  function stateName(status) {
    return STATES[status] || status;
  }

  // map[key] when the map has it itself (a node may be called "constructor").
  function own(map, key) {
    return map && Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
  }

  function productName(product) {
    return own(desk.config.products, product) || product || "";
  }

  function themeName(theme) {
    return own(desk.config.themes, theme) || theme || "";
  }

  // The wrap-up form lists the codes of the call's product (the flow's wrap_up_codes, from
  // GET /api/config: the product's own, then the shared ones), after "Kies een categorie".
  function fillCategories(product) {
    const select = $("wrap-category");
    const codes = own(desk.config.wrap_up_codes, product || "") || {};
    select.replaceChildren(select.options[0]);
    for (const [code, label] of Object.entries(codes)) {
      select.append(new Option(label, code));
    }
  }

  // The wrap-up category a call's theme suggests (the adviser may change it): the theme itself
  // when it is one of the form's categories, else "other" when the flow has it.
  function themeCategory(theme) {
    if (!theme) {
      return "";
    }
    const categories = Array.from($("wrap-category").options, (option) => option.value);
    if (categories.includes(theme)) {
      return theme;
    }
    return categories.includes("other") ? "other" : "";
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function formatDate(value) {
    if (!value) {
      return "";
    }
    const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(value));
    return match ? `${match[3]}-${match[2]}-${match[1]}` : String(value);
  }

  // Times as the contact centre reads them: Dutch time, dd-mm-jjjj hh:mm.
  function formatTime(value) {
    if (!value) {
      return "";
    }
    const when = new Date(value);
    return Number.isNaN(when.getTime()) ? "" : dutchTime(when);
  }

  function formatDuration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return `${Math.floor(s / 60)}:${pad(s % 60)}`;
  }

  function pathStep(step) {
    const text = String(step);
    const at = text.indexOf("=");
    if (at < 0) {
      return text === "fallback" ? "Storing: noodroute" : text;
    }
    const node = text.slice(0, at);
    const value = text.slice(at + 1);
    let place = own(desk.config.nodes, node) || own(KIND_PLACES, own(desk.config.node_kinds, node));
    if (!place) {
      place = node.replace(/_/g, " ");
      place = place.charAt(0).toUpperCase() + place.slice(1);
    }
    const what = /^[0-9*#]+$/.test(value) ? `toets ${value}` : OUTCOMES[value] || value;
    return `${place}: ${what}`;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) {
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true }
        );
      }
    });
  }

  // -- the service ------------------------------------------------------------------------

  const { api, report, signIn: staffSignIn, expired } = window.KccStaff.connect({
    token: () => desk.token,
    stop: stopSession,
    messages: MESSAGES,
  });

  // -- sign in and out --------------------------------------------------------------------

  function signIn(event) {
    return staffSignIn(event, {
      accept(token) {
        if (token.role === "viewer") {
          // the room's screen: the wallboard is all it may see (it keeps the token there)
          localStorage.setItem("kcc.wallboard.token", token.access_token);
          window.location.assign("/wallboard");
          return false;
        }
        if (token.role !== "adviser") {
          showError("Dit account is geen adviseursaccount. De desk is alleen voor adviseurs.");
          return false;
        }
        desk.token = token.access_token;
        sessionStorage.setItem(TOKEN_KEY, desk.token);
        return true;
      },
      start,
      failed(err) {
        if (err instanceof ApiError) {
          report(err);
        } else {
          showError(NO_CONNECTION);
        }
      },
    });
  }

  function stopSession() {
    stopPhone();
    if (desk.stream) {
      desk.stream.abort();
      desk.stream = null;
    }
    if (desk.resync) {
      clearInterval(desk.resync);
      desk.resync = null;
    }
    if (desk.departmentsTimer) {
      clearInterval(desk.departmentsTimer);
      desk.departmentsTimer = null;
    }
    desk.departments = [];
    desk.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    desk.status = "";
    clearCall();
    $("desk").hidden = true;
    $("session").hidden = true;
    $("login").hidden = false;
  }

  async function signOut() {
    clearMessages();
    // Not reachable for calls while the page is closed: sign off first (not during a call).
    if (desk.status && !["offline", "offered", "on_call"].includes(desk.status)) {
      try {
        await api("/api/advisers/me/status", { method: "POST", json: { status: "offline" } });
      } catch (err) {
        report(err);
        return;
      }
    } else if (desk.status === "offered" || desk.status === "on_call") {
      showError("Je hebt een gesprek. Rond dat eerst af voordat je uitlogt.");
      return;
    }
    window.KccStaff.revokeToken(desk.token);
    stopSession();
    showNotice("Je bent uitgelogd.");
    $("username").focus();
  }

  async function start() {
    try {
      desk.config = { ...NO_CONFIG, ...(await api("/api/config?lang=nl")) };
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        return;
      }
      desk.config = NO_CONFIG;
    }
    fillCategories(""); // the shared codes until a call says its product
    try {
      applyView(await api("/api/advisers/me"));
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) {
        stopSession();
        showError("Dit account is geen adviseursaccount. De desk is alleen voor adviseurs.");
        return;
      }
      report(err);
      if (!desk.token) {
        return;
      }
    }
    $("login").hidden = true;
    $("desk").hidden = false;
    $("session").hidden = false;
    $("demo-phone").hidden = !desk.config.simulated_telephony;
    startPhone();
    render();
    $("status-title").focus();
    runStream();
    desk.resync = setInterval(refresh, RESYNC_MS);
    loadDepartments();
    desk.departmentsTimer = setInterval(loadDepartments, DEPARTMENTS_MS);
  }

  // -- departments ------------------------------------------------------------------------

  async function loadDepartments() {
    try {
      desk.departments = await api("/api/departments?open=true&lang=nl");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        desk.departments = []; // the list stays empty; the next read tries again
      }
    }
    renderDepartments();
  }

  function hoursText(hours) {
    if (!hours) {
      return "";
    }
    const time = (value) => value.replace(/^0/, "").replace(":", ".");
    return `tot ${time(hours.closes)} uur`;
  }

  async function loadColleagues() {
    try {
      desk.colleagues = await api("/api/advisers/available");
    } catch (err) {
      desk.colleagues = [];
    }
    renderTargets();
  }

  function option(value, text, testid) {
    const item = document.createElement("option");
    item.value = value;
    item.textContent = text;
    item.setAttribute("data-testid", testid);
    return item;
  }

  function renderDepartments() {
    renderTargets();
  }

  // The transfer's targets: open departments, available colleagues, the flow's queues.
  function renderTargets() {
    const chosen = $("transfer-target").value;
    $("departments").replaceChildren(
      ...desk.departments.map((department) => {
        const hours = hoursText(department.hours_today);
        const item = option(
          `department:${department.key}`,
          hours ? `${department.name} (${hours})` : department.name,
          "department"
        );
        item.dataset.department = department.key;
        return item;
      })
    );
    $("colleagues").replaceChildren(
      ...desk.colleagues.map((colleague) =>
        option(`adviser:${colleague.name}`, colleague.name, "colleague")
      )
    );
    $("queues").replaceChildren(
      ...Object.keys(desk.config.products || {}).map((product) =>
        option(`queue:${product}`, productName(product), "queue")
      )
    );
    if (chosen) {
      $("transfer-target").value = chosen;
    }
    $("departments-none").hidden = desk.departments.length > 0;
    renderTransferButtons();
  }

  // Transfers work on the conversation's conference: with Twilio only, not in the demo.
  function renderTransferButtons() {
    const talking = desk.status === "on_call" && !desk.config.simulated_telephony;
    const consulting = talking && desk.transfer !== null;
    $("transfer-form").hidden = consulting;
    for (const field of $("transfer-form").querySelectorAll("select, input, textarea, button")) {
      field.disabled = desk.busy || !talking;
    }
    setText(
      "transfer-hint",
      desk.config.simulated_telephony
        ? "Doorverbinden kan alleen met een Twilio-account, niet in de demo."
        : "Doorverbinden kan tijdens een gesprek."
    );
    $("consult").hidden = !consulting;
    if (consulting) {
      setText("consult-state", CONSULT_STATES[desk.transfer.state] || CONSULT_STATES.calling);
      $("transfer-complete").disabled = desk.busy || desk.transfer.state !== "answered";
      $("transfer-cancel").disabled = desk.busy;
    }
  }

  function transfer(event) {
    event.preventDefault();
    const to = $("transfer-target").value;
    const mode = document.querySelector("input[name=transfer-mode]:checked").value;
    const note = $("transfer-note").value.trim();
    act($("transfer-submit"), async () => {
      let answer;
      try {
        answer = await api("/api/advisers/me/call/transfer", {
          method: "POST",
          json: { to, mode, note },
        });
      } catch (err) {
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          showError(translate(err, TRANSFER_MESSAGES));
          return;
        }
        throw err;
      }
      $("transfer-note").value = "";
      if (answer.mode === "warm") {
        desk.transfer = desk.transfer || answer; // an event may have told more already
        showNotice("Eerst overleggen: de ontvanger wordt gebeld, de beller hoort wachtmuziek.");
      } else {
        showNotice("Het gesprek is doorverbonden.");
      }
      await refresh();
    });
  }

  function endConsult(button, path, notice) {
    act(button, async () => {
      try {
        await api(path, { method: "POST" });
      } catch (err) {
        if (err instanceof ApiError && err.status === 409) {
          showError(translate(err, TRANSFER_MESSAGES));
          return;
        }
        throw err;
      }
      desk.transfer = null;
      showNotice(notice);
      await refresh();
    });
  }

  function completeTransfer() {
    endConsult(
      $("transfer-complete"),
      "/api/advisers/me/call/transfer/complete",
      "Doorverbonden: de beller praat nu met de ontvanger."
    );
  }

  function cancelTransfer() {
    endConsult($("transfer-cancel"), "/api/advisers/me/call/transfer/cancel", CONSULT_ENDS.cancelled);
  }

  function onTransfer(data) {
    if (CONSULT_STATES[data.state]) {
      desk.transfer = data;
    } else {
      desk.transfer = null;
      if (CONSULT_ENDS[data.state]) {
        showNotice(CONSULT_ENDS[data.state]);
      }
    }
    render();
  }

  // -- state ------------------------------------------------------------------------------

  async function refresh() {
    if (!desk.token) {
      return;
    }
    const seen = desk.events;
    let view;
    try {
      view = await api("/api/advisers/me");
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 0) {
        report(err);
      }
      return;
    }
    if (seen !== desk.events && view.status !== desk.status) {
      // Events came while asking and the answer disagrees with them: they are as new or newer.
      return;
    }
    applyView(view);
  }

  function applyView(view) {
    desk.name = view.name;
    desk.since = view.since;
    if (view.call) {
      mergeCall(view.call);
    }
    setStatus(view.status);
    if (view.status === "on_call") {
      applyControls(view);
    }
    desk.transfer = view.status === "on_call" ? view.transfer || null : null;
    render();
  }

  function setStatus(status) {
    const before = desk.status;
    desk.status = status;
    if (!CALL_STATES.has(status)) {
      clearCall();
    }
    const now = performance.now();
    if (status === "on_call" || status === "wrap_up") {
      if (desk.waitStoppedAt === null) {
        desk.waitStoppedAt = now;
      }
      if (status === "on_call" && desk.talkStartedAt === null) {
        desk.talkStartedAt = now;
      }
    }
    if (status === "wrap_up" && desk.talkStartedAt !== null && desk.talkStoppedAt === null) {
      desk.talkStoppedAt = now;
    }
    if (before === "wrap_up" && status !== "wrap_up") {
      if (!desk.wrapped) {
        showNotice(
          status === "available"
            ? "De nawerktijd is voorbij: het nawerk van het vorige gesprek is niet opgeslagen."
            : "Het nawerk van het vorige gesprek is niet opgeslagen."
        );
      }
      $("wrap-up-form").reset();
    }
    if (status !== "wrap_up") {
      desk.wrapped = false;
    }
    if (status !== "on_call") {
      desk.onHold = false;
      desk.muted = false;
      desk.transfer = null;
    } else if (before !== "on_call") {
      loadColleagues(); // who is free to take the call now
    }
    render();
  }

  function mergeCall(context) {
    if (!context || !context.call_sid) {
      return;
    }
    if (!desk.call || desk.call.call_sid !== context.call_sid) {
      const now = performance.now();
      desk.call = { ...context };
      if (typeof context.waited_seconds === "number") {
        desk.waitedBase = context.waited_seconds;
      } else {
        const queued = Date.parse(context.queued_at);
        desk.waitedBase = Number.isNaN(queued) ? 0 : Math.max(0, (Date.now() - queued) / 1000);
      }
      desk.waitedAt = now;
      desk.waitStoppedAt = null;
      desk.talkStartedAt = null;
      desk.talkStoppedAt = null;
      desk.wrapped = false;
      desk.dialled = false;
      $("wrap-up-form").reset();
      fillCategories(context.product);
      $("wrap-category").value = themeCategory(context.theme);
    } else {
      const { waited_seconds: _ignored, ...rest } = context;
      Object.assign(desk.call, rest);
    }
  }

  function clearCall() {
    desk.call = null;
    desk.dialled = false;
    desk.onHold = false;
    desk.muted = false;
    desk.waitStoppedAt = null;
    desk.talkStartedAt = null;
    desk.talkStoppedAt = null;
  }

  // -- events -----------------------------------------------------------------------------

  function onEvent(name, data) {
    switch (name) {
      case "state": {
        const changed = data.status !== desk.status;
        setStatus(data.status);
        if (changed || (CALL_STATES.has(data.status) && !desk.call)) {
          refresh(); // the time of the change, and the call's context if it was missed
        }
        break;
      }
      case "offer":
        mergeCall(data);
        if (!CALL_STATES.has(desk.status)) {
          desk.status = "offered";
        }
        showError("");
        showNotice(
          `${isCallback(data) ? "Er wordt een terugbelverzoek" : "Er wordt een gesprek"} ` +
          `aangeboden: ${productName(data.product)}, ${themeName(data.theme)}.`
        );
        render();
        break;
      case "connected":
        mergeCall(data);
        showNotice("");
        setStatus("on_call");
        break;
      case "ended":
        onEnded(data);
        break;
      case "transfer": // a consult's target rings, answers, hangs up or does not answer
        onTransfer(data);
        break;
      case "resync": // the server lost events for a moment (its Redis connection came back)
        refresh();
        break;
      case "hold": // from this page or another tab of the same adviser
        desk.onHold = Boolean(data.hold);
        render();
        break;
      default:
        break;
    }
  }

  function onEnded(data) {
    const talked = desk.talkStartedAt !== null || desk.status === "on_call";
    const callback = isCallback(desk.call) || isCallback(data);
    if (desk.call && desk.call.call_sid === data.call_sid) {
      const { waited_seconds: _ignored, ...rest } = data;
      Object.assign(desk.call, rest);
    }
    if (data.reason === "completed" || (talked && data.reason === "caller hung up")) {
      showNotice(
        data.reason === "caller hung up"
          ? "De beller heeft opgehangen. Vul het nawerk in."
          : "Het gesprek is beëindigd. Vul het nawerk in."
      );
    } else if (callback && desk.dialled) {
      showNotice("De beller is niet bereikt. Het terugbelverzoek is afgesloten.");
    } else if (callback) {
      showNotice("Het terugbelverzoek is niet opgepakt en gaat terug naar de wachtrij.");
    } else if (data.reason === "caller hung up") {
      showNotice("De beller heeft opgehangen voordat het gesprek werd aangenomen.");
    } else {
      showNotice("Het gesprek is niet aangenomen en gaat terug naar de wachtrij.");
    }
    render();
  }

  function setConnected(connected) {
    const el = $("connection");
    el.dataset.connected = connected ? "true" : "false";
    el.textContent = connected ? "Verbonden" : "Verbinding herstellen...";
  }

  // Server-sent events over fetch (EventSource cannot send the Authorization header).
  async function runStream() {
    const controller = new AbortController();
    desk.stream = controller;
    const { signal } = controller;
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const response = await fetch(`/api/advisers/me/events?desk=${DESK_TAB}`, {
          headers: { Authorization: `Bearer ${desk.token}`, Accept: "text/event-stream" },
          cache: "no-store",
          signal,
        });
        if (response.status === 401) {
          expired();
          return;
        }
        if (!response.ok || !response.body) {
          throw new Error(`HTTP ${response.status}`);
        }
        attempt = 0;
        if (desk.phone) {
          reportPhone(desk.phone);
        }
        await window.KccStaff.readEvents(response.body, signal, (name, data) => {
          desk.events += 1;
          setConnected(true);
          onEvent(name, data);
        });
      } catch (err) {
        // the stream broke or never came: try again below
      }
      if (signal.aborted) {
        return;
      }
      setConnected(false);
      await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)], signal);
      attempt += 1;
      refresh(); // events may have been missed meanwhile
    }
  }

  // -- actions ----------------------------------------------------------------------------

  // Runs one action at a time; returns whether it worked (errors are shown).
  async function act(button, work) {
    if (desk.busy) {
      return false;
    }
    desk.busy = true;
    button.setAttribute("aria-busy", "true");
    showError("");
    render();
    try {
      await work();
      return true;
    } catch (err) {
      report(err);
      return false;
    } finally {
      desk.busy = false;
      button.removeAttribute("aria-busy");
      render();
    }
  }

  function focusIfShown(id) {
    const el = $(id);
    if (!el.disabled && el.offsetParent !== null) {
      el.focus();
    }
  }

  function command(event) {
    const button = event.currentTarget;
    act(button, async () => {
      showNotice("");
      applyView(
        await api("/api/advisers/me/status", {
          method: "POST",
          json: { status: button.dataset.command },
        })
      );
    });
  }

  async function answer() {
    const done = await act($("answer"), async () => {
      await api("/api/advisers/me/answer", { method: "POST" });
      showNotice("");
      await refresh();
    });
    if (done) {
      focusIfShown("hang-up");
    }
  }

  async function callBack() {
    const done = await act($("call-back"), async () => {
      await api("/api/advisers/me/callback", { method: "POST" });
      desk.dialled = true;
      showNotice(
        desk.config.simulated_telephony
          ? "De beller wordt gebeld. Demo: 'Opnemen' speelt dat de beller opneemt."
          : "De beller wordt gebeld. Je wordt doorverbonden zodra de beller opneemt."
      );
    });
    if (done) {
      focusIfShown("answer");
    }
  }

  async function hangUp() {
    const done = await act($("hang-up"), async () => {
      await api("/api/advisers/me/hang-up", { method: "POST" });
      await refresh();
    });
    if (done) {
      focusIfShown("wrap-category");
    }
  }

  function applyControls(controls) {
    desk.onHold = Boolean(controls.hold);
    desk.muted = Boolean(controls.mute);
  }

  async function toggleHold() {
    const hold = !desk.onHold;
    await act($("hold"), async () => {
      applyControls(
        await api("/api/advisers/me/call/hold", { method: "POST", json: { hold } })
      );
      showNotice(
        hold ? "De beller staat in de wacht en hoort wachtmuziek." : "De beller is weer verbonden."
      );
    });
  }

  async function toggleMute() {
    const mute = !desk.muted;
    await act($("mute"), async () => {
      applyControls(
        await api("/api/advisers/me/call/mute", { method: "POST", json: { mute } })
      );
      showNotice(mute ? "Je microfoon staat uit." : "Je microfoon staat weer aan.");
    });
  }

  function submitWrapUp(event) {
    event.preventDefault();
    const category = $("wrap-category").value;
    if (!category) {
      showError("Kies een categorie voor de vraag.");
      $("wrap-category").focus();
      return;
    }
    act($("wrap-submit"), async () => {
      await api("/api/advisers/me/wrap-up", {
        method: "POST",
        json: { category, note: $("wrap-note").value.trim() },
      });
      desk.wrapped = true;
      showNotice("Het nawerk is opgeslagen.");
    }).then((done) => {
      if (done) {
        focusIfShown("ready");
      }
    });
  }

  async function ready() {
    const done = await act($("ready"), async () => {
      applyView(
        await api("/api/advisers/me/status", { method: "POST", json: { status: "ready" } })
      );
      showNotice("");
    });
    if (done) {
      $("status-title").focus();
    }
  }

  // -- drawing ----------------------------------------------------------------------------

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) {
      el.textContent = text;
    }
  }

  function render() {
    const status = desk.status;
    setText("adviser-name", desk.name);
    const state = $("state");
    state.dataset.status = status;
    $("state-line").dataset.status = status;
    setText("state", stateName(status));
    setText("state-since", desk.since ? `Sinds ${formatTime(desk.since)}` : "");
    const busy = status === "offered" || status === "on_call";
    for (const button of document.querySelectorAll("[data-command]")) {
      const target = button.dataset.command;
      const current = status === target;
      button.setAttribute("aria-current", current ? "true" : "false");
      button.disabled =
        desk.busy || current || busy || (target === "available" && status === "wrap_up");
    }
    const waitingForDial = isCallback(desk.call) && !desk.dialled;
    $("answer").disabled = desk.busy || status !== "offered" || waitingForDial;
    $("hang-up").disabled = desk.busy || status !== "on_call";
    renderControls(status);

    const call = CALL_STATES.has(status) ? desk.call : null;
    $("call-card").hidden = !call;
    if (call) {
      renderCard(call, status);
    }
    $("idle").hidden = Boolean(call) || status === "wrap_up";
    setText(
      "idle-text",
      status === "available"
        ? "Je bent beschikbaar. Een gesprek verschijnt hier zodra het wordt aangeboden."
        : status === "break"
          ? "Je hebt pauze. Meld je beschikbaar om weer gesprekken te ontvangen."
          : status === "missed"
            ? "Je hebt een gesprek gemist. Meld je opnieuw beschikbaar."
            : status === "away"
              ? "Je was afwezig: je bureau of telefoon was niet verbonden. Je krijgt weer gesprekken zodra de verbinding terug is."
              : "Meld je beschikbaar om gesprekken te ontvangen."
    );
    $("wrap-up").hidden = status !== "wrap_up" || desk.wrapped;
    $("wrap-done").hidden = status !== "wrap_up" || !desk.wrapped;
    $("wrap-submit").disabled = desk.busy;
    renderTransferButtons();
    tick();
  }

  // Hold and mute work on the conversation's conference: with Twilio only, not in the demo.
  function renderControls(status) {
    const shown = status === "on_call" && !desk.config.simulated_telephony;
    $("call-controls").hidden = !shown;
    const hold = $("hold");
    const mute = $("mute");
    setText("hold", desk.onHold ? "Uit wacht" : "In wacht");
    setText("mute", desk.muted ? "Microfoon aan" : "Microfoon uit");
    hold.setAttribute("aria-pressed", desk.onHold ? "true" : "false");
    mute.setAttribute("aria-pressed", desk.muted ? "true" : "false");
    hold.disabled = desk.busy || !shown;
    mute.disabled = desk.busy || !shown;
    const parts = [desk.onHold ? "De beller staat in de wacht." : "De beller hoort je."];
    if (desk.muted) {
      parts.push("Je microfoon staat uit.");
    }
    setText("controls-state", parts.join(" "));
  }

  function renderCard(call, status) {
    const card = $("call-card");
    card.dataset.status = status;
    const callback = isCallback(call);
    let title = "Afgerond gesprek";
    if (status === "offered" && callback) {
      title = desk.dialled ? "Beller wordt teruggebeld" : "Terugbelverzoek wordt aangeboden";
    } else if (status === "offered") {
      title = "Gesprek wordt aangeboden";
    } else if (status === "on_call") {
      title = "In gesprek";
    }
    setText("card-title", title);
    $("callback").hidden = !(callback && status === "offered");
    setText(
      "callback-text",
      desk.dialled
        ? `Terugbelverzoek: ${call.caller || "de beller"} wordt gebeld.`
        : "Terugbelverzoek: de beller is niet aan de lijn. Bel de beller terug."
    );
    $("call-back").disabled = desk.busy || desk.dialled;
    // A transferred call: who sent it, and their note (only this adviser receives them).
    $("card-transferred").hidden = !call.transferred_by;
    setText("card-transferred-by", call.transferred_by ? `Doorverbonden door ${call.transferred_by}` : "");
    $("card-transfer-note").hidden = !call.transfer_note;
    setText("card-transfer-note", call.transfer_note ? `Notitie: ${call.transfer_note}` : "");
    setText("card-product", productName(call.product));
    setText("card-theme", themeName(call.theme));

    const badge = $("verification");
    const verified = call.verification === "verified";
    badge.dataset.verification = call.verification || "unverified";
    badge.replaceChildren();
    if (verified) {
      badge.textContent = "Geverifieerd";
    } else {
      badge.append("Niet geverifieerd - controleer identiteit");
      const detail = document.createElement("span");
      detail.className = "badge-detail";
      detail.textContent = ` (${VERIFICATION_DETAIL[call.verification] || call.verification})`;
      badge.append(detail);
    }

    const number = verified ? call.application_number || "" : "";
    $("row-application").hidden = !number;
    let application = number;
    if (number && call.application_product && call.application_product !== call.product) {
      application += ` (${productName(call.application_product)})`;
    }
    setText("card-application", application);
    const statusText = verified && call.application_status
      ? STATUSES[call.application_status] || call.application_status
      : "";
    $("row-status").hidden = !statusText;
    setText("card-status", statusText);
    const statusDate = verified ? formatDate(call.application_status_date) : "";
    $("row-status-date").hidden = !statusDate;
    setText("card-status-date", statusDate);
    $("row-unverified").hidden = verified;

    setText("card-caller", call.caller || "onbekend");
    setText("card-language", languageName(call.language));
    $("row-priority").hidden = !(call.priority > 0);
    setText("card-priority", call.priority > 0 ? "Ja" : "");
    $("row-talk").hidden = desk.talkStartedAt === null;

    const steps = (call.path || []).map(pathStep);
    const list = $("card-path");
    const key = JSON.stringify(steps);
    if (list.dataset.steps !== key) {
      list.dataset.steps = key;
      list.replaceChildren(
        ...(steps.length ? steps : ["Geen keuzes gemaakt"]).map((text) => {
          const item = document.createElement("li");
          item.textContent = text;
          return item;
        })
      );
    }
  }

  function tick() {
    if (!desk.call || $("call-card").hidden) {
      return;
    }
    const now = performance.now();
    const waitEnd = desk.waitStoppedAt === null ? now : desk.waitStoppedAt;
    setText("card-waited", formatDuration(desk.waitedBase + (waitEnd - desk.waitedAt) / 1000));
    if (desk.talkStartedAt !== null) {
      const talkEnd = desk.talkStoppedAt === null ? now : desk.talkStoppedAt;
      setText("card-talk", formatDuration((talkEnd - desk.talkStartedAt) / 1000));
    }
  }

  // -- the browser phone (phone.js) -------------------------------------------------------

  function startPhone() {
    if (window.KccPhone) {
      window.KccPhone.start({ api, panel: $("phone") });
    }
  }

  function stopPhone() {
    if (window.KccPhone) {
      window.KccPhone.stop();
    }
  }

  // -- start ------------------------------------------------------------------------------

  function init() {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    for (const button of document.querySelectorAll("[data-command]")) {
      button.addEventListener("click", command);
    }
    $("answer").addEventListener("click", answer);
    $("hang-up").addEventListener("click", hangUp);
    $("call-back").addEventListener("click", callBack);
    $("hold").addEventListener("click", toggleHold);
    $("mute").addEventListener("click", toggleMute);
    $("wrap-up-form").addEventListener("submit", submitWrapUp);
    $("ready").addEventListener("click", ready);
    $("transfer-form").addEventListener("submit", transfer);
    $("transfer-complete").addEventListener("click", completeTransfer);
    $("transfer-cancel").addEventListener("click", cancelTransfer);
    setInterval(tick, 500);

    window.KccStaff.resume(TOKEN_KEY, (token) => {
      desk.token = token;
      start();
    });
  }

  // The browser phone says whether it can ring: an unregistered phone is not reachable, and
  // after the grace period the adviser is away (POST /api/advisers/me/presence).
  async function reportPhone(state) {
    if (!PHONE_STATES.has(state)) {
      throw new Error(`unknown phone state: ${state}`);
    }
    desk.phone = state; // said again whenever the event stream (re)connects
    if (!desk.token) {
      return;
    }
    try {
      await fetch("/api/advisers/me/presence", {
        method: "POST",
        headers: { Authorization: `Bearer ${desk.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ desk: DESK_TAB, phone: state }),
      });
    } catch (err) {
      // offline: the stream's reconnection reports it again
    }
  }

  window.KccDesk = Object.freeze({ reportPhone, tab: DESK_TAB });
  window.KccStaff.whenReady(init);
})();
