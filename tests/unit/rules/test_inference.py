"""INF rules: each fires on a broken variant of the reference example, never on the example."""

from __future__ import annotations

import copy

from factoryctl.rules import REGISTRY
from tests.helpers import assert_clean, assert_finding, by_code, check_doc, reference_doc

GPU = 1  # index of the GPU group in the reference example
TINY = {"params_b": 1.0, "layers": 2, "attention_heads": 8, "kv_heads": 8, "head_dim": 64}


def _inf(checked):
    return [f for f in checked.findings if f.code.startswith("INF")]


def _chat(doc, **changes):
    doc["inference"][0].update(changes)
    return doc


def test_reference_has_no_inference_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert_clean(checked)
    assert not _inf(checked)


def test_rules_are_registered_with_docs():
    codes = [c for c in REGISTRY if c.startswith("INF")]
    assert len(codes) >= 13
    assert all(REGISTRY[c].doc and REGISTRY[c].title for c in codes)


def test_inf001_unknown_model(tmp_path):
    doc = _chat(reference_doc(), model="acme/secret-model-7b")
    assert_finding(check_doc(doc, tmp_path), "INF001", "inference[0].model", "warning")


def test_inf001_model_spec_silences(tmp_path):
    doc = _chat(reference_doc(), model="acme/secret-model-7b", model_spec=TINY)
    assert "INF001" not in by_code(check_doc(doc, tmp_path))


def test_inf002_tp_does_not_divide_heads(tmp_path):
    doc = _chat(reference_doc(), tensor_parallel=3, replicas=1)
    f = assert_finding(check_doc(doc, tmp_path), "INF002", "inference[0].tensor_parallel", "error")
    # the reference gives Kubernetes 4 of each node's 8 GPUs (gpu_split): TP 8 is not offered
    assert f.hint.endswith("1, 2, 4")


def test_inf003_tp_across_nodes(tmp_path):
    doc = _chat(reference_doc(), tensor_parallel=16, replicas=1)
    assert_finding(check_doc(doc, tmp_path), "INF003", "inference[0].tensor_parallel", "error")


def test_inf003_tp_over_pcie_is_info(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"]["model"] = "H100-PCIe-80GB"
    assert_finding(check_doc(doc, tmp_path), "INF003", "inference[0].tensor_parallel", "info")


def test_inf003_nvl72_spans_trays(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"] = {"model": "GB200", "count": 4}
    _chat(doc, tensor_parallel=8, replicas=1)
    assert "INF003" not in by_code(check_doc(doc, tmp_path))


def test_inf004_weights_do_not_fit(tmp_path):
    doc = _chat(reference_doc(), precision="bf16", tensor_parallel=1, replicas=1)
    f = assert_finding(check_doc(doc, tmp_path), "INF004", "inference[0].tensor_parallel", "error")
    assert "4" in f.hint  # TP 4 is the smallest power of two that fits 70B bf16 on H100


def test_inf004_kv_cache_does_not_fit(tmp_path):
    doc = _chat(reference_doc(), max_context=131072, max_num_seqs=64)
    assert_finding(check_doc(doc, tmp_path), "INF004", "inference[0].max_context", "error")


def test_inf005_tight_fit(tmp_path):
    doc = _chat(reference_doc(), model="meta-llama/Llama-3.1-8B-Instruct", precision="bf16",
                tensor_parallel=1, max_context=131072, max_num_seqs=3)
    assert_finding(check_doc(doc, tmp_path), "INF005", "inference[0].max_context", "warning")


def test_inf006_more_gpus_than_nodes(tmp_path):
    doc = _chat(reference_doc(), replicas=9)
    assert_finding(check_doc(doc, tmp_path), "INF006", "inference[0].replicas", "error")


def test_inf007_platform_disabled(tmp_path):
    doc = reference_doc()
    doc["kubernetes"]["enabled"] = False
    assert_finding(check_doc(doc, tmp_path), "INF007", "inference[0].platform", "error")


def test_inf008_fp8_on_a100_with_vllm_warns(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["gpu"]["model"] = "A100-SXM-80GB"
    assert_finding(check_doc(doc, tmp_path), "INF008", "inference[0].precision", "warning")


def test_inf008_fp8_on_a100_with_nim_is_error(tmp_path):
    doc = _chat(reference_doc(), engine="nim")
    doc["nodes"][GPU]["hardware"]["gpu"]["model"] = "A100-SXM-80GB"
    assert_finding(check_doc(doc, tmp_path), "INF008", "inference[0].precision", "error")


def test_inf008_fp4_needs_blackwell(tmp_path):
    doc = _chat(reference_doc(), precision="fp4", engine="sglang")
    assert_finding(check_doc(doc, tmp_path), "INF008", "inference[0].precision", "error")
    doc["nodes"][GPU]["hardware"]["gpu"]["model"] = "B200-SXM-180GB"
    assert "INF008" not in by_code(check_doc(doc, tmp_path))


def test_inf009_pp_beyond_layers(tmp_path):
    doc = _chat(reference_doc(), model="acme/tiny", model_spec=TINY, tensor_parallel=1,
                pipeline_parallel=4, replicas=1)
    assert_finding(check_doc(doc, tmp_path), "INF009", "inference[0].pipeline_parallel", "error")


def test_inf010_disaggregated_without_rdma(tmp_path):
    doc = _chat(reference_doc(), engine="dynamo", disaggregated=True)
    doc["fabric"]["compute"]["type"] = "ethernet"
    assert_finding(check_doc(doc, tmp_path), "INF010", "inference[0].disaggregated", "warning")


def test_inf010_disaggregated_on_infiniband_is_fine(tmp_path):
    doc = _chat(reference_doc(), engine="dynamo", disaggregated=True)
    assert "INF010" not in by_code(check_doc(doc, tmp_path))


def test_inf011_context_beyond_positions(tmp_path):
    doc = _chat(reference_doc(), max_context=262144)
    assert_finding(check_doc(doc, tmp_path), "INF011", "inference[0].max_context", "warning")


def test_inf012_duplicate_deployment(tmp_path):
    doc = reference_doc()
    doc["inference"].append(copy.deepcopy(doc["inference"][0]))
    assert_finding(check_doc(doc, tmp_path), "INF012", "inference[1].name", "error")


def test_inf013_unknown_group(tmp_path):
    doc = _chat(reference_doc(), nodes=["gpus"])
    f = assert_finding(check_doc(doc, tmp_path), "INF013", "inference[0].nodes[0]", "error")
    assert "'gpu'" in f.message


def test_inf014_no_gpu_nodes(tmp_path):
    doc = _chat(reference_doc(), nodes=["head"])
    assert_finding(check_doc(doc, tmp_path), "INF014", "inference[0].nodes", "error")


def test_inf014_no_worker_role(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["roles"] = ["slurm-compute"]
    assert_finding(check_doc(doc, tmp_path), "INF014", "inference[0].platform", "error")


def test_inf015_deployments_overcommit_together(tmp_path):
    doc = _chat(reference_doc(), replicas=4)
    for name in ("chat2", "chat3"):
        d = copy.deepcopy(doc["inference"][0])
        d["name"] = name
        doc["inference"].append(d)
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "INF015", "inference[2].replicas", "warning")
    assert "INF006" not in by_code(checked)


def test_inf016_multinode_instance_without_rdma(tmp_path):
    doc = _chat(reference_doc(), tensor_parallel=8, pipeline_parallel=2, replicas=1)
    doc["fabric"]["compute"]["type"] = "ethernet"
    assert_finding(check_doc(doc, tmp_path), "INF016", "inference[0].pipeline_parallel", "warning")


def test_inf017_instance_that_cuts_tp_groups_at_a_node_boundary(tmp_path):
    # TP 4 x PP 3 = 12 GPUs on 8-GPU nodes: 2 nodes of 6, and 6 GPUs cannot hold whole TP-4 groups
    doc = _chat(reference_doc(), tensor_parallel=4, pipeline_parallel=3, replicas=1, platform="slurm")
    doc["nodes"][1]["gpu_split"] = {"slurm": 8, "kubernetes": 0}  # Slurm schedules all 8 GPUs
    f = assert_finding(check_doc(doc, tmp_path), "INF017", "inference[0].pipeline_parallel", "error")
    assert "12 GPUs on 2 nodes of 8" in f.message and "4" in f.hint


def test_inference_counts_only_the_platforms_gpu_split_share(tmp_path):
    # 4 nodes x 8 GPUs, split 6 Slurm / 2 Kubernetes: 8 Kubernetes GPUs in all, 2 per node
    doc = _chat(reference_doc(), tensor_parallel=2, replicas=5)
    doc["nodes"][1]["gpu_split"] = {"slurm": 6, "kubernetes": 2}
    f = assert_finding(check_doc(doc, tmp_path), "INF006", "inference[0].replicas", "error")
    assert "have 8" in f.message
    doc = _chat(reference_doc(), tensor_parallel=4, replicas=1)
    doc["nodes"][1]["gpu_split"] = {"slurm": 6, "kubernetes": 2}
    codes = by_code(check_doc(doc, tmp_path))
    assert "INF006" not in codes  # 4 GPUs fit the 8, but TP 4 spans the 2-GPU share of a node
    site = check_doc(doc, tmp_path).site
    assert (site.slurm_gpus("gpu"), site.kube_gpus("gpu"), site.kube_gpus("head")) == (6, 2, 0)
    assert site.scheduled_gpus("kubernetes") == 8 and site.scheduled_gpus("slurm") == 24


def test_inf017_quiet_when_the_instance_fills_whole_nodes(tmp_path):
    for pp in (1, 2, 4):  # 4, 8, 16 GPUs: one node, one full node, two full nodes
        doc = _chat(reference_doc(), tensor_parallel=4, pipeline_parallel=pp, replicas=1, platform="slurm")
        assert "INF017" not in by_code(check_doc(doc, tmp_path))


def test_inf018_engine_that_cannot_span_nodes_on_slurm(tmp_path):
    doc = _chat(reference_doc(), engine="tgi", tensor_parallel=8, pipeline_parallel=2, replicas=1, platform="slurm")
    assert_finding(check_doc(doc, tmp_path), "INF018", "inference[0].engine", "error")
    doc = _chat(reference_doc(), engine="vllm", tensor_parallel=8, pipeline_parallel=2, replicas=1, platform="slurm")
    assert "INF018" not in by_code(check_doc(doc, tmp_path))
