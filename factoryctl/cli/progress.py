"""Live per-host progress from an engine's event stream: a rich table on a terminal, plain
lines in CI (no TTY, or --plain), and the same recap at the end either way (when the run
returned: a run that raised shows none)."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..engines.ansible import HostStats


def recap_table(hosts: dict[str, HostStats], title: str = "Ansible recap") -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped", "last error"):
        t.add_column(col)
    for name in sorted(hosts):
        s = hosts[name]
        style = "red" if s.failed or s.unreachable else ("yellow" if s.changed else "")
        t.add_row(name, str(s.ok), str(s.changed), str(s.failed), str(s.unreachable), str(s.skipped),
                  s.last_error[:80], style=style)
    return t


class HostProgress:
    def __init__(self, console: Console, plain: bool):
        self.console = console
        self.plain = plain or not console.is_terminal
        self.task = ""
        self.live: Live | None = None
        self._hosts: dict[str, HostStats] = {}

    def __enter__(self):
        if not self.plain:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        if exc[0] is None:
            self.console.print(recap_table(self._hosts))
        return False

    def _render(self) -> Table:
        t = recap_table(self._hosts, title=f"task: {self.task}" if self.task else "starting")
        return t

    def __call__(self, event: dict, hosts: dict[str, HostStats]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        self._hosts = hosts
        if kind == "playbook_on_task_start":
            self.task = data.get("task", "")
            if self.plain:
                self.console.print(f"TASK [{data.get('role') + ' : ' if data.get('role') else ''}{self.task}]",
                                   markup=False, highlight=False)
        elif self.plain and kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            what = "UNREACHABLE" if kind.endswith("unreachable") else "FAILED"
            self.console.print(f"  {data.get('host')}: {what}: {hosts.get(data.get('host'), HostStats()).last_error}",
                               markup=False, highlight=False)
        if self.live is not None:
            self.live.update(self._render())
