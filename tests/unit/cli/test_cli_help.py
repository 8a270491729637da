"""`--help` reads as prose: every command's help is paragraphs that rich wraps to the terminal
(no line break left where a source line ended), and the main commands show an example."""

from __future__ import annotations

import pytest
import typer.main

from factoryctl.cli import app, prose, run

MAIN = ["validate", "inspect", "render", "plan", "apply", "up", "destroy", "drift", "verify", "bom", "cost",
        "report", "blueprint fork"]


def commands() -> list[tuple[str, object]]:
    """(path, click command) of every command and group, the root included."""
    found = []

    def walk(cmd, path):
        found.append((" ".join(path), cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


ALL = [path for path, _ in commands() if path]


def test_prose_joins_lines_inside_paragraphs_only():
    doc = """First line
    goes on.

    Second paragraph
      continues here.

    \b
    kept
      as is"""
    assert prose(doc) == "First line goes on.\n\nSecond paragraph continues here.\n\n\b\nkept\n  as is"


@pytest.mark.parametrize("path,cmd", commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_help_paragraph_is_one_line(path, cmd):
    assert cmd.help, f"`factoryctl {path}` has no help: give it a docstring"
    for para in cmd.help.split("\n\n"):
        assert "\n" not in para or para.startswith("\b"), f"`factoryctl {path}`: a hard break in {para!r}"
    for param in cmd.params:
        assert "\n" not in (getattr(param, "help", None) or ""), f"`factoryctl {path}` {param.name}"


def _description(text: str) -> list[list[str]]:
    """The rendered description's paragraphs (lines between the usage line and the first panel)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    paras, cur = [], []
    for line in lines[start:]:
        if line.lstrip().startswith("╭"):
            break
        if line.strip():
            cur.append(line.rstrip())
        elif cur:
            paras.append(cur)
            cur = []
    return paras + ([cur] if cur else [])


@pytest.mark.parametrize("width", [60, 100])
def test_rendered_help_breaks_lines_only_where_the_next_word_does_not_fit(width, capsys, monkeypatch):
    # rich wraps greedily: a line ends early only when the next word would pass the width. A line
    # that ends with room to spare inside a paragraph is a hard break from the docstring.
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    for path in ALL:
        assert run([*path.split(), "--help"]) == 0
        for para in _description(capsys.readouterr().out):
            for line, nxt in zip(para, para[1:], strict=False):
                word = nxt.split()[0]
                assert len(line) + 1 + len(word) > width - 3, (
                    f"`factoryctl {path} --help` at {width} columns breaks after {line!r} before {word!r}")


@pytest.mark.parametrize("path", MAIN)
def test_main_commands_show_an_example(path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert run([*path.split(), "--help"]) == 0
    text = capsys.readouterr().out
    assert f"Example: factoryctl {path} " in text, text
