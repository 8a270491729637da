"""The factoryctl command line. Each command is a few lines that call the pipeline and a writer.

Exit codes: 0 success; 1 invalid input, failed checks or engine failure; 2 changes or drift
present; 64 usage error (so that 2 keeps one meaning).
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from .. import __version__
from .. import blueprints as bp
from ..findings import Severity, reaches
from ..findings.formats import as_json, sarif, text
from ..session import check
from ..workspace import WorkspaceError
from . import bench as bench_commands
from . import lab as lab_commands

EXIT_OK, EXIT_FAIL, EXIT_CHANGES, EXIT_USAGE = 0, 1, 2, 64

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
blueprint_app = typer.Typer(help="List, show and fork the shipped blueprints.", no_args_is_help=True)
rules_app = typer.Typer(help="The semantic rules validate applies.", no_args_is_help=True)
app.add_typer(blueprint_app, name="blueprint")
app.add_typer(rules_app, name="rules")
app.add_typer(bench_commands.app, name="bench", help="Benchmarks: parse nccl-tests logs, expectations, judge results, run the built-in fallback.")
app.add_typer(lab_commands.app, name="lab", help="Local test hosts (network namespaces) for the lab site.")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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


def _debug() -> bool:
    return os.environ.get("FACTORYCTL_DEBUG", "") not in ("", "0")


def _print_version(value: bool) -> None:
    if value:
        out.print(f"factoryctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on internal errors (env FACTORYCTL_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    if debug:
        os.environ["FACTORYCTL_DEBUG"] = "1"


def _path(value: str | Path) -> Path:
    """A path argument: an empty one (which would mean the current folder) or one with a NUL
    byte (which no system call accepts) is a usage error, not a surprise later."""
    if isinstance(value, Path):
        return value
    if not value:
        raise typer.BadParameter("is empty; give a path")
    if "\0" in value:
        raise typer.BadParameter("contains a NUL byte")
    return Path(value)


FileArg = typer.Argument(..., help="Path to factory.yaml.", metavar="FILE", parser=_path)


@app.command()
def validate(
    file: Path = FileArg,
    fmt: FindingFormat = typer.Option(FindingFormat.text, "--format", "-f", help="text, json or sarif."),
    fail_level: FailLevel = typer.Option(FailLevel.error, "--fail-level", help="Lowest severity that fails the run."),
    skip: list[str] = typer.Option([], "--skip-rule", help="Rule code to skip (repeatable)."),
) -> None:
    """Check a factory.yaml: schema and semantic rules, every finding with its position and a hint."""
    from ..rules import REGISTRY

    c = check(file, tuple(skip))
    findings = c.sorted_findings
    failed = reaches(findings, Severity(fail_level.value))
    if fmt is FindingFormat.json:
        sys.stdout.write(as_json(findings, fail_level.value, failed))
    elif fmt is FindingFormat.sarif:
        sys.stdout.write(sarif(findings, REGISTRY))
    else:
        sys.stdout.write(text(findings, c.loaded.text if c.loaded else None, fail_level.value))
    raise typer.Exit(EXIT_FAIL if failed else EXIT_OK)


@app.command()
def inspect(
    file: Path = FileArg,
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    all_hosts: bool = typer.Option(False, "--all-hosts", help="List every host in text output."),
) -> None:
    """Print the resolved facts: hosts, racks and power, fabric sizes, IP plan, inference memory.

    Prints them even when rules find errors (then exits 1); refuses only a file that cannot
    be loaded into the model."""
    c = check(file)
    findings = c.sorted_findings
    failed = reaches(findings, Severity.error)
    if c.site is None:
        sys.stderr.write(text(findings, c.loaded.text if c.loaded else None))
        raise typer.Exit(EXIT_FAIL)
    if fmt is Format.json:
        doc = c.site.to_dict() | {"findings": [f.to_dict() for f in findings]}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        from .views import inspect_tables

        inspect_tables(c.site, out, all_hosts)
        if findings:
            sys.stdout.write(text(findings, c.loaded.text))
    raise typer.Exit(EXIT_FAIL if failed else EXIT_OK)


def _checked_or_exit(file: Path):
    """Validate; print findings; exit 1 when errors stop the pipeline."""
    c = check(file)
    findings = c.sorted_findings
    if reaches(findings, Severity.error) or c.site is None:
        sys.stderr.write(text(findings, c.loaded.text if c.loaded else None))
        raise typer.Exit(EXIT_FAIL)
    return c


def workspace_dir(c) -> Path:
    """The site's workspace: .factory/<name>/ beside factory.yaml (checked: Workspace.beside)."""
    from ..workspace import Workspace

    return Workspace.beside(Path(c.path), c.factory.metadata.name).root


@app.command()
def render(
    file: Path = FileArg,
    out_dir: Path | None = typer.Option(None, "--out", help="Output folder (default .factory/<name>/build beside FILE).",
                                        parser=_path),
    check_only: bool = typer.Option(False, "--check", help="Write nothing; exit 2 if the tree on disk would change."),
) -> None:
    """Render Terraform, Ansible, Kubernetes and Slurm artifacts, byte-for-byte deterministic.

    --out must be a new or empty folder, or one factoryctl rendered: only the files of its
    earlier render are replaced, and anything else in it is kept."""
    from contextlib import nullcontext

    from ..render import RenderError, UnsafeOutput, refuse_target
    from ..render import render as do_render
    from ..workspace import Workspace, WorkspaceLocked

    c = _checked_or_exit(file)
    try:
        if out_dir is not None:  # outside the workspace: render locks the output's own folder
            refuse_target(out_dir, Path(c.path))
            dest, held = out_dir, nullcontext()
        else:  # the workspace's build: the site's lock, as plan and apply take it
            ws = Workspace.beside(Path(c.path), c.factory.metadata.name)
            dest, held = ws.build, (nullcontext() if check_only else ws.lock("render"))
        with held:
            res = do_render(c.site, dest, check_only=check_only)
    except (UnsafeOutput, WorkspaceLocked) as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(EXIT_FAIL) from None
    except RenderError as e:
        err.print(f"error: render failed: {e}")
        raise typer.Exit(EXIT_FAIL) from None
    for label, items in (("changed", res.changed), ("added", res.added), ("removed", res.removed)):
        for rel in items:
            out.print(f"  {label:<8} {rel}")
    verb = "would change" if check_only else "rendered"
    if res.differs:
        out.print(f"{verb}: {len(res.changed)} changed, {len(res.added)} added, {len(res.removed)} removed in {dest}")
    else:
        out.print(f"up to date: {len(res.files)} files in {dest}")
    raise typer.Exit(EXIT_CHANGES if check_only and res.differs else EXIT_OK)


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
    plans apply runs) and summarise: resources, Ansible plays, changed files, impact."""
    from ..ops.plan import plan_command

    raise typer.Exit(plan_command(file, fmt.value, detailed_exitcode, terraform_bin, jobs, out, err))


class Phase(str, Enum):
    terraform = "terraform"
    ansible = "ansible"
    kubernetes = "kubernetes"


AutoApproveOpt = typer.Option(False, "--auto-approve", help="Do not ask for confirmation (needed without a terminal).")
TerraformBinOpt = typer.Option(None, "--terraform-bin", envvar="FACTORYCTL_TERRAFORM_BIN",
                               help="A terraform/tofu binary instead of the embedded Terraform.")


ConvergeOpt = typer.Option(False, "--converge",
                           help="Run site.yml on every host, even where nothing moved since the last apply "
                                "(by default such hosts are probed and left alone).")


def _apply_options(auto_approve: bool, only: Phase | None, limit: str | None, tags: str | None, plain: bool,
                   terraform_bin: str | None, converge: bool):
    from ..ops.apply import Options

    return Options(auto_approve=auto_approve, only=only.value if only else None, limit=limit, tags=tags,
                   plain=plain, terraform_bin=terraform_bin, converge=converge)


@app.command()
def apply(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    only: Phase | None = typer.Option(None, "--only", help="Run one phase: terraform, ansible or kubernetes."),
    limit: str | None = typer.Option(None, "--limit", help="Ansible host pattern, e.g. node01 or slurm_compute."),
    tags: str | None = typer.Option(None, "--tags", help="Ansible tags (comma-separated), e.g. slurm."),
    plain: bool = typer.Option(False, "--plain", help="Plain progress lines instead of a live table (CI)."),
    terraform_bin: str | None = TerraformBinOpt,
    converge: bool = ConvergeOpt,
) -> None:
    """Apply the saved plan: Terraform stacks, then site.yml through Ansible with live per-host
    progress, then the Kubernetes check. Refuses a stale plan (run `factoryctl plan`). When
    nothing changed since the last apply, hosts the probe finds as that apply left them skip
    site.yml (--converge runs it everywhere). Logs and events go to
    .factory/<name>/runs/<time>/; applied.json is written only on success."""
    from ..ops.apply import apply_command

    raise typer.Exit(apply_command(file, _apply_options(auto_approve, only, limit, tags, plain, terraform_bin,
                                                        converge), out, err))


@app.command()
def up(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    only: Phase | None = typer.Option(None, "--only", help="Run one phase: terraform, ansible or kubernetes."),
    limit: str | None = typer.Option(None, "--limit", help="Ansible host pattern."),
    tags: str | None = typer.Option(None, "--tags", help="Ansible tags (comma-separated)."),
    plain: bool = typer.Option(False, "--plain", help="Plain progress lines instead of a live table (CI)."),
    terraform_bin: str | None = TerraformBinOpt,
    converge: bool = ConvergeOpt,
) -> None:
    """Plan, apply and verify in one go: every host reachable, munge, sinfo partitions idle,
    srun on every compute node. Exit 1 when any check fails."""
    from ..ops.up import up_command

    raise typer.Exit(up_command(file, _apply_options(auto_approve, only, limit, tags, plain, terraform_bin,
                                                     converge), out, err))


@app.command()
def destroy(
    file: Path = FileArg,
    auto_approve: bool = AutoApproveOpt,
    terraform_bin: str | None = TerraformBinOpt,
) -> None:
    """Tear the site down: every Terraform resource (lab hosts included), then what is left of
    a lab (namespaces, mounts, links), fact cache, saved plans and applied.json."""
    from ..ops.destroy import destroy_command

    raise typer.Exit(destroy_command(file, auto_approve, terraform_bin, out, err))


class BomFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"


WorkspaceOpt = typer.Option(None, "--workspace", help="Workspace with verify runs (default .factory/<name>).",
                            parser=_path)


@app.command()
def drift(
    file: Path = FileArg,
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json (the report on stdout)."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write a JUnit XML report here (drift = failure, "
                                      "could not check = error)."),
    sarif: Path | None = typer.Option(None, "--sarif", help="Also write a SARIF 2.1.0 report here."),
    verify: bool = typer.Option(False, "--verify", help="Also run verify's host checks (runtime drift: a daemon "
                                "down, a mount or GPU missing)."),
    full: bool = typer.Option(False, "--full", help="Run the playbook in check mode on every host, not only on "
                              "hosts whose probe moved since the last apply."),
    terraform_bin: str | None = TerraformBinOpt,
) -> None:
    """Does the site still match factory.yaml and the last apply? Re-renders and compares
    (artifacts), plans every Terraform stack with its state (infrastructure), probes every
    host over SSH and runs `ansible-playbook --check --diff` where it moved (configuration),
    optionally runs the host checks (runtime). Exit 0 in sync, 2 drift, 1 could not check."""
    from ..drift import drift_command
    from ..drift.command import Options as DriftOptions

    raise typer.Exit(drift_command(file, DriftOptions(fmt.value, junit, sarif, verify, full, terraform_bin), out, err))


@app.command()
def bom(file: Path = FileArg, fmt: BomFormat = typer.Option(BomFormat.text, "--format", "-f", help="text, json or csv.")) -> None:
    """Bill of materials: nodes, GPUs, NICs, switches by tier, cables, transceivers, racks, PDUs."""
    from . import economics

    raise typer.Exit(economics.bom_cmd(file, fmt.value, out))


@app.command()
def cost(file: Path = FileArg, fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
         workspace: Path | None = WorkspaceOpt) -> None:
    """Power, capex, opex, cost per GPU-hour, break-even utilisation and cost per token, each with its inputs."""
    from . import economics

    raise typer.Exit(economics.cost_cmd(file, fmt.value, workspace, out))


@app.command()
def report(file: Path = FileArg,
           out_dir: Path | None = typer.Option(None, "--out", help="Folder for report.html (default .factory/<name>/report).",
                                               parser=_path),
           workspace: Path | None = WorkspaceOpt) -> None:
    """Write one self-contained HTML report: topology, racks, BOM, cost, findings, last verify run."""
    from . import economics

    raise typer.Exit(economics.report_cmd(file, out_dir, workspace, out))


class Connection(str, Enum):
    ssh = "ssh"
    local = "local"


@app.command()
def verify(
    file: Path = FileArg,
    connection: Connection = typer.Option(Connection.ssh, "--connection", "-c",
                                          help="ssh: every host through the inventory (lab: its key and ssh_config); "
                                               "local: the checks of this machine only."),
    bench: bool = typer.Option(False, "--bench", help="Also run the benchmark stage through the site's scheduler."),
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="text or json."),
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here (host checks + benchmark figures)."),
    report: bool = typer.Option(False, "--report", help="Write the HTML report (.factory/<name>/report/report.html)."),
    ssh_config: Path | None = typer.Option(None, "--ssh-config", exists=True, dir_okay=False,
                                           help="ssh_config for reaching the hosts (aliases, jump hosts, keys)."),
    limit: list[str] = typer.Option([], "--host", help="Check only this host (repeatable)."),
    local_name: str | None = typer.Option(None, "--local-name", help="With --connection local: which declared host "
                                          "this machine is (default: its hostname)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Parallel pytest-xdist workers (default: 1 below 8 hosts, then one per 8 hosts, up to the CPUs)."),
    partition: str | None = typer.Option(None, "--partition", help="Benchmark this Slurm partition (default: the default one)."),
    nodes: int | None = typer.Option(None, "--nodes", min=1, help="Benchmark on this many nodes (default: the whole partition)."),
    timeout: int = typer.Option(900, "--timeout", min=30, help="Seconds for the host checks, and for each benchmark step."),
) -> None:
    """Check the running site against factory.yaml: hostnames, packages, daemons and ports per
    role, mounts, Slurm partitions and nodes, GPUs, NVLink, fabric ports, Kubernetes nodes,
    inference endpoints; with --bench, nccl-tests (or the built-in benchmark) through srun.

    Results go to .factory/<name>/runs/<id>/ (verify.json, bench.json). Checks whose hardware
    is absent are skipped with the reason. Exit 1 on any failed check or benchmark figure."""
    import importlib

    verify_commands = importlib.import_module(".verify", __package__)

    opts = verify_commands.Options(connection.value, ssh_config, local_name, jobs, limit or None, partition,
                                   nodes, timeout)
    raise typer.Exit(verify_commands.verify_cmd(file, opts, bench, fmt.value, junit, report, out, err))


@app.command()
def schema() -> None:
    """Print the JSON Schema of factory.yaml (for editors via yaml-language-server)."""
    from ..model import Factory

    doc = Factory.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "factoryctl factory.yaml"
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


@blueprint_app.command("list")
def blueprint_list(fmt: Format = typer.Option(Format.text, "--format", "-f")) -> None:
    """List the shipped blueprints."""
    items = bp.all_blueprints()
    if fmt is Format.json:
        doc = [{"name": b.name, "version": b.version, "summary": b.summary} for b in items]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    for b in items:
        out.print(f"[bold]{b.name:<26}[/] {b.summary}")


@blueprint_app.command("show")
def blueprint_show(name: str = typer.Argument(..., help="Blueprint name (see `blueprint list`).")) -> None:
    """Print a blueprint's README and factory.yaml."""
    b = _blueprint(name)
    readme = b.path / "README.md"
    if readme.is_file():
        sys.stdout.write(readme.read_text() + "\n")
    sys.stdout.write(f"--- {b.name}/factory.yaml (version {b.version})\n")
    sys.stdout.write(b.factory_file.read_text())


@blueprint_app.command("fork")
def blueprint_fork(
    name: str = typer.Argument(..., help="Blueprint to start from."),
    dest: Path = typer.Argument(..., help="New site folder (must not exist or be empty).", parser=_path),
    sets: list[str] = typer.Option([], "--set", help="Override a value: key.path=value, e.g. metadata.name=fra2 or nodes[1].count=8."),
) -> None:
    """Write a new site folder from a blueprint; its factory.yaml records where it came from."""
    _blueprint(name)
    try:
        path = bp.fork(name, dest, sets)
    except bp.BlueprintError as e:
        err.print(f"error: {e}")
        usage = isinstance(e, bp.DestinationError) or str(e).startswith("--set")
        raise typer.Exit(EXIT_USAGE if usage else EXIT_FAIL) from None
    c = check(path)
    findings = c.sorted_findings
    if findings:
        sys.stdout.write(text(findings, c.loaded.text if c.loaded else None))
    out.print(f"forked blueprint {name} into {path}")
    raise typer.Exit(EXIT_FAIL if reaches(findings, Severity.error) else EXIT_OK)


def _blueprint(name: str) -> bp.Blueprint:
    try:
        return bp.get(name)
    except bp.BlueprintError as e:
        err.print(f"error: {e}")
        raise typer.Exit(EXIT_USAGE) from None


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
        err.print(f"error: no rule {code!r}; see `factoryctl rules list`")
        raise typer.Exit(EXIT_USAGE)
    out.print(f"{r.code} ({r.severity.value}, {r.area}): {r.title}\n\n{r.doc}")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: usage errors map to 64, tracebacks only with --debug."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="factoryctl")
    except UsageError as e:
        e.show()
        return EXIT_USAGE
    except typer.Abort:
        err.print("aborted")
        return 130
    except typer.Exit as e:
        return e.exit_code
    except WorkspaceError as e:  # any command: a workspace path is a link, or another file's
        err.print(f"error: {e}", markup=False)
        return EXIT_FAIL
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except OSError as e:
        # A file or folder the command needed could not be read or written (permissions, a
        # file where a folder belongs, a full disk): the user's to fix, so say which and why.
        if _debug() or "--debug" in (argv if argv is not None else sys.argv):
            raise
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
        err.print(f"error: {e.strerror or e}{': ' + where if where else ''}")
        return EXIT_FAIL
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        if _debug() or "--debug" in (argv if argv is not None else sys.argv):
            raise
        err.print(f"internal error: {type(e).__name__}: {e}\n(run with --debug for a traceback; please report it)")
        return EXIT_FAIL
    return rv if isinstance(rv, int) else EXIT_OK


def main() -> None:
    sys.exit(run())
