"""`inference:`: model deployments on vLLM, SGLang, Dynamo, NIM or TGI."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Fraction, ImageRef, ModelId, ModelSource, Name, Strict

Precision = Literal["bf16", "fp16", "fp8", "int8", "fp4", "int4"]


class ModelSpec(Strict):
    """Architecture of a model the catalog does not know, so memory can still be checked."""

    params_b: limits.amount(limits.PARAMS_B, gt=0)
    layers: limits.whole(limits.LAYERS)
    attention_heads: limits.whole(limits.HEADS)
    kv_heads: limits.whole(limits.HEADS)
    head_dim: limits.whole(limits.HEAD_DIM)
    max_position_embeddings: limits.whole(limits.CONTEXT) | None = None


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
    max_context: limits.whole(limits.CONTEXT) = 8192
    max_num_seqs: limits.whole(limits.SEQUENCES) = 1  # concurrent sequences whose full-context KV must fit
    gpu_memory_utilization: Fraction = 0.9
    nodes: list[Name] = Field(default_factory=list)  # node groups to run on; empty = all GPU groups
    image: ImageRef | None = None
    disaggregated: bool = False  # prefill/decode split (Dynamo, llm-d)
    model_spec: ModelSpec | None = None
    tokens_per_second: limits.amount(limits.TOKENS_PER_SECOND, gt=0) | None = None  # stated assumption, for cost
