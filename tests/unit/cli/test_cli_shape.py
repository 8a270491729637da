"""The command shape: stages raise FactoryctlError subclasses, cli.run shows them (findings
first), and session.open_site refuses by what the command needs."""

from __future__ import annotations

import pytest

from factoryctl.errors import ExitCode, InputRefused
from factoryctl.session import open_site
from tests.helpers import cli, reference_doc, write_doc


def _rule_error(tmp_path):
    """A factory that parses but fails a rule (a rack over its power budget)."""
    doc = reference_doc()
    doc["facility"]["racks"][0]["power_kw"] = 20
    return write_doc(doc, tmp_path / "factory.yaml")


def test_open_site_requires_a_valid_site_by_default(tmp_path):
    with pytest.raises(InputRefused) as e, open_site(_rule_error(tmp_path), "nothing done"):
        pass
    assert str(e.value) == "factory.yaml has errors: nothing done"
    assert any(f.code.startswith("PWR") for f in e.value.findings)


def test_open_site_schema_takes_a_parseable_factory_with_rule_errors(tmp_path):
    with open_site(_rule_error(tmp_path), "nothing destroyed", require="schema") as s:
        assert s.factory.metadata.name and s.workspace.root.parent.name == ".factory"


def test_open_site_schema_refuses_a_file_that_does_not_parse(tmp_path):
    doc = reference_doc()
    doc["site"]["provider"] = "vmware"
    with pytest.raises(InputRefused) as e, open_site(write_doc(doc, tmp_path / "f.yaml"), "nothing destroyed",
                                                     require="schema"):
        pass
    assert [f.code for f in e.value.findings] == ["SCH003"]


def test_bench_expect_refuses_through_the_handler(tmp_path):
    res = cli("bench", "expect", _rule_error(tmp_path))
    assert res.code == ExitCode.FAILED and res.out == ""
    assert "error[PWR" in res.err and res.err.rstrip().endswith("error: factory.yaml has errors: nothing expected")


def test_lab_ssh_shows_why_the_file_does_not_load(tmp_path):
    f = tmp_path / "factory.yaml"
    f.write_text("metadata: {name: x\n  bad: [\n")
    res = cli("lab", "ssh", "--file", f, "head01", "--", "true")
    assert res.code == ExitCode.FAILED and res.out == ""
    assert f"{f}:2:" in res.err and "error[SCH001]" in res.err  # the finding, with its position
    assert res.err.rstrip().splitlines()[-1].startswith("error: YAML syntax error")
    res = cli("lab", "ssh", "--file", tmp_path / "missing.yaml", "head01")
    assert res.code == ExitCode.FAILED and f"error: cannot read {tmp_path / 'missing.yaml'}" in res.err
