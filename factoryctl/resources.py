"""Where shipped data lives: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    # In a wheel, templates/ and blueprints/ are force-included inside the package;
    # in a source checkout (editable install, tests) they sit beside it.
    inside = _PKG / name
    return inside if inside.is_dir() else _PKG.parent / name


def templates_dir() -> Path:
    return _shipped("templates")


def blueprints_dir() -> Path:
    return _shipped("blueprints")
