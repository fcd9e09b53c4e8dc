"""The transfer controls of routing's `Router` (routing/router.py), kept apart so that each
module stays about one thing: transfer a caller to a colleague, a product's queue or a
department, cold or warm; follow the target's leg; complete, cancel; record each transfer.

Redis state and the Lua steps are in routing/transfers.py; docs/routing.md#transfers has the
rules. `TransferControls` is a base of `Router`: it uses the router's collaborators and helpers
(declared below for the type checker).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from routing.board import (
    AdviserBoard,
    AdviserState,
    Offer,
    OfferKind,
    OfferState,
    OfferView,
    Settle,
    Settled,
)
from routing.conferences import CallConferences, Conversation, HoldChange, NoCallInProgress
from routing.events import CallEvent, EventBus
from routing.queue import CallQueue, priority_base
from routing.scripts import Refused, ScriptStep
from routing.telephony import NewParticipant, ParticipantChange, Telephony, TelephonyError
from routing.transfers import (
    ALL_STATES,
    REFUSALS,
    TARGET_FAILED,
    CallTransfer,
    ConsultEnd,
    NoTransferInProgress,
    Target,
    TargetKind,
    TargetNotAnswered,
    Transfer,
    TransferMode,
    TransferOutcome,
    TransferRefused,
    TransferState,
    TransferStore,
    WarmNeedsSomeone,
)

if TYPE_CHECKING:
    from routing.entry import QueueEntry
    from routing.router import ConnectUrls

log = logging.getLogger(__name__)
TransferLog = Callable[[CallTransfer], Awaitable[None]]
ConsultLog = Callable[[str, bool, int, str], Awaitable[None]]  # adviser, consulting, ms, call
Claimed = Callable[[], Awaitable[None]]  # a transfer was claimed: e.g. store its whisper


class TransferControls:
    if TYPE_CHECKING:  # the Router's, which this is a base of
        board: AdviserBoard
        queue: CallQueue
        telephony: Telephony
        events: EventBus
        urls: ConnectUrls
        now_ms: Callable[[], int]
        wrap_up_seconds: int
        conferences: CallConferences | None
        caller_id: str | None
        transfers: TransferStore | None
        on_transfer: TransferLog | None
        on_consult_change: ConsultLog | None

        async def _conversation(self, adviser: str) -> Conversation: ...

        async def _set_hold(
            self, adviser: str, talk: Conversation, on_hold: bool, hold_url: str = ""
        ) -> HoldChange: ...

        async def _deliver(self, offers: list[Offer]) -> None: ...

        async def _tell(self, settled: Settled, event: str, **extra: Any) -> None: ...

        def _card(self, offer_id: str, entry: QueueEntry | None) -> dict[str, Any]: ...

        async def _state_changed(
            self,
            adviser: str,
            state: AdviserState,
            call_sid: str | None,
            *,
            at_ms: int | None = None,
        ) -> None: ...

        async def _quietly(self, action: Callable[..., Awaitable[None]], *args: str) -> None: ...

        async def call_waiting(self, product: str) -> None: ...

    async def transfer(
        self,
        adviser: str,
        target: Target,
        mode: TransferMode,
        *,
        note: str = "",
        hold_url: str = "",
        claimed: Claimed | None = None,
    ) -> Transfer:
        """Transfer the adviser's caller. To a colleague or a queue (cold): the call takes the
        head of that line with its context, the note and who sent it, and the adviser goes to
        wrap-up. Warm to a colleague, or to a department: the caller is held and the target
        is called into the conference; cold (a department), the adviser leaves at once; warm,
        they consult it first.
        Raises TransferRefused (`transfer_in_progress`, `adviser_unavailable`) or
        NoCallInProgress."""
        if mode is TransferMode.WARM and target.kind is TargetKind.QUEUE:
            raise WarmNeedsSomeone("a queue has nobody to consult; transfer to it cold")
        try:
            return await self._start_transfer(adviser, target, mode, note, hold_url, claimed)
        except NoCallInProgress:
            # The conversation may have ended by a transfer of the same call a moment ago.
            await self._refuse_if_transferred_by(adviser)
            raise

    async def _start_transfer(
        self,
        adviser: str,
        target: Target,
        mode: TransferMode,
        note: str,
        hold_url: str,
        claimed: Claimed | None,
    ) -> Transfer:
        transfers = self._transfers()
        talk = await self._conversation(adviser)
        view = await self.board.view(adviser)
        entry = await self.queue.get(talk.call_sid)
        if view is None or view.offer_id is None or entry is None:
            raise NoCallInProgress("there is no call in progress")
        now = self.now_ms()
        claim = transfers.claim_step(
            talk.call_sid,
            offer_id=view.offer_id,
            adviser=adviser,
            mode=mode,
            target=target,
            now_ms=now,
        )
        if target.kind is TargetKind.DEPARTMENT:
            return await self._transfer_to_department(
                adviser, talk, claim, view.offer_id, mode, hold_url, claimed
            )
        warm = mode is TransferMode.WARM  # a colleague: consulted in this conference
        moved = entry.model_copy(
            update={
                "product": target.key if target.kind is TargetKind.QUEUE else entry.product,
                "transferred_by": adviser,
                "transfer_note": note or None,
            }
        )
        settle = self.board.settle_step(
            view.offer_id, Settle.FINISHED, now, wrap_up_seconds=self.wrap_up_seconds
        )
        route = transfers.route_step(
            talk.call_sid,
            sealed_entry=self.queue.seal(moved),
            product=moved.product,
            adviser=target.key if target.kind is TargetKind.ADVISER else None,
            now_ms=now,
            offer_deadline_ms=now + (self.board.offer_seconds + 15) * 1000,
            empty_line_score=priority_base(entry.priority),
        )
        match = self.board.match_step([moved.product], now)
        # Warm, the transferring adviser keeps their conversation until the consult ends.
        steps: list[ScriptStep[Any]] = [claim, route] if warm else [claim, settle, route]
        if target.kind is TargetKind.QUEUE:
            steps.append(match)
        try:
            done = await transfers.run(*steps)
        except Refused as refused:
            if REFUSALS[refused.reason][0] == NoCallInProgress.code:
                raise NoCallInProgress(REFUSALS[refused.reason][1]) from None
            raise TransferRefused(*REFUSALS[refused.reason]) from None
        transfer = await transfers.get(talk.call_sid)
        assert transfer is not None
        if warm:
            consult = done.of(route)
            if not isinstance(consult, Offer):  # the caller has gone meanwhile
                await transfers.step(talk.call_sid, ALL_STATES, None)
                raise NoCallInProgress("there is no call in progress")
            return await self._consult_colleague(talk, transfer, consult, hold_url)
        await talk.conferences.hold(talk.call_sid, False, now)  # a hold ends with the conversation
        await talk.conferences.moved(talk.call_sid)
        await self._adviser_let_go(adviser, done.of(settle), target)
        routed = done.of(route)
        offers: list[Offer] = [routed] if isinstance(routed, Offer) else []
        if target.kind is TargetKind.QUEUE:
            matched: list[Offer] = done.of(match)
            offers.extend(matched)
        mine = [o for o in offers if o.call_sid == talk.call_sid]
        await self._deliver(offers)  # the caller is moved (REST) into the new conversation
        if not mine:
            # Waits in the line: the caller leaves the conference, whose Dial action puts them
            # in Twilio's queue ("u blijft vooraan"); routing put them at its head.
            await self._quietly(
                self.telephony.remove_participant, talk.conference_sid, talk.caller_leg
            )
        return transfer

    async def _refuse_if_transferred_by(self, adviser: str) -> None:
        view = await self.board.view(adviser)
        call_sid = view.call_sid or view.last_call_sid if view is not None else None
        transfer = await self.transfer_of(call_sid) if call_sid else None
        if transfer is not None and transfer.adviser == adviser:
            raise TransferRefused(*REFUSALS[1])

    async def _transfer_to_department(
        self,
        adviser: str,
        talk: Conversation,
        claim: ScriptStep[bool],
        offer_id: str,
        mode: TransferMode,
        hold_url: str,
        claimed: Claimed | None,
    ) -> Transfer:
        transfers = self._transfers()
        now = self.now_ms()
        settle = self.board.settle_step(
            offer_id, Settle.FINISHED, now, wrap_up_seconds=self.wrap_up_seconds
        )
        steps: list[ScriptStep[Any]] = [claim] + ([settle] if mode is TransferMode.COLD else [])
        try:
            done = await transfers.run(*steps)
        except Refused as refused:
            if REFUSALS[refused.reason][0] == NoCallInProgress.code:
                raise NoCallInProgress(REFUSALS[refused.reason][1]) from None
            raise TransferRefused(*REFUSALS[refused.reason]) from None
        transfer = await transfers.get(talk.call_sid)
        assert transfer is not None
        if claimed is not None:
            await claimed()
        await self._set_hold(adviser, talk, True, hold_url)
        if mode is TransferMode.COLD:
            if talk.adviser_leg:  # the adviser lets go at once: their leg leaves the conference
                await self._quietly(
                    self.telephony.remove_participant, talk.conference_sid, talk.adviser_leg
                )
            await self._adviser_let_go(adviser, done.of(settle), transfer.target)
        else:
            await self._consulting(adviser, talk.call_sid, True)
            await self._tell_transfer(transfer, "calling")
        conference = await talk.conferences.view(talk.call_sid)
        try:
            leg = await self.telephony.add_participant(
                talk.conference_sid,
                NewParticipant(
                    to=transfer.target.to,
                    from_=self.caller_id or (conference.called if conference else None) or "",
                    label="transfer",
                    timeout=self.board.offer_seconds,
                    status_callback=self.urls.transfer_status(talk.call_sid),
                    end_conference_on_exit=False,
                ),
            )
        except TelephonyError as exc:
            log.warning("could not call the transfer's target", extra={"permanent": exc.permanent})
            await self.transfer_leg_status(talk.call_sid, "failed")
            return transfer
        await transfers.step(
            talk.call_sid, (TransferState.STARTED,), TransferState.STARTED, leg=leg
        )
        return transfer

    async def _consult_colleague(
        self, talk: Conversation, transfer: Transfer, consult: Offer, hold_url: str
    ) -> Transfer:
        """Warm to a colleague: the caller is held and the colleague's device is called into
        this conference as the transfer's target, on their own offer of the call (the call's
        offer while the consult lasts); their screen-pop has the context, who and the note."""
        transfers = self._transfers()
        await self._set_hold(transfer.adviser, talk, True, hold_url)
        await self._consulting(transfer.adviser, talk.call_sid, True)
        await self._tell_transfer(transfer, "calling")
        entry = await self.queue.get(talk.call_sid)
        card = {**self._card(consult.offer_id, entry), "kind": OfferKind.CALL.value}
        await self.events.publish(consult.adviser, "offer", card)
        await self._state_changed(consult.adviser, AdviserState.OFFERED, talk.call_sid)
        colleague = await self.board.view(consult.adviser)
        conference = await talk.conferences.view(talk.call_sid)
        try:
            if colleague is None or not colleague.device:
                raise TelephonyError("the colleague has no device", permanent=True)
            leg = await self.telephony.add_participant(
                talk.conference_sid,
                NewParticipant(
                    to=colleague.device,
                    from_=self.caller_id or (conference.called if conference else None) or "",
                    label="transfer",
                    timeout=self.board.offer_seconds,
                    status_callback=self.urls.adviser_status(consult.offer_id),
                    end_conference_on_exit=False,
                ),
            )
        except TelephonyError as exc:
            log.warning("could not call the colleague in", extra={"permanent": exc.permanent})
            view = await self.board.offer(consult.offer_id)
            if view is not None:
                await self._consult_target_left(view, "failed")
            return transfer
        await transfers.step(
            talk.call_sid, (TransferState.STARTED,), TransferState.STARTED, leg=leg
        )
        return transfer

    async def _consult_target_left(self, offer: OfferView, call_status: str) -> bool:
        """The colleague's leg of a warm transfer ended before the hand-over (True; False:
        `offer` is no consult's). Not answered: they are missed, as for any offer; hung up
        during the consult: available. Either way the adviser is back with the caller."""
        transfer = await self.transfer_of(offer.call_sid)
        if not _is_consult_of(transfer, offer.offer_id):
            return False
        assert transfer is not None
        answered = offer.state is OfferState.CONNECTED
        was = TransferState.ANSWERED if answered else TransferState.STARTED
        if await self._transfers().step(offer.call_sid, (was,), None) is None:
            return True  # cancelled or completed meanwhile
        if answered:
            outcome, reason = TransferOutcome.CANCELLED, "ended"
        else:
            outcome = TARGET_FAILED.get(call_status, TransferOutcome.NO_ANSWER)
            reason = outcome.value
            conference = await self.conferences.view(offer.call_sid) if self.conferences else None
            if transfer.leg and conference is not None and conference.sid:
                await self._quietly(self.telephony.remove_participant, conference.sid, transfer.leg)
        end = ConsultEnd.AVAILABLE if answered else ConsultEnd.MISSED
        await self._colleague_leaves(transfer, offer.offer_id, end, call_status)
        await self._record_transfer(transfer, outcome, answered=answered)
        await self._back_with_caller(transfer, reason)
        return True

    async def _colleague_leaves(
        self, transfer: Transfer, consult_offer: str, end: ConsultEnd, reason: str
    ) -> None:
        """A warm transfer's colleague leaves without the call: their desk is told."""
        settled = await self._transfers().end_consult(
            consult_offer=consult_offer,
            colleague=transfer.target.key,
            call_sid=transfer.call_sid,
            first_offer=transfer.offer_id,
            outcome=end,
            now_ms=self.now_ms(),
        )
        if settled is None:
            return
        await self._tell(settled, "ended", reason=reason)
        # No call: the conversation (and who monitors it) goes on with the adviser.
        await self._state_changed(settled.adviser, settled.adviser_state, None)

    async def _consult_offer(self, transfer: Transfer) -> str | None:
        """The colleague's offer of a warm transfer to a colleague (the call's offer meanwhile)."""
        if transfer.mode is not TransferMode.WARM or transfer.target.kind is not TargetKind.ADVISER:
            return None
        offer_id = await self.board.offer_of_call(transfer.call_sid)
        return offer_id if offer_id and offer_id != transfer.offer_id else None

    async def transfer_leg_status(self, call_sid: str, call_status: str) -> None:
        """The participant status callback of a transfer's target leg (a department)."""
        transfers = self._transfers()
        if call_status in ("in-progress", "answered"):
            transfer = await transfers.step(
                call_sid, (TransferState.STARTED,), TransferState.ANSWERED
            )
            if transfer is None:
                return  # cancelled meanwhile, or a repeated callback
            conference = await self.conferences.view(call_sid) if self.conferences else None
            if transfer.target.announce_url and transfer.leg and conference and conference.sid:
                # The department hears the whisper (product, question, note) as it joins.
                change = ParticipantChange(announce_url=transfer.target.announce_url)
                await self._quietly_update(conference.sid, transfer.leg, change)
            if transfer.mode is TransferMode.COLD:
                await self._hand_over(transfer)
            else:
                await self._tell_transfer(transfer, "answered")
            return
        if call_status in TARGET_FAILED:
            transfer = await transfers.step(call_sid, (TransferState.STARTED,), None)
            if transfer is not None:
                await self._target_failed(transfer, TARGET_FAILED[call_status])
            return
        if call_status == "completed":
            transfer = await transfers.get(call_sid)
            if transfer is None:
                return
            if transfer.state is TransferState.STARTED:  # ended without ever answering
                if await transfers.step(call_sid, (TransferState.STARTED,), None):
                    await self._target_failed(transfer, TransferOutcome.NO_ANSWER)
            elif transfer.state is TransferState.ANSWERED:
                # The target hung up during the consult: the adviser is back with the caller.
                if await transfers.step(call_sid, (TransferState.ANSWERED,), None):
                    await self._back_with_caller(transfer, "ended")
                    await self._record_transfer(transfer, TransferOutcome.CANCELLED, answered=True)
            else:  # handed over: the department hung up, the caller's conversation is over
                conference = await self.conferences.view(call_sid) if self.conferences else None
                if conference is not None and conference.sid:
                    await self._quietly(self.telephony.end_conference, conference.sid)

    async def complete_transfer(self, adviser: str) -> Transfer:
        """Warm: the target answered; the adviser leaves, the caller and the target talk."""
        talk = await self._conversation(adviser)
        transfers = self._transfers()
        current = await transfers.get(talk.call_sid)
        if current is None or current.adviser != adviser:
            raise NoTransferInProgress("there is no transfer to complete")
        if current.state is TransferState.STARTED:
            raise TargetNotAnswered("the target has not answered yet")
        transfer = await transfers.step(
            talk.call_sid, (TransferState.ANSWERED,), TransferState.ANSWERED
        )
        if transfer is None:
            raise NoTransferInProgress("there is no transfer to complete")
        await self._hand_over(transfer, talk)
        return transfer

    async def cancel_transfer(self, adviser: str) -> Transfer:
        """Warm: the target leaves (or stops ringing); the adviser is back with the caller."""
        talk = await self._conversation(adviser)
        transfers = self._transfers()
        current = await transfers.get(talk.call_sid)
        if current is None or current.adviser != adviser:
            raise NoTransferInProgress("there is no transfer to cancel")
        transfer = await transfers.step(
            talk.call_sid, (TransferState.STARTED, TransferState.ANSWERED), None
        )
        if transfer is None:
            raise NoTransferInProgress("there is no transfer to cancel")
        consult = await self._consult_offer(transfer)
        if consult is not None:  # before the leg goes: its callback then finds no offer
            await self._colleague_leaves(transfer, consult, ConsultEnd.AVAILABLE, "cancelled")
        if transfer.leg:
            await self._quietly(
                self.telephony.remove_participant, talk.conference_sid, transfer.leg
            )
        await self._back_with_caller(transfer, "cancelled")
        answered = transfer.state is TransferState.ANSWERED
        await self._record_transfer(transfer, TransferOutcome.CANCELLED, answered=answered)
        return transfer

    async def transfer_of(self, call_sid: str) -> Transfer | None:
        return await self.transfers.get(call_sid) if self.transfers else None

    async def _is_consult(self, offer: OfferView) -> bool:
        """The offer is a warm transfer's colleague's (their leg is called in by the transfer)."""
        return _is_consult_of(await self.transfer_of(offer.call_sid), offer.offer_id)

    async def handed_over(self, call_sid: str) -> bool:
        """The caller was put through to a department: their conversation there is over."""
        transfer = await self.transfer_of(call_sid)
        return transfer is not None and transfer.state is TransferState.HANDED_OVER

    async def _hand_over(self, transfer: Transfer, talk: Conversation | None = None) -> None:
        """The caller talks to the target: off hold; a warm transfer's adviser leaves. A
        colleague's offer becomes the call's: the conversation is theirs from now on."""
        transfers = self._transfers()
        consult = await self._consult_offer(transfer)
        await transfers.step(
            transfer.call_sid,
            (TransferState.ANSWERED,),
            # A colleague's call is an ordinary conversation again (and may be transferred).
            None if consult else TransferState.HANDED_OVER,
        )
        conference = await self.conferences.view(transfer.call_sid) if self.conferences else None
        if conference is not None and conference.sid and conference.caller_leg:
            change = ParticipantChange(hold=False)
            await self._quietly_update(conference.sid, conference.caller_leg, change)
            now = self.now_ms()
            held = (
                await self.conferences.hold(transfer.call_sid, False, now)
                if self.conferences
                else None
            )
            if held is not None and held.changed:
                await self.events.call_event(transfer.call_sid, CallEvent.UNHELD)
        if transfer.mode is TransferMode.WARM:
            settled = await self.board.settle(
                transfer.offer_id,
                Settle.FINISHED,
                self.now_ms(),
                wrap_up_seconds=self.wrap_up_seconds,
            )
            await self._consulting(transfer.adviser, transfer.call_sid, False)
            if talk is not None and talk.adviser_leg:
                await self._quietly(
                    self.telephony.remove_participant, talk.conference_sid, talk.adviser_leg
                )
            await self._adviser_let_go(transfer.adviser, settled, transfer.target)
        if consult is not None and self.conferences is not None:
            await self.conferences.handed_to(transfer.call_sid, consult, transfer.leg or "")
            await self._consulting(transfer.target.key, transfer.call_sid, False)  # on_call
        await self._record_transfer(transfer, TransferOutcome.ANSWERED, answered=True)

    async def _target_failed(self, transfer: Transfer, outcome: TransferOutcome) -> None:
        """Not answered, busy or failed: warm, the adviser is back with the caller; cold, the
        caller is back at the head of their line, with an apology."""
        await self._record_transfer(transfer, outcome, answered=False)
        if transfer.mode is TransferMode.WARM:
            await self._back_with_caller(transfer, outcome.value)
            return
        entry = await self.queue.get(transfer.call_sid)
        conference = await self.conferences.view(transfer.call_sid) if self.conferences else None
        if entry is None or conference is None or self.conferences is None:
            return  # the caller has gone
        now = self.now_ms()
        route = self._transfers().route_step(
            transfer.call_sid,
            sealed_entry=self.queue.seal(entry),
            product=entry.product,
            adviser=None,
            now_ms=now,
            offer_deadline_ms=now,
            empty_line_score=priority_base(entry.priority),
        )
        await self._transfers().run(route)
        await self.conferences.hold(transfer.call_sid, False, now)  # the hold time ends here
        await self.events.call_event(transfer.call_sid, CallEvent.RETURNED)
        if conference.sid and conference.caller_leg:
            # The Dial action puts the caller in Twilio's queue: "u blijft vooraan".
            await self._quietly(
                self.telephony.remove_participant, conference.sid, conference.caller_leg
            )
        await self.call_waiting(entry.product)

    async def _back_with_caller(self, transfer: Transfer, reason: str) -> None:
        """A consult ended without a hand-over: the caller is taken off hold."""
        conference = await self.conferences.view(transfer.call_sid) if self.conferences else None
        if conference is not None and conference.sid and conference.caller_leg:
            talk = Conversation(
                self.conferences,  # type: ignore[arg-type]
                transfer.call_sid,
                conference.sid,
                conference.caller_leg,
                conference.adviser_leg,
            )
            try:
                await self._set_hold(transfer.adviser, talk, False)
            except TelephonyError:
                log.warning(
                    "could not take the caller off hold", extra={"call_sid": transfer.call_sid}
                )
        await self._consulting(transfer.adviser, transfer.call_sid, False)
        await self._tell_transfer(transfer, reason)

    async def _adviser_let_go(self, adviser: str, settled: Settled | None, target: Target) -> None:
        """The transferring adviser's conversation is over: ended on the desk, wrap-up."""
        if settled is None:
            return
        await self._tell(settled, "ended", reason="transferred", transferred_to=target.name)
        await self._state_changed(adviser, settled.adviser_state, settled.call_sid)
        await self.events.call_event(settled.call_sid, CallEvent.TRANSFERRED, to=target.kind.value)

    async def _transfer_caller_gone(self, call_sid: str) -> None:
        """The caller hung up: a transfer in progress ends with them."""
        if self.transfers is None:
            return
        transfer = await self.transfers.get(call_sid)
        consult = await self._consult_offer(transfer) if transfer is not None else None
        transfer = await self.transfers.step(call_sid, ALL_STATES, None)
        if transfer is None or transfer.state is TransferState.HANDED_OVER:
            return
        if consult is not None:  # the colleague is free again; the adviser's offer ends next
            await self._colleague_leaves(transfer, consult, ConsultEnd.AVAILABLE, "caller hung up")
        conference = await self.conferences.view(call_sid) if self.conferences else None
        if transfer.leg and conference is not None and conference.sid:
            await self._quietly(self.telephony.remove_participant, conference.sid, transfer.leg)
        if transfer.mode is TransferMode.WARM:
            await self._consulting(transfer.adviser, call_sid, False)
        answered = transfer.state is TransferState.ANSWERED
        await self._record_transfer(transfer, TransferOutcome.CALLER_HUNG_UP, answered=answered)

    async def _transfer_answered(self, call_sid: str) -> None:
        """A colleague (or someone on the queue's line) answered a transferred call."""
        transfer = await self.transfer_of(call_sid)
        if transfer is None or transfer.target.kind is TargetKind.DEPARTMENT:
            return
        if transfer.mode is TransferMode.WARM:  # the colleague answered: the consult begins
            if await self._transfers().step(
                call_sid, (TransferState.STARTED,), TransferState.ANSWERED
            ):
                await self._consulting(transfer.target.key, call_sid, True)
                await self._tell_transfer(transfer, "answered")
            return
        if await self._transfers().step(call_sid, (TransferState.STARTED,), None):
            await self._record_transfer(transfer, TransferOutcome.ANSWERED, answered=True)

    async def _transfer_missed(self, call_sid: str, dial_status: str) -> None:
        """The colleague a call was transferred to did not answer: it waits at the head of its
        line (settled missed) and the transfer is over. A queue's transfer waits on."""
        transfer = await self.transfer_of(call_sid)
        if transfer is None or transfer.target.kind is not TargetKind.ADVISER:
            return
        if await self._transfers().step(call_sid, (TransferState.STARTED,), None):
            outcome = TARGET_FAILED.get(dial_status, TransferOutcome.NO_ANSWER)
            await self._record_transfer(transfer, outcome, answered=False)

    async def _consult_left(self, offer: OfferView) -> bool:
        """The adviser hung up during a warm transfer: a target who answered takes the caller
        (True: the call goes on); one still ringing is called off, and the call ends."""
        transfer = await self.transfer_of(offer.call_sid)
        if transfer is None or transfer.mode is not TransferMode.WARM:
            return False
        transfers = self._transfers()
        if transfer.state is TransferState.ANSWERED:
            if await transfers.step(
                offer.call_sid, (TransferState.ANSWERED,), TransferState.ANSWERED
            ):
                await self._hand_over(transfer)
                return True
            return False
        if await transfers.step(offer.call_sid, (TransferState.STARTED,), None):
            consult = await self._consult_offer(transfer)
            if consult is not None:
                await self._colleague_leaves(transfer, consult, ConsultEnd.AVAILABLE, "cancelled")
            conference = await self.conferences.view(offer.call_sid) if self.conferences else None
            if transfer.leg and conference is not None and conference.sid:
                await self._quietly(self.telephony.remove_participant, conference.sid, transfer.leg)
            await self._consulting(transfer.adviser, offer.call_sid, False)
            await self._record_transfer(transfer, TransferOutcome.CANCELLED, answered=False)
        return False

    async def _consulting(self, adviser: str, call_sid: str, consulting: bool) -> None:
        if self.on_consult_change is not None:
            await self.on_consult_change(adviser, consulting, self.now_ms(), call_sid)

    async def _tell_transfer(self, transfer: Transfer, state: str) -> None:
        await self.events.publish(
            transfer.adviser,
            "transfer",
            {
                "call_sid": transfer.call_sid,
                "state": state,
                "to": transfer.target.name,
                "mode": transfer.mode.value,
            },
        )

    async def _record_transfer(
        self, transfer: Transfer, outcome: TransferOutcome, *, answered: bool
    ) -> None:
        if self.on_transfer is None:
            return
        record = CallTransfer(
            call_sid=transfer.call_sid,
            adviser=transfer.adviser,
            target_kind=transfer.target.kind.value,
            target=transfer.target.key,
            mode=transfer.mode.value,
            answered=answered,
            outcome=outcome.value,
            started_at=datetime.fromtimestamp(transfer.since_ms / 1000, UTC),
            ended_at=datetime.fromtimestamp(self.now_ms() / 1000, UTC),
        )
        await self.on_transfer(record)

    async def _quietly_update(
        self, conference_sid: str, call_sid: str, change: ParticipantChange
    ) -> None:
        try:
            await self.telephony.update_participant(conference_sid, call_sid, change)
        except TelephonyError as exc:
            log.info("participant update failed", extra={"permanent": exc.permanent})

    def _transfers(self) -> TransferStore:
        if self.transfers is None or self.conferences is None:
            raise NoCallInProgress("transfers need conversations in a conference")
        return self.transfers


def _is_consult_of(transfer: Transfer | None, offer_id: str) -> bool:
    """`offer_id` is the colleague's offer of this warm transfer (not the adviser's own)."""
    return (
        transfer is not None
        and transfer.mode is TransferMode.WARM
        and transfer.target.kind is TargetKind.ADVISER
        and transfer.offer_id != offer_id
        and transfer.state is not TransferState.HANDED_OVER
    )
