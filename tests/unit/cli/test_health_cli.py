"""`factoryctl health parse`: exit codes, the JSON document, and bad files (garbage, empty,
truncated, mixed, binary, a folder, missing) refused with the file named and exit 1, never a
traceback. The bad files are synthetic, written here."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, cli

FIX = ROOT / "tests" / "fixtures" / "health"


def test_healthy_files_exit_0_and_json_has_the_schema():
    res = cli("health", "parse", FIX / "dcgmi-diag-r2-a100x8-p4de-healthy.txt", FIX / "ibstat-a100-8ib-200g-plus-eth-healthy.txt",
              "--format", "json")
    assert res.code == 0, res.output
    doc = json.loads(res.out)
    assert doc["schema"] == "factoryctl.health/v1"
    assert [i["format"] for i in doc["inputs"]] == ["dcgmi-diag", "ibstat"]
    assert doc["summary"]["fail"] == 0 and doc["summary"]["pass"] == len(doc["findings"])


def test_a_failing_finding_exits_1_and_the_table_names_the_gpu():
    res = cli("health", "parse", FIX / "dmesg-xid119-xe9680-faulty-gsp-timeout.log", "--host", "gpu-node-07")
    assert res.code == 1
    assert "PCI:0000:9b:00" in res.out and "xid-119" in res.out and "gpu-node-07" in res.out
    assert "0 pass, 0 warn, 1 fail" in res.out


def test_expect_ib_rate_is_applied():
    res = cli("health", "parse", FIX / "ibstatus-a100-hdr200x8-healthy.txt", "--expect-ib-rate", "400", "-f", "json")
    assert res.code == 1
    fails = [f for f in json.loads(res.out)["findings"] if f["status"] == "fail"]
    assert {f["device"] for f in fails} == {f"mlx5_{i} port 1" for i in range(8)}


@pytest.mark.parametrize(("content", "words"), [
    (b"", "empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary"),
    (b"this is not the output of any tool\n", "not a recognised health output"),
    (b'<?xml version="1.0" ?>\n<nvidia_smi_log>\n<gpu id="00000000:18:00.0">\n<product_name>NVIDIA H1',
     "XML does not parse"),
    (b'{"DCGM GPU Diagnostic": {"test_categories": [{"category": "Hardware", "tests": [{"na', "does not parse as JSON"),
    (b"CA 'mlx5_0'\n\tCA type: MT4129\n\tPort 1:\n\t\tState: Active\n[ 1.0] NVRM: Xid (PCI:0000:18:00): 79, GPU has"
     b" fallen off the bus.\n", "mixes outputs of several tools"),
])
def test_bad_files_are_refused_by_name(tmp_path, content, words):
    bad = tmp_path / "capture.txt"
    bad.write_bytes(content)
    good = FIX / "perfquery-hca-port-healthy.txt"
    res = cli("health", "parse", good, bad)
    assert res.code == 1
    assert f"error: {bad}" in res.err and words in res.err
    assert "perfquery-hca-port-healthy.txt: perfquery" in res.out  # the good file is still judged


def test_a_folder_and_a_missing_file_are_refused(tmp_path):
    res = cli("health", "parse", tmp_path, tmp_path / "nope.txt")
    assert res.code == 1
    assert str(tmp_path) in res.err and "nope.txt" in res.err


def test_two_hosts_with_different_drivers_warn_about_the_odd_one(tmp_path):
    q = (FIX / "nvidia-smi-q-d-page-retirement-8gpu-healthy.txt").read_text()
    files = []
    for name, driver in (("n1.txt", "535.86.10"), ("n2.txt", "535.86.10"), ("n3.txt", "550.54.15")):
        p = tmp_path / name
        p.write_text(q.replace("535.86.10", driver))
        files.append(p)
    res = cli("health", "parse", *files, "-f", "json")
    assert res.code == 0
    odd = [f for f in json.loads(res.out)["findings"] if f["check"] == "consistency-driver"]
    assert [(f["host"], f["status"], f["value"], f["expected"]) for f in odd] == [("n3.txt", "warn", "550.54.15",
                                                                                  "535.86.10")]
