"""Which factory file a command means without --file (session.find_factory_file): the one in
the current folder, $FACTORYCTL_FILE, or a usage error naming the candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.errors import ExitCode, UsageProblem
from factoryctl.session import FILE_ENV, find_factory_file, is_factory_document
from tests.helpers import ROOT

LAB = (ROOT / "examples" / "lab.yaml").read_text()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch) -> None:
    monkeypatch.delenv(FILE_ENV, raising=False)


def test_the_one_factory_file_among_other_yaml_is_found(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text(LAB)
    (tmp_path / "configmap.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "ci.yaml").write_text("jobs: [build]\n")
    (tmp_path / "broken.yaml").write_text("a: [\n")
    assert find_factory_file(None, tmp_path) == tmp_path / "site.yml"


def test_several_factory_files_are_named_in_the_usage_error(tmp_path: Path) -> None:
    (tmp_path / "factory.yaml").write_text(LAB)
    (tmp_path / "fra1.yaml").write_text(LAB)
    with pytest.raises(UsageProblem, match=r"2 factory files in .*: factory.yaml, fra1.yaml; pass --file") as e:
        find_factory_file(None, tmp_path)
    assert e.value.exit_code == ExitCode.USAGE


def test_none_found_is_an_error_only_when_required(tmp_path: Path) -> None:
    assert find_factory_file(None, tmp_path, required=False) is None
    with pytest.raises(UsageProblem, match=r"no factory file in .*: pass --file FILE \(or set FACTORYCTL_FILE\)"):
        find_factory_file(None, tmp_path)


def test_given_wins_then_the_environment(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "factory.yaml").write_text(LAB)
    (tmp_path / "b.yaml").write_text(LAB)
    assert find_factory_file(Path("x.yaml"), tmp_path) == Path("x.yaml")
    monkeypatch.setenv(FILE_ENV, str(tmp_path / "b.yaml"))
    assert find_factory_file(None, tmp_path) == tmp_path / "b.yaml"
    monkeypatch.setenv(FILE_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(UsageProblem, match="FACTORYCTL_FILE=.*gone.yaml is not a file"):
        find_factory_file(None, tmp_path)


@pytest.mark.parametrize(("doc", "is_factory"), [
    ({"apiVersion": "factoryctl/v1alpha1", "kind": "Factory"}, True),
    ({"metadata": {"name": "x"}, "site": {}}, True),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}, False),
    (["a"], False),
    (None, False),
])
def test_what_counts_as_a_factory_file(doc, is_factory: bool) -> None:
    assert is_factory_document(doc) is is_factory
