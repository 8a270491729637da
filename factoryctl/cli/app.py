"""The command line's shared parts: the Typer app, its consoles, option types and exit codes.
Each command lives in its own module beside this one and registers itself on `app`.

Exit codes: 0 success; 1 invalid input, failed checks or engine failure; 2 changes or drift
present; 64 usage error (so that 2 keeps one meaning).
"""

from __future__ import annotations

import os
from enum import Enum
from inspect import cleandoc
from pathlib import Path

import typer
from rich.console import Console
from rich.measure import Measurement

from .. import __version__
from ..errors import ExitCode

# Typer re-exports BadParameter but not its base, UsageError (click's, or the copy newer Typer
# vendors); every usage error derives from it, so find it through the class hierarchy.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(
    name="factoryctl",
    help="Compile one factory.yaml into a running, verified AI factory.\n\n"
    "Exit codes: 0 ok; 1 invalid input, failed checks or engine failure; "
    "2 changes or drift present; 64 usage error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# What a piped table may grow to: wide enough for any table factoryctl prints (a 2,048-host
# list is long, not wide), small enough that a runaway cell cannot allocate without bound.
NATURAL_WIDTH_LIMIT = 4096


class WholeConsole(Console):
    """A console that never cuts a table when its output is not a terminal.

    rich sizes output to the terminal it finds on stdin, stdout or stderr, and to 80 columns
    when there is none (rich.console.Console.size), so `factoryctl inspect | less` or a CI log
    got headers cut to "fab…". On a terminal this console keeps rich's width; otherwise each
    print is as wide as its widest renderable needs to show every cell whole (its natural
    width, rich.measure.Measurement), and never narrower than COLUMNS (or 80). Plain strings
    are never wrapped (soft_wrap), so only tables and other renderables are measured.
    """

    def __init__(self, **kwargs):
        super().__init__(soft_wrap=True, **kwargs)
        # rich froze COLUMNS at construction; read it at each print instead (size does).
        self._width = None

    def print(self, *objects, **kwargs) -> None:  # noqa: A003 - rich's name
        if self.is_terminal or self._width is not None:
            return super().print(*objects, **kwargs)
        base = self.size.width
        wide = self.options.update_width(NATURAL_WIDTH_LIMIT)
        need = max((Measurement.get(self, wide, o).maximum for o in objects if not isinstance(o, str)),
                   default=0)
        self._width = max(base, min(need, NATURAL_WIDTH_LIMIT))
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = None


out = WholeConsole(highlight=False)
err = WholeConsole(stderr=True, highlight=False)


class Format(str, Enum):
    text = "text"
    json = "json"


class FindingFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


class FailLevel(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


def prose(doc: str | None) -> str | None:
    """A docstring as command help: each paragraph (blank-line separated) one line, so rich
    wraps it to the terminal instead of breaking where the source line ended. Typer joins the
    lines of the first paragraph only and keeps every later line break (typer.rich_utils
    _get_help_text), which split `--help` sentences mid-line. A paragraph opening with \\b
    stays verbatim (click's marker for preformatted text)."""
    if not doc:
        return doc
    paragraphs = cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)


def debug_enabled() -> bool:
    """Tracebacks wanted: --debug, or FACTORYCTL_DEBUG set to anything but empty or 0."""
    return os.environ.get("FACTORYCTL_DEBUG", "") not in ("", "0")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"factoryctl {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on internal errors (env FACTORYCTL_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    if debug:
        os.environ["FACTORYCTL_DEBUG"] = "1"


def path_arg(value: str | Path) -> Path:
    """A path argument: an empty one (which would mean the current folder) or one with a NUL
    byte (which no system call accepts) is a usage error, not a surprise later."""
    if isinstance(value, Path):
        return value
    if not value:
        raise typer.BadParameter("is empty; give a path")
    if "\0" in value:
        raise typer.BadParameter("contains a NUL byte")
    return Path(value)


FileArg = typer.Argument(..., help="Path to factory.yaml.", metavar="FILE", parser=path_arg)


AutoApproveOpt = typer.Option(False, "--auto-approve", help="Do not ask for confirmation (needed without a terminal).")
TerraformBinOpt = typer.Option(None, "--terraform-bin", envvar="FACTORYCTL_TERRAFORM_BIN",
                               help="A terraform/tofu binary instead of the embedded Terraform.")
ConvergeOpt = typer.Option(False, "--converge",
                           help="Run site.yml on every host, even where nothing moved since the last apply "
                                "(by default such hosts are probed and left alone).")
WorkspaceOpt = typer.Option(None, "--workspace", help="Workspace with verify runs (default .factory/<name>).",
                            parser=path_arg)


class Phase(str, Enum):
    terraform = "terraform"
    ansible = "ansible"
    kubernetes = "kubernetes"


class BomFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"


class Connection(str, Enum):
    ssh = "ssh"
    local = "local"
