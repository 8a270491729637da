"""The Slurm inference job: one server per replica, its TP x PP spread over the job's nodes.

Each case renders the reference example (8 x H100 per node) with its deployment moved to
Slurm, then reads the batch script like sbatch and bash would: #SBATCH lines, steps, and
`bash -n` (and shellcheck where installed) for syntax."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from factoryctl.render import render
from tests.helpers import check_doc, reference_doc


def _script(tmp_path, **changes) -> str:
    doc = reference_doc()
    doc["nodes"][1]["gpu_split"] = {"slurm": 8, "kubernetes": 0}  # every GPU to Slurm here
    doc["inference"][0].update({"platform": "slurm", "pipeline_parallel": 1, **changes})
    c = check_doc(doc, tmp_path)
    assert c.site is not None and not [f for f in c.findings if f.code.startswith("INF") and f.severity.value == "error"]
    render(c.site, tmp_path / "build")
    path = tmp_path / "build" / "slurm" / "inference" / "chat.sbatch"
    _parses(path)
    return path.read_text()


def _parses(path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def _sbatch(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"^#SBATCH --([a-z-]+)(?:=(\S*))?$", text, re.M))


def _server(text: str) -> list[str]:
    return shlex.split(re.search(r"^SERVER=\((.*)\)$", text, re.M).group(1))


def _srun(text: str) -> list[str]:
    return [line for line in text.replace("\\\n", " ").splitlines() if line.startswith("srun ")]


def test_tp8_on_one_node_runs_one_server_without_ray(tmp_path):
    text = _script(tmp_path, tensor_parallel=8, replicas=1)
    opts = _sbatch(text)
    assert (opts["nodes"], opts["gres"], opts["array"]) == ("1", "gpu:8", "1-1")
    assert "exclusive" in opts and opts["partition"] == "gpu"
    assert not re.search(r"\bray\b", text) and "RAY_ADDRESS" not in text
    argv = _server(text)
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "1"
    assert "--distributed-executor-backend" not in argv
    assert len(_srun(text)) == 1


def test_tp8_pp2_spans_two_nodes_with_ray_and_one_server(tmp_path):
    text = _script(tmp_path, tensor_parallel=8, pipeline_parallel=2, replicas=1)
    opts = _sbatch(text)
    assert (opts["nodes"], opts["gres"], opts["ntasks-per-node"]) == ("2", "gpu:8", "1")
    argv = _server(text)
    assert argv[argv.index("--distributed-executor-backend") + 1] == "ray"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    head, workers, server = _srun(text)
    assert "ray start --head" in head and '--nodelist="$HEAD"' in head and "--num-gpus=8" in head
    assert 'ray start --address="$RAY_ADDRESS"' in workers and "--nodes=1" in workers and '--exclude="$HEAD"' in workers
    assert server.endswith('"${SERVER[@]}"') and '--nodelist="$HEAD"' in server and "--nodes=1 --ntasks=1" in server


def test_three_replicas_are_three_array_tasks_each_one_server(tmp_path):
    text = _script(tmp_path, tensor_parallel=4, replicas=3)
    opts = _sbatch(text)
    assert (opts["array"], opts["nodes"], opts["gres"]) == ("1-3", "1", "gpu:4")
    assert "exclusive" not in opts  # half a node: the other half stays schedulable
    assert sum("SERVER[@]" in s for s in _srun(text)) == 1


def test_every_declared_engine_argument_reaches_the_server(tmp_path):
    text = _script(tmp_path, tensor_parallel=4, replicas=1, precision="bf16", kv_cache_dtype="fp8",
                   max_context=16384, max_num_seqs=32, gpu_memory_utilization=0.85,
                   model_source="/lustre/models/llama-3.1-70b",
                   engine_options={"env": {"VLLM_CPU_KVCACHE_SPACE": 4}, "flags": {"enforce-eager": True, "swap-space": 4}})
    argv = _server(text)
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--model"] == "/lustre/models/llama-3.1-70b"
    assert pairs["--served-model-name"] == "meta-llama/Llama-3.1-70B-Instruct"
    assert (pairs["--max-model-len"], pairs["--max-num-seqs"]) == ("16384", "32")
    assert (pairs["--gpu-memory-utilization"], pairs["--dtype"], pairs["--kv-cache-dtype"]) == ("0.85", "bfloat16", "fp8")
    assert pairs["--port"] == "8000" and pairs["--swap-space"] == "4" and "--enforce-eager" in argv
    assert "\nexport VLLM_CPU_KVCACHE_SPACE=4\n" in text


def test_endpoint_is_written_into_the_job_comment(tmp_path):
    text = _script(tmp_path, tensor_parallel=8, replicas=1)
    assert 'scontrol update JobId="$SLURM_JOB_ID" Comment="factoryctl-endpoint=http://$HEAD:$PORT"' in text


@pytest.mark.parametrize("engine", ["sglang", "tgi", "nim", "dynamo"])
def test_other_engines_render_a_script_that_parses(tmp_path, engine):
    text = _script(tmp_path, engine=engine, tensor_parallel=8, replicas=2,
                   **({"precision": "bf16"} if engine == "tgi" else {}))
    assert _sbatch(text)["array"] == "1-2" and len(_srun(text)) == 1


def test_image_runs_through_pyxis_with_the_registry_before_a_hash(tmp_path):
    text = _script(tmp_path, tensor_parallel=8, replicas=1, image="registry.fra1.example.internal/vllm/vllm-openai:v0.8.5")
    assert "STEP=(--container-image='registry.fra1.example.internal#vllm/vllm-openai:v0.8.5')" in text
    assert all('"${STEP[@]}"' in s for s in _srun(text))
