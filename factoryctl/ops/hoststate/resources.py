"""What Ansible manages on each host, read from the event stream of an apply.

Every module result Ansible reports names the thing it manages: the `dest` of a copy or
template, the `path` of a file, lineinfile or replace, the `name` of a service or package.
Collected per host after an apply, this list is what drift's host probe looks at, so the
probe covers exactly what the playbook put in place, whatever roles a site uses. Results
hidden by `no_log` (the munge key) name nothing and are not listed; `drift --full` checks
them through the playbook itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

# module (short name) -> kind of resource, and where its result names it
FILE_MODULES = {"copy": "dest", "template": "dest", "get_url": "dest"}
PATH_MODULES = {"file", "lineinfile", "blockinfile", "replace"}
SERVICE_MODULES = {"service", "systemd", "systemd_service", "sysvinit"}
PACKAGE_MODULES = {"package", "apt", "dnf", "yum"}


def short_action(action: str) -> str:
    return action.rsplit(".", 1)[-1]


def _names(value) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int))]
    return []


def from_result(action: str, res: dict) -> list[str]:
    """The resources one module result names, as "<kind>:<name>" keys."""
    if not isinstance(res, dict) or res.get("censored") or res.get("skipped") or res.get("failed"):
        return []
    if isinstance(res.get("results"), list):  # a loop: one result per item
        return [k for item in res["results"] for k in from_result(action, item)]
    short = short_action(action)
    args = (res.get("invocation") or {}).get("module_args") or {}
    if short in FILE_MODULES:
        dest = res.get("dest") or args.get("dest")
        return [f"file:{dest}"] if isinstance(dest, str) and dest.startswith("/") else []
    if short in PATH_MODULES:
        path = res.get("path") or res.get("dest") or args.get("path") or args.get("dest")
        if not (isinstance(path, str) and path.startswith("/")):
            return []
        state = res.get("state") or args.get("state")
        if short == "file" and state == "directory":
            return [f"dir:{path}"]
        if short == "file" and state == "absent":
            return [f"absent:{path}"]
        if short == "file" and state == "link":
            return [f"link:{path}"]
        return [f"file:{path}"]
    if short in SERVICE_MODULES:
        name = res.get("name") or args.get("name")
        state = args.get("state")
        if not isinstance(name, str) or state not in ("started", "stopped", "restarted", "reloaded"):
            return []
        return [f"service:{name}" if state != "stopped" else f"stopped:{name}"]
    if short in PACKAGE_MODULES:
        if args.get("state") in ("absent", "removed"):
            return [f"nopackage:{n}" for n in _names(args.get("name"))]
        return [f"package:{n}" for n in _names(args.get("name")) if not n.endswith((".deb", ".rpm"))]
    if short == "hostname":
        name = args.get("name")
        return [f"hostname:{name}"] if isinstance(name, str) else []
    if short == "user":
        name = args.get("name")
        return [f"user:{name}"] if isinstance(name, str) and args.get("state", "present") == "present" else []
    return []


def ok_results(events_dir: Path) -> Iterator[tuple[str, dict]]:
    """(host, event_data) of every task result that succeeded, from a runner artifact
    folder's job_events/ (unreadable event files are passed over)."""
    if not events_dir.is_dir():
        return
    for path in events_dir.iterdir():
        if path.suffix != ".json":
            continue
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if event.get("event") != "runner_on_ok":
            continue
        data = event.get("event_data") or {}
        if data.get("host"):
            yield data["host"], data


def from_events(events_dir: Path) -> dict[str, list[str]]:
    """host -> sorted resource keys, from a runner artifact folder's job_events/."""
    return from_results(ok_results(events_dir))


def from_results(results: Iterable[tuple[str, dict]]) -> dict[str, list[str]]:
    """host -> sorted resource keys, from ok_results()."""
    found: dict[str, set[str]] = {}
    for host, data in results:
        keys = from_result(data.get("task_action") or "", data.get("res") or {})
        found.setdefault(host, set()).update(keys)
    return {h: sorted(k) for h, k in sorted(found.items())}
