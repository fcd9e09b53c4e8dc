// The problems of a flow draft in Dutch, by their code: what the supervisor page shows for every
// problem and warning of a check, a publish or a rollback (never the English message).
// flows/problems.py lists every code with its English words and params; a test holds the two
// lists together. Most problems have the param `where`, the dotted place in the document
// (nodes.welcome.next): it comes first, as in the English.
// Plain JavaScript, no build step; loaded after staff.js, before supervisor.js.
"use strict";

window.KccProblems = (() => {
  const q = (value) => `'${value}'`;

  // "het Engels (en)"; a code the browser does not know stays as it is.
  function inLanguage(code) {
    const name = window.KccStaff.languageName(code);
    return name === code ? q(code) : `het ${name} (${code})`;
  }

  // What a value should be (wrong_type's `expected`).
  const EXPECTED = {
    text: "tekst",
    whole_number: "een geheel getal",
    number: "een getal",
    true_false: "true of false",
    mapping: "sleutels met waarden",
    list: "een lijst",
    time: "een tijd zoals 09:00",
    date: "een datum zoals 2026-12-24",
  };
  // The model's patterns (wrong_pattern's `pattern`) in words.
  const PATTERNS = {
    "^[a-z][a-z0-9_]*$": "alleen kleine letters, cijfers en _, te beginnen met een letter",
    "^[0-9*#]$": "één toets: 0 tot en met 9, * of #",
    "^https?://\\S+$": "een webadres dat begint met http:// of https://",
  };

  const MESSAGES = {
    unreadable: () => "Het bestand kan niet gelezen worden.",
    not_utf8: () => "Het bestand is geen UTF-8-tekst.",
    yaml_syntax: (p) =>
      "De YAML klopt hier niet: controleer de inspringing, dubbele punten, aanhalingstekens " +
      `en haakjes${p.opened_line ? ` (geopend op regel ${p.opened_line})` : ""}.`,
    key_not_text: () => "Een sleutel moet gewone tekst zijn.",
    yaml_too_large: (p) =>
      `De YAML is hier te groot of te diep genest (grens: ${p.limit}); gebruik minder ankers (&) en verwijzingen (*).`,
    duplicate_key: (p) =>
      `De sleutel ${q(p.key)} staat hier een tweede keer (de eerste keer op regel ${p.first_line}).`,
    not_a_mapping: () => "Een flow bestaat uit sleutels met waarden (name:, languages:, nodes: ...).",
    unknown_key: (p) => `Onbekende sleutel ${q(p.key)}. Toegestaan: ${p.allowed}.`,
    unknown_key_unlisted: (p) => `Onbekende sleutel ${q(p.key)}.`,
    missing_key: (p) => `De sleutel ${q(p.key)} ontbreekt.`,
    missing_kind: (p) => `De sleutel 'kind' ontbreekt (een van: ${p.kinds}).`,
    unknown_kind: (p) => `Onbekende soort node ${q(p.kind)} (een van: ${p.kinds}).`,
    wrong_type: (p) => `Hier hoort ${EXPECTED[p.expected] || "een ander soort waarde"}.`,
    wrong_pattern: (p) => `Dit past niet: ${PATTERNS[p.pattern] || `het patroon ${p.pattern}`}.`,
    wrong_value: (p) => `Kies uit: ${String(p.expected || "").replace(/ or /g, " of ")}.`,
    too_small: (p) => `Dit moet minstens ${p.limit} zijn.`,
    too_large: (p) => `Dit mag hoogstens ${p.limit} zijn.`,
    too_short: (p) => `Hier horen minstens ${p.limit} waarden.`,
    too_long: (p) => `Hier horen hoogstens ${p.limit} waarden.`,
    text_too_long: (p) => `Deze tekst mag hoogstens ${p.limit} tekens lang zijn.`,
    invalid: () => "Deze waarde is niet geldig.",
    hours_format: (p) => `Openingstijden schrijf je als '09:00-17:00', niet als ${q(p.text)}.`,
    hours_invalid: (p) => `${q(p.text)} zijn geen geldige tijden.`,
    hours_reversed: (p) => `${q(p.text)} sluit voordat het opent.`,
    phone_unquoted: (p) =>
      `Het telefoonnummer wordt gelezen als het getal ${p.number}: zet het tussen ` +
      `aanhalingstekens, bijvoorbeeld "+31700000101".`,
    phone_not_e164: (p) =>
      `${q(p.text)} is geen telefoonnummer in E.164-vorm: een +, de landcode en het nummer, ` +
      `zonder spaties, bijvoorbeeld +31700000101.`,
    until_before_date: () => "'until' ligt vóór 'date'.",
    max_below_min: (p) => `${p.max_field} is kleiner dan ${p.min_field}.`,
    pattern_invalid: () => "Het patroon is geen geldige reguliere expressie.",
    pattern_repeats_group: () =>
      "Het patroon mag geen groep herhalen, zoals (1+)+; schrijf bijvoorbeeld [0-9]{6,12}.",
    language_twice: () => "Een taal staat twee keer in de lijst.",
    language_code: (p) => `${q(p.language)} is geen taalcode zoals nl of en.`,
    voice_missing: (p) => `Er is geen stem voor de taal ${q(p.language)}.`,
    language_not_listed: (p) => `${q(p.language)} staat niet onder languages.`,
    translation_missing: (p) => `De tekst in ${inLanguage(p.language)} ontbreekt.`,
    name_missing: (p) => `De naam in ${inLanguage(p.language)} ontbreekt.`,
    unspeakable_character: (p) =>
      `Bevat het teken U+${p.character}, een stuur- of surrogaatteken dat niet uitgesproken ` +
      "of in TwiML geschreven kan worden.",
    unknown_placeholder: (p) =>
      `Onbekende {plaatshouder} in de tekst (hier toegestaan: ${p.allowed}; schrijf {{ en }} ` +
      "voor accolades).",
    placeholder_not_allowed: () =>
      "Deze tekst mag geen {plaatshouder} bevatten (schrijf {{ en }} voor accolades).",
    placeholder_cannot_be_filled: (p) =>
      `{${p.name}} kan hier niet worden ingevuld (hier toegestaan: ${p.allowed}).`,
    prompt_missing: (p) => `De tekst ${q(p.prompt)} ontbreekt (de IVR zegt die zelf).`,
    unknown_product: (p) => `Onbekend product ${q(p.product)}: het staat niet onder products.`,
    unknown_theme: (p) => `Onbekend thema ${q(p.theme)}: geen wachtrij gebruikt het.`,
    unknown_node: (p) => `Onbekende node ${q(p.node)}: die staat niet onder nodes.`,
    unknown_target: (p) => `Onbekend doel ${q(p.target)}: er is geen node met die naam.`,
    unknown_prompt: (p) => `Onbekende tekst ${q(p.prompt)}: die staat niet onder prompts.`,
    repeat_is_option: (p) => `Toets ${q(p.key)} is ook een keuze in dit menu.`,
    unknown_language: (p) => `Onbekende taal ${q(p.language)}: die staat niet onder languages.`,
    unreachable: (p) => `Geen beller komt hier vanaf het begin (${q(p.start)}).`,
    no_exit: () => "Lus zonder uitgang: komt nooit bij een wachtrij of ophangen.",
    loop_without_input: (p) => `Lus zonder invoer (${p.nodes}): wacht nooit op een toets van de beller.`,
    unknown_timezone: (p) => `Onbekende tijdzone ${q(p.timezone)}.`,
    unknown_country: (p) => `Geen feestdagen bekend voor ${q(p.country)}.`,
    unknown_holiday: (p) => `Onbekende feestdag ${q(p.holiday)} (bekend: ${p.known}).`,
    wrap_up_codes_empty: () => "Deze lijst met nawerkcodes is leeg (laat hem dan weg).",
    wrap_up_code_duplicate: (p) =>
      `Nawerkcode ${q(p.wrap_up_code)} staat ook in de gedeelde lijst (houd hem in een van de twee).`,
    wrap_up_codes_missing: (p) =>
      `Product ${q(p.product)} heeft geen nawerkcodes: geef het een lijst of voeg gedeelde codes toe.`,
    wrong_flow_name: (p) =>
      `Dit klantcontactcentrum gebruikt de flow ${q(p.expected)}, niet ${q(p.name)}.`,
    skill_not_a_product: (p) =>
      `Adviseur ${q(p.adviser)} heeft de vaardigheid ${q(p.product)}, die niet in deze flow ` +
      "staat (houd het product, of pas eerst de vaardigheden van de adviseur aan).",
    product_without_adviser: () =>
      "Geen adviseur heeft deze vaardigheid: bellers voor dit product wachten tot er een is.",
  };

  // A problem of the service ({line, code, params, message}) in Dutch, without its line (the
  // page shows "regel N: " before it).
  function describe(problem) {
    const params = problem.params || {};
    const render = Object.prototype.hasOwnProperty.call(MESSAGES, problem.code)
      ? MESSAGES[problem.code]
      : null;
    if (!render) {
      return "Hier klopt iets niet."; // a code this page does not know yet
    }
    const text = render(params);
    return params.where ? `${params.where}: ${text}` : text;
  }

  return { MESSAGES, describe };
})();
