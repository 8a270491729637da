"""README's layout section and docs/design.md name every package and top-level module of
factoryctl/, so the documented layout cannot drift from the tree."""

from __future__ import annotations

from tests.helpers import ROOT

PKG = ROOT / "factoryctl"


def _tree() -> tuple[list[str], list[str]]:
    packages = sorted(p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    modules = sorted(p.name for p in PKG.glob("*.py") if not p.name.startswith("_"))
    return packages, modules


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else None]


def test_readme_layout_lists_every_package_and_module():
    layout = _section((ROOT / "README.md").read_text(), "## Layout\n")
    packages, modules = _tree()
    missing = [f"{p}/" for p in packages if f"`{p}/`" not in layout and f"`{p}/` " not in layout]
    missing += [m for m in modules if f"`{m}`" not in layout]
    assert missing == [], f"README's layout section does not name {missing}"
    assert "docs/design.md" in layout


def test_design_doc_gives_every_package_its_job():
    design = (ROOT / "docs" / "design.md").read_text()
    table = _section(design, "## One job per package")
    packages, modules = _tree()
    missing = [p for p in packages if p != "data" and f"| `{p}/` |" not in table]
    missing += [m for m in modules if f"`{m}`" not in table]
    assert missing == [], f"docs/design.md's package table does not name {missing}"
