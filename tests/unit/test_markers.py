"""Tests that need an engine or root say so with a marker (pyproject.toml registers them), so
`pytest -m "not lab"` is the fast lane without root and `-m "not terraform"` etc. narrow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent
NEEDS = {  # what a test module's code does -> the marker its tests carry
    "terraform": re.compile(r"LibTerraform\(|make_engine\("),
    "ansible": re.compile(r"""BIN / "ansible|run_playbook\(|ansible_runner\.run"""),
    "root": re.compile(r"""\["unshare"|ip netns"""),
}


@pytest.mark.parametrize("mark", sorted(NEEDS))
def test_modules_that_run_an_engine_or_need_root_mark_their_tests(mark):
    unmarked = [p.relative_to(UNIT).as_posix() for p in sorted(UNIT.rglob("test_*.py"))
                if p != Path(__file__).resolve() and NEEDS[mark].search(p.read_text())
                and f"mark.{mark}" not in p.read_text()]
    assert unmarked == [], f"these modules need @pytest.mark.{mark} on the tests that do it"


def test_the_markers_are_registered_and_strict(pytestconfig):
    registered = {m.split(":")[0] for m in pytestconfig.getini("markers")}
    assert {"lab", "terraform", "ansible", "root"} <= registered
    assert "--strict-markers" in pytestconfig.getini("addopts")
