"""Ctrl-C for long engine runs (apply, destroy): the work runs in a thread; the first Ctrl-C
sets a cancel event and waits for the command in flight to wind down (Terraform finishes its
current command, so state stays consistent; Ansible is cancelled)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import Interrupted
from ..ui import UI

__all__ = ["Interrupted", "in_thread"]


def in_thread(fn: Callable[[], Any], cancel: threading.Event, ui: UI) -> Any:
    """Run fn in a thread; Ctrl-C sets `cancel` and waits for fn to wind down."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name="apply", daemon=True).start()
    # Poll with sleep, not Thread.join: a KeyboardInterrupt inside join can leave the thread
    # looking finished while it still runs (CPython 3.11).
    while not done.is_set():
        try:
            time.sleep(0.1)
        except KeyboardInterrupt:
            if cancel.is_set():
                ui.warn("still stopping: waiting for the command in flight to finish")
            else:
                cancel.set()
                ui.warn("interrupted: stopping after the work in flight (Terraform finishes its "
                        "current command, Ansible is cancelled)")
    if "error" in box:
        raise box["error"]
    return box.get("value")
