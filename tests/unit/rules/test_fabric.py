"""FAB rules: compute/storage fabric ports, speeds, switches, tiers, RoCE, training needs."""

from __future__ import annotations

from tests.helpers import assert_finding, by_code, check_doc, reference_doc

GPU = 1


def _compute_nic(doc) -> dict:
    return doc["nodes"][GPU]["hardware"]["nics"][0]


def _roce(doc, switch="SN5600", **roce):
    cf = doc["fabric"]["compute"]
    cf.update(type="roce", switch=switch)
    if roce is not None:
        cf["roce"] = roce
    return cf


def test_reference_is_clean_of_fabric_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert not [f for f in checked.findings if f.code.startswith("FAB")]


def test_fab001_too_few_compute_ports(tmp_path):
    doc = reference_doc()
    _compute_nic(doc)["count"] = 4
    assert_finding(check_doc(doc, tmp_path), "FAB001", "nodes[1].hardware.nics[0].count", "error")


def test_fab001_planes_double_the_ports(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["planes"] = 2
    assert_finding(check_doc(doc, tmp_path), "FAB001", "nodes[1].hardware.nics[0].count", "error")


def test_fab001_gpu_node_without_compute_nic_warns(tmp_path):
    doc = reference_doc()
    del doc["nodes"][GPU]["hardware"]["nics"][0]
    assert_finding(check_doc(doc, tmp_path), "FAB001", "nodes[1].hardware.nics", "warning")


def test_fab002_nic_slower_than_links(tmp_path):
    doc = reference_doc()
    _compute_nic(doc)["speed_gbps"] = 200
    assert_finding(check_doc(doc, tmp_path), "FAB002", "nodes[1].hardware.nics[0].speed_gbps", "error")


def test_fab002_nic_faster_than_links_warns(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["link_gbps"] = 200
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "FAB002", "nodes[1].hardware.nics[0].speed_gbps", "warning")
    assert "FAB004" not in by_code(checked)  # QM9700 splits to 128 x 200G


def test_fab002_storage_nic(tmp_path):
    doc = reference_doc()
    doc["nodes"][GPU]["hardware"]["nics"][1]["speed_gbps"] = 200
    assert_finding(check_doc(doc, tmp_path), "FAB002", "nodes[1].hardware.nics[1].speed_gbps", "error")


def test_fab003_unknown_switch(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["switch"] = "QM9701"
    f = assert_finding(check_doc(doc, tmp_path), "FAB003", "fabric.compute.switch", "error")
    assert "QM9700" in f.hint


def test_fab003_unknown_storage_switch(tmp_path):
    doc = reference_doc()
    doc["fabric"]["storage"]["switch"] = "SN9999"
    assert_finding(check_doc(doc, tmp_path), "FAB003", "fabric.storage.switch", "error")


def test_fab004_switch_cannot_run_link_rate(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["link_gbps"] = 800
    assert_finding(check_doc(doc, tmp_path), "FAB004", "fabric.compute.link_gbps", "error")


def _big_sn4700_site(doc, nodes: int) -> dict:
    """SN4700: 32 x 400G, so two tiers end at 512 node ports and three at 8,192."""
    _roce(doc, switch="SN4700", dscp=26, priority=3)
    doc["nodes"][GPU]["count"] = nodes
    doc["fabric"]["management"]["cidr"] = "10.20.0.0/20"
    doc["fabric"]["oob"]["cidr"] = "10.21.0.0/20"
    return doc


def test_fab005_third_tier_is_info(tmp_path):
    checked = check_doc(_big_sn4700_site(reference_doc(), 80), tmp_path)  # 640 ports
    assert_finding(checked, "FAB005", "fabric.compute.switch", "info")
    assert checked.site.fabric["compute"].tiers == 3


def test_fab005_beyond_three_tiers_is_error(tmp_path):
    checked = check_doc(_big_sn4700_site(reference_doc(), 1100), tmp_path)  # 8,800 ports
    assert_finding(checked, "FAB005", "fabric.compute.switch", "error")


def test_fab006_low_ew_bandwidth_per_gpu(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"].update(rails=4, link_gbps=200)
    _compute_nic(doc).update(count=4, speed_gbps=200)  # 800 Gb/s for 8 GPUs
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "FAB006", "nodes[1].hardware.nics[0]", "warning")
    assert "FAB011" not in by_code(checked)  # one NIC per two GPUs is an ERA design


def test_fab007_roce_without_lossless_block(tmp_path):
    doc = reference_doc()
    del _roce(doc)["roce"]
    assert_finding(check_doc(doc, tmp_path), "FAB007", "fabric.compute.roce", "warning")


def test_fab007_pfc_off_is_error_ecn_off_warns(tmp_path):
    doc = reference_doc()
    _roce(doc, pfc=False, ecn=False, pfc_watchdog_ms=0)
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "FAB007", "fabric.compute.roce.pfc", "error")
    assert_finding(checked, "FAB007", "fabric.compute.roce.ecn", "warning")
    assert_finding(checked, "FAB007", "fabric.compute.roce.pfc_watchdog_ms", "warning")


def test_fab007_complete_roce_is_clean(tmp_path):
    doc = reference_doc()
    _roce(doc, dscp=26, priority=3, pfc=True, ecn=True)
    checked = check_doc(doc, tmp_path)
    assert not [f for f in checked.findings if f.code.startswith("FAB")]


def test_fab008_roce_on_infiniband_switch(tmp_path):
    doc = reference_doc()
    _roce(doc, switch="QM9700", dscp=26)
    assert_finding(check_doc(doc, tmp_path), "FAB008", "fabric.compute.switch", "error")


def test_fab008_infiniband_on_ethernet_switch(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["switch"] = "SN5600"
    assert_finding(check_doc(doc, tmp_path), "FAB008", "fabric.compute.switch", "error")


def test_fab009_oversubscribed_training_fabric(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["oversubscription"] = 2.0
    assert_finding(check_doc(doc, tmp_path), "FAB009", "fabric.compute.oversubscription", "warning")


def test_fab009_quiet_without_training(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["oversubscription"] = 2.0
    doc["slurm"]["enabled"] = False
    assert "FAB009" not in by_code(check_doc(doc, tmp_path))


def test_fab010_training_without_compute_fabric(tmp_path):
    doc = reference_doc()
    del doc["fabric"]["compute"]
    assert_finding(check_doc(doc, tmp_path), "FAB010", "fabric.compute", "warning")


def test_fab011_rails_differ_from_gpus(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"]["rails"] = 4
    assert_finding(check_doc(doc, tmp_path), "FAB011", "fabric.compute.rails", "warning")


def test_fab011_fat_tree_is_not_checked(tmp_path):
    doc = reference_doc()
    doc["fabric"]["compute"].update(rails=4, topology="fat-tree")
    assert "FAB011" not in by_code(check_doc(doc, tmp_path))


def test_fab012_ethernet_only_nic_on_infiniband(tmp_path):
    doc = reference_doc()
    _compute_nic(doc)["model"] = "BlueField-3-B3140H"
    assert_finding(check_doc(doc, tmp_path), "FAB012", "nodes[1].hardware.nics[0].model", "error")


def test_fab012_nic_too_slow_for_declared_speed(tmp_path):
    doc = reference_doc()
    _compute_nic(doc)["model"] = "ConnectX-6"  # 200G at most
    assert_finding(check_doc(doc, tmp_path), "FAB012", "nodes[1].hardware.nics[0].speed_gbps", "error")


def test_fab012_more_ports_than_the_card_has(tmp_path):
    doc = reference_doc()
    _compute_nic(doc).update(count=2, ports=4)
    assert_finding(check_doc(doc, tmp_path), "FAB012", "nodes[1].hardware.nics[0].ports", "error")
