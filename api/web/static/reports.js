// The reports page (/reports): call figures of a period from GET /api/reports, as tables and
// charts (Chart.js, served by the app from static/vendor/chartjs), each table also as a CSV file.
// Supervisors only; it signs in as /supervisor does and shares its session (sessionStorage).
// Plain JavaScript, no build step, no external resources.
"use strict";

(() => {
  const { $, clearMessages, showError, showNotice } = window.KccStaff;

  const TOKEN_KEY = "kcc.supervisor.token"; // the supervisor page's: one sign-in for both
  const ZONE = "Europe/Amsterdam";
  const NOT_A_SUPERVISOR =
    "Dit account is geen supervisoraccount. Deze pagina is alleen voor supervisors.";

  const MESSAGES = {
    report_date_invalid: () => "Vul een geldige datum in.",
    report_period_reversed: () => "De begindatum ligt na de einddatum.",
    report_period_too_long: (p) => `Kies een periode van hoogstens ${p.max_days} dagen.`,
    report_grouping_unknown: () => "Die indeling bestaat niet.",
    report_sl_seconds_invalid: (p) =>
      `Het aantal seconden voor het servicelevel moet tussen ${p.min} en ${p.max} liggen.`,
  };

  const page = { token: null, config: null, charts: {}, queries: {} };

  const { api, report, signIn: staffSignIn, expired } = window.KccStaff.connect({
    token: () => page.token,
    stop: stopSession,
    messages: MESSAGES,
    forbidden: NOT_A_SUPERVISOR,
    logFaults: true,
  });

  // -- numbers in Dutch -------------------------------------------------------------------

  const WHOLE = new Intl.NumberFormat("nl-NL", { maximumFractionDigits: 0 });
  const ONE_DECIMAL = new Intl.NumberFormat("nl-NL", {
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });
  const PERCENT = new Intl.NumberFormat("nl-NL", {
    style: "percent",
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });
  const MARK = new Intl.NumberFormat("nl-NL", { maximumFractionDigits: 2 });
  const NONE = "–";

  const show = {
    count: (v) => WHOLE.format(v),
    rate: (v) => (v === null ? NONE : PERCENT.format(v)),
    seconds: (v) => (v === null ? NONE : ONE_DECIMAL.format(v)),
    mark: (v) => (v === null ? NONE : MARK.format(v)),
  };

  // Every figure of a row (api/web/routes/reports.py), in the order the tables show them.
  const FIGURES = [
    ["calls", "Gesprekken", show.count],
    ["offered", "Aangeboden", show.count],
    ["answered", "Beantwoord", show.count],
    ["answered_in_sl", "Binnen servicelevel", show.count],
    ["abandoned", "Verlaten", show.count],
    ["service_level", "Servicelevel", show.rate],
    ["asa_seconds", "ASA (s)", show.seconds],
    ["aht_seconds", "AHT (s)", show.seconds],
    ["abandon_rate", "Verlaten (%)", show.rate],
    ["self_service", "Selfservice", show.count],
    ["ended_in_menu", "In menu beëindigd", show.count],
    ["callbacks", "Terugbelverzoeken", show.count],
    ["transfers", "Doorverbonden", show.count],
    ["survey_responses", "Enquêtes", show.count],
    ["survey_average", "Gemiddeld cijfer", show.mark],
  ];
  const SURVEY_FIGURES = FIGURES.filter(([name]) =>
    ["calls", "answered", "survey_responses", "survey_average"].includes(name)
  );

  const GROUPINGS = {
    product: "Product",
    theme: "Thema",
    day: "Dag",
    hour: "Uur",
    weekday: "Weekdag",
    adviser: "Adviseur",
    wrap_up: "Afhandelcode",
  };
  const WITHOUT = {
    product: "Geen product (in het menu beëindigd)",
    theme: "Geen thema",
    adviser: "Geen adviseur",
    wrap_up: "Geen afhandelcode",
  };
  const WEEKDAYS = ["", "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"];

  // What a row's key means, in Dutch, with the labels of the live flow (/api/config).
  function keyLabel(by, key) {
    if (key === null) {
      return WITHOUT[by] || NONE;
    }
    const config = page.config || {};
    switch (by) {
      case "product":
        return (config.products || {})[key] || key;
      case "theme":
        return (config.themes || {})[key] || key;
      case "wrap_up":
        return wrapUpLabel(key);
      case "hour":
        return `${String(key).padStart(2, "0")}:00–${String(key + 1).padStart(2, "0")}:00`;
      case "weekday":
        return WEEKDAYS[key] || String(key);
      case "day": {
        const [year, month, day] = key.split("-");
        return `${day}-${month}-${year}`;
      }
      default:
        return String(key);
    }
  }

  function wrapUpLabel(code) {
    for (const codes of Object.values((page.config || {}).wrap_up_codes || {})) {
      if (codes[code]) {
        return codes[code];
      }
    }
    return code;
  }

  // -- the reports --------------------------------------------------------------------------

  // Each panel: the question it asks (besides the period), its figures, and its chart.
  const PANELS = {
    chosen: { query: () => ({ by: $("grouping").value }), figures: FIGURES },
    products: { query: () => ({ by: "product" }), figures: FIGURES, chart: productsChart },
    themes: {
      query: () => ({ by: "theme", product: $("theme-product").value }),
      figures: FIGURES,
      chart: themesChart,
    },
    hours: { query: () => ({ by: "hour" }), figures: FIGURES, chart: hoursChart },
    weekdays: { query: () => ({ by: "weekday" }), figures: FIGURES, chart: weekdaysChart },
    days: { query: () => ({ by: "day" }), figures: FIGURES, chart: daysChart },
    survey: { query: () => ({ by: "product" }), figures: SURVEY_FIGURES, chart: surveyChart },
  };

  function period() {
    return {
      from: $("period-from").value,
      to: $("period-to").value,
      sl_seconds: $("sl-seconds").value,
    };
  }

  function reportUrl(query, format) {
    const params = new URLSearchParams(query);
    if (format) {
      params.set("format", format);
    }
    return `/api/reports?${params}`;
  }

  async function showReports(event) {
    if (event) {
      event.preventDefault();
    }
    clearMessages();
    const button = $("show");
    button.disabled = true;
    $("tools").setAttribute("aria-busy", "true");
    try {
      const asked = {};
      for (const [name, panel] of Object.entries(PANELS)) {
        asked[name] = { ...period(), ...panel.query() };
      }
      // the same question once (products and survey both ask by=product)
      const urls = [...new Set(Object.values(asked).map((query) => reportUrl(query)))];
      const answers = await Promise.all(urls.map((url) => api(url)));
      const byUrl = Object.fromEntries(urls.map((url, i) => [url, answers[i]]));
      const results = {};
      for (const name of Object.keys(PANELS)) {
        results[name] = byUrl[reportUrl(asked[name])];
      }
      for (const [name, panel] of Object.entries(PANELS)) {
        page.queries[name] = asked[name];
        renderPanel(name, panel, results[name]);
      }
      $("chosen-grouping").textContent = `(${GROUPINGS[$("grouping").value].toLowerCase()})`;
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
      $("tools").removeAttribute("aria-busy");
    }
  }

  function renderPanel(name, panel, answer) {
    const table = document.querySelector(`[data-testid="table-${name}"]`);
    renderTable(table, answer, panel.figures);
    if (panel.chart) {
      const canvas = document.querySelector(`[data-testid="chart-${name}"]`);
      drawChart(name, canvas, panel.chart(answer));
    }
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }

  function renderTable(table, answer, figures) {
    const head = el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { scope: "col" }, GROUPINGS[answer.by]),
        ...figures.map(([, label]) => el("th", { scope: "col", class: "number" }, label))
      )
    );
    const cells = (row) =>
      figures.map(([name, , format]) =>
        el("td", { class: "number", "data-column": name }, format(row[name]))
      );
    const body = el(
      "tbody",
      {},
      ...answer.rows.map((row) =>
        el(
          "tr",
          { "data-key": row.key === null ? "" : String(row.key) },
          el("th", { scope: "row" }, keyLabel(answer.by, row.key)),
          ...cells(row)
        )
      )
    );
    if (answer.rows.length === 0) {
      body.append(
        el("tr", {}, el("td", { colspan: String(figures.length + 1) }, "Geen gesprekken in deze periode."))
      );
    }
    const foot = el(
      "tfoot",
      {},
      el("tr", { "data-total": "" }, el("th", { scope: "row" }, "Totaal"), ...cells(answer.total))
    );
    table.replaceChildren(head, body, foot);
  }

  // -- charts (Chart.js) ------------------------------------------------------------------

  const COLOURS = ["#154273", "#39870c", "#d52b1e", "#ffb612", "#8fcae7"];

  function bars(answer, by, figures) {
    return {
      type: "bar",
      data: {
        labels: answer.rows.map((row) => keyLabel(by, row.key)),
        datasets: figures.map(([name, label], i) => ({
          label,
          data: answer.rows.map((row) => row[name]),
          backgroundColor: COLOURS[i % COLOURS.length],
        })),
      },
    };
  }

  function productsChart(answer) {
    return bars(answer, "product", [
      ["calls", "Gesprekken"],
      ["offered", "Aangeboden"],
      ["answered", "Beantwoord"],
    ]);
  }

  function themesChart(answer) {
    return bars(answer, "theme", [
      ["calls", "Gesprekken"],
      ["offered", "Aangeboden"],
      ["self_service", "Selfservice"],
    ]);
  }

  function hoursChart(answer) {
    return bars(answer, "hour", [["calls", "Gesprekken"], ["offered", "Aangeboden"]]);
  }

  function weekdaysChart(answer) {
    return bars(answer, "weekday", [["calls", "Gesprekken"], ["offered", "Aangeboden"]]);
  }

  function daysChart(answer) {
    return {
      type: "line",
      data: {
        labels: answer.rows.map((row) => keyLabel("day", row.key)),
        datasets: [
          {
            label: "Servicelevel (%)",
            data: answer.rows.map((row) =>
              row.service_level === null ? null : Math.round(row.service_level * 1000) / 10
            ),
            borderColor: COLOURS[0],
            backgroundColor: COLOURS[0],
            yAxisID: "percent",
          },
          {
            label: "ASA (s)",
            data: answer.rows.map((row) => row.asa_seconds),
            borderColor: COLOURS[2],
            backgroundColor: COLOURS[2],
            yAxisID: "seconds",
          },
        ],
      },
      options: {
        scales: {
          percent: { position: "left", min: 0, max: 100, title: { display: true, text: "%" } },
          seconds: {
            position: "right",
            min: 0,
            title: { display: true, text: "seconden" },
            grid: { drawOnChartArea: false },
          },
        },
      },
    };
  }

  function surveyChart(answer) {
    const answered = { ...answer, rows: answer.rows.filter((row) => row.survey_responses > 0) };
    const chart = bars(answered, "product", [["survey_average", "Gemiddeld cijfer"]]);
    chart.options = { scales: { y: { min: 0, max: 10 } } };
    return chart;
  }

  function drawChart(name, canvas, config) {
    if (!window.Chart) {
      return; // the table still says it all
    }
    if (page.charts[name]) {
      page.charts[name].destroy();
    }
    config.options = {
      ...(config.options || {}),
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
    };
    page.charts[name] = new window.Chart(canvas, config);
  }

  // -- CSV files ------------------------------------------------------------------------------

  // The API's CSV of the panel's last report, saved as the file the API names (the token goes in
  // a header, so a plain link cannot fetch it).
  async function downloadCsv(name) {
    const query = page.queries[name];
    if (!query) {
      return;
    }
    clearMessages();
    try {
      let response;
      try {
        response = await fetch(reportUrl(query, "csv"), {
          headers: { Authorization: `Bearer ${page.token}`, Accept: "text/csv" },
          cache: "no-store",
        });
      } catch (err) {
        throw new window.KccStaff.ApiError(0);
      }
      if (response.status === 401) {
        expired();
        return;
      }
      if (!response.ok) {
        let refusal = {};
        try {
          refusal = await response.json();
        } catch (err) {
          refusal = {};
        }
        throw new window.KccStaff.ApiError(response.status, refusal);
      }
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = disposition.match(/filename="([^"]+)"/);
      const link = el("a", {
        href: URL.createObjectURL(await response.blob()),
        download: match ? match[1] : "rapport.csv",
      });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (err) {
      report(err);
    }
  }

  // -- the period -----------------------------------------------------------------------------

  // This month in the contact centre's time zone: its first and last day.
  function thisMonth() {
    const today = new Intl.DateTimeFormat("en-CA", {
      timeZone: ZONE,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    }).format(new Date());
    const [year, month] = today.split("-").map(Number);
    const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const mm = String(month).padStart(2, "0");
    return [`${year}-${mm}-01`, `${year}-${mm}-${String(last).padStart(2, "0")}`];
  }

  // -- sign in and out ------------------------------------------------------------------------

  function signIn(event) {
    return staffSignIn(event, {
      accept(token) {
        page.token = token.access_token;
        return true;
      },
      start: () => start(true),
    });
  }

  function stopSession() {
    page.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("tools").hidden = true;
    $("session").hidden = true;
    $("sections-nav").hidden = true;
    $("login").hidden = false;
  }

  function signOut() {
    clearMessages();
    window.KccStaff.revokeToken(page.token);
    stopSession();
    showNotice("Je bent uitgelogd.");
    $("username").focus();
  }

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
      showError(NOT_A_SUPERVISOR);
      $("username").focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, page.token);
    $("user-name").textContent = me.name;
    $("login").hidden = true;
    $("tools").hidden = false;
    $("session").hidden = false;
    $("sections-nav").hidden = false;
    if (fresh) {
      showNotice("");
    }
    try {
      page.config = await api("/api/config?lang=nl");
    } catch (err) {
      report(err);
      return;
    }
    fillThemeProducts();
    window.renderForecastPanel($("forecast-body"), { api });
    await showReports();
  }

  // The products of the live flow, in its order: the first (VOG NP) is chosen at first.
  function fillThemeProducts() {
    const select = $("theme-product");
    const chosen = select.value;
    const products = Object.entries(page.config.products || {});
    select.replaceChildren(...products.map(([id, label]) => el("option", { value: id }, label)));
    if (chosen && products.some(([id]) => id === chosen)) {
      select.value = chosen;
    }
  }

  function init() {
    const [first, last] = thisMonth();
    $("period-from").value = first;
    $("period-to").value = last;
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("report-form").addEventListener("submit", showReports);
    $("grouping").addEventListener("change", () => showReports());
    $("theme-product").addEventListener("change", () => showReports());
    for (const name of Object.keys(PANELS)) {
      document
        .querySelector(`[data-testid="csv-${name}"]`)
        .addEventListener("click", () => downloadCsv(name));
    }
    window.KccStaff.resume(TOKEN_KEY, (token) => {
      page.token = token;
      start(false);
    });
  }

  window.KccStaff.whenReady(init);
})();
