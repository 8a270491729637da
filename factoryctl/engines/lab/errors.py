"""The one error type the lab raises: a single line saying what failed and what to do."""

from __future__ import annotations

from ...errors import EngineFailure


class LabError(EngineFailure):
    """A lab operation failed. str() is one line: the failure, then the fix when known."""

    def __init__(self, what: str, hint: str | None = None) -> None:
        self.what = what
        self.hint = hint
        super().__init__(f"{what}: {hint}" if hint else what)
