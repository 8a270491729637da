"""`factoryctl plan`: validate, render into the workspace, plan every Terraform unit stack
(the saved plans are what apply runs) and summarise, as text for people or JSON for CI."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from ..errors import FactoryctlError, InputRefused
from ..ops.impact import IMPACTS
from ..ops.plan import IMPACT_LABEL, LIST_LIMIT, SYMBOL, UNITS_SHOWN, PlanDocument
from ..session import open_site
from .app import FileArg, Format, app, err, out


@app.command()
def plan(
    file: Path = FileArg,
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 2 when there are changes."),
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    terraform_bin: str | None = typer.Option(None, "--terraform-bin", envvar="FACTORYCTL_TERRAFORM_BIN",
                                             help="A terraform/tofu binary instead of the embedded Terraform "
                                                  "(env FACTORYCTL_TERRAFORM_BIN)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Stacks planned at once (default: CPUs)."),
) -> None:
    """Validate, render into .factory/<name>/build, plan every Terraform unit stack (saving the
    plans apply runs) and summarise: resources, Ansible plays, changed files, impact.

    Example: factoryctl plan examples/lab.yaml --detailed-exitcode"""
    from ..ops import plan as stage

    as_json = fmt == Format.json
    started = time.perf_counter()
    with json_errors(as_json), open_site(file, "nothing planned", lock="plan") as s, \
            stack_progress(not as_json and err.is_terminal) as on_stack:
        doc = stage.plan(s.checked, s.workspace, binary=terraform_bin, jobs=jobs, on_stack=on_stack,
                         started=started)
    if as_json:
        sys.stdout.write(json.dumps(doc.to_json(manifest=False), indent=2, sort_keys=True) + "\n")
    else:
        show_plan(doc, out)
    raise typer.Exit(doc.exit_code(detailed_exitcode))


@contextmanager
def json_errors(as_json: bool):
    """With --format json, a refusal or failure is a JSON document on stdout (CI parses it)
    instead of text on stderr; the exit code is the error's."""
    try:
        yield
    except FactoryctlError as e:
        if not as_json:
            raise
        if isinstance(e, InputRefused):
            body = {"error": "factory.yaml has errors", "findings": [f.to_dict() for f in e.findings]}
        else:
            body = {"error": str(e)}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        raise typer.Exit(e.exit_code) from None


@contextmanager
def stack_progress(live: bool):
    """A transient progress bar of the stacks planned, on a terminal; the stage's on_stack."""
    if not live:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("terraform plan", total=None)
        yield lambda unit, result, total: progress.update(task, total=total, advance=1,
                                                          description=f"terraform plan {unit}")


# --- text ---------------------------------------------------------------------------------------

def _names(items: list[str], limit: int = LIST_LIMIT) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... (+{len(items) - limit} more)" if len(items) > limit else "")


def show_plan(doc: PlanDocument, out: Console) -> None:
    """The summary for people."""
    tf, files, ans, imp = doc.terraform, doc.files, doc.ansible, doc.impact
    out.print(f"[bold]Plan for {doc.factory}[/] (provider {doc.provider}; build {doc.build})")
    t = doc.timings or {}
    out.print()
    n_stacks = len(tf["stacks"])
    changed = [s for s in tf["stacks"] if s["changed"]]
    out.print(f"[bold]Terraform[/] ({tf['engine']}, {n_stacks} unit stack(s)"
              + (f", {t['terraform_s']:.1f} s" if "terraform_s" in t else "") + "): "
              f"{tf['add']} to add, {tf['change']} to change, {tf['destroy']} to destroy")
    for e in tf["errors"]:
        out.print(f"  error: {e}", markup=False)
    if changed:
        out.print(f"  {'unit':<16} {'add':>5} {'change':>7} {'destroy':>8}  hosts")
        rest = changed[UNITS_SHOWN:] if len(changed) > UNITS_SHOWN + 1 else []
        for s in changed[:len(changed) - len(rest)]:
            hosts: dict[str, list[str]] = {}
            for c in s["changes"]:
                hosts.setdefault(c["action"], []).append(c["host"] or c["address"])
            named = "; ".join(f"{SYMBOL.get(a, a)} {_names(v, 8)}" for a, v in sorted(hosts.items()))
            label = s["unit"] + (" (gone)" if s["orphan"] else "")
            out.print(f"  {label:<16} {s['add']:>5} {s['change']:>7} {s['destroy']:>8}  {named}", markup=False)
        if rest:
            out.print(f"  ... {len(rest)} more unit(s): {sum(s['add'] for s in rest)} to add, "
                      f"{sum(s['change'] for s in rest)} to change, {sum(s['destroy'] for s in rest)} to destroy "
                      "(--format json lists every host)")
        if len(changed) < n_stacks:
            out.print(f"  {n_stacks - len(changed)} other unit(s): no changes")
    elif not tf["errors"]:
        out.print("  no changes")
    out.print()
    if ans["available"]:
        out.print(f"[bold]Ansible[/] ({ans['playbook']}, {len(ans['plays'])} plays)")
        for p in ans["plays"]:
            mark = "*" if p.get("affected") else " "
            hosts = p["hosts"] if p["hosts"] is not None else p.get("import", "")
            count = f" ({p['host_count']} hosts)" if p["host_count"] is not None else ""
            out.print(f"  {mark} {p['name']:<34} {hosts}{count}: {', '.join(p['roles']) or '-'}", markup=False)
        out.print("  (* runs with changes)")
    else:
        out.print("[bold]Ansible[/]: no playbook rendered (ansible/project/site.yml)")
    out.print()
    if files["baseline"] == "first-apply":
        out.print(f"[bold]Rendered files[/]: first apply ({files['total']} files, nothing applied yet)")
    else:
        out.print(f"[bold]Rendered files[/] since the last apply ({files.get('applied')}): "
                  f"{len(files['changed'])} changed, {len(files['added'])} added, {len(files['removed'])} removed")
        shown = [e for e in files["entries"] if not e["path"].startswith("terraform/")]
        hidden = len(files["entries"]) - len(shown)
        for e in shown[:LIST_LIMIT * 2]:
            out.print(f"  {SYMBOL[e['change']]} {e['path']:<48} {IMPACT_LABEL[e['impact']]:<18} {e['reason']}",
                      markup=False)
        if len(shown) > LIST_LIMIT * 2:
            out.print(f"  ... (+{len(shown) - LIST_LIMIT * 2} more files)")
        if hidden:
            out.print(f"  ({hidden} Terraform stack file(s) changed: see Terraform above)")
    out.print()
    counts = {k: v for k, v in imp["counts"].items() if v}
    out.print(f"[bold]Impact[/]: {IMPACT_LABEL[imp['highest']]}"
              + (" (" + ", ".join(f"{IMPACT_LABEL[k]}: {v}" for k, v in counts.items()) + ")" if counts else ""))
    for level in reversed(IMPACTS[1:]):
        subjects = [x for i in imp["items"] if i["impact"] == level for x in i["subjects"]]
        if subjects:
            out.print(f"  {IMPACT_LABEL[level]:<18} {_names(subjects, 12)}", markup=False)
    out.print()
    tail = "changes" if doc.changes else "no changes"
    when = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in t.items() if k.endswith("_s"))
    out.print(f"{tail}; plans saved in {Path(doc.workspace) / 'plans'} (apply runs exactly these)"
              + (f"; {when}" if when else ""))

