// The room's screen (/wallboard): signs in (a viewer, or a supervisor), then shows the wallboard
// and follows its event stream (wallboard_view.js). A viewer's token is kept in localStorage,
// so the screen survives a reload or a restart of its browser until the token expires;
// a supervisor's only in this tab (sessionStorage), as on their own page.
// Plain JavaScript, no build step, no external resources.
"use strict";

(() => {
  const { $, showError, showNotice, clearMessages } = window.KccStaff;
  const { renderWallboard, follow } = window.KccWallboard;
  const TOKEN_KEY = "kcc.wallboard.token";
  const NOT_ALLOWED = "Dit account mag het wallboard niet zien. Log in als viewer of supervisor.";
  const CLOCK = new Intl.DateTimeFormat("nl-NL", {
    timeZone: "Europe/Amsterdam",
    weekday: "long",
    day: "numeric",
    month: "long",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });

  const page = { token: null, stop: null };

  const { signIn: staffSignIn } = window.KccStaff.connect({
    token: () => page.token,
    stop: stopSession,
    messages: { role_required: () => NOT_ALLOWED },
  });

  function savedToken() {
    return localStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(TOKEN_KEY);
  }

  function forget() {
    localStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
  }

  function signIn(event) {
    return staffSignIn(event, {
      accept(answer) {
        if (answer.role !== "viewer" && answer.role !== "supervisor") {
          showError(NOT_ALLOWED);
          return false;
        }
        page.token = answer.access_token;
        forget();
        const store = answer.role === "viewer" ? localStorage : sessionStorage;
        store.setItem(TOKEN_KEY, page.token);
        return true;
      },
      start,
    });
  }

  function setConnected(connected) {
    const node = $("connection");
    node.hidden = false;
    node.dataset.connected = connected ? "true" : "false";
    node.textContent = connected ? "Live" : "Verbinding verbroken - opnieuw verbinden...";
    $("wallboard").classList.toggle("wb-stale", !connected);
  }

  function start() {
    $("login").hidden = true;
    $("sign-out").hidden = false;
    setConnected(false);
    page.stop = follow({
      token: page.token,
      onSnapshot(snapshot) {
        $("wallboard").hidden = false;
        renderWallboard($("wallboard"), snapshot, null);
      },
      onConnection: setConnected,
      onExpired() {
        end("Je sessie is verlopen of ongeldig. Log opnieuw in.");
      },
      onForbidden() {
        end(NOT_ALLOWED);
      },
    });
  }

  function stopSession() {
    if (page.stop) {
      page.stop();
      page.stop = null;
    }
    page.token = null;
    forget();
    $("wallboard").hidden = true;
    $("connection").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
  }

  function end(message) {
    stopSession();
    showError(message);
    $("username").focus();
  }

  function signOut() {
    clearMessages();
    window.KccStaff.revokeToken(page.token);
    stopSession();
    showNotice("Je bent uitgelogd.");
    $("username").focus();
  }

  function tick() {
    $("clock").textContent = CLOCK.format(new Date());
  }

  function init() {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    tick();
    setInterval(tick, 1000);
    const token = savedToken();
    if (token) {
      page.token = token;
      start();
    } else {
      $("login").hidden = false;
      $("username").focus();
    }
  }

  window.KccStaff.whenReady(init);
})();
