"""What each Slurm inference deployment's batch script needs: layout, resources and argv.

One job array per deployment, one array task per replica; each task is one model instance
(one server). An instance of TP x PP GPUs that fits a node runs alone on it: no Ray. A larger
one takes ceil(TP x PP / GPUs per node) nodes with the same GPUs on each, forms a Ray cluster
over exactly those nodes (`ray start --head` on the first, `ray start --address` on the
others) and starts ONE server on the first with --distributed-executor-backend ray, which
places the TP groups inside nodes and the PP stages across them (vLLM docs, "Parallelism and
Scaling": TP within a node, PP across nodes; multi-node serving with a Ray cluster).

The endpoint: the server's host:port is written into the job's comment as
`factoryctl-endpoint=http://HOST:PORT` (scontrol update JobId=... Comment=..., which a job may
do to itself), so status and verify read it from `squeue --format=%k` with no shared file.

Plain, sorted data; templates/slurm/inference/__slurm_inference__.sbatch.j2 only prints it,
every value through the `shell` filter.
"""

from __future__ import annotations

import math

from ..model.inference import Inference
from ..resolve import Site
from .kube import SERVICE_PORT, engine_args

RAY_PORT = 6379  # Ray's default GCS port (ray start --head --port)
ENDPOINT_PREFIX = "factoryctl-endpoint="
# Engines whose one instance can span nodes in this script: vLLM through Ray, SGLang through
# its own --nnodes/--node-rank/--dist-init-addr (SGLang docs, multi-node deployment).
MULTI_NODE_ENGINES = ("vllm", "sglang")

_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}
# Where the inference role puts a deployment's pip-installed engine and its staged model
# (templates/ansible/project/roles/inference/defaults/main.yml names the same folders).
ENGINE_ROOT = "/opt/factoryctl/engines"
MODEL_ROOT = "/var/lib/factoryctl/models"
LOG_DIR = "/var/log/factoryctl/inference"  # the jobs' logs and working folder, on every node


def staged_over_http(inf: Inference) -> bool:
    """An http(s) model_source is a folder with a SHA256SUMS file (sha256sum's output) that the
    inference role copies to every node of a Slurm deployment, each file checked."""
    return inf.platform == "slurm" and inf.model_source.strip().startswith(("http://", "https://"))


def model_path(inf: Inference) -> str:
    """What the server loads: the local folder model_source names (every node mounts it), the
    folder the role staged an http(s) source into, else the model id; weights from an object
    store are staged by the site, not by this job."""
    src = inf.model_source.strip()
    if src.startswith("file://"):
        return src[len("file://"):]
    if staged_over_http(inf):
        return f"{MODEL_ROOT}/{inf.name}"
    return src if src.startswith("/") else inf.model


def python(inf: Inference) -> str:
    """The interpreter that starts the server: the deployment's own virtual environment when
    the role installs the engine with pip, else the image's or the host's python3."""
    return f"{ENGINE_ROOT}/{inf.name}/bin/python3" if inf.engine_install and not inf.image else "python3"


def vllm_args(inf: Inference, port: int) -> list[str]:
    """`vllm serve` arguments for every field the deployment declares (vLLM docs, "Engine
    Arguments"): parallelism, context, concurrency, memory share, dtype and KV cache dtype."""
    args = ["--model", model_path(inf), "--served-model-name", inf.model,
            "--host", "0.0.0.0", "--port", str(port),
            "--tensor-parallel-size", str(inf.tensor_parallel),
            "--pipeline-parallel-size", str(inf.pipeline_parallel),
            "--max-model-len", str(inf.max_context),
            "--max-num-seqs", str(inf.max_num_seqs)]
    if inf.device == "gpu":  # the CPU build sizes its KV cache from VLLM_CPU_KVCACHE_SPACE instead
        args += ["--gpu-memory-utilization", str(inf.gpu_memory_utilization)]
    if inf.precision in _DTYPE:
        args += ["--dtype", _DTYPE[inf.precision]]
    elif inf.precision == "fp8":
        args += ["--quantization", "fp8"]  # int8/int4/fp4: a pre-quantized checkpoint, read from its config
    # auto: the KV cache takes the activations' dtype (--dtype); fp8 halves it (vLLM docs, Quantized KV Cache)
    args += ["--kv-cache-dtype", "fp8" if inf.kv_cache_dtype == "fp8" else "auto"]
    return args


def enroot_image(ref: str) -> str:
    """An OCI reference as pyxis' --container-image reads it: enroot takes the registry before
    a '#' (enroot import: [REGISTRY#]IMAGE[:TAG]); without one it would look on Docker Hub."""
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return f"{first}#{rest}"
    return ref


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def extra_flags(inf: Inference) -> list[str]:
    """engine_options.flags as argv: `name: true` is the bare flag, anything else --name value."""
    out: list[str] = []
    for name, value in sorted(inf.engine_options.flags.items()):
        out += [f"--{name}"] if value is True else [f"--{name}", _value(value)]
    return out


def _partition(site: Site, groups: tuple[str, ...]) -> str:
    """The partition whose every node the deployment may use (the default one first), so the
    scheduler never places a replica on a group the deployment does not name."""
    fitting = []
    for p in site.factory.slurm.partitions:
        names = {p.nodes} if isinstance(p.nodes, str) else set(p.nodes)
        if names and names <= set(groups):
            fitting.append((not p.default, p.name))
    return min(fitting)[1] if fitting else ""


def _owner(site: Site, deployment: str) -> str:
    """The tenant that declares the deployment among its own (tenants[].deployments)."""
    return next((t.name for t in site.factory.tenants if deployment in t.deployments), "")


def jobs(site: Site) -> list[dict]:
    """One entry per Slurm inference deployment (`slurm_inference` in the render context)."""
    f = site.factory
    if not f.slurm.enabled:
        return []
    out = []
    for inf, fit in site.deployments_on("slurm"):
        per_replica = inf.tensor_parallel * inf.pipeline_parallel
        per_node = fit.gpus_per_node  # 0: CPU nodes (the lab's vLLM CPU build)
        nodes = max(1, math.ceil(per_replica / per_node)) if per_node else 1
        gpus_per_node = math.ceil(per_replica / nodes) if per_node else 0
        port = SERVICE_PORT  # every engine on one port: verify's inference check asks there (hostchecks)
        if inf.engine == "vllm":
            # The module, not the `vllm serve` console script: the same server, and it also
            # starts where the distribution is not named vllm (vllm-cpu's script fails with
            # PackageNotFoundError).
            argv = [python(inf), "-m", "vllm.entrypoints.openai.api_server", *vllm_args(inf, port)]
            if nodes > 1:
                argv += ["--distributed-executor-backend", "ray"]
        else:
            command = {"sglang": [python(inf), "-m", "sglang.launch_server"], "tgi": ["text-generation-launcher"],
                       "dynamo": [python(inf), "-m", "dynamo.vllm"], "nim": ["nim-serve"]}[inf.engine]
            argv = [*command, *engine_args(inf, model_path(inf), port)]
            argv = [a.replace("$$", "$") for a in argv]  # kube.literal's escape is for Kubernetes only
        out.append({
            "name": inf.name,
            "engine": inf.engine,
            "model": inf.model,
            "tensor_parallel": inf.tensor_parallel,
            "pipeline_parallel": inf.pipeline_parallel,
            "replicas": inf.replicas,
            "nodes": nodes,
            "gpus_per_node": gpus_per_node,
            "node_gpus": per_node,
            "whole_nodes": bool(per_node) and gpus_per_node == per_node,
            "multi_node": nodes > 1,
            "ray": nodes > 1 and inf.engine == "vllm",
            "partition": _partition(site, fit.groups),
            "port": port,
            "ray_port": RAY_PORT,
            "image": enroot_image(inf.image.strip()) if inf.image else "",
            "model_dir": model_path(inf) if model_path(inf).startswith("/") else "",
            "argv": argv + extra_flags(inf),
            "env": {k: _value(v) for k, v in sorted(inf.engine_options.env.items())},
            "endpoint_prefix": ENDPOINT_PREFIX,
            "log_dir": LOG_DIR,
            # The owning tenant's Slurm account (slurm/accounts.yml), so its QOS limits and
            # usage apply to the deployment's job; none when accounting is off or no one owns it.
            "account": owner if (owner := _owner(site, inf.name)) and f.slurm.accounting else "",
        })
    return out
