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

  // A refusal of the service: its HTTP status and what every refusal carries (api/web/errors.py):
  // `code` (what the page translates), `params` (values for the translation), the English
  // `detail` (never shown as it is), and for an invalid flow its `problems`.
  class ApiError extends Error {
    constructor(status, body = {}) {
      super(typeof body.detail === "string" ? body.detail : "");
      this.status = status;
      this.detail = body.detail;
      this.code = body.code || "";
      this.params = body.params || {};
      this.problems = body.problems || null;
    }
  }

  // Codes every staff page may meet; a page adds its own (translate(err, messages)).
  const COMMON = {
    bad_login: () => "Onjuiste gebruikersnaam of wachtwoord.",
    too_many_attempts: (p) =>
      `Te veel mislukte pogingen. Probeer het over ${Math.max(1, Math.ceil(Number(p.retry_after) / 60))} minuten opnieuw.`,
    not_signed_in: () => EXPIRED,
    bad_token: () => EXPIRED,
    request_invalid: () => "De invoer is niet geldig. Controleer de velden en probeer het opnieuw.",
    body_unreadable: () => "De invoer kon niet worden gelezen. Probeer het opnieuw.",
    too_large: () => "Dat is te groot om te versturen.",
    telephony_failed: () => "Twilio kon het gesprek niet opzetten. Probeer het zo opnieuw.",
    not_announced: () => "Redis was niet bereikbaar: alle servers nemen de wijziging binnen 10 seconden over.",
    internal: () => "Er ging iets mis bij de server. Probeer het over een ogenblik opnieuw.",
    not_found: () => "Dat is niet gevonden. Vernieuw de pagina.",
    forbidden: () => "Dat mag dit account niet.",
    method_not_allowed: () => "Dat kan deze pagina niet vragen. Vernieuw de pagina.",
    timezone_required: () => "Geef een tijdstip met tijdzone op.",
    no_live_version: () => "Er is geen live versie van de flow.",
    unknown_command: () => "Die status bestaat niet.",
    demo_only: () => "Dit kan alleen in de demo zonder Twilio.",
  };

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

  // A refusal in Dutch: the page's `messages` and the common ones, by the refusal's code (never
  // by its English text). An unknown code gets a general sentence.
  function translate(err, messages = {}) {
    const render = messages[err.code] || COMMON[err.code];
    return render ? render(err.params || {}) : "Dat lukte niet. Probeer het opnieuw.";
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

  // The Dutch name of a language code ("en" -> "Engels"); an unknown code stays as it is.
  const LANGUAGE_NAMES =
    typeof Intl.DisplayNames === "function"
      ? new Intl.DisplayNames(["nl"], { type: "language", fallback: "code" })
      : null;

  function languageName(code) {
    if (!code || !LANGUAGE_NAMES) {
      return code || "";
    }
    try {
      const name = LANGUAGE_NAMES.of(code);
      return name ? name.charAt(0).toUpperCase() + name.slice(1) : code;
    } catch (err) {
      return code; // not a language code at all
    }
  }

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
  // - messages: the page's Dutch for the service's refusal codes (see translate);
  // - forbidden: on a 403, the session ends with this message; without it a 403 is reported;
  // - logFaults: a fault of the page itself (not an ApiError) also goes to the console.
  // A 401 (the token expired or is no longer valid) ends the session: expired().
  function connect({ token, stop, messages, forbidden = null, logFaults = false }) {
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
        throw new ApiError(0);
      }
      if (response.status === 401) {
        expired();
        throw new ApiError(401);
      }
      if (response.status === 403 && forbidden) {
        end(forbidden);
        throw new ApiError(403);
      }
      if (!response.ok) {
        let refusal = {};
        try {
          refusal = await response.json();
        } catch (err) {
          refusal = {};
        }
        throw new ApiError(response.status, refusal || {});
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
      } else if (err.status >= 500 && !err.code) {
        showError(COMMON.internal());
      } else {
        showError(translate(err, messages));
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
          throw new ApiError(0);
        }
        if (response.status === 429) {
          const body = await response.json().catch(() => ({}));
          showError(COMMON.too_many_attempts(body.params || {}));
          $("password").value = "";
          return;
        }
        if (response.status === 401) {
          showError(COMMON.bad_login());
          $("password").value = "";
          $("password").focus();
          return;
        }
        if (!response.ok) {
          throw new ApiError(response.status);
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

  // Signing out revokes the token on the server too (best effort: the page forgets it anyway).
  function revokeToken(token) {
    if (!token) return;
    fetch("/api/logout", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
    }).catch(() => {});
  }

  // init() once the page is there.
  function whenReady(init) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", init);
    } else {
      init();
    }
  }

  // A server-sent event stream read from a fetch body (EventSource cannot send the bearer
  // token): calls dispatch(event, data) for each event whose data is JSON, until the body ends
  // or `signal` aborts. Used by the desk's stream and the wallboard's.
  async function readEvents(body, signal, dispatch) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    let buffer = "";
    let event = "";
    let data = [];
    const line = (text) => {
      if (text === "") {
        if (data.length) {
          let parsed = null;
          try {
            parsed = JSON.parse(data.join("\n"));
          } catch (err) {
            parsed = null;
          }
          if (parsed !== null) {
            dispatch(event || "message", parsed);
          }
        }
        event = "";
        data = [];
        return;
      }
      if (text.startsWith(":")) {
        return; // a comment: the keep-alive ping
      }
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) {
        value = value.slice(1);
      }
      if (field === "event") {
        event = value;
      } else if (field === "data") {
        data.push(value);
      }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        buffer += decoder.decode(value, { stream: true });
        for (;;) {
          const match = /\r\n|\r|\n/.exec(buffer);
          if (!match) {
            break;
          }
          if (match[0] === "\r" && match.index === buffer.length - 1) {
            break; // maybe half of "\r\n": wait for the rest
          }
          line(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  return {
    $,
    ApiError,
    NO_CONNECTION,
    showError,
    showNotice,
    clearMessages,
    translate,
    languageName,
    dutchTime,
    connect,
    resume,
    whenReady,
    readEvents,
    revokeToken,
  };
})();
