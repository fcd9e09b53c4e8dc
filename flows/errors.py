"""Errors of the flows package: each problem carries the file and line a supervisor must fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FlowError(Exception):
    """Base of every error raised by the flows package."""


class FlowInvalid(FlowError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
