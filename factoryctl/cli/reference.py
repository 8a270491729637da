"""docs/cli.md, the command-line reference, generated from the commands themselves: each
command's usage, help, arguments, options (type, default, environment variable) and exit
codes, and its example. tests/unit/cli/test_cli_reference.py checks the file is current.

Regenerate with: python -m factoryctl.cli.reference > docs/cli.md
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer.main

from ..errors import ExitCode
from .app import app

# What each exit code means for each command, beside the codes every command shares (64 for a
# usage error, 130 for Ctrl-C). Kept here, by the generator, so a new command without its entry
# fails the reference test instead of appearing undocumented.
EXIT_CODES: dict[str, dict[int, str]] = {
    "validate": {0: "no finding at or above --fail-level", 1: "findings at or above --fail-level, or the file cannot be read"},
    "inspect": {0: "facts printed, no errors", 1: "rules found errors (the facts are printed anyway), or the file cannot be loaded"},
    "render": {0: "rendered, or with --check the tree is current", 2: "with --check: the tree on disk would change",
               1: "the file has errors, or --out is a folder factoryctl did not render"},
    "plan": {0: "planned (with --detailed-exitcode: and nothing to change)", 2: "with --detailed-exitcode: changes planned",
             1: "the file has errors, or a stack failed to plan"},
    "apply": {0: "applied", 1: "the file has errors, the saved plan is stale or missing, no confirmation, or an engine failed"},
    "up": {0: "planned, applied and every check passed", 1: "as apply, or a verification check failed"},
    "destroy": {0: "destroyed (or nothing to destroy)", 1: "no confirmation, or an engine failed"},
    "drift": {0: "in sync", 2: "drift", 1: "could not check (an unreachable host or an engine failure wins over drift)"},
    "usage": {0: "usage metered and shown (recorded as runs/<id>/usage.json)",
              1: "Slurm accounting or Prometheus missing or not answering, the site never applied, or the file has errors",
              64: "usage error (e.g. --since not before --until, a time that does not parse)"},
    "status": {0: "every declared host up, Slurm's partitions up and every inference endpoint ready",
               1: "something declared is down or not ready, the site was never applied, or the file has errors"},
    "bom": {0: "printed", 1: "the file has errors"},
    "cost": {0: "printed", 1: "the file has errors"},
    "report": {0: "written", 1: "the file has errors"},
    "verify": {0: "every check and benchmark figure passed", 1: "a check or figure failed, or the site could not be reached"},
    "schema": {0: "printed"},
    "version": {0: "printed"},
    "blueprint list": {0: "listed"},
    "blueprint show": {0: "printed", 64: "no blueprint of that name"},
    "blueprint fork": {0: "forked; the new file validates", 1: "forked, and the new file has errors",
                       64: "unknown blueprint, a bad --set, or the destination exists"},
    "rules list": {0: "listed"},
    "rules explain": {0: "explained", 64: "no rule with that code"},
    "health parse": {0: "every file judged, no finding fails (warnings allowed)",
                     1: "a finding fails, or a file is empty, binary, truncated, unrecognised or mixes tools"},
    "bench parse": {0: "every log parsed with rows and no errors", 1: "data errors, a crash, no rows or an unreadable file"},
    "bench expect": {0: "printed", 1: "the file has errors"},
    "bench judge": {0: "no figure failed", 1: "a figure failed, or the file has errors"},
    "bench run-local": {0: "every rank ran and no figure failed", 1: "a rank failed or a figure failed its threshold"},
    "bench run": {0: "the benchmark ran and no figure failed", 1: "a figure or the run failed"},
    "bench serve": {0: "every level ran and met its SLOs", 1: "an SLO missed, every request of a level failed, or no model listed"},
    "lab up": {0: "every host started", 1: "a host could not be started"},
    "lab down": {0: "every host stopped and removed", 1: "something could not be removed"},
    "lab status": {0: "every recorded host answers (or none is recorded)", 1: "a host is down"},
    "lab ssh-config": {0: "printed", 1: "no lab there"},
    "lab ssh": {0: "the remote command's own status (any code)", 1: "no such host or no lab there"},
    "lab model": {0: "made (or found in the cache) and listed", 1: "the folder is not empty or not writable, or the serve extra is missing"},
}
SHARED = {int(ExitCode.USAGE): "usage error: an unknown option, a bad value, a missing argument",
          int(ExitCode.INTERRUPTED): "interrupted (Ctrl-C); the work in flight stopped cleanly"}


def commands() -> list[tuple[str, Any, Any]]:
    """(path, command, context) of every command and group below the root, in --help order."""
    root = typer.main.get_command(app)
    found: list[tuple[str, Any, Any]] = []

    def walk(cmd, ctx, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            found.append((" ".join([*path, name]), sub, sub_ctx))
            walk(sub, sub_ctx, [*path, name])

    walk(root, root.context_class(root, info_name="factoryctl"), [])
    return found


def _md(text: str) -> str:
    # A bare <name> is an HTML tag to a Markdown renderer, which drops it (CommonMark 6.6);
    # a backslash keeps the angle brackets as text (CommonMark 2.4, backslash escapes).
    return text.replace("<", "\\<").replace(">", "\\>")


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _type(p, ctx) -> str:
    if getattr(p, "is_flag", False):
        return "flag"
    t = p.display_type(ctx).strip("<>")
    if p.multiple and t.startswith("list[") and t.endswith("]"):
        t = t[5:-1]
    if "|" in t:
        t = "one of " + ", ".join(f"`{c}`" for c in t.split("|"))
    if getattr(p, "min", None) is not None or getattr(p, "max", None) is not None:
        lo, hi = p.min, p.max
        t = ("float " if t.startswith("float") else "int ") + (f"{lo}..{hi}" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}")
    return t + (" (repeatable)" if p.multiple else "")


def _default(p) -> str:
    d = p.default
    if d is None or d == [] or getattr(p, "is_flag", False) and d is False:
        return ""
    return f"`{d.value if isinstance(d, Enum) else d}`"


def _metavar(p) -> str:
    m = p.metavar or p.name.upper()
    return m if p.required or m.startswith("[") else f"[{m}]"


def _paragraphs(help_text: str) -> list[str]:
    """Help paragraphs as Markdown: an `Example:` paragraph becomes a shell block."""
    out: list[str] = []
    for para in (help_text or "").split("\n\n"):
        para = para.strip("\b").strip()
        if para.startswith("Example:"):
            out += ["Example:", "", "```sh", para.removeprefix("Example:").strip(), "```"]
        else:
            out.append(_md(para))
        out.append("")
    return out


def cli_markdown() -> str:
    root_help = typer.main.get_command(app).help or ""
    out = [
        "# Command-line reference",
        "",
        "Generated from the commands by `python -m factoryctl.cli.reference > docs/cli.md`; do not edit",
        "by hand; `factoryctl COMMAND --help` prints the same text.",
        "",
        root_help.split("\n\n")[0],
        "",
        "Exit codes, for every command: `0` success; `1` invalid input, failed checks or engine",
        "failure; `2` changes or drift present (only where a command says so); `64` usage error;",
        "`130` interrupted. Tracebacks appear only with `--debug` (or `FACTORYCTL_DEBUG=1`), an",
        "option of `factoryctl` itself: `factoryctl --debug plan FILE`.",
        "",
    ]
    listed = commands()
    out += ["| command | what it does |", "|---|---|"]
    for path, cmd, _ in listed:
        first = (cmd.help or "").split("\n\n")[0]
        anchor = "factoryctl-" + path.replace(" ", "-")
        out.append(f"| [`factoryctl {path}`](#{anchor}) | {_cell(first)} |")
    out.append("")
    for path, cmd, ctx in listed:
        group = hasattr(cmd, "commands")
        out += [f"## factoryctl {path}", ""]
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        opts = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
        usage = " ".join(["factoryctl", path, "COMMAND [ARGS]..." if group else "[OPTIONS]",
                          *(_metavar(p) for p in args)])
        out += [f"Usage: `{usage}`", ""]
        out += _paragraphs(cmd.help or "")
        if group:
            subs = ", ".join(f"[`{name}`](#factoryctl-{path.replace(' ', '-')}-{name})" for name in cmd.commands)
            out += [f"Commands: {subs}.", ""]
            continue
        if args:
            out += ["| argument | type | required | description |", "|---|---|---|---|"]
            for p in args:
                out.append(f"| `{(p.metavar or p.name.upper()).strip('[].')}` | {_type(p, ctx)} | "
                           f"{'yes' if p.required else 'no'} | {_cell(p.help or '')} |")
            out.append("")
        out += ["| option | type | default | description |", "|---|---|---|---|"]
        for p in opts:
            names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            env = f" (environment: `{p.envvar}`)" if p.envvar else ""
            out.append(f"| {names} | {_type(p, ctx)} | {_default(p)} | {_cell(p.help or '')}{env} |")
        out.append("")
        codes = {**EXIT_CODES.get(path, {}), **SHARED}
        out += ["Exit codes:", ""]
        out += [f"- `{code}`: {what}" for code, what in sorted(codes.items())]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(cli_markdown())
