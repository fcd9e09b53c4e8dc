"""The call engine: walks a flow for one webhook at a time. Pure: no I/O, no clock of its own.

The engine runs through nodes that need no caller input (say, goto, hours) until it reaches one
that waits for keys (menu, gather, verify) or ends the flow (queue, hangup). The session it is
given is changed in place; the caller persists it.
"""

from __future__ import annotations

import re
from datetime import datetime

from flows.model import (
    Flow,
    GatherNode,
    GotoNode,
    HangupNode,
    HoursNode,
    MenuNode,
    Node,
    QueueNode,
    SayNode,
    VerifyNode,
)
from ivr.hours import OpeningHours
from ivr.session import CallPhase, CallSession, Verification
from ivr.turn import AskKeys, HangUp, JoinQueue, Say, Turn

MAX_AUTOMATIC_STEPS = 200  # the validator forbids loops without input; this is a second guard


class EngineError(Exception):
    """The flow cannot continue (a bug or a flow that slipped past validation)."""


class Engine:
    def __init__(self, flow: Flow, hours: OpeningHours) -> None:
        self.flow = flow
        self.hours = hours

    def start(self, session: CallSession, now: datetime) -> Turn:
        return self._run(session, self.flow.start, now, Turn())

    def answer(self, session: CallSession, digits: str | None, now: datetime) -> Turn:
        """The caller pressed `digits` (None: nothing before the timeout) at the waiting node."""
        if session.node is None or session.phase is not CallPhase.MENU:
            raise EngineError(f"call is not waiting for keys (phase {session.phase})")
        node = self.flow.node(session.node)
        match node:
            case MenuNode():
                return self._menu_answer(session, node, digits or None, now)
            case GatherNode():
                return self._gather_answer(session, node, digits or None, now)
            case _:
                raise EngineError(f"node {session.node!r} does not take keys")

    def replay(self, session: CallSession) -> Turn:
        """Ask again at the waiting node (a late or stale webhook)."""
        if session.node is None:
            return Turn(says=[], ending=HangUp())
        return Turn(ending=self._ask(session, self.flow.node(session.node)))

    def say(self, prompt: str, language: str, **values: object) -> Say:
        voice = self.flow.voices[language]
        text = self.flow.text(prompt, language)
        return Say(
            text=text.format(**values) if values else text,
            language=voice.language,
            voice=voice.voice,
        )

    # -- walking ---------------------------------------------------------------------------

    def _run(self, session: CallSession, node_id: str, now: datetime, turn: Turn) -> Turn:
        for _ in range(MAX_AUTOMATIC_STEPS):
            node = self.flow.node(node_id)
            language = session.language
            match node:
                case SayNode():
                    turn.says.append(self.say(node.prompt, language))
                    node_id = node.next
                case GotoNode():
                    node_id = node.next
                case HoursNode():
                    status = self.hours.status(now)
                    if status.announcement and language in status.announcement:
                        turn.says.append(self._plain(status.announcement[language], language))
                    node_id = node.open if status.open else node.closed
                case VerifyNode():
                    # Placeholder until identity verification lands: the call goes on unverified.
                    session.verification = Verification.UNVERIFIED
                    node_id = node.next
                case MenuNode() | GatherNode():
                    session.node = node_id
                    session.attempts = 0
                    turn.ending = self._ask(session, node)
                    return turn
                case QueueNode():
                    if node.closed is not None and not self.hours.is_open(now):
                        session.path.append(f"{node_id}=closed")
                        node_id = node.closed
                        continue
                    return self._join_queue(session, node, now, turn)
                case HangupNode():
                    if node.prompt:
                        turn.says.append(self.say(node.prompt, language))
                    session.node = None
                    session.phase = CallPhase.ENDED
                    turn.ending = HangUp()
                    return turn
        raise EngineError(f"more than {MAX_AUTOMATIC_STEPS} steps without input from {node_id!r}")

    def _join_queue(self, session: CallSession, node: QueueNode, now: datetime, turn: Turn) -> Turn:
        if node.prompt:
            turn.says.append(self.say(node.prompt, session.language))
        session.node = None
        session.phase = CallPhase.QUEUED
        session.product, session.theme, session.priority = node.product, node.theme, node.priority
        session.queued_at = now
        turn.ending = JoinQueue(product=node.product, theme=node.theme, priority=node.priority)
        return turn

    def _ask(self, session: CallSession, node: Node) -> AskKeys:
        match node:
            case MenuNode():
                return AskKeys(
                    prompt=[self.say(node.prompt, session.language)],
                    timeout=node.timeout,
                    num_digits=1,
                    finish_on_key="",
                )
            case GatherNode():
                return AskKeys(
                    prompt=[self.say(node.prompt, session.language)],
                    timeout=node.timeout,
                    num_digits=node.max_digits if not node.finish_on_key else None,
                    finish_on_key=node.finish_on_key,
                )
        raise EngineError(f"node kind {node.kind!r} does not ask for keys")

    # -- answers ---------------------------------------------------------------------------

    def _menu_answer(
        self, session: CallSession, node: MenuNode, key: str | None, now: datetime
    ) -> Turn:
        node_id = session.node
        assert node_id is not None
        if key is not None and key == node.repeat:
            return Turn(ending=self._ask(session, node))
        option = node.option(key) if key is not None else None
        if option is not None:
            session.path.append(f"{node_id}={key}")
            if option.language is not None:
                session.language = option.language
            session.node = None
            return self._run(session, option.next, now, Turn())
        complaint = node.no_input if key is None else node.invalid
        return self._retry(session, node, complaint, node.retries, node.on_fail, now)

    def _gather_answer(
        self, session: CallSession, node: GatherNode, digits: str | None, now: datetime
    ) -> Turn:
        node_id = session.node
        assert node_id is not None
        if digits is not None:
            digits = digits.rstrip("#*")
        if digits and _digits_fit(node, digits):
            session.values[node.store] = digits
            session.path.append(f"{node_id}=entered")  # never the digits themselves
            session.node = None
            return self._run(session, node.next, now, Turn())
        complaint = node.no_input if not digits else node.invalid
        return self._retry(session, node, complaint, node.retries, node.on_fail, now)

    def _retry(
        self,
        session: CallSession,
        node: MenuNode | GatherNode,
        complaint: str,
        retries: int,
        on_fail: str,
        now: datetime,
    ) -> Turn:
        """Say what went wrong; ask again up to `retries` times, then go to `on_fail`."""
        session.attempts += 1
        turn = Turn(says=[self.say(complaint, session.language)])
        if session.attempts > retries:
            session.path.append(f"{session.node}=failed")
            session.node = None
            return self._run(session, on_fail, now, turn)
        turn.ending = self._ask(session, node)
        return turn

    def _plain(self, text: str, language: str) -> Say:
        voice = self.flow.voices[language]
        return Say(text=text, language=voice.language, voice=voice.voice)


def _digits_fit(node: GatherNode, digits: str) -> bool:
    if not digits.isdigit() or not node.min_digits <= len(digits) <= node.max_digits:
        return False
    return node.pattern is None or re.fullmatch(node.pattern, digits) is not None
