"""One lab host on the machine: its directories, the files written into its overlay, and
starting and stopping its process tree.

A host is `nsenter --net=<netns> unshare --mount --uts --ipc --pid --fork --kill-child
hostinit.sh NAME MERGED GPUS`. The merged overlay path is an argument of that `unshare`
process, which is how teardown finds a host's processes even without a state file.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ...files import atomic_write
from . import procs
from .errors import LabError
from .net import netns_path
from .state import HostRecord

HOSTINIT = Path(__file__).with_name("hostinit.sh")
LAB_INIT = Path(__file__).with_name("lab_init.py")
# Hosts must not inherit the caller's environment (venv, locale, proxies).
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
STOP_GRACE = 3.0  # seconds a host gets to stop after SIGTERM to its PID 1


def merged(rec: HostRecord) -> Path:
    return Path(rec.dir) / "merged"


def console_log(rec: HostRecord) -> Path:
    return Path(rec.dir) / "console.log"


BEGIN_MARK = "# BEGIN lab hosts (factoryctl lab)"
END_MARK = "# END lab hosts (factoryctl lab)"
HEADER = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\n"


def hosts_block(addresses: Mapping[str, str]) -> str:
    lines = [BEGIN_MARK, *(f"{addr}\t{name}" for name, addr in sorted(addresses.items())), END_MARK]
    return "\n".join(lines) + "\n"


def hosts_file(addresses: Mapping[str, str]) -> str:
    """A new host's /etc/hosts: localhost, then the lab's block."""
    return HEADER + hosts_block(addresses)


def _put(root: Path, rel: str, data: str | bytes, mode: int = 0o644) -> None:
    # Write through the overlay (lands in the host's upper layer), atomically.
    atomic_write(root / rel, data, mode)


def with_block(current: str, block: str) -> str:
    """current /etc/hosts with the lab's block put in place of the old one (or appended):
    lines others manage (Ansible's blockinfile block, an admin's entries) stay as they are."""
    lines = current.splitlines(keepends=True)
    begin = next((i for i, line in enumerate(lines) if line.rstrip("\n") == BEGIN_MARK), None)
    end = next((i for i, line in enumerate(lines) if line.rstrip("\n") == END_MARK), None)
    if begin is not None and end is not None and end > begin:
        return "".join(lines[:begin]) + block + "".join(lines[end + 1:])
    tail = "" if not current or current.endswith("\n") else "\n"
    return current + tail + block


def write_hosts(rec: HostRecord, block: str) -> None:
    """Put the lab's block (every lab host and its address) into the host's /etc/hosts,
    leaving the rest alone. A restarted lab host must not rewrite what Ansible's common role
    keeps in the others' files (drift would rightly call that a change); an unchanged block
    writes nothing."""
    path = merged(rec) / "etc/hosts"
    try:
        current = path.read_text()
    except OSError:
        current = HEADER
    new = with_block(current, block)
    if new != current:
        _put(merged(rec), "etc/hosts", new)


def provision(rec: HostRecord, block: str, authorized_key: str, host_key: Path) -> None:
    root = merged(rec)
    _put(root, "etc/hostname", rec.name + "\n")
    write_hosts(rec, block)
    _put(
        root,
        "etc/machine-id",
        hashlib.sha256(f"{rec.dir}/{rec.name}".encode()).hexdigest()[:32] + "\n",
        0o444,
    )
    (root / "root/.ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
    _put(root, "root/.ssh/authorized_keys", authorized_key + "\n", 0o600)
    _put(root, "etc/ssh/ssh_host_ed25519_key", host_key.read_bytes(), 0o600)
    _put(
        root,
        "etc/ssh/ssh_host_ed25519_key.pub",
        host_key.with_name(host_key.name + ".pub").read_bytes(),
        0o644,
    )
    _put(root, "usr/local/sbin/lab-init", LAB_INIT.read_bytes(), 0o755)


def spawn(rec: HostRecord) -> subprocess.Popen:
    argv = [
        "nsenter",
        f"--net={netns_path(rec.netns)}",
        "--",
        "unshare",
        "--mount",
        "--uts",
        "--ipc",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "/bin/sh",
        str(HOSTINIT),
        rec.name,
        str(merged(rec)),
        str(rec.fake_gpus),
    ]
    # Own session, stdio on a log file: the host must outlive this process and must not
    # hold the caller's pipes open (a Terraform local-exec would wait on them forever).
    with open(console_log(rec), "ab") as log:
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=HOST_ENV,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise LabError(
                f"starting host {rec.name} failed ({exc})", "apt-get install util-linux iproute2"
            ) from None


def init_pid(rec: HostRecord) -> int:
    kids = procs.children(rec.pid) if rec.pid else []
    return kids[0] if kids else 0


def is_running(rec: HostRecord) -> bool:
    """The recorded `unshare` is alive, is this host's, and its PID 1 is alive."""
    return procs.has_arg(rec.pid, str(merged(rec))) and procs.is_alive(init_pid(rec))


def console_tail(rec: HostRecord, lines: int = 1) -> str:
    try:
        text = console_log(rec).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def stop(records: list[HostRecord], handles: Mapping[str, subprocess.Popen] | None = None) -> None:
    """Stop hosts, all at once: SIGTERM each PID 1, wait for the namespaces to empty, then
    SIGKILL whatever is left. Works from the kernel's view; recorded pids are only hints."""
    if not records:
        return
    markers = {str(merged(r)): r for r in records}
    parents = procs.by_arg(markers)
    for rec in records:
        if rec.pid and procs.has_arg(rec.pid, str(merged(rec))):
            parents[str(merged(rec))].append(rec.pid)
    # `unshare --fork` ignores SIGTERM; its child, the host's PID 1, does not.
    for pids in parents.values():
        for pid in set(pids):
            procs.signal_all(procs.children(pid), signal.SIGTERM)

    spaces = [netns_path(r.netns) for r in records]

    def emptied() -> bool:
        return not any(procs.in_netns_many(spaces).values())

    procs.wait_until(emptied, STOP_GRACE)
    inside = procs.in_netns_many(spaces)
    for rec in records:
        leftovers = set(inside[netns_path(rec.netns)]) | set(parents[str(merged(rec))])
        procs.kill_hard(leftovers)  # --kill-child takes the namespace down with the parent
    procs.wait_until(emptied, STOP_GRACE)
    for name, proc in (handles or {}).items():
        if name in {r.name for r in records}:
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
