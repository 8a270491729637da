"""The Ansible tree: rendered for every blueprint, checked by Ansible itself and read back.

- `ansible-playbook --syntax-check` on every blueprint's build; `ansible-lint` (production
  profile, .ansible-lint at the repo root) once, on the blueprint that uses the most roles;
- every role's meta/argument_specs.yml names exactly the variables of defaults/main.yml;
- the inventory holds exactly the model's hosts, at their management addresses, in the
  groups of their roles, node groups and racks;
- group_vars hold no secret, read back by PyYAML and by Ansible's own loader to the values
  factoryctl computed (types included);
- hostile free text (command substitution, quotes, newlines, Jinja) stays inert: the same
  bytes after YAML, and Ansible prints it without evaluating it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from factoryctl.render import render
from factoryctl.render.ansible_vars import ROLE_GROUPS, build, ident
from factoryctl.render.context import build as build_context
from factoryctl.session import check
from tests.helpers import reference_doc, write_doc

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
ROLES_DIR = ROOT / "templates" / "ansible" / "project" / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())
BLUEPRINTS = sorted(p.parent.name for p in (ROOT / "blueprints").glob("*/factory.yaml"))
LINTED = "sovereign-eu-airgapped"  # Slurm + accounting + pyxis, Kubernetes + both operators, inference
HOSTILE = "$(touch /tmp/pwned) `id` \"dq\" 'sq' \\back\nnew line {{ lookup('pipe', 'id') }} {% if 1 %}x{% endif %} {# c #} #hash: colon, [1] {a: b} &anchor *alias !tag"


class _UnsafeLoader(yaml.SafeLoader):
    """PyYAML with Ansible's !unsafe tag read as the plain string it marks."""


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=_UnsafeLoader)


def ansible_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp / "facts"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def render_source(source: Path, out: Path):
    c = check(source)
    assert c.site is not None, [f.message for f in c.findings]
    render(c.site, out)
    return c


@cache
def _rendered(name: str, base: str) -> tuple[Path, dict]:
    out = Path(base) / name
    c = render_source(ROOT / "blueprints" / name / "factory.yaml", out)
    return out, build_context(c.site)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("ansible-builds"))
    return lambda name: _rendered(name, base)


# --- Ansible's own checks ----------------------------------------------------------------


@pytest.mark.ansible
@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_syntax_check(blueprint, rendered, tmp_path):
    out, _ = rendered(blueprint)
    project = out / "ansible" / "project"
    r = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "../inventory/hosts.yml", "site.yml"],
        cwd=project, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[WARNING]" not in r.stderr, r.stderr  # e.g. a host pattern matching no group


@pytest.mark.ansible
@pytest.mark.slow
def test_ansible_lint_production_profile(rendered, tmp_path):
    out, _ = rendered(LINTED)
    project = out / "ansible" / "project"
    # the configuration inside the linted folder: with -c naming a file outside it, ansible-lint
    # treats every file as outside its project and lints none ("0 files processed"), passing always
    config = project / ".ansible-lint"
    config.write_text((ROOT / ".ansible-lint").read_text())
    try:
        r = subprocess.run(
            [str(BIN / "ansible-lint"), "--offline", "--nocolor", "--profile", "production", "."],
            cwd=project, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=900)
    finally:
        config.unlink()
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-6000:]
    processed = re.search(r"in (\d+) files processed", r.stdout + r.stderr)
    assert processed and int(processed.group(1)) > 50, r.stdout[-2000:] + r.stderr[-2000:]


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role):
    defaults = yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    kinds = {"str": str, "bool": bool, "int": int, "float": float, "list": list, "dict": dict}
    for name, value in defaults.items():
        opt = options[name]
        assert name.startswith(role + "_"), f"{name}: role variables carry the role's prefix"
        assert opt.get("description"), name
        assert type(value) is kinds[opt["type"]], f"{name}: default {value!r} is not {opt['type']}"
        assert opt.get("default") == value, f"{name}: spec default differs from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_role_layout(role):
    base = ROLES_DIR / role
    for rel in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml"):
        assert (base / rel).is_file(), f"{role}: missing {rel}"
    text = "\n".join(p.read_text() for p in (base / "tasks").glob("*.yml"))
    modules = set(re.findall(r"^\s+(?:- )?([a-z_]+\.[a-z_]+\.[a-z_]+):", text, re.M))
    assert modules and all(m.startswith("ansible.builtin.") for m in modules), modules
    if role != "hardware_facts":
        tags = set(re.findall(r"\b(" + role + r"_(?:install|configure|run))\b", text))
        assert tags & {f"{role}_install", f"{role}_configure"}, f"{role}: no {role}_install/_configure tag"


def test_site_plays_are_tagged_with_their_role(rendered):
    out, _ = rendered("lab")
    plays = yaml.safe_load((out / "ansible" / "project" / "site.yml").read_text())
    assert {p["roles"][0]["role"] for p in plays} == set(ROLES) - {"hardware_facts"}
    for play in plays:
        assert play["tags"] == [play["roles"][0]["role"]]
        for pattern in play["hosts"].split(":"):
            assert pattern == "all" or pattern in ROLE_GROUPS or pattern == "gpu_nodes", pattern


# --- inventory and group_vars --------------------------------------------------------------


@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_inventory_is_the_model(blueprint, rendered):
    out, ctx = rendered(blueprint)
    inv = load_yaml(out / "ansible" / "inventory" / "hosts.yml")["all"]
    hosts = {h["name"]: h for h in ctx["hosts"]}
    assert list(inv["hosts"]) == [h["name"] for h in ctx["hosts"]]
    for name, hv in inv["hosts"].items():
        assert hv["ansible_host"] == hosts[name]["address"]
        assert hv["factory_group"] == hosts[name]["group"]
        assert hv["factory_rack"] == hosts[name]["rack"]
        assert hv["factory_gpus"] == hosts[name]["gpus"]
    groups = {g: sorted((v or {}).get("hosts") or {}) for g, v in inv["children"].items()}
    for role in ROLE_GROUPS:  # every role group exists, empty or not
        assert groups[role] == sorted(ctx["hosts_by_role"].get(role.replace("_", "-"), [])), role
    for g in ctx["groups"].values():
        assert groups[f"group_{ident(g['name'])}"] == sorted(g["hostnames"])
    for rack in {h["rack"] for h in ctx["hosts"]}:
        assert groups[f"rack_{ident(rack)}"] == sorted(h["name"] for h in ctx["hosts"] if h["rack"] == rack)
    assert groups["gpu_nodes"] == sorted(h["name"] for h in ctx["hosts"] if h["gpus"])


SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|credential|private|munge_key|api_key", re.I)
SECRET_VALUE = re.compile(r"-----BEGIN|[A-Za-z0-9+/=_-]{40,}|://[^/@\s]+:[^/@\s]+@")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.mark.parametrize("blueprint", BLUEPRINTS)
def test_group_vars_are_the_model_and_hold_no_secret(blueprint, rendered):
    out, ctx = rendered(blueprint)
    path = out / "ansible" / "inventory" / "group_vars" / "all.yml"
    data = load_yaml(path)
    assert data == ctx["ansible"]["group_vars"]
    for key in data:
        assert not SECRET_NAME.search(key), key
        # helm_repo_mirror: read by every role that installs Helm or its charts (site.mirrors.helm)
        assert key == "helm_repo_mirror" or key.split("_")[0] in {r.split("_")[0] for r in ROLES}, f"{key}: no role prefix"
    for text in _strings(data):
        assert not SECRET_VALUE.search(text), text
    # Ansible's own loader reads the same values, types included ('1.31' stays a string).
    from ansible.parsing.yaml.loader import AnsibleLoader

    assert yaml.load(path.read_text(), Loader=AnsibleLoader) == data


def test_group_vars_match_the_model_switches():
    lab = build_context(check(ROOT / "blueprints" / "lab" / "factory.yaml").site)["ansible"]["group_vars"]
    assert not lab["common_time_sync"] and not lab["common_manage_kernel"]  # shared clock and kernel
    assert lab["slurm_enabled"] and not lab["kubernetes_enabled"]
    sov = build_context(check(ROOT / "blueprints" / "sovereign-eu-airgapped" / "factory.yaml").site)
    gv = sov["ansible"]["group_vars"]
    assert gv["gpu_operator_chart_repo"] == "https://charts.par1.example.internal"  # the site's mirror
    assert gv["cuda_nccl_tests_repo"] == ""  # nothing public
    # pyxis from the site's declared mirror (slurm.containers.pyxis_repo), never GitHub
    assert gv["slurm_pyxis_repo"] == "https://git.par1.example.internal/mirrors/NVIDIA/pyxis.git"
    # enroot's GPU hook needs nvidia-container-cli with the driver where Slurm runs containers
    assert gv["nvidia_driver_container_toolkit"] is True and lab["nvidia_driver_container_toolkit"] is False
    assert [m["name"] for m in gv["storage_client_mounts"]] == ["scratch", "home"]  # no s3 mount


# --- hostile text ------------------------------------------------------------------------


@pytest.mark.ansible
def test_hostile_text_stays_inert(tmp_path):
    doc = reference_doc()
    doc["metadata"]["description"] = HOSTILE
    doc["inference"][0]["model_source"] = "s3://models.fra1.example.internal/x$(id)&;"
    c = render_source(write_doc(doc, tmp_path / "factory.yaml"), tmp_path / "build")
    inventory = tmp_path / "build" / "ansible" / "inventory"
    data = load_yaml(inventory / "group_vars" / "all.yml")
    assert data["common_description"] == HOSTILE
    assert data["inference_deployments"][0]["model_source"] == "s3://models.fra1.example.internal/x$(id)&;"
    ctx = build_context(c.site)
    assert data == build(c.factory.model_dump(mode="json"), ctx["hosts"], ctx["groups"],
                         extra={"monitoring_inference_jobs": ctx["ansible"]["group_vars"]["monitoring_inference_jobs"]})["group_vars"]
    # Ansible reads the variables and prints them without evaluating them (no 49, no `id`).
    host = next(iter(load_yaml(inventory / "hosts.yml")["all"]["hosts"]))
    results = tmp_path / "tree"
    for var in ("common_description", "inference_deployments"):
        r = subprocess.run(
            [str(BIN / "ansible"), host, "-i", str(inventory / "hosts.yml"), "-c", "local",
             "-m", "ansible.builtin.debug", "-a", f"var={var}", "-t", str(results)],
            env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        got = json.loads((results / host).read_text())[var]
        want = data[var]
        assert got == want
    assert not Path("/tmp/pwned").exists()
