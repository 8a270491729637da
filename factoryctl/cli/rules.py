"""`factoryctl rules list|explain`."""

from __future__ import annotations

import json
import sys

import typer

from ..errors import UsageProblem
from .app import Format, app, out

rules_app = typer.Typer(help="The semantic rules validate applies.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("list")
def rules_list(fmt: Format = typer.Option(Format.text, "--format", "-f")) -> None:
    """List every rule with its code, severity and title."""
    from ..rules import REGISTRY

    if fmt is Format.json:
        doc = [{"code": r.code, "severity": r.severity.value, "area": r.area, "title": r.title, "doc": r.doc}
               for r in REGISTRY.values()]
        sys.stdout.write(json.dumps(sorted(doc, key=lambda d: d["code"]), indent=2) + "\n")
        return
    for code in sorted(REGISTRY):
        r = REGISTRY[code]
        out.print(f"{r.code}  {r.severity.value:<7}  {r.title}")


@rules_app.command("explain")
def rules_explain(code: str = typer.Argument(..., help="Rule code, e.g. PWR001.")) -> None:
    """Explain one rule: what it checks and why."""
    from ..rules import REGISTRY

    r = REGISTRY.get(code.upper())
    if r is None:
        raise UsageProblem(f"no rule {code!r}; see `factoryctl rules list`")
    out.print(f"{r.code} ({r.severity.value}, {r.area}): {r.title}\n\n{r.doc}")
