"""Does the host probe see everything a run changed on a host? Read from the run's events.

The probe (probe.py) reads what resources.py names: files, folders, links, services,
packages, users, the hostname. A host is *fully probed* when every task that ran there
(runner_on_ok) is one of:
- a module whose result names what it manages (copy, template, file, service, package...);
- a module that only reads (stat, slurp, set_fact, debug, assert, include_*...);
- a command or shell task declared read-only with `changed_when: false`;
- a task whose result is hidden (no_log) or that runs a command, and that names what it
  manages for the probe in a task variable ending in `_probe` (a list of resource keys
  such as "file:/etc/munge/munge.key"; an empty list says it leaves nothing the cluster
  depends on).
Anything else is a *gap*: the probe cannot tell whether that task's work is still in place,
so apply runs site.yml on that host instead of trusting the probe (see insync.py).
Handlers are not counted: they react to a change (restart, reload) and own no state.
Tasks are looked up by the `task_path` (file:line) the event carries, in the build's roles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import yaml

from .resources import (
    FILE_MODULES,
    PACKAGE_MODULES,
    PATH_MODULES,
    SERVICE_MODULES,
    from_result,
    ok_results,
    short_action,
)

READ_ONLY_MODULES = {
    "assert", "debug", "fail", "find", "gather_facts", "getent", "import_role", "import_tasks",
    "include_role", "include_tasks", "include_vars", "meta", "package_facts", "ping",
    "service_facts", "set_fact", "setup", "slurp", "stat", "validate_argument_spec", "wait_for",
}
PROBED_MODULES = set(FILE_MODULES) | PATH_MODULES | SERVICE_MODULES | PACKAGE_MODULES | {"hostname", "user"}
COMMAND_MODULES = {"command", "shell", "raw", "script"}
_PROBE_VAR = re.compile(r"^\w+_probe$")


@lru_cache(maxsize=256)
def _tasks_in(path: str) -> dict[int, dict]:
    """1-based line of each task mapping in a task file -> the task (blocks included)."""
    try:
        text = Path(path).read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[int, dict] = {}
    loader = yaml.SafeLoader("")

    def walk(node) -> None:
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)
        elif isinstance(node, yaml.MappingNode):
            task = loader.construct_mapping(node, deep=True)
            found[node.start_mark.line + 1] = task
            for key in ("block", "rescue", "always"):
                for k, v in node.value:
                    if k.value == key:
                        walk(v)

    if root is not None:
        walk(root)
    return found


def task_at(task_path: str) -> dict | None:
    """The task an event's task_path ("/…/roles/x/tasks/y.yml:12") points at."""
    path, _, line = task_path.rpartition(":")
    if not path or not line.isdigit():
        return None
    return _tasks_in(path).get(int(line))


def declared(task: dict | None) -> list[str] | None:
    """The resource keys a task names for the probe in its `<x>_probe` variable, if any."""
    if not task:
        return None
    for name, value in (task.get("vars") or {}).items():
        if _PROBE_VAR.match(str(name)) and isinstance(value, list):
            return [str(v) for v in value]
    return None


def classify(data: dict) -> tuple[list[str], str | None]:
    """One runner_on_ok event's data -> (resource keys its task declares for the probe,
    gap or None). Keys a module result names are resources.py's to collect."""
    action = short_action(data.get("task_action") or "")
    res = data.get("res") or {}
    where = f"{data.get('role') or 'play'}: {data.get('task')!r} ({action})"
    if action in READ_ONLY_MODULES:
        return [], None
    hidden = isinstance(res, dict) and bool(res.get("censored"))
    if action in PROBED_MODULES and not hidden:
        named = from_result(data.get("task_action") or "", res)
        return [], None if named else f"{where} names nothing the probe can read"
    task = task_at(data.get("task_path") or "")
    probe = declared(task)
    if probe is not None:
        return probe, None
    if action in COMMAND_MODULES and task is not None and task.get("changed_when") is False:
        return [], None
    if hidden:
        return [], f"{where} is hidden by no_log and names nothing for the probe"
    return [], f"{where} changes state the probe cannot see"


def from_events(events_dir: Path) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """(host -> declared resource keys, host -> gaps) from a run's job_events/."""
    return from_results(ok_results(events_dir))


def from_results(results: Iterable[tuple[str, dict]]) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """(host -> declared resource keys, host -> gaps) from resources.ok_results()."""
    _tasks_in.cache_clear()  # task files are read as they are now, once per run's events
    keys: dict[str, set[str]] = {}
    gaps: dict[str, set[str]] = {}
    for host, data in results:
        if "/handlers/" in (data.get("task_path") or ""):
            continue
        found, gap = classify(data)
        keys.setdefault(host, set()).update(found)
        gaps.setdefault(host, set()).update([gap] if gap else [])
    return keys, {h: sorted(g) for h, g in gaps.items()}
