"""Golden trees: every blueprint and example renders to exactly the reviewed tree.

Refresh after an intended change with `pytest tests/golden --update-goldens` and review the
diff like code. Roles under ansible/project/roles are verbatim copies of templates/ (their
hashes are in manifest.json, which is compared), so they are not stored again here.

An input that renders exactly like another case has no tree of its own: SAME_AS names the
case whose golden tree it must match, and --update-goldens writes only the reference.
(examples/lab.yaml was one, until it gained the lab's inference deployment.)
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from factoryctl.render import render
from factoryctl.session import check
from tests.helpers import ROOT

GOLDEN = Path(__file__).resolve().parent
CASES = {p.parent.name: p for p in sorted((ROOT / "blueprints").glob("*/factory.yaml"))}
CASES["example-lab"] = ROOT / "examples" / "lab.yaml"
CASES["example-reference"] = ROOT / "examples" / "reference" / "factory.yaml"
SAME_AS: dict[str, str] = {}  # case -> the case whose golden tree it renders to
SKIP = "ansible/project/roles/"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).as_posix().startswith(SKIP)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_golden_tree(case, tmp_path, request):
    c = check(CASES[case])
    assert c.site is not None, c.findings
    out = tmp_path / "build"
    render(c.site, out)
    got = _tree(out)
    expected_dir = GOLDEN / SAME_AS.get(case, case) / "expected"
    updating = request.config.getoption("--update-goldens")
    if updating and case in SAME_AS:  # the reference's tree is being rewritten: compare renders
        ref = check(CASES[SAME_AS[case]])
        render(ref.site, tmp_path / "reference")
        assert got == _tree(tmp_path / "reference"), f"{case} no longer renders like {SAME_AS[case]}"
        return
    if updating:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, data in got.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_bytes(data)
        return
    assert expected_dir.is_dir(), f"no golden tree for {case}: run pytest tests/golden --update-goldens"
    want = _tree(expected_dir)
    problems = [f"missing: {rel}" for rel in sorted(want.keys() - got.keys())]
    problems += [f"unexpected: {rel}" for rel in sorted(got.keys() - want.keys())]
    for rel in sorted(want.keys() & got.keys()):
        if want[rel] != got[rel]:
            diff = difflib.unified_diff(want[rel].decode(errors="replace").splitlines(),
                                        got[rel].decode(errors="replace").splitlines(),
                                        f"golden/{rel}", f"render/{rel}", lineterm="", n=2)
            problems.append("\n".join(list(diff)[:60]))
    assert not problems, f"{case} differs from its golden tree (--update-goldens to accept):\n" + "\n".join(problems)


def test_same_as_cases_store_no_tree_of_their_own():
    for case, ref in SAME_AS.items():
        assert ref in CASES and ref not in SAME_AS, case
        assert not (GOLDEN / case).exists(), f"{case} renders like {ref}: its golden tree is {ref}'s"


def test_render_is_deterministic_across_runs(tmp_path):
    c = check(CASES["enterprise-pilot-h100-4n"])
    render(c.site, tmp_path / "a")
    c2 = check(CASES["enterprise-pilot-h100-4n"])  # a fresh model and context
    render(c2.site, tmp_path / "b")
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b


def test_render_check_reports_changes(tmp_path):
    """`--check` exits 2 when the tree on disk would change, 0 when it is current."""
    from factoryctl.cli import run

    src = CASES["example-lab"]
    out = tmp_path / "build"
    assert run(["render", str(src), "--out", str(out)]) == 0
    assert run(["render", str(src), "--out", str(out), "--check"]) == 0
    (out / "slurm" / "slurm.conf").write_text("# edited by hand\n")
    assert run(["render", str(src), "--out", str(out), "--check"]) == 2
    assert (out / "slurm" / "slurm.conf").read_text() == "# edited by hand\n"  # --check writes nothing
