"""The base of every domain error of kcc-ivr, and the errors of the flows package.

`KccError` lives here because flows is the package every other one may import (routing, ivr and
api all build on it), so a routing, ivr or account error can share the one base. Each error has a
stable machine-readable `code` (the staff pages translate codes, never English messages), an
English message for logs and the command line, `params` a translation may show, and a `kind`
that the web edge turns into an HTTP status (api/web/errors.py): domain code knows no HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

Param = str | int | None


class ErrorKind(StrEnum):
    INVALID = "invalid"  # the request or document is wrong: fix it and try again
    CONFLICT = "conflict"  # not now, in this state (a call in progress, live already)
    NOT_FOUND = "not_found"  # no such thing
    UNAUTHORIZED = "unauthorized"  # not signed in, or the sign-in failed
    FORBIDDEN = "forbidden"  # signed in, but not allowed
    LIMITED = "limited"  # too many attempts: wait (the params say how long) and try again
    UPSTREAM = "upstream"  # Twilio (or another service we call) failed
    UNAVAILABLE = "unavailable"  # a store of ours is away (Redis, the database)
    INTERNAL = "internal"  # a bug: never shown to a caller, logged


class KccError(Exception):
    """A domain error: `code` names it for machines, the message explains it for people."""

    code: str = "error"  # a class may set one per instance (e.g. why a transition was refused)
    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL

    def __init__(self, message: str, **params: Param) -> None:
        super().__init__(message)
        self.message = message
        self.params: dict[str, Param] = params


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a flow document, at the line a supervisor must fix.

    `message` is English (the command line shows it); `code` and `params` let a page say the same
    in its reader's language. Make one with `flows.problems.problem`, which lists every code and
    renders the message from it."""

    file: str
    line: int
    message: str
    code: str = field(default="invalid", compare=False)
    params: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FlowError(KccError):
    """Base of every error raised by the flows package."""

    code = "flow_error"
    kind = ErrorKind.INVALID


class FlowInvalid(FlowError):
    code = "flow_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class WrapUpCodeUnknown(FlowError):
    """A wrap-up code that is neither the call's product's nor shared (flow: wrap_up_codes)."""

    code = "wrap_up_code_unknown"

    def __init__(self, code: str, product: str | None) -> None:
        shown = product or "none"
        super().__init__(
            f"{code!r} is not a wrap-up code of product {shown!r} or a shared one",
            wrap_up_code=code,
            product=product,
        )
