"""render: a validated, resolved factory -> the artifact tree (terraform/ ansible/ kubernetes/
slurm/ verify/ + manifest.json), byte-for-byte deterministic."""

from __future__ import annotations

from pathlib import Path

from ..resolve import Site
from .airgap_check import leaks
from .context import build
from .environment import UnsafeValue
from .errors import RenderError, UnsafeOutput
from .output import claim, clean_leftovers, output_lock, read_owned, refuse_target
from .writer import RenderResult, compare, render_tree, write_tree

__all__ = ["RenderError", "RenderResult", "UnsafeOutput", "refuse_target", "render"]


def render(site: Site, out: Path, check_only: bool = False) -> RenderResult:
    """Render into `out`, replacing only a tree an earlier render wrote there (output.claim);
    UnsafeOutput for a folder of someone else's."""
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
    out = Path(out)
    if check_only:
        return _compared(files, out, claim(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out.parent):
        clean_leftovers(out)  # of a render killed mid-way: under the lock, none is alive
        owned = claim(out)
        result = _compared(files, out, owned)
        if result.differs:
            write_tree(files, out, owned)
    return result


def _compared(files: dict[str, bytes], out: Path, owned: set[str]) -> RenderResult:
    changed, added, removed = compare(files, read_owned(out, owned))
    return RenderResult({k: "" for k in files}, out, changed, added, removed)
