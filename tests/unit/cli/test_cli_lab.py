"""`factoryctl lab status|ssh|ssh-config` run in a site's folder use that site's lab
(.factory/<name>/lab), not ./.lab. No lab is started: the site's lab has no hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factoryctl.cli import run
from factoryctl.session import FILE_ENV
from tests.helpers import ROOT

LAB = (ROOT / "examples" / "lab.yaml").read_text()


@pytest.fixture
def site(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv(FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factory.yaml").write_text(LAB)
    (tmp_path / "notes.yaml").write_text("todo: [apply]\n")  # other YAML does not count
    return tmp_path


def test_status_in_a_site_folder_reports_that_sites_lab(site: Path, capsys) -> None:
    assert run(["lab", "status"]) == 0
    out = capsys.readouterr().out
    lab = site / ".factory" / "lab" / "lab"
    assert f"lab of site lab ({site / 'factory.yaml'}): {lab}" in out
    assert f"no lab hosts in {lab}" in out and ".lab\n" not in out
    assert run(["lab", "status", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["site"] == "lab" and doc["dir"] == str(lab) and doc["hosts"] == []
    assert not (site / ".factory").exists()  # only read: nothing recorded


def test_ssh_config_in_a_site_folder_looks_in_that_sites_lab(site: Path, capsys) -> None:
    assert run(["lab", "ssh-config"]) == 1  # the site is not up: the error names its lab, not ./.lab
    assert f"no lab at {site / '.factory' / 'lab' / 'lab'}" in capsys.readouterr().err


def test_two_factory_files_are_a_usage_error_naming_both(site: Path, capsys) -> None:
    (site / "fra1.yml").write_text(LAB.replace("name: lab", "name: fra1", 1))
    for argv in (["lab", "status"], ["lab", "ssh", "head01", "--", "true"]):
        assert run(argv) == 64
        err = capsys.readouterr().err
        assert "2 factory files in" in err and "factory.yaml, fra1.yml" in err and "--file" in err


def test_the_environment_and_dir_choose(site: Path, capsys, monkeypatch) -> None:
    other = site / "sub"
    other.mkdir()
    (other / "site.yaml").write_text(LAB.replace("name: lab", "name: ams1", 1))
    (site / "fra1.yml").write_text(LAB)  # two here: FACTORYCTL_FILE decides
    monkeypatch.setenv(FILE_ENV, str(other / "site.yaml"))
    assert run(["lab", "status"]) == 0
    assert f"no lab hosts in {other / '.factory' / 'ams1' / 'lab'}" in capsys.readouterr().out
    assert run(["lab", "status", "--dir", str(site / "mylab")]) == 0  # --dir as given
    assert f"no lab hosts in {site / 'mylab'}" in capsys.readouterr().out


def test_no_factory_file_keeps_dot_lab(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv(FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert run(["lab", "status"]) == 0
    assert f"no lab hosts in {tmp_path / '.lab'}" in capsys.readouterr().out
