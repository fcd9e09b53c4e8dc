// The supervisor page: a workspace of sections (Nu, Menu, Medewerkers, Sluitingen, Gesprekken,
// Flow-editor), one visible at a time and named in the URL's hash. This file: the sections, the
// live flow's steps, a draft editor checked as you type, publish and roll back, the calendar,
// the versions with diffs and the audit log. Medewerkers, Sluitingen and Menu are in
// supervisor_sections.js. Every message stands next to what caused it (messagesAt).
// Plain JavaScript, no build step, no external resources. The token lives in sessionStorage.
// What the staff pages share (messages, calls to the service, signing in) is in staff.js.
"use strict";

// The sections' own code registers here (supervisor_sections.js): { load(context), init(context) }.
window.KccSupervisor = window.KccSupervisor || { sections: {} };

(() => {
  const { $, ApiError, showError, showNotice, clearMessages, translate, languageName, dutchTime } =
    window.KccStaff;
  const { describe } = window.KccProblems; // the problems of a draft in Dutch (draft_problems_nl.js)
  const TOKEN_KEY = "kcc.supervisor.token";
  const DRAFT_KEY = "kcc.supervisor.draft";
  const CHECK_DELAY_MS = 400; // typing pauses this long before the draft is checked
  const ADVISERS_REFRESH_MS = 2000; // the adviser list follows their states this closely

  // An adviser's state (routing's AdviserState) as the contact centre names it.
  const ADVISER_STATES = {
    offline: "Afgemeld",
    available: "Beschikbaar",
    offered: "Gesprek wordt aangeboden",
    on_call: "In gesprek",
    wrap_up: "Nawerk",
    break: "Pauze",
    missed: "Gemist",
    away: "Afwezig",
  };

  const KINDS = {
    say: "Mededeling",
    menu: "Keuzemenu",
    gather: "Cijfers invoeren",
    verify: "Identiteitscontrole",
    status: "Status aanvraag",
    hours: "Openingstijden",
    queue: "Wachtrij",
    hangup: "Ophangen",
    goto: "Doorsturen",
  };
  const PROMPT_FIELDS = {
    prompt: "Tekst",
    no_input: "Geen toets gekozen",
    invalid: "Verkeerde toets",
  };
  const OUTCOMES = {
    next: "daarna",
    open: "open",
    closed: "gesloten",
    on_fail: "te vaak fout of geen keuze",
    verified: "geverifieerd",
    unverified: "niet geverifieerd",
    adviser: "adviseur gevraagd",
    goodbye: "afsluiten",
  };
  const ACTIONS = { publish: "Gepubliceerd", rollback: "Teruggezet" };

  // A change that reached the database but not Redis is live; the servers re-sync within 10 s.
  function notAnnounced(version) {
    return version.announced === false
      ? " Redis was niet bereikbaar: alle servers nemen deze versie binnen 10 seconden over."
      : "";
  }
  const WEEKDAYS = ["zondag", "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag"];
  // The service's refusal codes in Dutch (api/web/errors.py; staff.js has the common ones).
  const MESSAGES = {
    already_live: (p) => `Versie ${p.version} is al live. Er is niets veranderd.`,
    text_already_live: (p) => `Deze tekst is al live (versie ${p.version}). Er is niets veranderd.`,
    unknown_version: (p) => `Versie ${p.version} bestaat niet.`,
    concurrent_change: () =>
      "Iemand anders wijzigde de flow op hetzelfde moment. Laad de live versie en probeer het opnieuw.",
    role_required: () => "Dit account is geen supervisoraccount.",
  };
  // Monitoring a conversation (routing/monitoring.py) in Dutch.
  const MONITOR_MODES = { listen: "Meeluisteren", whisper: "Fluisteren", barge: "Inbreken" };
  const MONITOR_STATES = {
    ringing: "Je telefoon gaat over…",
    active: { listen: "Je luistert mee.", whisper: "Je fluistert.", barge: "Je bent ingebroken." },
  };
  const MONITOR_ENDS = {
    left: "Je bent gestopt.",
    hung_up: "Je telefoon heeft opgehangen.",
    call_ended: "Het gesprek is beëindigd.",
    "no-answer": "Je telefoon nam niet op. Is hij aangemeld?",
    busy: "Je telefoon was in gesprek.",
    failed: "Je telefoon kon niet gebeld worden.",
    canceled: "De oproep naar je telefoon is afgebroken.",
  };
  Object.assign(MESSAGES, {
    call_unknown: () => "Dit gesprek loopt niet (meer).",
    call_ended: () => "Het gesprek is beëindigd terwijl je telefoon werd gebeld.",
    not_monitoring: () => "Je luistert niet mee met dit gesprek.",
    monitor_not_ready: () => "Je telefoon wordt nog gebeld. Probeer het zo opnieuw.",
    monitor_failed: () => "Je telefoon kon niet in het gesprek worden gezet. Probeer het opnieuw.",
    range_invalid: () => "De eindtijd moet na de begintijd liggen.",
  });
  const NOT_A_SUPERVISOR =
    "Dit account is geen supervisoraccount. Deze pagina is alleen voor supervisors.";
  const SECTIONS = ["now", "menu", "medewerkers", "sluitingen", "gesprekken", "flow-editor"];
  const FIRST_SECTION = "now";

  const page = {
    token: null,
    name: "",
    live: null, // the live version's number
    versions: [], // newest first
    draftBase: null, // the text last loaded or published: the draft is unchanged while equal
    replaceArmed: false, // "Laad live versie" pressed once over unsaved changes
    check: { seq: 0, text: null, ok: false, pending: false, problems: [], warnings: [] },
    checkTimer: null,
    lineCount: 0,
    busy: false,
    rollbackTo: null,
    rollbackButton: null,
    labels: null, // GET /api/config?lang=nl: the flow's product and theme names
    advisersTimer: null,
    section: null, // the section shown
    stopNow: null, // stops the "Nu" section's wallboard stream (wallboard_view.js)
  };

  // -- helpers ----------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (name === "className") {
        node.className = value;
      } else if (name === "dataset") {
        Object.assign(node.dataset, value);
      } else {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child);
      }
    }
    return node;
  }

  // Times as the contact centre reads them: Dutch time, dd-mm-jjjj hh:mm. The service may send
  // a time without an offset (SQLite keeps none): it is UTC.
  function formatTime(value) {
    if (!value) {
      return "";
    }
    let text = String(value);
    if (/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) {
      text += "Z";
    }
    const when = new Date(text);
    return Number.isNaN(when.getTime()) ? String(value) : dutchTime(when);
  }

  function parseDay(value) {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value));
    if (!match) {
      return null;
    }
    return {
      text: `${match[3]}-${match[2]}-${match[1]}`,
      weekday: new Date(Date.UTC(+match[1], +match[2] - 1, +match[3])).getUTCDay(),
    };
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  // -- messages where the eye is -------------------------------------------------------------

  // Puts the (one) message area right after `node`: the button or heading of the action that
  // speaks. Signed out it stands above the sign-in form.
  function messagesAt(node) {
    const box = $("messages");
    if (node && node.parentNode && box.previousElementSibling !== node) {
      node.after(box);
    }
  }

  function messagesHome() {
    $("main").prepend($("messages"));
  }

  // -- the sections -------------------------------------------------------------------------

  function sectionFromHash() {
    const name = decodeURIComponent(window.location.hash.replace(/^#/, ""));
    return SECTIONS.includes(name) ? name : null;
  }

  function showSection(name, { focus = false } = {}) {
    const changed = page.section !== name;
    page.section = name;
    for (const section of document.querySelectorAll("[data-section]")) {
      section.hidden = section.dataset.section !== name;
    }
    for (const link of document.querySelectorAll("#sections-nav [data-nav]")) {
      if (link.dataset.nav === name) {
        link.setAttribute("aria-current", "page");
      } else {
        link.removeAttribute("aria-current");
      }
    }
    const section = document.querySelector(`[data-section="${name}"]`);
    if (changed) {
      clearMessages();
      const heading = section && section.querySelector("h1, h2");
      messagesAt(heading || section);
      const loader = window.KccSupervisor.sections[name];
      if (loader && page.token) {
        loader.load(context).catch(report);
      }
    }
    if (focus && section) {
      const heading = section.querySelector("h1[tabindex], h2[tabindex]");
      if (heading) {
        heading.focus();
      }
    }
    window.scrollTo(0, 0);
  }

  function onHashChange() {
    if (page.token) {
      showSection(sectionFromHash() || FIRST_SECTION, { focus: true });
    }
  }

  // -- the service ------------------------------------------------------------------------

  // A session that ends (a 401, or a 403: not a supervisor) keeps the draft in the editor (and
  // in sessionStorage) for after signing in again.
  const { api, report, signIn: staffSignIn } = window.KccStaff.connect({
    token: () => page.token,
    stop: stopSession,
    messages: MESSAGES,
    forbidden: NOT_A_SUPERVISOR,
    logFaults: true,
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
        page.token = token.access_token;
        return true;
      },
      start: () => start(true),
    });
  }

  function stopSession() {
    stopPhone();
    if (page.stopNow) {
      page.stopNow();
      page.stopNow = null;
    }
    page.token = null;
    page.section = null;
    messagesHome();
    sessionStorage.removeItem(TOKEN_KEY);
    page.rollbackTo = null;
    $("rollback-confirm").hidden = true;
    $("tools").hidden = true;
    $("session").hidden = true;
    $("sections-nav").hidden = true;
    $("login").hidden = false;
  }

  function signOut() {
    clearMessages();
    window.KccStaff.revokeToken(page.token);
    stopSession();
    sessionStorage.removeItem(DRAFT_KEY);
    setDraft("", null);
    showNotice("Je bent uitgelogd.");
    $("username").focus();
  }

  // fresh: just signed in with the form (not a token found in sessionStorage)
  async function start(fresh) {
    let me;
    try {
      me = await api("/api/me");
    } catch (err) {
      report(err);
      return;
    }
    if (me.role !== "supervisor") {
      page.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      $("login").hidden = false;
      $("tools").hidden = true;
      showError(NOT_A_SUPERVISOR);
      $("username").focus();
      return;
    }
    page.name = me.name;
    sessionStorage.setItem(TOKEN_KEY, page.token);
    $("user-name").textContent = me.name;
    $("login").hidden = true;
    $("tools").hidden = false;
    $("session").hidden = false;
    $("sections-nav").hidden = false;
    startPhone();
    page.stopNow = window.KccWallboard.startNow({ element: $("now"), token: page.token, api });
    const saved = sessionStorage.getItem(DRAFT_KEY);
    if (saved && !$("draft").value) {
      setDraft(saved, null);
    }
    renderPublish();
    const wanted = sectionFromHash() || FIRST_SECTION;
    if (!sectionFromHash()) {
      history.replaceState(null, "", `#${wanted}`);
    }
    showSection(wanted, { focus: true });
    if (fresh) {
      showNotice("");
    }
    await refreshAll();
  }

  // -- the browser phone (phone.js): the same phone as the desk, for monitoring later ------

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

  // -- loading everything -----------------------------------------------------------------

  async function refreshAll() {
    const results = await Promise.allSettled([
      loadAdvisers(),
      loadVersions(),
      loadTree(),
      loadCalendar(),
      loadAudit(),
    ]);
    const failed = results.find((r) => r.status === "rejected");
    if (failed && page.token) {
      report(failed.reason);
    }
    const loader = window.KccSupervisor.sections[page.section];
    if (loader && page.token) {
      await loader.load(context).catch(report);
    }
  }

  async function loadVersions() {
    const answer = await api("/api/flows");
    page.live = answer.live;
    page.versions = answer.versions;
    renderHistory();
    const live = page.versions.find((v) => v.live);
    $("live-version").textContent = `versie ${answer.live}`;
    $("live-since").textContent = live
      ? `(${live.author}, ${formatTime(live.created_at)}${live.comment ? `: ${live.comment}` : ""})`
      : "";
  }

  async function loadTree() {
    const tree = $("tree");
    tree.setAttribute("aria-busy", "true");
    try {
      renderTree(await api("/api/flows/tree"));
    } finally {
      tree.setAttribute("aria-busy", "false");
    }
  }

  // The product and theme names of the live flow (GET /api/config), for the adviser list.
  async function loadLabels() {
    if (!page.labels) {
      page.labels = await api("/api/config?lang=nl");
    }
    return page.labels;
  }

  async function loadAdvisers() {
    const [labels, advisers, calls] = await Promise.all([
      loadLabels(),
      api("/api/advisers"),
      api("/api/calls"),
    ]);
    renderAdvisers(advisers, labels);
    renderCalls(calls, labels);
    if (!page.advisersTimer) {
      page.advisersTimer = setInterval(() => {
        if (page.token) {
          loadAdvisers().catch(() => {}); // the next round tries again
        }
      }, ADVISERS_REFRESH_MS);
    }
  }

  function renderAdvisers(advisers, labels) {
    const named = (names, key) => (Object.hasOwn(names, key) ? names[key] : key);
    const rows = advisers.map((adviser) =>
      el(
        "tr",
        { dataset: { adviser: adviser.name, status: adviser.status } },
        el("td", { className: "name" }, adviser.name),
        el("td", { className: "status" }, ADVISER_STATES[adviser.status] || adviser.status),
        el("td", {}, formatTime(adviser.since)),
        el(
          "td",
          { className: "call" },
          adviser.call
            ? `${named(labels.products, adviser.call.product)}: ${named(labels.themes, adviser.call.theme)}`
            : "-"
        )
      )
    );
    $("advisers-body").replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4 }, "Nog geen adviseurs."))])
    );
  }

  // -- the conversations now: listen in, whisper, barge in, stop ----------------------------

  function myMonitor(call) {
    const mine = call.mine;
    if (!mine) {
      return "-";
    }
    if (mine.state === "ringing") {
      return MONITOR_STATES.ringing;
    }
    if (mine.state === "active") {
      return MONITOR_STATES.active[mine.mode];
    }
    return MONITOR_ENDS[mine.reason] || "Gestopt.";
  }

  function renderCalls(calls, labels) {
    const named = (names, key) => (Object.hasOwn(names, key) ? names[key] : key);
    const rows = calls.map((call) => {
      const live = call.mine && (call.mine.state === "ringing" || call.mine.state === "active");
      const buttons = Object.entries(MONITOR_MODES).map(([mode, label]) =>
        el(
          "button",
          {
            type: "button",
            className: "button",
            "aria-pressed": live && call.mine.mode === mode ? "true" : "false",
            disabled: !call.monitorable,
            dataset: { mode },
          },
          label
        )
      );
      buttons.forEach((button) =>
        button.addEventListener("click", () => monitorCall(call.call_sid, button.dataset.mode))
      );
      const stop = el("button", { type: "button", className: "button", disabled: !live }, "Stoppen");
      stop.addEventListener("click", () => stopMonitoring(call.call_sid));
      const others = call.monitors
        .map((m) => `${m.supervisor} (${MONITOR_MODES[m.mode].toLowerCase()})`)
        .join(", ");
      return el(
        "tr",
        { dataset: { call: call.call_sid, adviser: call.adviser } },
        el("td", { className: "name" }, call.adviser),
        el("td", {}, `${named(labels.products, call.product)}: ${named(labels.themes, call.theme)}`),
        el("td", {}, languageName(call.language)),
        el("td", {}, formatTime(call.since)),
        el("td", {}, call.on_hold ? "In de wacht" : "-"),
        el("td", { className: "monitors" }, others || "-"),
        el("td", { className: "mine", dataset: { testid: "my-monitor" } }, myMonitor(call)),
        el(
          "td",
          { className: "buttons" },
          ...buttons,
          stop,
          call.monitorable ? null : el("span", { className: "hint" }, "Alleen met Twilio.")
        )
      );
    });
    $("calls-body").replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8 }, "Er lopen geen gesprekken."))])
    );
  }

  async function monitorCall(callSid, mode) {
    messagesAt($("calls-title"));
    clearMessages();
    try {
      await api(`/api/calls/${encodeURIComponent(callSid)}/monitor`, {
        method: "POST",
        json: { mode },
      });
    } catch (err) {
      report(err);
    }
    await loadAdvisers().catch(() => {});
  }

  async function stopMonitoring(callSid) {
    messagesAt($("calls-title"));
    clearMessages();
    try {
      await api(`/api/calls/${encodeURIComponent(callSid)}/monitor`, { method: "DELETE" });
    } catch (err) {
      report(err);
    }
    await loadAdvisers().catch(() => {});
  }

  async function loadCalendar() {
    renderCalendar(await api("/api/flows/calendar"));
  }

  async function loadAudit() {
    renderAudit(await api("/api/flows/audit"));
  }

  // -- (a) the live flow as a tree ----------------------------------------------------------

  function edgeLabel(on) {
    if (/^[0-9*#]$/.test(on)) {
      return `toets ${on}`;
    }
    return OUTCOMES[on] || on;
  }

  function renderTree(tree) {
    const languages = tree.languages || [];
    const nodes = tree.nodes.map((node) => {
      const head = el(
        "div",
        { className: "node-head" },
        el("h3", {}, node.id),
        el("span", { className: "kind" }, KINDS[node.kind] || node.kind),
        node.id === tree.start ? el("span", { className: "node-note" }, "begin van elk gesprek") : null,
        node.queue ? el("span", { className: "node-note" }, `wachtrij ${node.queue}`) : null,
        node.reachable ? null : el("span", { className: "node-note" }, "geen beller komt hier")
      );
      const prompts = node.prompts.length
        ? el(
            "dl",
            { className: "prompts" },
            ...node.prompts.map((prompt) =>
              el(
                "div",
                { className: "prompt", dataset: { prompt: prompt.id } },
                el("dt", {}, `${PROMPT_FIELDS[prompt.field] || prompt.field} (${prompt.id})`),
                ...languages
                  .filter((lang) => prompt.texts[lang] !== undefined)
                  .map((lang) =>
                    el(
                      "dd",
                      { lang, dataset: { lang } },
                      el("span", { className: "lang" }, el("abbr", { title: languageName(lang) }, lang)),
                      el("span", { className: "text" }, prompt.texts[lang] || "(leeg)")
                    )
                  )
              )
            )
          )
        : null;
      const edges = node.edges.length
        ? el(
            "ul",
            { className: "edges", "aria-label": `Vervolg van ${node.id}` },
            ...node.edges.map((edge) =>
              el(
                "li",
                {},
                el("span", { className: "edge-on" }, edgeLabel(edge.on)),
                " ",
                el("span", { "aria-hidden": "true" }, "\u2192"),
                el("span", { className: "visually-hidden" }, "naar"),
                " ",
                el("a", { href: `#node-${edge.to}` }, edge.to)
              )
            )
          )
        : null;
      return el(
        "article",
        {
          className: "node",
          id: `node-${node.id}`,
          dataset: { kind: node.kind, reachable: String(node.reachable), node: node.id },
          "aria-label": `${node.id}: ${KINDS[node.kind] || node.kind}`,
        },
        head,
        prompts,
        edges
      );
    });
    $("tree").replaceChildren(...nodes);
  }

  // -- (b) the draft editor -------------------------------------------------------------------

  function setDraft(text, base) {
    $("draft").value = text;
    page.draftBase = base;
    page.replaceArmed = false;
    updateGutter();
    $("draft").scrollTop = 0;
    $("gutter").scrollTop = 0;
    if (text) {
      scheduleCheck(0);
    } else {
      clearTimeout(page.checkTimer);
      page.check = { seq: page.check.seq + 1, text: null, ok: false, pending: false, problems: [], warnings: [] };
      renderCheck();
    }
  }

  async function loadLive() {
    messagesAt($("load-live").parentElement);
    clearMessages();
    const text = $("draft").value;
    if (text && text !== page.draftBase && !page.replaceArmed) {
      page.replaceArmed = true;
      showNotice(
        "Je concept heeft wijzigingen die niet gepubliceerd zijn. Klik nogmaals op " +
          "'Laad live versie' om ze te vervangen door de live versie."
      );
      return;
    }
    const button = $("load-live");
    button.disabled = true;
    try {
      if (page.live === null) {
        await loadVersions();
      }
      const version = await api(`/api/flows/versions/${page.live}`);
      setDraft(version.text, version.text);
      sessionStorage.removeItem(DRAFT_KEY);
      showNotice(`Versie ${version.number} (live) staat in de editor.`);
      $("draft").focus();
      $("draft").setSelectionRange(0, 0);
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
    }
  }

  function onDraftInput() {
    page.replaceArmed = false;
    updateGutter();
    const text = $("draft").value;
    if (text && text !== page.draftBase) {
      sessionStorage.setItem(DRAFT_KEY, text);
    } else {
      sessionStorage.removeItem(DRAFT_KEY);
    }
    scheduleCheck(CHECK_DELAY_MS);
  }

  function scheduleCheck(delay) {
    clearTimeout(page.checkTimer);
    page.check.pending = true;
    renderCheck();
    page.checkTimer = setTimeout(runCheck, delay);
  }

  async function runCheck() {
    const text = $("draft").value;
    const seq = page.check.seq + 1;
    page.check.seq = seq;
    if (!text.trim()) {
      page.check = { seq, text, ok: false, pending: false, problems: [], warnings: [] };
      renderCheck();
      return;
    }
    let answer;
    try {
      answer = await api("/api/flows/validate", { method: "POST", json: { text } });
    } catch (err) {
      if (seq !== page.check.seq) {
        return;
      }
      page.check = { seq, text, ok: false, pending: false, problems: [], warnings: [], failed: true };
      renderCheck();
      if (err instanceof ApiError && err.status === 422) {
        page.check.tooBig = true;
        renderCheck();
      } else {
        report(err);
      }
      return;
    }
    if (seq !== page.check.seq || text !== $("draft").value) {
      return; // the supervisor typed on: a newer check is on its way
    }
    page.check = {
      seq,
      text,
      ok: answer.ok,
      pending: false,
      problems: answer.problems,
      warnings: answer.warnings,
    };
    renderCheck();
  }

  // A problem or warning in Dutch, from its code and params (never its English message).
  function problemItem(problem) {
    const button = el(
      "button",
      { type: "button", className: "problem", dataset: { line: problem.line, code: problem.code } },
      el("span", { className: "problem-line" }, `regel ${problem.line}`),
      `: ${describe(problem)}`
    );
    button.addEventListener("click", () => goToLine(problem.line));
    return el("li", {}, button);
  }

  function renderCheck() {
    const check = page.check;
    const summary = $("validation-summary");
    const text = $("draft").value;
    let state;
    let message;
    if (!text.trim()) {
      state = "empty";
      message = "Nog geen concept. Laad de live versie om te beginnen.";
    } else if (check.pending) {
      state = "pending";
      message = "Bezig met controleren...";
    } else if (check.tooBig) {
      state = "failed";
      message = "Het concept is te groot om te controleren (maximaal 512 kB).";
    } else if (check.failed) {
      state = "failed";
      message = "Controleren lukte niet. Typ verder of laad de live versie opnieuw.";
    } else if (check.problems.length) {
      state = "problems";
      const [first] = check.problems;
      message =
        `${plural(check.problems.length, "fout", "fouten")} gevonden, de eerste op regel ` +
        `${first.line}. Klik op een fout om naar die regel te gaan.`;
    } else {
      state = "ok";
      message = "Geen fouten gevonden.";
      if (text === page.draftBase && page.draftBase !== null) {
        message += " Het concept is nog ongewijzigd.";
      }
    }
    if (!check.pending && check.warnings.length && (state === "ok" || state === "problems")) {
      message += ` ${plural(check.warnings.length, "waarschuwing", "waarschuwingen")}.`;
    }
    summary.dataset.state = state;
    summary.textContent = message;
    $("validation").setAttribute("aria-busy", check.pending ? "true" : "false");

    if (!check.pending) {
      // While a check is pending the last results stay (dimmed), so the list does not flicker.
      $("problems").replaceChildren(...check.problems.map(problemItem));
      $("warnings").replaceChildren(...check.warnings.map(problemItem));
      $("warnings-block").hidden = !check.warnings.length;
      markGutter();
    }
    renderPublish();
  }

  function renderPublish() {
    const check = page.check;
    const text = $("draft").value;
    const ready = Boolean(text.trim()) && !check.pending && check.text === text && check.ok;
    $("publish").disabled = page.busy || !ready;
  }

  function updateGutter() {
    const text = $("draft").value;
    const count = text ? text.split("\n").length : 1;
    if (count === page.lineCount) {
      return;
    }
    const gutter = $("gutter");
    if (count > page.lineCount) {
      const rows = [];
      for (let n = page.lineCount + 1; n <= count; n += 1) {
        rows.push(el("div", { dataset: { line: n } }, String(n)));
      }
      gutter.append(...rows);
    } else {
      while (gutter.childElementCount > count) {
        gutter.lastElementChild.remove();
      }
    }
    page.lineCount = count;
    markGutter();
    syncGutter();
  }

  function markGutter() {
    const errors = new Set(page.check.problems.map((p) => p.line));
    const warnings = new Set(page.check.warnings.map((p) => p.line));
    const rows = $("gutter").children;
    for (let i = 0; i < rows.length; i += 1) {
      const line = i + 1;
      rows[i].classList.toggle("line-error", errors.has(line));
      rows[i].classList.toggle("line-warning", !errors.has(line) && warnings.has(line));
    }
  }

  function syncGutter() {
    $("gutter").scrollTop = $("draft").scrollTop;
  }

  // Selects line `line` (1-based) in the editor and scrolls it into view.
  function goToLine(line) {
    const area = $("draft");
    const lines = area.value.split("\n");
    const index = Math.min(Math.max(line, 1), lines.length) - 1;
    let start = 0;
    for (let i = 0; i < index; i += 1) {
      start += lines[i].length + 1;
    }
    const end = start + lines[index].length;
    area.focus();
    area.setSelectionRange(start, end);
    const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
    area.scrollTop = Math.max(0, index * lineHeight - area.clientHeight / 3);
    syncGutter();
  }

  async function publish(event) {
    event.preventDefault();
    if ($("publish").disabled) {
      return;
    }
    messagesAt($("publish"));
    const comment = $("publish-comment").value.trim();
    if (!comment) {
      showError("Vul in wat er veranderd is en waarom: dat komt in het logboek.");
      $("publish-comment").focus();
      return;
    }
    const text = $("draft").value;
    clearMessages();
    page.busy = true;
    renderPublish();
    $("publish").setAttribute("aria-busy", "true");
    try {
      const version = await api("/api/flows/publish", { method: "POST", json: { text, comment } });
      page.draftBase = text;
      sessionStorage.removeItem(DRAFT_KEY);
      $("publish-comment").value = "";
      renderCheck();
      await refreshAll();
      showNotice(`Gepubliceerd: versie ${version.number} is live.` + notAnnounced(version));
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && err.problems) {
        page.check = {
          seq: page.check.seq + 1,
          text,
          ok: false,
          pending: false,
          problems: err.problems,
          warnings: [],
        };
        renderCheck();
        showError(
          `Niet gepubliceerd: het concept heeft ${plural(err.problems.length, "fout", "fouten")}. Er is niets veranderd.`
        );
      } else if (err instanceof ApiError && err.status === 409) {
        showError(`Niet gepubliceerd. ${translate(err, MESSAGES)}`);
      } else {
        report(err);
      }
    } finally {
      page.busy = false;
      $("publish").removeAttribute("aria-busy");
      renderPublish();
    }
  }

  // -- (c) the calendar ---------------------------------------------------------------------

  function renderCalendar(days) {
    const rows = days.map((day) => {
      const parsed = parseDay(day.date);
      const weekday = parsed ? WEEKDAYS[parsed.weekday] : "";
      let reason = day.reason || "";
      if (!reason && !day.open) {
        reason = `Geen openingstijden op ${weekday || "deze dag"}`;
      }
      return el(
        "tr",
        { dataset: { date: day.date, open: String(day.open) } },
        el("td", {}, parsed ? parsed.text : day.date),
        el("td", {}, weekday),
        el("td", { className: "open-cell" }, day.open ? "Open" : "Gesloten"),
        el("td", {}, day.hours ? day.hours.replace("-", " - ") : "-"),
        el("td", {}, reason)
      );
    });
    $("calendar-body").replaceChildren(...rows);
  }

  // -- (d) versions, diffs and rollback -----------------------------------------------------

  function renderHistory() {
    const rows = page.versions.map((version) => {
      const actions = el("div", { className: "buttons" });
      if (version.live) {
        actions.append(el("span", { className: "hint" }, "Dit is de live versie"));
      } else {
        const diff = el(
          "button",
          { type: "button", className: "button", "aria-label": `Diff met live: versie ${version.number}` },
          "Diff met live"
        );
        diff.addEventListener("click", () => showDiff(version.number));
        const back = el(
          "button",
          { type: "button", className: "button", "aria-label": `Terugzetten: versie ${version.number}` },
          "Terugzetten"
        );
        back.addEventListener("click", () => askRollback(version, back));
        actions.append(diff, back);
      }
      return el(
        "tr",
        { dataset: { version: version.number, live: String(version.live) } },
        el(
          "th",
          { scope: "row" },
          `Versie ${version.number}`,
          version.live ? el("span", { className: "live-badge" }, "live") : null
        ),
        el("td", {}, formatTime(version.created_at)),
        el("td", {}, version.author),
        el("td", {}, version.comment || "-"),
        el("td", {}, actions)
      );
    });
    $("history-body").replaceChildren(...rows);
  }

  async function showDiff(number) {
    messagesAt($("history-title"));
    clearMessages();
    try {
      const answer = await api(`/api/flows/diff?a=${encodeURIComponent(number)}`);
      const lines = answer.diff ? answer.diff.replace(/\n$/, "").split("\n") : [];
      const spans = lines.map((line) => {
        let cls = "";
        if (line.startsWith("+++") || line.startsWith("---")) {
          cls = "diff-file";
        } else if (line.startsWith("@@")) {
          cls = "diff-hunk";
        } else if (line.startsWith("+")) {
          cls = "diff-add";
        } else if (line.startsWith("-")) {
          cls = "diff-del";
        }
        return el("span", { className: cls || null }, line || " ");
      });
      $("diff").replaceChildren(...(spans.length ? spans : [el("span", {}, "Geen verschillen.")]));
      const title = $("diff-title");
      title.textContent = `Verschil van versie ${answer.a} naar versie ${answer.b} (live)`;
      $("diff-block").hidden = false;
      title.focus();
      title.scrollIntoView({ block: "start" });
    } catch (err) {
      report(err);
    }
  }

  function askRollback(version, button) {
    messagesAt($("history-title"));
    clearMessages();
    page.rollbackTo = version.number;
    page.rollbackButton = button;
    $("rollback-title").textContent = `Versie ${version.number} terugzetten`;
    $("rollback-text").textContent =
      `Versie ${version.number} (${formatTime(version.created_at)}, ${version.author}) wordt ` +
      `weer live voor nieuwe bellers, in plaats van versie ${page.live}. Gesprekken die al ` +
      "lopen houden hun versie. Versie " +
      `${page.live} blijft bewaard en kan later weer teruggezet worden.`;
    $("rollback-yes").textContent = `Ja, zet versie ${version.number} terug`;
    $("rollback-comment").value = "";
    $("rollback-confirm").hidden = false;
    $("rollback-title").focus();
  }

  function cancelRollback() {
    $("rollback-confirm").hidden = true;
    const button = page.rollbackButton;
    page.rollbackTo = null;
    page.rollbackButton = null;
    if (button && button.isConnected) {
      button.focus();
    }
  }

  async function rollback(event) {
    event.preventDefault();
    const number = page.rollbackTo;
    if (number === null || page.busy) {
      return;
    }
    messagesAt($("history-title"));
    clearMessages();
    page.busy = true;
    const yes = $("rollback-yes");
    yes.disabled = true;
    try {
      const version = await api("/api/flows/rollback", {
        method: "POST",
        json: { version: number, comment: $("rollback-comment").value.trim() },
      });
      $("rollback-confirm").hidden = true;
      page.rollbackTo = null;
      page.rollbackButton = null;
      $("diff-block").hidden = true;
      await refreshAll();
      showNotice(`Teruggezet: versie ${version.number} is weer live.` + notAnnounced(version));
      $("history-title").focus();
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && err.problems) {
        const problems = err.problems
          .map((p) => `regel ${p.line}: ${describe(p)}`)
          .join("; ");
        showError(`Niet teruggezet: versie ${number} is niet meer geldig (${problems}).`);
      } else {
        report(err);
      }
    } finally {
      page.busy = false;
      yes.disabled = false;
      renderPublish();
    }
  }

  // -- the audit log ------------------------------------------------------------------------

  function renderAudit(entries) {
    const rows = entries.map((entry) =>
      el(
        "tr",
        { dataset: { action: entry.action } },
        el("td", {}, formatTime(entry.at)),
        el("td", { className: "actor" }, entry.actor),
        el("td", { className: "action" }, ACTIONS[entry.action] || entry.action),
        el("td", {}, entry.from_version === null ? "-" : `versie ${entry.from_version}`),
        el("td", {}, `versie ${entry.to_version}`),
        el("td", {}, entry.comment || "-")
      )
    );
    $("audit-body").replaceChildren(...rows);
  }

  // -- what supervisor_sections.js uses ------------------------------------------------------

  const context = {
    api,
    report,
    el,
    formatTime,
    parseDay,
    plural,
    messagesAt,
    notAnnounced,
    loadLabels,
    refreshAll,
    weekdays: WEEKDAYS,
    messages: MESSAGES,
    me: () => page.name,
  };
  window.KccSupervisor.context = context;

  // -- start --------------------------------------------------------------------------------

  function init() {
    window.addEventListener("hashchange", onHashChange);
    for (const [name, section] of Object.entries(window.KccSupervisor.sections)) {
      if (section.init) {
        section.init(context, name);
      }
    }
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("load-live").addEventListener("click", loadLive);
    const draft = $("draft");
    draft.addEventListener("input", onDraftInput);
    draft.addEventListener("scroll", syncGutter);
    $("publish-form").addEventListener("submit", publish);
    $("rollback-form").addEventListener("submit", rollback);
    $("rollback-no").addEventListener("click", cancelRollback);
    updateGutter();
    renderCheck();

    window.KccStaff.resume(TOKEN_KEY, (token) => {
      page.token = token;
      start(false);
    });
  }

  window.KccStaff.whenReady(init);
})();
