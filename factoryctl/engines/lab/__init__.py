"""Local lab hosts: N SSH-reachable Debian machines on this one, for testing a factory.

Each host is a network namespace on a Linux bridge, an overlay copy of one cached Debian
image, its own mount/PID/UTS/IPC namespaces and its own sshd. The engine knows nothing of
factory.yaml: it starts the hosts it is given and says how to reach them.

    lab = Lab(Path(".lab"))
    lab.up([HostSpec("head01"), HostSpec("gpu01", fake_gpus=2)])
    lab.run("gpu01", ["ls", "/dev"])
    lab.down()
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from . import addresses as address_plan
from . import host, keys, mirror, net, preflight, reachability, sshconf, state
from .addresses import DEFAULT_BRIDGE, DEFAULT_SUBNET, HostSpec
from .errors import LabError
from .mounts import mount_overlay, mounts_under, safe_rmtree, unmount_all
from .rootfs import RootfsSpec, ensure_rootfs
from .state import HostRecord, LabState

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_SUBNET",
    "HostInfo",
    "HostSpec",
    "Lab",
    "LabError",
    "RootfsSpec",
]

READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class HostInfo:
    name: str
    address: str
    pid: int  # the host's PID 1, as the machine sees it (0 when not running)
    ssh_port: int = 22
    alive: bool = True  # sshd answered when last looked at
    fake_gpus: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Lab:
    """A set of lab hosts whose state, keys and overlays live under root."""

    def __init__(
        self,
        root: Path,
        *,
        subnet: str | None = None,
        bridge: str | None = None,
        rootfs: RootfsSpec | None = None,
        cache_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        # Lexically normalised: Terraform passes a path relative to its stack folder
        # (units/<unit>/../../../../../lab), and records must not depend on that folder.
        self.root = Path(os.path.abspath(root))
        if subnet:
            address_plan.parse_subnet(subnet)  # fail early, with the one-line reason
        self._subnet = subnet
        self._bridge = address_plan.check_bridge(bridge) if bridge else None
        self.rootfs = rootfs or RootfsSpec()
        self.cache_dir = cache_dir
        self._log = log or (lambda _msg: None)
        self.ready_timeout = ready_timeout
        self._handles: dict[str, subprocess.Popen] = {}  # to reap hosts we started

    # -- paths -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / "lab.json"

    @property
    def private_key(self) -> Path:
        return self.root / "keys" / "id_lab"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.root / "ssh_config"

    def _host_key(self, name: str) -> Path:
        return self.root / "keys" / "hosts" / f"{name}_ed25519"

    def _host_dir(self, name: str) -> Path:
        return self.root / "hosts" / name

    # -- state -------------------------------------------------------------------------
    def _fresh_state(self) -> LabState:
        return LabState(
            bridge=self._bridge or DEFAULT_BRIDGE, subnet=self._subnet or DEFAULT_SUBNET
        )

    def _state_for_change(self) -> LabState:
        st = state.load(self.state_path)
        if st is None or not st.hosts:
            return self._fresh_state()
        for what, asked, have in (
            ("bridge", self._bridge, st.bridge),
            ("subnet", self._subnet, st.subnet),
        ):
            if asked and asked != have:
                raise LabError(
                    f"lab {self.root} runs on {what} {have}, not {asked}",
                    f"run 'down' first to change the {what}",
                )
        return st

    def _record(self, st: LabState, spec: HostSpec, address: str, rootfs: Path) -> HostRecord:
        return HostRecord(
            name=spec.name,
            address=address,
            netns=address_plan.netns_name(st.bridge, spec.name),
            veth=address_plan.veth_name(st.bridge, spec.name),
            dir=str(self._host_dir(spec.name)),
            rootfs=str(rootfs),
            fake_gpus=spec.fake_gpus,
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # One operation per lab at a time: Terraform or two shells may race otherwise.
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- up ----------------------------------------------------------------------------
    def up(self, hosts: Sequence[HostSpec], *, prune: bool = False) -> list[HostInfo]:
        """Make the given hosts run; hosts that already run and answer are left alone.
        With prune, recorded hosts not in the list are taken down."""
        preflight.require_root("up")
        preflight.require_tools()
        specs = list(hosts)
        for spec in specs:
            address_plan.check_name(spec.name)
            address_plan.check_fake_gpus(spec)
        with self._locked():
            st = self._state_for_change()
            net.check_subnet_free(st.subnet, st.bridge)  # before anything is written
            if prune:
                gone = sorted(set(st.hosts) - {s.name for s in specs})
                if gone:
                    self._teardown(st, gone)
            addresses = address_plan.assign_addresses(
                specs, st.subnet, {n: r.address for n, r in st.hosts.items()}
            )
            todo = self._needing_start(st, specs)
            if todo:
                self._start(st, [s for s in specs if s.name in todo], addresses)
            self._refresh_access(st)
            return [self._info(st.hosts[s.name], alive=True) for s in specs]

    def _needing_start(self, st: LabState, specs: list[HostSpec]) -> set[str]:
        recorded = [st.hosts[s.name] for s in specs if s.name in st.hosts]
        answers = reachability.answering([r.address for r in recorded])
        todo = set()
        for spec in specs:
            rec = st.hosts.get(spec.name)
            healthy = (
                rec is not None
                and rec.fake_gpus == spec.fake_gpus
                and host.is_running(rec)
                and answers.get(rec.address, False)
            )
            if not healthy:
                todo.add(spec.name)
        return todo

    def _start(self, st: LabState, specs: list[HostSpec], addresses: dict[str, str]) -> None:
        image = ensure_rootfs(self.rootfs, self.cache_dir, log=self._log)
        keys.ensure_key(self.private_key, f"factoryctl-lab@{self.root.name}")
        for spec in specs:
            keys.ensure_key(self._host_key(spec.name), f"root@{spec.name}")
        iface = address_plan.bridge_interface(st.subnet)
        net.ensure_bridge(st.bridge, iface)

        # Stale pieces of a crashed or dead host go first; its disk (upper layer) stays,
        # like a machine that reboots.
        stale = [st.hosts[s.name] for s in specs if s.name in st.hosts]
        host.stop(stale, self._handles)
        for rec in stale:
            self._release_kernel_objects(rec)

        records = []
        for spec in specs:
            old = st.hosts.get(spec.name)
            lower = Path(old.rootfs) if old and Path(old.rootfs).is_dir() else image
            rec = self._record(st, spec, addresses[spec.name], lower)
            st.hosts[spec.name] = rec
            records.append(rec)
        state.save(self.state_path, st)  # recorded before creation: down can always find it

        self._log(f"starting {len(records)} lab host(s)")
        hosts_text = host.hosts_block({n: r.address for n, r in st.hosts.items()})
        authorized = keys.public_key(self.private_key)
        for rec in records:
            d = Path(rec.dir)
            mount_overlay(Path(rec.rootfs), d / "upper", d / "work", d / "merged")
            host.provision(rec, hosts_text, authorized, self._host_key(rec.name))
        prefix = iface.network.prefixlen
        links = [
            net.HostLink(
                r.netns, r.veth, address_plan.mac_address(st.bridge, r.name), f"{r.address}/{prefix}"
            )
            for r in records
        ]
        net.add_hosts(links, st.bridge)
        for rec in records:
            proc = host.spawn(rec)
            self._handles[rec.name] = proc
            rec.pid = proc.pid
        state.save(self.state_path, st)

        silent = reachability.wait_answering([r.address for r in records], self.ready_timeout)
        for rec in records:
            rec.init_pid = host.init_pid(rec)
        state.save(self.state_path, st)
        if silent:
            bad = [r for r in records if r.address in silent]
            detail = "; ".join(f"{r.name}: {host.console_tail(r) or 'no output'}" for r in bad)
            raise LabError(
                f"lab host(s) did not answer on ssh within {self.ready_timeout:.0f} s ({detail})",
                f"see {bad[0].dir}/console.log; 'down' cleans up",
            )

    # -- down --------------------------------------------------------------------------
    def down(self, names: list[str] | None = None) -> None:
        """Stop hosts (None: all) and remove every trace: processes, mounts, namespaces,
        veths, their directories; with the last host, the bridge too. Safe to repeat, and
        it trusts the kernel over the state file, which may be stale or gone."""
        preflight.require_root("down")
        preflight.require_tools({"ip": "iproute2"})
        with self._locked():
            st = state.load_lenient(self.state_path) or self._fresh_state()
            if names is None:
                targets = sorted(set(st.hosts) | self._discover(st.bridge))
            else:
                targets = [address_plan.check_name(n) for n in names]
            self._teardown(st, targets)
            if st.hosts:
                state.save(self.state_path, st)
                self._refresh_access(st)
            else:
                self._remove_lab_network(st.bridge)

    def _teardown(self, st: LabState, names: list[str]) -> None:
        records = [st.hosts.get(n) or self._record(st, HostSpec(n), "", Path()) for n in names]
        self._close_masters([r.address for r in records if r.address])
        host.stop(records, self._handles)

        def release(rec: HostRecord) -> None:
            self._release_kernel_objects(rec)
            safe_rmtree(Path(rec.dir))

        # Deleting files costs ~3 ms each on a disk mounted with `discard`: in parallel.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(release, records))
        for rec in records:
            st.hosts.pop(rec.name, None)
            self._handles.pop(rec.name, None)
            key = self._host_key(rec.name)
            key.unlink(missing_ok=True)
            key.with_name(key.name + ".pub").unlink(missing_ok=True)

    def _close_masters(self, addresses: list[str]) -> None:
        # ssh multiplexing masters would linger up to ControlPersist after their host dies.
        control = sshconf.control_dir(self.root)
        live = [a for a in addresses if (control / f"root@{a}:22").exists()]
        if not live or not self.ssh_config_path.exists():
            return
        procs = [
            subprocess.Popen(
                ["ssh", "-F", str(self.ssh_config_path), "-O", "exit", a],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for a in live
        ]
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _release_kernel_objects(self, rec: HostRecord) -> None:
        unmount_all(Path(rec.dir))
        net.delete_netns(rec.netns)
        net.delete_link(rec.veth)

    def _discover(self, bridge: str) -> set[str]:
        """Host names that left traces without (or beyond) a record."""
        found = {ns[len(bridge) + 1 :] for ns in net.list_netns() if ns.startswith(f"{bridge}-")}
        hosts_dir = self.root / "hosts"
        if hosts_dir.is_dir():
            found |= {p.name for p in hosts_dir.iterdir() if p.is_dir()}
        for mp in mounts_under(hosts_dir):
            found.add(Path(mp).relative_to(hosts_dir).parts[0])
        return {n for n in found if address_plan.HOSTNAME.match(n)}

    def _remove_lab_network(self, bridge: str) -> None:
        mirror.stop(self.root)  # its address goes with the bridge
        net.delete_bridge(bridge)
        net.release_netns_dir()
        state.remove(self.state_path)
        for path in (self.ssh_config_path, self.known_hosts):
            path.unlink(missing_ok=True)
        safe_rmtree(sshconf.control_dir(self.root))
        for stray in (self.root / "hosts",):
            if stray.is_dir() and not any(stray.iterdir()):
                stray.rmdir()

    # -- looking at hosts --------------------------------------------------------------
    def _info(self, rec: HostRecord, alive: bool) -> HostInfo:
        return HostInfo(
            name=rec.name,
            address=rec.address,
            pid=host.init_pid(rec) or 0,
            alive=alive,
            fake_gpus=rec.fake_gpus,
        )

    def status(self) -> list[HostInfo]:
        """Every recorded host, with alive=True only where its sshd answers right now."""
        st = state.load(self.state_path)
        if st is None:
            return []
        recs = [st.hosts[n] for n in sorted(st.hosts)]
        answers = reachability.answering([r.address for r in recs])
        return [self._info(r, alive=host.is_running(r) and answers[r.address]) for r in recs]

    def hosts(self) -> dict[str, str]:
        """Recorded host name -> address."""
        st = state.load(self.state_path)
        return {n: r.address for n, r in sorted(st.hosts.items())} if st else {}

    # -- reaching hosts ----------------------------------------------------------------
    def _refresh_access(self, st: LabState) -> None:
        addresses = {n: r.address for n, r in st.hosts.items()}
        text = host.hosts_block(addresses)
        for rec in st.hosts.values():
            if Path(rec.dir, "merged", "etc").is_dir():
                host.write_hosts(rec, text)  # hosts resolve each other by /etc/hosts only
        pubs = {}
        for name, address in addresses.items():
            key = self._host_key(name)
            if key.with_name(key.name + ".pub").exists():
                pubs[name] = (address, keys.public_key(key))
        sshconf.write_known_hosts(self.known_hosts, pubs)
        sshconf.write_config(
            self.ssh_config_path,
            addresses,
            self.private_key,
            self.known_hosts,
            sshconf.control_dir(self.root),
        )

    def ssh_config(self) -> Path:
        """Path of an ssh_config naming every host (for ssh -F, testinfra --ssh-config)."""
        if not self.ssh_config_path.exists():
            raise LabError(f"no lab at {self.root}", "run 'factoryctl lab up' first")
        return self.ssh_config_path

    def connection_vars(self) -> dict[str, str]:
        """Inventory variables that let Ansible reach every lab host."""
        return {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.private_key),
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={self.known_hosts} "
                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
            ),
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    def ssh_argv(self, name: str, command: list[str] | None = None) -> list[str]:
        if name not in self.hosts():
            raise LabError(
                f"no lab host named {name!r} in {self.root}",
                "see 'factoryctl lab status' for the hosts",
            )
        return sshconf.ssh_argv(self.ssh_config(), name, command)

    def run(
        self, name: str, command: list[str], *, timeout: float | None = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run command (an argv; quoted for the remote shell) on host name over ssh."""
        return subprocess.run(
            self.ssh_argv(name, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
