"""Usage errors exit 64 with a message, unreadable or unwritable paths exit 1 with the reason,
and nothing a user types ends in a traceback or an "internal error"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from factoryctl.cli import run
from tests.helpers import REFERENCE

DEEP = "a=" + "[" * 5000 + "]" * 5000


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    rc = run(argv)
    cap = capsys.readouterr()
    assert "internal error" not in cap.err and "Traceback" not in cap.out + cap.err, cap.err
    return rc, cap.out + cap.err


@pytest.mark.parametrize("value", [
    "a=!!python/object/apply:os.system ['touch /tmp/pwned']",
    "a=!!python/name:os.system",
    "a=!vault secret",
    "a=*anchor",
    "a=&x [*x]",
    DEEP,
    "a=" + "[" * 5000,
    "a=x: y: z",
    ".".join(["a"] * 3000) + "=1",
    "a\nb: c=1",
    "a\tb=1",
])
def test_fork_refuses_a_set_value_that_is_not_plain_data(tmp_path: Path, capsys, value: str) -> None:
    rc, text = _run(capsys, ["blueprint", "fork", "lab", str(tmp_path / "site"), "--set", value])
    assert rc == 64, text
    assert "--set" in text
    assert len(text) < 2000, "a hostile --set value is echoed cut short"
    assert not (tmp_path / "site").exists()
    assert not [p for p in tmp_path.iterdir()], "nothing half-written"


def test_fork_reads_set_values_as_yaml_1_2_data(tmp_path: Path, capsys) -> None:
    from ruamel.yaml import YAML

    rc, text = _run(capsys, ["blueprint", "fork", "lab", str(tmp_path / "s"), "--set", "metadata.name=ok",
                             "--set", "x.n=8", "--set", "x.l=[1, {f: 2.5}]", "--set", "x.s=!!str 5", "--set", "x.c=#note"])
    assert rc == 1, text  # x is not a factory key: forked, and validate says so
    doc = YAML(typ="safe").load((tmp_path / "s" / "factory.yaml").read_text())
    assert doc["x"] == {"n": 8, "l": [1, {"f": 2.5}], "s": "5", "c": None}


@pytest.mark.parametrize("make, hint", [
    (lambda d: (d / "f").write_text("x"), "not a folder"),
    (lambda d: (d / "f").mkdir() or (d / "f" / "keep").write_text("x"), "not empty"),
    (lambda d: (d / "f").symlink_to(d / "elsewhere"), "symbolic link"),
])
def test_fork_into_an_unusable_destination_is_a_usage_error(tmp_path: Path, capsys, make, hint: str) -> None:
    make(tmp_path)
    rc, text = _run(capsys, ["blueprint", "fork", "lab", str(tmp_path / "f")])
    assert rc == 64 and hint in text, text


def test_fork_under_a_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    rc, text = _run(capsys, ["blueprint", "fork", "lab", str(tmp_path / "file" / "site")])
    assert rc == 64 and "is a file" in text, text
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("dest", ["", "."])
def test_fork_into_the_current_folder_is_a_usage_error(tmp_path: Path, capsys, monkeypatch, dest: str) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _ = _run(capsys, ["blueprint", "fork", "lab", dest])
    assert rc == 64
    assert list(tmp_path.iterdir()) == []


def test_fork_into_an_unwritable_place_is_a_failure_with_its_reason(tmp_path: Path, capsys) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/factoryctl-test/site")  # even root cannot create folders in /proc
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        target = ro / "site"
    rc, text = _run(capsys, ["blueprint", "fork", "lab", str(target)])
    assert rc == 1 and "cannot write" in text, text


@pytest.mark.parametrize("argv", [
    ["validate", ""], ["inspect", ""], ["render", ""], ["bom", ""], ["cost", ""], ["report", ""],
    ["plan", ""], ["validate", "a\0b"], ["render", str(REFERENCE), "--out", ""],
    ["report", str(REFERENCE), "--out", ""], ["cost", str(REFERENCE), "--workspace", ""],
])
def test_an_empty_or_nul_path_is_a_usage_error(capsys, argv: list[str]) -> None:
    rc, text = _run(capsys, argv)
    assert rc == 64, text


@pytest.mark.parametrize("cmd", [["render"], ["report"]])
def test_an_output_folder_that_cannot_be_created_is_a_failure_with_its_reason(tmp_path: Path, capsys, cmd) -> None:
    (tmp_path / "file").write_text("x")
    rc, text = _run(capsys, [*cmd, str(REFERENCE), "--out", str(tmp_path / "file" / "out")])
    assert rc == 1, text
    assert "Not a directory" in text or "not a folder" in text or "File exists" in text, text


@pytest.mark.parametrize("level", ["5", "0", "x"])
def test_verify_diag_level_out_of_range_is_a_usage_error(capsys, level: str) -> None:
    rc, text = _run(capsys, ["verify", str(REFERENCE), "--diag", level])
    assert rc == 64 and "--diag" in text, text
