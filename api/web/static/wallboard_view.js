// The wallboard's view, shared by the room's screen (/wallboard) and the supervisor page's "Nu":
// - renderWallboard(element, snapshot, config) draws a snapshot of GET /api/wallboard (or of
//   its event stream) into `element`; `config` is GET /api/config when the page may read it
//   (its product labels win), else null (the labels in the snapshot are used).
// - follow({ token, onSnapshot, onConnection, onExpired, onForbidden }) follows the event
//   stream /api/wallboard/events and connects again when it drops; returns stop().
// Plain JavaScript, no build step, no external resources. Styles: wallboard.css.
"use strict";

window.KccWallboard = (() => {
  // The advisers' states (routing's AdviserState), in the order the board shows them.
  const ADVISER_STATES = [
    ["available", "Beschikbaar"],
    ["offered", "Gaat over"],
    ["on_call", "In gesprek"],
    ["wrap_up", "Nawerk"],
    ["break", "Pauze"],
    ["missed", "Gemist"],
    ["away", "Afwezig"],
  ];
  const STATE_NAMES = Object.fromEntries([...ADVISER_STATES, ["offline", "Afgemeld"]]);
  const BACKOFF_MS = [1000, 2000, 5000]; // between attempts to reconnect the stream

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") {
        Object.assign(node.dataset, value);
      } else {
        node[key] = value;
      }
    }
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }

  // 75 -> "1:15"; 3700 -> "1:01:40"
  function duration(seconds) {
    const total = Math.max(0, Math.round(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function percent(share) {
    return share === null || share === undefined ? "-" : `${Math.round(share * 100)}%`;
  }

  const CLOCK = new Intl.DateTimeFormat("nl-NL", {
    timeZone: "Europe/Amsterdam",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });

  // A figure: a big number with what it is under it.
  function tile(id, label, value, extra = {}) {
    return el(
      "div",
      { className: `wb-tile ${extra.className || ""}`.trim(), dataset: { figure: id } },
      el("span", { className: "wb-value", dataset: { testid: `wb-${id}` } }, String(value)),
      el("span", { className: "wb-label" }, label)
    );
  }

  function productName(line, config) {
    return (config && config.products && config.products[line.product]) || line.label || line.product;
  }

  function renderWallboard(element, snapshot, config = null) {
    const lines = snapshot.products || [];
    const waiting = lines.reduce((sum, line) => sum + line.waiting, 0);
    const longest = lines.reduce((most, line) => Math.max(most, line.oldest_wait_seconds), 0);
    const today = snapshot.today;

    const now = el(
      "section",
      { className: "wb-block wb-now", ariaLabel: "Bellers" },
      el("h2", {}, "Bellers"),
      el(
        "div",
        { className: "wb-tiles" },
        tile("waiting", "Wachtend", waiting, { className: waiting ? "wb-alert" : "" }),
        tile("longest", "Langste wachttijd", duration(longest)),
        tile("menu", "In het keuzemenu", snapshot.calls_in_menu),
        tile("callbacks", "Terugbelverzoeken", snapshot.callbacks_waiting)
      )
    );

    const rows = lines.map((line) =>
      el(
        "tr",
        { dataset: { product: line.product } },
        el("th", { scope: "row" }, productName(line, config)),
        el("td", { className: "wb-num", dataset: { testid: "wb-product-waiting" } }, String(line.waiting)),
        el("td", { className: "wb-num" }, line.waiting ? duration(line.oldest_wait_seconds) : "-")
      )
    );
    const products = el(
      "section",
      { className: "wb-block wb-products", ariaLabel: "Wachtrijen" },
      el("h2", {}, "Wachtrijen"),
      el(
        "table",
        { className: "wb-table" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "col" }, "Product"),
            el("th", { scope: "col", className: "wb-num" }, "Wachtend"),
            el("th", { scope: "col", className: "wb-num" }, "Langst")
          )
        ),
        el("tbody", {}, ...rows)
      )
    );

    const advisers = el(
      "section",
      { className: "wb-block wb-advisers", ariaLabel: "Adviseurs" },
      el("h2", {}, "Adviseurs"),
      el(
        "div",
        { className: "wb-tiles wb-states" },
        ...ADVISER_STATES.map(([state, name]) =>
          tile(`state-${state}`, name, (snapshot.advisers || {})[state] || 0, {
            className: `wb-state-${state}`,
          })
        )
      )
    );

    const slLabel = `Servicelevel (binnen ${today.sl_seconds} s)`;
    const day = el(
      "section",
      { className: "wb-block wb-today", ariaLabel: "Vandaag" },
      el("h2", {}, "Vandaag"),
      el(
        "div",
        { className: "wb-tiles" },
        tile("offered", "Aangeboden", today.offered),
        tile("answered", "Beantwoord", today.answered),
        tile("abandoned", "Opgehangen", today.abandoned),
        tile("service-level", slLabel, percent(today.service_level)),
        tile(
          "asa",
          "Gem. wachttijd",
          today.asa_seconds === null || today.asa_seconds === undefined ? "-" : duration(today.asa_seconds)
        )
      )
    );

    const blocks = [now, products, advisers, day];
    if (Array.isArray(snapshot.adviser_list)) {
      // Supervisors only: the advisers by name (the room's screen never gets them).
      const people = snapshot.adviser_list.map((adviser) =>
        el(
          "tr",
          { dataset: { person: adviser.name, state: adviser.state } },
          el("th", { scope: "row" }, adviser.name),
          el("td", {}, STATE_NAMES[adviser.state] || adviser.state),
          el("td", {}, adviser.since ? CLOCK.format(new Date(adviser.since)) : "-"),
          el("td", {}, adviser.product ? productName({ product: adviser.product }, config) : "-")
        )
      );
      blocks.push(
        el(
          "section",
          { className: "wb-block wb-people", ariaLabel: "Adviseurs op naam" },
          el("h2", {}, "Adviseurs op naam"),
          el(
            "table",
            { className: "wb-table", dataset: { testid: "wb-adviser-list" } },
            el(
              "thead",
              {},
              el(
                "tr",
                {},
                el("th", { scope: "col" }, "Adviseur"),
                el("th", { scope: "col" }, "Status"),
                el("th", { scope: "col" }, "Sinds"),
                el("th", { scope: "col" }, "Product")
              )
            ),
            el("tbody", {}, ...people)
          )
        )
      );
    }
    element.replaceChildren(...blocks);
    element.dataset.at = snapshot.at;
  }

  // -- the event stream ---------------------------------------------------------------------

  // Server-sent events over fetch (EventSource cannot send the Authorization header), and so
  // also the reconnecting that EventSource would do.
  function follow({ token, onSnapshot, onConnection, onExpired, onForbidden }) {
    const controller = new AbortController();
    const { signal } = controller;

    const sleep = (ms) =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });

    async function run() {
      let attempt = 0;
      while (!signal.aborted) {
        try {
          const response = await fetch("/api/wallboard/events", {
            headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
            cache: "no-store",
            signal,
          });
          if (response.status === 401) {
            onExpired();
            return;
          }
          if (response.status === 403) {
            onForbidden();
            return;
          }
          if (!response.ok || !response.body) {
            throw new Error(`HTTP ${response.status}`);
          }
          attempt = 0;
          await window.KccStaff.readEvents(response.body, signal, (name, data) => {
            if (name === "wallboard") {
              onConnection(true);
              onSnapshot(data);
            }
          });
        } catch (err) {
          // the stream broke or never came: try again below
        }
        if (signal.aborted) {
          return;
        }
        onConnection(false);
        await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]);
        attempt += 1;
      }
    }

    run();
    return () => controller.abort();
  }

  return { renderWallboard, follow, STATE_NAMES };
})();

// The supervisor page's "Nu" (supervisor.html, <section id="now">): the same view with the
// advisers' names, following the stream. `api` is the page's (for the labels of /api/config);
// returns stop() for when the session ends.
window.KccWallboard.startNow = function startNow({ element, token, api }) {
  const { renderWallboard, follow } = window.KccWallboard;
  const status = element.querySelector("[data-now-status]");
  const board = element.querySelector("[data-now-board]");
  let config = null;
  api("/api/config")
    .then((answer) => {
      config = answer;
    })
    .catch(() => {}); // the snapshot's own labels will do
  return follow({
    token,
    onSnapshot(snapshot) {
      renderWallboard(board, snapshot, config);
    },
    onConnection(connected) {
      status.dataset.connected = connected ? "true" : "false";
      status.textContent = connected ? "Live" : "Verbinding verbroken - opnieuw verbinden...";
      board.classList.toggle("wb-stale", !connected);
    },
    onExpired() {}, // the page's own requests end the session and say why
    onForbidden() {},
  });
};
