// The forecast panel: expected calls per weekday and hour and the advisers needed
// (GET /api/forecast, docs/staffing.md), with a choice of weeks and service-level target.
// A page loads this file after staff.js and calls renderForecastPanel(element) on an element of
// its own, e.g. <section id="forecast-panel">; the panel fills it and brings its own stylesheet.
// Options: api(path) -> Promise of the JSON (the page's KccStaff.connect(...).api, so that an
// expired session goes back to the sign-in form), or token() -> the bearer token (default: the
// supervisor page's token in sessionStorage). Plain JavaScript, no build step, nothing external.
"use strict";

(() => {
  const WEEKS = [4, 8, 12, 26];
  const DEFAULT_WEEKS = 8;
  const TARGETS = ["80/20", "80/30", "90/20", "90/30", "95/20"];
  const DEFAULT_TARGET = "80/20";
  const DAY_NAMES = { 1: "ma", 2: "di", 3: "wo", 4: "do", 5: "vr", 6: "za", 7: "zo" };
  const STYLESHEET = "/static/forecast_panel.css";
  const TOKEN_KEY = "kcc.supervisor.token";

  const MESSAGES = {
    invalid_weeks: (p) => `Kies 1 tot ${p.max || 52} weken.`,
    invalid_target: () => "Kies een doel als 80/20: 80 % binnen 20 seconden opgenomen.",
    invalid_handle_time: () => "De afhandeltijd is niet geldig.",
    not_signed_in: () => "Je bent niet ingelogd. Log opnieuw in.",
    bad_token: () => "Je sessie is verlopen of ongeldig. Log opnieuw in.",
    role_required: () => "De prognose is alleen voor supervisors.",
  };

  const NUMBER = new Intl.NumberFormat("nl-NL", {
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });
  const DATE = new Intl.DateTimeFormat("nl-NL", {
    day: "numeric",
    month: "long",
    year: "numeric",
    timeZone: "UTC",
  });

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function dutchDate(iso) {
    return DATE.format(new Date(`${iso}T00:00:00Z`));
  }

  function hourLabel(hour) {
    const two = (n) => String(n).padStart(2, "0");
    return `${two(hour)}:00-${two(hour + 1)}:00`;
  }

  function ensureStylesheet() {
    if (document.querySelector(`link[href="${STYLESHEET}"]`)) {
      return;
    }
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = STYLESHEET;
    document.head.appendChild(link);
  }

  // The default way to ask: fetch with the bearer token; a refusal becomes {status, code, params}.
  function fetcher(token) {
    return async (path) => {
      const headers = { Accept: "application/json" };
      const bearer = token();
      if (bearer) {
        headers.Authorization = `Bearer ${bearer}`;
      }
      let response;
      try {
        response = await fetch(path, { headers, cache: "no-store" });
      } catch (err) {
        throw { status: 0, code: "", params: {} };
      }
      if (!response.ok) {
        let body = {};
        try {
          body = await response.json();
        } catch (err) {
          body = {};
        }
        throw { status: response.status, code: body.code || "", params: body.params || {} };
      }
      return response.json();
    };
  }

  function explain(err) {
    const render = MESSAGES[err.code];
    if (render) {
      return render(err.params || {});
    }
    if (window.KccStaff && err.code) {
      return window.KccStaff.translate(err);
    }
    if (err.status === 0) {
      return "Geen verbinding met de server. Probeer het opnieuw.";
    }
    return "De prognose kon niet worden geladen. Probeer het opnieuw.";
  }

  function picker(label, name, values, chosen, text) {
    const wrapper = make("label", "forecast-picker");
    wrapper.append(make("span", "", label));
    const select = make("select");
    select.name = name;
    for (const value of values) {
      const option = make("option", "", text(value));
      option.value = String(value);
      option.selected = value === chosen;
      select.append(option);
    }
    wrapper.append(select);
    return { wrapper, select };
  }

  function summary(forecast) {
    const target = `${Math.round(forecast.target.service_level * 100)}% binnen ${forecast.target.seconds} seconden`;
    const handling =
      forecast.handle_time_source === "records"
        ? `gemiddelde afhandeltijd ${Math.round(forecast.handle_time_seconds)} seconden ` +
          `(${forecast.handled_calls} gesprekken)`
        : `afhandeltijd ${Math.round(forecast.handle_time_seconds)} seconden ` +
          "(standaardwaarde: de gesprekken hebben er nog geen)";
    return (
      `Gemiddelde over ${forecast.weeks} weken, ${dutchDate(forecast.from)} t/m ` +
      `${dutchDate(forecast.to)}; feestdagen en sluitingen tellen niet mee. Doel: ${target}; ` +
      `${handling}.`
    );
  }

  function grid(forecast) {
    const days = [...new Set(forecast.cells.map((c) => c.weekday))].sort((a, b) => a - b);
    const hours = [...new Set(forecast.cells.map((c) => c.hour))].sort((a, b) => a - b);
    const cells = new Map(forecast.cells.map((c) => [`${c.weekday}-${c.hour}`, c]));
    const peak = forecast.peak ? `${forecast.peak.weekday}-${forecast.peak.hour}` : null;

    const table = make("table", "forecast-grid");
    table.append(
      make("caption", "", "Verwachte gesprekken per uur (naar adviseurs) / adviseurs nodig")
    );
    const head = make("tr");
    head.append(make("th", "", "Uur"));
    for (const day of days) {
      const th = make("th", "", DAY_NAMES[day]);
      th.scope = "col";
      head.append(th);
    }
    const thead = make("thead");
    thead.append(head);
    table.append(thead);
    const body = make("tbody");
    for (const hour of hours) {
      const row = make("tr");
      const th = make("th", "", hourLabel(hour));
      th.scope = "row";
      row.append(th);
      for (const day of days) {
        const cell = cells.get(`${day}-${hour}`);
        const td = make("td");
        if (!cell) {
          td.textContent = "gesloten";
          td.className = "forecast-closed";
        } else {
          td.dataset.weekday = String(day);
          td.dataset.hour = String(hour);
          td.append(make("span", "forecast-calls", NUMBER.format(cell.calls_per_hour)));
          td.append(" / ");
          td.append(make("span", "forecast-advisers", String(cell.advisers)));
          td.title =
            `${NUMBER.format(cell.calls_per_hour)} gesprekken naar adviseurs, ` +
            `${NUMBER.format(cell.incoming_per_hour)} binnenkomend, ` +
            `${cell.advisers} adviseurs (gemiddelde over ${cell.open_days} open dagen)`;
          if (`${day}-${hour}` === peak) {
            td.classList.add("forecast-peak");
            td.append(make("span", "forecast-peak-label", " piek"));
          }
        }
        row.append(td);
      }
      body.append(row);
    }
    table.append(body);
    return table;
  }

  function peakText(forecast) {
    const p = forecast.peak;
    if (!p) {
      return "Geen gesprekken naar adviseurs in deze weken.";
    }
    return (
      `Piek: ${DAY_NAMES[p.weekday]} ${hourLabel(p.hour)}, ` +
      `${NUMBER.format(p.calls_per_hour)} gesprekken per uur, ${p.advisers} adviseurs.`
    );
  }

  window.renderForecastPanel = function renderForecastPanel(element, options = {}) {
    ensureStylesheet();
    const ask = options.api || fetcher(options.token || (() => sessionStorage.getItem(TOKEN_KEY)));
    element.classList.add("forecast-panel");
    element.replaceChildren();
    const controls = make("form", "forecast-controls");
    const weeks = picker("Weken", "weeks", WEEKS, DEFAULT_WEEKS, (w) => `${w} weken`);
    const target = picker("Doel", "target", TARGETS, DEFAULT_TARGET, (t) => {
      const [percent, seconds] = t.split("/");
      return `${percent}% binnen ${seconds} s`;
    });
    controls.append(weeks.wrapper, target.wrapper);
    const status = make("p", "forecast-status");
    status.setAttribute("role", "status");
    const error = make("p", "forecast-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    const result = make("div", "forecast-result");
    element.append(controls, status, error, result);

    let asked = 0;
    async function load() {
      const mine = ++asked;
      status.textContent = "Prognose laden…";
      error.hidden = true;
      const query = new URLSearchParams({ weeks: weeks.select.value, target: target.select.value });
      try {
        const forecast = await ask(`/api/forecast?${query}`);
        if (mine !== asked) {
          return; // a newer choice is on its way
        }
        status.textContent = summary(forecast);
        result.replaceChildren(grid(forecast), make("p", "forecast-peak-text", peakText(forecast)));
      } catch (err) {
        if (mine !== asked) {
          return;
        }
        if (!err || err.status === undefined) {
          console.error(err); // a fault of the panel itself, not a refusal
        }
        status.textContent = "";
        result.replaceChildren();
        error.textContent = explain(err || {});
        error.hidden = false;
      }
    }

    controls.addEventListener("submit", (event) => event.preventDefault());
    weeks.select.addEventListener("change", load);
    target.select.addEventListener("change", load);
    return load();
  };
})();
