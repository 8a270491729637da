"""Localisation: which node (and where the log tells, which rail) makes the site slow.

The whole-site run says whether the site reaches what it should; it cannot say where it does
not. The benchmark stage therefore also runs, for one collective at one large size:

1. every node on its own, all at once (one Slurm job per node): each node's NVLink/NVSwitch
   figure, judged against the single-node expectation and against the median of its peers;
2. a ring of pairs (n0+n1, n1+n2, ..., n(k-1)+n0; disjoint pairs at once): each pair crosses
   the fabric, so a slow NIC, rail or cable shows in the two pairs of its node;
3. bisection of a slow pair neither of whose nodes is slow in its other pair: each of the two
   paired with a known-good node (one whose pairs all passed).

A node slow in both of its ring pairs, or slow beside a known-good node, is named. A node more
than judge.PEER_MARGIN (10 %) below the median of its peers and below the expectation is an
outlier even when the site's average passes. With NCCL_DEBUG=INFO the pair logs name the NICs
each host uses (``NET/IB : Using [0]mlx5_0:1/IB ...``, NCCL's INIT/NET output): a host using
fewer than its peers (or than the ports the factory declares) is named with the missing ones.

Every round prints one section per run, opened by ``==> factoryctl-bench node=HOST <==`` or
``==> factoryctl-bench pair=A,B <==``; tests/fixtures/nccl/h100-2n-localise-slow-node-synthetic.log
is such a log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.verify import Thresholds
from . import expect
from .expect import JUDGE_MIN_BYTES, Context
from .judge import Measurement, compare, peer_outliers, pick_context
from .nccl_parse import NcclResult, parse_text

MARK = re.compile(r"^==> factoryctl-bench (node|pair)=(\S+) <==\s*$", re.MULTILINE)
# NCCL_DEBUG=INFO: "gpu01:4242:4301 [3] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_3:1/RoCE ; OOB ..."
NET_USING = re.compile(r"^(?:\s*\d+:\s*)?(?P<host>[^\s:]+):\d+:\d+ \[\d+\] NCCL INFO NET/IB ?: Using (?P<devs>.*?)"
                       r"(?: ; OOB.*)?$", re.MULTILINE)
NET_DEV = re.compile(r"\[\d+\]([^\s/]+)/(?:IB|RoCE)")

Pair = tuple[str, str]
Job = tuple[str, str, list[str]]  # (kind node|pair, section key, hosts)


def marker(kind: str, key: str) -> str:
    return f"==> factoryctl-bench {kind}={key} <=="


def sections(text: str) -> list[tuple[str, str, str]]:
    """(kind, key, body) of each marked section of a localisation log."""
    marks = list(MARK.finditer(text))
    return [(m.group(1), m.group(2), text[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)])
            for i, m in enumerate(marks)]


def ring_pairs(nodes: list[str]) -> list[Pair]:
    """n0+n1, n1+n2, ..., n(k-1)+n0: every node in two pairs (one pair for two nodes)."""
    if len(nodes) < 2:
        return []
    if len(nodes) == 2:
        return [(nodes[0], nodes[1])]
    return [(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes))]


def rounds(pairs: list[Pair]) -> list[list[Pair]]:
    """The pairs in rounds of disjoint pairs (a node runs one job at a time), in order."""
    out: list[list[Pair]] = []
    for pair in pairs:
        for rnd in out:
            if not {n for p in rnd for n in p} & set(pair):
                rnd.append(pair)
                break
        else:
            out.append([pair])
    return out


def rails_in_use(text: str) -> dict[str, set[str]]:
    """host -> the NICs NCCL says it uses (NCCL_DEBUG=INFO), from every rank's line."""
    out: dict[str, set[str]] = {}
    for m in NET_USING.finditer(text):
        out.setdefault(m.group("host"), set()).update(NET_DEV.findall(m.group("devs")))
    return out


def _largest(res: NcclResult) -> tuple[int, float] | None:
    rows = [(r.size_bytes, r.busbw_max) for r in res.rows if r.busbw_max is not None]
    return max(rows, default=None)


@dataclass
class Localisation:
    """What the rounds found: the judged figures, the hosts named, the pairs still to bisect."""

    measurements: list[Measurement] = field(default_factory=list)
    suspects: dict[str, str] = field(default_factory=dict)  # host -> why
    bisect: list[Pair] = field(default_factory=list)  # (suspect, known-good) runs still to do
    slow_pairs: list[Pair] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"suspects": self.suspects, "bisect": [list(p) for p in self.bisect],
                "slow_pairs": [list(p) for p in self.slow_pairs]}


def _judge_runs(runs: dict[str, NcclResult], label: str, ctxs: list[Context], th: Thresholds,
                collective: str, per_node: int, nodes: int, what: str,
                source: str) -> tuple[list[Measurement], dict[str, str]]:
    """Each run against the expectation of its shape, then each against its peers: the
    measurements, and the runs (section keys) that failed with the first reason."""
    out: list[Measurement] = []
    failed: dict[str, str] = {}
    name = f"nccl.{collective}.busbw.{label}"
    values: list[tuple[str, float]] = []
    keys: dict[str, str] = {}  # where -> section key
    exp = None
    for key, res in runs.items():
        where = f"{label} {key.replace(',', '+')}"
        keys[where] = key
        if res.status != "ok" or not res.rows:
            first = res.errors[0] if res.errors else res.status
            out.append(Measurement(name=name, value=None, unit="GB/s", verdict="fail", result=source,
                                   scope=where, reason=f"{where}: the run gave no result: {first}"))
            failed.setdefault(key, out[-1].reason)
            continue
        gpu = next((d.gpu for d in res.devices if d.gpu), None)
        ctx, why = pick_context(ctxs, gpu)
        top = _largest(res)
        exp = expect.nccl_busbw(ctx, collective, per_node, nodes) if ctx else None
        value = top[1] if top else None
        if top and top[0] < JUDGE_MIN_BYTES:
            exp = None
            why = f"largest size {top[0]} B is below the {JUDGE_MIN_BYTES} B judged"
        at = f"at {top[0] / (1 << 30):g} GiB" if top else ""
        m = compare(name, value, "GB/s", exp, th.nccl_busbw_fraction, th.warn_margin, source,
                    note=f"{at}{'; ' + why if why else ''}")
        out.append(m.model_copy(update={"scope": f"{where} ({m.scope})" if m.scope else where,
                                        "reason": f"{where}: {m.reason}"}))
        if m.verdict == "fail":
            failed.setdefault(key, out[-1].reason)
        if value is not None:
            values.append((where, value))
    for m in peer_outliers(name, values, "GB/s", exp, source, what=what):
        out.append(m)
        if m.verdict == "fail":  # scope: "<where> against the median of ..."
            failed.setdefault(keys[m.scope.split(" against ")[0]], m.reason)
    return out, failed


def judge_nodes(text: str, ctxs: list[Context], th: Thresholds, collective: str, per_node: int,
                source: str = "<localisation>") -> Localisation:
    """The single-node round: every node judged alone and against its peers; a failing node is
    named."""
    runs = {key: parse_text(body, source=f"{source}: node {key}")
            for kind, key, body in sections(text) if kind == "node"}
    ms, failed = _judge_runs(runs, "node", ctxs, th, collective, per_node, 1, "nodes", source)
    return Localisation(ms, suspects=failed)


def judge_pairs(text: str, nodes: list[str], ctxs: list[Context], th: Thresholds, collective: str,
                per_node: int, declared_ports: int = 0, source: str = "<localisation>") -> Localisation:
    """The ring of pairs: slow pairs, the nodes slow in both of theirs, the rails a host lacks,
    and the bisection runs for the slow pairs that stay unexplained."""
    runs: dict[str, NcclResult] = {}
    rails: dict[str, set[str]] = {}
    for kind, key, body in sections(text):
        if kind == "pair":
            runs[key] = parse_text(body, source=f"{source}: pair {key}")
            for host, devs in rails_in_use(body).items():
                rails.setdefault(host, set()).update(devs)
    ms, failed = _judge_runs(runs, "pair", ctxs, th, collective, per_node, 2, "pairs", source)
    loc = Localisation(ms)
    loc.slow_pairs = [(a, b) for a, _, b in (k.partition(",") for k in runs if k in failed)]
    for host, m in judge_rails(rails, declared_ports, source):
        loc.measurements.append(m)
        loc.suspects.setdefault(host, m.reason)
    count: dict[str, list[str]] = {}
    for a, b in loc.slow_pairs:
        for n in (a, b):
            count.setdefault(n, []).append(f"{a}+{b}")
    mine = {n: [p for p in ring_pairs(nodes) if n in p] for n in nodes}
    for n, bad in count.items():
        if len(mine.get(n, [])) >= 2 and len(bad) >= 2:
            loc.suspects.setdefault(n, f"{n}: slow in both of its ring pairs ({', '.join(bad)})")
    good = [n for n in nodes if n not in count and n not in loc.suspects]
    for a, b in loc.slow_pairs:
        if a in loc.suspects or b in loc.suspects:
            continue
        if good:
            loc.bisect += [(a, good[0]), (b, good[0])]
        else:
            why = f"pair {a}+{b} is slow and no node is known good to tell which of the two it is"
            loc.suspects[a] = loc.suspects[b] = why
    return loc


def judge_rails(rails: dict[str, set[str]], declared: int, source: str) -> list[tuple[str, Measurement]]:
    """(host, finding) for each host that uses fewer NICs than its peers (or than the factory
    declares), with the NICs its peers use and it does not."""
    if not rails:
        return []
    union = set().union(*rails.values())
    want = max(declared, len(union))
    out = []
    for host, devs in sorted(rails.items()):
        if len(devs) >= want:
            continue
        missing = sorted(union - devs)
        out.append((host, Measurement(
            name="nccl.rails", value=float(len(devs)), unit="NICs in use", expected=float(want),
            verdict="fail", result=source, scope=f"host {host}",
            reason=(f"host {host}: NCCL uses {len(devs)} of {want} NICs"
                    + (f"; missing {', '.join(missing)} (its peers use them)" if missing else "")
                    + " (NCCL_DEBUG=INFO 'NET/IB : Using' lines): a rail is down or not given to NCCL"))))
    return out


def judge_bisection(text: str, ctxs: list[Context], th: Thresholds, collective: str, per_node: int,
                    source: str = "<localisation>") -> Localisation:
    """Each suspect paired with a known-good node: a slow pair names the suspect."""
    runs = {key: parse_text(body, source=f"{source}: pair {key}")
            for kind, key, body in sections(text) if kind == "pair"}
    ms, failed = _judge_runs(runs, "bisect", ctxs, th, collective, per_node, 2, "pairs", source)
    loc = Localisation(ms)
    for key, why in failed.items():
        suspect, _, good = key.partition(",")
        loc.suspects[suspect] = f"{suspect}: slow when paired with the known-good {good}: {why}"
    return loc


def suspect_measurements(suspects: dict[str, str], source: str) -> list[Measurement]:
    """One failing `localise.node` per host named, the reason saying why."""
    return [Measurement(name="localise.node", value=None, unit="", verdict="fail", result=source,
                        scope=f"node {host}", reason=why)
            for host, why in sorted(suspects.items())]


def judge_log(text: str, ctxs: list[Context], th: Thresholds, source: str = "<localisation>") -> list[Measurement]:
    """A recorded localisation log (node and/or pair sections, as the stage prints them):
    every figure judged and the slow hosts named. The collective and ranks per node are read
    from the first run's log."""
    secs = sections(text)
    first = parse_text(secs[0][2], source=source) if secs else None
    coll = (first.collective if first else None) or "all_reduce"
    hosts = {d.host for d in first.devices} if first else set()
    per_node = max(1, (first.ranks or 0) // max(1, len(hosts))) if first and first.ranks else (
        ctxs[0].gpus_per_node if ctxs else 8)
    nodes: list[str] = []
    for kind, key, _ in secs:
        for n in key.split(",") if kind == "pair" else [key]:
            if n not in nodes:
                nodes.append(n)
    ports = max((c.nic_ports for c in ctxs), default=0)
    found = judge_nodes(text, ctxs, th, coll, per_node, source)
    pairs = judge_pairs(text, nodes, ctxs, th, coll, per_node, ports, source)
    suspects = {**pairs.suspects, **found.suspects}
    return found.measurements + pairs.measurements + suspect_measurements(suspects, source)


def run_rounds(nodes: list[str], go: Callable[[list[Job]], str], ctxs: list[Context], th: Thresholds,
               collective: str, per_node: int, source: str,
               say: Callable[[str], None] = lambda _m: None) -> tuple[list[Measurement], dict]:
    """The three rounds through a scheduler: `go` runs a list of jobs at once and returns their
    logs, each behind its marker(). Returns the measurements (the hosts named last, as
    `localise.node`) and the summary bench.json keeps under `localisation`."""
    ports = max((c.nic_ports for c in ctxs), default=0)
    say(f"benchmark: {collective} on each of {len(nodes)} node(s) at once")
    alone = judge_nodes(go([("node", n, [n]) for n in nodes]), ctxs, th, collective, per_node, source)
    text = ""
    for rnd in rounds(ring_pairs(nodes)):
        say(f"benchmark: {collective} on node pairs {', '.join(a + '+' + b for a, b in rnd)}")
        text += go([("pair", f"{a},{b}", [a, b]) for a, b in rnd])
    pairs = judge_pairs(text, nodes, ctxs, th, collective, per_node, ports, source)
    bisect = Localisation()
    if pairs.bisect:
        text = ""
        for rnd in rounds(pairs.bisect):
            say(f"benchmark: bisecting {', '.join(a + ' with known-good ' + b for a, b in rnd)}")
            text += go([("pair", f"{a},{b}", [a, b]) for a, b in rnd])
        bisect = judge_bisection(text, ctxs, th, collective, per_node, source)
    suspects = {**bisect.suspects, **pairs.suspects, **alone.suspects}
    ms = alone.measurements + pairs.measurements + bisect.measurements
    return ms + suspect_measurements(suspects, source), {
        "collective": collective, "nodes": nodes, "suspects": suspects,
        "slow_pairs": [list(x) for x in pairs.slow_pairs], "bisect": [list(x) for x in pairs.bisect]}
