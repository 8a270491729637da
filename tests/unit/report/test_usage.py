"""usage: sacct parsing on recorded output, Prometheus through a fake HTTP server on
127.0.0.1, metering (tenants, idle, energy, cost) and the reading of an applied site.

The sacct lines are written exactly as Debian bookworm's Slurm 22.05 prints them for
`sacct -X -P -n -a -T --format=JobID,Account,User,Partition,Elapsed,ElapsedRaw,AllocTRES,
CPUTimeRAW,State,Start,End,JobName`: '|'-separated, no header, AllocTRES in TRES-name order,
a running job's End is "Unknown", a cancelled one's State "CANCELLED by 0".
"""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from factoryctl.errors import UsageProblem
from factoryctl.report import usage as U
from tests.helpers import check_doc, reference_doc

SACCT = """\
101|physics|alice|gpu|01:00:00|3600|billing=28,cpu=2,gres/gpu=2,mem=16G,node=1|7200|COMPLETED|2026-12-01T10:00:00|2026-12-01T11:00:00|train
102|physics|root|gpu|00:10:00|600|billing=14,cpu=4,gres/gpu=1,mem=8G,node=1|2400|CANCELLED by 0|2026-12-01T12:00:00|2026-12-01T12:10:00|sweep
103|biology|carol|debug|00:05:00|300|billing=2,cpu=2,mem=4G,node=1|600|COMPLETED|2026-12-01T13:00:00|2026-12-01T13:05:00|prep|data
104|platform|root|gpu|02:00:00|7200|billing=112,cpu=8,gres/gpu=8,mem=64G,node=1|57600|RUNNING|2026-12-01T14:00:00|Unknown|inference-chat
105|root|root|gpu|00:00:10|10|billing=1,cpu=1,mem=1G,node=1|10|FAILED|2026-12-01T15:00:00|2026-12-01T15:00:10|hostname
"""
SINCE = datetime(2026, 12, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 2, tzinfo=UTC)


def _doc(monitoring: bool = True) -> dict:
    doc = reference_doc()
    doc["tenants"] = [{"name": "physics", "gpu_quota": 16}, {"name": "biology", "gpu_quota": 8},
                      {"name": "platform", "gpu_quota": 8, "deployments": ["chat"]}]
    if monitoring:
        doc["nodes"][0]["roles"] = [*doc["nodes"][0]["roles"], "monitoring"]
    return doc


def test_parse_sacct_recorded_output():
    jobs = U.parse_sacct(SACCT)
    assert [j.job_id for j in jobs] == ["101", "102", "103", "104", "105"]
    j = jobs[0]
    assert (j.account, j.user, j.partition, j.elapsed_seconds, j.cpu_seconds, j.gpus, j.billing) == (
        "physics", "alice", "gpu", 3600, 7200, 2, 28)
    assert j.gpu_seconds == 7200
    assert jobs[1].state == "CANCELLED"
    assert jobs[2].gpus == 0 and jobs[2].name == "prep|data"  # the last field keeps its '|'
    assert jobs[3].end == "Unknown" and jobs[3].gpus == 8 and jobs[3].name == "inference-chat"


def test_parse_sacct_typed_gpus_and_bad_lines():
    line = "7|a|u|p|00:01:00|60|billing=4,cpu=1,gres/gpu:h100=4,mem=1G,node=1|60|COMPLETED|x|y|n"
    assert U.parse_sacct(line)[0].gpus == 4
    with pytest.raises(ValueError, match="line 1 has 3 fields"):
        U.parse_sacct("1|2|3")
    with pytest.raises(ValueError, match="ElapsedRaw"):
        U.parse_sacct("7|a|u|p|00:01:00|x|cpu=1|60|COMPLETED|x|y|n")


def test_sacct_argv_is_the_documented_command():
    argv = U.sacct_argv(SINCE, UNTIL)
    assert argv[:7] == ["sacct", "-X", "-P", "-n", "-a", "-T",
                        "--format=JobID,Account,User,Partition,Elapsed,ElapsedRaw,AllocTRES,CPUTimeRAW,State,Start,End,JobName"]
    assert argv[7:] == ["-S", "2026-12-01T00:00:00", "-E", "2026-12-02T00:00:00"]


def test_window_parsing():
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert U.window(None, None, now) == (datetime(2026, 12, 5, 12, tzinfo=UTC), now)
    assert U.window("now-7d", "2026-12-06T10:00:00Z", now)[1] == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert U.window("2026-12-01", "2026-12-01T03:00:00+01:00", now)[1] == datetime(2026, 12, 1, 2, tzinfo=UTC)
    with pytest.raises(UsageProblem, match="not before"):  # 01:00+01:00 is 00:00Z: an empty window
        U.window("2026-12-01", "2026-12-01T01:00:00+01:00", now)
    with pytest.raises(UsageProblem, match="not before") as e:
        U.window("2026-12-02", "2026-12-01", now)
    assert e.value.exit_code == 64
    with pytest.raises(UsageProblem, match="--since 'last week' is not a time"):
        U.window("last week", None, now)


def test_meter_tenants_idle_energy_and_cost(tmp_path):
    site = check_doc(_doc(), tmp_path).site
    jobs = U.parse_sacct(SACCT)
    u = U.meter(site, jobs, {"chat": {"prompt": 1000, "generation": 4000}}, SINCE, UNTIL, 2.0, "USD")
    rows = {r.name: r for r in u.tenants}
    assert list(rows) == ["physics", "biology", "platform", "root", "idle"]
    assert (rows["physics"].jobs, rows["physics"].cpu_seconds, rows["physics"].gpu_seconds) == (2, 9600, 7800)
    assert rows["biology"].gpu_seconds == 0 and rows["biology"].cpu_seconds == 600
    assert rows["platform"].generation_tokens == 4000 and rows["platform"].prompt_tokens == 1000
    # cost = GPU-hours x owned cost per GPU-hour; per 1M generation tokens
    assert rows["platform"].cost == pytest.approx(16 * 2.0)
    assert rows["platform"].cost_per_million_tokens == pytest.approx(32 / 4000 * 1e6)
    # energy from declared power: 10.2 kW per 8-GPU node, PUE 1.25
    assert rows["physics"].energy_kwh == pytest.approx(7800 * 10.2 / 8 * 1.25 / 3600)
    # CPU-only job: power per core of the partition's nodes (2 x 56 cores Xeon-8480C)
    assert rows["biology"].energy_kwh == pytest.approx(600 * 10.2 / 112 * 1.25 / 3600)
    # the rows add up to the bill: 32 GPUs x 24 h x 2.0
    capacity = 32 * 86400
    assert u.capacity_gpu_seconds == capacity
    assert rows["idle"].gpu_seconds == capacity - (7800 + 57600)
    assert sum(r.cost for r in u.tenants) == pytest.approx(u.bill) == pytest.approx(32 * 24 * 2.0)
    # by deployment: the inference job and the tokens go to chat, owned by platform
    chat = next(r for r in u.deployments if r.name == "chat")
    assert (chat.tenant, chat.jobs, chat.gpu_seconds, chat.generation_tokens) == ("platform", 1, 57600, 4000)
    doc = u.to_dict()
    assert doc["schema"] == "factoryctl.usage/v1"
    assert doc["window"] == {"since": "2026-12-01T00:00:00Z", "until": "2026-12-02T00:00:00Z", "seconds": 86400}
    assert set(doc["tenants"][0]) >= {"name", "jobs", "cpu_seconds", "gpu_seconds", "prompt_tokens",
                                       "generation_tokens", "energy_kwh", "cost"}


def test_meter_without_a_price_says_so(tmp_path):
    u = U.meter(check_doc(_doc(), tmp_path).site, U.parse_sacct(SACCT), {}, SINCE, UNTIL, None, "EUR")
    assert all(r.cost is None for r in u.tenants) and u.bill is None
    assert any("cost not computed" in n for n in u.notes)


# --- Prometheus ---------------------------------------------------------------------------


class FakePrometheus:
    """/api/v1/query on 127.0.0.1 answering vLLM's token counters; records the queries.
    `series` are the counters at the window's end, `at_start` at its start (none: absent),
    `resets` the resets() answers (none: no reset)."""

    def __init__(self, series: dict[str, list[tuple[dict, float]]], status: int = 200,
                 at_start: dict[str, list[tuple[dict, float]]] | None = None,
                 resets: dict[str, list[tuple[dict, float]]] | None = None):
        self.queries: list[dict] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                q = parse_qs(urlparse(self.path).query)
                fake.queries.append({k: v[0] for k, v in q.items()})
                kind = "prompt" if "prompt_tokens" in q["query"][0] else "generation"
                query, when = q["query"][0], q.get("time", [""])[0]
                if query.startswith("sum by (deployment, model_name) (resets("):
                    answer = (resets or {}).get(kind, [])
                elif "increase(" not in query and when == f"{SINCE.timestamp():.0f}":
                    answer = (at_start or {}).get(kind, [])
                else:
                    answer = series.get(kind, [])
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": m, "value": [1764979200, str(v)]} for m, v in answer]}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prom():
    servers = []

    def make(series, status=200, **kw):
        servers.append(FakePrometheus(series, status, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_token_counts_by_model_name_and_deployment_label(tmp_path, prom):
    site = check_doc(_doc(), tmp_path).site
    p = prom({"generation": [({"model_name": "meta-llama/Llama-3.1-70B-Instruct"}, 4000.4)],
              "prompt": [({"deployment": "chat", "model_name": "x"}, 1999.6), ({"model_name": "other/model"}, 5.0)]},
             at_start={"prompt": [({"deployment": "chat", "model_name": "x"}, 1000.0)]})
    tokens, notes = U.token_counts(p.url, site, SINCE, UNTIL)
    # the counter at the end minus at the start; a series absent at the start began at 0
    assert tokens == {"chat": {"prompt": 1000, "generation": 4000}}
    assert any("other/model" in n for n in notes)
    asked = [(q["query"], q["time"]) for q in p.queries]
    assert ("sum by (deployment, model_name) (vllm:prompt_tokens_total)", f"{SINCE.timestamp():.0f}") in asked
    assert ("sum by (deployment, model_name) (vllm:prompt_tokens_total)", f"{UNTIL.timestamp():.0f}") in asked
    assert not any("increase(" in q for q, _ in asked)  # no reset: no extrapolation


def test_a_counter_reset_in_the_window_takes_increase(tmp_path, prom):
    site = check_doc(_doc(), tmp_path).site
    gen = {"deployment": "chat", "model_name": "x"}
    p = prom({"generation": [(gen, 300.0)], "prompt": []}, at_start={"generation": [(gen, 5000.0)]},
             resets={"generation": [(gen, 1.0)]})
    tokens, _ = U.token_counts(p.url, site, SINCE, UNTIL)
    assert tokens == {"chat": {"prompt": 0, "generation": 300}}  # the fake's increase() answers 300
    assert any("increase(vllm:generation_tokens_total[86400s])" in q["query"] for q in p.queries)


def test_prometheus_errors_are_clear(prom):
    p = prom({}, status=503)
    with pytest.raises(U.UsageSourceMissing, match="HTTP 503"):
        U.prometheus_query(p.url, "up", UNTIL)
    with pytest.raises(U.UsageSourceMissing, match="does not answer"):
        U.prometheus_query("http://127.0.0.1:9", "up", UNTIL, timeout=2)


# --- an applied site -------------------------------------------------------------------------


class FakeRemote:
    def __init__(self, stdout: str, rc: int = 0):
        self.stdout, self.rc, self.calls = stdout, rc, []
        self.lab = None
        self.hosts = {}

    def run(self, host, argv, timeout=60):
        self.calls.append((host, argv))
        return subprocess.CompletedProcess(argv, self.rc, self.stdout, "sacct: error: Problem talking to the database")


class FakeWorkspace:
    def __init__(self, root, applied=True):
        self.root = root
        self._applied = applied

    def applied(self):
        return {"factory_hash": "x"} if self._applied else None


def test_collect_reads_sacct_and_prometheus(tmp_path, prom, monkeypatch):
    c = check_doc(_doc(), tmp_path)
    p = prom({"generation": [({"model_name": "meta-llama/Llama-3.1-70B-Instruct"}, 4000)]})
    remote = FakeRemote(SACCT)
    monkeypatch.setattr("factoryctl.engines.ssh.Remote", lambda checked, ws: remote)
    monkeypatch.setattr("factoryctl.verify.status.PROMETHEUS_PORT", int(p.url.rsplit(":", 1)[1]))
    monkeypatch.setattr("factoryctl.verify.status._address", lambda checked, remote, host: "127.0.0.1")
    u = U.collect(c, FakeWorkspace(tmp_path), SINCE, UNTIL)
    host, argv = remote.calls[0]
    assert host == c.site.hosts[0].name and argv == U.sacct_argv(SINCE, UNTIL)
    rows = {r.name: r for r in u.tenants}
    assert rows["physics"].cpu_seconds == 7200 + 2400  # what sacct itself reports
    assert rows["platform"].generation_tokens == 4000
    assert u.sources["prometheus"] == p.url


def test_collect_says_what_is_missing(tmp_path):
    c = check_doc(_doc(monitoring=False), tmp_path)
    with pytest.raises(U.UsageSourceMissing, match="Prometheus: give a node group the monitoring role"):
        U.collect(c, FakeWorkspace(tmp_path), SINCE, UNTIL)
    doc = _doc()
    doc["slurm"]["accounting"] = False
    with pytest.raises(U.UsageSourceMissing, match="Slurm accounting"):
        U.collect(check_doc(doc, tmp_path), FakeWorkspace(tmp_path), SINCE, UNTIL)
    with pytest.raises(U.UsageSourceMissing, match="never applied"):
        U.collect(check_doc(_doc(), tmp_path), FakeWorkspace(tmp_path, applied=False), SINCE, UNTIL)


def test_collect_sacct_failure(tmp_path, monkeypatch):
    c = check_doc(_doc(), tmp_path)
    monkeypatch.setattr("factoryctl.engines.ssh.Remote", lambda checked, ws: FakeRemote("", rc=1))
    with pytest.raises(U.UsageSourceMissing, match="sacct on .* failed .*Problem talking to the database"):
        U.collect(c, FakeWorkspace(tmp_path), SINCE, UNTIL)


# --- the report and inspect -------------------------------------------------------------------


def test_report_shows_quotas_and_the_latest_usage(tmp_path):
    from factoryctl.report.html import render

    c = check_doc(_doc(), tmp_path)
    ws = tmp_path / "ws"
    text = render(c, ws)
    assert 'id="tenants"' in text and "GPU quotas against capacity" in text
    assert "<h3>Usage" not in text  # no usage record yet
    u = U.meter(c.site, U.parse_sacct(SACCT), {"chat": {"prompt": 10, "generation": 4000}}, SINCE, UNTIL, 2.0, "USD")
    (ws / "runs" / "20261202T000000Z").mkdir(parents=True)
    U.write_usage_run(u, ws / "runs" / "20261202T000000Z")
    text = render(c, ws)
    assert "Usage 2026-12-01T00:00:00Z to 2026-12-02T00:00:00Z (USD)" in text
    assert "<svg" in text.split('id="tenants"')[1].split("</section>")[0]  # the per-tenant chart
    assert "<td>physics</td>" in text and "<td>idle</td>" in text


def test_inspect_shows_quotas_against_capacity(tmp_path):
    from tests.helpers import cli, write_doc

    doc = _doc()
    doc["tenants"][0]["gpu_quota"] = {"H100-SXM-80GB": 30}
    doc["tenancy"] = {"oversubscription": True}
    path = write_doc(doc, tmp_path / "factory.yaml")
    r = cli("inspect", path, "--format", "json")
    quotas = {q["gpu_type"]: q for q in json.loads(r.out)["quotas"]}
    assert quotas["H100-SXM-80GB"] == {"gpu_type": "H100-SXM-80GB", "capacity": 32, "quota": 30,
                                       "tenants": {"physics": 30}, "over": False}
    assert quotas["*"]["quota"] == 46 and quotas["*"]["over"] is True
    r = cli("inspect", path)
    assert "Tenant GPU quotas against capacity" in r.out and "over (oversubscription declared)" in r.out
