"""Each probe against a fake host answering commands with recorded outputs: what passes, what
fails and how it says so, and what is skipped for which reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from factoryctl.verify import probes as p


@dataclass
class Res:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass(eq=False)
class FakeHost:
    """Answers a command by the first key it contains; anything else exits 127."""

    answers: dict[str, Res] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def run(self, command: str) -> Res:
        self.seen.append(command)
        for key, res in self.answers.items():
            if key in command:
                return res
        return Res(127, "", "command not found")


H100_PCI = "pci 0x10de 0x030200\n" * 8 + "pci 0x15b3 0x020700\n" * 8 + "pci 0x8086 0x060000\n"
SMI = "".join(f"{i}, NVIDIA H100 80GB HBM3, 570.124.06, 00000000:{i:02X}:00.0\n" for i in range(8))


def gpu_host(**extra: Res) -> FakeHost:
    rdma = "".join(f"rdma mlx5_{i}\n" for i in range(8))
    return FakeHost({"/sys/bus/pci": Res(0, H100_PCI + rdma), "command -v nvidia-smi": Res(0, "/usr/bin/nvidia-smi"),
                     "--query-gpu": Res(0, SMI), **extra})


def judge(host, kind: str, expect: dict, needs: str = "", subject: str = "h1") -> str:
    return p.judge(host, {"host": subject, "check": kind, "kind": kind, "on": "h1", "needs": needs, "expect": expect})


def test_hostname() -> None:
    assert judge(FakeHost({"hostname": Res(0, "gpu01.example.internal\n")}), "hostname", {"name": "gpu01"}) == "gpu01"
    with pytest.raises(p.Fail, match="hostname is 'node9', expected 'gpu01'"):
        judge(FakeHost({"hostname": Res(0, "node9\n")}), "hostname", {"name": "gpu01"})


def test_packages_debian_and_redhat() -> None:
    want = {"debian": ["munge", "slurmd"], "redhat": ["munge", "slurm-slurmd"]}
    deb = FakeHost({"os-release": Res(0, 'ID=debian\nVERSION_ID="12"\n'),
                    "dpkg-query": Res(1, "munge ii \nslurmd un \n", "dpkg-query: no packages found")})
    with pytest.raises(p.Fail, match=r"not installed: slurmd \(1 of 2 present\)"):
        judge(deb, "packages", want)
    ok = FakeHost({"os-release": Res(0, "ID=ubuntu\nID_LIKE=debian\n"), "dpkg-query": Res(0, "munge ii \nslurmd ii \n")})
    assert judge(ok, "packages", want) == "2 installed: munge, slurmd"
    rh = FakeHost({"os-release": Res(0, 'ID="rocky"\nID_LIKE="rhel centos fedora"\n'),
                   "rpm -q": Res(1, "munge\npackage slurm-slurmd is not installed\n")})
    with pytest.raises(p.Fail, match="not installed: slurm-slurmd"):
        judge(rh, "packages", want)
    with pytest.raises(p.Skip, match="package names unknown"):
        judge(FakeHost({"os-release": Res(0, "ID=alpine\n")}), "packages", want)


def test_process_and_port() -> None:
    host = FakeHost({"pgrep -x munged": Res(0, "657\n"), "pgrep -x mariadbd": Res(1, ""),
                     "pgrep -x mysqld": Res(0, "900\n"),
                     "/proc/net/tcp": Res(0, "  sl  local_address rem_address   st\n"
                                             "   0: 00000000:1AA1 00000000:0000 0A 0\n"      # 6817 LISTEN
                                             "   1: 0B4E000A:0016 0C4E000A:A1B2 01 0\n"      # 22 ESTABLISHED
                                             "   0: 00000000000000000000000000000000:0016 000:0 0A\n")})
    assert judge(host, "process", {"service": "munge", "processes": ["munged"]}) == "munged running (pid 657)"
    assert "mysqld running" in judge(host, "process", {"service": "mariadb", "processes": ["mariadbd", "mysqld"]})
    with pytest.raises(p.Fail, match="slurmd not running"):
        judge(host, "process", {"service": "slurmd", "processes": ["slurmd"]})
    assert p.listening_ports(host.answers["/proc/net/tcp"].stdout) == {6817, 22}
    assert judge(host, "port", {"port": 6817, "daemon": "slurmctld"}) == "TCP 6817 listening (slurmctld)"
    with pytest.raises(p.Fail, match="nothing listens on TCP port 6818 \\(slurmd\\)"):
        judge(host, "port", {"port": 6818, "daemon": "slurmd"})


def test_mounts() -> None:
    text = ("overlay / overlay rw 0 0\n10.20.0.200@tcp:/scratch /lustre lustre rw 0 0\n"
            "10.20.0.210:/export/home /home nfs4 rw 0 0\n/dev/sdb1 /data\\040dir ext4 rw 0 0\n")
    host = FakeHost({"/proc/self/mounts": Res(0, text)})
    assert p.mounts(text)["/data dir"] == ("ext4", "/dev/sdb1")
    exp = {"path": "/home", "fstypes": ["nfs", "nfs4"], "storage": "home", "type": "nfs"}
    assert judge(host, "mount", exp) == "/home: nfs4 from 10.20.0.210:/export/home"
    with pytest.raises(p.Fail, match="/scratch is not mounted"):
        judge(host, "mount", exp | {"path": "/scratch"})
    with pytest.raises(p.Fail, match="/data dir is ext4 from /dev/sdb1, expected lustre"):
        judge(host, "mount", {"path": "/data dir", "fstypes": ["lustre"], "storage": "x", "type": "lustre"})


def test_kernel_modules_loaded_or_builtin() -> None:
    text = "nvidia 100 0 - Live 0x0\nnvidia_uvm 10 0 - Live 0x0\n---\nkernel/fs/nfs/nfs.ko\n"
    host = gpu_host(**{"/proc/modules": Res(0, text)})
    assert judge(host, "modules", {"modules": ["nvidia", "nvidia_uvm"]}, needs="nvidia-gpu")
    assert judge(host, "modules", {"modules": ["nfs"]})
    with pytest.raises(p.Fail, match="not loaded: lustre"):
        judge(host, "modules", {"modules": ["nfs", "lustre"]})


def test_gpu_checks_pass_on_a_healthy_h100_node() -> None:
    host = gpu_host()
    assert judge(host, "gpu_count", {"count": 8}, needs="nvidia-gpu") == "8 of 8"
    assert "= H100-SXM-80GB" in judge(host, "gpu_model", {"model": "H100-SXM-80GB"}, needs="nvidia-gpu")
    assert judge(host, "gpu_driver", {"branch": "570"}, needs="nvidia-gpu") == "driver 570.124.06 (branch 570)"
    assert sum("--query-gpu" in c for c in host.seen) == 1  # one nvidia-smi query per host


def test_gpu_checks_fail_on_what_differs() -> None:
    seven = gpu_host(**{"--query-gpu": Res(0, "".join(SMI.splitlines(True)[:7]))})
    with pytest.raises(p.Fail, match="7 GPU\\(s\\) visible to nvidia-smi, 8 declared"):
        judge(seven, "gpu_count", {"count": 8}, needs="nvidia-gpu")
    with pytest.raises(p.Fail, match="declared B200"):
        judge(gpu_host(), "gpu_model", {"model": "B200"}, needs="nvidia-gpu")
    with pytest.raises(p.Fail, match="expected the 580 branch"):
        judge(gpu_host(), "gpu_driver", {"branch": "580"}, needs="nvidia-gpu")
    mixed = gpu_host(**{"--query-gpu": Res(0, SMI.replace("570.124.06", "565.57.01", 1))})
    with pytest.raises(p.Fail, match="different drivers"):
        judge(mixed, "gpu_driver", {"branch": ""}, needs="nvidia-gpu")


def test_gpu_checks_skip_without_gpu_and_fail_without_driver() -> None:
    with pytest.raises(p.Skip, match="^no GPU declared$"):
        judge(FakeHost(), "gpu_count", {"count": 0})
    lab = FakeHost({"/sys/bus/pci": Res(0, "pci 0x1af4 0x010000\n")})  # no NVIDIA device, no nvidia-smi
    with pytest.raises(p.Skip, match="no NVIDIA GPU on the PCI bus .*; nvidia-smi absent"):
        judge(lab, "gpu_count", {"count": 2}, needs="nvidia-gpu")
    no_driver = FakeHost({"/sys/bus/pci": Res(0, H100_PCI)})
    with pytest.raises(p.Fail, match="nvidia-smi absent although 8 NVIDIA GPU"):
        judge(no_driver, "gpu_count", {"count": 8}, needs="nvidia-gpu")


NVLINK = "".join(f"GPU {g}: NVIDIA H100 80GB HBM3 (UUID: GPU-{g})\n"
                 + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(18)) for g in range(8))


def test_nvlink() -> None:
    assert p.parse_nvlink(NVLINK)[3] == {"gbps": [26.562] * 18, "inactive": 0}
    host = gpu_host(**{"nvlink -s": Res(0, NVLINK)})
    assert judge(host, "nvlink", {"gpus": 8, "gbps_per_gpu": 450}, needs="nvidia-gpu") == \
        "8 GPUs, 144 links up, >= 450 GB/s each GPU"
    broken = NVLINK.replace("\t Link 5: 26.562 GB/s\n", "\t Link 5: <inactive>\n", 1)
    with pytest.raises(p.Fail, match="GPU 0: 17 links up, 1 inactive"):
        judge(gpu_host(**{"nvlink -s": Res(0, broken)}), "nvlink", {"gpus": 8, "gbps_per_gpu": 450}, needs="nvidia-gpu")


def _ib(rate: str = "400 Gb/sec (4X NDR)", state: str = "4: ACTIVE", n: int = 8) -> str:
    return "".join(f"/sys/class/infiniband/mlx5_{i}/ports/1|{state}|{rate}|InfiniBand\n" for i in range(n))


def test_fabric_ports_and_rdma_devices() -> None:
    exp = {"fabric": "compute", "type": "infiniband", "ports": 8, "gbps": 400}
    assert judge(gpu_host(**{"/ports/*": Res(0, _ib())}), "fabric_ports", exp, needs="rdma") == \
        "8 compute ports up at >= 400 Gb/s (8 declared)"
    slow = _ib().replace("400 Gb/sec (4X NDR)", "200 Gb/sec (4X HDR)", 1)
    with pytest.raises(p.Fail, match="7 of 8 compute ports up at 400 Gb/s; others: mlx5_0/1 up 200G"):
        judge(gpu_host(**{"/ports/*": Res(0, slow)}), "fabric_ports", exp, needs="rdma")
    down = _ib().replace("4: ACTIVE", "1: DOWN", 1)
    with pytest.raises(p.Fail, match="others: mlx5_0/1 down 400G"):
        judge(gpu_host(**{"/ports/*": Res(0, down)}), "fabric_ports", exp, needs="rdma")
    with pytest.raises(p.Skip, match="no RDMA device"):
        judge(FakeHost({"/sys/bus/pci": Res(0, "")}), "fabric_ports", exp, needs="rdma")
    assert judge(gpu_host(), "rdma_devices", {"min": 8}, needs="rdma") == "8 RDMA devices (>= 8)"
    with pytest.raises(p.Fail, match="8 RDMA device\\(s\\) .* 9 expected"):
        judge(gpu_host(), "rdma_devices", {"min": 9}, needs="rdma")
    eth = {"fabric": "storage", "type": "ethernet", "ports": 1, "gbps": 400}
    assert judge(FakeHost({"/sys/class/net": Res(0, "ens1f0|up|400000\neno1|up|1000\n")}), "fabric_ports", eth)
    with pytest.raises(p.Skip, match="no physical network interface"):
        judge(FakeHost({"/sys/class/net": Res(0, "")}), "fabric_ports", eth)


SINFO = ("batch*|up\ndebug|up\nempty|down\n---\n"
         "node01|batch*|idle\nnode01|debug|idle\nnode02|batch*|idle*\nnode02|debug|idle*\n"
         "node03|batch*|drained\n")


def test_slurm_partitions_and_nodes() -> None:
    host = FakeHost({"command -v sinfo": Res(0, "/usr/bin/sinfo"), "sinfo -h": Res(0, SINFO)})
    info = p.parse_sinfo(SINFO)
    assert info["partitions"]["batch"] == {"up": True, "default": True, "nodes": {"node01", "node02", "node03"}}
    assert info["nodes"]["node02"]["state"] == "idle*"
    ok = {"partition": "debug", "nodes": ["node01", "node02"], "default": False}
    assert judge(host, "slurm_partition", ok) == "partition debug up with 2 nodes"
    with pytest.raises(p.Fail, match="partition batch: missing nodes node04; extra nodes node03"):
        judge(host, "slurm_partition", {"partition": "batch", "nodes": ["node01", "node02", "node04"], "default": True})
    with pytest.raises(p.Fail, match="partition empty: not up; not the default partition, declared default"):
        judge(host, "slurm_partition", {"partition": "empty", "nodes": [], "default": True})
    with pytest.raises(p.Fail, match="partition gpu does not exist"):
        judge(host, "slurm_partition", {"partition": "gpu", "nodes": [], "default": False})
    assert judge(host, "slurm_node", {"partitions": ["batch", "debug"]}, subject="node01") == "idle in batch, debug"
    with pytest.raises(p.Fail, match=r"node02: not responding \(idle\*\)"):
        judge(host, "slurm_node", {"partitions": ["batch"]}, subject="node02")
    with pytest.raises(p.Fail, match="node03: state drained; not in partition\\(s\\) debug"):
        judge(host, "slurm_node", {"partitions": ["batch", "debug"]}, subject="node03")
    with pytest.raises(p.Fail, match="node09 is not a Slurm node"):
        judge(host, "slurm_node", {"partitions": []}, subject="node09")
    assert sum("sinfo -h" in c for c in host.seen) == 1
    broken = FakeHost({"command -v sinfo": Res(0), "sinfo -h": Res(1, "", "sinfo: error: x\nsinfo: fatal: no controller\n")})
    with pytest.raises(p.Fail, match="sinfo failed \\(exit 1\\): sinfo: fatal: no controller"):
        judge(broken, "slurm_partition", ok)


def _nodes(*items) -> str:
    return json.dumps({"items": [{"metadata": {"name": n}, "status": {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "allocatable": {"nvidia.com/gpu": str(g)} if g is not None else {}}} for n, ready, g in items]})


def test_kubernetes_nodes() -> None:
    host = FakeHost({"command -v kubectl": Res(0), "get nodes": Res(0, _nodes(("head01", True, None),
                                                                              ("gpu01", True, 8), ("gpu02", False, 4)))})
    assert judge(host, "kube_node", {"gpus": 8, "control_plane": False}, subject="gpu01") == "Ready, nvidia.com/gpu 8"
    assert judge(host, "kube_node", {"gpus": 0, "control_plane": True}, subject="head01") == "Ready"
    with pytest.raises(p.Fail, match="gpu02: not Ready; allocatable nvidia.com/gpu 4, 8 declared"):
        judge(host, "kube_node", {"gpus": 8, "control_plane": False}, subject="gpu02")
    with pytest.raises(p.Skip, match="kubectl absent"):
        judge(FakeHost(), "kube_node", {"gpus": 0, "control_plane": True}, subject="head01")


def test_inference_endpoints() -> None:
    exp = {"name": "chat", "platform": "kubernetes", "model": "m", "engine": "vllm", "namespace": "inference",
           "service": "chat", "port": 8000, "job": "inference-chat"}
    with pytest.raises(p.Skip, match="kubectl absent"):
        judge(FakeHost(), "inference", exp)
    # Declared but not deployed: a failure that names the deployment, no longer a skip.
    with pytest.raises(p.Fail, match="deployment chat is declared but not deployed: no service inference/chat"):
        judge(FakeHost({"command -v kubectl": Res(0), "get service": Res(1, "", "NotFound")}), "inference", exp)
    up = {"command -v kubectl": Res(0), "get service": Res(0, "10.96.0.40"),
          "python3 -c": Res(0, json.dumps({"models": ["meta-llama/Llama-3.1-70B-Instruct"], "text": " Paris."}))}
    assert judge(FakeHost(up), "inference", exp) == \
        "http://10.96.0.40:8000: meta-llama/Llama-3.1-70B-Instruct; completion 'Paris.'"
    down = up | {"python3 -c": Res(0, json.dumps({"error": "URLError: refused"}))}
    with pytest.raises(p.Fail, match="http://10.96.0.40:8000: URLError: refused"):
        judge(FakeHost(down), "inference", exp)
    slurm = exp | {"platform": "slurm"}
    with pytest.raises(p.Fail, match="deployment chat is declared but not running: no Slurm job inference-chat"):
        judge(FakeHost({"command -v squeue": Res(0), "squeue": Res(0, "")}), "inference", slurm)
    pending = {"command -v squeue": Res(0), "-t RUNNING": Res(0, ""), "%T %r": Res(0, "PENDING Resources\n")}
    with pytest.raises(p.Fail, match="job inference-chat is pending resources"):
        judge(FakeHost(pending), "inference", slurm)
    # The endpoint the batch script wrote into the job's comment; the node where it wrote none.
    ok = {"command -v squeue": Res(0), "squeue": Res(0, "factoryctl-endpoint=http://gpu03:8000|gpu03\n"),
          "python3 -c": up["python3 -c"]}
    assert judge(FakeHost(ok), "inference", slurm).startswith("http://gpu03:8000:")
    assert p.parse_endpoints("(null)|gpu[04-05]\nfactoryctl-endpoint=http://gpu07:8000/|gpu07\n", 8000) == \
        ["http://gpu04:8000", "http://gpu07:8000"]


def test_http_probe_is_valid_python() -> None:
    compile(p.HTTP_PROBE, "<probe>", "exec")


# --- Prometheus targets ------------------------------------------------------------------------

TARGETS = json.dumps({"status": "success", "data": {"activeTargets": [
    {"labels": {"job": "node", "instance": "gpu01"}, "scrapeUrl": "http://10.0.0.21:9100/metrics",
     "health": "up", "lastError": ""},
    {"labels": {"job": "node", "instance": "gpu02"}, "scrapeUrl": "http://10.0.0.22:9100/metrics",
     "health": "down", "lastError": 'Get "http://10.0.0.22:9100/metrics": dial tcp 10.0.0.22:9100: connect: connection refused'},
], "droppedTargets": []}})


def test_prometheus_target_up_down_and_missing() -> None:
    mon = FakeHost({"api/v1/targets": Res(0, TARGETS)})
    expect = {"job": "node", "server_port": 9090}
    assert judge(mon, "prometheus_target", expect, subject="gpu01") == "node target http://10.0.0.21:9100/metrics up"
    with pytest.raises(p.Fail, match="node on gpu02 is down: .*connection refused"):
        judge(mon, "prometheus_target", expect, subject="gpu02")
    with pytest.raises(p.Fail, match="does not scrape gpu03 in job node"):
        judge(mon, "prometheus_target", expect, subject="gpu03")
    assert sum("api/v1/targets" in c for c in mon.seen) == 1  # one query per host and run


def test_prometheus_not_answering() -> None:
    mon = FakeHost({"api/v1/targets": Res(1, "", "urllib.error.URLError: <urlopen error [Errno 111] Connection refused>")})
    with pytest.raises(p.Fail, match="Prometheus on port 9090 does not answer: .*Connection refused"):
        judge(mon, "prometheus_target", {"job": "node", "server_port": 9090}, subject="gpu01")


def test_prometheus_target_checks_are_generated_from_the_model(tmp_path) -> None:
    from factoryctl.render.hostchecks import build
    from tests.helpers import check_doc, reference_doc

    doc = reference_doc()
    doc["nodes"][0]["roles"] = [*doc["nodes"][0]["roles"], "monitoring"]
    site = check_doc(doc, tmp_path).site
    checks = [c for c in build(site)["checks"] if c["kind"] == "prometheus_target"]
    mon = site.hosts[0].name
    assert {c["on"] for c in checks} == {mon}
    assert {c["host"] for c in checks if c["check"] == "prometheus-target:node"} == {h.name for h in site.hosts}
    assert {c["host"] for c in checks if c["check"] == "prometheus-target:dcgm"} == {h.name for h in site.hosts if h.gpus}
    doc["nodes"][0]["roles"].remove("monitoring")
    assert not [c for c in build(check_doc(doc, tmp_path).site)["checks"] if c["kind"] == "prometheus_target"]


# --- health: disk space and time sync ------------------------------------------------------------

DF = ("Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
      "/dev/nvme0n1p2   102400000  99000000   3400000      97% /\n"
      "/dev/nvme1n1     204800000  10240000 194560000       5% /var/spool/slurmd\n")


def test_disk_space_names_the_full_filesystem_its_share_and_the_threshold() -> None:
    expect = {"paths": ["/", "/var/spool/slurmd"], "min_free_fraction": 0.05}
    with pytest.raises(p.Fail) as e:
        judge(FakeHost({"df -P -k": Res(0, DF)}), "disk_space", expect)
    assert str(e.value) == ("/: 3.3% free (3.2 GiB of 97.7 GiB); threshold 5% free "
                            "(verify.thresholds.disk_free_fraction)")
    ok = judge(FakeHost({"df -P -k": Res(0, DF)}), "disk_space", dict(expect, min_free_fraction=0.03))
    assert ok.startswith("/: 3.3% free") and "/var/spool/slurmd: 95.0% free" in ok


def test_disk_space_fails_on_a_missing_path_naming_df_s_complaint() -> None:
    host = FakeHost({"df -P -k": Res(1, "\n".join(DF.splitlines()[:2]) + "\n", "df: /var/spool/slurmd: No such file or directory")})
    with pytest.raises(p.Fail, match="1 of 2 filesystems .*No such file"):
        judge(host, "disk_space", {"paths": ["/", "/var/spool/slurmd"], "min_free_fraction": 0.05})


TRACKING = """Reference ID    : C0A80001 (ntp1.example.internal)
Stratum         : 3
Ref time (UTC)  : Sun Dec 06 03:00:00 2026
System time     : 0.250000000 seconds slow of NTP time
Last offset     : -0.000012 seconds
Leap status     : Normal
"""


def test_time_sync_reads_chronyc_tracking_offset_and_leap_status() -> None:
    host = FakeHost({"command -v chronyc": Res(0, "/usr/bin/chronyc"), "chronyc -n tracking": Res(0, TRACKING)})
    with pytest.raises(p.Fail, match=r"clock -250.0 ms from NTP \(chronyc tracking\), threshold 100 ms"):
        judge(host, "time_sync", {"max_offset_ms": 100})
    host = FakeHost({"command -v chronyc": Res(0, "/usr/bin/chronyc"),
                     "chronyc -n tracking": Res(0, TRACKING.replace("0.250000000", "0.000020000"))})
    assert judge(host, "time_sync", {"max_offset_ms": 100}) == "clock -0.020 ms from NTP (chronyc tracking), threshold 100 ms"
    unsync = FakeHost({"command -v chronyc": Res(0, "/usr/bin/chronyc"),
                       "chronyc -n tracking": Res(0, TRACKING.replace("Normal", "Not synchronised"))})
    with pytest.raises(p.Fail, match="chronyd not synchronised"):
        judge(unsync, "time_sync", {"max_offset_ms": 100})


def test_time_sync_without_chrony_measures_against_the_verifying_clock() -> None:
    ticks = iter([1000.000, 1000.010])  # a 10 ms round trip
    host = FakeHost({"date +%s.%N": Res(0, "1000.505\n")})
    with pytest.raises(p.Fail, match=r"clock \+500.0 ms \(±5.0\) from the verifying machine's, threshold 100 ms"):
        p.time_sync(host, {"max_offset_ms": 100}, clock=lambda: next(ticks))
    ticks = iter([1000.000, 1000.010])
    assert "+1.0 ms (±5.0)" in p.time_sync(FakeHost({"date +%s.%N": Res(0, "1000.006\n")}), {"max_offset_ms": 100},
                                          clock=lambda: next(ticks))
