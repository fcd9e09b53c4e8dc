"""Departments a call can be transferred to (issue 12): from the flow, with their own hours.

A department is open by its own `hours` (the calendar format of the KCC's, read by the same
`OpeningHours`), or, without them, whenever the KCC is. Before a transferred call is put
through, the department's phone hears a whisper in the department's language: the product and
the question of the call, then the adviser's note. The transfer keeps what the whisper says in
Redis for a few minutes (`WhisperStore`, sealed: the note may be personal), and the whisper's
URL names only the department and the caller's call (`whisper_url`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode

from redis.asyncio import Redis

from flows.errors import ErrorKind, KccError
from flows.model import Department, Flow, OpeningRange
from ivr.engine import Engine
from ivr.hours import OpeningHours
from ivr.turn import Say
from ivr.twiml import document, say
from routing import keys
from routing.sealing import Sealer

WHISPER_PATH = "/twilio/department-whisper"


class DepartmentUnknown(KccError):
    code = "department_unknown"
    kind = ErrorKind.NOT_FOUND

    def __init__(self, key: str) -> None:
        super().__init__(f"no department {key!r} in the live flow", department=key)


class DepartmentClosed(KccError):
    code = "department_closed"
    kind = ErrorKind.CONFLICT

    def __init__(self, key: str) -> None:
        super().__init__(f"department {key!r} is closed now", department=key)


@dataclass(frozen=True)
class DepartmentStatus:
    """A department as the desk lists it, at one moment."""

    key: str
    name: dict[str, str]  # per language of the flow
    open: bool
    hours_today: OpeningRange | None  # None: closed all day
    products: list[str]


@dataclass(frozen=True)
class Whisper:
    """What a transfer tells the department: the call's product and theme, the adviser's note."""

    product: str
    theme: str
    note: str = ""

    def to_json(self) -> str:
        return json.dumps({"product": self.product, "theme": self.theme, "note": self.note})

    @classmethod
    def from_json(cls, text: str) -> Whisper:
        data = json.loads(text)
        return cls(product=str(data["product"]), theme=str(data["theme"]), note=str(data["note"]))


class Departments:
    """The departments of one flow version, with the KCC's hours for those without their own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._flow: Flow = engine.flow
        self._hours: dict[str, OpeningHours] = {
            key: OpeningHours(department.hours) if department.hours else engine.hours
            for key, department in self._flow.departments.items()
        }

    def get(self, key: str) -> Department:
        department = self._flow.departments.get(key)
        if department is None:
            raise DepartmentUnknown(key)
        return department

    def is_open(self, key: str, now: datetime) -> bool:
        self.get(key)
        return self._hours[key].is_open(now)

    def hours_today(self, key: str, now: datetime) -> OpeningRange | None:
        hours = self._hours[key]
        today: date = now.astimezone(hours.timezone).date()
        return hours.day_plan(today).hours

    def statuses(self, now: datetime, *, open_only: bool = False) -> list[DepartmentStatus]:
        """Every department (in the flow's order) at `now`; with `open_only` the open ones."""
        found = []
        for key, department in self._flow.departments.items():
            is_open = self._hours[key].is_open(now)
            if open_only and not is_open:
                continue
            found.append(
                DepartmentStatus(
                    key=key,
                    name=dict(department.name),
                    open=is_open,
                    hours_today=self.hours_today(key, now),
                    products=list(department.products),
                )
            )
        return found

    def language(self, key: str) -> str:
        return self.get(key).language or self._flow.default_language

    def whisper_says(self, key: str, whisper: Whisper | None) -> list[Say]:
        """What the department hears, in its language. Without a whisper (it expired, or the
        transfer kept none) it hears the general product and theme: never silence or an error."""
        language = self.language(key)
        flow = self._flow
        product = whisper.product if whisper else flow.queue.general_product
        theme = whisper.theme if whisper else flow.queue.general_theme
        spoken_product = flow.products.get(product, {}).get(language) or product
        question = flow.labels.themes.get(theme, {}).get(language) or theme
        says = [
            self._engine.say(
                "department_whisper", language, product=spoken_product, question=question
            )
        ]
        if whisper is not None and whisper.note.strip():
            says.append(self._engine.say("department_whisper_note", language, note=whisper.note))
        return says

    def whisper_twiml(self, key: str, whisper: Whisper | None) -> str:
        """The TwiML of the whisper URL (`<Number url=...>`): said, then the call is bridged."""
        says = self.whisper_says(key, whisper)
        return document([say(s.text, language=s.language, voice=s.voice) for s in says])


def whisper_url(base: str, department: str, call_sid: str) -> str:
    """The signed webhook Twilio fetches when the department answers: names the department
    (its language) and the caller's call (whose whisper the transfer stored)."""
    return f"{base}{WHISPER_PATH}?{urlencode({'department': department, 'call': call_sid})}"


class WhisperStore:
    """The whisper of a transfer, sealed in Redis until the department answers (or it expires)."""

    def __init__(self, redis: Redis, sealer: Sealer) -> None:
        self._redis = redis
        self._sealer = sealer

    async def put(self, call_sid: str, whisper: Whisper) -> None:
        sealed = self._sealer.seal(whisper.to_json())
        await self._redis.set(keys.call_whisper(call_sid), sealed, ex=keys.WHISPER_TTL)

    async def get(self, call_sid: str) -> Whisper | None:
        sealed = await self._redis.get(keys.call_whisper(call_sid))
        if sealed is None:
            return None
        text = sealed.decode() if isinstance(sealed, bytes) else sealed  # decode_responses
        return Whisper.from_json(self._sealer.open(text))
