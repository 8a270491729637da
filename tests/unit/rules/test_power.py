"""PWR rules: rack budgets, cooling limits, site capacity, PUE."""

from __future__ import annotations

from tests.helpers import assert_finding, by_code, check_doc, reference_doc


def _racks(doc, **kw):
    for r in doc["facility"]["racks"]:
        r.update(kw)


def test_reference_is_clean_of_power_findings(tmp_path):
    checked = check_doc(reference_doc(), tmp_path)
    assert not [f for f in checked.findings if f.code.startswith("PWR")]


def test_pwr001_rack_over_budget(tmp_path):
    doc = reference_doc()
    doc["facility"]["racks"][0]["power_kw"] = 20  # r01 carries 3 x 1.2 + 2 x 10.2 = 24 kW
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "PWR001", "facility.racks[0].power_kw", "error")
    assert "PWR002" not in by_code(checked)


def test_pwr002_rack_near_budget(tmp_path):
    doc = reference_doc()
    doc["facility"]["racks"][0]["power_kw"] = 25  # 24 of 25 kW = 96%
    assert_finding(check_doc(doc, tmp_path), "PWR002", "facility.racks[0].power_kw", "warning")


def test_pwr003_air_rack_beyond_air_limit(tmp_path):
    doc = reference_doc()
    doc["facility"]["air_cooling_limit_kw"] = 22
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "PWR003", "facility.racks[0].cooling", "error")
    assert [f.path for f in by_code(checked)["PWR003"]] == ["facility.racks[0].cooling"]  # r02: 20.4 kW


def test_pwr003_rear_door_limit(tmp_path):
    doc = reference_doc()
    _racks(doc, cooling="rear-door", power_kw=100)
    doc["nodes"][1]["rack"] = "r02"  # 4 x 10.2 = 40.8 kW
    doc["facility"]["rear_door_limit_kw"] = 35
    assert_finding(check_doc(doc, tmp_path), "PWR003", "facility.racks[1].cooling", "error")


def test_pwr004_nvl72_in_air_rack(tmp_path):
    doc = reference_doc()
    gpu = doc["nodes"][1]["hardware"]
    gpu["gpu"] = {"model": "GB200", "count": 4}
    gpu["cpu"] = {"model": "Grace", "sockets": 2}
    gpu["memory_gb"] = 960
    gpu["power_kw"] = 6.5
    gpu["nics"][0]["count"] = 4
    doc["fabric"]["compute"]["rails"] = 4
    doc["facility"]["racks"][1]["cooling"] = "liquid"
    checked = check_doc(doc, tmp_path)
    assert_finding(checked, "PWR004", "facility.racks[0].cooling", "error")
    assert [f.path for f in by_code(checked)["PWR004"]] == ["facility.racks[0].cooling"]


def test_pwr005_site_capacity(tmp_path):
    doc = reference_doc()
    doc["site"]["power_capacity_kw"] = 50  # 44.4 kW IT x 1.25 = 55.5 kW
    assert_finding(check_doc(doc, tmp_path), "PWR005", "site.power_capacity_kw", "error")


def test_pwr005_quiet_when_it_fits(tmp_path):
    doc = reference_doc()
    doc["site"]["power_capacity_kw"] = 60
    assert "PWR005" not in by_code(check_doc(doc, tmp_path))


def test_pwr006_implausible_pue(tmp_path):
    doc = reference_doc()
    doc["facility"]["pue"] = 1.01
    assert_finding(check_doc(doc, tmp_path), "PWR006", "facility.pue", "warning")
    doc["facility"]["pue"] = 2.5
    assert_finding(check_doc(doc, tmp_path), "PWR006", "facility.pue", "warning")


def test_pwr007_empty_rack(tmp_path):
    doc = reference_doc()
    doc["facility"]["racks"].append({"name": "r03", "power_kw": 30, "cooling": "air"})
    assert_finding(check_doc(doc, tmp_path), "PWR007", "facility.racks[2].name", "info")


def test_pwr008_duplicate_rack(tmp_path):
    doc = reference_doc()
    doc["facility"]["racks"][1]["name"] = "r01"
    doc["nodes"][1]["rack"] = "r01"
    assert_finding(check_doc(doc, tmp_path), "PWR008", "facility.racks[1].name", "error")
