"""Catalog: lookups, sizing helpers, and an honesty check of the data files themselves."""

from __future__ import annotations

from numbers import Number
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from factoryctl import catalog
from factoryctl.catalog import CatalogError

DATA = Path(catalog.__file__).parent


def raw_entries(kind: str) -> list[dict]:
    list_key, _ = catalog.KINDS[kind]
    return YAML(typ="safe", pure=True).load((DATA / f"{list_key}.yaml").read_text())[list_key]


ALL_RAW = [(kind, e) for kind in catalog.KINDS for e in raw_entries(kind)]


def entry_id(param) -> str:
    kind, e = param
    return f"{kind}:{e.get('name')}"


# --- lookups --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["H100-SXM-80GB", "h100-sxm-80gb", "H100", "H100-SXM", "H100-SXM5-80GB", "NVIDIA H100 80GB HBM3"],
)
def test_gpu_lookup_by_name_alias_and_case(query):
    assert catalog.gpu(query).name == "H100-SXM-80GB"


def test_gpu_lookup_distinguishes_variants():
    assert catalog.gpu("H100-PCIe").name == "H100-PCIe-80GB"
    assert catalog.gpu("NVIDIA A100-SXM4-40GB").name == "A100-SXM-40GB"
    assert catalog.gpu("A100").name == "A100-SXM-80GB"
    assert catalog.gpu("H200 NVL").name == "H200-NVL-141GB"
    assert catalog.gpu("h200").name == "H200-SXM-141GB"


def test_unknown_names_return_none():
    assert catalog.gpu("H1000") is None
    assert catalog.nic("ConnectX-9") is None
    assert catalog.switch("") is None
    assert catalog.cpu("Xeon") is None
    assert catalog.llm("Llama-4-Behemoth") is None


@pytest.mark.parametrize(
    "query",
    [
        "meta-llama/Llama-3.1-70B-Instruct",
        "Llama-3.1-70B",
        "llama-3.1-70b-instruct",
        "Meta-Llama-3.1-70B-Instruct",
        "meta-llama/Llama-3.1-70B",
    ],
)
def test_llm_lookup_by_hf_id_and_alias(query):
    assert catalog.llm(query).name == "Llama-3.1-70B"


def test_llm_paths_are_not_resolved():
    assert catalog.llm("s3://models.fra1.example.internal/llama-3.1-70b-instruct") is None
    assert catalog.llm("/models/Llama-3.1-70B-Instruct") is None


def test_example_factory_names_resolve():
    assert catalog.gpu("H100-SXM-80GB") is not None
    assert catalog.nic("ConnectX-7") is not None
    assert catalog.nic("BlueField-3") is not None
    assert catalog.switch("QM9700") is not None
    assert catalog.cpu("Xeon-8480C") is not None
    assert catalog.llm("meta-llama/Llama-3.1-70B-Instruct") is not None


def test_names_are_sorted_canonical_and_complete():
    gpus = catalog.names("gpu")
    assert gpus == sorted(gpus)
    assert set(gpus) >= {
        "A100-SXM-40GB", "A100-SXM-80GB", "H100-SXM-80GB", "H100-PCIe-80GB", "H200-SXM-141GB",
        "H200-NVL-141GB", "B200-SXM-180GB", "B300-SXM-288GB", "GB200", "GB300", "L40S-48GB",
        "MI300X-192GB",
    }
    assert "H100" not in gpus  # aliases are not names
    assert set(catalog.names("nic")) >= {
        "ConnectX-6", "ConnectX-7", "ConnectX-8", "BlueField-2", "BlueField-3",
    }
    assert set(catalog.names("switch")) >= {
        "QM9700", "QM9790", "Q3400", "SN5600", "SN5610", "SN5400", "SN4600C", "SN2201",
    }
    assert set(catalog.names("cpu")) >= {
        "Xeon-8480C", "Xeon-8570", "Xeon-8468", "EPYC-9654", "EPYC-9554", "Grace",
    }
    assert set(catalog.names("llm")) >= {
        "Llama-3.1-8B", "Llama-3.1-70B", "Llama-3.1-405B", "Llama-3.3-70B", "Mixtral-8x7B",
        "Qwen2.5-72B", "DeepSeek-V3", "Mistral-7B",
    }


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown catalog kind"):
        catalog.names("gpus")
    with pytest.raises(ValueError, match="unknown catalog kind"):
        catalog.suggest("tpu", "v5p")


def test_entries_are_cached_and_immutable():
    assert catalog.gpu("H100") is catalog.gpu("H100-SXM-80GB")
    h100 = catalog.gpu("H100")
    with pytest.raises((TypeError, ValueError)):
        h100.memory_gb = 1.0  # type: ignore[misc]
    assert catalog.gpu("H100").memory_gb == 80


# --- suggest ------------------------------------------------------------------------------


def test_suggest_typos():
    assert catalog.suggest("gpu", "H100-SXM-80G")[0] == "H100-SXM-80GB"
    assert catalog.suggest("gpu", "H1000")[0] == "H100-SXM-80GB"
    assert catalog.suggest("switch", "QM970")[0] == "QM9700"
    assert catalog.suggest("nic", "connectx7")[0] == "ConnectX-7"
    assert catalog.suggest("llm", "llama-3.1-70b-instruc")[0] == "Llama-3.1-70B"


def test_suggest_returns_at_most_three_distinct_canonical_names():
    for kind, query in [("gpu", "H100-SXM-80G"), ("gpu", "B20"), ("llm", "llama-70b")]:
        found = catalog.suggest(kind, query)
        assert len(found) <= 3
        assert len(set(found)) == len(found)
        assert set(found) <= set(catalog.names(kind))


def test_suggest_nothing_for_nonsense():
    assert catalog.suggest("gpu", "qwertyuiop") == []


# --- sizing helpers -----------------------------------------------------------------------


def test_llama_70b_memory_figures():
    m = catalog.llm("meta-llama/Llama-3.1-70B-Instruct")
    assert m.weights_gb(2) == pytest.approx(141, abs=0.5)
    assert m.weights_gb("bf16") == m.weights_gb(catalog.PRECISION_BYTES["bf16"])
    assert m.weights_gb("fp8") == pytest.approx(70.6)
    assert m.kv_bytes_per_token(2) == 327_680 == 320 * 1024
    assert m.kv_bytes_per_token("fp8") == 163_840


def test_llama_8b_and_405b_figures_match_the_model_configs():
    assert catalog.llm("Llama-3.1-8B").kv_bytes_per_token("bf16") == 128 * 1024
    big = catalog.llm("Llama-3.1-405B-Instruct")
    assert big.weights_gb("fp8") == pytest.approx(406, abs=0.5)
    assert big.weights_gb("bf16") == pytest.approx(812, abs=1)
    assert big.weights_gb("fp4") == pytest.approx(203, abs=0.5)
    assert big.kv_bytes_per_token("bf16") == 504 * 1024


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="unknown precision"):
        catalog.llm("Llama-3.1-8B").weights_gb("fp6")


def test_precision_bytes():
    assert catalog.PRECISION_BYTES == {
        "fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp4": 0.5, "int4": 0.5,
    }


def test_moe_and_dense_parameters():
    mixtral = catalog.llm("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert mixtral.moe and mixtral.active_params_b < mixtral.params_b
    ds = catalog.llm("deepseek-ai/DeepSeek-V3")
    assert ds.moe and (ds.params_b, ds.active_params_b) == (671, 37)
    dense = catalog.llm("Qwen/Qwen2.5-72B-Instruct")
    assert not dense.moe and dense.active_params_b == dense.params_b


def test_mla_kv_cache_uses_latent_width():
    ds = catalog.llm("DeepSeek-V3")
    assert ds.kv_bytes_per_token("bf16") == 61 * 576 * 2
    assert ds.kv_bytes_per_token("bf16") < 2 * ds.layers * ds.kv_heads * ds.head_dim * 2


# --- hardware figures -----------------------------------------------------------------------


def test_switch_radix_and_splits():
    qm = catalog.switch("qm9700")
    assert (qm.ports, qm.port_gbps, qm.fabric) == (64, 400, "infiniband")
    assert qm.ports_at(400) == 64 and qm.ports_at(200) == 128 and qm.ports_at(800) is None
    sn = catalog.switch("SN5600")
    assert (sn.ports_at(800), sn.ports_at(400), sn.ports_at(100)) == (64, 128, 256)
    assert sn.fabric == "ethernet"
    q = catalog.switch("Q3400")
    assert (q.ports, q.port_gbps) == (144, 800)
    assert catalog.switch("SN2201").roles == ("oob",)
    assert "inband" in catalog.switch("SN4600C").roles


def test_nic_speeds_and_fabrics():
    cx7 = catalog.nic("cx-7")
    assert cx7.max_gbps == 400 and {"infiniband", "ethernet"} <= set(cx7.fabrics)
    cx8 = catalog.nic("ConnectX-8")
    assert cx8.max_gbps == 800 and cx8.fabrics["ethernet"] == 400
    assert catalog.nic("B3220").name == "BlueField-3-B3220"
    assert catalog.nic("B3220").max_gbps == 200
    assert catalog.nic("B3140H").max_gbps == 400
    assert catalog.nic("BlueField-3").kind == "dpu"
    assert catalog.nic("ConnectX-6").max_gbps == 200


def test_cpu_figures():
    assert catalog.cpu("Xeon Platinum 8480C").cores == 56
    grace = catalog.cpu("Grace")
    assert (grace.cores, grace.arch) == (72, "aarch64")


def test_gpu_scale_up_figures():
    h100 = catalog.gpu("H100")
    assert (h100.nvlink_gbps, h100.nvlink_domain, h100.nvls) == (450, 8, True)
    assert h100.bf16_tflops == 989 and h100.fp8_tflops == 1979
    assert catalog.gpu("A100").fp8_tflops is None
    assert catalog.gpu("GB200").nvlink_domain == 72
    assert catalog.gpu("GB300").nvlink_domain == 72
    assert catalog.gpu("H200-NVL").nvlink_domain in (2, 4)
    l40s = catalog.gpu("L40S")
    assert (l40s.nvlink_gbps, l40s.nvlink_domain, l40s.nvls) == (0, 1, False)


def test_gpu_expected_values():
    e = catalog.gpu("H100").expected
    assert 470 <= e.nccl_busbw_nvls_gbps <= 480
    assert 360 <= e.nccl_busbw_no_nvls_gbps <= 370
    assert "nccl-tests#290" in e.source("nccl_busbw_nvls_gbps")
    assert catalog.gpu("A100").expected.nccl_busbw_nvls_gbps is None
    assert catalog.gpu("L40S").expected.h2d_gbps is None


def test_source_lookup_handles_groups():
    h100 = catalog.gpu("H100")
    assert "nvidia.com/en-us/data-center/h100" in h100.source("hbm_tbps")
    assert h100.source("hbm_tbps") == h100.source("memory_gb")
    assert h100.source("name") is None


# --- honesty of the data files ---------------------------------------------------------------


@pytest.mark.parametrize("kind_entry", ALL_RAW, ids=[entry_id(p) for p in ALL_RAW])
def test_every_figure_has_a_source(kind_entry):
    kind, raw = kind_entry
    model = catalog.KINDS[kind][1]
    item = catalog.entries(kind)[[e.name for e in catalog.entries(kind)].index(raw["name"])]
    assert raw.get("sources"), "entry has no sources"
    assert all(isinstance(t, str) and t.strip() for t in raw["sources"].values())
    for field in model.FIGURES:
        if raw.get(field) is not None:
            assert item.source(field), f"{field} has no source"
    expected = raw.get("expected") or {}
    for field in catalog.Expected.FIGURES:
        if expected.get(field) is not None:
            assert item.expected.source(field), f"expected.{field} has no source"


def _numbers(value, path=""):
    if isinstance(value, bool):
        return
    if isinstance(value, Number):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "sources":
                yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")


@pytest.mark.parametrize("kind_entry", ALL_RAW, ids=[entry_id(p) for p in ALL_RAW])
def test_numbers_are_positive(kind_entry):
    _, raw = kind_entry
    for path, value in _numbers(raw):
        if path == ".nvlink_gbps":  # 0 means no NVLink
            assert value >= 0
        else:
            assert value > 0, f"{path} = {value}"


@pytest.mark.parametrize("kind", list(catalog.KINDS))
def test_names_and_aliases_unique_across_entries(kind):
    owner: dict[str, str] = {}
    for raw in raw_entries(kind):
        labels = [raw["name"], *raw.get("aliases", [])]
        labels += [x for r in raw.get("hf_repos", []) for x in (r, r.rsplit("/", 1)[-1])]
        for label in labels:
            key = catalog._key(str(label))
            assert owner.setdefault(key, raw["name"]) == raw["name"], (
                f"{label!r} of {raw['name']} clashes with {owner[key]}"
            )


def test_expected_values_are_physically_plausible():
    for g in catalog.entries("gpu"):
        e = g.expected
        for frac in (e.gemm_bf16_fraction, e.gemm_fp8_fraction, e.hbm_copy_fraction):
            assert frac is None or 0 < frac <= 1, g.name
        if e.nccl_busbw_no_nvls_gbps is not None:  # a ring cannot beat the link
            assert e.nccl_busbw_no_nvls_gbps <= g.nvlink_gbps, g.name
        if e.nccl_busbw_nvls_gbps is not None:
            assert g.nvls, g.name
        if e.h2d_gbps is not None and g.host_link_gbps is not None:
            assert e.h2d_gbps <= g.host_link_gbps, g.name
        if g.nvls:
            assert g.nvlink_domain >= 8 and g.nvlink_gbps > 0, g.name
        if g.nvlink_gbps == 0:
            assert g.nvlink_domain == 1, g.name


def test_data_files_ship_inside_the_package():
    for list_key, _ in catalog.KINDS.values():
        assert (DATA / f"{list_key}.yaml").is_file()


# --- malformed files -------------------------------------------------------------------------


GOOD_CPU = """\
cpus:
  - name: Test-CPU
    vendor: intel
    arch: x86_64
    cores: 8
    threads_per_core: 2
    tdp_w: 100
    sources:
      cores, threads_per_core, tdp_w: "made up for the test"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpus.yaml"
    path.write_text(text)
    return path


def test_parse_file_accepts_a_good_file(tmp_path):
    (item,) = catalog.parse_file("cpu", write(tmp_path, GOOD_CPU))
    assert item.cores == 8 and item.source("tdp_w") == "made up for the test"


@pytest.mark.parametrize(
    "change, message",
    [
        (("cores: 8", "cores: eight"), "cores"),
        (("cores: 8", "cores: 8\n    sockets: 2"), "sockets"),
        (("    sources:\n      cores, threads_per_core, tdp_w", "    notes:\n      cores, tdp_w"), "sources"),
        (("threads_per_core, tdp_w:", "threads_per_core, watts:"), "watts"),
        (("arch: x86_64", "arch: sparc"), "arch"),
    ],
)
def test_malformed_entry_names_file_and_entry(tmp_path, change, message):
    path = write(tmp_path, GOOD_CPU.replace(*change))
    with pytest.raises(CatalogError) as err:
        catalog.parse_file("cpu", path)
    text = str(err.value)
    assert str(path) in text and "Test-CPU" in text and message in text


@pytest.mark.parametrize(
    "text",
    ["cpus: [\n", "gpus: []\n", "cpus:\n  - just a string\n", "cpus: []\ncpus: []\n"],
)
def test_unreadable_file_names_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(CatalogError, match=str(tmp_path)):
        catalog.parse_file("cpu", path)


def test_duplicate_alias_across_entries_fails_at_load(tmp_path, monkeypatch):
    second = GOOD_CPU.split("\n", 1)[1].replace("Test-CPU", "Other-CPU")
    second = second.replace("    vendor:", "    aliases: [test-cpu]\n    vendor:")
    write(tmp_path, GOOD_CPU + second)
    monkeypatch.setattr(catalog, "DATA_DIR", tmp_path)
    catalog._load.cache_clear()
    try:
        with pytest.raises(CatalogError, match="Other-CPU.*already used by Test-CPU"):
            catalog.cpu("Test-CPU")
    finally:
        catalog._load.cache_clear()
