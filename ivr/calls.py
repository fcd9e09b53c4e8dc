"""Handles each Twilio webhook of a call: load the session, run the engine, commit, answer TwiML.

This is the I/O edge of the call engine. It is given its collaborators (Redis-backed stores, a
clock, a call recorder) and knows nothing of HTTP: the API layer parses the request, checks the
signature and turns any exception into an apology (ivr/fallback.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows.errors import ErrorKind, KccError
from ivr.engine import Engine
from ivr.flow_registry import FlowRegistry
from ivr.identity.check import CheckOutcome
from ivr.identity.verifier import IdentityVerifier
from ivr.records import CallOutcome, CallRecordBase, HungUpBy, RecordChange
from ivr.session import CallPhase, CallSession, Verification
from ivr.store import NEW_CALL, SessionStore, StaleFlow
from ivr.survey import (
    SURVEY_TRIES,
    SurveyStore,
    SurveyUrls,
    survey_end,
    survey_mark,
    survey_question,
)
from ivr.turn import JoinQueue, Turn
from ivr.twiml import (
    CallUrls,
    back_to_hold,
    empty,
    hold,
    join_conference,
    leave_queue,
    render,
    speak_and_enqueue,
    speak_and_hang_up,
)
from routing.board import OfferState
from routing.call_facts import CallFactsView, EndedByWhom
from routing.clock import Clock
from routing.conferences import conference_name
from routing.entry import QueueEntry
from routing.queue import CallQueue
from routing.router import DELIVERY_WAIT_SECONDS, Router
from routing.scripts import Outcomes, ScriptStep

log = logging.getLogger(__name__)

MIN_HANDLE_TIMES = 5  # fewer recent calls than this: say nothing about the expected wait
STALE_FLOW_RETRIES = 3  # a publish landing between two tries is rare; three in a row is a bug
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

RecordCall = Callable[[CallRecordBase], Awaitable[None]]
ChangeRecord = Callable[[RecordChange], Awaitable[None]]
# a waiting caller's place in line, the product's recent handling times, the advisers working it
LineFigures = tuple[int | None, list[float], int]
NO_FIGURES: LineFigures = (None, [], 0)
# The outcomes where the caller left an adviser line without an adviser: abandoned, once a call.
LEFT_THE_LINE = frozenset({CallOutcome.ABANDONED_IN_QUEUE, CallOutcome.LEFT_QUEUE})
# A survey mark that came after the call record was written: update the row.
RecordScore = Callable[[str, int], Awaitable[None]]


class CallNotFound(KccError):
    """A step arrived for a call we hold no session for (expired, or Redis lost it)."""

    code = "call_not_found"
    kind = ErrorKind.NOT_FOUND


@dataclass
class CallHandler:
    flows: FlowRegistry  # the live version for new calls; a call keeps the one it started on
    store: SessionStore
    queue: CallQueue
    clock: Clock
    base_url: str
    verifier: IdentityVerifier | None = None
    router: Router | None = None
    record_call: RecordCall | None = None
    change_record: ChangeRecord | None = None  # a change of a call's record made earlier
    surveys: SurveyStore | None = None  # None: no survey after a conversation
    record_score: RecordScore | None = None

    # -- webhooks ----------------------------------------------------------------------------

    async def incoming(self, call_sid: str, caller: str) -> str:
        # No read first: the commit itself refuses a call that exists (a retried first webhook,
        # answered from the stored reply) or has ended, and one built on a flow version that is
        # not the live one (this instance missed an announcement): then it learns the live one.
        live = self.flows.current
        for _ in range(STALE_FLOW_RETRIES):
            now = self.clock.now()
            session = CallSession(
                call_sid=call_sid,
                caller=caller,
                flow=live.engine.flow.name,
                flow_version=live.digest,
                language=live.engine.flow.default_language,
                started_at=now,
            )
            turn = live.engine.start(session, now)
            try:
                return await self._commit(session, NEW_CALL, turn, self.flows.pointer.value)
            except StaleFlow as stale:
                live = await (self.flows.reconcile() if stale.pointer_lost else self.flows.live())
        raise RuntimeError("the live flow version kept changing while a call came in")

    async def step(self, call_sid: str, seq: int, digits: str | None, timed_out: bool) -> str:
        session = await self.store.load_for_step(call_sid, seq)
        if session is None:
            raise CallNotFound(call_sid)
        if seq != session.seq:  # a retry of a step that was answered already
            return await self._earlier_reply(session, seq)
        engine = await self._engine_of(session.flow_version)
        now = self.clock.now()
        keys_pressed = None if timed_out else digits
        check: CheckOutcome | None = None
        request = engine.identity_check(session, keys_pressed, now)
        if request is not None:
            if self.verifier is None:
                raise RuntimeError("the flow verifies identity but no verifier is configured")
            check = await self.verifier.check(
                request,
                caller=session.caller,
                call_sid=call_sid,
                seq=seq,
                now_ms=int(now.timestamp() * 1000),
            )
            del request  # the date of birth goes no further than this request
        turn = engine.answer(session, keys_pressed, now, check)
        return await self._commit(session, seq, turn)

    async def wait(
        self, call_sid: str, language: str, twilio_position: int | None, context: str = ""
    ) -> str:
        """The Enqueue waitUrl: position and expected wait, then music or silence. After a long
        wait, a callback is offered. `context`: the sealed entry the waitUrl carries."""
        entry = await self.queue.get(call_sid)
        carried = None
        if entry is None and context:  # Redis lost it: the caller's context came with the URL
            carried = self.queue.open_carried(context, call_sid)
        version = entry.flow_version if entry else carried.flow_version if carried else None
        engine = await self._engine_of(version)
        flow = engine.flow
        lang = language if language in flow.languages else flow.default_language
        if entry is None and not await self.store.has_ended(call_sid):
            # Queued by the fallback, or Redis lost it: make it routable again.
            entry = await self._adopt(call_sid, lang, carried, flow.name)
        ours, times, working = (
            await self._line_figures(call_sid, entry.product) if entry else NO_FIGURES
        )
        position = ours or twilio_position
        says = [engine.say("queue_position", lang, position=position)] if position else []
        minutes = _expected_wait(times, working, position) if entry and position else None
        if minutes is not None:
            says.append(engine.say("queue_wait", lang, minutes=minutes))
        if flow.prompts.get("queue_hold", {}).get(lang, "").strip():
            says.append(engine.say("queue_hold", lang))
        offer = None
        waited = (self.clock.now() - entry.queued_at).total_seconds() if entry else 0
        if entry is not None and not entry.callback and waited >= flow.queue.callback_after:
            offer = engine.say("callback_offer", lang)
        # The offer's URL (quoting the sealed context it carries) only when there is an offer.
        offer_url = (
            CallUrls(self.base_url, lang, context=context).callback_choice()
            if offer is not None
            else None
        )
        return hold(
            says,
            music_url=flow.queue.music_for(lang),
            seconds=flow.queue.announce_every,
            offer=offer,
            offer_url=offer_url,
        )

    async def callback_choice(
        self, call_sid: str, language: str, digits: str | None, context: str = ""
    ) -> str:
        """1 in the waitUrl's callback offer: keep the place, hang up, be called back."""
        flow = self.flows.flow
        lang = language if language in flow.languages else flow.default_language
        urls = CallUrls(self.base_url, lang, context=context)
        if digits != "1":
            return back_to_hold(urls)
        entry = await self.queue.ask_callback(call_sid)
        if entry is None:
            return back_to_hold(urls)
        log.info("callback requested", extra={"call_sid": call_sid, "product": entry.product})
        engine = await self._engine_of(entry.flow_version)
        return leave_queue([engine.say("callback_confirmed", entry.language)])

    async def queue_result(self, call_sid: str, language: str, result: str) -> str:
        """The Enqueue action: the caller left Twilio's queue (talked, hung up, left, moved...)."""
        if result == "redirected":
            return empty()  # routing moved the call to its adviser: the entry stays for the card
        entry = await self.queue.get(call_sid)
        engine = await self._engine_of(entry.flow_version if entry else None)
        lang = language if language in engine.flow.languages else engine.flow.default_language
        if entry is not None and entry.callback:
            return speak_and_hang_up([])  # they chose a callback: the entry keeps its place
        if result == "hangup":
            return empty()  # the status callback cleans up, and records the abandoned call
        if result == "bridged":
            await self.queue.remove(call_sid)
            return speak_and_hang_up([])
        if result == "queue-full":
            await self.queue.remove(call_sid)
            await self._ended_by_system(call_sid)
            return speak_and_hang_up([engine.say("queue_full", lang)])
        # error, system-error, leave: Twilio took the caller out of its queue. While open they
        # go back in (their place in our line is kept); when closed, they are asked to call back.
        if entry is not None and engine.hours.is_open(self.clock.now()):
            urls = CallUrls(self.base_url, lang, context=self.queue.carried(entry))
            return speak_and_enqueue([engine.say("queue_return", lang)], entry.product, urls)
        await self.queue.remove(call_sid)
        await self._ended_by_system(call_sid)  # the queue timed out, or closed meanwhile
        return speak_and_hang_up([engine.say("error_call_back", lang)])

    async def _ended_by_system(self, call_sid: str) -> None:
        facts = self.router.facts if self.router is not None else None
        if facts is not None:
            await facts.ended_by(call_sid, EndedByWhom.SYSTEM)

    async def _line_figures(self, call_sid: str, product: str) -> LineFigures:
        """The caller's place in line and the product's recent handling times, read together
        (one round trip on the shared connection, not two); the advisers working it only when
        there are enough times to say an expected wait (their count is kept for a second, so
        it is not read before it is needed)."""
        position, times = await asyncio.gather(
            self.queue.position(call_sid, product), self.queue.handle_times(product)
        )
        if len(times) < MIN_HANDLE_TIMES or self.router is None:
            return position, times, 0
        return position, times, await self.router.board.working(product)

    async def status(self, call_sid: str, call_status: str) -> None:
        """The number's status callback: a finished call leaves the queue and is forgotten."""
        if call_status not in FINAL_STATUSES:
            return
        # One round trip for a caller waiting in line: the ended marker first (it stops a late
        # enqueue), then in the same script the call leaves its line, and the routing state is
        # read. A call that routing has (offered, talking) keeps its entry until routing is told:
        # the adviser's card needs it. A callback keeps its place.
        routing = self.router.board.call_state_step(call_sid) if self.router else None
        facts_store = self.router.facts if self.router is not None else None
        take_facts = facts_store.take_step(call_sid) if facts_store is not None else None
        leave = self.queue.leave_step(call_sid, unless=routing.keys if routing else ())
        reads: list[ScriptStep[Any]] = [leave] if routing is None else [leave, routing]
        if take_facts is not None:
            reads.append(take_facts)
        session, found = await self.store.end(call_sid, then=reads)
        facts = found.of(take_facts) if take_facts is not None else CallFactsView()
        left = found.of(leave)
        entry, left_line = left.entry, left.left_line
        if entry is not None and entry.callback:
            if session is not None and self.record_call is not None:
                await self.record_call(
                    self._record(session, call_status, False, False, facts, CallOutcome.CALLBACK)
                )
            return  # hung up to be called back: the entry keeps its place in line
        answered = False
        if self.router is not None and routing is not None:
            answered = await self.router.caller_gone(call_sid, found.of(routing), note_facts=False)
        # Routing had it, or an entry without its line marker: the second round trip, as before.
        # No entry: nothing to take out (none can come now: the ended marker refuses it).
        if not left_line and entry is not None:
            left_line = await self.queue.remove(call_sid, entry)
        was_waiting = left_line and not answered
        if session is not None and self.record_call is not None:
            held = await self._hold_seconds(call_sid) if answered else 0
            # The last await before the record is handed over: a mark typed after this read
            # updates the row instead (ivr/survey.py).
            score = (
                await self.surveys.take_for_record(call_sid) if answered and self.surveys else None
            )
            record = self._record(
                session,
                call_status,
                was_waiting,
                answered,
                facts,
                hold_seconds=held,
                survey_score=score,
            )
            await self.record_call(record)

    async def _hold_seconds(self, call_sid: str) -> int:
        """Time the caller was held in the conversation; a hold still running ends now."""
        conferences = self.router.conferences if self.router is not None else None
        if conferences is None:
            return 0
        now_ms = int(self.clock.now().timestamp() * 1000)
        held = await conferences.hold(call_sid, False, now_ms)
        return round(held.held_ms / 1000)

    async def connect(self, call_sid: str, offer_id: str, called: str = "") -> str:
        """Routing moved the call here: into the conversation's conference, or back in line.

        The caller hears the flow's hold music there until the adviser, called in when the
        caller's join event arrives (`conference_event`), answers. For a callback, `call_sid` is
        Justis' call to the caller, answered by them. `called`: the number the caller dialled.
        """
        router = self.router
        offer = await router.board.offer(offer_id) if router else None
        callback = offer is not None and offer.dialled is not None and call_sid == offer.dialled
        waiting_sid = offer.call_sid if offer is not None and callback else call_sid
        entry, language = await self._entry_and_language(waiting_sid)
        engine = await self._engine_of(entry.flow_version if entry else None)
        urls = CallUrls(self.base_url, language)
        mine = offer is not None and (callback or offer.call_sid == call_sid)
        if router and offer is not None and mine and offer.state is OfferState.OFFERED:
            adviser = await router.board.view(offer.adviser)
            if adviser is not None and adviser.device and router.conferences is not None:
                await router.conferences.prepare(
                    waiting_sid, offer_id=offer_id, caller_leg=call_sid, called=called
                )
                if callback:  # the caller picked up: made; the database forgets it
                    await self.queue.callback_made(waiting_sid)
                if callback and self.change_record is not None:
                    await self.change_record(
                        RecordChange(
                            call_sid=waiting_sid, noted_at=self.clock.now(), callback_made=True
                        )
                    )
                greeting = [engine.say("callback_greeting", language)] if callback else []
                return join_conference(
                    conference_name(call_sid),
                    offer_id,
                    urls,
                    hold_music=engine.flow.queue.conversation_hold_music(language),
                    says=greeting,
                )
        # The offer was withdrawn meanwhile: the caller keeps waiting in line.
        product = entry.product if entry else engine.flow.queue.general_product
        return speak_and_enqueue([], product, self._carrying(urls, entry))

    async def conference_event(
        self,
        offer_id: str,
        event: str,
        *,
        conference_sid: str,
        name: str,
        call_sid: str,
        label: str,
    ) -> None:
        """The conference's statusCallback: the caller's join calls the adviser in."""
        log.info(
            "conference event",
            extra={"offer_id": offer_id, "event": event, "label": label, "call_sid": call_sid},
        )
        # The label tells the caller's join from others; routing also checks the CallSid
        # against the caller's leg it noted at connect (a join without a label is theirs only then).
        if self.router is not None and event == "participant-join" and label in ("caller", ""):
            await self.router.conference_joined(
                offer_id, conference_sid=conference_sid, name=name, caller_leg=call_sid
            )

    async def adviser_status(self, offer_id: str, call_status: str) -> None:
        """The participant status callback of the adviser's leg into the conference."""
        if self.router is not None:
            await self.router.adviser_leg_status(offer_id, call_status)

    async def transfer_status(self, call_sid: str, call_status: str) -> None:
        """The participant status callback of a transfer's target leg (a department)."""
        if self.router is not None:
            await self.router.transfer_leg_status(call_sid, call_status)

    async def offer_answered(self, offer_id: str) -> None:
        if self.router is not None:
            await self.router.answered(offer_id)

    async def dial_result(
        self, call_sid: str, offer_id: str, dial_status: str, call_status: str = "in-progress"
    ) -> str:
        """The caller left the conversation's conference (the Dial action): after a
        conversation say goodbye; else back in line. One who hung up is gone: routing is told
        now (the adviser's ringing phone stops, or the conversation ends)."""
        if call_status in FINAL_STATUSES:
            offer = await self.router.board.offer(offer_id) if self.router else None
            if self.router is not None:  # no offer: the adviser let go (a transfer in progress)
                await self.router.caller_gone(offer.call_sid if offer is not None else call_sid)
            return empty()
        handed_over = False
        if self.router is None:
            entry, language = await self._entry_and_language(call_sid)
        else:
            # Three reads at once (one round trip on the shared connection, not three in a row);
            # a warm transfer's colleague may have the call's conversation now.
            (entry, language), handed_over, offer_id = await asyncio.gather(
                self._entry_and_language(call_sid),
                self.router.handed_over(call_sid),
                self.router.conversation_offer(call_sid, offer_id),
            )
        engine = await self._engine_of(entry.flow_version if entry else None)
        urls = CallUrls(self.base_url, language)
        if handed_over:
            # Transferred to a department, who has hung up: the conversation is over.
            return speak_and_hang_up([engine.say("call_end", language)])
        settled = await self.router.dial_finished(offer_id, dial_status) if self.router else None
        if settled is not None and settled.previous is OfferState.CONNECTED:
            # The adviser ended the conversation and the caller is still on the line.
            survey = engine.flow.survey
            if survey is not None and survey.enabled and self.surveys is not None:
                await self.surveys.asked(call_sid, await self._version_of(entry, call_sid))
                voice = engine.flow.voices[language]
                return survey_question(survey, voice, SurveyUrls(self.base_url, language))
            return speak_and_hang_up([engine.say("call_end", language)])
        product = entry.product if entry else engine.flow.queue.general_product
        back = self._carrying(urls, entry)
        return speak_and_enqueue([engine.say("queue_return", language)], product, back)

    async def survey_answer(
        self, call_sid: str, language: str, attempt: int, digits: str | None
    ) -> str:
        """The caller's answer to the survey (None: silence): a mark from 1 to 10 is kept and
        thanked for; anything else is asked once more, then goodbye without a mark."""
        version = await self.surveys.version(call_sid) if self.surveys is not None else None
        engine = await self._engine_of(version)
        survey, flow = engine.flow.survey, engine.flow
        if version is None or survey is None or self.surveys is None:
            return speak_and_hang_up([])  # never asked (or a stale URL): nothing to say
        lang = language if language in flow.languages else flow.default_language
        voice = flow.voices[lang]
        score = survey_mark(digits)
        if score is None:
            if attempt < SURVEY_TRIES:
                urls = SurveyUrls(self.base_url, lang)
                return survey_question(survey, voice, urls, attempt + 1, retry=True)
            log.info("survey not answered", extra={"call_sid": call_sid})
            return survey_end(survey, voice, lang, answered=False)
        log.info("survey answered", extra={"call_sid": call_sid, "survey_score": score})
        if await self.surveys.answered(call_sid, score) and self.record_score is not None:
            try:  # the record was built already: the mark goes on its row
                await self.record_score(call_sid, score)
            except Exception:  # the caller still hears thanks; reports lose one mark
                log.exception("could not add the survey mark", extra={"call_sid": call_sid})
        return survey_end(survey, voice, lang, answered=True)

    async def _version_of(self, entry: QueueEntry | None, call_sid: str) -> str:
        """The flow version a call runs on: its queue entry's, else its session's, else live."""
        if entry is not None and entry.flow_version is not None:
            return entry.flow_version
        session = await self.store.load(call_sid)
        return session.flow_version if session is not None else self.flows.current.digest

    async def _entry_and_language(self, call_sid: str) -> tuple[QueueEntry | None, str]:
        """The call's queue entry (read once) and the language to speak to the caller in."""
        entry = await self.queue.get(call_sid)
        if entry is not None:
            return entry, entry.language
        session = await self.store.load(call_sid)
        return None, session.language if session else self.flows.flow.default_language

    # -- helpers -----------------------------------------------------------------------------

    def _carrying(self, urls: CallUrls, entry: QueueEntry | None) -> CallUrls:
        """The URLs of a call going back into Twilio's queue, its waitUrl carrying its entry."""
        if entry is None:
            return urls
        return CallUrls(urls.base, urls.language, urls.seq, context=self.queue.carried(entry))

    async def _engine_of(self, flow_version: str | None) -> Engine:
        """The engine of the version a call started on (the live one when not known)."""
        if flow_version is None:
            return self.flows.current.engine
        return (await self.flows.version(flow_version)).engine

    async def _commit(
        self, session: CallSession, answered_seq: int, turn: Turn, live_pointer: str | None = None
    ) -> str:
        session.seq = max(answered_seq, 0) + 1
        urls = CallUrls(self.base_url, session.language, session.seq)
        # Queueing the call and matching it run in the commit's script: one round trip.
        then: list[ScriptStep[Any]] = []
        match = None
        if isinstance(turn.ending, JoinQueue):
            entry = self._entry(session)
            sealed = self.queue.seal(entry)  # sealed once: for Redis and for the waitUrl
            carried = self.queue.carried(entry, sealed)
            urls = CallUrls(self.base_url, session.language, session.seq, context=carried)
            then.append(self.queue.enqueue_step(entry, sealed=sealed))
            if self.router is not None:
                match = self.router.waiting_step(turn.ending.product)
                then.append(match)
        reply = render(turn, urls)
        done = await self.store.commit(
            session, answered_seq=answered_seq, reply=reply, then=then, live_pointer=live_pointer
        )
        if done is None:
            current = await self.store.load(session.call_sid)  # another delivery won
            if current is None:
                if answered_seq == NEW_CALL:  # the call has ended already
                    return speak_and_hang_up([])
                done = await self._carry_on(session, reply, then)
            else:
                return await self._earlier_reply(current, max(answered_seq, 0))
        if match is not None:
            assert self.router is not None
            await self.router.matched(done.of(match), wait_seconds=DELIVERY_WAIT_SECONDS)
        return reply

    async def _carry_on(
        self, session: CallSession, reply: str, then: list[ScriptStep[Any]]
    ) -> Outcomes:
        """Redis has no session for a call this instance answered the previous step of: Redis
        lost it (restarted empty). The call goes on from this instance's copy, saved as if new;
        the ended marker still refuses a call that has ended. Without a copy (another instance
        answered before) the caller hears the apology and waits in the general line."""
        done = await self.store.commit(session, answered_seq=NEW_CALL, reply=reply, then=then)
        if done is None:
            raise CallNotFound(session.call_sid)
        log.warning(
            "a call went on after Redis lost its session", extra={"call_sid": session.call_sid}
        )
        return done

    async def _earlier_reply(self, session: CallSession, seq: int) -> str:
        stored = await self.store.reply(session.call_sid, seq)
        if stored is not None:
            return stored
        # Too old to be kept: say the current question again.
        engine = await self._engine_of(session.flow_version)
        turn = engine.replay(session, self.clock.now())
        return render(turn, CallUrls(self.base_url, session.language, session.seq))

    async def _adopt(
        self, call_sid: str, language: str, carried: QueueEntry | None = None, flow_name: str = ""
    ) -> QueueEntry | None:
        """Register a call that is in Twilio's queue but not in ours: with the context its
        waitUrl carried (Redis lost it), else as the fallback's (general, unverified). Either
        takes the place kept for it when Redis was lost (routing/recovery.py)."""
        if carried is not None:
            # The session comes back too (one script with the line), so that the call still
            # gets its record when it ends; only its time in the menu is not known any more.
            enqueue = self.queue.enqueue_step(carried, placed=True)
            version = carried.flow_version or self.flows.current.digest
            restored = _session_of(carried, flow_name, version)
            done = await self.store.commit(
                restored, answered_seq=NEW_CALL, reply=empty(), then=[enqueue]
            )
            if done is None:  # the session is there: the line alone (refused if it has ended)
                await self.queue.enqueue(carried, placed=True)
            log.warning(
                "a waiting call came back with its context after Redis lost it",
                extra={"call_sid": call_sid, "product": carried.product},
            )
            return carried
        flow = self.flows.flow
        session = await self.store.load(call_sid)
        now = self.clock.now()
        entry = QueueEntry(
            call_sid=call_sid,
            caller=session.caller if session else "unknown",
            language=language,
            product=flow.queue.general_product,
            theme=flow.queue.general_theme,
            verification=Verification.UNVERIFIED,
            path=[*(session.path if session else []), "fallback"],
            queued_at=now,
        )
        await self.queue.enqueue(entry, placed=True)
        log.warning("adopted a call queued by the fallback", extra={"call_sid": call_sid})
        return entry

    def _entry(self, session: CallSession) -> QueueEntry:
        assert session.product and session.theme and session.queued_at
        verified = session.verification is Verification.VERIFIED
        return QueueEntry(
            call_sid=session.call_sid,
            caller=session.caller,
            language=session.language,
            product=session.product,
            theme=session.theme,
            priority=session.priority,
            verification=session.verification,
            application_number=session.application_number if verified else None,
            application_product=session.application_product if verified else None,
            application_status=session.application_status if verified else None,
            application_status_date=session.application_status_date if verified else None,
            path=list(session.path),
            queued_at=session.queued_at,
            flow_version=session.flow_version,
        )

    def _record(
        self,
        session: CallSession,
        call_status: str,
        was_waiting: bool,
        answered: bool,
        facts: CallFactsView,
        special: CallOutcome | None = None,
        *,
        hold_seconds: int = 0,
        survey_score: int | None = None,
    ) -> CallRecordBase:
        outcome = {
            CallPhase.MENU: CallOutcome.ABANDONED_IN_MENU,
            CallPhase.ENDED: CallOutcome.ENDED_BY_FLOW,
            CallPhase.QUEUED: (
                CallOutcome.ABANDONED_IN_QUEUE if was_waiting else CallOutcome.LEFT_QUEUE
            ),
        }[session.phase]
        if answered:
            outcome = CallOutcome.ANSWERED
        if special is not None:
            outcome = special
        helped_by_machine = session.self_service and session.phase is not CallPhase.QUEUED
        now = self.clock.now().astimezone(UTC)  # a record's times are all UTC (SQLite keeps none)
        # A caller helped by the machine before choosing a product (the status check after
        # closing time) counts for the product of the application they heard about.
        product = session.product
        if product is None and helped_by_machine:
            product = session.application_product
        answered_at = _at(facts.answered_ms) if answered else None
        talk_end = _at(facts.talk_end_ms) or now
        waited_until = answered_at or now
        abandoned = outcome in LEFT_THE_LINE and session.product is not None
        # Built from the validated session: construct, not validate (30 µs less, once a call).
        return CallRecordBase.model_construct(
            call_sid=session.call_sid,
            started_at=session.started_at.astimezone(UTC),
            ended_at=now,
            flow=session.flow,
            flow_version=session.flow_version,
            language=session.language,
            product=product,
            theme=session.theme,
            path=list(session.path),
            verification=session.verification,
            outcome=outcome.value,
            self_service=helped_by_machine,
            call_status=call_status,
            queued_at=session.queued_at.astimezone(UTC) if session.queued_at else None,
            hold_seconds=hold_seconds,
            answered_at=answered_at,
            adviser=facts.adviser if answered else None,
            wait_seconds=(
                round(max(0.0, (waited_until - session.queued_at).total_seconds()), 3)
                if session.queued_at is not None
                else None
            ),
            talk_seconds=(
                max(0, round((talk_end - answered_at).total_seconds()))
                if answered_at is not None
                else None
            ),
            wrap_up_seconds=None,
            wrap_up_code=None,
            hung_up_by=_hung_up_by(session, call_status, answered, facts).value,
            abandoned=abandoned,
            callback_requested=outcome is CallOutcome.CALLBACK,
            callback_made_at=None,
            transfer_mode=facts.transfer_mode,
            transfer_target=facts.transfer_target,
            survey_score=survey_score,
        )


def _session_of(entry: QueueEntry, flow: str, flow_version: str) -> CallSession:
    """A waiting call's session rebuilt from its queue entry (Redis lost the session)."""
    return CallSession(
        call_sid=entry.call_sid,
        caller=entry.caller,
        flow=flow,
        flow_version=flow_version,
        language=entry.language,
        started_at=entry.queued_at,  # the menu's time is lost with the session
        seq=1,
        path=list(entry.path),
        verification=Verification(entry.verification),
        application_number=entry.application_number,
        application_product=entry.application_product,
        application_status=entry.application_status,
        application_status_date=entry.application_status_date,
        phase=CallPhase.QUEUED,
        product=entry.product,
        theme=entry.theme,
        priority=entry.priority,
        queued_at=entry.queued_at,
    )


def _expected_wait(times: list[float], working: int, position: int) -> int | None:
    """Minutes, from recent handling times and the advisers working the product; None when
    there is too little data to be honest about it."""
    if len(times) < MIN_HANDLE_TIMES or working == 0:
        return None
    average = sum(times) / len(times)
    rounds = -(-position // working)  # ceil: callers ahead share the advisers
    return max(1, round(rounds * average / 60))


def _at(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def _hung_up_by(
    session: CallSession, call_status: str, answered: bool, facts: CallFactsView
) -> HungUpBy:
    """Routing knows who ended a conversation, or that the queue said goodbye; the flow's
    goodbye and a call Twilio could not complete are the system's; else the caller hung up."""
    if facts.hung_up_by is not None:
        return HungUpBy(facts.hung_up_by.value)
    if answered:
        return HungUpBy.CALLER  # the conversation ends with this status callback: theirs
    if session.phase is CallPhase.ENDED or call_status != "completed":
        return HungUpBy.SYSTEM
    return HungUpBy.CALLER
