"""site.mirrors on the hosts: the common role's apt (deb822), pip and containerd hosts.toml
files, rendered by Ansible itself from the group_vars factoryctl writes, and the Helm repo
mirror the Kubernetes roles read."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from factoryctl.render import render
from tests.helpers import check_doc, reference_doc

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
MIRRORS = {"apt": ["https://apt.fra1.example.internal/debian", "https://apt.fra1.example.internal/ubuntu"],
           "pypi": ["http://pypi.fra1.example.internal:8080/simple", "https://pypi2.fra1.example.internal/simple"],
           "containers": ["registry.fra1.example.internal", "cache.fra1.example.internal:5000/mirror"],
           "helm": ["https://charts.fra1.example.internal"]}


def _group_vars(tmp_path: Path, mirrors: dict | None, air_gapped: bool = True) -> dict:
    d = reference_doc()
    d["site"]["mirrors"] = mirrors
    d["sovereignty"]["air_gapped"] = air_gapped
    if not air_gapped:
        d["sovereignty"].pop("registries", None)
    c = check_doc(d, tmp_path)
    assert c.site is not None, [f.message for f in c.findings]
    render(c.site, tmp_path / "build")
    return yaml.safe_load((tmp_path / "build" / "ansible" / "inventory" / "group_vars" / "all.yml").read_text())


def _ansible_render(tmp_path: Path, gv: dict, facts: dict) -> dict[str, str]:
    """The common role's mirror templates rendered by ansible-playbook (local, no root)."""
    role = ROOT / "templates" / "ansible" / "project" / "roles" / "common"
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "gv.yml").write_text(yaml.safe_dump(gv))
    tasks = [{"name": f"render {name}", "ansible.builtin.copy": {
        "content": f"{{{{ lookup('ansible.builtin.template', '{role}/templates/{src}') }}}}",
        "dest": str(out / name), "mode": "0644"}, **({"loop": loop} if loop else {})}
        for name, src, loop in (("mirror.sources", "mirror.sources.j2", None),
                                ("pip.conf", "pip.conf.j2", None))]
    tasks.append({"name": "render hosts.toml", "ansible.builtin.copy": {
        "content": f"{{{{ lookup('ansible.builtin.template', '{role}/templates/hosts.toml.j2') }}}}",
        "dest": str(out) + "/{{ item }}.toml", "mode": "0644"},
        "loop": ["_default", "registry.fra1.example.internal", "cache.fra1.example.internal:5000"]})
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars_files": [str(role / "defaults" / "main.yml"), str(tmp_path / "gv.yml"),
                            str(role / "vars" / "main.yml")],
             "vars": facts, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {"ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"), "PATH": f"{BIN}:/usr/bin:/bin",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml")],
                       env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return {p.name: p.read_text() for p in out.iterdir()}


def _stanza(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_group_vars_carry_the_mirrors(tmp_path):
    gv = _group_vars(tmp_path, MIRRORS)
    assert gv["common_apt_mirrors"] == MIRRORS["apt"] and gv["common_apt_replace_default_sources"]
    assert gv["common_pip_index_url"] == "http://pypi.fra1.example.internal:8080/simple"
    assert gv["common_pip_trusted_host"] == "pypi.fra1.example.internal:8080"  # http: pip must trust it
    assert gv["common_container_mirrors"] == MIRRORS["containers"]
    assert gv["helm_repo_mirror"] == "https://charts.fra1.example.internal"
    # containerd reads those hosts.toml only from the CRI registry's config_path (kubernetes role)
    assert gv["kubernetes_containerd_registry_config_path"] == "/etc/containerd/certs.d"


def test_no_mirrors_leave_the_hosts_alone(tmp_path):
    gv = _group_vars(tmp_path, None, air_gapped=False)
    assert (gv["common_apt_mirrors"], gv["common_pip_index_url"], gv["common_container_mirrors"],
            gv["helm_repo_mirror"], gv["common_apt_replace_default_sources"]) == ([], "", [], "", False)
    assert gv["kubernetes_containerd_registry_config_path"] == ""


def test_connected_site_keeps_its_default_sources(tmp_path):
    gv = _group_vars(tmp_path, {"apt": ["https://apt.example.internal/ubuntu"], "pypi": ["https://pypi.example.internal/simple"]},
                     air_gapped=False)
    assert gv["common_apt_mirrors"] and not gv["common_apt_replace_default_sources"]
    assert gv["common_pip_trusted_host"] == ""  # https: nothing to trust by hand


@pytest.mark.ansible
def test_ansible_writes_deb822_pip_and_hosts_toml(tmp_path):
    gv = _group_vars(tmp_path, MIRRORS)
    files = _ansible_render(tmp_path, gv, {"ansible_distribution": "Ubuntu", "ansible_distribution_release": "noble"})
    src = _stanza(files["mirror.sources"])
    assert src == {"Types": "deb", "URIs": "https://apt.fra1.example.internal/ubuntu",
                   "Suites": "noble noble-updates noble-security",
                   "Components": "main restricted universe multiverse",
                   "Signed-By": "/usr/share/keyrings/ubuntu-archive-keyring.gpg"}
    pip = [line for line in files["pip.conf"].splitlines() if line and not line.startswith("#")]
    assert pip == ["[global]", "index-url = http://pypi.fra1.example.internal:8080/simple",
                   "trusted-host = pypi.fra1.example.internal:8080"]
    default = tomllib.loads(files["_default.toml"])
    assert default == {"host": {
        "https://registry.fra1.example.internal": {"capabilities": ["pull", "resolve"]},
        "https://cache.fra1.example.internal:5000/v2/mirror": {"capabilities": ["pull", "resolve"], "override_path": True}}}
    assert list(default["host"]) == ["https://registry.fra1.example.internal", "https://cache.fra1.example.internal:5000/v2/mirror"]
    assert tomllib.loads(files["cache.fra1.example.internal:5000.toml"]) == {"server": "https://cache.fra1.example.internal:5000"}


@pytest.mark.ansible
def test_debian_host_gets_the_debian_mirror(tmp_path):
    gv = _group_vars(tmp_path, {"apt": MIRRORS["apt"], "pypi": ["https://pypi.example.internal/simple"]})
    files = _ansible_render(tmp_path, gv, {"ansible_distribution": "Debian", "ansible_distribution_release": "bookworm"})
    src = _stanza(files["mirror.sources"])
    assert src["URIs"] == "https://apt.fra1.example.internal/debian" and src["Suites"] == "bookworm bookworm-updates"
    assert src["Signed-By"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert "trusted-host" not in files["pip.conf"]


@pytest.mark.ansible
def test_common_role_writes_the_mirrors_before_it_installs(tmp_path):
    """The role itself, in check mode with --diff on this machine (nothing written): the deb822
    file and pip.conf come before the package index refresh, and an air-gapped site's default
    sources are emptied."""
    gv = {k: v for k, v in _group_vars(tmp_path, MIRRORS).items() if k.startswith("common_")}
    gv.update(common_time_sync=False, common_apt_update_cache=True)
    (tmp_path / "gv.yml").write_text(yaml.safe_dump(gv))
    role = ROOT / "templates" / "ansible" / "project" / "roles" / "common"
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": True,
        "vars_files": [str(tmp_path / "gv.yml")], "roles": [str(role)]}]))
    env = {"ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"), "PATH": f"{BIN}:/usr/bin:/bin",
           "ANSIBLE_NOCOLOR": "1"}
    r = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                        "--check", "--diff", "--tags", "common_install", str(tmp_path / "play.yml")],
                       env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 0, out[-4000:] + r.stderr[-2000:]
    assert "+URIs: " in out and "+index-url = http://pypi.fra1.example.internal:8080/simple" in out
    assert out.index("Write the apt mirror sources") < out.index("Refresh the package index")
    assert "Empty the default one-line sources list" in out
