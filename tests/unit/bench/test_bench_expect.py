"""Expectations from the catalog and the fabric (factoryctl/bench/expect.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factoryctl import catalog
from factoryctl.bench import expect
from factoryctl.bench.expect import Context, nccl_busbw
from factoryctl.cli.bench import app
from factoryctl.model import Factory
from factoryctl.resolve import resolve
from tests.helpers import reference_doc, write_doc

GIB = 1 << 30


def ctx(gpu: str, per_node: int = 8, nodes: int = 1, ports: int = 8, gbps: int = 400) -> Context:
    return Context(gpu=catalog.gpu(gpu), gpus_per_node=per_node, nodes=nodes, nic_ports=ports,
                   port_gbps=gbps)


def two_node_h100() -> Context:
    doc = reference_doc()  # 8x H100 per node, 8x ConnectX-7 400G, IB rails=8, link 400
    doc["nodes"][1]["count"] = 2
    f = Factory.model_validate(doc)
    (c,) = expect.contexts(f, resolve(f))
    return c


def test_h100_single_node_nvls_and_ring() -> None:
    c = ctx("H100")
    nvls = nccl_busbw(c, "all_reduce")
    assert 470 <= nvls.value <= 480 and nvls.basis == "measured"
    assert nvls.source.startswith("NVLS") and "nccl-tests#290" in nvls.source
    assert nvls.min_bytes == GIB and nvls.scope == "1 node x 8 GPUs"
    for coll in ("all_gather", "reduce_scatter"):
        ring = nccl_busbw(c, coll)
        assert 360 <= ring.value <= 370 and "ring" in ring.source
    # fewer than 5 GPUs: NCCL does not pick NVLS, so all_reduce is judged as a ring
    assert 360 <= nccl_busbw(c, "all_reduce", ranks_per_node=4).value <= 370


def test_a100_ring_only() -> None:
    e = nccl_busbw(ctx("A100-SXM-80GB"), "all_reduce")
    assert 228 <= e.value <= 235 and "ring" in e.source and "231.58" in e.source


def test_ring_rule_when_the_catalog_has_no_figure() -> None:
    # B300: NVLS GPU without measured NCCL figures -> 80 % of the 900 GB/s NVLink rate
    e = nccl_busbw(ctx("B300"), "all_gather")
    assert e.value == pytest.approx(720.0) and e.basis == "derived" and "80%" in e.source


def test_two_nodes_h100_all_reduce_is_what_healthy_nvls_runs_reach() -> None:
    c = two_node_h100()
    assert (c.gpus_per_node, c.nodes, c.nic_ports, c.port_gbps, c.fabric) == (8, 2, 8, 400, "infiniband")
    e = nccl_busbw(c, "all_reduce", 8, 2)
    # 8 rails x 50 GB/s x 1.173: the healthy 2x8 H100 NVLS run reached 469.21 (nccl-tests#309);
    # the old min(NICs 384, single-node ring 370) = 370 let one rail of 8 down (~410) pass
    assert e.value == 469.2 and e.basis == "derived" and e.scope == "2 nodes x 8 GPUs"
    assert "8 rails x 50 GB/s" in e.source and "469.21" in e.source and "nccl-tests#309" in e.source


def test_more_nodes_and_other_collectives_use_the_ring_across_nics() -> None:
    c = two_node_h100()
    e = nccl_busbw(c, "all_reduce", 8, 4)  # NVLS figure measured on 2 nodes only
    assert e.value == 370.0 and "8 NICs x 48 of 50 GB/s" in e.source and "384" in e.source
    assert "bounded" in e.source
    assert nccl_busbw(c, "all_gather", 8, 2).value == 370.0


def test_nic_math_without_the_bound() -> None:
    assert nccl_busbw(ctx("B200"), "all_reduce", 8, 4).value == 384.0  # B200 ring 682 > 384
    assert nccl_busbw(ctx("B200"), "all_reduce", 8, 2).value == 469.2  # NVLS per-rail figure
    assert nccl_busbw(ctx("H100", ports=4), "all_reduce", 8, 2).value == 234.6  # 4 rails of 8
    assert nccl_busbw(ctx("H100", ports=4), "all_reduce", 8, 4).value == 192.0
    assert nccl_busbw(ctx("H100", ports=8, gbps=200), "all_gather", 8, 4).value == 192.0
    # one GPU per node: one NIC, no NVLink hop
    assert nccl_busbw(ctx("H100"), "all_reduce", 1, 2).value == 48.0


def test_alltoall_across_nodes_is_one_nic() -> None:
    e = nccl_busbw(ctx("H100"), "alltoall", 8, 2)
    assert e.value == 48.0 and "cannot aggregate" in e.source


def test_rack_scale_domain_spans_nodes() -> None:
    c = ctx("GB200", per_node=4, nodes=18)
    assert nccl_busbw(c, "all_reduce", 4, 1).value == 680.0  # 4 GPUs: ring
    two = nccl_busbw(c, "all_reduce", 4, 2)
    assert two.value == 850.0 and "spans the nodes" in two.source


def test_no_figure_cases() -> None:
    assert nccl_busbw(ctx("L40S"), "all_reduce").value is None
    assert "no NVLink" in nccl_busbw(ctx("L40S"), "all_reduce").source
    assert nccl_busbw(ctx("H200-NVL"), "all_reduce").value is None  # 8 GPUs over 4-GPU bridges
    assert nccl_busbw(ctx("H100"), "all_reduce", 1, 1).value is None
    assert nccl_busbw(ctx("H100"), "broadcast").value is None
    assert nccl_busbw(ctx("H100", ports=0), "all_reduce", 8, 2).value is None


def test_gemm_fraction_of_dense_peak() -> None:
    h100 = catalog.gpu("H100")
    bf16 = expect.gemm_tflops(h100, "bf16")
    assert bf16.value == pytest.approx(0.803 * 989, abs=0.1) and bf16.basis == "measured"
    assert bf16.unit == "TFLOPS" and "MAMF" in bf16.source
    assert expect.gemm_tflops(h100, "fp8").value == pytest.approx(0.709 * 1979, abs=0.1)
    assert expect.gemm_tflops(h100, "fp16").value == bf16.value
    h200 = expect.gemm_tflops(catalog.gpu("H200"), "bf16")  # no measured fraction: rule of thumb
    assert h200.value == pytest.approx(0.80 * 989, abs=0.1) and h200.basis == "derived"
    assert expect.gemm_tflops(catalog.gpu("A100"), "fp8").value is None
    assert expect.gemm_tflops(h100, "fp32").value is None


def test_memory_and_host_link() -> None:
    assert expect.hbm_copy(catalog.gpu("H100")).value == pytest.approx(0.866 * 3350, abs=0.1)
    b200 = expect.hbm_copy(catalog.gpu("B200"))
    assert b200.value == pytest.approx(0.8 * 7700) and b200.basis == "derived"
    assert expect.host_copy(catalog.gpu("H100")).value == 51.0
    assert expect.host_copy(catalog.gpu("H100"), "d2h").value == 51.0
    assert expect.host_copy(catalog.gpu("B200")).value == pytest.approx(0.85 * 64, abs=0.1)
    assert expect.host_copy(catalog.gpu("GB300")).value is None  # NVLink-C2C, no figure


def test_full_table_has_sources() -> None:
    table = expect.expectations(two_node_h100())
    names = [e.name for e in table]
    assert names.count("nccl.all_reduce.busbw") == 2 and "gemm.fp8.tflops" in names
    assert {"hbm.copy.gbps", "h2d.gbps", "d2h.gbps"} <= set(names)
    assert all(e.source for e in table)
    assert all(e.value is not None for e in table)


def test_contexts_skip_cpu_and_unknown_gpus() -> None:
    doc = reference_doc()
    doc["nodes"][1]["hardware"]["gpu"]["model"] = "Z9000"
    assert expect.contexts(Factory.model_validate(doc)) == []
    assert expect.for_gpu("NVIDIA H100 80GB HBM3").gpu.name == "H100-SXM-80GB"
    assert expect.for_gpu("NVIDIA GH200 120GB") is None


def test_cli_expect(tmp_path: Path) -> None:
    path = write_doc(reference_doc(), tmp_path / "factory.yaml")
    runner = CliRunner()
    res = runner.invoke(app, ["expect", str(path)])
    assert res.exit_code == 0, res.output
    assert "gpu: 4 x 8 H100-SXM-80GB" in res.output and "476 GB/s" in res.output
    res = runner.invoke(app, ["expect", "--format", "json", str(path)])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    (group,) = data["groups"]
    assert group["gpu"] == "H100-SXM-80GB" and data["thresholds"]["nccl_busbw_fraction"] == 0.8
    multi = [e for e in group["expectations"] if e["scope"] == "4 nodes x 8 GPUs"]
    assert multi[0]["name"] == "nccl.all_reduce.busbw" and multi[0]["value"] == 370.0


def test_cli_expect_broken_file(tmp_path: Path) -> None:
    p = tmp_path / "f.yaml"
    p.write_text("apiVersion: nope\n")
    res = CliRunner().invoke(app, ["expect", str(p)])
    assert res.exit_code == 1
