// What the staff pages (/desk and /supervisor) share: the messages, Dutch times, calls to the
// service with the bearer token, and signing in and back in. Each page loads this file first
// (`<script src="/static/staff.js" defer>`) and keeps its own token in sessionStorage.
// Plain JavaScript, no build step, no external resources.
"use strict";

window.KccStaff = (() => {
  const $ = (id) => document.getElementById(id);

  const NO_CONNECTION =
    "Geen verbinding met de server. Controleer de verbinding en probeer het opnieuw.";
  const EXPIRED = "Je sessie is verlopen of ongeldig. Log opnieuw in.";
  const PAGE_FAULT = "Er ging iets mis op deze pagina. Vernieuw de pagina en probeer het opnieuw.";

  class ApiError extends Error {
    constructor(status, detail) {
      super(typeof detail === "string" ? detail : "");
      this.status = status;
      this.detail = detail;
    }
  }

  // -- messages ---------------------------------------------------------------------------

  function showError(text) {
    const node = $("error");
    node.textContent = text;
    node.hidden = !text;
    if (text) {
      $("notice").hidden = true;
    }
  }

  function showNotice(text) {
    const node = $("notice");
    node.textContent = text;
    node.hidden = !text;
  }

  function clearMessages() {
    showError("");
    showNotice("");
  }

  // The service's reason (English) in Dutch by the page's `reasons`, [pattern, render] pairs;
  // anything else is shown as it came.
  function dutchReason(reasons, detail) {
    const text = typeof detail === "string" ? detail.trim() : "";
    for (const [pattern, render] of reasons) {
      const match = pattern.exec(text);
      if (match) {
        return render(match);
      }
    }
    return text ? `Dat lukte niet: ${text}` : "Dat lukte niet. Probeer het opnieuw.";
  }

  // Times as the contact centre reads them: Dutch time, dd-mm-jjjj hh:mm.
  const TIME_FORMAT = new Intl.DateTimeFormat("nl-NL", {
    timeZone: "Europe/Amsterdam",
    day: "2-digit",
    month: "2-digit",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });

  function dutchTime(when) {
    const part = {};
    for (const { type, value } of TIME_FORMAT.formatToParts(when)) {
      part[type] = value;
    }
    return `${part.day}-${part.month}-${part.year} ${part.hour}:${part.minute}`;
  }

  // At the sign-in form (the page has stopped its session), with why.
  function backToSignIn(message) {
    showNotice("");
    showError(message);
    $("username").focus();
  }

  // -- the service ------------------------------------------------------------------------

  // The calls of one page to the service:
  // - token(): the bearer token, or null when signed out;
  // - stop(): stops the page's session (forgets the token) and shows the sign-in form;
  // - reasons: the page's Dutch for the service's reasons (see dutchReason);
  // - forbidden: on a 403, the session ends with this message; without it a 403 is reported;
  // - logFaults: a fault of the page itself (not an ApiError) also goes to the console.
  // A 401 (the token expired or is no longer valid) ends the session: expired().
  function connect({ token, stop, reasons, forbidden = null, logFaults = false }) {
    function end(message) {
      if (!token()) {
        return;
      }
      stop();
      backToSignIn(message);
    }

    function expired() {
      end(EXPIRED);
    }

    async function api(path, options = {}) {
      const headers = { Accept: "application/json" };
      if (token()) {
        headers.Authorization = `Bearer ${token()}`;
      }
      let body;
      if (options.json !== undefined) {
        headers["Content-Type"] = "application/json";
        body = JSON.stringify(options.json);
      }
      let response;
      try {
        response = await fetch(path, {
          method: options.method || "GET",
          headers,
          body,
          cache: "no-store",
        });
      } catch (err) {
        throw new ApiError(0, "");
      }
      if (response.status === 401) {
        expired();
        throw new ApiError(401, "");
      }
      if (response.status === 403 && forbidden) {
        end(forbidden);
        throw new ApiError(403, "");
      }
      if (!response.ok) {
        let detail = "";
        try {
          detail = (await response.json()).detail;
        } catch (err) {
          detail = "";
        }
        throw new ApiError(response.status, detail === undefined ? "" : detail);
      }
      if (response.status === 204) {
        return null;
      }
      return response.json();
    }

    function report(err) {
      if (!(err instanceof ApiError)) {
        showError(PAGE_FAULT);
        if (logFaults) {
          console.error(err);
        }
        return;
      }
      if (err.status === 401 || (err.status === 403 && forbidden)) {
        return; // the session has ended, and the sign-in form says why
      }
      if (err.status === 0) {
        showError(NO_CONNECTION);
      } else if (err.status >= 500) {
        showError("Er ging iets mis bij de server. Probeer het over een ogenblik opnieuw.");
      } else if (err.status === 422 && typeof err.detail !== "string") {
        showError("De invoer is niet geldig. Controleer de velden en probeer het opnieuw.");
      } else {
        showError(dutchReason(reasons, err.detail));
      }
    }

    // The sign-in form (#login-form). The service's token answer goes to accept(answer), which
    // keeps the token and says true, or says false (and why) to stay signed out; then start().
    // A failure goes to failed(err) (report by default).
    async function signIn(event, { accept, start, failed = report }) {
      event.preventDefault();
      clearMessages();
      const username = $("username").value.trim();
      const password = $("password").value;
      if (!username || !password) {
        showError("Vul je gebruikersnaam en wachtwoord in.");
        (username ? $("password") : $("username")).focus();
        return;
      }
      const button = $("sign-in");
      button.disabled = true;
      try {
        let response;
        try {
          response = await fetch("/api/token", {
            method: "POST",
            headers: { Accept: "application/json" },
            body: new URLSearchParams({ username, password }),
            cache: "no-store",
          });
        } catch (err) {
          throw new ApiError(0, "");
        }
        if (response.status === 401) {
          showError("Onjuiste gebruikersnaam of wachtwoord.");
          $("password").value = "";
          $("password").focus();
          return;
        }
        if (!response.ok) {
          throw new ApiError(response.status, "");
        }
        if (!accept(await response.json())) {
          return;
        }
        $("password").value = "";
        await start();
      } catch (err) {
        failed(err);
      } finally {
        button.disabled = false;
      }
    }

    return { api, report, signIn, expired };
  }

  // On loading the page: start(token) with the token this tab kept under `key`, or the
  // sign-in form.
  function resume(key, start) {
    const token = sessionStorage.getItem(key);
    if (token) {
      start(token);
    } else {
      $("login").hidden = false;
      $("username").focus();
    }
  }

  // init() once the page is there.
  function whenReady(init) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", init);
    } else {
      init();
    }
  }

  return {
    $,
    ApiError,
    NO_CONNECTION,
    showError,
    showNotice,
    clearMessages,
    dutchReason,
    dutchTime,
    connect,
    resume,
    whenReady,
  };
})();
