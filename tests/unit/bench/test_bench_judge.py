"""Judging nccl-tests logs and built-in benchmark results (factoryctl/bench/judge.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factoryctl import catalog
from factoryctl.bench import fallback
from factoryctl.bench.expect import Context
from factoryctl.bench.judge import judge_fallback, judge_nccl, pick_context, verdict, worst
from factoryctl.bench.nccl_parse import Half, NcclResult, Row, parse_file
from factoryctl.cli.bench import app
from factoryctl.model.verify import Thresholds
from tests.helpers import reference_doc, write_doc

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "nccl"
TH = Thresholds()  # 0.92 of what healthy hardware reaches, warn margin 0.04
H100 = [Context(gpu=catalog.gpu("H100"), gpus_per_node=8, nodes=2, nic_ports=8, port_gbps=400,
                fabric="infiniband", group="gpu")]
GIB = 1 << 30
runner = CliRunner()


def judged(name: str, ctxs=H100):
    return judge_nccl(parse_file(FIX / name), ctxs, TH)


def test_verdict_bands() -> None:
    assert verdict(0.79, 0.8, 0.1)[0] == "fail"
    assert verdict(0.80, 0.8, 0.1)[0] == "warn"
    assert verdict(0.89, 0.8, 0.1)[0] == "warn"
    assert verdict(0.90, 0.8, 0.1)[0] == "pass"
    assert worst([]) == "skip"


def test_h100_single_node_passes() -> None:
    (m,) = judged("h100-1n-all_reduce-nvidia-i290.log")
    assert (m.name, m.value, m.expected, m.verdict) == ("nccl.all_reduce.busbw", 476.53, 476.0, "pass")
    assert m.scope == "1 node x 8 GPUs" and "4 GiB" in m.reason and "NVLS" in m.source
    assert m.result.endswith("i290.log")


def test_h100_two_nodes_low_bandwidth_fails() -> None:
    (m,) = judged("h100-2n-all_reduce-nvidia-i290-lowbw.log")
    assert m.verdict == "fail" and m.value == 155.57 and m.expected == 469.2
    assert m.scope == "2 nodes x 8 GPUs" and m.fraction == pytest.approx(155.57 / 469.2, abs=1e-4)
    assert "below the 92% threshold" in m.reason


def test_h100_two_nodes_one_rail_of_eight_down_fails() -> None:
    # The healthy 2x8 H100 run (469.21 GB/s) with one of 8 rails down reads ~7/8 of it (410.6):
    # against min(NICs, single-node ring) = 370 at 80 % it passed; against what healthy runs
    # of that shape reach it fails.
    healthy = parse_file(FIX / "h100-2n-all_reduce-nvidia-i309.log")
    rows = [r.model_copy(update={
        "out_of_place": r.out_of_place.model_copy(update={"busbw_gbps": r.out_of_place.busbw_gbps * 7 / 8}),
        "in_place": r.in_place.model_copy(update={"busbw_gbps": r.in_place.busbw_gbps * 7 / 8})})
        for r in healthy.rows]
    (m,) = judge_nccl(healthy.model_copy(update={"rows": rows}), H100, TH)
    assert m.value == pytest.approx(469.21 * 7 / 8, abs=0.01) and m.expected == 469.2
    assert m.verdict == "fail" and m.fraction == pytest.approx(0.875, abs=1e-3)


def test_h100_two_nodes_healthy_passes() -> None:
    (m,) = judged("h100-2n-all_reduce-nvidia-i309.log")
    assert m.verdict == "pass" and m.value == 469.21 and "16 GiB" in m.reason


def test_data_errors_fail_whatever_the_numbers() -> None:
    (m,) = judged("gh200-2n-all_reduce-nvidia-i369-wrong.log")
    assert m.verdict == "fail" and m.name == "nccl.all_reduce.data"
    assert "data errors" in m.reason and m.value == 128


def test_crash_fails() -> None:
    (m,) = judged("gh200-2n-all_reduce-nvidia-i369-cudafail.log")
    assert m.verdict == "fail" and "Test CUDA failure" in m.reason


def test_other_gpu_is_not_judged_against_this_factory() -> None:
    (m,) = judged("a100-1n-all_reduce-oracle-japan.log")
    assert m.verdict == "skip" and "A100-SXM-40GB" in m.reason
    a100 = [Context(gpu=catalog.gpu("A100-40GB"), gpus_per_node=8, group="a")]
    (m,) = judged("a100-1n-all_reduce-oracle-japan.log", a100)
    assert m.verdict == "pass" and m.expected == 233.0
    (m,) = judged("mi355x-1n-alltoall-prasad-nair-amd.log")  # AMD log, NVIDIA factory
    assert m.verdict == "skip"


def _result(max_size: int, busbw: float, **kw) -> NcclResult:
    rows = [Row(size_bytes=s, count=s // 4, type="float", redop="sum", root=-1,
                out_of_place=Half(time_us=1.0, algbw_gbps=busbw / 1.75, busbw_gbps=busbw, wrong=0))
            for s in (max_size // 4, max_size)]
    return NcclResult(source="mem", collective="all_reduce", ranks=8, rows=rows, concluded=True,
                      status="ok", **kw)


def test_small_sizes_are_not_judged() -> None:
    (m,) = judge_nccl(_result(256 << 20, 400.0), H100, TH)
    assert m.verdict == "skip" and "max size too small" in m.reason and m.value == 400.0
    (m,) = judge_nccl(_result(GIB, 450.0), H100, TH)  # 1 GiB is judged: 450/476 = 94.5 % -> warn
    assert m.verdict == "warn" and m.expected == 476.0


def test_min_bw_failure_and_no_rows() -> None:
    ms = judge_nccl(_result(8 * GIB, 478.0, avg_busbw_check="FAILED"), H100, TH)
    assert [m.verdict for m in ms] == ["fail", "pass"]
    (m,) = judge_nccl(NcclResult(source="x", status="no_rows", errors=["no rows"]), H100, TH)
    assert m.verdict == "fail"


def test_pick_context() -> None:
    a100 = Context(gpu=catalog.gpu("A100"), gpus_per_node=8, group="old")
    assert pick_context(H100 + [a100], "NVIDIA A100-SXM4-80GB")[0] is a100
    assert pick_context(H100 + [a100], "mystery")[0] is None
    ctx, note = pick_context(H100, "NVIDIA Mystery GPU")
    assert ctx is H100[0] and "not in the catalog" in note


# --- built-in benchmark results ---------------------------------------------------------------


def h100_run(slow: dict[int, float] | None = None, **changes) -> dict:
    """A recorded-looking 8x H100 GPU run of the built-in worker (one node); `slow` maps a rank
    to its BF16 TFLOPS (the others reach 790, healthy: 794.5 in the MAMF table)."""
    def rank(i: int) -> dict:
        bf16 = (slow or {}).get(i, 790.0)
        return {"rank": i, "local_rank": i, "host": "gpu01", "device": f"cuda:{i}",
                "device_name": "NVIDIA H100 80GB HBM3", "memory_gb": 85.0, "capability": "9.0",
                "gemm": {"bf16": {"dtype": "bf16", "m": 8192, "n": 8192, "k": 8192, "iters": 20,
                                  "time_ms_median": 1.41, "tflops": bf16, "tflops_max": bf16 + 5},
                         "fp8": {"dtype": "fp8", "m": 8192, "n": 8192, "k": 8192, "iters": 20,
                                 "time_ms_median": 0.78, "tflops": 1400.0, "tflops_max": 1420.0}},
                "hbm": {"bytes": GIB, "moved_bytes": 2 * GIB, "iters": 20, "time_ms_median": 0.77,
                        "gbps": 2800.0},
                "h2d": {"bytes": GIB, "iters": 20, "time_ms_median": 23.9, "gbps": 48.0},
                "d2h": {"bytes": GIB, "iters": 20, "time_ms_median": 20.0, "gbps": 53.0},
                "errors": []}
    rows = [{"size_bytes": s, "count": s // 4, "time_us": 1.0, "algbw_gbps": bw / 1.75, "busbw_gbps": bw}
            for s, bw in ((1 << 20, 40.0), (256 << 20, 390.0), (GIB, 460.0), (4 * GIB, 474.0))]
    doc = {"schema": fallback.SCHEMA, "mode": "gpu", "backend": "nccl", "launcher": "env",
           "world_size": 8, "nodes": 1, "hosts": ["gpu01"], "duration_s": 61.2,
           "versions": {"python": "3.11.9", "torch": "2.5.1+cu124", "cuda": "12.4", "hip": None,
                        "nccl": "2.21.5", "driver": "550.90.07"},
           "config": {}, "env": {}, "ranks": [rank(i) for i in range(8)],
           "all_reduce": {"dtype": "float32", "op": "sum", "ranks": 8, "busbw_factor": 1.75,
                          "rows": rows, "check": {"elements": 16 << 20, "expected_value": 36.0,
                                                  "wrong": 0, "checksums": [603979776.0] * 8}},
           "errors": []}
    doc.update(changes)
    return doc


def by_name(ms) -> dict:
    return {m.name: m for m in ms}


def test_recorded_gpu_run() -> None:
    ms = by_name(judge_fallback(fallback.load(h100_run(), "rec.json"), H100, TH))
    bf16 = ms["gemm.bf16.tflops"]  # slowest rank: 790 of 794 = 99 %
    assert bf16.value == 790.0 and bf16.verdict == "pass" and "slowest of 8" in bf16.reason
    assert not [n for n in ms if n.endswith(".outlier")]
    assert ms["gemm.fp8.tflops"].verdict == "pass"
    assert ms["hbm.copy.gbps"].verdict == "pass" and ms["hbm.copy.gbps"].expected == pytest.approx(2901.1)
    assert ms["h2d.gbps"].verdict == "warn"  # 48 of 51 = 94 %: within 4 % above the 92 % threshold
    assert ms["d2h.gbps"].verdict == "pass"
    assert ms["all_reduce.check"].verdict == "pass"
    ar = ms["all_reduce.busbw"]
    assert ar.value == 474.0 and ar.expected == 476.0 and ar.verdict == "pass" and "4 GiB" in ar.reason
    assert worst(list(ms.values())) == "warn"


def test_recorded_gpu_run_failures() -> None:
    doc = h100_run(slow={5: 400.0})  # 50 % of expected
    doc["all_reduce"]["check"]["checksums"][2] = 1.0
    doc["errors"] = ["rank 4: hbm copy: OutOfMemoryError: CUDA out of memory"]
    ms = judge_fallback(fallback.load(doc, "bad.json"), H100, TH)
    fails = {m.name for m in ms if m.verdict == "fail"}
    assert fails == {"fallback.run", "gemm.bf16.tflops", "gemm.bf16.tflops.outlier", "all_reduce.check"}


def test_one_gpu_ten_percent_slow_fails_gemm() -> None:
    # 90 % of the healthy 794.5: passed at 0.7 x a figure already derated to what healthy
    # hardware reaches; now fails, and is named.
    ms = by_name(judge_fallback(fallback.load(h100_run(slow={3: 794.5 * 0.9}), "r.json"), H100, TH))
    m = ms["gemm.bf16.tflops"]
    assert m.verdict == "fail" and m.fraction == pytest.approx(0.9, abs=0.01)
    assert "rank 3 on gpu01 cuda:3" in m.reason


def test_per_rank_outlier_against_the_median_of_its_peers() -> None:
    # 15 % below its peers (748 TFLOPS) and below the healthy 794.5 -> fail, named
    doc = h100_run(slow={6: 880.0 * 0.85})
    for r in doc["ranks"]:
        if r["rank"] != 6:
            r["gemm"]["bf16"]["tflops"] = 880.0
    ms = by_name(judge_fallback(fallback.load(doc, "r.json"), H100, TH))
    out = ms["gemm.bf16.tflops.outlier"]
    assert out.verdict == "fail" and out.expected == 880.0 and "rank 6 on gpu01 cuda:6" in out.reason
    assert "15% below the median" in out.reason and "below the expected 794" in out.reason
    # 12 % below peers that run at 1000: 880 is still above the healthy 794.5 -> warn, named
    for r in doc["ranks"]:
        r["gemm"]["bf16"]["tflops"] = 880.0 if r["rank"] == 6 else 1000.0
    out = by_name(judge_fallback(fallback.load(doc, "r.json"), H100, TH))["gemm.bf16.tflops.outlier"]
    assert out.verdict == "warn" and "still at or above" in out.reason
    # within the 10 % margin: no outlier
    for r in doc["ranks"]:
        r["gemm"]["bf16"]["tflops"] = 800.0 if r["rank"] == 6 else 850.0
    assert "gemm.bf16.tflops.outlier" not in by_name(judge_fallback(fallback.load(doc), H100, TH))


def test_host_copy_outlier_names_the_rank() -> None:
    doc = h100_run()
    doc["ranks"][2]["h2d"]["gbps"] = 24.0  # a x8 link, or a copy not bound to its NUMA node
    ms = by_name(judge_fallback(fallback.load(doc, "r.json"), H100, TH))
    assert ms["h2d.gbps.outlier"].verdict == "fail" and "rank 2 on gpu01 cuda:2" in ms["h2d.gbps.outlier"].reason


def test_fp8_skipped_by_the_worker() -> None:
    doc = h100_run()
    for r in doc["ranks"]:
        r["gemm"]["fp8"] = {"dtype": "fp8", "skipped": "fp8 tensor cores need compute capability 8.9+"}
    m = by_name(judge_fallback(fallback.load(doc), H100, TH))["gemm.fp8.tflops"]
    assert m.verdict == "skip" and "8.9" in m.reason


def test_cpu_run_skips_figures_but_checks_data() -> None:
    doc = h100_run(mode="cpu", backend="gloo")
    for r in doc["ranks"]:
        r["device_name"], r["device"] = "Intel Xeon", "cpu"
    ms = by_name(judge_fallback(fallback.load(doc), H100, TH))
    assert ms["gemm.bf16.tflops"].verdict == "skip" and "CPU mode" in ms["gemm.bf16.tflops"].reason
    assert ms["all_reduce.busbw"].verdict == "skip" and ms["all_reduce.check"].verdict == "pass"
    doc["all_reduce"]["check"]["wrong"] = 7
    ms = by_name(judge_fallback(fallback.load(doc), H100, TH))
    assert ms["all_reduce.check"].verdict == "fail" and "7 wrong" in ms["all_reduce.check"].reason


def test_load_rejects_other_documents() -> None:
    with pytest.raises(ValueError, match="not a factoryctl.bench.fallback"):
        fallback.load({"version": 3, "results": []})
    with pytest.raises(ValueError, match="schema"):
        fallback.load(h100_run(schema="factoryctl.bench.fallback/v9"))
    bad = copy.deepcopy(h100_run())
    bad["mode"] = "tpu"
    with pytest.raises(ValueError, match="malformed"):
        fallback.load(bad)


# --- CLI --------------------------------------------------------------------------------------


def factory(tmp_path: Path, nodes: int = 2) -> str:
    doc = reference_doc()
    doc["nodes"][1]["count"] = nodes
    doc["inference"][0]["replicas"] = 1  # one node's Kubernetes share (gpu_split) holds one TP-4 replica
    return str(write_doc(doc, tmp_path / "factory.yaml"))


def test_cli_judge_pass_and_fail(tmp_path: Path) -> None:
    f = factory(tmp_path)
    ok = runner.invoke(app, ["judge", f, str(FIX / "h100-1n-all_reduce-nvidia-i290.log")])
    assert ok.exit_code == 0, ok.output
    assert "pass" in ok.output and "1 pass, 0 warn, 0 fail, 0 skip" in ok.output
    bad = runner.invoke(app, ["judge", "--format", "json", f,
                              str(FIX / "h100-1n-all_reduce-nvidia-i290.log"),
                              str(FIX / "h100-2n-all_reduce-nvidia-i290-lowbw.log")])
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["verdict"] == "fail" and [r["verdict"] for r in data["results"]] == ["pass", "fail"]
    assert data["results"][1]["measurements"][0]["expected"] == 469.2


def test_cli_judge_fallback_json_and_unreadable(tmp_path: Path) -> None:
    f = factory(tmp_path, nodes=1)
    rec = tmp_path / "h100-run.json"
    rec.write_text(json.dumps(h100_run()))
    res = runner.invoke(app, ["judge", "--format", "json", f, str(rec)])
    assert res.exit_code == 0, res.output
    (r,) = json.loads(res.stdout)["results"]
    assert r["kind"] == "fallback" and r["verdict"] == "warn"  # h2d 48 of 51
    res = runner.invoke(app, ["judge", f, str(tmp_path / "missing.log")])
    assert res.exit_code == 1 and "cannot read" in res.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert runner.invoke(app, ["judge", f, str(broken)]).exit_code == 1


def test_cli_judge_nccl_json_report(tmp_path: Path) -> None:
    report = {"version": 3, "args": ["./build/all_reduce_perf"], "nccl_version": 22703,
              "config": {"nthreads": 1, "ngpus": 8, "devices": [
                  {"rank": 0, "hostname": "gpu01", "device": 0, "device_info": "NVIDIA H100 80GB HBM3"}]},
              "results": [{"size": 8 * GIB, "count": 2 * GIB, "type": "float", "redop": "sum", "root": "-1",
                           "out_of_place": {"time": 31000.0, "alg_bw": 277.1, "bus_bw": 478.9, "nwrong": 0},
                           "in_place": {"time": 31000.0, "alg_bw": 277.0, "bus_bw": 478.7, "nwrong": 0}}],
              "out_of_bounds": {"count": 0, "okay": "true"},
              "average_bus_bandwidth": {"bandwidth": 478.8, "okay": "unchecked"}}
    p = tmp_path / "nccl.json"
    p.write_text(json.dumps(report))
    res = runner.invoke(app, ["judge", "--format", "json", factory(tmp_path), str(p)])
    assert res.exit_code == 0, res.output
    (m,) = json.loads(res.stdout)["results"][0]["measurements"]
    assert m["verdict"] == "pass" and m["value"] == 478.9


def test_throttling_during_the_sustained_gemm_is_named() -> None:
    doc = h100_run()
    clocks = {"source": "nvml", "samples": 20, "interval_s": 0.5,
              "sm_clock_mhz": {"min": 1095.0, "median": 1755.0, "max": 1980.0},
              "throttle_reasons": {"sw_power_cap": 20}}
    for r in doc["ranks"]:
        r["gemm"]["bf16"]["clocks"] = dict(clocks)
    ms = judge_fallback(fallback.load(doc, "r.json"), H100, TH)
    assert not [m for m in ms if m.name.endswith(".throttle")]  # power cap under GEMM: normal
    doc["ranks"][4]["gemm"]["bf16"]["clocks"] = clocks | {
        "throttle_reasons": {"sw_power_cap": 20, "hw_power_brake_slowdown": 6}}
    doc["ranks"][1]["gemm"]["bf16"]["clocks"] = clocks | {"throttle_reasons": {"sw_thermal_slowdown": 2}}
    ms = {(m.name, m.scope): m for m in judge_fallback(fallback.load(doc, "r.json"), H100, TH)}
    brake = ms[("gemm.bf16.throttle", "rank 4 on gpu01 cuda:4")]
    assert brake.verdict == "fail" and "hw_power_brake_slowdown in 6 of 20 samples" in brake.reason
    assert brake.value == 1095.0
    assert ms[("gemm.bf16.throttle", "rank 1 on gpu01 cuda:1")].verdict == "warn"
