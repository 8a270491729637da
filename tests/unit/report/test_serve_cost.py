"""Power to token from measurement: a `bench serve` run recorded in the site's workspace
(runs/<id>/serve.json, through the one writer) becomes the tokens/s behind cost's and the
report's cost and energy per 1M tokens, and those figures name the run; without one they say
they rest on the stated assumption; a corrupt record is a reported problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factoryctl.bench.serve import Goodput, Level, ServeResult, Summary
from factoryctl.report.bom import bom
from factoryctl.report.cost import cost
from factoryctl.report.runs import latest_run, measured, runs
from factoryctl.verify.results import write_serve_run
from factoryctl.workspace import Workspace
from tests.helpers import check_doc, cli, reference_doc, write_doc
from tests.unit.bench.test_serve import Behaviour, FakeServer

ECON = {"currency": "USD", "capex_per_node": {"gpu": 200_000}, "amortisation_years": 4, "utilisation": 0.8,
        "electricity_price_per_kwh": 0.10, "average_power_fraction": 0.7843137254901961,
        "cloud_price_per_gpu_hour": 2.35}
GPU_HOUR = 59_110.4 / 56_064  # owned cost per GPU-hour of the one-node site, by hand (test_cost.py)
KW_PER_GPU = 1.3  # 10.2 kW x 0.784 x PUE 1.3 / 8 GPUs at the meter


def _doc(second: bool = False, one_node: bool = True) -> dict:
    """The reference site (valid: what the commands accept), or its one GPU node alone (the
    by-hand figures of test_cost.py; it has errors, so only the functions take it)."""
    doc = reference_doc()
    if one_node:
        doc["nodes"] = [g for g in doc["nodes"] if g["group"] == "gpu"]
        doc["nodes"][0].update(count=1, rack="r01")
        doc["facility"]["pue"] = 1.3
    doc["economics"] = ECON
    doc["inference"][0]["tokens_per_second"] = 1000.0
    if second:
        doc["inference"].append(dict(doc["inference"][0], name="code", tokens_per_second=500.0))
    return doc


def _level(c: int, tps: float) -> Level:
    none = Summary()
    return Level(concurrency=c, request_rate=None, requests=8, errors=0 if tps else 8, duration_s=1.0,
                 req_per_s=8.0 if tps else 0.0, output_tok_per_s=tps, output_tokens=int(tps),
                 prompt_tokens_mean=None, max_in_flight=c, ttft_ms=none, tpot_ms=none, itl_ms=none,
                 e2e_ms=none, goodput=Goodput({}, 8, 1.0, 8.0, True, []), error_samples=[])


def _record(site_file: Path, name: str, deployment: str, levels: list[Level], recorded: str) -> Path:
    res = ServeResult("http://127.0.0.1:1/v1/completions", "m", {}, levels)
    folder = Workspace.beside(site_file, name).new_run("serve")
    return write_serve_run(res, deployment, folder, recorded)


def _site(tmp_path: Path, second: bool = False, one_node: bool = False):
    doc = _doc(second, one_node)
    path = write_doc(doc, tmp_path / "factory.yaml")
    c = check_doc(doc, tmp_path)
    assert c.site is not None, c.findings
    return path, c.site, tmp_path / ".factory" / doc["metadata"]["name"]


def test_highest_concurrency_of_the_latest_serve_run_sets_the_per_token_figures(tmp_path):
    path, site, ws = _site(tmp_path, second=True, one_node=True)
    old = _record(path, site.factory.metadata.name, "chat", [_level(1, 100.0), _level(4, 300.0)], "2026-05-01T10:00:00Z")
    # the newest run for chat: its top level made no tokens, so concurrency 8 is the one used
    new = _record(path, site.factory.metadata.name, "chat",
                  [_level(1, 900.0), _level(8, 2400.0), _level(2, 1500.0), _level(16, 0.0)], "2026-05-02T10:00:00Z")
    assert old.parent.name < new.parent.name and new.name == "serve.json"
    found, problems = measured(ws)
    assert problems == []
    m = found["chat"]
    assert (m.tokens_per_second, m.concurrency, m.run, m.recorded) == (2400.0, 8, new.parent.name, "2026-05-02T10:00:00Z")
    assert "code" not in found  # per deployment: the other keeps its stated figure
    chat, code = cost(site, bom(site), found).inference
    assert chat.source == "measured" and chat.tokens_per_second.value == 2400.0
    assert chat.cost_per_million_tokens.value == pytest.approx(GPU_HOUR * 4 / (2400 * 3600) * 1e6, abs=1e-4)
    assert chat.energy_per_million_tokens.value == pytest.approx(4 * KW_PER_GPU / (2400 * 3600) * 1e6, abs=1e-3)
    for fig in (chat.cost_per_million_tokens, chat.energy_per_million_tokens):
        assert fig.throughput_from.startswith(f"measured: run {new.parent.name}, 2026-05-02T10:00:00Z, concurrency 8, 2,400.0")
    assert chat.to_dict()["run"]["concurrency"] == 8
    assert code.source == "stated" and code.cost_per_million_tokens.throughput_from.startswith("stated assumption")
    assert code.cost_per_million_tokens.value == pytest.approx(GPU_HOUR * 4 / (500 * 3600) * 1e6, abs=1e-4)
    # the issue-17 fields stay as they were: the energy figure is the nodes' alone
    assert chat.energy_per_million_tokens.basis == "nodes only" and not chat.energy_per_million_tokens.complete


def test_bench_serve_file_records_a_run_that_cost_finds_from_another_folder(tmp_path, monkeypatch):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    path, site, ws = _site(site_dir)
    with FakeServer(Behaviour(gap=0.001)) as srv:
        res = cli("bench", "serve", srv.url, "--file", path, "--deployment", "chat", "--concurrency", "1,2",
                  "--prompts", "4", "--input-len", "4", "--output-len", "5", "--warmup", "0", "--format", "json")
    assert res.code == 0, res.output
    levels = json.loads(res.out)["levels"]
    (run,) = runs(ws)
    doc = json.loads((run.path / "serve.json").read_text())
    assert doc["deployment"] == "chat" and doc["schema"] == "factoryctl.serve/v1" and doc["levels"] == levels
    assert f"recorded as run {run.id}" in res.err
    (elsewhere := tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(elsewhere)
    out = cli("cost", path, "--format", "json")
    assert out.code == 0, out.output
    (d,) = json.loads(out.out)["inference"]
    tps = levels[1]["output_tok_per_s"]  # concurrency 2, the highest
    assert d["source"] == "measured" and d["run"]["run"] == run.id and d["run"]["concurrency"] == 2
    assert d["tokens_per_second"]["value"] == pytest.approx(tps)
    stated = cost(site, bom(site))  # the same site with its stated 1,000 tokens/s
    gpu_hour = stated.get("gpu_hour_cost").value
    kw_per_gpu = site.totals["it_kw"] * ECON["average_power_fraction"] * site.factory.facility.pue / site.totals["gpus"]
    assert d["cost_per_million_tokens"]["value"] == pytest.approx(gpu_hour * 4 / (tps * 3600) * 1e6, rel=1e-3)
    assert d["energy_per_million_tokens"]["value"] == pytest.approx(4 * kw_per_gpu / (tps * 3600) * 1e6, rel=1e-3)
    assert d["cost_per_million_tokens"]["value"] != pytest.approx(stated.inference[0].cost_per_million_tokens.value)
    assert f"run {run.id}" in d["energy_per_million_tokens"]["throughput_from"]
    text = cli("cost", path)
    assert text.code == 0 and run.id in text.out and "concurrency 2" in text.out
    assert not (elsewhere / ".factory").exists()


def test_without_a_run_the_stated_figure_is_used_and_said(tmp_path):
    path, _, _ = _site(tmp_path)
    out = cli("cost", path, "--format", "json")
    (d,) = json.loads(out.out)["inference"]
    assert d["source"] == "stated" and d["run"] is None and d["tokens_per_second"]["value"] == 1000.0
    for key in ("cost_per_million_tokens", "energy_per_million_tokens"):
        assert d[key]["throughput_from"].startswith("stated assumption: factory.yaml inference[chat]")
    assert "stated assumption" in cli("cost", path).out


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "serve.json: not readable JSON"),
    (json.dumps({"levels": []}), "no 'deployment'"),
    (json.dumps({"deployment": "chat", "levels": {}}), "'levels' is not a list"),
    (json.dumps({"deployment": "chat", "levels": [{"concurrency": "8", "output_tok_per_s": 1}]}), "levels[0] needs"),
    (json.dumps({"deployment": "chat", "levels": [{"concurrency": 1, "output_tok_per_s": 0}]}), "no level produced"),
])
def test_a_corrupt_serve_record_is_a_problem_not_a_traceback(tmp_path, content, words):
    path, site, ws = _site(tmp_path)
    folder = Workspace.beside(path, site.factory.metadata.name).new_run("serve")
    (folder / "serve.json").write_text(content)
    out = cli("cost", path, "--format", "json")
    assert out.code == 0, out.output
    doc = json.loads(out.out)
    assert doc["inference"][0]["source"] == "stated"
    assert any(p.startswith(f"run {folder.name}: ") and words in p for p in doc["problems"]), doc["problems"]
    text = cli("cost", path)
    assert "problem:" in text.out and words in text.out


def test_report_names_the_run(tmp_path):
    path, site, ws = _site(tmp_path)
    rec = _record(path, site.factory.metadata.name, "chat", [_level(4, 1234.5)], "2026-05-03T08:00:00Z")
    (ws / "runs" / "zz-broken").mkdir()
    (ws / "runs" / "zz-broken" / "serve.json").write_text("[]")
    res = cli("report", path, "--out", tmp_path / "rep")
    assert res.code == 0, res.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert f"measured: run {rec.parent.name}, 2026-05-03T08:00:00Z, concurrency 4, 1,234.5" in html
    assert "run zz-broken: serve.json: expected a JSON object" in html
    assert latest_run(ws) is None  # a serve run is no verify run: the report shows none
    assert 'href="#verify"' not in html


@pytest.mark.parametrize(("args", "words"), [
    (["--deployment", "chat"], "give the file with --file FILE"),
    (["--file", "{f}", "--deployment", "nope"], "has no such inference deployment; it declares chat"),
])
def test_bench_serve_site_options_are_checked_before_any_request(tmp_path, args, words):
    path, _, ws = _site(tmp_path)
    res = cli("bench", "serve", "http://127.0.0.1:1", *[a.format(f=path) for a in args])
    assert res.code == 64 and words in res.output, res.output
    assert not (ws / "runs").exists()


def test_bench_serve_file_with_several_deployments_needs_one_named(tmp_path):
    path, _, _ = _site(tmp_path, second=True)
    res = cli("bench", "serve", "http://127.0.0.1:1", "--file", path)
    assert res.code == 64 and "choose one with --deployment NAME" in res.output and "chat, code" in res.output
