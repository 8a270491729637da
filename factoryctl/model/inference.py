"""`inference:`: model deployments on vLLM, SGLang, Dynamo, NIM or TGI."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Fraction, ImageRef, ModelId, ModelSource, Name, PositiveInt, Strict

Precision = Literal["bf16", "fp16", "fp8", "int8", "fp4", "int4"]


class ModelSpec(Strict):
    """Architecture of a model the catalog does not know, so memory can still be checked."""

    params_b: float = Field(gt=0)
    layers: PositiveInt
    attention_heads: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    max_position_embeddings: PositiveInt | None = None


class Inference(Strict):
    name: Name
    engine: Literal["vllm", "sglang", "dynamo", "nim", "tgi"]
    model: ModelId
    model_source: ModelSource
    precision: Precision = "bf16"
    kv_cache_dtype: Literal["auto", "bf16", "fp16", "fp8"] = "auto"
    tensor_parallel: PositiveInt = 1
    pipeline_parallel: PositiveInt = 1
    replicas: PositiveInt = 1
    platform: Literal["kubernetes", "slurm"]
    max_context: PositiveInt = 8192
    max_num_seqs: PositiveInt = 1  # concurrent sequences whose full-context KV must fit
    gpu_memory_utilization: Fraction = 0.9
    nodes: list[Name] = Field(default_factory=list)  # node groups to run on; empty = all GPU groups
    image: ImageRef | None = None
    disaggregated: bool = False  # prefill/decode split (Dynamo, llm-d)
    model_spec: ModelSpec | None = None
    tokens_per_second: float | None = Field(default=None, gt=0)  # stated assumption, for cost
