"""docs/cli.md is generated from the commands and current: every command, option and exit code
the CLI has is in it, and nothing else."""

from __future__ import annotations

import subprocess
import sys

from factoryctl.cli.reference import EXIT_CODES, cli_markdown, commands
from tests.helpers import ROOT

DOC = ROOT / "docs" / "cli.md"


def test_cli_md_is_current():
    assert DOC.read_text() == cli_markdown(), (
        "docs/cli.md is stale: run `python -m factoryctl.cli.reference > docs/cli.md`")


def test_every_command_and_option_is_documented():
    text = cli_markdown()
    for path, cmd, _ in commands():
        assert f"\n## factoryctl {path}\n" in text, path
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden:
                for opt in p.opts:
                    assert f"`{opt}`" in text.split(f"\n## factoryctl {path}\n")[1].split("\n## ")[0], (path, opt)


def test_every_command_has_its_exit_codes():
    leaves = {path for path, cmd, _ in commands() if not hasattr(cmd, "commands")}
    assert leaves - set(EXIT_CODES) == set(), "add the new commands' exit codes to cli/reference.py EXIT_CODES"
    assert set(EXIT_CODES) - leaves == set(), "EXIT_CODES names commands that no longer exist"


def test_main_commands_have_their_example_as_a_shell_block():
    text = cli_markdown()
    for path in ("validate", "plan", "apply", "up", "blueprint fork"):
        section = text.split(f"\n## factoryctl {path}\n")[1].split("\n## ")[0]
        assert f"```sh\nfactoryctl {path} " in section, path


def test_regenerates_as_a_module_without_warnings():
    res = subprocess.run([sys.executable, "-W", "error", "-m", "factoryctl.cli.reference"], capture_output=True,
                         text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == DOC.read_text()
