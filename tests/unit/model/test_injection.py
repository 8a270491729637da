"""Values that reach hosts: refused at validate with their place when they could change the
meaning of a command or config line, and quoted for their context by the roles (issue 12)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import jinja2
import pytest
import yaml

from factoryctl.render import RenderError, render
from factoryctl.render.environment import UnsafeValue, config_word
from tests.helpers import assert_clean, check_doc, reference_doc
from tests.unit.render.test_render_ansible import BIN, ROLES_DIR, ansible_env

WEKA = {"name": "weka", "type": "weka", "mount": "/weka", "capacity_tb": 100,
        "servers": ["weka01.fra1.example.internal"]}


def _set(doc: dict, where: tuple, value) -> dict:
    node = doc
    for key in where[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    node[where[-1]] = value
    return doc


def _with_weka(doc: dict) -> dict:
    doc["storage"].append(dict(WEKA))
    return doc


# (where in the document, hostile value, YAML path of the finding). The first four are the
# issue's examples; the rest are their siblings.
REFUSED = [
    (("storage", 2, "servers"), ["w1;touch /root/pwned;#"], "storage[2].servers[0]"),
    (("site", "ntp_servers"), ["ntp1.fra1.example.internal\ncmdallow all"], "site.ntp_servers[0]"),
    (("site", "mirrors"), {"containers": ['registry.fra1.example.internal"']}, "site.mirrors.containers[0]"),
    (("storage", 0, "servers"), ["10.20.0.200@tcp\n10.0.0.1@tcp"], "storage[0].servers[0]"),
    (("storage", 0, "servers"), ["10.20.0.200@tcp 10.0.0.1"], "storage[0].servers[0]"),
    (("storage", 0, "options"), ["flock noexec"], "storage[0].options[0]"),
    (("storage", 0, "options"), ["flock\n/dev/sda / ext4 defaults 0 0"], "storage[0].options[0]"),
    (("storage", 0, "options"), ["ro,exec"], "storage[0].options[0]"),
    (("storage", 0, "options"), ["x#y"], "storage[0].options[0]"),
    (("storage", 0, "mount"), "/lustre x", "storage[0].mount"),
    (("storage", 0, "mount"), "/lustre\n/dev/sda", "storage[0].mount"),
    (("storage", 1, "server"), "10.20.0.210:/export/home /etc nfs", "storage[1].server"),
    (("storage", 1, "server"), "10.20.0.210:/export/home;id", "storage[1].server"),
    (("site", "ntp_servers"), ["ntp1.fra1.example.internal iburst"], "site.ntp_servers[0]"),
    (("site", "ntp_servers"), ["$(id).fra1.example.internal"], "site.ntp_servers[0]"),
    (("site", "mirrors"), {"containers": ["registry.fra1.example.internal\n[plugins]"]}, "site.mirrors.containers[0]"),
    (("site", "mirrors"), {"containers": ["https://registry.fra1.example.internal"]}, "site.mirrors.containers[0]"),
    (("site", "mirrors"), {"apt": ["https://apt.fra1.example.internal/debian stable main"]}, "site.mirrors.apt[0]"),
    (("site", "mirrors"), {"apt": ["file:///etc/passwd"]}, "site.mirrors.apt[0]"),
    (("site", "mirrors"), {"pypi": ["https://user:secret@pypi.fra1.example.internal/simple"]}, "site.mirrors.pypi[0]"),
    (("site", "mirrors"), {"helm": ["https://charts.fra1.example.internal/'x'"]}, "site.mirrors.helm[0]"),
    (("inference", 0, "image"), "registry.fra1.example.internal/vllm:v1;id", "inference[0].image"),
    (("inference", 0, "image"), "registry.fra1.example.internal/vllm:v1 --privileged", "inference[0].image"),
    (("inference", 0, "model"), "meta-llama/x$(id)", "inference[0].model"),
    (("inference", 0, "model"), "meta-llama/x\n--trust-remote-code", "inference[0].model"),
    (("inference", 0, "model_source"), "s3://models.fra1.example.internal/x y", "inference[0].model_source"),
    (("inference", 0, "model_source"), "s3://models.fra1.example.internal/x'", "inference[0].model_source"),
    (("slurm", "containers", "images"), ["registry.fra1.example.internal#nvidia/pytorch:25.01\nrm"],
     "slurm.containers.images[0]"),
    (("slurm", "version"), "23.11;reboot", "slurm.version"),
    (("kubernetes", "version"), "1.31\nx", "kubernetes.version"),
    (("kubernetes", "gpu_operator", "version"), "v25.3.0 --set x=y", "kubernetes.gpu_operator.version"),
    (("sovereignty", "registries"), ["registry.fra1.example.internal/$(id)"], "sovereignty.registries[0]"),
    (("sovereignty", "model_sources"), ["s3://models.fra1.example.internal\n"], "sovereignty.model_sources[0]"),
    (("sovereignty", "observability"),
     [{"kind": "metrics", "endpoint": "https://metrics.fra1.example.internal\"x", "location": {"country": "DE"}}],
     "sovereignty.observability[0].endpoint"),
    (("site", "maas"), {"url": "http://maas.fra1.example.internal:5240/MAAS", "api_key_env": "KEY;id"},
     "site.maas.api_key_env"),
    (("site", "region"), "eu-central\nx", "site.region"),
    (("nodes", 0, "hardware", "cpu", "model"), "Xeon 8480C;id", "nodes[0].hardware.cpu.model"),
    (("fabric", "compute", "switch"), "QM9700\n", "fabric.compute.switch"),
    # A trailing line break slipped past every '^...$' pattern (re's '$' matches before a final
    # newline), names and times included: the types match the whole value now.
    (("metadata", "name"), "fra1\n", "metadata.name"),
    (("nodes", 0, "group"), "head\n", "nodes[0].group"),
    (("site", "dns_domain"), "fra1.example.internal\n", "site.dns_domain"),
    (("slurm", "partitions", 0, "max_time"), "UNLIMITED\n", "slurm.partitions[0].max_time"),
    (("site", "lab"), {"bridge": "fctlbr0\n"}, "site.lab.bridge"),
]


@pytest.mark.parametrize(("where", "value", "path"), REFUSED, ids=[r[2] + f"-{i}" for i, r in enumerate(REFUSED)])
def test_hostile_value_is_refused_at_validate_with_its_place(tmp_path, where, value, path):
    doc = _set(_with_weka(reference_doc()), where, value)
    checked = check_doc(doc, tmp_path)
    found = [f for f in checked.findings if f.path == path and f.code in ("SCH003", "SCH005")]
    assert found, [(f.code, f.path) for f in checked.findings]
    assert found[0].severity.value == "error" and found[0].line > 1 and found[0].hint
    assert checked.site is None


ACCEPTED = [
    (("storage", 2, "servers"), ["10.20.0.200", "weka02.fra1.example.internal"]),
    (("storage", 0, "servers"), ["10.20.0.200@o2ib1", "10.20.0.201@tcp0"]),
    (("storage", 0, "options"), ["flock", "x-systemd.automount", "nconnect=8", "vers=4.2", "secretfile=/etc/ceph/s"]),
    (("site", "ntp_servers"), ["10.20.0.5", "NTP1.fra1.example.internal"]),
    (("site", "mirrors"), {"containers": ["registry.fra1.example.internal:5000/mirror"],
                           "helm": ["oci://registry.fra1.example.internal/charts"]}),
    (("inference", 0, "image"), "registry.fra1.example.internal:5000/vllm/vllm-openai:v0.8.5@sha256:" + "a" * 64),
    (("inference", 0, "model_source"), "pvc://models/llama-3.1-8b"),
    (("inference", 0, "model_source"), "/lustre/models/8b"),
    (("slurm", "containers", "images"), ["registry.fra1.example.internal#nvidia/pytorch:25.01-py3"]),
    (("slurm", "version"), "24.05.2"),
]


@pytest.mark.parametrize(("where", "value"), ACCEPTED, ids=range(len(ACCEPTED)))
def test_honest_values_still_validate(tmp_path, where, value):
    doc = _set(_with_weka(reference_doc()), where, value)
    if where[-1] == "model_source":
        doc["sovereignty"]["model_sources"].append(value)
    if where == ("storage", 0, "servers"):  # an o2ib NID needs an RDMA storage fabric (STO008)
        doc["fabric"]["storage"].update(type="infiniband", interfaces=["ib0"])
    assert_clean(check_doc(doc, tmp_path))


# --- the render guard ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a b", "a\nb", 'a"b', "a'b", "a;b", "a#b", "a,b", "$(id)", "a`b`", "a\\b", "", "{{x}}"])
def test_config_word_refuses_what_ends_a_word(value):
    with pytest.raises(UnsafeValue, match="NTP server"):
        config_word(value, "NTP server")


def test_render_refuses_a_value_that_bypassed_validate(tmp_path):
    """A site built around validate (model_copy skips the types) still cannot write a
    hostile NTP server into chrony.conf: render stops with a RenderError naming it."""
    checked = check_doc(reference_doc(), tmp_path)
    site = checked.site
    f = site.factory
    hostile = f.model_copy(update={"site": f.site.model_copy(update={"ntp_servers": ["ntp1\ncmdallow all"]})})
    object.__setattr__(site, "factory", hostile)
    with pytest.raises(RenderError, match="NTP server"):
        render(site, tmp_path / "build")


# --- the roles -------------------------------------------------------------------------------


def _tasks(path: Path) -> list[dict]:
    out = []
    for task in yaml.safe_load(path.read_text()) or []:
        out.append(task)
        out.extend(task.get("block", []))
    return out


SHELL_MODULES = ("ansible.builtin.shell", "ansible.builtin.command", "ansible.builtin.raw")


def test_every_shell_string_quotes_what_it_interpolates():
    """A `shell`/`command` given as a string splits on blanks and (shell) runs `;`, `$( )`:
    each interpolated value must pass `| quote`, or the task must use `argv`."""
    bad = []
    for path in sorted(ROLES_DIR.glob("*/tasks/*.yml")):
        for task in _tasks(path):
            for module in SHELL_MODULES:
                args = task.get(module)
                if args is None:
                    continue
                cmd = args if isinstance(args, str) else args.get("cmd", "")
                for expr in re.findall(r"{{(.*?)}}", cmd or "", flags=re.S):
                    if not expr.strip().endswith("| quote"):
                        bad.append(f"{path.relative_to(ROLES_DIR)}: {task.get('name')}: {{{{{expr}}}}}")
    assert not bad, bad


def test_weka_install_url_stays_one_shell_word():
    (task,) = [t for t in _tasks(ROLES_DIR / "storage_client/tasks/install.yml") if "WEKA" in t["name"]]
    env = jinja2.Environment()
    env.filters["quote"] = shlex.quote  # Ansible's quote filter is shlex.quote
    cmd = env.from_string(task["ansible.builtin.shell"]["cmd"]).render(item={"servers": ["w1;touch /root/pwned;#"]})
    words = shlex.split(cmd, comments=True)
    assert "http://w1;touch /root/pwned;#:14000/dist/v1/install" in words
    assert "touch" not in words


def _ansible(tmp_path: Path, module: str, args: dict, extra: dict) -> subprocess.CompletedProcess:
    # The test's own interpreter runs the module: the machine's python3 may be another one.
    (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, **extra}))
    return subprocess.run(
        [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", module,
         "-a", json.dumps(args), "-e", f"@{tmp_path / 'vars.json'}"],
        env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120)


@pytest.mark.ansible
def test_containerd_mirror_is_a_toml_string(tmp_path):
    """containerd's drop-in gets the mirror as a TOML string whatever it holds (Ansible renders it)."""
    dest = tmp_path / "10-factoryctl.toml"
    hostile = 'registry.example"\n[plugins.x]\nevil = "1'
    r = _ansible(tmp_path, "ansible.builtin.template",
                 {"src": str(ROLES_DIR / "kubernetes/templates/containerd-dropin.toml.j2"), "dest": str(dest)},
                 {"kubernetes_image_repository": hostile, "ansible_service_mgr": "systemd",
                  "kubernetes_containerd_registry_config_path": ""})
    assert r.returncode == 0, r.stdout + r.stderr
    toml = tomllib.loads(dest.read_text())
    images = toml["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == hostile + "/pause:3.10"
    assert "x" not in toml["plugins"]


def _assert_task(path: str, name_part: str) -> dict:
    (task,) = [t for t in _tasks(ROLES_DIR / path) if name_part in t["name"]]
    return task["ansible.builtin.assert"]


@pytest.mark.ansible
@pytest.mark.parametrize(("servers", "ok"), [
    (["ntp1.fra1.example.internal", "10.20.0.5"], True),
    (["ntp1.fra1.example.internal\ncmdallow all"], False),
    (["ntp1 iburst"], False),
])
def test_chrony_role_refuses_ntp_servers_that_add_directives(tmp_path, servers, ok):
    args = _assert_task("common/tasks/configure.yml", "NTP servers")
    r = _ansible(tmp_path, "ansible.builtin.assert", {"that": args["that"]}, {"common_ntp_servers": servers})
    assert (r.returncode == 0) == ok, r.stdout + r.stderr


@pytest.mark.ansible
@pytest.mark.parametrize(("item", "ok"), [
    ({"name": "scratch", "mount": "/lustre", "server": "", "servers": ["10.20.0.200@tcp"], "options": ["flock"]}, True),
    ({"name": "home", "mount": "/home", "server": "10.20.0.210:/export/home", "servers": [], "options": []}, True),
    ({"name": "w", "mount": "/weka", "server": "", "servers": ["w1;touch /root/pwned;#"], "options": []}, False),
    ({"name": "s", "mount": "/s", "server": "", "servers": ["a b"], "options": []}, False),
    ({"name": "s", "mount": "/s x", "server": "", "servers": [], "options": []}, False),
    ({"name": "s", "mount": "/s", "server": "", "servers": [], "options": ["ro,exec"]}, False),
    ({"name": "s", "mount": "/s", "server": "", "servers": [], "options": ["a\n/dev/sda / ext4"]}, False),
])
def test_storage_role_refuses_values_that_change_an_fstab_line(tmp_path, item, ok):
    args = _assert_task("storage_client/tasks/mount.yml", "fstab line")
    r = _ansible(tmp_path, "ansible.builtin.assert", {"that": args["that"]}, {"item": item})
    assert (r.returncode == 0) == ok, r.stdout + r.stderr


@pytest.mark.ansible
@pytest.mark.parametrize(("user", "ok"), [
    ({"name": "alice", "ssh_keys": ["ssh-ed25519 AAAA alice@x"]}, True),
    ({"name": "alice ALL=(ALL) NOPASSWD: ALL\nbob", "ssh_keys": []}, False),
    ({"name": "../root", "ssh_keys": []}, False),
    ({"name": "bob", "ssh_keys": ["ssh-ed25519 AAAA\ncommand=\"sh\" ssh-rsa BBBB"]}, False),
])
def test_users_role_refuses_names_and_keys_that_change_sudoers_or_authorized_keys(tmp_path, user, ok):
    args = _assert_task("common/tasks/users.yml", "user names")
    r = _ansible(tmp_path, "ansible.builtin.assert", {"that": args["that"]}, {"item": user})
    assert (r.returncode == 0) == ok, r.stdout + r.stderr
