"""`factoryctl render` as a user meets it: exit codes and messages (the tree itself: goldens)."""

from __future__ import annotations

import shutil
from pathlib import Path

from factoryctl.cli import run
from factoryctl.errors import ExitCode
from tests.helpers import REFERENCE, reference_doc, write_doc


def test_render_refuses_a_file_with_errors(tmp_path: Path, capsys) -> None:
    doc = reference_doc()
    doc["site"]["power_capacity_kw"] = 1  # PWR005
    f = write_doc(doc, tmp_path / "factory.yaml")
    assert run(["render", str(f)]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "PWR005" in err and err.rstrip().endswith("error: factory.yaml has errors: nothing rendered")
    assert not (tmp_path / ".factory").exists()


def test_render_check_and_write_exit_codes(tmp_path: Path, capsys) -> None:
    site = tmp_path / "site"
    site.mkdir()
    f = site / "factory.yaml"
    shutil.copy(REFERENCE, f)
    assert run(["render", str(f), "--check"]) == ExitCode.CHANGES  # nothing rendered yet
    assert not (site / ".factory").exists() or not any((site / ".factory").rglob("manifest.json"))
    assert run(["render", str(f)]) == ExitCode.OK
    assert "rendered:" in capsys.readouterr().out
    assert run(["render", str(f), "--check"]) == ExitCode.OK
    assert "up to date:" in capsys.readouterr().out


def test_render_into_a_folder_of_someone_elses_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert run(["render", str(REFERENCE), "--out", str(out)]) == ExitCode.FAILED
    assert "error:" in capsys.readouterr().err and (out / "mine.txt").read_text() == "keep"
