"""One record path for the benchmark stage, whichever scheduler ran it (Slurm's srun in
slurm_stage.py, Kubernetes jobs in kube_stage.py): what a run printed becomes the same
BenchResult entries (the nccl curves the report plots, the judged measurements, the built-in
worker's documents), which verify writes to runs/<id>/bench.json."""

from __future__ import annotations

import json

from .results import BenchResult


def json_document(text: str) -> dict | None:
    """The first JSON object in a log (the built-in worker prints one after any noise)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        doc, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def record_nccl(res: BenchResult, parsed, ctxs, th, collective: str, gpus_per_node: int, nodes: int) -> None:
    """One nccl-tests run (parsed): its judged figures and its curve, with the busbw the
    hardware should reach when the catalog knows the GPU."""
    from .expect import nccl_busbw
    from .judge import judge_nccl, pick_context

    res.measurements += [m.to_dict() for m in judge_nccl(parsed, ctxs, th)]
    entry = parsed.to_dict()
    gpu = next((d.gpu for d in parsed.devices if d.gpu), None)
    ctx, _ = pick_context(ctxs, gpu)
    if ctx is not None:
        exp = nccl_busbw(ctx, collective, gpus_per_node, nodes)
        if exp is not None and exp.value is not None:
            entry["expected_busbw_gbps"] = exp.value
    res.nccl.append(entry)


def load_worker(res: BenchResult, doc: dict, source: str):
    """The built-in worker's result document, or None after recording why it is not one."""
    from . import fallback

    try:
        return fallback.load(doc, source=source)
    except ValueError as exc:
        res.errors.append(str(exc))
        return None


def record_worker(res: BenchResult, result, ctxs, th) -> None:
    """One built-in worker run: its document, judged figures and all_reduce curve."""
    from .judge import judge_fallback

    res.documents.append(result.to_dict())
    res.measurements += [m.to_dict() for m in judge_fallback(result, ctxs, th)]
    ar = result.all_reduce
    if ar is not None and ar.rows:
        res.nccl.append({"name": f"built-in all_reduce ({result.mode}, {result.backend})",
                         "ranks": result.world_size, "source": result.source,
                         "rows": [r.model_dump(mode="json") for r in ar.rows]})
