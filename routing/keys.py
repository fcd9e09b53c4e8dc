"""Every Redis key name, pub/sub channel and time-to-live of kcc-ivr, in one place.

All keys and pub/sub channels start with `{kcc}:`: the braces are a Redis Cluster hash tag, so
every key lands in one slot and the multi-key Lua scripts and transactions stay valid on a
cluster. Every key gets a TTL: a crashed instance or a lost status callback can never leave state
behind for ever.

The `kcc` is the deployment's namespace (KCC_REDIS_PREFIX, set once at start-up through
`use_namespace`): pub/sub channels are shared by every database of a Redis server, so two
deployments on one server (staging on database 1, production on 2) must differ in it, or each
hears the other's announcements. Ids that come from outside (a CallSid) are checked at the edge
against CALL_SID: no `:` or brace can make one call's key another's (`X:ended`).

The Lua scripts (routing/lua/) build no names of their own: they get keys through KEYS, and
where a script learns an id only as it runs (the offer it numbers, an adviser's skills) it gets
the name's `template` from here through ARGV and puts the id in place of PLACEHOLDER.
"""

from __future__ import annotations

import re
from collections.abc import Callable

DEFAULT_NAMESPACE = "kcc"
NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# Twilio's CallSids are CA and 32 hex digits; the tests and the demo use shorter ones. What
# matters for the keys: letters, digits, '_' and '-' only.
CALL_SID = re.compile(r"CA[A-Za-z0-9_-]{0,64}")
PREFIX = "{kcc}:"
PLACEHOLDER = "{}"  # where the id goes in a key template


def use_namespace(namespace: str) -> None:
    """Put every key and channel of this process under `namespace` (KCC_REDIS_PREFIX)."""
    global PREFIX
    if not NAMESPACE.fullmatch(namespace):
        raise ValueError(f"a Redis namespace is {NAMESPACE.pattern}, not {namespace!r}")
    PREFIX = "{" + namespace + "}:"


def template(name: Callable[[str], str]) -> str:
    """The key `name` makes, with PLACEHOLDER for its id, for a Lua script to fill in."""
    return name(PLACEHOLDER)


SESSION_TTL = 4 * 3600  # a call's webhook state; longer than any call
REPLY_TTL = 15 * 60  # the TwiML answered for one step, for Twilio's retries of that step
QUEUE_TTL = 24 * 3600  # queue entries; refreshed on every enqueue
CALLBACK_TTL = 5 * 24 * 3600  # a callback waits over a long weekend for the next open day
ENDED_TTL = 3600  # remembers a call has ended, so a late webhook does not queue it again


def session(call_sid: str) -> str:
    return f"{PREFIX}call:{call_sid}"


def reply(call_sid: str, seq: int) -> str:
    return f"{PREFIX}call:{call_sid}:reply:{seq}"


def ended(call_sid: str) -> str:
    return f"{PREFIX}call:{call_sid}:ended"


def queue(product: str) -> str:
    """Sorted set of waiting CallSids, scored by priority and arrival."""
    return f"{PREFIX}queue:{product}"


def queue_index() -> str:
    """Set of products that have (or had) a queue."""
    return f"{PREFIX}queues"


def queue_entry(call_sid: str) -> str:
    """JSON context of a waiting call (what the adviser will see)."""
    return f"{PREFIX}queue-entry:{call_sid}"


def queue_line(call_sid: str) -> str:
    """The product whose line a waiting call is in, in clear (not personal data): lets the
    status callback take the call out of its line in the same script that ends it. Absent for
    a call that asked to be called back: that one keeps its place."""
    return f"{PREFIX}queue-line:{call_sid}"


def queue_arrivals() -> str:
    """Counter that numbers arrivals, so the line keeps its order within a millisecond."""
    return f"{PREFIX}queue-arrivals"


# Redis restarted empty (routing/recovery.py): the marker's absence says so; one instance at a
# time rebuilds what Twilio and the database still know.
RECOVERY_LOCK_MS = 60_000  # a crashed recovery lets the next instance try after this
QUEUE_PLACE_TTL = 3600  # a lost caller's reserved place waits for their next waitUrl fetch


def redis_marker() -> str:
    """Written once this Redis holds the routing state (at the first start, or after a
    recovery); missing means Redis lost everything (a restart without persistence, a flush)."""
    return f"{PREFIX}redis-marker"


def recovery_lock() -> str:
    """The instance rebuilding the state after a loss: a random token, RECOVERY_LOCK_MS to live."""
    return f"{PREFIX}recovery:lock"


def queue_place(call_sid: str) -> str:
    """The arrival number a caller found in Twilio's queue after a loss will take when their
    context comes back with their next waitUrl fetch (Twilio's order, kept)."""
    return f"{PREFIX}queue-place:{call_sid}"


# What only Redis knew, kept in the database as well (routing/callbacks.py,
# ivr/identity/lockouts.py): callbacks asked and identity lock-outs go through this outbox
# (routing/outbox.py) to the database, so a recovery after Redis restarted empty finds them.
STATE_OUTBOX_TTL = 7 * 24 * 3600  # as the record outbox's: a database outage over a weekend
STATE_OUTBOX_LOCK_MS = 60_000  # one instance drains at a time; a crashed one lets go after this


def state_outbox() -> str:
    """List of JSON items for the database: a callback asked (its entry sealed), a callback
    settled, a lock-out set (by keyed hash). Never a number in clear, never a date of birth."""
    return f"{PREFIX}state-outbox"


def state_outbox_lock() -> str:
    """The instance draining the state outbox: a random token, STATE_OUTBOX_LOCK_MS to live."""
    return f"{PREFIX}state-outbox:lock"


VERIFY_ATTEMPT_TTL = 3600  # one identity check per call step, even when Twilio retries it


def verify_failures_by_number(pseudonym: str) -> str:
    """Sorted set of failure times for one application number (keyed hash, never the number)."""
    return f"{PREFIX}verify:fail:number:{pseudonym}"


def verify_lock_by_number(pseudonym: str) -> str:
    return f"{PREFIX}verify:lock:number:{pseudonym}"


def verify_failures_by_caller(pseudonym: str) -> str:
    """Sorted set of failure times from one caller number (keyed hash)."""
    return f"{PREFIX}verify:fail:caller:{pseudonym}"


def verify_attempt(call_sid: str, seq: int) -> str:
    """Marks that the check of this step was counted (Twilio may deliver the step twice)."""
    return f"{PREFIX}verify:attempt:{call_sid}:{seq}"


# Staff sign-in guard (api/sign_in_guard.py): attempts per account name and per client address
# in a fixed window; both named by keyed hashes (an address is personal data, a name is typed).
LOGIN_WINDOW_SECONDS = 15 * 60


def login_attempts_by_account(pseudonym: str) -> str:
    return f"{PREFIX}login:account:{pseudonym}"


def login_attempts_by_address(pseudonym: str) -> str:
    return f"{PREFIX}login:address:{pseudonym}"


def revoked_token(token_id: str) -> str:
    """A staff token signed out before it expired (api/web/tokens.py); its TTL is the token's
    remaining lifetime."""
    return f"{PREFIX}revoked-token:{token_id}"


ADVISER_TTL = 7 * 24 * 3600  # an adviser's live state; refreshed on every change
OFFER_TTL = 3600
HANDLE_TIMES_TTL = 7 * 24 * 3600


def adviser(name: str) -> str:
    """Hash: state, since, skills, device, call_sid, offer_id, wrap_until, last_call,
    last_product; and for presence (routing/presence.py) desk_seen, unreachable_since,
    away_return."""
    return f"{PREFIX}adviser:{name}"


def advisers() -> str:
    """Set of adviser names known to routing."""
    return f"{PREFIX}advisers"


def advisers_working() -> str:
    """Hash: product -> advisers working it (routing/lua/advisers_working.lua), for the callers'
    expected wait; '' marks it as counted. Recounted from the advisers' states when it expires."""
    return f"{PREFIX}advisers-working"


# How old the working advisers' count may be: one recount a second at most for all instances;
# an estimate in whole minutes, said once a minute, may well lag a change by a second.
ADVISERS_WORKING_TTL_MS = 1000


def available(product: str) -> str:
    """Sorted set of available advisers with that skill, scored by when they became idle."""
    return f"{PREFIX}available:{product}"


def offer(offer_id: str) -> str:
    """Hash: call_sid, adviser, product, score (the call's place in line), kind, state."""
    return f"{PREFIX}offer:{offer_id}"


def offer_sequence() -> str:
    return f"{PREFIX}offer-seq"


def offer_deadlines() -> str:
    """Sorted set of open offer ids by the time they must have been answered."""
    return f"{PREFIX}offer-deadlines"


def wrap_up_ends() -> str:
    """Sorted set of advisers in wrap-up by the time it ends."""
    return f"{PREFIX}wrap-up-ends"


def call_checks() -> str:
    """Sorted set of the offers of conversations in progress (answered, not yet ended) by when
    routing next asks Twilio whether the caller is still there: a conversation whose every
    callback was lost still ends (Router.tick). TTL: CONFERENCE_TTL, refreshed by every answer."""
    return f"{PREFIX}call-checks"


def call_offer(call_sid: str) -> str:
    """The offer a call is in (set while offered or connected)."""
    return f"{PREFIX}call:{call_sid}:offer"


def call_answered(call_sid: str) -> str:
    """An adviser answered this call (for the call record when the caller hangs up)."""
    return f"{PREFIX}call:{call_sid}:answered"


CALL_FACTS_TTL = SESSION_TTL  # what routing learnt of a call, until its record is made


def call_facts(call_sid: str) -> str:
    """Hash of what routing learnt of a call for its record (routing/call_facts.py):
    answered_ms and adviser (the first answer), talk_end_ms and hung_up_by (the conversation's
    end), transfer_mode and transfer_target (the last completed transfer). Read when the
    caller's leg ends."""
    return f"{PREFIX}call:{call_sid}:facts"


CONFERENCE_TTL = SESSION_TTL  # a conversation's conference: as long as any call lasts


def call_conference(call_sid: str) -> str:
    """Hash of the conference a routed call talks in: offer, name, sid, caller (the caller's
    leg in it), adviser (the adviser's leg), called (the number the caller dialled),
    dialled_offer (the offer whose adviser was called in), hold_since and hold_ms (time held),
    muted. Twilio's Participants resource shows only current participants: this is the
    history routing keeps of them."""
    return f"{PREFIX}call:{call_sid}:conference"


SURVEY_TTL = SESSION_TTL  # the survey after a conversation: as long as any call lasts


def call_survey(call_sid: str) -> str:
    """Hash of the satisfaction survey of a call (ivr/survey.py): version (the flow version
    whose texts it is asked in; set when it is asked), score (the caller's mark, 1-10) and
    recorded (the call record has been built: a later mark updates the row)."""
    return f"{PREFIX}call:{call_sid}:survey"


MONITOR_TTL = CONFERENCE_TTL  # supervisors' monitor sessions of a call: as long as the call


def call_monitors(call_sid: str) -> str:
    """Hash: supervisor name -> JSON of their monitor session of this call (routing/monitoring.py):
    live (ringing, active) or the last one's end, so the page can say why it ended."""
    return f"{PREFIX}call:{call_sid}:monitors"


TRANSFER_TTL = CONFERENCE_TTL  # a transfer lasts no longer than the call it moves


def call_transfer(call_sid: str) -> str:
    """Hash of the transfer of a call in progress (one at a time): offer (the transferring
    adviser's), from, mode, kind, target, since, state, leg (the target's CallSid in the
    conference), to (the number or device called). Its existence is the lock that makes a second
    transfer of the same call answer `transfer_in_progress`."""
    return f"{PREFIX}call:{call_sid}:transfer"


WHISPER_TTL = 10 * 60  # a transfer's whisper waits for the department to answer


def call_whisper(call_sid: str) -> str:
    """Sealed JSON: what a transfer of this call tells the department (product, theme, note)."""
    return f"{PREFIX}call:{call_sid}:whisper"


def adviser_events(name: str) -> str:
    """Pub/sub channel of one adviser's desk events (offer, connected, ended, state)."""
    return f"{PREFIX}events:{name}"


def call_events(call_sid: str) -> str:
    """Pub/sub channel of one call's events for the caller's side (the demo's terminal phone):
    offered, answered, ended, held, unheld, transferred. Names and reasons only, no context."""
    return f"{PREFIX}call-events:{call_sid}"


# Presence: the desk's connection is the adviser's presence (routing/presence.py).
DESK_TAB_LIVE_MS = 15_000  # a desk tab counts as live this long after its stream last beat
DESK_BEAT_SECONDS = 5  # how often an open desk stream beats (well inside DESK_TAB_LIVE_MS)
PRESENCE_TTL = 12 * 3600  # the desk tabs and phone reports of an adviser; refreshed on a beat


def desk_tabs(name: str) -> str:
    """Sorted set of an adviser's open desk tabs (tab id), scored by when each stops counting
    as live unless its stream beats again (ms)."""
    return f"{PREFIX}desk-tabs:{name}"


def desk_phones(name: str) -> str:
    """Hash: desk tab id -> what that tab reported of its browser phone (registered or not)."""
    return f"{PREFIX}desk-phones:{name}"


def presence_due() -> str:
    """Sorted set of the advisers whose presence is followed (name), scored by when the sweep
    must look at them next (ms): when their last reachable desk tab stops counting, when their
    grace period ends, or at once (a call at a gone desk, a return to work). The timer's sweep
    reads only the advisers whose time is up. TTL PRESENCE_TTL, refreshed on every change."""
    return f"{PREFIX}presence-due"


def handle_times(product: str) -> str:
    """List of recent handling times (seconds) for wait estimates."""
    return f"{PREFIX}handle-times:{product}"


LIVE_FLOW_TTL = 24 * 3600  # a cache of the database's live pointer; rewritten by every instance


def live_flow(flow: str) -> str:
    """The digest of the flow version new calls take (the database holds the truth)."""
    return f"{PREFIX}flow:{flow}:live"


def flow_announcements() -> str:
    """Pub/sub channel: a flow version went live (publish or rollback)."""
    return f"{PREFIX}flow-announcements"


RETENTION_MARKER_TTL = 2 * 24 * 3600  # outlives its day, whatever the instances' clocks say


def retention_day(day: str) -> str:
    """Set by the instance that runs the day's record purge (ivr/retention.py); day ISO."""
    return f"{PREFIX}retention:{day}"


# Live figures for Prometheus (routing/live_figures.py). The counters only grow (Prometheus
# takes rates); their TTL is refreshed on every count, so only a centre idle this long loses them.
CALL_COUNTER_TTL = 90 * 24 * 3600
MENU_CALL_MAX_AGE = SESSION_TTL  # a call in the menu longer than its session lives has ended


def calls_in_menu() -> str:
    """Sorted set of calls in the menu (started, in no line yet, not ended), scored by Redis'
    time (ms) when they started."""
    return f"{PREFIX}calls-in-menu"


def calls_offered() -> str:
    """Hash: product -> calls that joined its adviser line, ever (a counter)."""
    return f"{PREFIX}calls-offered"


def calls_answered() -> str:
    """Hash: product -> calls put through to an adviser (offers answered), ever."""
    return f"{PREFIX}calls-answered"


def calls_abandoned() -> str:
    """Hash: product -> calls that left the line without an adviser, ever (counted from the
    call's record, where that outcome is decided once)."""
    return f"{PREFIX}calls-abandoned"


# The call records' outbox (routing/outbox.py): every record and every later change of one waits
# here until the database has it. Long enough for a database outage over a weekend; refreshed on
# every push and every drain.
RECORD_OUTBOX_TTL = 7 * 24 * 3600
RECORD_OUTBOX_LOCK_MS = 60_000  # one instance drains at a time; a crashed one lets go after this


def record_outbox() -> str:
    """List of JSON changes of call records (new records, wrap-ups, callbacks made), oldest
    first. Nothing personal: no caller number, no date of birth, no application number."""
    return f"{PREFIX}record-outbox"


def record_outbox_lock() -> str:
    """The instance draining the outbox: a random token, with RECORD_OUTBOX_LOCK_MS to live."""
    return f"{PREFIX}record-outbox:lock"


# Today's figures for the wallboard (routing/wallboard.py): one hash per day of the contact
# centre (Europe/Amsterdam, by the app's clock), so "today" needs no scan of the records and
# every instance reads the same. It outlives its day, whatever the instances' clocks say.
CALLS_TODAY_TTL = 2 * 24 * 3600


def calls_today(day: str) -> str:
    """Hash of one day (ISO date): offered, answered, answered_in_sl, abandoned, wait_ms_sum
    (the waits of the answered calls, for the average speed of answer)."""
    return f"{PREFIX}calls-today:{day}"
