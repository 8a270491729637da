"""The kubernetes role's tasks, checked by running their logic (Ansible's own modules on
files here) or by reading the task list: containerd's settings survive the GPU Operator's
toolkit and a second run changes nothing; kube-vip, Helm, the CNI and the controllers come
in the order a cluster needs them."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.unit.render.test_render_ansible import BIN, ROLES_DIR, ansible_env

ROLE = ROLES_DIR / "kubernetes"

# what the GPU Operator's toolkit leaves in a containerd 1.7 config.toml (its nvidia runtime)
TOOLKIT_CONFIG = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "nvidia"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
            BinaryName = "/usr/local/nvidia/toolkit/nvidia-container-runtime"
            SystemdCgroup = false
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
"""


def _tasks(path: Path) -> list[dict]:
    out = []
    for task in yaml.safe_load(path.read_text()) or []:
        out.append(task)
        out.extend(task.get("block", []))
    return out


def _task(path: str, name_part: str) -> dict:
    (task,) = [t for t in _tasks(ROLE / path) if name_part in t["name"]]
    return task


def _run(tmp_path: Path, module: str, args: dict, extra: dict, inventory: str = "localhost,") -> dict:
    (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, **extra}))
    r = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-c", "local", "-i", inventory, "-m", module,
         "-a", json.dumps(args), "-e", f"@{tmp_path / 'vars.json'}", "-o"],
        env={**ansible_env(tmp_path), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"},
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"changed": '"changed": true' in r.stdout, "out": r.stdout}


@pytest.mark.ansible
def test_containerd_1x_edits_keep_the_toolkit_runtime_and_settle(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(TOOLKIT_CONFIG)
    extra = {"kubernetes_image_repository": "registry.fra1.example.internal", "ansible_service_mgr": "systemd"}
    edits = [_task("tasks/install.yml", "systemd cgroups")["ansible.builtin.replace"],
             _task("tasks/install.yml", "pause image")["ansible.builtin.replace"]]
    first = [_run(tmp_path, "ansible.builtin.replace", {**e, "path": str(cfg)}, extra) for e in edits]
    assert any(r["changed"] for r in first)
    toml = tomllib.loads(cfg.read_text())
    cri = toml["plugins"]["io.containerd.grpc.v1.cri"]
    runtimes = cri["containerd"]["runtimes"]
    assert runtimes["nvidia"]["options"]["BinaryName"] == "/usr/local/nvidia/toolkit/nvidia-container-runtime"
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == "registry.fra1.example.internal/pause:3.10"
    text = cfg.read_text()
    second = [_run(tmp_path, "ansible.builtin.replace", {**e, "path": str(cfg)}, extra) for e in edits]
    assert not any(r["changed"] for r in second)  # a second run changes nothing
    assert cfg.read_text() == text


@pytest.mark.ansible
def test_containerd_2x_imports_line_is_added_once(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('version = 3\nimports = ["/etc/containerd/toolkit.d/*.toml"]\n')
    task = _task("tasks/install.yml", "existing imports line")["ansible.builtin.replace"]
    extra = {"kubernetes_containerd_dropin_dir": "/etc/containerd/conf.d"}
    assert _run(tmp_path, "ansible.builtin.replace", {**task, "path": str(cfg)}, extra)["changed"]
    toml = tomllib.loads(cfg.read_text())
    assert toml["imports"] == ["/etc/containerd/toolkit.d/*.toml", "/etc/containerd/conf.d/*.toml"]
    assert toml["version"] == 3


def test_config_toml_is_never_templated_whole():
    """The old role templated /etc/containerd/config.toml on every run, erasing the toolkit's runtime."""
    for task in _tasks(ROLE / "tasks" / "install.yml"):
        for module in ("ansible.builtin.template", "ansible.builtin.copy"):
            args = task.get(module) or {}
            if args.get("dest") == "/etc/containerd/config.toml":
                assert module == "ansible.builtin.copy" and args.get("force") is False, task["name"]
    drop = (ROLE / "templates" / "containerd-dropin.toml.j2").read_text()
    assert 'version = 3' in drop and "io.containerd.cri.v1.runtime" in drop


def _names(path: str) -> list[str]:
    return [t["name"] for t in yaml.safe_load((ROLE / path).read_text())]


def test_cluster_order_kube_vip_init_helm_cni_then_joins_and_controllers():
    names = _names("tasks/cluster.yml")

    def at(part: str) -> int:
        (i,) = [n for n, name in enumerate(names) if part in name]
        return i

    assert at("Start kube-vip before the cluster exists") < at("Create the cluster")
    assert at("Create the cluster") < at("Install the pinned Helm") < at("pod network (Calico)")
    assert at("pod network (Calico)") < at("Join the other control-plane hosts") < at("Join the workers")
    assert at("Join the workers") < at("Install the controllers") < at("MPI Operator")
    kube_vip = _task("tasks/cluster.yml", "Start kube-vip before")
    assert "super-admin.conf" in kube_vip["ansible.builtin.copy"]["content"]  # Kubernetes >= 1.29


def test_helm_binary_is_pinned_and_checksummed():
    get = _task("tasks/helm_binary.yml", "Download the Helm tarball")["ansible.builtin.get_url"]
    assert get["checksum"].startswith("sha256:") and get["checksum"].endswith(".sha256sum")
    assert "kubernetes_helm_mirror" in get["url"] and "_kubernetes_helm_tarball" in get["url"]
    block = _task("tasks/helm_binary.yml", "Install Helm")
    assert "helm-{{ kubernetes_helm_version }}-linux-" in block["vars"]["_kubernetes_helm_tarball"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    from factoryctl.render.versions import version

    assert defaults["kubernetes_helm_version"] == version("helm")


@pytest.mark.ansible
def test_kubespray_inventory_carries_the_endpoint(tmp_path):
    dest = tmp_path / "hosts.yml"
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("localhost\n[kube_control_plane]\nctl01\nctl02\nctl03\n[kube_worker]\ngpu01\n")
    extra = {"kubernetes_control_plane_group": "kube_control_plane",
             "kubernetes_worker_group": "kube_worker", "kubernetes_version": "1.31",
             "kubernetes_pod_cidr": "10.244.0.0/16", "kubernetes_service_cidr": "10.96.0.0/12",
             "kubernetes_node_pod_prefix": 24, "kubernetes_control_plane_endpoint": "10.40.0.5:6443",
             "kubernetes_kube_vip": True, "kubernetes_kube_vip_interface": "eno1"}
    _run(tmp_path, "ansible.builtin.template", {"src": str(ROLE / "templates/kubespray-hosts.yml.j2"), "dest": str(dest)},
         extra, str(inventory))
    inv = yaml.safe_load(dest.read_text())["all"]["vars"]
    assert inv["loadbalancer_apiserver"] == {"address": "10.40.0.5", "port": 6443}
    assert inv["kube_vip_address"] == "10.40.0.5" and inv["kube_vip_interface"] == "eno1"
    assert inv["kube_vip_controlplane_enabled"] is True and inv["kube_vip_arp_enabled"] is True


# `containerd config default` of containerd 1.7, cut to the tables that matter here: the CRI
# registry with its empty config_path and empty per-host tables, then the transfer service's own
# config_path (which the CRI does not read, so it must stay as it is)
DEFAULT_17 = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""

      [plugins."io.containerd.grpc.v1.cri".registry.auths]

      [plugins."io.containerd.grpc.v1.cri".registry.mirrors]

  [plugins."io.containerd.transfer.v1.local"]
    config_path = ""
    max_concurrent_downloads = 3
"""
CERTS = "/etc/containerd/certs.d"


def _registry_run(tmp_path: Path, cfg: Path, config_path: str = CERTS) -> subprocess.CompletedProcess:
    """containerd_registry.yml run by ansible-playbook against cfg; 'Restart containerd' is a
    stand-in handler that only records it was notified."""
    (tmp_path / "pb.yml").write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "vars_files": [str(ROLE / "vars" / "main.yml")],
        "tasks": [{"ansible.builtin.include_tasks": str(ROLE / "tasks" / "containerd_registry.yml")}],
        "handlers": [{"name": "Restart containerd", "ansible.builtin.debug": {"msg": "RESTART-NOTIFIED"}}]}]))
    (tmp_path / "vars.json").write_text(json.dumps({
        "ansible_python_interpreter": sys.executable, "_kubernetes_containerd_config": str(cfg),
        "kubernetes_containerd_registry_config_path": config_path}))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-c", "local", "-i", "localhost,", "-e", f"@{tmp_path / 'vars.json'}",
         str(tmp_path / "pb.yml")],
        env=ansible_env(tmp_path), capture_output=True, text=True, timeout=180)


def _settled(tmp_path: Path, cfg: Path) -> dict:
    first = _registry_run(tmp_path, cfg)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert "RESTART-NOTIFIED" in first.stdout  # containerd reads config_path at start only
    text = cfg.read_text()
    second = _registry_run(tmp_path, cfg)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout[-3000:]
    assert "RESTART-NOTIFIED" not in second.stdout and cfg.read_text() == text  # idempotent
    return tomllib.loads(text)


@pytest.mark.ansible
def test_containerd_1x_default_config_gets_the_registry_config_path(tmp_path):
    """The old role never set config_path: containerd 1.7 ignored every certs.d/*/hosts.toml."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(DEFAULT_17)
    toml = _settled(tmp_path, cfg)
    assert toml["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == CERTS
    assert toml["plugins"]["io.containerd.transfer.v1.local"]["config_path"] == ""  # outside the CRI table
    assert cfg.read_text() == DEFAULT_17.replace('      config_path = ""', f'      config_path = "{CERTS}"')


@pytest.mark.ansible
def test_containerd_1x_toolkit_config_gets_a_registry_table_and_keeps_the_runtime(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(TOOLKIT_CONFIG)
    toml = _settled(tmp_path, cfg)
    cri = toml["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == CERTS
    assert cri["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"].endswith("nvidia-container-runtime")
    assert cfg.read_text().startswith(TOOLKIT_CONFIG)  # appended, nothing above rewritten


@pytest.mark.ansible
def test_containerd_1x_registry_table_without_config_path_gets_the_key(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(TOOLKIT_CONFIG + '\n  [plugins."io.containerd.grpc.v1.cri".registry]\n'
                   '    [plugins."io.containerd.grpc.v1.cri".registry.auths]\n')
    toml = _settled(tmp_path, cfg)
    assert toml["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == CERTS


@pytest.mark.ansible
def test_containerd_1x_deprecated_mirrors_are_refused_with_the_fix(tmp_path):
    cfg = tmp_path / "config.toml"
    old = DEFAULT_17 + ('\n      [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
                        '        endpoint = ["https://mirror.example"]\n')
    cfg.write_text(old)
    r = _registry_run(tmp_path, cfg)
    assert r.returncode != 0 and "registry.mirrors" in r.stdout and "site.mirrors.containers" in r.stdout
    assert cfg.read_text() == old


def test_containerd_registry_tasks_run_only_on_1x_and_only_with_mirrors():
    task = _task("tasks/install.yml", "registry hosts from the folder")
    assert task["ansible.builtin.import_tasks"] == "containerd_registry.yml"
    assert task["when"] == "kubernetes_containerd_registry_config_path | length > 0"
    (block,) = [t for t in _tasks(ROLE / "tasks" / "install.yml") if t["name"] == "Configure containerd 1.x in place"]
    assert task in block["block"]


@pytest.mark.ansible
@pytest.mark.parametrize("config_path", [CERTS, ""])
def test_containerd_2x_dropin_sets_the_registry_config_path(tmp_path, config_path):
    dest = tmp_path / "10-factoryctl.toml"
    _run(tmp_path, "ansible.builtin.template", {"src": str(ROLE / "templates" / "containerd-dropin.toml.j2"), "dest": str(dest)},
         {"kubernetes_image_repository": "", "ansible_service_mgr": "systemd",
          "kubernetes_containerd_registry_config_path": config_path})
    images = tomllib.loads(dest.read_text())["plugins"].get("io.containerd.cri.v1.images", {})
    assert images.get("registry", {}).get("config_path", "") == config_path
