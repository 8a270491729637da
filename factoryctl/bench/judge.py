"""Judge benchmark results against expectations: one Measurement per figure, with a verdict.

fraction = measured / expected. With the factory's ``verify.thresholds`` (t = the threshold
for that kind of figure, m = warn_margin): fraction < t fails, t <= fraction < t + m warns,
anything higher passes. Nothing to compare with (no expectation, a size too small, a CPU run)
is a skip with the reason. A run with wrong data or one that crashed fails whatever its numbers.

Thresholds per figure: NCCL/all_reduce busbw -> nccl_busbw_fraction; GEMM -> gemm_fraction;
memory and host<->device copies -> hbm_fraction. The expectations are what healthy hardware
of that shape reaches (bench/expect.py), so the thresholds are tolerances around a healthy
figure, not a second derating.

Peers: a site's average can pass while one GPU or node is slow. Every figure measured on
several GPUs (or nodes, bench/localise.py) is also compared with the median of its peers: one
more than PEER_MARGIN below that median and below the expectation (or with none known) is an
outlier and fails, named by rank, host and device; one slower than its peers but still above
the expectation warns.
"""

from __future__ import annotations

import statistics
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .. import catalog
from ..model.verify import Thresholds
from . import expect
from .expect import JUDGE_MIN_BYTES, Context, Expectation
from .fallback import FallbackResult
from .nccl_parse import NcclResult

Verdict = Literal["pass", "warn", "fail", "skip"]
# A GPU or node more than this below the median of its peers is an outlier. Healthy GPUs of one
# model sit within a few percent of each other; 10 % is the margin issue 15 asks for, and the
# tolerance nccl-tests itself applies to NCCL_TESTS_MIN_BW (fail below 0.9 x the given value).
PEER_MARGIN = 0.10
PEER_MIN = 2  # members; each is compared with the median of the others
VERDICTS: tuple[Verdict, ...] = ("fail", "warn", "pass", "skip")  # worst first


class Measurement(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    value: float | None
    unit: str
    expected: float | None = None
    fraction: float | None = None
    verdict: Verdict
    reason: str
    source: str = ""  # where the expected value comes from
    result: str = ""  # the log or result file judged
    scope: str = ""
    threshold: float | None = None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def verdict(fraction: float, threshold: float, margin: float) -> tuple[Verdict, str]:
    if fraction < threshold:
        return "fail", f"{fraction:.0%} of expected, below the {threshold:.0%} threshold"
    if fraction < threshold + margin:
        return "warn", f"{fraction:.0%} of expected, within {margin:.0%} above the {threshold:.0%} threshold"
    return "pass", f"{fraction:.0%} of expected (threshold {threshold:.0%})"


def compare(name: str, value: float | None, unit: str, exp: Expectation | None, threshold: float,
            margin: float, result: str = "", note: str = "") -> Measurement:
    """One figure against one expectation (None: skip, saying why)."""
    base = {"name": name, "value": value, "unit": unit, "result": result,
            "scope": exp.scope if exp else "", "source": exp.source if exp else ""}
    if value is None:
        return Measurement(**base, verdict="skip", reason=note or "nothing measured")
    if exp is None or exp.value is None:
        why = exp.source if exp else "no expectation"
        return Measurement(**base, verdict="skip", reason=f"not judged: {note or why}")
    frac = value / exp.value
    v, why = verdict(frac, threshold, margin)
    return Measurement(**base, expected=exp.value, fraction=round(frac, 4), verdict=v,
                       threshold=threshold, reason=f"{why}{'; ' + note if note else ''}")


def peer_outliers(name: str, values: list[tuple[str, float]], unit: str, exp: Expectation | None,
                  result: str = "", margin: float = PEER_MARGIN, what: str = "GPUs") -> list[Measurement]:
    """Each member more than `margin` below the median of its peers (the other members), as a
    Measurement named `<name>.outlier` (where: "rank 3 on gpu02 cuda:3", "node gpu02"). Fails
    when it is also below the expectation (or none is known), warns when it still reaches it."""
    if len(values) < PEER_MIN:
        return []
    out = []
    for i, (where, val) in enumerate(values):
        med = statistics.median(v for j, (_, v) in enumerate(values) if j != i)
        if med <= 0 or (frac := val / med) >= 1 - margin:
            continue
        floor = exp.value if exp is not None and exp.value is not None else None
        below = floor is None or val < floor
        vs = (f"below the expected {floor:g} {unit}" if floor is not None and below
              else f"still at or above the expected {floor:g} {unit}" if floor is not None
              else "no expectation to compare with")
        out.append(Measurement(
            name=f"{name}.outlier", value=round(val, 3), unit=unit, expected=round(med, 3),
            fraction=round(frac, 4), verdict="fail" if below else "warn", result=result,
            threshold=round(1 - margin, 4), scope=f"{where} against the median of {len(values) - 1} {what}",
            source=exp.source if exp is not None else "",
            reason=(f"{where}: {val:.4g} {unit} is {1 - frac:.0%} below the median {med:.4g} of "
                    f"its {len(values) - 1} peers (margin {margin:.0%}); {vs}")))
    return out


def _fail(name: str, reason: str, result: str, value: float | None = None, unit: str = "") -> Measurement:
    return Measurement(name=name, value=value, unit=unit, verdict="fail", reason=reason, result=result)


def pick_context(ctxs: list[Context], gpu_name: str | None) -> tuple[Context | None, str]:
    """The factory group whose GPU ran the benchmark; (None, why) when none matches."""
    spec = catalog.gpu(gpu_name) if gpu_name else None
    if spec is not None:
        same = [c for c in ctxs if c.gpu.name == spec.name]
        if same:
            return same[0], ""
        have = ", ".join(f"{c.group}: {c.gpu.name}" for c in ctxs) or "no GPU groups"
        return None, f"the run used {spec.name}; the factory has {have}"
    vendor = _vendor(gpu_name)
    if vendor and len(ctxs) == 1 and ctxs[0].gpu.vendor != vendor:
        return None, f"the run used {gpu_name!r}; the factory has {ctxs[0].group}: {ctxs[0].gpu.name}"
    if len(ctxs) == 1:
        return ctxs[0], "" if not gpu_name else f"GPU {gpu_name!r} not in the catalog; judged as {ctxs[0].gpu.name}"
    if not ctxs:
        return None, "the factory has no GPU group the catalog knows"
    return None, f"GPU {gpu_name or 'unknown'}: cannot tell which group ran it"


def _vendor(gpu_name: str | None) -> str | None:
    low = (gpu_name or "").lower()
    if any(w in low for w in ("amd", "radeon", "instinct")):
        return "amd"
    return "nvidia" if "nvidia" in low else None


def _layout(ranks: int | None, hosts: int, ctx: Context) -> tuple[int, int]:
    """(ranks per node, nodes) of a run; hosts unknown -> fill nodes of the group's size."""
    ranks = ranks or ctx.gpus_per_node
    nodes = hosts or max(1, -(-ranks // ctx.gpus_per_node))
    return max(1, ranks // nodes), nodes


def _busbw(name: str, sizes_busbw: list[tuple[int, float]], ctx: Context | None, why_no_ctx: str,
           collective: str, ranks: int | None, hosts: int, th: Thresholds, result: str) -> Measurement:
    """Bandwidth at the largest size >= JUDGE_MIN_BYTES against the expectation."""
    top = max((s for s, _ in sizes_busbw), default=0)
    big = [(s, b) for s, b in sizes_busbw if s >= JUDGE_MIN_BYTES]
    size = max((s for s, _ in big), default=top)
    value = max((b for s, b in sizes_busbw if s == size), default=None)
    if ctx is None:
        return Measurement(name=name, value=value, unit="GB/s", verdict="skip", result=result,
                           reason=f"not judged: {why_no_ctx}")
    if not big:
        return Measurement(name=name, value=value, unit="GB/s", verdict="skip", result=result,
                           reason=f"not judged: max size too small ({_human(top)} < "
                                  f"{_human(JUDGE_MIN_BYTES)}; small sizes do not reach large-message busbw)")
    per_node, nodes = _layout(ranks, hosts, ctx)
    exp = expect.nccl_busbw(ctx, collective, per_node, nodes)
    return compare(name, value, "GB/s", exp, th.nccl_busbw_fraction, th.warn_margin, result,
                   note=f"at {_human(size)}")


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


# --- nccl-tests -------------------------------------------------------------------------------


def judge_nccl(res: NcclResult, ctxs: list[Context], th: Thresholds) -> list[Measurement]:
    coll = res.collective or "unknown"
    name, src = f"nccl.{coll}.busbw", res.source
    if res.status == "data_errors":
        return [_fail(f"nccl.{coll}.data", f"data errors: {res.wrong_total} wrong elements, "
                      f"{res.out_of_bounds or 0} out-of-bounds reports (bandwidth not judged)",
                      src, float(res.wrong_total), "wrong elements")]
    if res.status == "crashed":
        first = next((e for e in res.errors), "the run ended early")
        return [_fail(f"nccl.{coll}.run", f"crashed: {first}", src)]
    if res.status == "no_rows":
        return [_fail(f"nccl.{coll}.run", res.errors[0] if res.errors else "no result rows", src)]
    out = []
    if res.avg_busbw_check == "FAILED":
        out.append(_fail(f"nccl.{coll}.min_bw", "the run's own NCCL_TESTS_MIN_BW check failed",
                         src, res.avg_busbw_gbps, "GB/s"))
    if res.collective is None:
        return out + [Measurement(name=name, value=res.peak_busbw_gbps, unit="GB/s", verdict="skip",
                                  result=src, reason="not judged: collective unknown")]
    gpu = next((d.gpu for d in res.devices if d.gpu), None)
    ctx, why = pick_context(ctxs, gpu)
    rows = [(r.size_bytes, r.busbw_max) for r in res.rows if r.busbw_max is not None]
    hosts = len({d.host for d in res.devices})
    m = _busbw(name, rows, ctx, why, res.collective, res.ranks, hosts, th, src)
    if why and ctx is not None:
        m = m.model_copy(update={"reason": f"{m.reason}; {why}"})
    return out + [m]


# --- the built-in benchmark -------------------------------------------------------------------


def _slowest(doc: FallbackResult, pick) -> tuple[float | None, str]:
    """Lowest value over ranks (one slow GPU must show) and which rank it was."""
    vals = [(v, r) for r in doc.ranks if (v := pick(r)) is not None]
    if not vals:
        return None, ""
    v, r = min(vals, key=lambda x: x[0])
    return v, f"slowest of {len(vals)}: {_where(r)}" if len(vals) > 1 else _where(r)


def _where(r) -> str:
    return f"rank {r.rank} on {r.host} {r.device}".rstrip()


def _per_rank(doc: FallbackResult, pick) -> list[tuple[str, float]]:
    return [(_where(r), v) for r in doc.ranks if (v := pick(r)) is not None]


def judge_fallback(doc: FallbackResult, ctxs: list[Context], th: Thresholds) -> list[Measurement]:
    src = doc.source
    out = [_fail("fallback.run", err, src) for err in doc.errors]
    ctx, why = (None, f"CPU mode ({doc.backend or 'gloo'}): exercises the path; there is no expectation for CPUs")
    if doc.mode == "gpu":
        ctx, why = pick_context(ctxs, doc.device_name)
    m = th.warn_margin

    dtypes = sorted({d for r in doc.ranks for d in r.gemm})
    for dt in dtypes:
        skipped = next((g.skipped for r in doc.ranks if (g := r.gemm.get(dt)) and g.skipped), None)
        val, where = _slowest(doc, lambda r, dt=dt: (g.tflops if (g := r.gemm.get(dt)) else None))
        exp = expect.gemm_tflops(ctx.gpu, dt) if ctx else None
        note = skipped or (where if ctx else f"{why}; {where}")
        out.append(compare(f"gemm.{dt}.tflops", val, "TFLOPS", exp, th.gemm_fraction, m, src, note))
        if ctx is not None:
            out += peer_outliers(f"gemm.{dt}.tflops", _per_rank(
                doc, lambda r, dt=dt: (g.tflops if (g := r.gemm.get(dt)) else None)), "TFLOPS", exp, src)
    for key, name in (("hbm", "hbm.copy.gbps"), ("h2d", "h2d.gbps"), ("d2h", "d2h.gbps")):
        val, where = _slowest(doc, lambda r, key=key: (c.gbps if (c := getattr(r, key)) else None))
        if val is None:
            continue
        exp = None
        if ctx:
            exp = expect.hbm_copy(ctx.gpu) if key == "hbm" else expect.host_copy(ctx.gpu, key)
        out.append(compare(name, val, "GB/s", exp, th.hbm_fraction, m, src,
                           where if ctx else f"{why}; {where}"))
        if ctx is not None:
            out += peer_outliers(name, _per_rank(
                doc, lambda r, key=key: (c.gbps if (c := getattr(r, key)) else None)), "GB/s", exp, src)
    out += judge_throttling(doc)
    out += _judge_sweep(doc, ctx, why, th)
    return out


# Throttle reasons seen while the sustained GEMM ran (NVML nvmlClocksThrottleReasons): these
# mean the GPU is protecting itself (HW slowdown: thermal or power brake signal from the board;
# NVIDIA DCGM and Azure's health checks flag them), so they fail; SW thermal slowdown warns;
# SW power cap is a GPU working at its power limit under a full GEMM, recorded, not judged.
THROTTLE_FAIL = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
THROTTLE_WARN = ("sw_thermal_slowdown",)


def judge_throttling(doc: FallbackResult) -> list[Measurement]:
    out = []
    for r in doc.ranks:
        for dt, g in sorted(r.gemm.items()):
            seen = ((g.clocks or {}).get("throttle_reasons") or {}) if g else {}
            bad = [n for n in THROTTLE_FAIL if seen.get(n)]
            meh = [n for n in THROTTLE_WARN if seen.get(n)]
            if not bad and not meh:
                continue
            clk = (g.clocks or {}).get("sm_clock_mhz") or {}
            n = (g.clocks or {}).get("samples") or 0
            reasons = ", ".join(f"{x} in {seen[x]} of {n} samples" for x in bad + meh)
            out.append(Measurement(
                name=f"gemm.{dt}.throttle", value=clk.get("min"), unit="MHz (lowest SM clock)",
                verdict="fail" if bad else "warn", result=doc.source, scope=_where(r),
                reason=f"{_where(r)}: clocks throttled while the sustained {dt} GEMM ran: {reasons}"
                       + (f"; SM clock {clk.get('min'):g}-{clk.get('max'):g} MHz" if clk else "")))
    return out


def _judge_sweep(doc: FallbackResult, ctx: Context | None, why: str, th: Thresholds) -> list[Measurement]:
    ar, src = doc.all_reduce, doc.source
    if ar is None:
        return []
    if ar.skipped:
        return [Measurement(name="all_reduce.busbw", value=None, unit="GB/s", verdict="skip",
                            reason=ar.skipped, result=src)]
    out = []
    chk = ar.check
    if chk is not None:
        same = len(set(chk.checksums)) <= 1
        if chk.wrong or not same:
            reason = (f"{chk.wrong} wrong elements (each should read {chk.expected_value:g})"
                      if chk.wrong else f"ranks disagree on the result: checksums {chk.checksums}")
            out.append(_fail("all_reduce.check", reason, src, float(chk.wrong), "wrong elements"))
        else:
            out.append(Measurement(name="all_reduce.check", value=0.0, unit="wrong elements",
                                   verdict="pass", result=src,
                                   reason=f"{chk.elements} elements equal {chk.expected_value:g} "
                                          f"on all {len(chk.checksums)} ranks"))
    rows = [(r.size_bytes, r.busbw_gbps) for r in ar.rows]
    out.append(_busbw("all_reduce.busbw", rows, ctx, why, "all_reduce", doc.world_size,
                      doc.nodes, th, src))
    return out


def worst(ms: list[Measurement]) -> Verdict:
    """The overall verdict: fail > warn > pass; skip only when everything skipped."""
    for v in VERDICTS:
        if any(x.verdict == v for x in ms):
            return v
    return "skip"
