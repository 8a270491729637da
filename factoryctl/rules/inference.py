"""Rules: inference. Model shape against parallelism, GPU memory and count, precision, placement.

Memory figures come from resolve.inference_fit (model shapes from each model's config.json): weights / (TP x PP) + KV cache
for max_num_seqs sequences of max_context tokens + runtime overhead, against HBM x
gpu_memory_utilization.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .. import catalog
from ..findings import Severity
from ..model import Factory
from ..model.inference import Inference
from ..resolve import InferenceFit, Site, gpu_native_precision, inference_fit, model_shape
from .base import Issue, rule

TIGHT_FIT = 0.9  # share of usable GPU memory above which a fit leaves no room for batching
ROLE = {"kubernetes": "kube-worker", "slurm": "slurm-compute"}


def _deployments(f: Factory, site: Site) -> Iterable[tuple[int, Inference, InferenceFit]]:
    yield from ((i, inf, fit) for i, (inf, fit) in enumerate(zip(f.inference, site.inference, strict=True)))


def _rdma(f: Factory) -> bool:
    return f.fabric.compute is not None and f.fabric.compute.type in ("infiniband", "roce")


@rule("INF001", Severity.warning, "unknown model without model_spec")
def unknown_model(f: Factory, site: Site) -> Iterable[Issue]:
    """The model must be in the catalog (by name, alias or Hugging Face repo id) or carry a
    `model_spec` (params, layers, heads, head_dim); otherwise memory, head and layer checks
    (INF002, INF004, INF005, INF009, INF011) are skipped."""
    for i, inf, fit in _deployments(f, site):
        if not fit.known_model:
            close = catalog.suggest("llm", inf.model)
            yield Issue(
                ("inference", i, "model"),
                f"model {inf.model!r} is not in the catalog and has no model_spec, so its memory is not checked"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                "add inference[].model_spec with params_b, layers, attention_heads, kv_heads and head_dim "
                "from the model's config.json",
            )


@rule("INF002", Severity.error, "tensor_parallel does not divide the attention heads")
def tp_divides_heads(f: Factory, site: Site) -> Iterable[Issue]:
    """vLLM shards attention by heads: num_attention_heads % TP must be 0, and the KV heads
    must split evenly (kv_heads % TP == 0) or be replicated evenly (TP % kv_heads == 0)
    (vLLM: "Total number of attention heads must be divisible by tensor parallel size")."""
    for i, inf, fit in _deployments(f, site):
        spec, tp = model_shape(inf), inf.tensor_parallel
        if spec is None or tp == 1:
            continue
        kv = spec.kv_heads
        kv_bad = (kv % tp != 0) if tp <= kv else (tp % kv != 0)
        if spec.attention_heads % tp or kv_bad:
            reach = fit.scale_up_gpus or 64  # only suggest sizes that also fit the NVLink domain
            ok = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= reach and spec.attention_heads % t == 0
                  and ((kv % t == 0) if t <= kv else (t % kv == 0))]
            yield Issue(
                ("inference", i, "tensor_parallel"),
                f"tensor_parallel {tp} does not split {inf.model}'s {spec.attention_heads} attention heads "
                f"and {kv} KV heads evenly",
                f"use a tensor_parallel that divides the heads: {', '.join(map(str, ok))}",
            )


@rule("INF003", Severity.error, "tensor_parallel beyond a node or NVLink domain")
def tp_within_scale_up(f: Factory, site: Site) -> Iterable[Issue]:
    """Tensor parallelism all-reduces on every layer, so a TP group belongs inside one NVLink
    domain: TP <= GPUs per node, or <= the rack-scale NVLink domain (72 on NVL72). Beyond it
    is an error (vLLM docs, parallelism and scaling: TP within a node, PP across nodes). TP larger than the
    NVLink domain but within a node (PCIe GPUs, NVLink bridges) runs over PCIe: info."""
    for i, inf, fit in _deployments(f, site):
        tp = inf.tensor_parallel
        if not fit.gpus_per_node or tp == 1:
            continue
        reach = fit.scale_up_gpus
        if tp > reach:
            yield Issue(
                ("inference", i, "tensor_parallel"),
                f"tensor_parallel {tp} spans nodes: {fit.gpu_model} nodes here have {fit.gpus_per_node} GPUs"
                f" and an NVLink domain of {fit.nvlink_domain}",
                f"use tensor_parallel <= {reach} and pipeline_parallel to spread one instance over more nodes",
            )
        elif fit.nvlink_domain and tp > fit.nvlink_domain:
            yield Issue(
                ("inference", i, "tensor_parallel"),
                f"tensor_parallel {tp} exceeds {fit.gpu_model}'s NVLink domain of {fit.nvlink_domain}, "
                "so its all-reduces cross PCIe",
                f"prefer tensor_parallel {fit.nvlink_domain} with more replicas or pipeline_parallel",
                Severity.info,
            )


def _fitting_tp(f: Factory, inf: Inference, site: Site, fit: InferenceFit) -> int | None:
    """Smallest larger power-of-two TP, within the scale-up domain, whose instance fits."""
    t = inf.tensor_parallel * 2
    while t <= max(fit.scale_up_gpus, 1):
        trial = inference_fit(f, inf.model_copy(update={"tensor_parallel": t}), site.groups)
        if trial.fits:
            return t
        t *= 2
    return None


@rule("INF004", Severity.error, "model does not fit GPU memory")
def model_fits(f: Factory, site: Site) -> Iterable[Issue]:
    """Per GPU: weights / (TP x PP) + KV cache (2 x layers/PP x kv_heads/TP x head_dim x bytes
    x max_context x max_num_seqs; MLA models cache layers/PP x kv_latent_dim on every TP rank)
    + ~3 GB runtime must be <= HBM x gpu_memory_utilization (vLLM default
    --gpu-memory-utilization 0.9). The finding points at tensor_parallel when the weights alone overflow,
    else at max_context."""
    for i, inf, fit in _deployments(f, site):
        if not fit.known_model or fit.usable_gb_per_gpu <= 0 or fit.fits:
            continue
        weights_only = fit.weights_gb_per_gpu + fit.overhead_gb > fit.usable_gb_per_gpu
        tp = _fitting_tp(f, inf, site, fit)
        if weights_only:
            loc = ("inference", i, "tensor_parallel")
            hint = (f"raise tensor_parallel to {tp}" if tp else
                    "add pipeline_parallel stages or GPUs with more memory") + ", or use a smaller precision"
        else:
            loc = ("inference", i, "max_context")
            hint = ("lower max_context or max_num_seqs, use kv_cache_dtype: fp8"
                    + (f", or raise tensor_parallel to {tp}" if tp else ""))
        yield Issue(
            loc,
            f"{inf.model} at {inf.precision} needs {fit.memory_gb_per_gpu:.1f} GB per GPU "
            f"(weights {fit.weights_gb_per_gpu:.1f} + KV {fit.kv_gb_per_gpu:.1f} + overhead {fit.overhead_gb:.1f}) "
            f"but {fit.gpu_model} offers {fit.usable_gb_per_gpu:.1f} GB usable "
            f"(x{inf.gpu_memory_utilization} of HBM)",
            hint,
        )


@rule("INF005", Severity.warning, "model fits GPU memory only tightly")
def model_tight_fit(f: Factory, site: Site) -> Iterable[Issue]:
    """A fit above 90% of usable GPU memory leaves almost no KV cache beyond max_num_seqs
    sequences: throughput collapses under concurrent load (e.g. 70B FP8 on one H100 leaves
    ~1 GB: impractical)."""
    for i, inf, fit in _deployments(f, site):
        if not fit.known_model or fit.usable_gb_per_gpu <= 0 or not fit.fits:
            continue
        share = fit.memory_gb_per_gpu / fit.usable_gb_per_gpu
        if share > TIGHT_FIT:
            yield Issue(
                ("inference", i, "max_context"),
                f"{inf.model} uses {fit.memory_gb_per_gpu:.1f} of {fit.usable_gb_per_gpu:.1f} GB usable per GPU "
                f"({share:.0%}), leaving little KV cache for concurrent requests",
                "raise tensor_parallel, lower max_context, or use kv_cache_dtype: fp8",
            )


@rule("INF006", Severity.error, "deployment needs more GPUs than its nodes have")
def enough_gpus(f: Factory, site: Site) -> Iterable[Issue]:
    """replicas x tensor_parallel x pipeline_parallel GPUs must be available on the GPU groups
    with the platform's worker role (kube-worker / slurm-compute), narrowed by `nodes`."""
    for i, inf, fit in _deployments(f, site):
        if fit.gpus_available and fit.gpus > fit.gpus_available:
            yield Issue(
                ("inference", i, "replicas"),
                f"{inf.replicas} replicas x TP {inf.tensor_parallel} x PP {inf.pipeline_parallel} = {fit.gpus} GPUs, "
                f"but the {inf.platform} GPU nodes ({', '.join(fit.groups)}) have {fit.gpus_available}",
                f"lower replicas to {max(1, fit.gpus_available // (inf.tensor_parallel * inf.pipeline_parallel))}"
                " or add GPU nodes",
            )


@rule("INF007", Severity.error, "platform not enabled")
def platform_enabled(f: Factory, site: Site) -> Iterable[Issue]:
    """A deployment on `platform: kubernetes` needs `kubernetes.enabled: true`; on
    `platform: slurm`, `slurm.enabled: true`."""
    for i, inf, _ in _deployments(f, site):
        enabled = f.kubernetes.enabled if inf.platform == "kubernetes" else f.slurm.enabled
        if not enabled:
            yield Issue(
                ("inference", i, "platform"),
                f"deployment {inf.name!r} runs on {inf.platform}, which is not enabled",
                f"set {inf.platform}.enabled: true, or choose the other platform",
            )


@rule("INF008", Severity.error, "precision not supported by the GPU")
def precision_supported(f: Factory, site: Site) -> Iterable[Issue]:
    """fp8 needs FP8 tensor cores (a catalog fp8 figure: Ada, Hopper, Blackwell, MI300);
    fp4 needs Blackwell-class GPUs. vLLM on NVIDIA GPUs still runs such checkpoints
    weight-only (FP8/FP4 Marlin, W8A16/W4A16) without the compute speed-up: a warning there
    (vLLM docs, FP8 W8A8)."""
    for i, inf, fit in _deployments(f, site):
        if gpu_native_precision(fit.gpu_model, inf.precision) is not False:
            continue
        spec = catalog.gpu(fit.gpu_model)
        fallback = inf.engine == "vllm" and spec is not None and spec.vendor == "nvidia"
        yield Issue(
            ("inference", i, "precision"),
            f"{fit.gpu_model} has no {inf.precision} tensor cores"
            + ("; vLLM falls back to weight-only kernels, saving memory but not compute" if fallback else
               f", so {inf.engine} cannot serve {inf.precision}"),
            "use bf16 (or fp8 where the GPU supports it), or run on GPUs that compute at this precision",
            Severity.warning if fallback else None,
        )


@rule("INF009", Severity.error, "pipeline_parallel beyond the model's layers")
def pp_within_layers(f: Factory, site: Site) -> Iterable[Issue]:
    """Pipeline parallelism splits the model by layers: pipeline_parallel <= num_layers."""
    for i, inf, _ in _deployments(f, site):
        spec = model_shape(inf)
        if spec is not None and inf.pipeline_parallel > spec.layers:
            yield Issue(
                ("inference", i, "pipeline_parallel"),
                f"pipeline_parallel {inf.pipeline_parallel} exceeds {inf.model}'s {spec.layers} layers",
                f"use pipeline_parallel <= {spec.layers}",
            )


@rule("INF010", Severity.warning, "disaggregated serving without an RDMA fabric")
def disaggregated_needs_rdma(f: Factory, site: Site) -> Iterable[Issue]:
    """Prefill/decode disaggregation (Dynamo, llm-d) moves each request's KV cache between
    GPU pools over NIXL, which needs an NVLink or RDMA path; over TCP the transfer dominates
    latency (NVIDIA Dynamo docs, disaggregated serving)."""
    for i, inf, _ in _deployments(f, site):
        if inf.disaggregated and not _rdma(f):
            kind = f.fabric.compute.type if f.fabric.compute else "no"
            yield Issue(
                ("inference", i, "disaggregated"),
                f"deployment {inf.name!r} is disaggregated but the site has {kind} compute fabric, not InfiniBand or RoCE",
                "add an InfiniBand or RoCE compute fabric, or set disaggregated: false",
            )


@rule("INF011", Severity.warning, "max_context beyond the model's positions")
def context_within_positions(f: Factory, site: Site) -> Iterable[Issue]:
    """max_context should not exceed the model's max_position_embeddings (config.json): vLLM
    refuses a larger --max-model-len unless overridden, and quality degrades past it."""
    for i, inf, _ in _deployments(f, site):
        spec = model_shape(inf)
        limit = getattr(spec, "max_position_embeddings", None) if spec is not None else None
        if limit and inf.max_context > limit:
            yield Issue(
                ("inference", i, "max_context"),
                f"max_context {inf.max_context} exceeds {inf.model}'s {limit} positions",
                f"use max_context <= {limit}",
            )


@rule("INF012", Severity.error, "duplicate deployment name")
def duplicate_names(f: Factory, site: Site) -> Iterable[Issue]:
    """Deployment names become Kubernetes objects and Slurm job names; they must be unique."""
    seen: dict[str, int] = {}
    for i, inf in enumerate(f.inference):
        if inf.name in seen:
            yield Issue(
                ("inference", i, "name"),
                f"deployment name {inf.name!r} is already used by inference[{seen[inf.name]}]",
                "rename one of the deployments",
            )
        else:
            seen[inf.name] = i


@rule("INF013", Severity.error, "inference nodes names an unknown group")
def unknown_nodes(f: Factory, site: Site) -> Iterable[Issue]:
    """Each name in `inference[].nodes` must be a `nodes[].group`."""
    for i, inf in enumerate(f.inference):
        for j, g in enumerate(inf.nodes):
            if g not in site.groups:
                close = difflib.get_close_matches(g, sorted(site.groups), n=1, cutoff=0.6)
                yield Issue(
                    ("inference", i, "nodes", j),
                    f"deployment {inf.name!r} names node group {g!r}, which is not declared"
                    + (f" (did you mean {close[0]!r}?)" if close else ""),
                    f"use one of the groups under nodes: {', '.join(sorted(site.groups))}",
                )


@rule("INF014", Severity.error, "no GPU nodes for the deployment")
def no_gpu_nodes(f: Factory, site: Site) -> Iterable[Issue]:
    """A deployment runs on GPU groups with its platform's worker role (kube-worker for
    kubernetes, slurm-compute for slurm), narrowed by `nodes`; there must be at least one."""
    for i, inf, fit in _deployments(f, site):
        if fit.groups:
            continue
        if inf.nodes and not any(g in site.groups for g in inf.nodes):
            continue  # INF013 names the unknown groups
        role = ROLE[inf.platform]
        where = f"among {', '.join(inf.nodes)}" if inf.nodes else "in the factory"
        if inf.device == "cpu":
            yield Issue(
                ("inference", i, "nodes") if inf.nodes else ("inference", i, "platform"),
                f"CPU deployment {inf.name!r} has no node group with the {role} role {where}",
                f"add {role} to the roles of a node group" + (" or name another group in nodes" if inf.nodes else ""),
            )
            continue
        yield Issue(
            ("inference", i, "nodes") if inf.nodes else ("inference", i, "platform"),
            f"deployment {inf.name!r} has no GPU node group with the {role} role {where}",
            f"add {role} to the roles of a GPU node group" + (" or name another group in nodes" if inf.nodes else ""),
        )


@rule("INF015", Severity.warning, "deployments together need more GPUs than the platform has")
def platform_overcommit(f: Factory, site: Site) -> Iterable[Issue]:
    """Each deployment may fit alone (INF006), yet all deployments on one platform together
    need sum(replicas x TP x PP) GPUs, which the platform's GPU groups must hold at once. A
    group shared through `gpu_split` counts only the platform's share."""
    for platform in ("kubernetes", "slurm"):
        mine = [(i, inf, fit) for i, inf, fit in _deployments(f, site) if inf.platform == platform]
        groups = {g for _, _, fit in mine for g in fit.groups}
        share = site.kube_gpus if platform == "kubernetes" else site.slurm_gpus  # gpu_split's share
        have = sum(site.groups[g].count * share(g) for g in groups)
        need = sum(fit.gpus for _, _, fit in mine)
        if len(mine) > 1 and have and need > have and all(fit.gpus <= fit.gpus_available for _, _, fit in mine):
            i = mine[-1][0]
            yield Issue(
                ("inference", i, "replicas"),
                f"the {len(mine)} deployments on {platform} need {need} GPUs together, "
                f"but their node groups ({', '.join(sorted(groups))}) have {have}",
                "lower replicas, or place the deployments on separate or larger node groups",
            )


@rule("INF016", Severity.warning, "multi-node model instance without an RDMA fabric")
def multinode_needs_rdma(f: Factory, site: Site) -> Iterable[Issue]:
    """An instance of TP x PP GPUs larger than one node (or rack-scale NVLink domain) passes
    activations between nodes on every token; that needs an InfiniBand or RoCE compute fabric
    (vLLM docs, parallelism and scaling: multi-node needs InfiniBand-class networking)."""
    for i, inf, fit in _deployments(f, site):
        per_instance = inf.tensor_parallel * inf.pipeline_parallel
        if fit.gpus_per_node and per_instance > fit.scale_up_gpus and not _rdma(f):
            yield Issue(
                ("inference", i, "pipeline_parallel"),
                f"one instance of {inf.name!r} needs {per_instance} GPUs, more than one node's "
                f"{fit.scale_up_gpus}, but the site has no InfiniBand or RoCE compute fabric",
                "add an RDMA compute fabric, or shrink the instance to one node (lower precision, fewer GPUs)",
            )


@rule("INF017", Severity.error, "model instance does not split evenly over whole nodes")
def instance_splits_over_nodes(f: Factory, site: Site) -> Iterable[Issue]:
    """An instance larger than a node takes ceil(TP x PP / GPUs per node) nodes with the same
    GPUs on each (a Slurm job's --gres=gpu:N, a LeaderWorkerSet's per-pod limit). That only
    works when TP x PP divides evenly over those nodes and each node holds whole TP groups:
    Ray places TP ranks in order, so a TP group cut by a node boundary all-reduces over the
    network on every layer (vLLM docs, "Parallelism and Scaling": TP within a node, PP across)."""
    for i, inf, fit in _deployments(f, site):
        per_instance, g, tp = inf.tensor_parallel * inf.pipeline_parallel, fit.gpus_per_node, inf.tensor_parallel
        if not g or per_instance <= g or tp > g:
            continue  # one node holds it; TP beyond a node is INF003's
        nodes = -(-per_instance // g)
        if per_instance % nodes == 0 and (per_instance // nodes) % tp == 0:
            continue
        ok = [p for p in range(1, 2 * inf.pipeline_parallel + 1) if tp * p <= g or (tp * p) % g == 0]
        yield Issue(
            ("inference", i, "pipeline_parallel"),
            f"one instance of {inf.name!r} needs TP {tp} x PP {inf.pipeline_parallel} = {per_instance} GPUs on "
            f"{nodes} nodes of {g}, which cannot each hold the same number of whole TP groups",
            f"use a pipeline_parallel that makes TP x PP fit one node or fill whole nodes: "
            f"{', '.join(map(str, ok[-4:]))}",
        )


@rule("INF018", Severity.error, "engine cannot spread one instance over Slurm nodes")
def slurm_multinode_engine(f: Factory, site: Site) -> Iterable[Issue]:
    """On Slurm, factoryctl's batch script spreads one instance over several nodes for vLLM
    (a Ray cluster over the job's nodes) and SGLang (--nnodes/--node-rank); TGI shards within
    one node only, and NIM and Dynamo bring their own multi-node launchers that the batch
    script does not drive."""
    for i, inf, fit in _deployments(f, site):
        per_instance = inf.tensor_parallel * inf.pipeline_parallel
        if (inf.platform == "slurm" and inf.engine not in ("vllm", "sglang") and fit.gpus_per_node
                and per_instance > fit.gpus_per_node):
            yield Issue(
                ("inference", i, "engine"),
                f"one instance of {inf.name!r} needs {per_instance} GPUs, more than one node's {fit.gpus_per_node}, "
                f"and the Slurm batch script runs {inf.engine} on one node only",
                "use engine: vllm (Ray across the job's nodes), or an instance that fits one node, "
                "or platform: kubernetes",
            )


# Engines with a CPU build factoryctl can run: vLLM's CPU backend (vLLM docs, "CPU" installation).
CPU_ENGINES = ("vllm",)


@rule("INF019", Severity.error, "CPU deployment the engine or platform cannot run")
def cpu_deployment(f: Factory, site: Site) -> Iterable[Issue]:
    """`device: cpu` runs one server per replica on one node with the engine's CPU build: vLLM
    only (SGLang's CPU kernels need Intel AMX and a source build), on Slurm (a Kubernetes pod of
    the GPU images would find no GPU), without tensor or pipeline parallelism across devices."""
    for i, inf, _ in _deployments(f, site):
        if inf.device != "cpu":
            continue
        if inf.engine not in CPU_ENGINES:
            yield Issue(("inference", i, "engine"), f"{inf.engine} has no CPU build factoryctl can run",
                        "use engine: vllm with its CPU build, or device: gpu")
        elif inf.platform != "slurm":
            yield Issue(("inference", i, "platform"), "a CPU deployment runs on Slurm nodes only",
                        "use platform: slurm, or device: gpu")
        elif inf.tensor_parallel * inf.pipeline_parallel > 1:
            yield Issue(("inference", i, "tensor_parallel"),
                        f"a CPU deployment runs one server per replica on one node, not TP {inf.tensor_parallel} "
                        f"x PP {inf.pipeline_parallel}", "set tensor_parallel and pipeline_parallel to 1; add replicas")


@rule("INF020", Severity.error, "engine_install where it cannot apply")
def engine_install_place(f: Factory, site: Site) -> Iterable[Issue]:
    """engine_install puts the engine into a virtual environment on the nodes of a Slurm
    deployment that runs no container image. With an image the job runs the image's engine
    (pyxis); Kubernetes pods always run an image."""
    for i, inf, _ in _deployments(f, site):
        if inf.engine_install is None:
            continue
        if inf.platform != "slurm":
            yield Issue(("inference", i, "engine_install"), "engine_install applies to Slurm deployments only",
                        "remove engine_install; a Kubernetes deployment runs its image")
        elif inf.image:
            yield Issue(("inference", i, "engine_install"),
                        "the deployment declares both an image and engine_install: the job would run the image's engine",
                        "keep one: image (pyxis) or engine_install (a virtual environment on the nodes)")


@rule("INF021", Severity.error, "engine_install with no Python mirror on an offline site")
def engine_install_mirror(f: Factory, site: Site) -> Iterable[Issue]:
    """An air-gapped site's hosts (and a lab's, which have no route past the bridge) reach no
    public package index: engine_install needs `site.mirrors.pypi`."""
    offline = f.sovereignty.air_gapped or f.site.provider == "lab"
    has_mirror = bool(f.site.mirrors and f.site.mirrors.pypi)
    for i, inf, _ in _deployments(f, site):
        if inf.engine_install and offline and not has_mirror:
            yield Issue(("inference", i, "engine_install"),
                        f"the site's hosts are offline and no Python mirror is declared for {inf.name!r}'s engine",
                        "declare site.mirrors.pypi (the lab serves one on its bridge: http://<bridge address>:8080/simple/)")
