"""Configuration drift: `ansible-playbook --check --diff` of the applied site.yml on live
hosts, through ansible-runner, read back per host and per task with the diff Ansible shows.

A task that would change something in check mode is drift: the host no longer matches what
apply left there. A host Ansible cannot reach, or a task that fails, is not drift but a
check that could not be made; the caller keeps the two apart.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..engines.ansible import HostStats, run_playbook

DIFF_LINES = 200  # per task: enough to read, bounded for a report


@dataclass
class TaskChange:
    task: str
    action: str
    what: str  # one line: the file, service or package and how it would change
    diff: str = ""

    def to_dict(self) -> dict:
        return {"task": self.task, "action": self.action, "what": self.what, "diff": self.diff}


@dataclass
class CheckRun:
    rc: int
    status: str
    hosts: dict[str, HostStats] = field(default_factory=dict)
    changes: dict[str, list[TaskChange]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # host -> why it could not be checked
    artifact_dir: Path | None = None


def _text_diff(d: dict) -> str:
    before, after = d.get("before", ""), d.get("after", "")
    if isinstance(before, str) and isinstance(after, str):
        # before_header is the file on the host; after_header names the controller's copy,
        # a scratch path that means nothing to the reader.
        name = d.get("before_header") or d.get("after_header") or "file"
        lines = list(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                          f"{name} (on the host)", f"{name} (as applied)"))
        if len(lines) > DIFF_LINES:
            lines = lines[:DIFF_LINES] + [f"... {len(lines) - DIFF_LINES} more diff lines\n"]
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return "".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}\n" for k in keys if before.get(k) != after.get(k))
    if d.get("prepared"):
        return str(d["prepared"]).rstrip("\n") + "\n"
    return ""


def diff_text(diff) -> str:
    """Ansible's `diff` result (a dict or a list of them) as readable text."""
    parts = diff if isinstance(diff, list) else [diff]
    return "".join(_text_diff(d) for d in parts if isinstance(d, dict))


def describe(action: str, res: dict) -> str:
    """One line naming what the task would change."""
    args = (res.get("invocation") or {}).get("module_args") or {}
    short = action.rsplit(".", 1)[-1]
    target = res.get("dest") or res.get("path") or args.get("dest") or args.get("path")
    if short in ("service", "systemd", "systemd_service", "sysvinit"):
        name = res.get("name") or args.get("name")
        state = args.get("state") or ""
        verb = {"started": "would be started", "stopped": "would be stopped",
                "restarted": "would be restarted", "reloaded": "would be reloaded"}.get(state, "would change")
        return f"service {name} {verb}"
    if short in ("package", "apt", "dnf", "yum"):
        return f"package(s) {args.get('name')} would be {'removed' if args.get('state') == 'absent' else 'installed'}"
    if target:
        return f"file {target} would change"
    return f"{short} would change"


def _changes_of(data: dict) -> list[TaskChange]:
    res = data.get("res") or {}
    action = data.get("task_action") or ""
    task = data.get("task") or ""
    if res.get("censored"):
        return [TaskChange(task, action, "a no_log task would change (its diff is hidden)")]
    items = res["results"] if isinstance(res.get("results"), list) else [res]
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("changed"):
            out.append(TaskChange(task, action, describe(action, item), diff_text(item.get("diff"))))
    return out


def read_events(events_dir: Path) -> tuple[dict[str, list[TaskChange]], dict[str, str]]:
    """(host -> changes, host -> error) from a runner artifact folder's job_events/."""
    changes: dict[str, list[TaskChange]] = {}
    errors: dict[str, str] = {}
    if not events_dir.is_dir():
        return changes, errors
    events = []
    for path in events_dir.iterdir():
        if path.suffix == ".json":
            try:
                events.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
    events.sort(key=lambda e: e.get("counter", 0))
    for e in events:
        data = e.get("event_data") or {}
        host = data.get("host")
        if not host:
            continue
        kind = e.get("event")
        if kind == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            changes.setdefault(host, []).extend(_changes_of(data))
        elif kind == "runner_on_unreachable":
            errors.setdefault(host, f"unreachable: {(data.get('res') or {}).get('msg', '')}".strip())
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            msg = (data.get("res") or {}).get("msg", "")
            errors.setdefault(host, f"task {data.get('task', '')!r} failed in check mode: {str(msg)[:300]}")
    return changes, errors


def check(tree: Path, run_dir: Path, *, hosts: list[str], forks: int, envvars: dict, inventories: list[str],
          fact_cache: Path, cancel=None, observer=None) -> CheckRun:
    """Run `site.yml --check --diff` of `tree`/ansible on `hosts` only."""
    adir = tree / "ansible"
    run = run_playbook(adir, "site.yml", run_dir, limit=",".join(sorted(hosts)), check=True, diff=True,
                       forks=forks, envvars=envvars, inventory=inventories, fact_cache=fact_cache,
                       cancel=cancel, observer=observer)
    changes, errors = read_events(run.artifact_dir / "job_events")
    for h, s in run.hosts.items():
        if s.unreachable and h not in errors:
            errors[h] = f"unreachable: {s.last_error}"
    if run.rc != 0 and not errors and run.status != "successful":
        errors["*"] = f"ansible-playbook ended {run.status} (rc {run.rc}); see {run.artifact_dir}/stdout"
    return CheckRun(run.rc, run.status, run.hosts, changes, errors, run.artifact_dir)
