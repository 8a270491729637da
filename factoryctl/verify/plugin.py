"""pytest plugin of the host checks: which checks run where, and one JSON line per outcome.

Load it with ``-p factoryctl.verify.plugin`` beside testinfra's own options:

    pytest -p factoryctl.verify.plugin test_hosts.py --hosts=ansible://all \\
        --ansible-inventory=inventory.json [--ssh-config=ssh_config] [-n 2 --dist loadgroup] \\
        --factoryctl-results=results.jsonl --junitxml=pytest.xml

``--hosts`` selects whose checks run: ``ansible://all`` or ``ansible://NAME,ansible://NAME``
(Ansible inventory names; testinfra's ansible backend reaches them, multiplexed through the
ssh_config when one is given), ``ssh://NAME`` (ssh_config aliases), or ``local://`` (this
machine is the declared host named by ``--factoryctl-local-name``, default its hostname: only
checks that run on it are collected). Each check is parametrised as ``<host>::<check>`` and
grouped by the host its commands run on, so ``--dist loadgroup`` keeps one host's checks on
one xdist worker (one SSH master per host).

The results file gets one line per test phase that decided something, written by the
controller process only (xdist relays workers' reports to it), so a crash midway still leaves
every finished check on disk:
``{"nodeid", "when", "outcome", "host", "check", "on", "status", "detail", "duration"}``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("factoryctl", "factoryctl host checks")
    g.addoption("--factoryctl-results", dest="factoryctl_results", default=None,
                help="append one JSON line per check outcome to this file")
    g.addoption("--factoryctl-checks", dest="factoryctl_checks", default=None,
                help="checks.json to run (default: the one beside the test module)")
    g.addoption("--factoryctl-local-name", dest="factoryctl_local_name", default=None,
                help="with local://, the declared host this machine is (default: its hostname)")


def _specs(config: pytest.Config) -> list[str]:
    raw = config.getoption("hosts", None) or "ansible://all"
    return [s.strip() for s in raw.split(",") if s.strip()]


def _local_name(config: pytest.Config) -> str:
    return config.getoption("factoryctl_local_name", None) or socket.gethostname().split(".")[0]


def select(checks: list[dict], specs: list[str], local_name: str) -> list[dict]:
    """The checks these --hosts specs cover."""
    if any(s.startswith("local://") for s in specs):
        return [c for c in checks if c["on"] == local_name]
    names = {s.split("://", 1)[-1] for s in specs}
    if "all" in names:
        return list(checks)
    return [c for c in checks if c["host"] in names or (c["on"] in names and c["host"] == c["on"])]


def params(config: pytest.Config, default_checks: Path) -> list[Any]:
    path = Path(config.getoption("factoryctl_checks", None) or default_checks)
    doc = json.loads(path.read_text(encoding="utf-8"))
    chosen = select(doc["checks"], _specs(config), _local_name(config))
    return [pytest.param(c, id=f"{c['host']}::{c['check']}", marks=pytest.mark.xdist_group(c["on"]))
            for c in chosen]


def host_for(name: str, config: pytest.Config):
    """The testinfra Host that runs commands on inventory host `name` (cached by testinfra)."""
    import testinfra

    specs = _specs(config)
    if any(s.startswith("local://") for s in specs):
        return testinfra.get_host("local://")
    kwargs: dict[str, Any] = {}
    for opt in ("ssh_config", "ssh_identity_file", "ansible_inventory"):
        val = config.getoption(opt, None)
        if val:
            kwargs[opt] = val
    scheme = specs[0].split("://", 1)[0] if "://" in specs[0] else "ansible"
    if scheme == "ansible":
        kwargs["force_ansible"] = False
    else:
        kwargs.pop("ansible_inventory", None)
    return testinfra.get_host(f"{scheme}://{name}", **kwargs)


_UNREACHABLE: dict[str, str] = {}  # host -> why, in this process: later checks fail fast


def _unreachable(exc: Exception) -> str | None:
    """testinfra raises RuntimeError(CommandResult) when ssh itself fails (exit 255)."""
    res = exc.args[0] if isinstance(exc, RuntimeError) and exc.args else None
    if getattr(res, "rc", None) != 255:
        return None
    lines = [ln.strip() for ln in str(getattr(res, "stderr", "") or "").splitlines() if ln.strip()]
    return "unreachable over SSH: " + (lines[-1] if lines else "ssh exited 255")


def run_check(check: dict, request: pytest.FixtureRequest) -> None:
    """The body of every host check: judge it, and record host, check and detail."""
    from . import probes

    props = request.node.user_properties
    props += [("host", check["host"]), ("check", check["check"]), ("on", check["on"])]
    try:
        if check["on"] in _UNREACHABLE:
            raise ConnectionError(f"{check['on']} {_UNREACHABLE[check['on']]} (not retried)")
        detail = probes.judge(host_for(check["on"], request.config), check)
    except probes.Skip as exc:
        props.append(("detail", str(exc)))
        pytest.skip(str(exc))
    except probes.Fail as exc:
        props.append(("detail", str(exc)))
        pytest.fail(str(exc), pytrace=False)
    except Exception as exc:  # noqa: BLE001 - unreachable host, broken command: an error, not a verdict
        gone = _unreachable(exc)
        if gone:
            _UNREACHABLE[check["on"]] = gone
        why = f"{check['on']} {gone}" if gone else f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
        props += [("detail", why), ("status", "error")]
        pytest.fail(f"error: {why}", pytrace=False)
    props.append(("detail", detail))


def _status(report: pytest.TestReport, props: dict) -> str | None:
    if props.get("status"):
        return props["status"]
    if report.when == "call":
        return {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome]
    if report.outcome == "skipped":
        return "skipped"
    if report.outcome == "failed":
        return "error"  # setup or teardown broke: the check itself never decided
    return None


def _reason(report: pytest.TestReport) -> str:
    if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return " ".join((report.longreprtext or "").split())[:500]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _CONFIG.get("config")
    if config is None or hasattr(config, "workerinput"):
        return
    path = config.getoption("factoryctl_results", None)
    if not path:
        return
    props = dict(report.user_properties)
    status = _status(report, props)
    if status is None:
        return
    detail = props.get("detail") or _reason(report)
    line = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
            "host": props.get("host", ""), "check": props.get("check", report.nodeid),
            "on": props.get("on", ""), "status": status, "detail": detail,
            "duration": round(report.duration, 3)}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


_CONFIG: dict[str, pytest.Config] = {}


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG["config"] = config
    # registered by xdist when it is loaded; declared here for runs without it (-p no:xdist)
    config.addinivalue_line("markers", "xdist_group(name): checks that run on the same host")
