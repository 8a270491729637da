"""What is running where, read from an applied site without changing it (`factoryctl status`):
each declared host up or down (a lab site asks its lab; any other site makes one SSH round trip
per host, in parallel, through the connection inventory), Slurm's partitions and node states
(`sinfo` on the controller), each inference deployment's job, node, URL and readiness (its
OpenAI-compatible `GET /v1/models` lists the model), and Prometheus when monitoring is deployed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from ..engines.lab import site as labsite
from ..engines.ssh import Remote
from ..errors import FactoryctlError
from ..workspace import Workspace
from .probes import first_node

SCHEMA = "factoryctl.status/v1"
SSH_TIMEOUT = 10.0  # one round trip per host; a host that takes longer is reported down
HTTP_TIMEOUT = 5.0  # readiness: /v1/models answers from memory once the server is up
# The Slurm batch scripts' `inference_port` (roles/inference/defaults/main.yml) and the
# Kubernetes Service port (render/kube.py SERVICE_PORT) are both 8000, vLLM's default
# (https://docs.vllm.ai/en/stable/cli/serve.html, --port).
INFERENCE_PORT = 8000
INFERENCE_NAMESPACE = "inference"  # render/kube.py INFERENCE_NS
# Where the monitoring role's Prometheus listens: the Debian prometheus package's
# --web.listen-address default (`usage` reads it there too).
PROMETHEUS_PORT = 9090
# %P partition (default marked *), %a availability, %D node count, %t compact state, %N nodes;
# one line per partition and state (sinfo(1), "-o, --format").
SINFO_ARGV = ["sinfo", "-h", "-o", "%P|%a|%D|%t|%N"]
# %i job id, %T state, %N nodes (squeue(1)); -n filters on the job name the sbatch script sets.
SQUEUE_FORMAT = "%i|%T|%N"


class NotApplied(FactoryctlError):
    def __init__(self, file: str):
        super().__init__(f"{file}: not applied yet: run factoryctl up {file}")


@dataclass
class HostState:
    name: str
    up: bool
    reason: str  # what was seen: "ssh ok" or why it is down


@dataclass
class PartitionState:
    name: str
    default: bool
    available: str  # up / down / drain / inact
    nodes: int
    state: str  # idle, alloc, mix, down*, ...
    nodelist: str


@dataclass
class SlurmState:
    controller: str | None
    ok: bool
    reason: str
    partitions: list[PartitionState] = field(default_factory=list)


@dataclass
class Endpoint:
    name: str
    engine: str
    model: str
    platform: str
    job: str | None  # the Slurm job name (sbatch --job-name) or the Kubernetes Service
    job_id: str | None
    node: str | None
    url: str | None
    ready: bool
    reason: str


@dataclass
class PrometheusState:
    host: str  # the first host with the monitoring role
    url: str
    ready: bool
    reason: str


@dataclass
class SiteStatus:
    site: str
    hosts: list[HostState]
    slurm: SlurmState | None  # None: Slurm not declared
    endpoints: list[Endpoint]
    prometheus: PrometheusState | None  # None: no host has the monitoring role

    @property
    def ok(self) -> bool:
        """Everything declared is up and ready."""
        return (all(h.up for h in self.hosts) and (self.slurm is None or self.slurm.ok)
                and all(e.ready for e in self.endpoints)
                and (self.prometheus is None or self.prometheus.ready))

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "site": self.site, "ok": self.ok,
                "hosts": [asdict(h) for h in self.hosts],
                "slurm": asdict(self.slurm) if self.slurm else None,
                "endpoints": [asdict(e) for e in self.endpoints],
                "prometheus": asdict(self.prometheus) if self.prometheus else None}


# --- parsing -------------------------------------------------------------------------------

def parse_sinfo(text: str) -> list[PartitionState]:
    """Rows of `sinfo -h -o "%P|%a|%D|%t|%N"`; a line that does not have five fields is an
    error (a changed format must not read as an empty cluster)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[2].isdigit():
            raise ValueError(f"sinfo line {n} is not 'partition|avail|nodes|state|nodelist': {line!r}")
        name, avail, count, st, nodes = parts
        rows.append(PartitionState(name.rstrip("*"), name.endswith("*"), avail, int(count), st, nodes))
    return rows


def parse_squeue(text: str) -> list[tuple[str, str, str]]:
    """(job id, state, nodes) per line of `squeue -h -o "%i|%T|%N"`."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("|")
        if len(parts) != 3:
            raise ValueError(f"squeue line {n} is not 'jobid|state|nodes': {line!r}")
        out.append((parts[0], parts[1], parts[2]))
    return out


def models_listed(body: str, model: str) -> tuple[bool, str]:
    """Does an OpenAI `GET /v1/models` answer (a list object whose data[] carry `id`s;
    https://platform.openai.com/docs/api-reference/models/list) list the model?"""
    try:
        doc = json.loads(body)
        ids = [m["id"] for m in doc["data"]]
    except (ValueError, KeyError, TypeError):
        return False, f"/v1/models did not answer an OpenAI model list: {body[:120]!r}"
    if model in ids:
        return True, f"serves {model}"
    return False, f"/v1/models lists {', '.join(ids) or 'no model'}, not {model}"


def probe_models(url: str, model: str, timeout: float = HTTP_TIMEOUT) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=timeout) as r:  # noqa: S310 - http URL we built
            return models_listed(r.read(1 << 20).decode("utf-8", "replace"), model)
    except urllib.error.HTTPError as exc:
        return False, f"GET {url}/v1/models: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"GET {url}/v1/models: {getattr(exc, 'reason', exc)}"


def probe_prometheus(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[bool, str]:
    """Prometheus' readiness endpoint answers 200 once it serves queries
    (prometheus.io/docs/prometheus/latest/management_api/, "Readiness check")."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout) as r:  # noqa: S310 - http URL we built
            return r.status == 200, "ready" if r.status == 200 else f"GET {url}/-/ready: HTTP {r.status}"
    except urllib.error.HTTPError as exc:
        return False, f"GET {url}/-/ready: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"GET {url}/-/ready: {getattr(exc, 'reason', exc)}"


# --- looking ---------------------------------------------------------------------------------

def _why(r: subprocess.CompletedProcess) -> str:
    text = (r.stderr or r.stdout or "").strip().splitlines()
    return f"exit {r.returncode}" + (f": {text[-1][:200]}" if text else "")


def host_states(checked, ws: Workspace, remote: Remote) -> list[HostState]:
    names = [h.name for h in checked.site.hosts]
    if labsite.is_lab(checked):
        down = labsite.bridge_down(checked.factory)
        if down:  # send nothing: without the bridge the packets would leave by the default route
            return [HostState(n, False, down) for n in names]
        seen = {i.name: i for i in remote.lab.status()}
        return [HostState(n, bool(seen.get(n) and seen[n].alive),
                          "sshd answers" if seen.get(n) and seen[n].alive
                          else ("sshd does not answer" if n in seen else "not in the lab"))
                for n in names]

    def one(name: str) -> HostState:
        r = remote.run(name, ["true"], timeout=SSH_TIMEOUT)
        return HostState(name, r.returncode == 0, "ssh ok" if r.returncode == 0 else _why(r))

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(names)))) as pool:
        return list(pool.map(one, names))


def _with_role(checked, role: str) -> list[str]:
    return [h.name for h in checked.site.hosts if role in h.roles]


def slurm_state(checked, remote: Remote, up: set[str]) -> SlurmState | None:
    slurm = checked.factory.slurm
    if not (slurm and slurm.enabled):
        return None
    ctls = [c for c in _with_role(checked, "slurm-controller") if c in up]
    if not ctls:
        return SlurmState(None, False, "no Slurm controller is up")
    r = remote.run(ctls[0], SINFO_ARGV, timeout=SSH_TIMEOUT * 2)
    if r.returncode != 0:
        return SlurmState(ctls[0], False, f"sinfo: {_why(r)}")
    try:
        parts = parse_sinfo(r.stdout)
    except ValueError as exc:
        return SlurmState(ctls[0], False, str(exc))
    declared = {p.name for p in slurm.partitions}
    missing = sorted(declared - {p.name for p in parts})
    bad = sorted({p.name for p in parts if p.available != "up"})
    ok = not missing and not bad
    reason = "; ".join([f"partition(s) missing: {', '.join(missing)}"] * bool(missing)
                       + [f"partition(s) not up: {', '.join(bad)}"] * bool(bad)) or "every partition up"
    return SlurmState(ctls[0], ok, reason, parts)


def _address(checked, remote: Remote, node: str) -> str:
    """Where this machine reaches a node: the lab's or the inventory's address."""
    if remote.lab is not None:
        return remote.lab.hosts().get(node, node)
    return (remote.hosts.get(node) or {}).get("ansible_host", node)


def _slurm_endpoint(checked, inf, remote: Remote, ctl: str | None) -> Endpoint:
    job = f"inference-{inf.name}"  # roles/inference/templates/inference.sbatch.j2 --job-name
    e = Endpoint(inf.name, inf.engine, inf.model, "slurm", job, None, None, None, False, "")
    if ctl is None:
        e.reason = "no Slurm controller is up"
        return e
    r = remote.run(ctl, ["squeue", "-h", "-n", job, "-o", SQUEUE_FORMAT], timeout=SSH_TIMEOUT * 2)
    if r.returncode != 0:
        e.reason = f"squeue: {_why(r)}"
        return e
    try:
        jobs = parse_squeue(r.stdout)
    except ValueError as exc:
        e.reason = str(exc)
        return e
    running = [j for j in jobs if j[1] == "RUNNING"]
    if not running:
        e.reason = f"job {job} is {jobs[0][1].lower()}" if jobs else f"no job named {job} in squeue"
        e.job_id = jobs[0][0] if jobs else None
        return e
    e.job_id, _, nodes = running[0]
    e.node = first_node(nodes)
    if e.node is None:
        e.reason = f"job {e.job_id} names no node"
        return e
    e.url = f"http://{_address(checked, remote, e.node)}:{INFERENCE_PORT}"
    e.ready, e.reason = probe_models(e.url, inf.model)
    return e


def _kube_endpoint(checked, inf, remote: Remote, up: set[str]) -> Endpoint:
    # The Service is a ClusterIP (render/kube.py): only reachable inside the cluster, so
    # readiness is asked from the first control-plane host.
    url = f"http://{inf.name}.{INFERENCE_NAMESPACE}.svc:{INFERENCE_PORT}"
    e = Endpoint(inf.name, inf.engine, inf.model, "kubernetes", inf.name, None, None, url, False, "")
    planes = [p for p in _with_role(checked, "kube-control-plane") if p in up]
    if not planes:
        e.reason = "no Kubernetes control-plane host is up"
        return e
    e.node = planes[0]
    r = remote.run(planes[0], ["sh", "-c", f"curl -sS --max-time {HTTP_TIMEOUT:.0f} "
                                           f"{shlex.quote(url + '/v1/models')}"], timeout=SSH_TIMEOUT * 2)
    if r.returncode != 0:
        e.reason = f"GET {url}/v1/models from {planes[0]}: {_why(r)}"
        return e
    e.ready, e.reason = models_listed(r.stdout, inf.model)
    return e


def site_status(checked, ws: Workspace, file: str) -> SiteStatus:
    """The status of an applied site; NotApplied when it never was."""
    if ws.applied() is None:
        raise NotApplied(file)
    remote = Remote(checked, ws)
    hosts = host_states(checked, ws, remote)
    up = {h.name for h in hosts if h.up}
    slurm = slurm_state(checked, remote, up)
    ctl = slurm.controller if slurm else None
    endpoints = [(_slurm_endpoint(checked, i, remote, ctl) if i.platform == "slurm"
                  else _kube_endpoint(checked, i, remote, up)) for i in checked.factory.inference]
    return SiteStatus(checked.factory.metadata.name, hosts, slurm, endpoints,
                      prometheus_state(checked, remote, up))


def prometheus_url(checked, remote: Remote) -> tuple[str, str] | None:
    """(host, URL) of the Prometheus that `status` and `usage` read: the monitoring role runs
    it on every monitoring host, and the first is asked. None without a monitoring host."""
    servers = _with_role(checked, "monitoring")
    if not servers:
        return None
    return servers[0], f"http://{_address(checked, remote, servers[0])}:{PROMETHEUS_PORT}"


def prometheus_state(checked, remote: Remote, up: set[str]) -> PrometheusState | None:
    if (where := prometheus_url(checked, remote)) is None:
        return None
    host, url = where
    if host not in up:
        return PrometheusState(host, url, False, f"host {host} is down")
    ready, reason = probe_prometheus(url)
    return PrometheusState(host, url, ready, reason)


def wait_for_endpoints(checked, ws: Workspace, timeout: float, step: float = 5.0,
                       note: Callable[[str], None] | None = None) -> list[Endpoint]:
    """Poll the declared inference endpoints until all are ready or timeout seconds pass; the
    last look at them. An engine loads its model after its job starts (vLLM's CPU build on the
    lab: ~45 s), so `up` waits here before verify asks for a completion."""
    if not checked.factory.inference:
        return []
    remote = Remote(checked, ws)
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while True:
        up = {h.name for h in host_states(checked, ws, remote) if h.up}
        slurm = slurm_state(checked, remote, up)
        ctl = slurm.controller if slurm else None
        eps = [(_slurm_endpoint(checked, i, remote, ctl) if i.platform == "slurm"
                else _kube_endpoint(checked, i, remote, up)) for i in checked.factory.inference]
        for e in eps:
            if note and seen.get(e.name) != e.reason:
                note(f"{e.name}: {'ready at ' + e.url if e.ready else e.reason}")
            seen[e.name] = e.reason
        if all(e.ready for e in eps) or time.monotonic() + step > deadline:
            return eps
        time.sleep(step)


# --- showing ---------------------------------------------------------------------------------

def _mark(ok: bool, yes: str, no: str) -> str:
    return f"[green]{yes}[/]" if ok else f"[red]{no}[/]"


def show_text(st: SiteStatus, ui) -> None:
    """Compact tables (ui.show): hosts, Slurm partitions, endpoints, then one summary line."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"Hosts of {st.site}", title_justify="left")
    for col in ("host", "state", "detail"):
        t.add_column(col)
    for h in st.hosts:
        t.add_row(h.name, _mark(h.up, "up", "DOWN"), escape(h.reason))
    ui.show(t)
    if st.slurm is not None:
        ui.show(f"Slurm on {st.slurm.controller or '-'}: "
                + _mark(st.slurm.ok, "ok", "NOT OK") + f" ({escape(st.slurm.reason)})")
        if st.slurm.partitions:
            t = Table(title_justify="left")
            for col in ("partition", "avail", "nodes", "state", "nodelist"):
                t.add_column(col)
            for p in st.slurm.partitions:
                t.add_row(p.name + ("*" if p.default else ""), p.available, str(p.nodes), p.state, p.nodelist)
            ui.show(t)
    if st.endpoints:
        t = Table(title="Inference endpoints", title_justify="left")
        for col in ("name", "engine", "model", "platform", "job", "node", "url", "ready", "detail"):
            t.add_column(col)
        for e in st.endpoints:
            job = f"{e.job} ({e.job_id})" if e.job_id else (e.job or "-")
            t.add_row(e.name, e.engine, e.model, e.platform, job, e.node or "-", e.url or "-",
                      _mark(e.ready, "ready", "NO"), escape(e.reason))
        ui.show(t)
    else:
        ui.show("Inference endpoints: none declared")
    p = st.prometheus
    ui.show("Prometheus: not deployed (no host has the monitoring role)" if p is None else
            f"Prometheus on {p.host}: {p.url} " + _mark(p.ready, "ready", "NOT READY")
            + ("" if p.ready else f" ({escape(p.reason)})"))
    down = [h.name for h in st.hosts if not h.up] + [e.name for e in st.endpoints if not e.ready]
    if st.slurm is not None and not st.slurm.ok:
        down.append("slurm")
    if p is not None and not p.ready:
        down.append("prometheus")
    ui.show("everything declared is up and ready" if st.ok else f"not up or not ready: {', '.join(down)}")
