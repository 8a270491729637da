"""The factoryctl command line: one module per command beside this one, each a few lines that
open the site, call one stage and show its result; `run` maps every outcome to an exit code.
A new command is one module here: importing it registers it on `app`.

Exit codes: 0 success; 1 invalid input, failed checks or engine failure; 2 changes or drift
present; 64 usage error (so that 2 keeps one meaning).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from ..errors import ExitCode, FactoryctlError, InputRefused
from ..findings.formats import text
from ..load import LoadError
from .app import UsageError, app, debug_enabled, err, prose

for _module in pkgutil.iter_modules(__path__):
    # reference.py registers no command and runs as `python -m`: importing it here first
    # would make runpy warn that it is already in sys.modules.
    if _module.name != "reference":
        importlib.import_module(f"{__name__}.{_module.name}")

# The order `factoryctl --help` lists them in: the pipeline's, then reports and tools; a
# command not named here comes last.
ORDER = ["validate", "inspect", "render", "plan", "apply", "up", "destroy", "drift", "status", "bom", "cost", "report",
         "verify", "schema", "blueprint", "rules", "bench", "lab"]


def _rank(name: str | None) -> int:
    return ORDER.index(name) if name in ORDER else len(ORDER)


app.registered_commands.sort(key=lambda c: _rank(c.name or c.callback.__name__))
app.registered_groups.sort(key=lambda g: _rank(g.name))


def _as_prose(typer_app: typer.Typer) -> None:
    """Every command's and group's help as prose (app.prose), whatever its docstring's lines."""
    for cmd in typer_app.registered_commands:
        cmd.help = prose(cmd.help or (cmd.callback.__doc__ if cmd.callback else None))
    for group in typer_app.registered_groups:
        group.help = prose(group.help)
        _as_prose(group.typer_instance)


_as_prose(app)

__all__ = ["UsageError", "app", "main", "prose", "run"]


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: usage errors map to 64, tracebacks only with --debug."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="factoryctl")
    except UsageError as e:
        e.show()
        return ExitCode.USAGE
    except typer.Abort:
        err.print("aborted")
        return ExitCode.INTERRUPTED
    except typer.Exit as e:
        return e.exit_code
    except FactoryctlError as e:  # every failure the user can act on carries its exit code
        if isinstance(e, InputRefused | LoadError):  # the findings, with positions and hints
            sys.stderr.write(text(e.findings, getattr(e, "source", None)))
        err.print(f"error: {e}", markup=False)
        return int(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        return ExitCode.INTERRUPTED
    except OSError as e:
        # A file or folder the command needed could not be read or written (permissions, a
        # file where a folder belongs, a full disk): the user's to fix, so say which and why.
        if debug_enabled() or "--debug" in (argv if argv is not None else sys.argv):
            raise
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
        err.print(f"error: {e.strerror or e}{': ' + where if where else ''}")
        return ExitCode.FAILED
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug_enabled() or "--debug" in (argv if argv is not None else sys.argv):
            raise
        err.print(f"internal error: {type(e).__name__}: {e}\n(run with --debug for a traceback; please report it)")
        return ExitCode.FAILED
    return rv if isinstance(rv, int) else ExitCode.OK


def main() -> None:
    sys.exit(run())
