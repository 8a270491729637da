"""How stages talk to the person running them: one small interface instead of consoles passed
down through every call. The command line gives stages a console UI (cli/console.py); tests
give them a RecordingUI and assert on events, not on captured text.

A stage reports progress and warnings here and *returns* its result (a dataclass); it never
decides how a result is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

# An engine's event stream (ansible-runner events) with the per-host counts so far.
EventSink = Callable[[dict, dict], None]


class UI(Protocol):
    def info(self, message: str) -> None:
        """A step of progress: `planning 3 stacks`, `node01: runs site.yml: ...`."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not fail the command."""

    def error(self, message: str) -> None:
        """A failure the command goes on after (the final one is the raised error)."""

    def show(self, renderable: Any) -> None:
        """A table or other block meant for a person (a rich renderable or plain text)."""

    def confirm(self, question: str) -> bool:
        """Ask yes/no; False where nobody can answer (no terminal)."""

    def engine_events(self, title: str) -> Any:
        """A context manager yielding an EventSink for one engine run's live progress."""


@dataclass
class Event:
    kind: str  # info | warn | error | show | confirm | engine
    message: str


@dataclass
class RecordingUI:
    """Keeps every event; answers confirmations with `answer`. For tests and for callers that
    want a stage's messages as data (e.g. a JSON report)."""

    answer: bool = False
    events: list[Event] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.events.append(Event("info", message))

    def warn(self, message: str) -> None:
        self.events.append(Event("warn", message))

    def error(self, message: str) -> None:
        self.events.append(Event("error", message))

    def show(self, renderable: Any) -> None:
        self.events.append(Event("show", str(renderable)))

    def confirm(self, question: str) -> bool:
        self.events.append(Event("confirm", question))
        return self.answer

    @contextmanager
    def engine_events(self, title: str) -> Iterator[EventSink]:
        self.events.append(Event("engine", title))
        yield lambda event, hosts: None

    def messages(self, kind: str | None = None) -> list[str]:
        return [e.message for e in self.events if kind is None or e.kind == kind]
