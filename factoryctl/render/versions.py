"""Component versions, read from factoryctl/data/versions.yaml (the one place they are pinned).

The render reads them here (operator releases, default images); Ansible role defaults under
templates/ansible/project/ carry the same literals, copied verbatim into every build, at the
places each component's `pins` name. `pin_problems()` lists every pin that differs from the
file; `python -m factoryctl.render.versions --write` rewrites them from it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from ..resources import templates_dir

VERSIONS_FILE = Path(__file__).resolve().parent.parent / "data" / "versions.yaml"


@dataclass(frozen=True)
class Pin:
    """A literal copy of a version: in `path` (under templates/ansible/project/), right after `after`."""

    path: str
    after: str


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    source: str
    image: str = ""  # repository the version tags
    chart: str = ""  # Helm chart name
    repo: str = ""  # git repository built at the version
    pins: tuple[Pin, ...] = field(default_factory=tuple)
    arches: tuple[str, ...] = ()  # CPU architectures the image is built for (empty: not recorded)
    generations: tuple[str, ...] = ()  # GPU generations its build supports (empty: not recorded)

    @property
    def image_ref(self) -> str:
        if not self.image:
            raise KeyError(f"component {self.name} has no image")
        return f"{self.image}:{self.version}"


@cache
def components() -> dict[str, Component]:
    data = yaml.safe_load(VERSIONS_FILE.read_text())["components"]
    out = {}
    for name, c in data.items():
        if not isinstance(c.get("version"), str) or not c.get("source"):
            raise ValueError(f"{VERSIONS_FILE.name}: {name} needs a version (a string) and a source")
        pins = tuple(Pin(path, after) for p in c.get("pins", []) for path, after in p.items())
        out[name] = Component(name, c["version"], c["source"], c.get("image", ""), c.get("chart", ""),
                              c.get("repo", ""), pins, tuple(c.get("arches", ())), tuple(c.get("generations", ())))
    return out


def version(name: str) -> str:
    return components()[name].version


def image(name: str) -> str:
    """`repository:tag` of a component's image."""
    return components()[name].image_ref


def _project() -> Path:
    return templates_dir() / "ansible" / "project"


def _pattern(pin: Pin) -> re.Pattern[str]:
    # the version follows `after`, quoted or not
    return re.compile(re.escape(pin.after) + r"""(["']?)([^"'\s)]+)\1""")


def pin_problems() -> list[str]:
    """Every pin whose literal differs from versions.yaml (or cannot be found)."""
    problems = []
    for c in components().values():
        for pin in c.pins:
            path = _project() / pin.path
            found = _pattern(pin).findall(path.read_text()) if path.is_file() else []
            if len(found) != 1:
                problems.append(f"{pin.path}: expected one {pin.after!r}<version>, found {len(found)}")
            elif found[0][1] != c.version:
                problems.append(f"{pin.path}: {pin.after}{found[0][1]} but versions.yaml has {c.name} {c.version}")
    return problems


def write_pins() -> list[str]:
    """Rewrite every pin from versions.yaml; the files changed."""
    changed = []
    for c in components().values():
        for pin in c.pins:
            path = _project() / pin.path
            if not path.is_file():
                continue  # pin_problems() says so
            text = path.read_text()
            new = _pattern(pin).sub(lambda m, a=pin.after, v=c.version: f"{a}{m.group(1)}{v}{m.group(1)}", text)
            if new != text:
                path.write_text(new)
                changed.append(pin.path)
    return changed


if __name__ == "__main__":  # python -m factoryctl.render.versions [--write]
    if "--write" in sys.argv[1:]:
        for p in write_pins():
            sys.stdout.write(f"rewrote {p}\n")
    problems = pin_problems()
    sys.stdout.write("".join(f"{p}\n" for p in problems) or "every pin matches versions.yaml\n")
    sys.exit(1 if problems else 0)
