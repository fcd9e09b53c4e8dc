"""Flow versions and audit entries as the supervisors' API answers them and the CLI reads them.

Pydantic only, no FastAPI: `kcc flows` builds these from the database directly, or reads them
from a running server's JSON, and prints the same table either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel

from flows.versions import AuditEntry, FlowVersion, as_utc

# SQLite, and JSON written from it by an older server, give timestamps without their offset.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class VersionSummary(BaseModel):
    number: int
    digest: str
    author: str
    created_at: UtcDatetime
    comment: str
    live: bool

    @classmethod
    def of(cls, version: FlowVersion, live: int | None) -> VersionSummary:
        return cls(
            number=version.number,
            digest=version.digest,
            author=version.author,
            created_at=version.created_at,
            comment=version.comment,
            live=version.number == live,
        )


class AuditOut(BaseModel):
    at: UtcDatetime
    actor: str
    action: str
    from_version: int | None
    to_version: int
    comment: str

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            at=entry.at,
            actor=entry.actor,
            action=entry.action.value,
            from_version=entry.from_number,
            to_version=entry.to_number,
            comment=entry.comment,
        )
