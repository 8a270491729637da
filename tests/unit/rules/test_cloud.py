"""AWS rules: what an EC2 GPU cluster needs to come up and be reached (site.aws)."""

from __future__ import annotations

from tests.helpers import assert_finding, check_doc, reference_doc

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxqv1sS0exampleKeyForTests000000000000000 admin@example"


def _aws(**aws) -> dict:
    d = reference_doc()
    d["site"]["provider"] = "aws"
    d["site"]["aws"] = {"region": "eu-central-1", "availability_zone": "eu-central-1a", "public_key": KEY,
                        "admin_cidrs": ["10.99.0.0/24"], **aws}
    d["site"]["mirrors"] = {"terraform": ["/srv/terraform/providers"]}
    return d


def _aws_codes(doc, tmp_path) -> list[str]:
    return sorted(f.code for f in check_doc(doc, tmp_path).findings if f.code.startswith("AWS"))


def test_a_complete_aws_site_is_clean(tmp_path):
    assert _aws_codes(_aws(), tmp_path) == []


def test_aws001_provider_without_settings_or_zone(tmp_path):
    d = _aws()
    del d["site"]["aws"]
    assert_finding(check_doc(d, tmp_path), "AWS001", "site.provider", "error")
    d = _aws()
    del d["site"]["aws"]["availability_zone"]
    f = assert_finding(check_doc(d, tmp_path), "AWS001", "site.aws", "error")
    assert "eu-central-1a" in f.hint


def test_aws002_no_key_and_no_admin_network(tmp_path):
    d = _aws(admin_cidrs=[])
    del d["site"]["aws"]["public_key"]
    found = [f for f in check_doc(d, tmp_path).findings if f.code == "AWS002"]
    assert len(found) == 2 and all(f.severity.value == "error" for f in found)
    assert any("key_name nor public_key" in f.message for f in found)
    assert any("admin_cidrs" in f.message for f in found)


def test_aws002_ssh_from_the_internet_is_a_warning(tmp_path):
    assert_finding(check_doc(_aws(admin_cidrs=["0.0.0.0/0"]), tmp_path), "AWS002", "site.aws.admin_cidrs[0]", "warning")


def test_aws003_efa_without_placement_group(tmp_path):
    assert_finding(check_doc(_aws(placement_group=False), tmp_path), "AWS003", "site.aws.placement_group", "warning")
    assert "AWS003" not in _aws_codes(_aws(placement_group=False, capacity_reservation_id="cr-0a1b2c3d4e5f60718"),
                                      tmp_path)


def test_aws004_instance_type_with_other_gpus(tmp_path):
    f = assert_finding(check_doc(_aws(instance_type="p4d.24xlarge"), tmp_path), "AWS004", "nodes[1].hardware.gpu", "error")
    assert "A100-SXM-40GB" in f.message and "H100-SXM-80GB" in f.message


def test_aws004_unknown_instance_type_renders_no_efa(tmp_path):
    assert_finding(check_doc(_aws(instance_type="g9.fictional"), tmp_path), "AWS004", "site.aws.instance_type", "warning")


def test_aws005_capacity_block_without_reservation(tmp_path):
    assert_finding(check_doc(_aws(capacity_block=True), tmp_path), "AWS005", "site.aws.capacity_block", "error")


def test_aws006_management_network_that_cannot_be_a_subnet(tmp_path):
    d = _aws()
    d["fabric"]["management"]["reserved"] = 2
    assert_finding(check_doc(d, tmp_path), "AWS006", "fabric.management.reserved", "error")
    d = _aws()
    d["fabric"]["management"]["cidr"] = "10.0.0.0/8"
    d["fabric"]["management"]["gateway"] = "10.0.0.1"
    assert_finding(check_doc(d, tmp_path), "AWS006", "fabric.management.cidr", "error")


def test_aws_ids_and_keys_are_checked_by_shape(tmp_path):
    for field, value in (("subnet_id", "sub-123"), ("vpc_id", "vpc_x"), ("public_key", "not a key"),
                         ("capacity_reservation_id", "cr-XYZ")):
        c = check_doc(_aws(**{field: value}), tmp_path)
        bad = [f for f in c.findings if f.path == f"site.aws.{field}" and f.severity.value == "error"]
        assert bad and bad[0].line is not None and bad[0].hint, (field, [(f.code, f.path) for f in c.findings])
