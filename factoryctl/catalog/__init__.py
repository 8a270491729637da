"""Hardware and model catalog: GPUs, NICs/DPUs, switches, CPUs, cloud GPU instance types and
LLMs, each figure with a source.

The data lives in one YAML file per kind beside this module and is read once, on first use.
Lookups are case-insensitive and take the canonical name, any alias or (for LLMs) a Hugging Face
repo id or its last part. Spaces and underscores count as hyphens and a leading vendor word is
ignored, so the names nvidia-smi prints ("NVIDIA H100 80GB HBM3") resolve too. Paths or URLs
(``s3://…/llama-3.1-70b-instruct``) are deliberately not resolved here.

Units: GB = 1e9 bytes; GB/s per direction for NVLink, host and HBM links (``hbm_tbps`` in TB/s);
Gb/s for NIC and switch ports; TFLOPS dense (without 2:4 sparsity).
"""

from __future__ import annotations

import difflib
import os
import re
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)
from yaml import YAMLError

__all__ = [
    "CPU",
    "GPU",
    "KINDS",
    "Instance",
    "LLM",
    "NIC",
    "PRECISION_BYTES",
    "CatalogError",
    "Expected",
    "Switch",
    "cpu",
    "entries",
    "gpu",
    "instance",
    "llm",
    "names",
    "nic",
    "parse_file",
    "suggest",
    "switch",
]

DATA_DIR = Path(__file__).resolve().parent

# Bytes per parameter (weights) or per element (KV cache): the width of each number format.
PRECISION_BYTES: dict[str, float] = {
    "fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp4": 0.5, "int4": 0.5,
}


class CatalogError(ValueError):
    """A catalog file cannot be read, or one of its entries is malformed."""


def _fields(key: str) -> list[str]:
    """Field names in a ``sources`` key: one name or a comma-separated group."""
    return [part.strip() for part in key.split(",") if part.strip()]


class _Sourced(BaseModel):
    """Immutable record whose ``sources`` map field names (or groups of them) to source text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Fields that are figures: each one that is set must be named in ``sources`` (checked in tests).
    FIGURES: ClassVar[tuple[str, ...]] = ()

    sources: dict[str, str] = {}

    @model_validator(mode="after")
    def _sources_name_fields(self) -> _Sourced:
        for key in self.sources:
            unknown = [f for f in _fields(key) if f not in type(self).model_fields]
            if unknown or not _fields(key):
                raise ValueError(
                    f"sources key {key!r} names no field {', '.join(unknown)}"
                    f" of {type(self).__name__}"
                )
        return self

    def source(self, field: str) -> str | None:
        """The source text given for ``field``, or None."""
        return next((text for key, text in self.sources.items() if field in _fields(key)), None)


class _Entry(_Sourced):
    name: str
    aliases: tuple[str, ...] = ()
    notes: str | None = None
    sources: dict[str, str]  # required on every entry

    def labels(self) -> tuple[str, ...]:
        """Every string this entry is looked up by."""
        return (self.name, *self.aliases)


class Expected(_Sourced):
    """Achieved-vs-peak values measured on healthy hardware (each figure names its source in
    gpus.yaml); None where not known."""

    FIGURES = (
        "nccl_busbw_nvls_gbps", "nccl_busbw_no_nvls_gbps", "gemm_bf16_fraction",
        "gemm_fp8_fraction", "hbm_copy_fraction", "h2d_gbps",
    )

    nccl_busbw_nvls_gbps: StrictFloat | None = None  # all_reduce busbw, one node/domain, NVLS on
    nccl_busbw_no_nvls_gbps: StrictFloat | None = None  # same with NVLS off (ring)
    gemm_bf16_fraction: StrictFloat | None = None  # large dense GEMM, fraction of bf16_tflops
    gemm_fp8_fraction: StrictFloat | None = None
    hbm_copy_fraction: StrictFloat | None = None  # stream copy, fraction of hbm_tbps
    h2d_gbps: StrictFloat | None = None  # host-to-device copy, GB/s


class GPU(_Entry):
    FIGURES = (
        "memory_gb", "hbm_tbps", "tdp_w", "bf16_tflops", "fp8_tflops", "nvlink_gbps",
        "nvlink_domain", "nvls", "pcie_gen", "pcie_width", "host_link", "host_link_gbps",
    )

    vendor: Literal["nvidia", "amd"]
    memory_gb: StrictFloat
    hbm_tbps: StrictFloat  # memory bandwidth (GDDR on L40S)
    tdp_w: StrictFloat
    bf16_tflops: StrictFloat
    fp8_tflops: StrictFloat | None  # None: no FP8 tensor cores
    nvlink_gbps: StrictFloat  # scale-up link per GPU per direction; 0 for none
    nvlink_domain: StrictInt  # GPUs per NVLink domain: 8 HGX, 72 NVL72, 2/4 bridges, 1 none
    nvls: StrictBool  # NVLink SHARP available
    pcie_gen: StrictInt | None  # None: not attached to the host over PCIe
    pcie_width: StrictInt | None = None  # lanes of the GPU's own PCIe link; None where pcie_gen is
    host_link: Literal["pcie", "nvlink-c2c"] = "pcie"
    host_link_gbps: StrictFloat | None  # per direction; None where no per-GPU figure is sourced
    expected: Expected = Expected()


Fabric = Literal["infiniband", "ethernet"]


class NIC(_Entry):
    FIGURES = ("ports", "fabrics")

    vendor: Literal["nvidia"]
    kind: Literal["nic", "dpu"]
    ports: StrictInt  # most ports on one adapter among its variants
    fabrics: dict[Fabric, StrictInt]  # fabric -> max Gb/s per port on that fabric

    @property
    def max_gbps(self) -> int:
        """Fastest port speed in Gb/s on any fabric."""
        return max(self.fabrics.values())


class Switch(_Entry):
    FIGURES = ("fabric", "ports", "port_gbps", "splits", "rack_units", "roles")

    vendor: Literal["nvidia"]
    fabric: Fabric
    ports: StrictInt  # at full speed
    port_gbps: StrictInt
    splits: dict[StrictInt, StrictInt]  # Gb/s -> number of ports at that speed
    rack_units: StrictInt | None
    roles: tuple[Literal["compute", "storage", "inband", "oob"], ...]

    def ports_at(self, gbps: int) -> int | None:
        """Ports available at ``gbps`` (after splitting), or None if that speed is not listed."""
        return self.splits.get(gbps)


class CPU(_Entry):
    FIGURES = ("arch", "cores", "threads_per_core", "tdp_w")

    vendor: Literal["intel", "amd", "nvidia"]
    arch: Literal["x86_64", "aarch64"]
    cores: StrictInt  # per socket
    threads_per_core: StrictInt  # hardware threads per core as shipped (SMT on: 2); Slurm's ThreadsPerCore
    tdp_w: StrictFloat | None


def _bytes(precision: float | str) -> float:
    if isinstance(precision, str):
        try:
            return PRECISION_BYTES[precision.lower()]
        except KeyError:
            raise ValueError(
                f"unknown precision {precision!r}; known: {', '.join(PRECISION_BYTES)}"
            ) from None
    return float(precision)


class LLM(_Entry):
    FIGURES = (
        "params_b", "active_params_b", "layers", "attention_heads", "kv_heads", "head_dim",
        "hidden_size", "max_position_embeddings", "kv_latent_dim",
    )

    hf_repos: tuple[str, ...] = ()
    params_b: StrictFloat  # total parameters, billions
    moe: StrictBool = False
    active_params_b: StrictFloat  # per token; equals params_b for dense models
    layers: StrictInt
    attention_heads: StrictInt
    kv_heads: StrictInt
    head_dim: StrictInt
    hidden_size: StrictInt
    max_position_embeddings: StrictInt
    kv_latent_dim: StrictInt | None = None  # MLA: cached latent elements per token per layer

    @model_validator(mode="before")
    @classmethod
    def _active_defaults_to_total(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("active_params_b") is None:
            if data.get("moe"):
                raise ValueError("a MoE model needs active_params_b")
            data = {**data, "active_params_b": data.get("params_b")}
        return data

    def labels(self) -> tuple[str, ...]:
        return (*super().labels(), *self.hf_repos, *(r.rsplit("/", 1)[-1] for r in self.hf_repos))

    def weights_gb(self, bytes_per_param: float | str) -> float:
        """Weight memory in GB (1e9 bytes) at a precision given in bytes or by name ("fp8")."""
        return self.params_b * _bytes(bytes_per_param)

    def kv_bytes_per_token(self, bytes_per_elem: float | str) -> int:
        """KV-cache bytes per token: 2 x layers x kv_heads x head_dim x bytes (GQA/MHA),
        or layers x kv_latent_dim x bytes for MLA models, which cache one latent per layer."""
        per_layer = self.kv_latent_dim or 2 * self.kv_heads * self.head_dim
        return round(self.layers * per_layer * _bytes(bytes_per_elem))


class Instance(_Entry):
    """A cloud GPU instance type: its GPUs and the network cards that carry EFA interfaces."""

    FIGURES = ("gpus", "network_cards", "efa_interfaces")

    provider: Literal["aws"]
    gpu: str  # a GPU catalog name
    gpus: StrictInt
    network_cards: StrictInt
    efa_interfaces: StrictInt  # at most one EFA interface per network card


# kind -> (file name and its top-level list key, record type)
KINDS: dict[str, tuple[str, type[_Entry]]] = {
    "gpu": ("gpus", GPU),
    "nic": ("nics", NIC),
    "switch": ("switches", Switch),
    "cpu": ("cpus", CPU),
    "llm": ("models", LLM),
    "instance": ("instances", Instance),
}


def _kind(kind: str) -> tuple[str, type[_Entry]]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown catalog kind {kind!r}; known: {', '.join(KINDS)}") from None


def _describe(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in err.errors()
    )


def parse_file(kind: str, path: Path) -> tuple[Any, ...]:
    """Read and validate one catalog file; raise CatalogError naming the file and the entry."""
    list_key, model = _kind(kind)
    try:
        # The C loader when present: the catalog is read on every command's first lookup.
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read catalog file: {exc}") from exc
    items = data.get(list_key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CatalogError(f"{path}: expected a top-level '{list_key}:' list of entries")
    out = []
    for i, raw in enumerate(items, 1):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f"{path}: entry #{i}" + (f" ({label})" if label else "")
        if not isinstance(raw, dict):
            raise CatalogError(f"{where}: expected a mapping, got {type(raw).__name__}")
        try:
            out.append(model.model_validate(raw))
        except ValidationError as exc:
            raise CatalogError(f"{where}: {_describe(exc)}") from None
    return tuple(out)


def _key(label: str) -> str:
    key = re.sub(r"[\s_]+", "-", label.strip().lower())
    return re.sub(r"^(nvidia|amd|intel)-", "", key)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader that refuses a key written twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if dup is not None:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {dup!r}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


@cache
def _load(kind: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    list_key, _ = _kind(kind)
    path = DATA_DIR / f"{list_key}.yaml"
    items = parse_file(kind, path)
    index: dict[str, Any] = {}
    for item in items:
        for label in item.labels():
            other = index.setdefault(_key(label), item)
            if other is not item:
                raise CatalogError(
                    f"{path}: entry {item.name}: name or alias {label!r} is already used by {other.name}"
                )
    return items, index


def entries(kind: str) -> tuple[Any, ...]:
    """All entries of a kind, in file order."""
    return _load(kind)[0]


def _lookup(kind: str, name: str) -> Any:
    return _load(kind)[1].get(_key(name)) if isinstance(name, str) else None


def gpu(name: str) -> GPU | None:
    return _lookup("gpu", name)


def nic(name: str) -> NIC | None:
    return _lookup("nic", name)


def switch(name: str) -> Switch | None:
    return _lookup("switch", name)


def cpu(name: str) -> CPU | None:
    return _lookup("cpu", name)


def instance(name: str) -> Instance | None:
    return _lookup("instance", name)


def llm(name: str) -> LLM | None:
    return _lookup("llm", name)


def names(kind: str) -> list[str]:
    """Canonical names of a kind ("gpu", "nic", "switch", "cpu", "llm"), sorted."""
    return sorted(item.name for item in entries(kind))


def suggest(kind: str, name: str) -> list[str]:
    """Did-you-mean: up to 3 canonical names whose name or alias is closest to ``name``."""
    index = _load(kind)[1]
    wanted = _key(name)
    # similarity first; on a tie the longer common prefix wins ("QM970" -> QM9700, not QM9790)
    scored = sorted(
        (-difflib.SequenceMatcher(None, wanted, key).ratio(),
         -len(os.path.commonprefix([wanted, key])), key)
        for key in index
    )
    found: list[str] = []
    for neg_ratio, _, key in scored:
        if -neg_ratio < 0.6:
            break
        if index[key].name not in found:
            found.append(index[key].name)
    return found[:3]
