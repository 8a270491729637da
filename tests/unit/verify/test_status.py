"""`factoryctl status`: sinfo/squeue parsing from recorded output, readiness against a fake
OpenAI server on 127.0.0.1, the JSON shape, a never-applied site, an unreachable host (a fake
Remote stands in for SSH: no host is contacted)."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from factoryctl.cli import run
from factoryctl.session import check
from factoryctl.verify import status as st
from factoryctl.workspace import Workspace

REFERENCE = Path(__file__).resolve().parents[3] / "examples" / "reference" / "factory.yaml"
MODEL = "meta-llama/Llama-3.1-70B-Instruct"

# Recorded from Slurm 22.05 (Debian 12), `sinfo -h -o "%P|%a|%D|%t|%N"`: one row per
# partition and node state, the default partition marked with *.
SINFO = """gpu*|up|3|idle|gpu[01-03]
gpu*|up|1|down*|gpu04
debug|up|4|idle|gpu[01-04]
"""
SQUEUE = "4711_1|RUNNING|gpu[02-03]\n4711_2|PENDING|\n"


def test_parse_sinfo_reads_partitions_default_and_states():
    rows = st.parse_sinfo(SINFO)
    assert [(p.name, p.default, p.available, p.nodes, p.state, p.nodelist) for p in rows] == [
        ("gpu", True, "up", 3, "idle", "gpu[01-03]"), ("gpu", True, "up", 1, "down*", "gpu04"),
        ("debug", False, "up", 4, "idle", "gpu[01-04]")]


def test_parse_sinfo_refuses_another_format():
    with pytest.raises(ValueError, match="sinfo line 1"):
        st.parse_sinfo("gpu* up 3 idle gpu[01-03]\n")


def test_parse_squeue_and_first_node_of_a_hostlist():
    assert st.parse_squeue(SQUEUE) == [("4711_1", "RUNNING", "gpu[02-03]"), ("4711_2", "PENDING", "")]
    assert st.first_node("gpu[02-03],head01") == "gpu02"
    assert st.first_node("node[7,9]") == "node7"
    assert st.first_node("head01") == "head01" and st.first_node("") is None
    with pytest.raises(ValueError, match="squeue line 1"):
        st.parse_squeue("4711 RUNNING gpu02\n")


class FakeOpenAI(BaseHTTPRequestHandler):
    """An engine's /v1/models and, on the same port, Prometheus' /-/ready (503 while it
    replays its write-ahead log, as Prometheus answers)."""
    models: list[str] = []
    prometheus_ready = True

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/-/ready":
            ok = self.prometheus_ready
            body = "Prometheus Server is Ready.\n" if ok else "Service Unavailable"
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(body.encode())
            return
        body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
        code = 200 if self.path == "/v1/models" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_readiness_needs_the_model_listed(server):
    url = f"http://127.0.0.1:{server.server_address[1]}"
    FakeOpenAI.models = [MODEL]
    assert st.probe_models(url, MODEL) == (True, f"serves {MODEL}")
    FakeOpenAI.models = ["other"]
    ok, why = st.probe_models(url, MODEL)
    assert not ok and "lists other" in why
    assert st.models_listed("<html>", MODEL)[0] is False


def test_readiness_of_a_closed_port_says_why(server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    ok, why = st.probe_models(f"http://127.0.0.1:{port}", MODEL, timeout=2)
    assert not ok and "refused" in why.lower()


# --- the whole stage, through the CLI, with a fake Remote ----------------------------------

def _site(tmp_path: Path, monitoring: bool = False) -> Path:
    doc = yaml.safe_load(REFERENCE.read_text())
    doc["inference"][0]["platform"] = "slurm"
    if monitoring:  # head01..03 run Prometheus; status reads the first
        doc["nodes"][0]["roles"].append("monitoring")
    path = tmp_path / "factory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _apply(path: Path) -> None:
    ws = Workspace.find(path, check(path).factory.metadata.name)
    ws.root.mkdir(parents=True)
    ws.applied_path.write_text(json.dumps({"factory_hash": "x", "manifest": {}}))


class FakeRemote:
    down: set[str] = set()
    sinfo = SINFO
    squeue = SQUEUE

    def __init__(self, checked, ws):
        self.lab = None
        self.hosts = {h.name: {"ansible_host": "127.0.0.1"} for h in checked.site.hosts}

    def run(self, host, argv, input=None, timeout=60):
        if host in self.down:
            return subprocess.CompletedProcess(argv, 255, "", f"ssh: connect to host {host} port 22: "
                                               "Connection timed out")
        out = {"true": "", "sinfo": self.sinfo, "squeue": self.squeue}[argv[0]]
        return subprocess.CompletedProcess(argv, 0, out, "")


@pytest.fixture
def fake(monkeypatch, server):
    monkeypatch.setattr(st, "Remote", FakeRemote)
    monkeypatch.setattr(st, "INFERENCE_PORT", server.server_address[1])
    monkeypatch.setattr(st, "PROMETHEUS_PORT", server.server_address[1])
    FakeRemote.down = set()
    FakeOpenAI.models = [MODEL]
    FakeOpenAI.prometheus_ready = True
    return server


class Result:
    def __init__(self, capsys, args):
        self.exit_code = run(list(args))
        cap = capsys.readouterr()
        self.stdout, self.stderr = cap.out, cap.err


@pytest.fixture
def fctl(capsys):
    return lambda *args: Result(capsys, args)


def test_everything_up_and_ready_is_exit_0_with_the_json_shape(tmp_path, fake, fctl):
    path = _site(tmp_path)
    _apply(path)
    r = fctl("status", str(path), "--format", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0, r.stdout
    assert doc["schema"] == "factoryctl.status/v1" and doc["ok"] is True
    assert set(doc) >= {"hosts", "slurm", "endpoints", "prometheus"}
    assert len(doc["hosts"]) == 7 and all(h["up"] for h in doc["hosts"])
    assert doc["slurm"]["controller"] == "head01" and doc["slurm"]["ok"]
    assert [p["name"] for p in doc["slurm"]["partitions"]] == ["gpu", "gpu", "debug"]
    port = fake.server_address[1]
    assert doc["endpoints"] == [{
        "name": "chat", "engine": "vllm", "model": MODEL, "platform": "slurm", "job": "inference-chat",
        "job_id": "4711_1", "node": "gpu02", "url": f"http://127.0.0.1:{port}", "ready": True,
        "reason": f"serves {MODEL}"}]
    assert doc["prometheus"] is None


def test_an_unreachable_host_is_down_with_its_reason_and_exit_1(tmp_path, fake, fctl):
    path = _site(tmp_path)
    _apply(path)
    FakeRemote.down = {"gpu04"}
    r = fctl("status", str(path))
    assert r.exit_code == 1
    assert "gpu04" in r.stdout and "DOWN" in r.stdout and "Connection timed out" in r.stdout
    assert "not up or not ready: gpu04" in r.stdout
    doc = json.loads(fctl("status", str(path), "--format", "json").stdout)
    gpu04 = next(h for h in doc["hosts"] if h["name"] == "gpu04")
    assert gpu04 == {"name": "gpu04", "up": False, "reason": "exit 255: ssh: connect to host gpu04 port 22: "
                     "Connection timed out"}


def test_a_job_not_running_and_a_model_not_served_are_not_ready(tmp_path, fake, fctl):
    path = _site(tmp_path)
    _apply(path)
    FakeRemote.squeue = "4711_1|PENDING|\n"
    try:
        doc = json.loads(fctl("status", str(path), "--format", "json").stdout)
        assert doc["endpoints"][0]["ready"] is False and doc["endpoints"][0]["reason"] == "job inference-chat is pending"
        FakeRemote.squeue = SQUEUE
        FakeOpenAI.models = ["tiny"]
        r = fctl("status", str(path), "--format", "json")
        assert r.exit_code == 1 and "lists tiny, not" in json.loads(r.stdout)["endpoints"][0]["reason"]
    finally:
        FakeRemote.squeue = SQUEUE


def test_prometheus_is_reported_with_its_url_where_monitoring_is_deployed(tmp_path, fake, fctl):
    path = _site(tmp_path, monitoring=True)
    _apply(path)
    port = fake.server_address[1]
    r = fctl("status", str(path), "--format", "json")
    assert r.exit_code == 0, r.stdout
    assert json.loads(r.stdout)["prometheus"] == {"host": "head01", "url": f"http://127.0.0.1:{port}",
                                                 "ready": True, "reason": "ready"}
    text = fctl("status", str(path))
    assert f"Prometheus on head01: http://127.0.0.1:{port} ready" in text.stdout


def test_prometheus_not_ready_or_its_host_down_fails_status(tmp_path, fake, fctl):
    path = _site(tmp_path, monitoring=True)
    _apply(path)
    FakeOpenAI.prometheus_ready = False
    r = fctl("status", str(path), "--format", "json")
    prom = json.loads(r.stdout)["prometheus"]
    assert r.exit_code == 1 and prom["ready"] is False and "/-/ready: HTTP 503" in prom["reason"]
    assert "not up or not ready: prometheus" in fctl("status", str(path)).stdout
    FakeOpenAI.prometheus_ready = True
    FakeRemote.down = {"head01"}
    prom = json.loads(fctl("status", str(path), "--format", "json").stdout)["prometheus"]
    assert prom["ready"] is False and prom["reason"] == "host head01 is down"


def test_a_missing_partition_fails_slurm(tmp_path, fake, fctl):
    path = _site(tmp_path)
    _apply(path)
    FakeRemote.sinfo = "gpu*|up|4|idle|gpu[01-04]\n"
    try:
        r = fctl("status", str(path), "--format", "json")
        assert r.exit_code == 1 and json.loads(r.stdout)["slurm"]["reason"] == "partition(s) missing: debug"
    finally:
        FakeRemote.sinfo = SINFO


def test_a_never_applied_site_says_run_up_and_creates_nothing(tmp_path, fake, fctl):
    path = _site(tmp_path)
    r = fctl("status", str(path))
    assert r.exit_code == 1
    assert f"not applied yet: run factoryctl up {path}" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr and not (tmp_path / ".factory").exists()


def test_usage_error_is_64(tmp_path, fctl):
    assert fctl("status", str(tmp_path / "factory.yaml"), "--format", "xml").exit_code == 64


def test_a_lab_site_without_its_bridge_is_all_down_and_sends_nothing(tmp_path, fctl, monkeypatch):
    doc = yaml.safe_load((REFERENCE.parent.parent / "lab.yaml").read_text())
    doc["site"]["lab"]["bridge"] = "fctnone9"  # no such link here: every host is down
    path = tmp_path / "factory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    _apply(path)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"sent something: {a}"))
    r = fctl("status", str(path), "--format", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and [h["up"] for h in doc["hosts"]] == [False, False, False]
    assert "bridge fctnone9 does not exist" in doc["hosts"][0]["reason"]
    assert doc["slurm"] == {"controller": None, "ok": False, "reason": "no Slurm controller is up", "partitions": []}
