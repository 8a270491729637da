"""Host checks generated from the model: what each blueprint expects where."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from factoryctl.blueprints import all_blueprints
from factoryctl.render import render
from factoryctl.render.hostchecks import SCHEMA, build
from factoryctl.session import check
from factoryctl.verify.probes import PROBES

ROOT = Path(__file__).resolve().parents[3]
PILOT = ROOT / "blueprints" / "enterprise-pilot-h100-4n" / "factory.yaml"
LAB = ROOT / "examples" / "lab.yaml"


def _checks(path: Path) -> list[dict]:
    c = check(path)
    assert c.site is not None
    return build(c.site)["checks"]


def _by(checks: list[dict]) -> dict[tuple[str, str], dict]:
    return {(c["host"], c["check"]): c for c in checks}


def test_pilot_expects_eight_h100_on_each_gpu_node() -> None:
    by = _by(_checks(PILOT))
    for n in ("gpu01", "gpu02", "gpu03", "gpu04"):
        assert by[(n, "gpu-count")]["expect"] == {"count": 8}
        assert by[(n, "gpu-model")]["expect"] == {"model": "H100-SXM-80GB"}
        assert by[(n, "gpu-driver")]["expect"] == {"branch": "570"}  # roles/nvidia_driver defaults
        assert by[(n, "nvlink")]["expect"] == {"gpus": 8, "gbps_per_gpu": 450.0}
        assert all(by[(n, k)]["needs"] == "nvidia-gpu" for k in ("gpu-count", "gpu-model", "nvlink"))
        assert by[(n, "fabric-ports:compute")]["expect"] == {"fabric": "compute", "type": "infiniband",
                                                             "ports": 8, "gbps": 400}
        assert by[(n, "rdma-devices")]["expect"] == {"min": 8}
        assert by[(n, "service:slurmd")]["expect"]["processes"] == ["slurmd"]
        assert by[(n, "port:6818")]["expect"]["daemon"] == "slurmd"
        assert by[(n, "slurm-node")]["on"] == "head01"
        assert by[(n, "slurm-node")]["expect"] == {"partitions": ["debug", "gpu"]}
        assert by[(n, "kube-node")]["expect"] == {"gpus": 8, "control_plane": False}
        assert (n, "service:slurmctld") not in by
    for h in ("head01", "head02", "head03"):
        assert by[(h, "gpu-count")]["expect"] == {"count": 0}  # skipped on the host: no GPU declared
        assert (h, "gpu-model") not in by
    for h in ("gpu01", "head01"):
        assert by[(h, "mount:/lustre")]["expect"]["fstypes"] == ["lustre"]
        assert by[(h, "mount:/home")]["expect"]["fstypes"] == ["nfs", "nfs4"]


def test_pilot_runs_slurmctld_on_the_three_heads_and_slurmdbd_on_two() -> None:
    checks = _checks(PILOT)
    where = {k: sorted(c["host"] for c in checks if c["check"] == k)
             for k in ("service:slurmctld", "port:6817", "service:slurmdbd", "service:mariadb",
                       "service:munge", "port:6443", "service:kubelet")}
    assert where["service:slurmctld"] == where["port:6817"] == ["head01", "head02", "head03"]
    assert where["service:slurmdbd"] == ["head01", "head02"]  # DbdHost and DbdBackupHost
    assert where["service:mariadb"] == ["head01"]
    assert len(where["service:munge"]) == 7
    assert where["port:6443"] == ["head01", "head02", "head03"]
    assert len(where["service:kubelet"]) == 7
    by = _by(checks)
    assert by[("head01", "slurm-partition:gpu")]["expect"] == {
        "partition": "gpu", "nodes": ["gpu01", "gpu02", "gpu03", "gpu04"], "default": True}
    assert by[("head01", "slurm-partition:debug")]["expect"]["default"] is False
    assert by[("head01", "inference:chat")]["expect"]["platform"] == "kubernetes"
    pkgs = by[("head01", "packages")]["expect"]
    assert {"slurmctld", "slurmdbd", "mariadb-server", "munge", "kubelet", "nfs-common"} <= set(pkgs["debian"])
    assert {"slurm-slurmctld", "nfs-utils"} <= set(pkgs["redhat"])


def test_lab_checks() -> None:
    """The lab example: Slurm with accounting (slurmdbd, MariaDB) and Prometheus on head01, the
    inference deployment asked from the login host, node exporters scraped from every host."""
    got = [(c["host"], c["check"], c["on"]) for c in _checks(LAB)]
    per_host = ("hostname", "packages", "disk-space", "time-sync", "service:munge")
    assert got == [
        *[("head01", k, "head01") for k in per_host],
        ("head01", "service:slurmctld", "head01"), ("head01", "port:6817", "head01"),
        ("head01", "service:slurmdbd", "head01"), ("head01", "port:6819", "head01"),
        ("head01", "service:mariadb", "head01"), ("head01", "gpu-count", "head01"),
        ("head01", "slurm-partition:batch", "head01"), ("head01", "slurm-partition:debug", "head01"),
        ("head01", "inference:tiny", "head01"),  # asked from the login host: models, then a completion
        ("head01", "prometheus-target:node", "head01"),
        *[(n, k, "head01" if k in ("slurm-node", "prometheus-target:node") else n) for n in ("node01", "node02")
          for k in (*per_host, "service:slurmd", "port:6818", "gpu-count", "slurm-node", "prometheus-target:node")],
    ]


@pytest.mark.parametrize("bp", all_blueprints(), ids=lambda b: b.name)
def test_every_blueprint_generates_unique_known_checks(bp) -> None:
    c = check(bp.factory_file)
    doc = build(c.site)
    assert doc["schema"] == SCHEMA and doc["site"] == c.factory.metadata.name
    keys = Counter((x["host"], x["check"]) for x in doc["checks"])
    assert max(keys.values()) == 1
    names = {h.name for h in c.site.hosts}
    for x in doc["checks"]:
        assert x["kind"] in PROBES and x["host"] in names and x["on"] in names
        assert x["needs"] in ("", "nvidia-gpu", "rdma")
    assert {x["host"] for x in doc["checks"] if x["check"] == "hostname"} == names
    gpus = {h.name: h.gpus for h in c.site.hosts}
    for x in doc["checks"]:
        if x["check"] == "gpu-count":
            assert x["expect"]["count"] == gpus[x["host"]]


def test_render_writes_the_checks_and_the_test_module(tmp_path: Path) -> None:
    c = check(PILOT)
    render(c.site, tmp_path)
    doc = json.loads((tmp_path / "verify" / "checks.json").read_text())
    assert doc == json.loads(json.dumps(build(c.site)))
    module = (tmp_path / "verify" / "test_hosts.py").read_text()
    assert "plugin.run_check" in module and module.startswith("# generated by factoryctl")
    first = (tmp_path / "verify" / "checks.json").read_bytes()
    render(c.site, tmp_path / "again")
    assert (tmp_path / "again" / "verify" / "checks.json").read_bytes() == first


def test_gpu_health_check_per_gpu_node_with_the_design_s_expectations(tmp_path: Path) -> None:
    by = _by(_checks(PILOT))
    for n in ("gpu01", "gpu04"):
        c = by[(n, "gpu-health")]
        assert c["kind"] == "gpu_health" and c["needs"] == "nvidia-gpu" and c["kind"] in PROBES
        assert c["expect"] == {"gpus": 8, "nvlink": True, "ib_gbps": 400, "thresholds": {}}
    assert not [k for k in by if k[1] == "gpu-health" and not k[0].startswith("gpu")]
    assert not [c for c in _checks(LAB) if c["check"] == "gpu-health"]  # the lab has no GPUs
    # verify.health overrides reach the check
    text = PILOT.read_text().replace("verify:\n", "verify:\n  health: {ecc_corrected_warn: 500}\n", 1)
    assert "health: {ecc_corrected_warn" in text
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    assert _by(_checks(path))[("gpu01", "gpu-health")]["expect"]["thresholds"] == {"ecc_corrected_warn": 500}


def test_an_unknown_verify_health_threshold_is_named_with_the_nearest(tmp_path: Path) -> None:
    text = PILOT.read_text().replace("verify:\n", "verify:\n  health: {ecc_corected_warn: 500}\n", 1)
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    c = check(path)
    msgs = [f"{f.path}: {f.message}" for f in c.findings]
    assert any("verify.health" in m and "did you mean 'ecc_corrected_warn'" in m for m in msgs), msgs
