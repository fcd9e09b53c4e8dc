// The supervisor's sections Menu, Medewerkers and Sluitingen. supervisor.js shows a section and
// calls its load(context) (and init(context) once); the context holds the calls to the service,
// the message area (messagesAt) and the page's helpers. Products come from /api/config.
// Plain JavaScript, no build step, no external resources.
"use strict";

window.KccSupervisor = window.KccSupervisor || { sections: {} };

(() => {
  const $ = (id) => document.getElementById(id);
  const { showError, showNotice, clearMessages, ApiError, translate } = window.KccStaff;

  // The service's refusals in these sections, in Dutch (api/user_admin.py, flows/closures.py).
  const MESSAGES = {
    user_exists: () => "Die inlognaam bestaat al.",
    user_invalid: (p) =>
      p.field === "password"
        ? "Het wachtwoord is te kort: minstens 8 tekens."
        : "Die inlognaam kan niet: kleine letters, cijfers, '.', '_' of '-', met een letter vooraan.",
    user_unknown: () => "Die medewerker bestaat niet (meer). Vernieuw de pagina.",
    skill_unknown: (p) => `Het product ${p.skill} bestaat niet in het live menu.`,
    skills_for_advisers: () => "Alleen adviseurs hebben producten.",
    device_invalid: () =>
      "Die telefoon kan niet: client:NAAM (letters, cijfers, '_') of een nummer als +31612345678.",
    password_too_short: () => "Het wachtwoord is te kort: minstens 8 tekens.",
    self_deactivation: () => "Je kunt je eigen account niet deactiveren.",
    self_demotion: () => "Je kunt jezelf de rol supervisor niet afnemen.",
    already_closed: () => "Op die dag is het klantcontactcentrum al gesloten.",
    day_has_exception: () =>
      "Die dag heeft al eigen openingstijden. Maak die eerst ongedaan en sluit dan.",
    closure_splits_day: () =>
      "Sluit vanaf een tijd tot het einde van de dag, of vanaf de opening tot een tijd: een pauze midden op de dag kan niet.",
    closure_outside_hours: () => "Het klantcontactcentrum is dan niet open.",
    range_incomplete: () => "Vul een begin- en eindtijd in.",
    language_unknown: (p) => `Het menu kent de taal ${p.language} niet.`,
    no_closure: () => "Die dag heeft geen sluiting (meer). Vernieuw de pagina.",
    outage_unchanged: (p) =>
      p.active ? "De storingsmelding staat al aan." : "De storingsmelding staat al uit.",
    calendar_not_editable: () =>
      "De kalender in het live menu is anders opgeschreven dan verwacht: pas hem aan in de Flow-editor.",
    flow_not_a_mapping: () => "Het live menu kan hier niet aangepast worden: gebruik de Flow-editor.",
  };
  const ROLES = { adviser: "Adviseur", supervisor: "Supervisor" };
  const USER_ACTIONS = {
    added: "Toegevoegd",
    changed: "Gewijzigd",
    password_reset: "Nieuw wachtwoord",
    deactivated: "Gedeactiveerd",
    reactivated: "Weer actief",
  };
  const VIA = {
    next: "daarna",
    open: "als het klantcontactcentrum open is",
    closed: "buiten openingstijden",
    on_fail: "geen of een verkeerde keuze",
    verified: "identiteit gecontroleerd",
    unverified: "identiteit niet gecontroleerd",
    adviser: "vraagt een adviseur",
    goodbye: "klaar",
  };
  const KINDS = {
    verify: "Aanvraagnummer en geboortedatum controleren",
    status: "Status van de aanvraag",
    hours: "Is het klantcontactcentrum open?",
    gather: "Cijfers invoeren",
  };

  // One failure path for every action: in Dutch, next to the button.
  function fail(context, err) {
    if (err instanceof ApiError && err.status !== 401 && err.status !== 403) {
      showError(translate(err, context.messages));
    } else {
      context.report(err);
    }
  }

  async function busy(button, work) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await work();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  // -- Medewerkers -------------------------------------------------------------------------

  const users = { list: [], editing: null };

  function skillBoxes(context, fieldset, labels, chosen) {
    const { el } = context;
    const legend = fieldset.querySelector("legend");
    const boxes = Object.entries(labels.products).map(([product, label]) =>
      el(
        "label",
        { className: "skill" },
        el("input", {
          type: "checkbox",
          value: product,
          checked: chosen.includes(product),
          dataset: { product },
        }),
        ` ${label}`
      )
    );
    fieldset.replaceChildren(legend, ...boxes);
  }

  function checkedSkills(fieldset) {
    return [...fieldset.querySelectorAll("input:checked")].map((box) => box.value);
  }

  function renderUsers(context, labels) {
    const { el } = context;
    const rows = users.list.map((user) => {
      const edit = el("button", { type: "button", className: "button" }, "Wijzigen");
      edit.addEventListener("click", () => startEdit(context, user, labels, edit));
      const reset = el("button", { type: "button", className: "button" }, "Nieuw wachtwoord");
      reset.addEventListener("click", () => resetPassword(context, user, reset));
      const standing = el(
        "button",
        { type: "button", className: user.active ? "button button-stop" : "button" },
        user.active ? "Deactiveren" : "Weer activeren"
      );
      standing.addEventListener("click", () => setActive(context, user, standing));
      const products = user.skills.length
        ? user.skills.map((p) => labels.products[p] || p).join(", ")
        : user.role === "adviser"
          ? "alle"
          : "-";
      return el(
        "tr",
        { dataset: { user: user.name, active: String(user.active) } },
        el("th", { scope: "row", className: "name" }, user.name),
        el("td", { className: "role" }, ROLES[user.role] || user.role),
        el("td", { className: "skills" }, products),
        el("td", { className: "device" }, user.device),
        el("td", { className: "active" }, user.active ? "Ja" : "Nee"),
        el("td", {}, el("div", { className: "buttons" }, edit, reset, standing))
      );
    });
    $("users-body").replaceChildren(...rows);
  }

  function renderUserAudit(context, entries) {
    const { el, formatTime } = context;
    const details = (entry) => {
      const parts = Object.entries(entry.details)
        .filter(([key]) => key !== "generated")
        .map(([key, value]) => {
          const show = (v) => (Array.isArray(v) ? v.join(", ") || "alle" : String(v));
          return value && typeof value === "object" && "to" in value
            ? `${key}: ${show(value.from)} \u2192 ${show(value.to)}`
            : `${key}: ${show(value)}`;
        });
      return parts.join("; ") || "-";
    };
    $("user-audit-body").replaceChildren(
      ...entries.map((entry) =>
        el(
          "tr",
          { dataset: { action: entry.action } },
          el("td", {}, formatTime(entry.at)),
          el("td", {}, entry.actor),
          el("td", {}, USER_ACTIONS[entry.action] || entry.action),
          el("td", {}, entry.subject),
          el("td", {}, details(entry))
        )
      )
    );
  }

  async function loadUsers(context) {
    const [labels, list, audit] = await Promise.all([
      context.loadLabels(),
      context.api("/api/users"),
      context.api("/api/users/audit"),
    ]);
    users.list = list;
    renderUsers(context, labels);
    renderUserAudit(context, audit);
    if (!$("new-skills").querySelector("input")) {
      skillBoxes(context, $("new-skills"), labels, []);
    }
  }

  function startEdit(context, user, labels, button) {
    users.editing = user.name;
    context.messagesAt($("user-save").parentElement);
    clearMessages();
    $("user-edit-title").textContent = `${user.name} wijzigen`;
    $("edit-role").value = user.role;
    $("edit-device").value = user.device;
    skillBoxes(context, $("edit-skills"), labels, user.skills);
    $("user-edit").hidden = false;
    $("user-edit-title").focus();
    users.editButton = button;
  }

  async function saveEdit(context, event) {
    event.preventDefault();
    const name = users.editing;
    if (!name) {
      return;
    }
    context.messagesAt($("user-save").parentElement);
    clearMessages();
    const role = $("edit-role").value;
    const body = {
      role,
      device: $("edit-device").value.trim(),
      skills: role === "adviser" ? checkedSkills($("edit-skills")) : [],
    };
    await busy($("user-save"), async () => {
      try {
        await context.api(`/api/users/${encodeURIComponent(name)}`, { method: "PATCH", json: body });
        $("user-edit").hidden = true;
        users.editing = null;
        await loadUsers(context);
        context.messagesAt($("users-title"));
        showNotice(`${name} is gewijzigd.`);
      } catch (err) {
        fail(context, err);
      }
    });
  }

  async function addUser(context, event) {
    event.preventDefault();
    const button = $("user-add");
    context.messagesAt(button);
    clearMessages();
    const name = $("new-name").value.trim();
    if (!name) {
      showError("Vul een inlognaam in.");
      $("new-name").focus();
      return;
    }
    const role = $("new-role").value;
    const body = { name, role, skills: role === "adviser" ? checkedSkills($("new-skills")) : [] };
    const device = $("new-device").value.trim();
    if (device) {
      body.device = device;
    }
    await busy(button, async () => {
      try {
        const added = await context.api("/api/users", { method: "POST", json: body });
        $("user-add-form").reset();
        await loadUsers(context);
        context.messagesAt(button);
        showNotice(
          `${ROLES[added.role]} ${added.name} is toegevoegd. Eenmalig wachtwoord: ${added.password} ` +
            "(geef het door; het wordt niet nog eens getoond)."
        );
      } catch (err) {
        fail(context, err);
      }
    });
  }

  async function resetPassword(context, user, button) {
    context.messagesAt($("users-title"));
    clearMessages();
    await busy(button, async () => {
      try {
        const answer = await context.api(
          `/api/users/${encodeURIComponent(user.name)}/reset-password`,
          { method: "POST" }
        );
        await loadUsers(context);
        showNotice(
          `Nieuw wachtwoord voor ${user.name}: ${answer.password} (geef het door; het wordt niet nog eens getoond).`
        );
      } catch (err) {
        fail(context, err);
      }
    });
  }

  async function setActive(context, user, button) {
    context.messagesAt($("users-title"));
    clearMessages();
    const action = user.active ? "deactivate" : "reactivate";
    await busy(button, async () => {
      try {
        const answer = await context.api(
          `/api/users/${encodeURIComponent(user.name)}/${action}`,
          { method: "POST" }
        );
        await loadUsers(context);
        let text = answer.active
          ? `${user.name} kan weer inloggen.`
          : `${user.name} is gedeactiveerd en kan niet meer inloggen.`;
        if (answer.signed_out === false) {
          text += " Het lopende gesprek gaat door; daarna is de adviseur afgemeld.";
        }
        showNotice(text);
      } catch (err) {
        fail(context, err);
      }
    });
  }

  window.KccSupervisor.sections.medewerkers = {
    init(context) {
      Object.assign(context.messages, MESSAGES);
      $("user-add-form").addEventListener("submit", (event) => addUser(context, event));
      $("user-edit-form").addEventListener("submit", (event) => saveEdit(context, event));
      $("user-edit-cancel").addEventListener("click", () => {
        $("user-edit").hidden = true;
        users.editing = null;
        clearMessages();
        if (users.editButton && users.editButton.isConnected) {
          users.editButton.focus();
        }
      });
    },
    load: loadUsers,
  };

  // -- Sluitingen --------------------------------------------------------------------------

  const closures = { outage: null };

  function renderClosures(context, answer) {
    const { el, parseDay, weekdays } = context;
    const rows = answer.closures.map((closure) => {
      const day = parseDay(closure.date);
      const until = closure.until ? parseDay(closure.until) : null;
      const undo = el(
        "button",
        { type: "button", className: "button", "aria-label": `Ongedaan maken: ${day ? day.text : closure.date}` },
        "Ongedaan maken"
      );
      undo.addEventListener("click", () => reopen(context, closure.date, undo));
      return el(
        "tr",
        { dataset: { date: closure.date, open: String(Boolean(closure.hours)) } },
        el("td", {}, (day ? day.text : closure.date) + (until ? ` t/m ${until.text}` : "")),
        el("td", {}, day ? weekdays[day.weekday] : ""),
        el("td", { className: "open-cell" }, closure.hours ? `Open ${closure.hours.replace("-", " - ")}` : "Gesloten"),
        el("td", {}, closure.announcement.nl || Object.values(closure.announcement)[0] || ""),
        el("td", {}, undo)
      );
    });
    $("closures-body").replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5 }, "Geen sluitingen gepland."))])
    );
    closures.outage = answer.outage;
    const on = answer.outage.active;
    $("outage-state").textContent = on
      ? "De storingsmelding staat aan: alle bellers horen hem."
      : "De storingsmelding staat uit.";
    $("outage-state").dataset.active = String(on);
    $("outage-toggle").textContent = on ? "Storingsmelding uitzetten" : "Storingsmelding aanzetten";
    $("outage-toggle").className = on ? "button" : "button button-stop";
    if (document.activeElement !== $("outage-nl")) {
      $("outage-nl").value = answer.outage.prompt.nl || "";
      $("outage-en").value = answer.outage.prompt.en || "";
    }
  }

  async function loadClosures(context) {
    const answer = await context.api("/api/flows/closures");
    if (!$("closure-date").value) {
      $("closure-date").value = answer.today; // the service's today, in the centre's time zone
    }
    renderClosures(context, answer);
  }

  function published(context, version, text) {
    return `${text} Versie ${version.number} is live.${context.notAnnounced(version)}`;
  }

  async function close(context, event) {
    event.preventDefault();
    const button = $("closure-submit");
    context.messagesAt(button);
    clearMessages();
    const date = $("closure-date").value;
    if (!date) {
      showError("Kies een dag.");
      $("closure-date").focus();
      return;
    }
    const body = { date };
    if ($("closure-part").checked) {
      body.closed_from = $("closure-from").value;
      body.closed_until = $("closure-until").value;
    }
    const texts = { nl: $("closure-text-nl").value.trim(), en: $("closure-text-en").value.trim() };
    if (texts.nl || texts.en) {
      body.announcement = texts;
    }
    await busy(button, async () => {
      try {
        const version = await context.api("/api/flows/closures", { method: "POST", json: body });
        await context.refreshAll();
        context.messagesAt(button);
        const day = context.parseDay(date);
        showNotice(published(context, version, `Gesloten op ${day ? day.text : date}.`));
      } catch (err) {
        fail(context, err);
      }
    });
  }

  async function reopen(context, date, button) {
    context.messagesAt($("closures-title"));
    clearMessages();
    await busy(button, async () => {
      try {
        const version = await context.api(`/api/flows/closures/${encodeURIComponent(date)}`, {
          method: "DELETE",
        });
        await context.refreshAll();
        const day = context.parseDay(date);
        showNotice(published(context, version, `De sluiting van ${day ? day.text : date} is ongedaan gemaakt.`));
      } catch (err) {
        fail(context, err);
      }
    });
  }

  async function toggleOutage(context, event) {
    event.preventDefault();
    const button = $("outage-toggle");
    context.messagesAt(button);
    clearMessages();
    const active = !(closures.outage && closures.outage.active);
    const body = { active, prompt: { nl: $("outage-nl").value.trim(), en: $("outage-en").value.trim() } };
    await busy(button, async () => {
      try {
        const version = await context.api("/api/flows/outage", { method: "PUT", json: body });
        await context.refreshAll();
        context.messagesAt(button);
        showNotice(
          published(context, version, active ? "De storingsmelding staat aan." : "De storingsmelding staat uit.")
        );
      } catch (err) {
        fail(context, err);
      }
    });
  }

  window.KccSupervisor.sections.sluitingen = {
    init(context) {
      $("closure-form").addEventListener("submit", (event) => close(context, event));
      $("outage-form").addEventListener("submit", (event) => toggleOutage(context, event));
      // Typing a time means: part of the day.
      for (const id of ["closure-from", "closure-until"]) {
        $(id).addEventListener("input", () => {
          $("closure-part").checked = true;
        });
      }
    },
    load: loadClosures,
  };

  // -- Menu --------------------------------------------------------------------------------

  const menu = { language: "nl" };

  function how(step) {
    if (step.key) {
      const language = step.language ? ` (${step.language === "en" ? "Engels" : step.language})` : "";
      return `Toets ${step.key}${language}`;
    }
    return step.via ? VIA[step.via] || step.via : "";
  }

  function ending(step) {
    if (step.ends === "queue") {
      return `Wachtrij: ${step.product} \u2013 ${step.theme}`;
    }
    if (step.ends === "self_service") {
      return "Selfservice: status van de aanvraag";
    }
    if (step.ends === "goodbye") {
      return "Einde van het gesprek";
    }
    return "";
  }

  function stepItem(context, step) {
    const { el } = context;
    const head = [
      how(step) ? el("span", { className: "step-how" }, how(step)) : null,
      step.label ? el("strong", { className: "step-label" }, step.label) : null,
      !step.label && !step.says.length && KINDS[step.kind]
        ? el("span", { className: "step-kind" }, KINDS[step.kind])
        : null,
      ending(step) ? el("span", { className: "step-end" }, ending(step)) : null,
      step.again ? el("span", { className: "hint" }, "(zie elders in dit menu)") : null,
    ];
    const says = step.says
      .filter((text) => text)
      .map((text) => el("p", { className: "step-says", lang: menu.language }, text));
    const attrs = { className: "step", dataset: { node: step.node, kind: step.kind } };
    if (!step.steps.length) {
      return el("li", attrs, el("div", { className: "step-head" }, ...head), ...says);
    }
    return el(
      "li",
      attrs,
      el(
        "details",
        { open: true },
        el("summary", { className: "step-head" }, ...head),
        ...says,
        el("ul", { className: "steps" }, ...step.steps.map((child) => stepItem(context, child)))
      )
    );
  }

  async function loadMenu(context) {
    const tree = $("menu-tree");
    tree.setAttribute("aria-busy", "true");
    try {
      const answer = await context.api(`/api/flows/live/tree?lang=${encodeURIComponent(menu.language)}`);
      tree.replaceChildren(
        context.el("ul", { className: "steps", lang: answer.language }, stepItem(context, answer.root))
      );
    } finally {
      tree.setAttribute("aria-busy", "false");
    }
  }

  window.KccSupervisor.sections.menu = {
    init(context) {
      for (const button of document.querySelectorAll(".lang-switch [data-lang]")) {
        button.addEventListener("click", () => {
          menu.language = button.dataset.lang;
          for (const other of document.querySelectorAll(".lang-switch [data-lang]")) {
            other.setAttribute("aria-pressed", String(other === button));
          }
          loadMenu(context).catch(context.report);
        });
      }
    },
    load: loadMenu,
  };
})();
