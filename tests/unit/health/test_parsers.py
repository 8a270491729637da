"""Synthetic inputs (written here, not recorded from hardware): the edges the recorded
fixtures do not reach. Each test states what it breaks and what the judge must say."""

from __future__ import annotations

import json

import pytest

from factoryctl.health import (
    HealthInputError,
    consistency,
    detect,
    judge,
    load_thresholds,
    parse_text,
    report,
    threshold_sources,
    xid_table,
)
from tests.helpers import ROOT

FIX = ROOT / "tests" / "fixtures" / "health"


def _bad(findings, status="fail"):
    return [(f.device, f.check) for f in findings if f.status == status]


# --- nvidia-smi --query-gpu CSV (synthetic) --------------------------------------------------

CSV = """index, name, pci.bus_id, driver_version, persistence_mode, pcie.link.gen.current, pcie.link.gen.max, \
pcie.link.width.current, pcie.link.width.max, utilization.gpu [%], clocks.sm [MHz], clocks.max.sm [MHz], \
clocks_event_reasons.hw_slowdown, clocks_event_reasons.sw_power_cap, ecc.errors.uncorrected.volatile.total, \
remapped_rows.pending, temperature.gpu, power.draw [W], power.limit [W]
0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 550.54.15, Enabled, 5, 5, 16, 16, 100 %, 1980 MHz, 1980 MHz, Not Active, Active, 0, No, 61, 690.10 W, 700.00 W
1, NVIDIA H100 80GB HBM3, 00000000:2A:00.0, 550.54.15, Enabled, 4, 5, 16, 16, 100 %, 1410 MHz, 1980 MHz, Active, Not Active, 2, Yes, 70, 520.00 W, 700.00 W
2, NVIDIA H100 80GB HBM3, 00000000:3A:00.0, 550.54.15, Disabled, 5, 5, 8, 16, 100 %, 1980 MHz, 1980 MHz, Not Active, Not Active, [N/A], No, 60, 650.00 W, 700.00 W
"""


def test_csv_header_maps_fields_and_judges_per_gpu():
    parsed = parse_text(CSV, "query.csv")
    assert parsed.format == "nvidia-smi-csv"
    f = judge(parsed)
    fails = _bad(f)
    # GPU 1: Gen4 under load where an H100 links at Gen5 (catalog), HW slowdown at 1410 of
    # 1980 MHz, a volatile uncorrectable ECC error and a pending row remap
    assert ("GPU 1 (00000000:2A:00.0)", "pcie-gen") in fails
    assert ("GPU 1 (00000000:2A:00.0)", "clock-throttle-hw") in fails
    assert ("GPU 1 (00000000:2A:00.0)", "ecc-volatile-uncorrected") in fails
    assert ("GPU 1 (00000000:2A:00.0)", "row-remap-pending") in fails
    # GPU 2: x8 of the H100's x16 fails (catalog width); persistence off warns
    assert ("GPU 2 (00000000:3A:00.0)", "pcie-width") in fails
    assert ("GPU 2 (00000000:3A:00.0)", "persistence-mode") in _bad(f, "warn")
    # GPU 0: SW power cap alone is informational
    gpu0 = [x for x in f if x.device.startswith("GPU 0 ")]
    assert all(x.status == "pass" for x in gpu0)
    assert any("SW power cap" in x.detail for x in gpu0 if x.check == "clock-throttle")


def test_csv_with_a_short_row_is_refused_with_its_line():
    text = "index, name, pci.bus_id\n0, NVIDIA H100 80GB HBM3, 00000000:18:00.0\n1, NVIDIA H100"
    with pytest.raises(HealthInputError, match=r"q\.csv:3: 2 columns where the header has 3"):
        parse_text(text, "q.csv")


# --- nvidia-smi -q text (synthetic edits of the recorded H100 block) ----------------------------

H100 = (FIX / "nvidia-smi-q-h100x8-mostly-healthy-one-gpu-sw-thermal-power-cap.txt").read_text()


def _first_gpu(text: str) -> str:
    head, rest = text.split("GPU 00000000:53:00.0\n", 1)
    block = rest.split("\nGPU 00000000:64:00.0", 1)[0]
    return head + "GPU 00000000:53:00.0\n" + block + "\n"


def test_hw_slowdown_with_clocks_down_fails_and_at_max_warns():
    one = _first_gpu(H100).replace("            HW Thermal Slowdown           : Not Active",
                                   "            HW Thermal Slowdown           : Active")
    one = one.replace("        Idle                              : Active", "        Idle                              : Not Active")
    slow = one.replace("        SM                                : 345 MHz", "        SM                                : 1100 MHz")
    assert ("GPU 00000000:53:00.0", "clock-throttle-hw") in _bad(judge(parse_text(slow, "slow.txt")))
    fast = one.replace("        SM                                : 345 MHz", "        SM                                : 1980 MHz")
    assert ("GPU 00000000:53:00.0", "clock-throttle-hw") in _bad(judge(parse_text(fast, "fast.txt")), "warn")


def test_fabric_not_completed_fails_and_tlimit_near_slowdown_fails():
    one = _first_gpu(H100).replace("        State                             : Completed",
                                   "        State                             : In Progress")
    one = one.replace("GPU T.Limit Temp                  : 50 C", "GPU T.Limit Temp                  : -3 C")
    fails = _bad(judge(parse_text(one, "x.txt")))
    assert ("GPU 00000000:53:00.0", "fabric") in fails
    assert ("GPU 00000000:53:00.0", "temperature") in fails


def test_q_with_only_a_header_is_refused():
    text = "==============NVSMI LOG==============\n\nDriver Version : 535.0\nAttached GPUs : 8\n"
    with pytest.raises(HealthInputError, match="no GPU section"):
        parse_text(text, "cut.txt")


# --- nvlink -e, dcgmi diag -j (synthetic) ----------------------------------------------------

NVLINK_E = """GPU 3: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-000000000000)
         Link 0: Replay Errors: 0
         Link 0: Recovery Errors: 0
         Link 0: CRC Errors: 0
         Link 5: Replay Errors: 4
         Link 5: Recovery Errors: 2
         Link 5: CRC Errors: 250
"""


def test_nvlink_error_counters_against_thresholds():
    f = judge(parse_text(NVLINK_E, "nvlink-e.txt"))
    assert _bad(f) == [("GPU 3 link 5", "nvlink-recovery-errors")]
    assert sorted(_bad(f, "warn")) == [("GPU 3 link 5", "nvlink-crc-errors"), ("GPU 3 link 5", "nvlink-replay-errors")]
    # an override lifts the CRC threshold: the same counter passes
    f = judge(parse_text(NVLINK_E, "nvlink-e.txt"), load_thresholds({"nvlink_crc_warn": 1000}))
    assert ("GPU 3 link 5", "nvlink-crc-errors") not in _bad(f, "warn")


DIAG_JSON = {
    "DCGM GPU Diagnostic": {"test_categories": [
        {"category": "Deployment", "tests": [{"name": "Denylist", "results": [{"status": "Pass"}]}]},
        {"category": "Hardware", "tests": [{"name": "GPU Memory", "results": [
            {"gpu_id": "0", "status": "Pass"},
            {"gpu_id": "5", "status": "Fail", "warnings": [{"warning": "GPU 5 DBE detected", "error_id": 1}]}]}]},
    ]},
    "Driver Version Detected": "550.54.15",
}


def test_dcgmi_diag_json_names_the_failing_gpu():
    parsed = parse_text("$ dcgmi diag -r 2 -j\n" + json.dumps(DIAG_JSON, indent=1), "diag.json")
    assert parsed.format == "dcgmi-diag-json" and parsed.versions.driver == "550.54.15"
    f = judge(parsed)
    assert _bad(f) == [("GPU 5", "dcgm-diag GPU Memory")]
    assert "DBE" in next(x for x in f if x.status == "fail").detail


def test_truncated_diag_json_is_refused():
    text = json.dumps(DIAG_JSON)[:120]
    with pytest.raises(HealthInputError, match=r"diag\.json: dcgmi diag -j output does not parse as JSON"):
        parse_text(text, "diag.json")


# --- kernel log (synthetic lines in the recorded formats) -------------------------------------

def test_xid_classes_and_an_unknown_code():
    log = "\n".join([
        "[  1.0] NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=x, GPU has fallen off the bus.",
        "[  2.0] NVRM: Xid (PCI:0000:2a:00): 31, pid=2, name=python, Ch 00000010, intr 10000000.",
        "[  3.0] NVRM: Xid (PCI:0000:3a:00): 64, pid=3, name=x, Row remapper error",
        "[  4.0] NVRM: Xid (PCI:0000:4a:00): 999, pid=4, name=x, something new",
        "[  5.0] nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 24007, Fatal, Link 3 sourcetrack timeout",
    ])
    f = judge(parse_text(log, "kern.log"))
    status = {(x.device, x.check): x.status for x in f}
    assert status[("PCI:0000:18:00", "xid-79")] == "fail"
    assert status[("PCI:0000:2a:00", "xid-31")] == "warn"
    assert status[("PCI:0000:3a:00", "xid-64")] == "fail"
    assert status[("PCI:0000:4a:00", "xid-999")] == "warn"
    assert status[("nvidia-nvswitch0 (PCI:0000:05:00.0)", "sxid-24007")] == "fail"


def test_xid_table_actions_are_known_and_sourced():
    table = xid_table()
    assert "docs.nvidia.com/deploy/xid-errors" in table["source"]
    assert {e["action"] for e in table["xid"].values()} <= {"IGNORE", "RESTART_APP", "RESET_GPU", "RESTART_BM",
                                                            "CONTACT_SUPPORT"}


# --- thresholds, consistency, detection --------------------------------------------------------

def test_every_threshold_has_a_source_and_overrides_are_checked():
    assert all(src.strip() for src in threshold_sources().values())
    assert load_thresholds({"ib_symbol_errors_fail": 50})["ib_symbol_errors_fail"] == 50
    with pytest.raises(HealthInputError, match="thresholds.ib_symbol_error_fail: .*did you mean 'ib_symbol_errors_fail'"):
        load_thresholds({"ib_symbol_error_fail": 5})
    with pytest.raises(HealthInputError, match="is not a number"):
        load_thresholds({"ib_symbol_errors_fail": "ten"})


def test_the_odd_host_out_in_driver_vbios_and_firmware_is_named():
    q = (FIX / "nvidia-smi-q-a100-sxm4-40gb-x8-healthy.txt").read_text()
    a = parse_text(q, "a.txt", host="node-a")
    b = parse_text(q, "b.txt", host="node-b")
    c = parse_text(q.replace("460.32.03", "470.57.02").replace("92.00.36.00.04", "92.00.45.00.01"), "c.txt",
                   host="node-c")
    ib = (FIX / "ibstat-a100-8ib-200g-plus-eth-healthy.txt").read_text()
    fw = ib.split("Firmware version: ")[1].split()[0]
    d = parse_text(ib, "d.txt", host="node-a")
    e = parse_text(ib, "e.txt", host="node-b")
    g = parse_text(ib.replace(fw, "20.99.9999"), "g.txt", host="node-c")
    found = {(x.host, x.check) for x in consistency([a, b, c, d, e, g])}
    assert found == {("node-c", "consistency-driver"), ("node-c", "consistency-vbios"),
                     ("node-c", "consistency-nic-firmware")}
    assert consistency([a, b]) == []


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("hello\x00world", "binary"),
    ("lorem ipsum dolor sit amet\nconsectetur\n", "not a recognised health output"),
    ('{"foo": 1}', "JSON, but not `dcgmi diag -j` output"),
    ('{"DCGM GPU Diagnostic": {"test_categories": [', "does not parse as JSON"),
    ("<?xml version=\"1.0\" ?>\n<nvidia_smi_log>\n<driver_version>535</driver_version>\n<gpu id=\"0\">",
     r"x\.txt:\d+:\d+: nvidia-smi -q -x XML does not parse"),
])
def test_bad_inputs_are_refused_naming_the_file(text, message):
    with pytest.raises(HealthInputError, match=message) as err:
        parse_text(text, "x.txt")
    assert str(err.value).startswith("x.txt")


def test_two_tools_in_one_file_are_refused_as_mixed():
    mixed = (FIX / "ibstat-a100-8ib-200g-plus-eth-healthy.txt").read_text() + \
        (FIX / "dmesg-xid119-xe9680-faulty-gsp-timeout.log").read_text()
    with pytest.raises(HealthInputError, match=r"mixed\.txt: mixes outputs of several tools: ibstat \(line 1\), "
                                               r"kernel log .*\(line \d+\)"):
        detect(mixed, "mixed.txt")


def test_quote_prefix_and_prompts_are_stripped():
    text = "\n".join("> " + line for line in NVLINK_E.splitlines())
    text = "> $ nvidia-smi nvlink -e\n" + text
    assert judge(parse_text(text, "mail.txt"))[0].device.startswith("GPU 3 link")


def test_report_document_shape():
    parsed = parse_text(NVLINK_E, "nvlink-e.txt", host="n1")
    doc = report([parsed], judge(parsed))
    assert doc["schema"] == "factoryctl.health/v1"
    assert doc["inputs"] == [{"file": "nvlink-e.txt", "format": "nvidia-smi-nvlink", "host": "n1"}]
    assert doc["summary"] == {"pass": 1, "warn": 2, "fail": 1}
    assert set(doc["findings"][0]) == {"source", "host", "device", "check", "status", "value", "expected", "detail"}


def test_a_clean_kernel_log_is_judged_clean_not_refused():
    log = "\n".join(f"[{i}.000000] usb 1-1: new high-speed USB device number {i}" for i in range(1, 20))
    parsed = parse_text(log, "dmesg.txt")
    assert parsed.format == "kernel-log"
    assert [(f.check, f.status) for f in judge(parsed)] == [("kernel-log", "pass")]


def test_xid_154_takes_the_action_its_text_names():
    log = ("[ 9.0] NVRM: Xid (PCI:0000:18:00): 154, GPU recovery action changed from 0x0 (None) to 0x2"
           " (Node Reboot Required)")
    f = judge(parse_text(log, "kern.log"))
    assert [(x.check, x.status) for x in f] == [("xid-154", "fail")]
    assert "reboot" in f[0].detail


def test_hw_slowdown_while_idle_warns():
    one = _first_gpu(H100).replace("            HW Power Brake Slowdown       : Not Active",
                                   "            HW Power Brake Slowdown       : Active")
    f = judge(parse_text(one, "idle.txt"))  # Idle: Active, SM 345 of 1980 MHz
    assert ("GPU 00000000:53:00.0", "clock-throttle-hw") in _bad(f, "warn")


def test_dcgm4_json_shape_entity_results_and_metadata():
    # synthetic, in the shape DCGM 4 emits ("DCGM Diagnostic", entity_group/entity_id results,
    # test_summary, metadata), as NVIDIA/DCGM's own tests read it (testing/python3 diag tests)
    doc = {"DCGM Diagnostic": {"test_categories": [
        {"category": "Deployment", "tests": [{"name": "software", "results": [],
                                              "test_summary": {"status": "Pass"}}]},
        {"category": "Stress", "tests": [{"name": "targeted_power", "test_summary": {"status": "Fail"}, "results": [
            {"entity_group": "GPU", "entity_id": 0, "status": "Pass"},
            {"entity_group": "GPU", "entity_id": 6, "status": "Fail",
             "warnings": [{"error_category": 4, "error_id": 45, "warning": "GPU 6 power limit reached"}]}]}]}]},
        "metadata": {"version": "4.2.3", "Driver Version Detected": "580.82.09"}}
    parsed = parse_text(json.dumps(doc), "diag4.json")
    assert parsed.versions.driver == "580.82.09"
    f = judge(parsed)
    assert _bad(f) == [("GPU 6", "dcgm-diag targeted_power")]
    assert ("all GPUs", "dcgm-diag software") in [(x.device, x.check) for x in f if x.status == "pass"]


def test_every_check_the_judge_emits_is_documented(tmp_path):
    from factoryctl.health.checks import check_name

    emitted = set()
    for path in FIX.rglob("*"):
        if path.is_file() and path.name != "SOURCES.md":
            emitted |= {f.check for f in judge(parse_text(path.read_text(errors="replace"), path.name),
                                               expect_ib_rate=400)}
    for text in (CSV, NVLINK_E, json.dumps(DIAG_JSON)):
        emitted |= {f.check for f in judge(parse_text(text, "x"))}
    undocumented = sorted(c for c in emitted if check_name(c) is None)
    assert undocumented == []
    assert check_name("no-such-check") is None


def test_health_md_is_generated_from_the_package():
    from factoryctl.health.reference import markdown

    assert (ROOT / "docs" / "health.md").read_text() == markdown(), \
        "regenerate: python -m factoryctl.health.reference > docs/health.md"


def test_xml_with_entities_is_refused_before_expansion():
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log [\n<!ENTITY a "aaaaaaaaaa">\n'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n<nvidia_smi_log><gpu id="0">&b;</gpu></nvidia_smi_log>\n')
    with pytest.raises(HealthInputError, match=r"bomb\.xml:3: XML declares entities"):
        parse_text(bomb, "bomb.xml")


def test_a_q_output_cut_after_some_gpus_warns_that_the_rest_are_not_judged():
    cut = H100.split("GPU 00000000:86:00.0")[0]  # 3 of the 8 GPU sections
    f = judge(parse_text(cut, "cut.txt"))
    count = next(x for x in f if x.check == "gpu-sections")
    assert (count.status, count.value, count.expected) == ("warn", 3, 8)
    whole = next(x for x in judge(parse_text(H100, "whole.txt")) if x.check == "gpu-sections")
    assert whole.status == "pass"


def test_with_no_majority_the_spread_is_one_finding_not_every_host():
    q = (FIX / "nvidia-smi-q-d-page-retirement-8gpu-healthy.txt").read_text()
    srcs = [parse_text(q.replace("535.86.10", v), f"{h}.txt", host=h)
            for h, v in (("n1", "535.86.10"), ("n2", "550.54.15"), ("n3", "560.35.03"), ("n4", "560.35.03"))]
    found = [f for f in consistency(srcs) if f.check == "consistency-driver"]
    assert [(f.device, f.status, f.value) for f in found] == [("all hosts", "warn", "3 versions")]
    assert "560.35.03: n3, n4" in found[0].detail
