"""The UI stages report to (factoryctl.ui.UI), shown on the terminal: progress on stdout,
warnings and errors on stderr, live per-host tables for engine runs (plain lines without a
terminal or with --plain)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from ..ui import EventSink
from .progress import HostProgress


class ConsoleUI:
    def __init__(self, out: Console, err: Console, plain: bool = False):
        self.out, self.err, self.plain = out, err, plain

    def info(self, message: str) -> None:
        self.out.print(message, markup=False, highlight=False)

    def warn(self, message: str) -> None:
        self.err.print(f"warning: {message}", markup=False, highlight=False)

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False, highlight=False)

    def show(self, renderable: Any) -> None:
        self.out.print(renderable)

    def confirm(self, question: str) -> bool:
        if not sys.stdin.isatty():
            return False
        self.out.print(f"{question} Only 'yes' will be accepted.", markup=False)
        try:
            return input("  Enter a value: ").strip() == "yes"
        except EOFError:
            return False

    @contextmanager
    def engine_events(self, title: str) -> Iterator[EventSink]:
        """Live per-host progress of one engine run; its recap table when the run returns."""
        with HostProgress(self.out, self.plain) as progress:
            yield progress
