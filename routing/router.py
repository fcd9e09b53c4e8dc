"""Routing: offers waiting calls to advisers and follows each offer to its end.

Triggers: a call joins a queue, an adviser becomes available, an offer is answered, missed or
abandoned, and a timer (`tick`) that also catches anything a lost event left behind: wrap-ups
that are over, offers nobody answered, and calls waiting while a suitable adviser is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from flows.errors import ErrorKind, KccError
from routing.board import (
    AdviserBoard,
    AdviserState,
    CallState,
    Command,
    InvalidTransition,
    Offer,
    OfferKind,
    OfferState,
    OfferView,
    Settle,
    Settled,
)
from routing.call_facts import CallFacts, EndedByWhom
from routing.conferences import (
    CallConferences,
    ConferenceView,
    Conversation,
    HoldChange,
    NoCallInProgress,
)
from routing.entry import QueueEntry
from routing.events import CallEvent, EndedBy, EventBus
from routing.live_figures import DayCounters
from routing.presence import DeskAction, DeskPresence, PhoneState, PresenceChange, PresenceOutcome
from routing.queue import CallQueue
from routing.scripts import ScriptStep
from routing.telephony import (
    CALL_ENDED,
    NewParticipant,
    ParticipantChange,
    Telephony,
    TelephonyError,
)
from routing.transfer_control import ConsultLog, TransferControls, TransferLog
from routing.transfers import TransferStore

log = logging.getLogger(__name__)
CALLBACK_OFFER_MS = 5 * 60 * 1000  # an adviser has 5 minutes to start a callback
# How long a caller's webhook waits for the offers its call made to be delivered (Twilio's REST
# redirect, with its retries: up to 18.7 s when Twilio hangs); the rest goes on in the background.
DELIVERY_WAIT_SECONDS = 1.0
CALL_CHECKS_AT_ONCE = 4  # conversations asked about at the same time, per instance


class NotACallback(KccError):
    """The adviser pressed "call back" on an offer that is not a callback (or is gone)."""

    code = "not_a_callback"
    kind = ErrorKind.CONFLICT


class ConnectUrls(Protocol):
    def connect(self, offer_id: str) -> str: ...

    def adviser_status(self, offer_id: str) -> str:
        """The status callback of the adviser's leg into the conference."""
        ...

    def transfer_status(self, call_sid: str) -> str:
        """The status callback of a transfer's target leg into the call's conference."""
        ...


# adviser, state, when (ms), call
StateChange = Callable[[str, AdviserState, int, str | None], Awaitable[None]]
# adviser, on hold (True) or back (False), when (ms), call
HoldLog = Callable[[str, bool, int, str], Awaitable[None]]
# call, its final status: what the caller's status callback does (ivr's CallHandler.status)
CallEnded = Callable[[str, str], Awaitable[None]]
FAILED_LEG = frozenset({"no-answer", "busy", "failed", "canceled"})


@dataclass
class Router(TransferControls):
    board: AdviserBoard
    queue: CallQueue
    telephony: Telephony
    events: EventBus
    urls: ConnectUrls
    now_ms: Callable[[], int]
    products: list[str]
    wrap_up_seconds: int = 30
    on_state_change: StateChange | None = None
    conferences: CallConferences | None = None
    caller_id: str | None = None  # shown on the adviser's phone; else the number called
    on_hold_change: HoldLog | None = None
    presence: DeskPresence | None = None  # None: advisers are present whatever their desk does
    transfers: TransferStore | None = None  # None: no transfers (the demo without conferences)
    on_transfer: TransferLog | None = None  # a transfer ended: its record
    on_consult_change: ConsultLog | None = None  # a consult began (True) or ended (False)
    facts: CallFacts | None = None  # what the call's record needs to know (routing/call_facts.py)
    days: DayCounters | None = None  # today's answered calls and their waits (the wallboard)
    # A conversation whose callbacks were all lost, found ended by asking Twilio: what the
    # caller's completed status callback does (call record included). None: routing's part.
    on_call_ended: CallEnded | None = None
    # The adviser's phone is called in by the caller's conference join (Twilio). False: the
    # demo's simulated phone, which rings as soon as the offer is made.
    rings_in_conference: bool = True
    # deliveries a webhook stopped waiting for (`matched`), kept so they are not collected
    _pending: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    # the checks of quiet conversations running now (Twilio's REST API; never in the tick)
    _checking: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    # -- triggers --------------------------------------------------------------------------

    async def call_waiting(self, product: str) -> None:
        await self._deliver(await self.board.match([product], self.now_ms()))

    def waiting_step(self, product: str) -> ScriptStep[list[Offer]]:
        """`call_waiting`'s match as a step of a longer script (e.g. the one that queues the
        call); hand what it answered to `matched`."""
        return self.board.match_step([product], self.now_ms())

    async def matched(self, offers: list[Offer], *, wait_seconds: float | None = None) -> None:
        """Deliver the offers a `waiting_step` made. With `wait_seconds`, wait no longer than
        that: a caller's TwiML must not wait for a slow Twilio (silence, then the webhook's
        budget runs out and cuts the delivery off halfway); the delivery goes on, and its
        retries put the call back in line if Twilio stays away."""
        if not offers:
            return
        if wait_seconds is None:
            await self._deliver(offers)
            return
        task = asyncio.create_task(self._deliver(offers))
        self._pending.add(task)
        task.add_done_callback(self._delivered)
        with contextlib.suppress(TimeoutError):
            # shield: the webhook's own timeout must not cancel the delivery either
            await asyncio.wait_for(asyncio.shield(task), wait_seconds)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("offer delivery failed", exc_info=error)

    async def adviser_command(self, name: str, command: Command) -> AdviserState:
        state = await self.board.command(name, command, self.now_ms())
        await self._state_changed(name, state, None)  # cheap: the log is written later
        if state is AdviserState.AVAILABLE:
            view = await self.board.view(name)
            await self._deliver(await self.board.match(view.skills if view else [], self.now_ms()))
        return state

    async def answered(self, offer_id: str) -> None:
        settled = await self.board.settle(offer_id, Settle.ANSWERED, self.now_ms())
        if settled is not None and settled.previous is OfferState.OFFERED:
            await self._tell(settled, "connected")
            await self._state_changed(settled.adviser, AdviserState.ON_CALL, settled.call_sid)
            await self.events.call_event(settled.call_sid, CallEvent.ANSWERED)
            await self._transfer_answered(settled.call_sid)
            # Last, once the call is put through: what the record and today's figures note,
            # sent together (one round trip on the shared connection, not one each).
            await asyncio.gather(
                self._note_answered(settled.call_sid, settled.adviser),
                self._count_answered(settled.call_sid),
            )

    async def _note_answered(self, call_sid: str, adviser: str) -> None:
        if self.facts is not None:
            await self.facts.answered(call_sid, adviser, self.now_ms())

    async def _count_answered(self, call_sid: str) -> None:
        """Today's figures: answered, after how long a wait (the settle script counted the
        call answered for /metrics; its wait is in the sealed entry, which Lua cannot read)."""
        if self.days is None:
            return
        entry = await self.queue.get(call_sid)
        if entry is None:
            return
        now = datetime.fromtimestamp(self.now_ms() / 1000, UTC)
        await self.days.count_answered(now, (now - entry.queued_at).total_seconds())

    async def dial_finished(self, offer_id: str, dial_status: str) -> Settled | None:
        """The adviser's leg ended: a conversation (wrap-up) or no answer (the call goes back)."""
        offer = await self.board.offer(offer_id)
        if offer is None:
            return None
        talked = offer.state is OfferState.CONNECTED
        outcome = Settle.FINISHED if talked else Settle.MISSED
        if not talked and offer.dialled:
            # The caller did not answer our callback: not the adviser's fault.
            outcome = Settle.WITHDRAWN
        settled = await self.board.settle(
            offer_id, outcome, self.now_ms(), wrap_up_seconds=self.wrap_up_seconds
        )
        if settled is None:
            return None
        await self._tell(settled, "ended", reason="completed" if talked else dial_status)
        await self._state_changed(settled.adviser, settled.adviser_state, settled.call_sid)
        if offer.kind is OfferKind.CALLBACK and offer.dialled:
            # Called back: done when they talked; not reached, the request ends (the adviser
            # sees it on the card). Either way the caller's place in line is released.
            await self.queue.remove(settled.call_sid)
        if talked:
            if self.facts is not None:
                await self.facts.conversation_ended(
                    settled.call_sid, self.now_ms(), EndedByWhom.ADVISER
                )
            await self.events.call_event(settled.call_sid, CallEvent.ENDED, by=EndedBy.ADVISER)
            await self._record_handle_time(settled.product, offer)
        else:
            if not offer.dialled:  # a callback not answered ends; a call goes back in line
                await self.events.call_event(settled.call_sid, CallEvent.RETURNED)
                await self._transfer_missed(settled.call_sid, dial_status)
            log.info(
                "offer not answered; the call goes back to the head of its queue",
                extra={
                    "call_sid": settled.call_sid,
                    "adviser": settled.adviser,
                    "dial_status": dial_status,
                },
            )
            await self.call_waiting(settled.product)
        return settled

    async def caller_gone(
        self, call_sid: str, call_state: CallState | None = None, *, note_facts: bool = True
    ) -> bool:
        """The caller hung up: withdraw an open offer, end a conversation. True if they talked.

        `call_state`: the board's `call_state` of the call when it was read already.
        `note_facts`: False when the call's record is being made (it knows the caller ended it).
        """
        state = call_state or await self.board.call_state(call_sid)
        answered, offer_id = state.answered, state.offer_id
        if answered and note_facts and self.facts is not None:
            await self.facts.conversation_ended(call_sid, self.now_ms(), EndedByWhom.CALLER)
        if state.transferring:
            await self._transfer_caller_gone(call_sid)
            # A warm transfer's colleague held the call's offer: now the adviser's again.
            offer_id = await self.board.offer_of_call(call_sid)
        if offer_id is None:
            return answered
        settled = await self.board.settle(
            offer_id, Settle.ABANDONED, self.now_ms(), wrap_up_seconds=self.wrap_up_seconds
        )
        conference = await self.conferences.view(call_sid) if self.conferences else None
        if settled is not None and conference is not None and conference.adviser_leg:
            # A ringing adviser's phone stops; one in the conversation leaves with the conference.
            if settled.previous is OfferState.OFFERED:
                await self._quietly(self.telephony.hang_up, conference.adviser_leg)
            elif conference.sid:
                await self._quietly(self.telephony.end_conference, conference.sid)
        if settled is not None:
            await self.events.call_event(call_sid, CallEvent.ENDED, by=EndedBy.CALLER)
            await self._tell(settled, "ended", reason="caller hung up")
            await self._state_changed(settled.adviser, settled.adviser_state, call_sid)
            if settled.adviser_state is AdviserState.AVAILABLE:
                view = await self.board.view(settled.adviser)
                await self._deliver(
                    await self.board.match(view.skills if view else [], self.now_ms())
                )
        return answered

    # -- the conversation's conference ---------------------------------------------------

    async def conference_joined(
        self, offer_id: str, *, conference_sid: str, name: str, caller_leg: str
    ) -> None:
        """The caller is in the conference: call the adviser in (once per offer)."""
        offer = await self.board.offer(offer_id)
        if offer is None or self.conferences is None:
            return
        call_sid = offer.call_sid
        noted = await self.conferences.view(call_sid)
        if noted is not None and noted.caller_leg and noted.caller_leg != caller_leg:
            return  # someone else joined (another participant's event)
        dial = await self.conferences.joined(
            call_sid,
            offer_id=offer_id,
            name=name,
            conference_sid=conference_sid,
            caller_leg=caller_leg,
        )
        adviser = await self.board.view(offer.adviser) if dial else None
        if adviser is None or not adviser.device:
            return
        conference = await self.conferences.view(call_sid)
        called = conference.called if conference else None
        try:
            leg = await self.telephony.add_participant(
                conference_sid,
                NewParticipant(
                    to=adviser.device,
                    from_=self.caller_id or called or "",
                    label="adviser",
                    timeout=self.board.offer_seconds,
                    status_callback=self.urls.adviser_status(offer_id),
                    end_conference_on_exit=False,
                ),
            )
        except TelephonyError as exc:
            log.warning(
                "could not call the adviser into the conference",
                extra={"offer_id": offer_id, "permanent": exc.permanent},
            )
            await self.adviser_leg_ended(offer_id, "failed")
            return
        await self.conferences.adviser_leg(call_sid, leg)

    async def adviser_leg_status(self, offer_id: str, call_status: str) -> None:
        """The participant status callback of the adviser's leg."""
        if call_status in ("in-progress", "answered"):
            await self.answered(offer_id)
        elif call_status in FAILED_LEG or call_status == "completed":
            await self.adviser_leg_ended(offer_id, call_status)

    async def adviser_leg_ended(self, offer_id: str, call_status: str) -> None:
        """The adviser's leg is over. Unanswered: the caller leaves the conference, back to the
        head of the line (the Dial action runs), the adviser is missed. After a conversation:
        the caller leaves too, and the Dial action says goodbye and settles the call."""
        offer = await self.board.offer(offer_id)
        if offer is None:
            return  # settled already (the caller hung up, or a repeated callback)
        if await self._consult_target_left(offer, call_status):
            return  # a warm transfer's colleague: the adviser is back with the caller
        if offer.state is OfferState.CONNECTED and await self._consult_left(offer):
            return
        conference = await self.conferences.view(offer.call_sid) if self.conferences else None
        if conference is not None and conference.sid and conference.caller_leg:
            await self._quietly(
                self.telephony.remove_participant, conference.sid, conference.caller_leg
            )
        if offer.state is OfferState.OFFERED:
            await self.dial_finished(offer_id, call_status)

    async def hold(self, adviser: str, on_hold: bool, hold_url: str) -> HoldChange:
        """Hold the adviser's caller (with `hold_url` playing), or bring them back."""
        talk = await self._conversation(adviser)
        return await self._set_hold(adviser, talk, on_hold, hold_url)

    async def _set_hold(
        self, adviser: str, talk: Conversation, on_hold: bool, hold_url: str = ""
    ) -> HoldChange:
        change = ParticipantChange(
            hold=on_hold, hold_url=hold_url if on_hold and hold_url else None
        )
        await self.telephony.update_participant(talk.conference_sid, talk.caller_leg, change)
        call_sid = talk.call_sid
        held = await talk.conferences.hold(call_sid, on_hold, self.now_ms())
        if held.changed and self.on_hold_change is not None:
            await self.on_hold_change(adviser, on_hold, self.now_ms(), call_sid)
        if held.changed:
            await self.events.publish(adviser, "hold", {"call_sid": call_sid, "hold": on_hold})
            await self.events.call_event(call_sid, CallEvent.HELD if on_hold else CallEvent.UNHELD)
        return held

    async def mute(self, adviser: str, muted: bool) -> None:
        """Mute the adviser's own leg (a phone; the browser phone mutes itself)."""
        talk = await self._conversation(adviser)
        if talk.adviser_leg is None:
            raise NoCallInProgress("the adviser's phone is not in the conversation")
        change = ParticipantChange(muted=muted)
        await self.telephony.update_participant(talk.conference_sid, talk.adviser_leg, change)
        await talk.conferences.set_muted(talk.call_sid, muted)

    async def conversation_offer(self, call_sid: str, offer_id: str) -> str:
        """The offer of the call's conversation now: a warm transfer's colleague's after the
        hand-over, while the caller's Dial action still names the first adviser's."""
        conference = await self.conferences.view(call_sid) if self.conferences else None
        return conference.offer_id if conference is not None and conference.offer_id else offer_id

    async def conference_of(self, adviser: str) -> ConferenceView | None:
        view = await self.board.view(adviser)
        if view is None or view.call_sid is None or self.conferences is None:
            return None
        return await self.conferences.view(view.call_sid)

    async def _conversation(self, adviser: str) -> Conversation:
        view = await self.board.view(adviser)
        if view is None or view.state is not AdviserState.ON_CALL or view.call_sid is None:
            raise NoCallInProgress("there is no call in progress")
        conferences = self.conferences
        conference = await conferences.view(view.call_sid) if conferences else None
        if conferences is None or conference is None or not conference.sid:
            raise NoCallInProgress("the call is not in a conference")
        if not conference.caller_leg:
            raise NoCallInProgress("the call is not in a conference")
        if conference.offer_id and view.offer_id and conference.offer_id != view.offer_id:
            # A warm transfer's colleague in the consult: the call is theirs once completed.
            raise NoCallInProgress("the call is still the transferring adviser's")
        return Conversation(
            conferences,
            view.call_sid,
            conference.sid,
            conference.caller_leg,
            conference.adviser_leg,
        )

    async def _quietly(self, action: Callable[..., Awaitable[None]], *args: str) -> None:
        """A clean-up Twilio may have done already (the participant left): not an error."""
        try:
            await action(*args)
        except TelephonyError as exc:
            log.info("conference clean-up not needed or failed", extra={"permanent": exc.permanent})

    async def tick(self) -> None:
        """Periodic safety net; safe to run on every instance at once."""
        now = self.now_ms()
        for name in await self.board.due_wrap_ups(now):
            try:
                await self.adviser_command(name, Command.READY)
            except InvalidTransition:  # already moved on (break, offline): nothing to do
                log.debug("wrap-up already ended", extra={"adviser": name})
        for offer_id in await self.board.stale_offers(now):
            log.warning("offer expired without an answer", extra={"offer_id": offer_id})
            await self._offer_expired(offer_id)
        await self._check_quiet_calls(now)
        if self.presence is not None:
            await self._presence_changed(await self.presence.sweep_due(self.now_ms()))
        await self._deliver(await self.board.match(self.products, self.now_ms()))

    async def _offer_expired(self, offer_id: str) -> None:
        """Nobody settled the offer by its deadline. If the adviser's phone was called, it was
        not answered (missed). If it never was (the instance that made the offer died before
        its redirect, or before the caller's join called the adviser in), the offer is
        withdrawn: not the adviser's fault."""
        offer = await self.board.offer(offer_id)
        if (
            self.conferences is not None
            and self.rings_in_conference
            and offer is not None
            and offer.state is OfferState.OFFERED
            and offer.kind is OfferKind.CALL
            and not await self._is_consult(offer)  # a colleague's leg is called in directly
        ):
            conference = await self.conferences.view(offer.call_sid)
            if conference is None or conference.dialled_offer != offer_id:
                await self._withdraw_unrung(offer, conference)
                return
        # The caller may be alone in the conference, with music: they go back in line.
        await self.adviser_leg_ended(offer_id, "no-answer")

    async def _withdraw_unrung(self, offer: OfferView, conference: ConferenceView | None) -> None:
        settled = await self.board.settle(offer.offer_id, Settle.WITHDRAWN, self.now_ms())
        if settled is None or settled.previous is not OfferState.OFFERED:
            return  # answered or settled meanwhile
        log.warning(
            "offer withdrawn: the adviser's phone was never called",
            extra={"offer_id": offer.offer_id, "call_sid": offer.call_sid},
        )
        if conference is not None and conference.offer_id == offer.offer_id:
            # The caller did fetch this offer's conference (music, nobody called in): the
            # connect URL of a withdrawn offer puts them back in the queue. Otherwise they never
            # left Twilio's queue and hear its music still.
            try:
                await self.telephony.redirect(offer.call_sid, self.urls.connect(offer.offer_id))
            except TelephonyError:  # gone (its status cleans up), or Twilio away: the caller
                log.warning("could not take the call back", extra={"call_sid": offer.call_sid})
        await self._tell(settled, "ended", reason="withdrawn")
        await self._state_changed(settled.adviser, settled.adviser_state, settled.call_sid)
        await self.events.call_event(settled.call_sid, CallEvent.RETURNED)
        await self.call_waiting(settled.product)

    async def _check_quiet_calls(self, now_ms: int) -> None:
        """Claim the conversations due for a check (one script: a read of a small sorted set
        when none is) and ask Twilio about them in the background: a slow Twilio must not hold
        up the tick. One batch at a time per instance."""
        if self._checking is not None and not self._checking.done():
            return
        due = await self.board.due_call_checks(now_ms)
        if due:
            self._checking = asyncio.create_task(self._check_calls(due))

    async def checks_done(self) -> None:
        """Wait for the checks of quiet conversations this instance started."""
        if self._checking is not None:
            await asyncio.shield(self._checking)

    def stop_checks(self) -> None:
        """Shutting down: a check cut short is claimed again after the interval."""
        if self._checking is not None:
            self._checking.cancel()

    async def _check_calls(self, offer_ids: list[str]) -> None:
        # A few at a time: each takes a worker thread (the SDK is synchronous) for up to 18.7 s
        # when Twilio is slow, and the offers' redirects need those threads too.
        slots = asyncio.Semaphore(CALL_CHECKS_AT_ONCE)

        async def check(offer_id: str) -> None:
            async with slots:
                await self._check_call(offer_id)

        results = await asyncio.gather(
            *(check(offer_id) for offer_id in offer_ids), return_exceptions=True
        )
        for offer_id, result in zip(offer_ids, results, strict=True):
            if isinstance(result, BaseException):
                log.error("call check failed", extra={"offer_id": offer_id}, exc_info=result)

    async def _check_call(self, offer_id: str) -> None:
        """Ask Twilio whether the caller of a quiet conversation is still there. Only a final
        status ends it, exactly as the caller's completed status callback would; Twilio away
        or unsure changes nothing (the check comes again after the interval)."""
        offer = await self.board.offer(offer_id)
        if offer is None or offer.state is not OfferState.CONNECTED:
            await self.board.forget_call_check(offer_id)  # ended (a consult's end, say)
            return
        caller_leg = offer.dialled or offer.call_sid  # a callback talks on Justis' call
        try:
            status = await self.telephony.call_status(caller_leg)
        except TelephonyError as exc:
            log.warning(
                "could not ask Twilio about a quiet conversation",
                extra={"call_sid": offer.call_sid, "permanent": exc.permanent},
            )
            return
        if status not in CALL_ENDED:
            return
        log.warning(
            "conversation ended without a callback reaching routing",
            extra={"call_sid": offer.call_sid, "adviser": offer.adviser, "status": status},
        )
        if offer.dialled is None and self.on_call_ended is not None:
            await self.on_call_ended(offer.call_sid, status)
        else:  # a callback: as its Dial action with a final status would
            await self.caller_gone(offer.call_sid)
            # ... and as `dial_finished` does: the entry (the caller's number, sealed) goes now,
            # not when its callback time runs out days later.
            await self.queue.remove(offer.call_sid)
        await self.board.forget_call_check(offer_id)

    # -- presence (routing/presence.py) ----------------------------------------------------

    async def desk_beat(self, name: str, tab: str) -> None:
        """A desk tab's event stream is open (called when it opens and every few seconds)."""
        await self._desk(name, tab, DeskAction.BEAT)

    async def desk_gone(self, name: str, tab: str) -> None:
        await self._desk(name, tab, DeskAction.GONE)

    async def phone_reported(self, name: str, tab: str, phone: PhoneState) -> None:
        await self._desk(name, tab, DeskAction.PHONE, phone)

    async def _desk(
        self, name: str, tab: str, action: DeskAction, phone: PhoneState = PhoneState.REGISTERED
    ) -> None:
        if self.presence is not None:
            outcomes = await self.presence.desk(name, tab, action, self.now_ms(), phone=phone)
            await self._presence_changed(outcomes)

    async def _presence_changed(self, outcomes: list[PresenceOutcome]) -> None:
        for outcome in outcomes:
            if outcome.change is PresenceChange.WITHDRAW and outcome.offer_id is not None:
                await self._withdraw_from_absent(outcome.adviser, outcome.offer_id)
                continue
            log.info(
                "desk presence changed the adviser's state",
                extra={"adviser": outcome.adviser, "state": outcome.state.value},
            )
            await self._state_changed(outcome.adviser, outcome.state, None)
            if outcome.state is AdviserState.AVAILABLE:
                view = await self.board.view(outcome.adviser)
                await self._deliver(
                    await self.board.match(view.skills if view else [], self.now_ms())
                )

    async def _withdraw_from_absent(self, adviser: str, offer_id: str) -> None:
        """A call rings at a desk that is gone: as when not answered, the caller goes back to
        the head of the line; the adviser becomes AWAY in the same script."""
        assert self.presence is not None
        now = self.now_ms()
        settle = self.board.settle_step(offer_id, Settle.WITHDRAWN, now)
        settled, outcomes = await self.presence.withdraw(settle, adviser, now)
        # Never another withdrawal from here: a dangling offer must not loop.
        outcomes = [o for o in outcomes if o.change is not PresenceChange.WITHDRAW]
        if settled is None or settled.previous is not OfferState.OFFERED:
            await self._presence_changed(outcomes)  # answered meanwhile, or another instance won
            return
        log.info(
            "offer withdrawn: the adviser's desk is gone",
            extra={"call_sid": settled.call_sid, "adviser": adviser},
        )
        entry = await self.queue.get(settled.call_sid)
        if entry is not None and not entry.callback:
            try:  # end the ringing: /twilio/connect of a withdrawn offer queues the caller again
                await self.telephony.redirect(settled.call_sid, self.urls.connect(offer_id))
            except TelephonyError:  # gone, or Twilio away: the Dial's own end puts it back
                log.warning("could not take the call back", extra={"call_sid": settled.call_sid})
        await self._tell(settled, "ended", reason="away")
        await self.events.call_event(settled.call_sid, CallEvent.RETURNED)
        await self._presence_changed(outcomes)
        await self.call_waiting(settled.product)

    # -- helpers ---------------------------------------------------------------------------

    async def _deliver(self, offers: list[Offer]) -> None:
        for offer in offers:
            await self._deliver_one(offer)

    async def _deliver_one(self, offer: Offer) -> None:
        entry = await self.queue.get(offer.call_sid)
        if entry is not None and entry.callback:
            # The caller is not on the line: the adviser calls them back from the desk.
            await self.board.mark_callback(offer.offer_id, self.now_ms() + CALLBACK_OFFER_MS)
            card = {**self._card(offer.offer_id, entry), "kind": OfferKind.CALLBACK.value}
            await self.events.publish(offer.adviser, "offer", card)
            await self._state_changed(offer.adviser, AdviserState.OFFERED, offer.call_sid)
            return
        try:
            await self.telephony.redirect(offer.call_sid, self.urls.connect(offer.offer_id))
        except TelephonyError as exc:
            # Permanent: the call is gone (hung up). Otherwise: back to its place; try later.
            outcome = Settle.ABANDONED if exc.permanent else Settle.WITHDRAWN
            log.warning(
                "could not move the call to its adviser",
                extra={"call_sid": offer.call_sid, "permanent": exc.permanent},
            )
            settled = await self.board.settle(offer.offer_id, outcome, self.now_ms())
            if exc.permanent:
                await self.queue.remove(offer.call_sid)
            if settled is not None:
                await self._state_changed(settled.adviser, settled.adviser_state, None)
            return
        card = {**self._card(offer.offer_id, entry), "kind": OfferKind.CALL.value}
        await self.events.publish(offer.adviser, "offer", card)
        await self._state_changed(offer.adviser, AdviserState.OFFERED, offer.call_sid)
        await self.events.call_event(offer.call_sid, CallEvent.OFFERED)

    async def call_back(self, offer_id: str, *, caller_id: str, status_callback: str) -> str:
        """The adviser presses "call back": Justis calls the caller, who is then put through."""
        offer = await self.board.offer(offer_id)
        entry = await self.queue.get(offer.call_sid) if offer is not None else None
        if offer is None or offer.kind is not OfferKind.CALLBACK or entry is None:
            raise NotACallback("this offer is not a callback")
        dialled = await self.telephony.dial_out(
            to=entry.caller,
            from_=caller_id,
            url=self.urls.connect(offer_id),
            status_callback=status_callback,
        )
        await self.board.set_dialled(offer_id, dialled)
        return dialled

    async def _tell(self, settled: Settled, event: str, **extra: Any) -> None:
        entry = await self.queue.get(settled.call_sid)
        await self.events.publish(
            settled.adviser, event, {**self._card("", entry), **extra, "call_sid": settled.call_sid}
        )

    def _card(self, offer_id: str, entry: QueueEntry | None) -> dict[str, Any]:
        card: dict[str, Any] = entry.model_dump(mode="json") if entry else {}
        if entry is not None:
            card["waited_seconds"] = max(
                0, (self.now_ms() - int(entry.queued_at.timestamp() * 1000)) // 1000
            )
        card["offer_id"] = offer_id
        return card

    async def _state_changed(
        self, adviser: str, state: AdviserState, call_sid: str | None, *, at_ms: int | None = None
    ) -> None:
        await self.events.publish(adviser, "state", {"status": state.value})
        if self.on_state_change is not None:
            await self.on_state_change(adviser, state, at_ms or self.now_ms(), call_sid)

    async def _record_handle_time(self, product: str, offer: OfferView) -> None:
        if offer.connected_ms:
            seconds = (self.now_ms() - offer.connected_ms) / 1000
            await self.queue.record_handle_time(product, seconds)
