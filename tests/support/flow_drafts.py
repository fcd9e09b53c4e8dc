"""Flow drafts with mistakes, for the tests of the checker, the command line, the API and the
supervisor page."""

from __future__ import annotations

from typing import NamedTuple

from tests.support.paths import SHIPPED

TEXT = SHIPPED.read_text(encoding="utf-8")
OLD_WELCOME = "Welkom bij Justis, de screeningsautoriteit."  # the Dutch welcome, on its own line
NEW_WELCOME = "Welkom bij Justis. Let op: op 24 december zijn wij tot 15 uur open."


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def edited(old: str = OLD_WELCOME, new: str = NEW_WELCOME, text: str = TEXT) -> str:
    """`text` (the shipped flow) with its first `old` replaced by `new`: a draft to publish."""
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, fragment: str, after: str | None = None) -> int:
    """1-based line where `fragment` (it may span lines) first starts, searching from the line
    where `after` first starts (from the top when None): the line a problem must name."""
    start = 0 if after is None else text.rfind("\n", 0, _index(text, after)) + 1
    return text.count("\n", 0, _index(text, fragment, start)) + 1


def _index(text: str, fragment: str, start: int = 0) -> int:
    at = text.find(fragment, start)
    assert at >= 0, f"{fragment!r} is not in the text"
    return at


class Mistake(NamedTuple):
    old: str  # text of the shipped flow (there once)
    new: str
    fragment: str  # on the line the problem names ...
    after: str | None  # ... the first such line after the line containing this
    code: str
    message: str  # the start of the English message
    dutch: str  # the start of what the supervisor page says


# Independent mistakes of every sort, each in another part of the flow.
MISTAKES = [
    Mistake(
        "    prompt: welcome\n    next: opening_hours\n",
        "    prompt: welcome\n    promtp: welcome\n    next: opening_hours\n",
        "promtp: welcome",
        None,
        "unknown_key",
        "nodes.welcome.promtp: unknown key (allowed: kind, prompt, next)",
        "nodes.welcome.promtp: Onbekende sleutel 'promtp'. Toegestaan: kind, prompt, next.",
    ),
    Mistake(
        '"2": verify_vog_rp',
        '"2": verify_vog_rpp',
        '"2": verify_vog_rpp',
        None,
        "unknown_target",
        "nodes.main_menu.options.2: unknown target 'verify_vog_rpp'",
        "nodes.main_menu.options.2: Onbekend doel 'verify_vog_rpp': er is geen node met die naam.",
    ),
    Mistake(
        '    en: "Welcome to Justis, the screening authority."\n',
        "",
        "  welcome:",  # the prompt's key
        "prompts:",
        "translation_missing",
        "prompts.welcome: missing translation for 'en'",
        "prompts.welcome: De tekst in het Engels (en) ontbreekt.",
    ),
    Mistake(
        "product: wwm",
        "product: wapens",
        "product: wapens",
        None,
        "unknown_product",
        "nodes.queue_wwm.product: unknown product 'wapens'",
        "nodes.queue_wwm.product: Onbekend product 'wapens': het staat niet onder products.",
    ),
    Mistake(
        "  goodbye:\n    kind: hangup\n",
        "  goodbye:\n    kind: hang_up\n",
        "kind: hang_up",
        None,
        "unknown_kind",
        "nodes.goodbye: unknown node kind 'hang_up'",
        "nodes.goodbye: Onbekende soort node 'hang_up' (een van: say, menu,",
    ),
    Mistake(
        "    retries: 0\n",
        "    retries: none\n",
        "retries: none",
        None,
        "wrong_type",
        "nodes.closed_menu.retries: Input should be a valid integer",
        "nodes.closed_menu.retries: Hier hoort een geheel getal.",
    ),
    Mistake(
        'monday: "09:00-17:00"',
        'monday: "17:00-09:00"',
        'monday: "17:00-09:00"',
        None,
        "hours_reversed",
        "calendar.weekly.monday: '17:00-09:00' closes before it opens",
        "calendar.weekly.monday: '17:00-09:00' sluit voordat het opent.",
    ),
    Mistake(
        '        en: "On 24 December the contact centre is open until {closes}."\n',
        "",
        "announcement:",  # the exception's
        "- date: 2026-12-24",
        "translation_missing",
        "calendar.exceptions[0]: missing translation for 'en'",
        "calendar.exceptions[0]: De tekst in het Engels (en) ontbreekt.",
    ),
    Mistake(
        '    vog_np: {nl: "VOG natuurlijk persoon", en: "Certificate of conduct, natural person"}',
        '    vog_nq: {nl: "VOG natuurlijk persoon", en: "Certificate of conduct, natural person"}',
        "vog_nq: {nl:",
        None,
        "unknown_product",
        "labels.products.vog_nq: unknown product 'vog_nq'",
        "labels.products.vog_nq: Onbekend product 'vog_nq': het staat niet onder products.",
    ),
    Mistake(
        'phone: "+31700000102"',
        "phone: +31700000102",
        "phone: +31700000102",
        None,
        "phone_unquoted",
        "departments.wwm.phone: the phone number is read as the number 31700000102",
        "departments.wwm.phone: Het telefoonnummer wordt gelezen als het getal 31700000102: zet "
        'het tussen aanhalingstekens, bijvoorbeeld "+31700000101".',
    ),
    Mistake(
        "    track:\n      login:",
        "    tracks:\n      login:",
        "    tracks:",
        "wrap_up_codes:",
        "unknown_product",
        "wrap_up_codes.per_product.tracks: unknown product 'tracks'",
        "wrap_up_codes.per_product.tracks: Onbekend product 'tracks': het staat niet onder "
        "products.",
    ),
]


def several_mistakes() -> str:
    """The shipped flow with every mistake above."""
    text = TEXT
    for mistake in MISTAKES:
        text = edit(text, mistake.old, mistake.new)
    return text
