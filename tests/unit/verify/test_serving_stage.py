"""verify --bench's serving stage: every declared deployment that answers is load-tested with
the settings of verify.benchmarks.serving and the SLOs of verify.thresholds, recorded as
serve-<deployment>.json that cost reads; one that does not answer fails the stage."""

from __future__ import annotations

from pathlib import Path

import yaml

from factoryctl.session import check
from factoryctl.ui import RecordingUI
from factoryctl.verify import serving, status
from factoryctl.verify.results import read_run
from factoryctl.workspace import Workspace
from tests.unit.bench.test_serve import Behaviour, FakeServer

ROOT = Path(__file__).resolve().parents[3]


def _site(tmp_path: Path, **verify):
    doc = yaml.safe_load((ROOT / "examples" / "lab.yaml").read_text())
    doc["verify"] = verify
    f = tmp_path / "factory.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    c = check(f)
    assert c.site is not None, c.findings
    return c, Workspace.beside(f, c.factory.metadata.name)


def _endpoint(url, ready=True, reason="") -> status.Endpoint:
    return status.Endpoint("tiny", "vllm", "factoryctl/tiny-llama", "slurm", "inference-tiny", "7", "node01",
                           url, ready, reason)


def test_config_comes_from_verify_benchmarks_and_thresholds(tmp_path):
    c, _ = _site(tmp_path, benchmarks={"serving": {"concurrency": [2, 16], "prompts": 10, "input_len": 8,
                                                   "output_len": 4, "warmup": 0}},
                 thresholds={"ttft_p99_ms": 250, "tpot_p99_ms": 20})
    cfg = serving.config_for(c, "http://10.77.0.12:8000")
    assert cfg.url == "http://10.77.0.12:8000/v1/completions" and cfg.concurrency == (2, 16)
    assert (cfg.prompts, cfg.input_len.lo, cfg.output_len.hi, cfg.warmup) == (10, 8, 4, 0)
    assert cfg.slo == {"ttft_p99_ms": 250.0, "tpot_p99_ms": 20.0}


def test_a_ready_deployment_is_measured_and_recorded_for_cost(tmp_path, monkeypatch):
    c, ws = _site(tmp_path, benchmarks={"serving": {"concurrency": [1, 4], "prompts": 8, "output_len": 8}})
    folder = ws.new_run("verify")
    with FakeServer(Behaviour(models=("factoryctl/tiny-llama",))) as srv:
        monkeypatch.setattr(status, "wait_for_endpoints", lambda *a, **k: [_endpoint(srv.url)])
        stage = serving.run_serving_stage(c, ws, folder, RecordingUI())
    (o,) = stage.outcomes
    assert not stage.failed and [lv.concurrency for lv in o.result.levels] == [1, 4]
    assert (folder / "serve-tiny.json").is_file()
    (measured,) = read_run(folder).inference
    assert measured.deployment == "tiny" and measured.tokens_per_second > 0


def test_a_deployment_that_does_not_answer_fails_the_stage(tmp_path, monkeypatch):
    c, ws = _site(tmp_path)
    monkeypatch.setattr(status, "wait_for_endpoints",
                        lambda *a, **k: [_endpoint(None, False, "no job named inference-tiny in squeue")])
    ui = RecordingUI()
    stage = serving.run_serving_stage(c, ws, ws.new_run("verify"), ui)
    assert stage.failed and stage.outcomes[0].reason == "no job named inference-tiny in squeue"
    assert ui.messages("info") == ["serving tiny: not measured: no job named inference-tiny in squeue"]
