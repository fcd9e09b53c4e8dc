"""Every problem a flow check can report: its stable code, and the English words for it.

A problem is a code with string params; its English message (what `kcc flows check` prints) is
rendered here from the code's template, and the supervisor page says the same in Dutch from
the code and params (api/web/static/draft_problems_nl.js has a translation for every code
below; a test holds the two lists together). Most problems are about one place in the
document: its dotted path is the param `where` and comes first in the message
("nodes.welcome.next: unknown target 'x'").

Params a template does not show are listed as `extra`: a translation may use them (the pattern
a value must match, the kind of value expected) where the English shows the validator's own
sentence.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from flows.errors import Problem


@dataclass(frozen=True)
class ProblemCode:
    template: str  # str.format with the params (all strings); `where` comes before it
    extra: tuple[str, ...] = ()  # params for translations that the English does not show

    @property
    def params(self) -> frozenset[str]:
        shown = {name for _, name, _, _ in string.Formatter().parse(self.template) if name}
        return frozenset(shown) | frozenset(self.extra)


PROBLEM_CODES: dict[str, ProblemCode] = {
    # -- the text as YAML (flows/yaml_source.py, flows/loader.py) ------------------------------
    "unreadable": ProblemCode("cannot read the flow: {reason}"),
    "not_utf8": ProblemCode("not UTF-8 text: {reason}"),
    "yaml_syntax": ProblemCode("YAML syntax: {detail}", extra=("opened_line",)),
    "yaml_too_large": ProblemCode("{detail}", extra=("limit",)),
    "key_not_text": ProblemCode("keys must be plain text"),
    "duplicate_key": ProblemCode("duplicate key {key!r} (first on line {first_line})"),
    "not_a_mapping": ProblemCode("a flow must be a mapping of keys"),
    # -- the shape of the document (flows/loader.py, from the model's validation) --------------
    "unknown_key": ProblemCode("unknown key (allowed: {allowed})", extra=("key",)),
    "unknown_key_unlisted": ProblemCode("unknown key", extra=("key",)),
    "missing_key": ProblemCode("missing key {key!r}"),
    "missing_kind": ProblemCode("missing key 'kind' (one of: {kinds})"),
    "unknown_kind": ProblemCode("unknown node kind {kind!r} (one of: {kinds})"),
    # `detail` is the validator's English sentence; the extra params say the same for a page.
    "wrong_type": ProblemCode("{detail}", extra=("expected",)),  # text, number, list ...
    "wrong_pattern": ProblemCode("{detail}", extra=("pattern",)),
    "wrong_value": ProblemCode("{detail}", extra=("expected",)),  # the allowed values
    "too_small": ProblemCode("{detail}", extra=("limit",)),  # at least `limit`
    "too_large": ProblemCode("{detail}", extra=("limit",)),  # at most `limit`
    "too_short": ProblemCode("{detail}", extra=("limit",)),  # at least `limit` items
    "too_long": ProblemCode("{detail}", extra=("limit",)),  # at most `limit` items
    "text_too_long": ProblemCode("{detail}", extra=("limit",)),  # at most `limit` characters
    "invalid": ProblemCode("{detail}"),  # any other refusal of the model
    # -- the model's own checks (flows/model.py) ----------------------------------------------
    "hours_format": ProblemCode("hours must look like '09:00-17:00', not {text!r}"),
    "hours_invalid": ProblemCode("{text!r} is not a valid time range"),
    "hours_reversed": ProblemCode("{text!r} closes before it opens"),
    "until_before_date": ProblemCode("'until' lies before 'date'"),
    "max_below_min": ProblemCode("{max_field} is smaller than {min_field}"),
    "pattern_invalid": ProblemCode("pattern is not a valid regular expression: {reason}"),
    "pattern_repeats_group": ProblemCode(
        "pattern must not repeat a group, e.g. (1+)+; use [0-9]{{6,12}}"
    ),
    "phone_unquoted": ProblemCode(
        "the phone number is read as the number {number}: write it in quotes, e.g. '+31700000101'"
    ),
    "phone_not_e164": ProblemCode(
        "{text!r} is not a phone number in E.164 form: a +, the country code and the number, "
        "without spaces, e.g. +31700000101"
    ),
    # -- checks across the flow (flows/validator.py) ------------------------------------------
    "language_twice": ProblemCode("a language is listed twice"),
    "language_code": ProblemCode("{language!r} is not a language code like nl or en"),
    "voice_missing": ProblemCode("no voice for language {language!r}"),
    "language_not_listed": ProblemCode("{language!r} is not in languages"),
    "translation_missing": ProblemCode("missing translation for {language!r}"),
    "name_missing": ProblemCode("missing name for {language!r}"),
    "unspeakable_character": ProblemCode(
        "contains U+{character}, a control or surrogate character that cannot be spoken or "
        "written in TwiML"
    ),
    "unknown_placeholder": ProblemCode(
        "unknown {{placeholder}} in the text (allowed here: {allowed}; write {{{{ and }}}} for "
        "braces)"
    ),
    "placeholder_not_allowed": ProblemCode(
        "unknown {{placeholder}} in the text (allowed here: none; write {{{{ and }}}} for braces)"
    ),
    "placeholder_cannot_be_filled": ProblemCode(
        "{{{name}}} cannot be filled here ({why}; allowed here: {allowed})"
    ),
    "prompt_missing": ProblemCode("missing prompt {prompt!r} (the engine says it)"),
    "unknown_product": ProblemCode("unknown product {product!r}"),
    "unknown_theme": ProblemCode("unknown theme {theme!r} (no queue names it)"),
    "unknown_node": ProblemCode("unknown node {node!r}"),
    "unknown_target": ProblemCode("unknown target {target!r}"),
    "unknown_prompt": ProblemCode("unknown prompt {prompt!r}"),
    "repeat_is_option": ProblemCode("key {key!r} is also an option"),
    "unknown_language": ProblemCode("unknown language {language!r}"),
    "unreachable": ProblemCode("unreachable from start {start!r}"),
    "no_exit": ProblemCode("loop without an exit (never reaches a queue or hangup)"),
    "loop_without_input": ProblemCode("loop without input ({nodes}) never waits for the caller"),
    "unknown_timezone": ProblemCode("unknown time zone {timezone!r}"),
    "unknown_country": ProblemCode("no holidays known for {country!r}"),
    "unknown_holiday": ProblemCode("unknown holiday {holiday!r} (known: {known})"),
    "wrap_up_codes_empty": ProblemCode("no wrap-up codes in this list (leave it out instead)"),
    "wrap_up_code_duplicate": ProblemCode(
        "wrap-up code {wrap_up_code!r} is in the shared list too (keep it in one of the two)"
    ),
    "wrap_up_codes_missing": ProblemCode(
        "no wrap-up code for product {product!r}: give it a list, or add shared codes"
    ),
    # -- what only the running centre knows (ivr/flow_publishing.py) ---------------------------
    "wrong_flow_name": ProblemCode("this centre runs the flow {expected!r}, not {name!r}"),
    "skill_not_a_product": ProblemCode(
        "adviser {adviser!r} has the skill {product!r}, which this flow does not define (keep "
        "the product, or change the adviser's skills first)"
    ),
    "product_without_adviser": ProblemCode(
        "no adviser has this skill; its callers would wait until one has"
    ),
}


def render(code: str, params: dict[str, str]) -> str:
    """The English message of a problem: `where: ` and the code's template with the params."""
    entry = PROBLEM_CODES[code]
    unknown = set(params) - entry.params - {"where"}
    if unknown:
        raise ValueError(f"problem {code!r} has no params {sorted(unknown)}")
    text = entry.template.format_map(params)
    where = params.get("where")
    return f"{where}: {text}" if where else text


def problem(file: str, line: int, code: str, **params: str) -> Problem:
    """A problem at `line` of `file`, its message rendered from `code` and `params`."""
    return Problem(file, line, render(code, params), code, tuple(sorted(params.items())))


class FlowValueError(ValueError):
    """A check of the model (flows/model.py) that failed, with its code: the loader reports it
    as that problem at the value's line."""

    def __init__(self, code: str, **params: str) -> None:
        super().__init__(render(code, params))
        self.code = code
        self.params = params
