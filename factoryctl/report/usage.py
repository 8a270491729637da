"""Usage and chargeback (`factoryctl usage`): who used which GPUs and tokens in a window, and
what it cost.

Sources, both read from the running site:
- Slurm accounting: `sacct -X -P -n -a -T` on the controller over SSH (engines/ssh.Remote, as
  `status` runs sinfo). `-X` one line per job allocation, `-P` '|'-separated, `-T` truncates
  each job's start and end to the window, so Elapsed and CPUTimeRAW are the window's share
  (sacct(1)). GPUs come from AllocTRES (`gres/gpu=N`), GPU-seconds = GPUs x ElapsedRaw.
- Prometheus' HTTP API (`/api/v1/query`, prometheus.io/docs/prometheus/latest/querying/api/):
  the counters `vllm:prompt_tokens_total` and `vllm:generation_tokens_total` at the window's
  end minus at its start (increase() where a counter reset), per `deployment` label (the scrape job's relabel) or else per `model_name` (vLLM's own
  label: the served model name, `inference[].model`); a deployment's tokens go to the tenant
  that owns it (`tenants[].deployments`).

Energy is declared power, not measured: GPU-seconds x the node's power per GPU (nodes[].
hardware.power_kw, or resolve's estimate) x the facility's PUE; a CPU-only job uses the
power per core instead. Cost is GPU-hours x the owned cost per GPU-hour of `factoryctl cost`.
The `idle` row is the site's GPU capacity over the window that no job used, at the same
price, so the rows add up to capacity x price: the bill.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import FactoryctlError, UsageProblem
from ..resolve import Site
from ..verify.status import PROMETHEUS_PORT, prometheus_url
from ..workspace import write_json

SCHEMA = "factoryctl.usage/v1"
SACCT_FIELDS = ("JobID", "Account", "User", "Partition", "Elapsed", "ElapsedRaw", "AllocTRES", "CPUTimeRAW",
                "State", "Start", "End", "JobName")  # JobName last: the one field that may hold '|'
HTTP_TIMEOUT = 10.0
IDLE = "idle"
UNOWNED = "(unowned)"
BY = ("tenant", "deployment", "job")
INFERENCE_JOB_PREFIX = "inference-"  # roles/inference: --job-name inference-<deployment>


class UsageSourceMissing(FactoryctlError):
    """A source `usage` reads is not there (no accounting, no Prometheus) or does not answer."""


# --- the window ----------------------------------------------------------------------------

_REL = re.compile(r"^now(?:-(\d+)([smhd]))?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str, option: str, now: datetime) -> datetime:
    """`now`, `now-<N>s|m|h|d`, or an ISO 8601 date or time (UTC unless it has an offset)."""
    v = value.strip()
    m = _REL.fullmatch(v)
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)]) if m.group(1) else now
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise UsageProblem(f"{option} {value!r} is not a time: write an ISO 8601 date or time "
                           "(2026-12-01, 2026-12-01T08:00:00Z) or now, now-24h, now-7d") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def window(since: str | None, until: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The metered window; the default is the last 24 hours. UsageProblem (64) when it is empty."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    end = parse_time(until, "--until", now) if until else now
    start = parse_time(since, "--since", now) if since else end - timedelta(days=1)
    if start >= end:
        raise UsageProblem(f"--since {start:%Y-%m-%dT%H:%M:%SZ} is not before --until {end:%Y-%m-%dT%H:%M:%SZ}: "
                           "the window is empty; swap them or move one")
    return start, end


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- sacct ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    job_id: str
    account: str
    user: str
    partition: str
    elapsed_seconds: int
    cpu_seconds: int
    gpus: int
    billing: int
    state: str
    start: str
    end: str
    name: str = ""

    @property
    def gpu_seconds(self) -> int:
        return self.gpus * self.elapsed_seconds


def sacct_argv(start: datetime, end: datetime) -> list[str]:
    # sacct reads -S/-E in the controller's local time; the lab and most clusters run UTC
    return ["sacct", "-X", "-P", "-n", "-a", "-T", "--format=" + ",".join(SACCT_FIELDS),
            "-S", start.strftime("%Y-%m-%dT%H:%M:%S"), "-E", end.strftime("%Y-%m-%dT%H:%M:%S")]


def parse_tres(text: str) -> dict[str, str]:
    """`billing=2,cpu=2,gres/gpu=1,mem=1G,node=1` -> {name: count}."""
    out = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        out[name] = value
    return out


def _count(value: str | None) -> int:
    """A TRES count as sacct prints counts (gres/gpu=2, billing=28); 0 when absent."""
    return int(value) if value and value.isdigit() else 0


def parse_sacct(text: str) -> list[Job]:
    """Jobs from `sacct -X -P -n --format=<SACCT_FIELDS>`; ValueError naming the line when one
    does not have the fields."""
    jobs = []
    n = len(SACCT_FIELDS)
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) < n - 1:
            raise ValueError(f"sacct output line {i} has {len(cols)} fields, not {n}: {line[:120]!r}")
        cols = cols[:n - 1] + ["|".join(cols[n - 1:])]
        f = dict(zip(SACCT_FIELDS, cols, strict=True))
        try:
            elapsed, cpu = int(f["ElapsedRaw"] or 0), int(f["CPUTimeRAW"] or 0)
        except ValueError:
            raise ValueError(f"sacct output line {i}: ElapsedRaw {f['ElapsedRaw']!r} or CPUTimeRAW "
                             f"{f['CPUTimeRAW']!r} is not a number") from None
        tres = parse_tres(f["AllocTRES"])
        gpus = _count(tres.get("gres/gpu")) or sum(_count(v) for k, v in tres.items() if k.startswith("gres/gpu:"))
        jobs.append(Job(f["JobID"], f["Account"], f["User"], f["Partition"], elapsed, cpu, gpus,
                        _count(tres.get("billing")), f["State"].split(" ")[0], f["Start"], f["End"], f["JobName"]))
    return jobs


# --- Prometheus ----------------------------------------------------------------------------


def prometheus_query(base: str, query: str, at: datetime, timeout: float = HTTP_TIMEOUT) -> list[tuple[dict, float]]:
    """An instant query: [(labels, value)]; UsageSourceMissing when Prometheus does not answer."""
    url = f"{base.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": f"{at.timestamp():.0f}"})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - an http URL built from the site
            doc = json.loads(r.read(16 << 20))
    except urllib.error.HTTPError as e:
        raise UsageSourceMissing(f"Prometheus at {base} refused {query!r}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise UsageSourceMissing(f"Prometheus at {base} does not answer: {getattr(e, 'reason', e)}"
                                 "\nhint: is the monitoring host up and Prometheus running on port "
                                 f"{PROMETHEUS_PORT}? (factoryctl status FILE)") from None
    except ValueError:
        raise UsageSourceMissing(f"Prometheus at {base} answered {query!r} with something that is not JSON") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        err = doc.get("error") if isinstance(doc, dict) else None
        raise UsageSourceMissing(f"Prometheus at {base} failed {query!r}: {err or 'no success status'}")
    out = []
    for s in (doc.get("data") or {}).get("result") or []:
        try:
            v = float(s["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if math.isfinite(v):
            out.append((s.get("metric") or {}, v))
    return out


def _window_delta(base: str, kind: str, start: datetime, end: datetime, secs: int) -> list[tuple[dict, float]]:
    """Tokens counted in the window per (deployment, model_name): the counter's value at the
    end minus its value at the start (a series absent at the start began in the window, from 0:
    vLLM's counters start at 0 with the server). Exact to the last scrape before each bound,
    where increase() would extrapolate to the window's edges. A series whose value fell (the
    engine restarted, the counter reset) takes increase() instead, which handles resets."""
    q = f"sum by (deployment, model_name) (vllm:{kind}_tokens_total)"
    key = lambda labels: (labels.get("deployment", ""), labels.get("model_name", ""))  # noqa: E731
    before = {key(lb): v for lb, v in prometheus_query(base, q, start)}
    resets = {key(lb): v for lb, v in prometheus_query(
        base, f"sum by (deployment, model_name) (resets(vllm:{kind}_tokens_total[{secs}s]))", end)}
    out = []
    for labels, value in prometheus_query(base, q, end):
        k = key(labels)
        if resets.get(k, 0) or value < before.get(k, 0.0):
            inc = f"sum by (deployment, model_name) (increase(vllm:{kind}_tokens_total[{secs}s]))"
            value = next((v for lb, v in prometheus_query(base, inc, end) if key(lb) == k), 0.0)
            out.append((labels, value))
        else:
            out.append((labels, value - before.get(k, 0.0)))
    return out


def token_counts(base: str, site: Site, start: datetime, end: datetime) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Deployment -> {"prompt": n, "generation": n} over the window, and notes (series no
    deployment claims)."""
    secs = int((end - start).total_seconds())
    by_model: dict[str, list[str]] = {}
    for d in site.factory.inference:
        by_model.setdefault(d.model, []).append(d.name)
    names = {d.name for d in site.factory.inference}
    out: dict[str, dict[str, int]] = {}
    notes: list[str] = []
    for kind in ("prompt", "generation"):
        for labels, value in _window_delta(base, kind, start, end, secs):
            dep = labels.get("deployment")
            if dep not in names:
                candidates = by_model.get(labels.get("model_name", ""), [])
                if not candidates:
                    notes.append(f"{round(value)} {kind} tokens of model {labels.get('model_name', '?')!r} "
                                 "belong to no declared deployment")
                    continue
                if len(candidates) > 1:
                    notes.append(f"model {labels['model_name']!r} is served by {', '.join(candidates)}: its tokens "
                                 f"go to {candidates[0]} (relabel the scrape job with a deployment label to split them)")
                dep = candidates[0]
            row = out.setdefault(dep, {"prompt": 0, "generation": 0})
            row[kind] += round(value)
    return out, sorted(set(notes))


# --- metering ------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    jobs: int = 0
    cpu_seconds: int = 0
    gpu_seconds: int = 0
    billing: int = 0  # Slurm billing TRES x seconds
    prompt_tokens: int = 0
    generation_tokens: int = 0
    energy_kwh: float = 0.0
    cost: float | None = 0.0
    tenant: str | None = None  # the owner (deployment rows) or the account (job rows)

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    @property
    def cost_per_million_tokens(self) -> float | None:
        if self.cost is None or not self.generation_tokens:
            return None
        return round(self.cost / self.generation_tokens * 1e6, 4)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gpu_hours"] = round(self.gpu_hours, 4)
        d["energy_kwh"] = round(self.energy_kwh, 4)
        d["cost"] = None if self.cost is None else round(self.cost, 4)
        d["cost_per_million_tokens"] = self.cost_per_million_tokens
        if d["tenant"] is None:
            del d["tenant"]
        return d


@dataclass
class Usage:
    site: str
    since: datetime
    until: datetime
    by: str
    currency: str
    gpu_hour_cost: float | None  # owned cost per GPU-hour (factoryctl cost)
    capacity_gpu_seconds: int
    tenants: list[Row]  # declared tenants, then other accounts seen, then idle
    deployments: list[Row]
    jobs: list[Row]
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> int:
        return int((self.until - self.since).total_seconds())

    @property
    def rows(self) -> list[Row]:
        return {"tenant": self.tenants, "deployment": self.deployments, "job": self.jobs}[self.by]

    @property
    def bill(self) -> float | None:
        if self.gpu_hour_cost is None:
            return None
        return round(self.capacity_gpu_seconds / 3600 * self.gpu_hour_cost, 4)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "site": self.site,
            "window": {"since": _iso(self.since), "until": _iso(self.until), "seconds": self.seconds},
            "by": self.by, "currency": self.currency, "gpu_hour_cost": self.gpu_hour_cost,
            "capacity_gpu_seconds": self.capacity_gpu_seconds, "bill": self.bill,
            "tenants": [r.to_dict() for r in self.tenants],
            "deployments": [r.to_dict() for r in self.deployments],
            "jobs": [r.to_dict() for r in self.jobs] if self.by == "job" else [],
            "sources": self.sources, "notes": self.notes,
        }


def _partition_power(site: Site) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """Partition -> (kW per GPU, kW per core) of its nodes (declared node power), and the
    site's own figures for jobs in partitions the file does not declare."""
    from ..resolve import cpu_cores_of

    f = site.factory
    groups = {ng.group: ng for ng in f.nodes}

    def per(names: list[str]) -> tuple[float, float]:
        kw_gpu = gpus = kw_cpu = cores = 0.0
        for n in names:
            ng, g = groups.get(n), site.groups.get(n)
            if ng is None or g is None:
                continue
            if g.gpus_per_node:
                kw_gpu += ng.count * g.power_kw
                gpus += ng.count * g.gpus_per_node
            kw_cpu += ng.count * g.power_kw
            cores += ng.count * cpu_cores_of(ng)
        return (kw_gpu / gpus if gpus else 0.0, kw_cpu / cores if cores else 0.0)

    out = {}
    for p in f.slurm.partitions:
        out[p.name] = per([p.nodes] if isinstance(p.nodes, str) else list(p.nodes))
    return out, per(list(groups))


def meter(site: Site, jobs: list[Job], tokens: dict[str, dict[str, int]], since: datetime, until: datetime,
          gpu_hour_cost: float | None, currency: str, by: str = "tenant") -> Usage:
    """The usage record of a window from the jobs and token counts read (pure: no I/O)."""
    f = site.factory
    pue = f.facility.pue
    power, site_power = _partition_power(site)
    price = gpu_hour_cost

    def charge(row: Row, gpu_s: int, cpu_s: int, partition: str) -> None:
        kw_gpu, kw_core = power.get(partition, site_power)
        row.energy_kwh += (gpu_s * kw_gpu if gpu_s else cpu_s * kw_core) * pue / 3600
        if row.cost is not None:
            row.cost = None if price is None else row.cost + gpu_s / 3600 * price

    tenants: dict[str, Row] = {t.name: Row(t.name) for t in f.tenants}
    owner = {d: t.name for t in f.tenants for d in t.deployments}
    deployments: dict[str, Row] = {d.name: Row(d.name, tenant=owner.get(d.name, UNOWNED)) for d in f.inference}
    job_rows = []
    for j in jobs:
        row = tenants.setdefault(j.account or UNOWNED, Row(j.account or UNOWNED))
        row.jobs += 1
        row.cpu_seconds += j.cpu_seconds
        row.gpu_seconds += j.gpu_seconds
        row.billing += j.billing * j.elapsed_seconds
        charge(row, j.gpu_seconds, j.cpu_seconds, j.partition)
        jr = Row(j.job_id, 1, j.cpu_seconds, j.gpu_seconds, j.billing * j.elapsed_seconds, tenant=j.account)
        charge(jr, j.gpu_seconds, j.cpu_seconds, j.partition)
        job_rows.append(jr)
        dep = j.name.removeprefix(INFERENCE_JOB_PREFIX) if j.name.startswith(INFERENCE_JOB_PREFIX) else None
        if dep in deployments:
            d = deployments[dep]
            d.jobs += 1
            d.cpu_seconds += j.cpu_seconds
            d.gpu_seconds += j.gpu_seconds
            d.billing += j.billing * j.elapsed_seconds
            charge(d, j.gpu_seconds, j.cpu_seconds, j.partition)
    for dep, counts in tokens.items():
        d = deployments.get(dep)
        if d is None:
            continue
        d.prompt_tokens += counts.get("prompt", 0)
        d.generation_tokens += counts.get("generation", 0)
        t = tenants.setdefault(d.tenant, Row(d.tenant))
        t.prompt_tokens += counts.get("prompt", 0)
        t.generation_tokens += counts.get("generation", 0)
    capacity = int(site.totals.get("gpus", 0)) * int((until - since).total_seconds())
    used = sum(r.gpu_seconds for r in tenants.values())
    idle = Row(IDLE, gpu_seconds=max(0, capacity - used))
    idle.cost = None if price is None else idle.gpu_seconds / 3600 * price
    notes = []
    if used > capacity:
        notes.append(f"jobs used {used:,} GPU-seconds, more than the {capacity:,} the site's GPUs hold in the "
                     "window: the site has more GPUs than factory.yaml declares, or accounting counts GRES differently")
    if price is None:
        notes.append("cost not computed: `factoryctl cost` has no owned cost per GPU-hour (set economics: prices)")
    return Usage(f.metadata.name, since, until, by, currency, price, capacity,
                 [*tenants.values(), idle], list(deployments.values()), job_rows, notes=notes)


# --- reading the site ----------------------------------------------------------------------


def missing_sources(site: Site) -> list[str]:
    """What `usage` needs and the site does not declare."""
    f = site.factory
    out = []
    if not (f.slurm.enabled and f.slurm.accounting):
        out.append("Slurm accounting: set slurm.enabled: true and slurm.accounting: true "
                   "(slurmdbd records the jobs sacct reads)")
    if not [h for h in site.hosts if "monitoring" in h.roles]:
        out.append("Prometheus: give a node group the monitoring role (the monitoring role runs "
                   "Prometheus there, scraping the engines' token counters)")
    return out


def collect(checked, ws, since: datetime, until: datetime, by: str = "tenant") -> Usage:
    """Read sacct and Prometheus on an applied site and meter the window."""
    from ..engines.ssh import Remote
    from .runs import site_cost

    site = checked.site
    missing = missing_sources(site)
    if missing:
        raise UsageSourceMissing("usage needs what this site does not have:\n" + "\n".join(f"  - {m}" for m in missing))
    if ws.applied() is None:
        raise UsageSourceMissing(f"{checked.path} was never applied: there is no accounting or Prometheus to read"
                                 f"\nhint: factoryctl up {checked.path}")
    remote = Remote(checked, ws)
    ctl = next(h.name for h in site.hosts if "slurm-controller" in h.roles)
    argv = sacct_argv(since, until)
    r = remote.run(ctl, argv, timeout=60)
    if r.returncode != 0:
        why = (r.stderr or r.stdout or "").strip().splitlines()
        raise UsageSourceMissing(f"sacct on {ctl} failed (exit {r.returncode}): {why[-1][:200] if why else 'no output'}"
                                 "\nhint: is slurmdbd running? (factoryctl status FILE)")
    try:
        jobs = parse_sacct(r.stdout)
    except ValueError as e:
        raise UsageSourceMissing(f"sacct on {ctl}: {e}") from None
    _, base = prometheus_url(checked, remote)  # missing_sources made sure there is one
    tokens, notes = token_counts(base, site, since, until)
    co = site_cost(site, ws.root)
    price = co.get("gpu_hour_cost").value
    u = meter(site, jobs, tokens, since, until, price, co.currency, by)
    u.sources = {"sacct": f"{ctl}: {' '.join(argv)}", "prometheus": base}
    u.notes = notes + u.notes
    return u


# --- the record the report reads -----------------------------------------------------------


def write_usage_run(u: Usage, folder: Path) -> Path:
    return write_json(folder / "usage.json", u.to_dict())


def latest_usage(runs_dir: Path) -> dict | None:
    """The newest runs/<id>/usage.json, or None."""
    if not runs_dir.is_dir():
        return None
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        p = d / "usage.json"
        if p.is_file() and not p.is_symlink():
            try:
                doc = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("schema") == SCHEMA:
                return doc
    return None
