"""Air-gap check over every rendered file: no URL or host outside the site's own."""

from __future__ import annotations

from ..model import Factory
from ..resolve.airgap import external_reference


def leaks(f: Factory, files: dict[str, bytes]) -> list[tuple[str, int, str, str]]:
    """(file, line, host, what it is) for each line reaching a public or undeclared host."""
    out = []
    for rel, data in sorted(files.items()):
        if rel == "manifest.json":
            continue
        for n, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue  # comments document, they do not fetch
            found = external_reference(f, line)
            if found:
                out.append((rel, n, found[0], found[1]))
    return out
