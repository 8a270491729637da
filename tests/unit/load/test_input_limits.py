"""Bounded input (issue 12): sizes a site cannot have, infinities, YAML 1.2 numbers, and user-given
paths that are not regular files are refused quickly, with the place and the reason, by every
command that reads them; never an internal error, a hang or memory exhaustion."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factoryctl import catalog
from factoryctl.cli import run
from factoryctl.files import ReadRefused, read_bytes
from factoryctl.load import MAX_BYTES, LoadError, load_text
from factoryctl.model import limits
from tests.helpers import ROOT, check_doc, check_text, reference_doc, write_doc


def _run(capsys, *args) -> tuple[int, str]:
    rc = run([str(a) for a in args])
    cap = capsys.readouterr()
    both = cap.out + cap.err
    assert "Traceback" not in both and "internal error" not in both, both[-2000:]
    return rc, both


def _errors(c) -> list:
    return [f for f in c.findings if f.severity.value == "error"]


# --- sizes a site cannot have ------------------------------------------------------------------


def _huge_group(doc):
    doc["nodes"][1]["count"] = 200_000


def _many_hosts(doc):
    doc["nodes"][0]["count"] = 60_000
    doc["nodes"][1]["count"] = 60_000


def _nic_count(doc):
    doc["nodes"][1]["hardware"]["nics"][0]["count"] = 1_000


def _gpu_count(doc):
    doc["nodes"][1]["hardware"]["gpu"]["count"] = 1_000


BOUNDS = [
    # (id, mutation, YAML path of the finding, text of the bound in the message)
    ("nodes-per-group", _huge_group, "nodes[1].count", "at most 100,000"),
    ("total-hosts", _many_hosts, "<document>", "120,000 hosts in the site"),
    ("nics-per-node", _nic_count, "nodes[1].hardware.nics[0].count", "at most 32"),
    ("nics-together", lambda d: d["nodes"][1]["hardware"]["nics"].extend(
        [dict(d["nodes"][1]["hardware"]["nics"][0], count=30, name=f"extra{i}") for i in range(3)]),
     "nodes[1].hardware", "at most 32"),
    ("gpus-per-node", _gpu_count, "nodes[1].hardware.gpu.count", "at most 72 (the largest NVLink domain"),
    ("link-speed", lambda d: d["fabric"]["compute"].update(link_gbps=10**9), "fabric.compute.link_gbps", "at most 3,200"),
    ("rack-power", lambda d: d["facility"]["racks"][0].update(power_kw=1e7), "facility.racks[0].power_kw", "at most 1,000"),
    ("node-power", lambda d: d["nodes"][1]["hardware"].update(power_kw=5e4), "nodes[1].hardware.power_kw", "at most 1,000"),
    ("memory", lambda d: d["nodes"][1]["hardware"].update(memory_gb=10**12), "nodes[1].hardware.memory_gb", "at most 65,536"),
    ("storage", lambda d: d["storage"][0].update(capacity_tb=1e12), "storage[0].capacity_tb", "at most 10,000,000"),
    ("context", lambda d: d["inference"][0].update(max_context=10**12), "inference[0].max_context", "at most 100,000,000"),
    ("start-index", lambda d: d["nodes"][1].update(start_index=10**15), "nodes[1].start_index", "at most 1,000,000"),
]


@pytest.mark.parametrize(("mutate", "path", "bound"), [b[1:] for b in BOUNDS], ids=[b[0] for b in BOUNDS])
def test_bounds_are_refused_by_the_schema_with_the_reason(tmp_path, mutate, path, bound):
    doc = reference_doc()
    mutate(doc)
    t0 = time.perf_counter()
    c = check_doc(doc, tmp_path)
    assert time.perf_counter() - t0 < 5  # refused before anything is expanded
    assert c.site is None, "refused by the schema, before resolve"
    found = [f for f in _errors(c) if f.path == path]
    assert found, [(f.code, f.path, f.message) for f in c.findings]
    assert bound in found[0].message and "(" in found[0].message  # the bound and why
    assert found[0].hint


def test_gpu_bound_is_the_largest_nvlink_domain_in_the_catalog():
    assert limits.GPUS_PER_NODE.most == max(g.nvlink_domain for g in catalog.entries("gpu"))


def test_a_billion_nodes_is_refused_in_seconds_not_a_memory_error(tmp_path, capsys):
    doc = reference_doc()
    doc["nodes"][1]["count"] = 10**12
    t0 = time.perf_counter()
    rc, out = _run(capsys, "validate", write_doc(doc, tmp_path / "factory.yaml"))
    assert rc == 1 and "at most 100,000" in out
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("field", [
    ("nodes", 1, "hardware", "power_kw"),
    ("facility", "racks", 0, "power_kw"),
    ("facility", "pue"),
    ("storage", 0, "capacity_tb"),
    ("site", "power_capacity_kw"),
    ("fabric", "compute", "oversubscription"),
])
@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan"])
def test_infinity_and_nan_are_refused_everywhere(tmp_path, field, text):
    doc = reference_doc()
    cur = doc
    for p in field[:-1]:
        cur = cur[p]
    cur[field[-1]] = 1.5  # placeholder, replaced in the text below to keep YAML's own spelling
    body = write_doc(doc, tmp_path / "f.yaml").read_text()
    c = check_text(body.replace(f"{field[-1]}: 1.5", f"{field[-1]}: {text}", 1), tmp_path)
    assert c.site is None
    assert any("not a finite number" in f.message for f in _errors(c)), [f.message for f in c.findings]


@pytest.mark.parametrize(("template", "start"), [
    ("gpu{index:0999999d}", 1), ("gpu{index:0{index}d}", 999_999), ("gpu{index:09999999999999999999d}", 1),
    ("gpu{index:.99999s}", 1), ("gpu{index:>64}", 1),
])
def test_hostname_templates_cannot_build_huge_names(tmp_path, template, start):
    doc = reference_doc()
    doc["nodes"][1]["hostname"] = template
    doc["nodes"][1]["start_index"] = start
    t0 = time.perf_counter()
    c = check_doc(doc, tmp_path)
    assert time.perf_counter() - t0 < 5
    found = [f for f in _errors(c) if f.path == "nodes[1].hostname"]
    assert found and len(found[0].message) < 300, [f.message[:200] for f in c.findings]


def test_hostname_widths_that_fit_are_accepted(tmp_path):
    doc = reference_doc()
    doc["nodes"][1]["hostname"] = "gpu{index:05d}"
    c = check_doc(doc, tmp_path)
    assert not _errors(c)
    assert c.site.hosts[-1].name.startswith("gpu0000")


# --- every command that reads a factory stops on validate's errors ------------------------------


def _commands(f: Path, tmp: Path) -> dict[str, list]:
    log = tmp / "log.txt"
    return {
        "validate": ["validate", f], "inspect": ["inspect", f], "render": ["render", f, "--out", tmp / "out"],
        "plan": ["plan", f], "bom": ["bom", f], "cost": ["cost", f], "report": ["report", f, "--out", tmp / "rep"],
        "verify": ["verify", f], "drift": ["drift", f], "apply": ["apply", f, "--auto-approve"],
        "up": ["up", f, "--auto-approve"], "destroy": ["destroy", f, "--auto-approve"],
        "bench-expect": ["bench", "expect", f], "bench-judge": ["bench", "judge", f, log],
    }


COMMANDS = list(_commands(Path("f"), Path("t")))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("defect", ["count", "nics", "inf"])
def test_every_command_refuses_what_validate_refuses(tmp_path, capsys, monkeypatch, command, defect):
    monkeypatch.chdir(tmp_path)
    doc = reference_doc()
    if defect == "count":
        doc["nodes"][1]["count"] = 10**9
    elif defect == "nics":
        doc["nodes"][1]["hardware"]["nics"][0]["count"] = 10**9
    else:
        doc["nodes"][1]["hardware"]["power_kw"] = float("inf")
    f = write_doc(doc, tmp_path / "factory.yaml")
    (tmp_path / "log.txt").write_text("# nccl-tests\n")
    t0 = time.perf_counter()
    rc, out = _run(capsys, *_commands(f, tmp_path)[command])
    assert rc == 1, out[-1500:]
    assert "nodes[1]" in out and ("at most" in out or "finite" in out), out[-1500:]
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / ".factory").exists() or command == "destroy"
    assert not (tmp_path / "out").exists() and not (tmp_path / "rep").exists()


@pytest.mark.parametrize("command", ["bom", "cost", "report", "bench-expect", "bench-judge"])
def test_economics_and_bench_stop_on_rule_errors(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    doc = reference_doc()
    doc["site"]["power_capacity_kw"] = 1  # PWR005: the feed cannot carry the site
    f = write_doc(doc, tmp_path / "factory.yaml")
    (tmp_path / "log.txt").write_text("# nccl-tests\n")
    rc, out = _run(capsys, *_commands(f, tmp_path)[command])
    assert rc == 1 and "PWR005" in out
    assert "leaf switch" not in out and "Capex" not in out and not (tmp_path / "rep").exists()


# --- YAML 1.2 numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("2e6", 2_000_000.0), ("1e-300", 1e-300), ("2.5e6", 2_500_000.0), ("-2E+3", -2000.0), (".5", 0.5),
    ("0o17", 15), ("0x1F", 31), ("010", 10), ("1.30", 1.3),
])
def test_yaml_1_2_core_numbers_are_numbers(text, value):
    got = load_text(f"a: {text}\n").data["a"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("text", "value"), [
    ('"2e6"', "2e6"), ("!!str 2e6", "2e6"), ("yes", "yes"), ("1_000", "1_000"), ("0b101", "0b101"),
    ("2e", "2e"), ("1.2.3", "1.2.3"),
])
def test_strings_stay_strings(text, value):
    assert load_text(f"a: {text}\n").data["a"] == value


@pytest.mark.parametrize(("text", "why"), [("1e999", "infinity"), ("-1e999", "infinity"),
                                            ("1e-400", "zero"), ("9" * 5000, "5,000 characters")])
def test_numbers_out_of_range_are_refused_at_their_position(text, why):
    with pytest.raises(LoadError) as e:
        load_text(f"a: 1\nb: {text}\n")
    f = e.value.findings[0]
    assert why in f.message and (f.line, f.column) == (2, 4) and f.hint


def test_integral_floats_count_as_whole_numbers(tmp_path):
    doc = reference_doc()
    body = write_doc(doc, tmp_path / "f.yaml").read_text()
    c = check_text(body.replace("count: 4\n", "count: 4e0\n", 1).replace("memory_gb: 2048", "memory_gb: 2.048e3"), tmp_path)
    assert not _errors(c), [f.message for f in c.findings]
    assert c.factory.nodes[1].count == 4 and isinstance(c.factory.nodes[1].count, int)
    c = check_text(body.replace("count: 4\n", "count: 2.5\n", 1), tmp_path)
    found = [f for f in _errors(c) if f.path == "nodes[1].count"]
    assert found and "whole number" in found[0].message


# --- files that are not files -----------------------------------------------------------------


def _cli(*args, timeout=30) -> subprocess.CompletedProcess:
    """The CLI in a child process, so that a hang fails the test instead of stalling it."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "from factoryctl.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize("command", [["validate"], ["bench", "parse"], ["render"], ["bom"]])
def test_dev_zero_is_refused_before_reading(command):
    t0 = time.perf_counter()
    res = _cli(*command, "/dev/zero")
    assert res.returncode == 1 and "cannot read /dev/zero: it is a character device, not a regular file" in res.stdout + res.stderr
    assert "Traceback" not in res.stderr and time.perf_counter() - t0 < 20


@pytest.mark.parametrize("command", [["validate"], ["bench", "parse"], ["inspect"]])
def test_a_fifo_does_not_hang(tmp_path, command):
    fifo = tmp_path / "factory.yaml"
    os.mkfifo(fifo)
    res = _cli(*command, fifo, timeout=20)  # subprocess.TimeoutExpired fails the test
    assert res.returncode == 1 and "FIFO" in res.stdout + res.stderr


def test_bench_judge_refuses_a_fifo_result(tmp_path, capsys):
    fifo = tmp_path / "result.log"
    os.mkfifo(fifo)
    res = _cli("bench", "judge", ROOT / "examples" / "reference" / "factory.yaml", fifo, timeout=20)
    assert res.returncode == 1 and "FIFO" in res.stdout + res.stderr


def test_too_large_is_refused_by_size_before_reading(tmp_path, capsys):
    big = tmp_path / "factory.yaml"
    with open(big, "wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_BYTES + 1)
    rc, out = _run(capsys, "validate", big)
    assert rc == 1 and f"too large: {MAX_BYTES + 1:,} bytes, the limit is {MAX_BYTES:,}" in out


def test_read_stops_at_the_limit_when_the_file_grows(tmp_path, monkeypatch):
    # A file that fstat reports small but that yields more: the read is bounded all the same.
    p = tmp_path / "grows"
    p.write_bytes(b"x" * 100)
    real_fstat = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 10, *real_fstat(fd)[7:])))
    with pytest.raises(ReadRefused) as e:
        read_bytes(p, 50)
    assert e.value.reason == "too-large"


def test_unreadable_file_is_exit_1_with_its_reason(tmp_path, capsys, monkeypatch):
    f = write_doc(reference_doc(), tmp_path / "factory.yaml")
    if os.geteuid() == 0:  # root reads a mode-000 file: simulate the kernel's refusal instead
        real_open = os.open

        def deny(path, *a, **k):
            if str(path) == str(f):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *a, **k)

        monkeypatch.setattr(os, "open", deny)
    else:
        f.chmod(0)
    for args in (["validate", f], ["inspect", f], ["bom", f], ["bench", "parse", f]):
        rc, out = _run(capsys, *args)
        assert rc == 1 and f"cannot read {f}: Permission denied" in out, (args, out)


def test_a_directory_names_the_fix(tmp_path, capsys):
    rc, out = _run(capsys, "validate", tmp_path)
    assert rc == 1 and "it is a directory" in out and "factory.yaml inside it" in out


# --- fork --set values ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["!!python/object/apply:os.system ['true']", "[" * 5000, "{a: [1"])
def test_fork_set_with_a_value_yaml_cannot_take_is_a_usage_error(tmp_path, capsys, value):
    rc, out = _run(capsys, "blueprint", "fork", "lab", tmp_path / "site", "--set", f"metadata.owner={value}")
    assert rc == 64 and "--set" in out
    assert not (tmp_path / "site").exists()


def test_limits_doc_lists_every_bound():
    doc = (ROOT / "docs" / "security.md").read_text()
    for name, lim in vars(limits).items():
        if isinstance(lim, limits.Limit):
            assert f"{lim.most:,}" in doc or f"{lim.most:,.0f}" in doc, f"{name} ({lim.most:,}) not in the doc"
