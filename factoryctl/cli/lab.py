"""`factoryctl lab ...`: local lab hosts (network-namespace machines reachable over SSH).

Non-interactive and idempotent, so Terraform's local-exec can call `up` and `down` as
often as it likes. Errors (LabError, an EngineFailure) are one line on stderr and exit code 1,
through cli.run like every command's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import typer

from ..engines.lab import HostInfo, HostSpec, Lab, LabError
from ..engines.lab.tinymodel import build_tiny_model, cached_tiny_model, describe
from ..errors import ExitCode
from .app import app as root_app

app = typer.Typer(
    help="Local lab hosts: test machines in network namespaces on this one, reachable over "
    "SSH. Needs root.",
    no_args_is_help=True,
)

DIR_OPTION = typer.Option(Path(".lab"), "--dir", "-d", help="Lab directory: state, keys, overlays.")
# Commands that read a running lab: with neither --dir nor --file they use the lab of the
# factory file in the current folder (or $FACTORYCTL_FILE), else ./.lab.
SITE_DIR_OPTION = typer.Option(
    None, "--dir", "-d", help="Lab directory [default: the lab of --file, else of the one factory file "
    "in this folder or $FACTORYCTL_FILE, else .lab]."
)
FILE_OPTION = typer.Option(
    None, "--file", help="A lab site's factory.yaml: use its lab (.factory/<name>/lab)."
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def parse_host(token: str, default_gpus: int = 0) -> HostSpec:
    """NAME[=ADDRESS][,gpus=N] -> HostSpec."""
    head, *opts = token.split(",")
    name, _, address = head.partition("=")
    gpus = default_gpus
    for opt in opts:
        key, _, value = opt.partition("=")
        if key != "gpus" or not value.isdigit():
            raise typer.BadParameter(f"{token!r}: expected NAME[=ADDRESS][,gpus=N]")
        gpus = int(value)
    if not name:
        raise typer.BadParameter(f"{token!r}: host name missing")
    return HostSpec(name=name, address=address or None, fake_gpus=gpus)


def _logger(quiet: bool) -> Callable[[str], None]:
    return (lambda _m: None) if quiet else (lambda m: typer.echo(m, err=True))


def _emit(lab: Lab, infos: list[HostInfo], fmt: OutputFormat, site: tuple[str, Path] | None = None) -> None:
    if fmt is OutputFormat.json:
        doc = {
            **({"site": site[0], "file": str(site[1])} if site else {}),
            "dir": str(lab.root),
            "hosts": [i.to_dict() for i in infos],
            "ssh_config": str(lab.ssh_config_path),
            "private_key": str(lab.private_key),
            "known_hosts": str(lab.known_hosts),
        }
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    if site:
        typer.echo(f"lab of site {site[0]} ({site[1]}): {lab.root}")
    if not infos:
        typer.echo(f"no lab hosts in {lab.root}")
        return
    width = max(len(i.name) for i in infos)
    for i in infos:
        state = "up" if i.alive else "DOWN"
        gpus = f"  fake_gpus={i.fake_gpus}" if i.fake_gpus else ""
        typer.echo(f"{i.name:<{width}}  {i.address:<15}  {state:<4}  pid={i.pid}{gpus}")


@app.command()
def up(
    lab_dir: Path = DIR_OPTION,
    host: list[str] = typer.Option(
        [], "--host", "-H", help="NAME[=ADDRESS][,gpus=N]; repeat for more hosts."
    ),
    count: int = typer.Option(0, "--count", "-n", min=0, help="Add COUNT hosts PREFIX01...."),
    prefix: str = typer.Option("node", "--prefix", help="Name prefix for --count hosts."),
    fake_gpus: int = typer.Option(
        0, "--fake-gpus", min=0, help="Fake /dev/nvidiaN nodes per host unless ,gpus=N says."
    ),
    subnet: str | None = typer.Option(None, "--subnet", help="IPv4 subnet [10.199.0.0/24]."),
    bridge: str | None = typer.Option(None, "--bridge", help="Bridge name [fclab0]."),
    prune: bool = typer.Option(False, "--prune", help="Take down recorded hosts not listed."),
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages."),
) -> None:
    """Start lab hosts; hosts already running are left alone (safe to repeat)."""
    specs = [parse_host(t, fake_gpus) for t in host]
    specs += [HostSpec(f"{prefix}{i:02d}", fake_gpus=fake_gpus) for i in range(1, count + 1)]
    if not specs:
        raise typer.BadParameter("give --host NAME (repeatable) or --count N")
    lab = Lab(lab_dir, subnet=subnet, bridge=bridge, log=_logger(quiet))
    _emit(lab, lab.up(specs, prune=prune), fmt)


@app.command()
def down(
    lab_dir: Path = DIR_OPTION,
    host: list[str] = typer.Option([], "--host", "-H", help="Only these hosts (default: all)."),
    bridge: str | None = typer.Option(None, "--bridge", help="Bridge, if the state is lost."),
) -> None:
    """Stop hosts and remove every trace (processes, mounts, namespaces, links). Safe to
    repeat, and works from what the kernel shows even when the state file is stale."""
    Lab(lab_dir, bridge=bridge).down(host or None)


@app.command()
def status(
    lab_dir: Path | None = SITE_DIR_OPTION,
    file: Path | None = FILE_OPTION,
    fmt: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f"),
) -> None:
    """Show each recorded host and whether its sshd answers. Exit 1 if any is down."""
    where, site = _which_lab(lab_dir, file)
    lab = Lab(where)
    infos = lab.status()
    _emit(lab, infos, fmt, site)
    if any(not i.alive for i in infos):
        raise typer.Exit(ExitCode.FAILED)


def _site_name(file: Path) -> str:
    from ..load import load_file

    data = load_file(file).data  # a LoadError goes to cli.run: its findings, then the error
    name = ((data or {}).get("metadata") or {}).get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise LabError(f"{file} has no metadata.name")
    return name


def _site_lab_dir(file: Path) -> Path:
    from ..workspace import Workspace

    return Workspace.find(Path(file), _site_name(file)).lab_dir  # only read: nothing recorded


def _which_lab(lab_dir: Path | None, file: Path | None) -> tuple[Path, tuple[str, Path] | None]:
    """The lab directory a reading command means, and the site (name, file) when it is a
    site's: --dir as given, else the lab of --file, of $FACTORYCTL_FILE or of the one factory
    file in this folder (several: a usage error naming them), else ./.lab."""
    from ..session import find_factory_file

    if lab_dir is not None and file is None:
        return lab_dir, None
    found = find_factory_file(file, required=False)
    if found is None:
        return Path(".lab"), None
    return _site_lab_dir(found), (_site_name(found), found)


@app.command("ssh-config")
def ssh_config(lab_dir: Path | None = SITE_DIR_OPTION, file: Path | None = FILE_OPTION) -> None:
    """Print the path of the lab's ssh_config (for ssh -F, testinfra --ssh-config)."""
    typer.echo(str(Lab(_which_lab(lab_dir, file)[0]).ssh_config()))


@app.command(context_settings={"allow_interspersed_args": False})
def ssh(
    name: str = typer.Argument(..., metavar="HOST"),
    command: list[str] | None = typer.Argument(None, metavar="[CMD]..."),
    lab_dir: Path | None = SITE_DIR_OPTION,
    file: Path | None = FILE_OPTION,
) -> None:
    """Open a shell on HOST, or run CMD there and exit with its status.

    Options go before HOST: `factoryctl lab ssh --dir .lab gpu01 ls -l /dev`, or
    `factoryctl lab ssh --file examples/lab.yaml head01 -- sinfo`; in a lab site's folder,
    `factoryctl lab ssh head01 -- sinfo`."""
    if command and command[0] == "--":  # `ssh HOST -- CMD`: the separator is not the command
        command = command[1:]
    argv = Lab(_which_lab(lab_dir, file)[0]).ssh_argv(name, command or None)
    if not command:
        os.execvp(argv[0], argv)  # hand the terminal to ssh
    raise typer.Exit(subprocess.run(argv).returncode)


@app.command()
def model(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write it into this new or empty folder [default: the lab cache]."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the random weights."),
) -> None:
    """Make the tiny Llama the lab serves (random weights, a locally trained byte-level BPE,
    a chat template; Hugging Face layout) and print its folder and files. Without --out it
    is built once into the lab cache ($FACTORYCTL_LAB_CACHE) and reused."""
    folder = build_tiny_model(out, seed=seed) if out else cached_tiny_model(seed=seed, log=_logger(False))
    typer.echo(str(folder))
    for name, size in describe(folder):
        typer.echo(f"  {name:<24} {size:>10,} bytes")


root_app.add_typer(app, name="lab", help="Local test hosts (network namespaces) for the lab site.")
