"""render: a validated, resolved factory -> the artifact tree (terraform/ ansible/ kubernetes/
slurm/ verify/ + manifest.json), byte-for-byte deterministic."""

from __future__ import annotations

from pathlib import Path

from ..resolve import Site
from .airgap_check import leaks
from .context import build
from .environment import UnsafeValue
from .writer import RenderResult, compare, read_tree, render_tree, write_tree


class RenderError(Exception):
    """A template failed (a factoryctl bug) or the output broke a site policy (air-gap)."""


def render(site: Site, out: Path, check_only: bool = False) -> RenderResult:
    import jinja2

    try:
        files = render_tree(build(site))
    except jinja2.TemplateError as e:
        where = f"{getattr(e, 'name', None) or '?'}:{getattr(e, 'lineno', None) or '?'}"
        raise RenderError(f"template {where}: {e}") from e
    except UnsafeValue as e:
        raise RenderError(str(e)) from e
    if site.factory.sovereignty.air_gapped:
        found = leaks(site.factory, files)
        if found:
            lines = "\n".join(f"  {rel}:{line}: {host} ({kind})" for rel, line, host, kind in found[:20])
            raise RenderError(
                f"air-gapped site, but {len(found)} rendered reference(s) reach outside the declared "
                f"registries, model stores and mirrors:\n{lines}"
            )
    old = read_tree(Path(out))
    changed, added, removed = compare(files, old)
    result = RenderResult({k: "" for k in files}, Path(out), changed, added, removed)
    if not check_only and result.differs:
        write_tree(files, Path(out))
    return result
