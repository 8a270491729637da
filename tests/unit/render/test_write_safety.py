"""Write safety of render and the workspace (issue 12): render replaces only a tree it owns,
never reads a foreign one, cleans what a killed render left; the workspace is never written
through a link, its lock never truncates another file, and one workspace has one factory file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from factoryctl.cli import run
from factoryctl.files import atomic_write
from factoryctl.render import output
from factoryctl.workspace import Workspace, WorkspaceError
from tests.helpers import REFERENCE, ROOT

LAB = ROOT / "examples" / "lab.yaml"
NAME = "fra1-pilot"  # metadata.name of the reference example


@pytest.fixture
def site(tmp_path) -> Path:
    """The reference factory in a folder of its own."""
    folder = tmp_path / "site"
    folder.mkdir()
    path = folder / "factory.yaml"
    shutil.copy(REFERENCE, path)
    return path


def _user_files(folder: Path) -> dict[str, bytes]:
    """A user's folder: a factory.yaml, a README, a git repository (dot-files included)."""
    files = {"factory.yaml": b"kind: Factory\n", "README.md": b"# my notes\n", ".git/HEAD": b"ref: refs/heads/main\n",
             ".env": b"KEEP=1\n"}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return files


def _assert_kept(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        assert (folder / rel).read_bytes() == data, rel


# --- render --out: only a tree of its own ---------------------------------------------------

def test_render_refuses_a_non_empty_folder_it_did_not_render(site, tmp_path, capsys):
    out = tmp_path / "mine"
    files = _user_files(out)
    assert run(["render", str(site), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "not rendered by factoryctl" in err and "empty or new folder" in err
    assert "internal error" not in err
    _assert_kept(out, files)
    assert sorted(p.name for p in out.iterdir()) == [".env", ".git", "README.md", "factory.yaml"]


def test_render_check_refuses_a_foreign_folder_too(site, tmp_path, capsys):
    out = tmp_path / "mine"
    files = _user_files(out)
    assert run(["render", str(site), "--out", str(out), "--check"]) == 1
    assert "not rendered by factoryctl" in capsys.readouterr().err
    _assert_kept(out, files)


@pytest.mark.parametrize("where", [".", "factory folder", "above the factory", "workspace", "workspaces"])
def test_render_refuses_the_users_own_folders(site, tmp_path, monkeypatch, capsys, where):
    folder = site.parent
    monkeypatch.chdir(folder)
    (folder / "README.md").write_text("# keep\n")
    target = {".": Path("."), "factory folder": folder, "above the factory": tmp_path,
              "workspace": folder / ".factory" / NAME, "workspaces": folder / ".factory"}[where]
    assert run(["render", str(site), "--out", str(target)]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and f"--out {target}" in err
    assert (folder / "README.md").read_text() == "# keep\n" and site.is_file()


def test_render_refuses_an_out_that_is_a_link(site, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert run(["render", str(site), "--out", str(link)]) == 1
    assert "symbolic link" in capsys.readouterr().err
    assert link.is_symlink() and not any(real.iterdir())


def test_rerender_replaces_only_its_own_files(site, tmp_path, capsys):
    """Re-rendering an owned tree keeps what others put there (a README, `.git/`, an engine's
    lock file beside a stack) and removes the files of the earlier render that are gone."""
    out = tmp_path / "build"
    assert run(["render", str(LAB), "--out", str(out)]) == 0
    lab_only = sorted(json.loads((out / "manifest.json").read_text())["files"])
    files = _user_files(out)
    stack = next(p.parent for p in sorted(out.glob("terraform/*/units/*/main.tf")))
    stack_lock = stack / ".terraform.lock.hcl"
    stack_lock.write_text("# provider hashes\n")
    capsys.readouterr()
    assert run(["render", str(site), "--out", str(out)]) == 0  # another site: most files change
    printed = capsys.readouterr().out
    _assert_kept(out, files)
    now = json.loads((out / "manifest.json").read_text())["files"]
    gone = [rel for rel in lab_only if rel not in now]
    assert gone and all(not (out / rel).exists() for rel in gone)
    assert all(f"removed  {rel}" in printed for rel in gone)
    assert "README.md" not in printed and ".git" not in printed
    if stack.is_dir():  # the reference site has this stack too: the lock file stays beside it
        assert stack_lock.read_text() == "# provider hashes\n"
    else:  # a stack the new render dropped goes whole: it must not linger as a stack
        assert not stack.exists()


def test_rerender_keeps_engine_dot_files_beside_kept_stacks(site, tmp_path):
    out = tmp_path / "build"
    assert run(["render", str(site), "--out", str(out)]) == 0
    stack = next(p.parent for p in sorted(out.glob("terraform/*/units/*/main.tf")))
    (stack / ".terraform.lock.hcl").write_text("# provider hashes\n")
    (stack / ".terraform").mkdir()
    (stack / ".terraform" / "x").write_text("x\n")
    (out / "slurm" / "slurm.conf").write_text("# edited by hand\n")
    assert run(["render", str(site), "--out", str(out)]) == 0
    assert (stack / ".terraform.lock.hcl").read_text() == "# provider hashes\n"
    assert (stack / ".terraform" / "x").read_text() == "x\n"
    assert "edited by hand" not in (out / "slurm" / "slurm.conf").read_text()


def test_a_file_of_someone_else_where_render_writes_is_refused_before_any_change(site, tmp_path, capsys):
    out = tmp_path / "build"
    assert run(["render", str(site), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    victim = "slurm/slurm.conf"
    del manifest["files"][victim]  # now a file the earlier render did not write
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / victim).write_text("# the user's own\n")
    assert run(["render", str(site), "--out", str(out)]) == 1
    assert "slurm/slurm.conf is not factoryctl's" in capsys.readouterr().err
    assert (out / victim).read_text() == "# the user's own\n"
    assert not list(tmp_path.glob(".build.new-*"))


def test_render_reads_no_file_of_a_foreign_folder(site, tmp_path, monkeypatch):
    """Ownership is decided before reading: nothing in a foreign folder is opened."""
    out = tmp_path / "mine"
    _user_files(out)
    (out / "big.bin").write_bytes(b"\0" * 4096)
    opened: list[str] = []
    real_open, real_read = os.open, Path.read_bytes

    def spy_open(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)

    def spy_read(self):
        opened.append(str(self))
        return real_read(self)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(Path, "read_bytes", spy_read)
    assert run(["render", str(site), "--out", str(out)]) == 1
    inside = [p for p in opened if p.startswith(str(out) + "/") and not p.endswith("/manifest.json")]
    assert inside == []


def test_a_planted_manifest_cannot_name_files_outside_the_tree(tmp_path):
    out = tmp_path / "build"
    out.mkdir()
    outside = tmp_path / "secret"
    outside.write_text("s3cret\n")
    (out / "manifest.json").write_text(json.dumps({"generator": "factoryctl 0", "files": {
        "../secret": "x", "/etc/passwd": "x", "ok/file": "x"}}))
    owned = output.claim(out)
    assert owned == {"ok/file", "manifest.json"}
    assert "../secret" not in output.read_owned(out, owned)


# --- leftovers ---------------------------------------------------------------------------------

def test_render_cleans_what_a_killed_render_left(site, capsys):
    ws = site.parent / ".factory" / NAME
    assert run(["render", str(site)]) == 0
    left = [ws / ".build.new-k1ll3d", ws / ".build.old-4242", ws / ".applied.new-x1", ws / ".applied.old-77",
            ws / ".drift-abc"]
    for d in left:
        (d / "terraform").mkdir(parents=True)
        (d / "terraform" / "main.tf").write_text("x\n")
    tmp_files = [ws / ".applied.json.x1y2.tmp", ws / "plans" / ".plan.json.a1b2.tmp"]
    for f in tmp_files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{")
    kept = [ws / "plans" / "plan.json", ws / ".keep-me"]
    for f in kept:
        f.write_text("{}\n")
    assert run(["render", str(site)]) == 0
    assert [p for p in left + tmp_files if p.exists()] == []
    assert all(f.read_text() == "{}\n" for f in kept)


def test_render_out_cleans_only_its_own_leftovers(site, tmp_path):
    out = tmp_path / "build"
    ours = [tmp_path / ".build.new-k1ll3d", tmp_path / ".build.old-4242"]
    theirs = [tmp_path / ".other.new-1", tmp_path / ".build.notes", tmp_path / "build.new-1"]
    for d in ours + theirs:
        d.mkdir()
        (d / "f").write_text("x\n")
    assert run(["render", str(site), "--out", str(out)]) == 0
    assert [d for d in ours if d.exists()] == []
    assert all((d / "f").read_text() == "x\n" for d in theirs)


# --- links in the workspace ---------------------------------------------------------------------

def test_a_lock_linked_to_another_file_is_refused_and_never_truncated(site, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ws = Workspace.beside(site, NAME)
    ws.root.mkdir(parents=True)
    (ws.root / "lock").symlink_to(victim)
    with pytest.raises(WorkspaceError, match="lock is a symbolic link"):
        with ws.lock("plan"):
            pass
    assert victim.read_text() == "precious\n"
    assert run(["render", str(site)]) == 1
    assert f"{ws.root / 'lock'} is a symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"


def test_a_lock_that_is_a_second_name_of_another_file_is_refused(site, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ws = Workspace.beside(site, NAME)
    ws.root.mkdir(parents=True)
    os.link(victim, ws.root / "lock")
    with pytest.raises(WorkspaceError, match="not factoryctl's lock file"):
        with ws.lock("plan"):
            pass
    assert victim.read_text() == "precious\n"


def test_a_workspace_folder_linked_elsewhere_is_refused(site, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (site.parent / ".factory").symlink_to(elsewhere)
    assert run(["render", str(site)]) == 1
    err = capsys.readouterr().err
    assert f"{site.parent / '.factory'} is a symbolic link" in err and "internal error" not in err
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("sub", ["plans", "state", "build", "runs"])
def test_workspace_paths_linked_elsewhere_are_refused(site, tmp_path, sub):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ws = Workspace.beside(site, NAME)
    ws.root.mkdir(parents=True)
    (ws.root / sub).symlink_to(elsewhere)
    writes = {"plans": lambda: atomic_write(ws.plans_dir / "plan.json", "{}"),
              "state": lambda: ws.state_file("lab", "gpu-000").write_text("{}"),
              "build": lambda: (ws.build / "x").write_text("x"),
              "runs": lambda: ws.new_run("verify")}
    with pytest.raises(WorkspaceError, match=f"{sub} is a symbolic link"):
        writes[sub]()
    assert not any(elsewhere.iterdir())


def test_atomic_write_refuses_a_linked_folder_deep_in_a_workspace(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runs = tmp_path / ".factory" / "x" / "runs"
    runs.mkdir(parents=True)
    (runs / "r1").symlink_to(elsewhere)
    with pytest.raises(WorkspaceError, match="r1 is a symbolic link"):
        atomic_write(runs / "r1" / "run.json", "{}")
    assert not any(elsewhere.iterdir())


# --- one workspace, one factory file ---------------------------------------------------------------

def test_two_factory_files_with_one_name_do_not_share_a_workspace(site, capsys):
    other = site.parent / "copy.yaml"
    shutil.copy(site, other)
    assert run(["render", str(site)]) == 0
    capsys.readouterr()
    for command in (["render", str(other)], ["plan", str(other)], ["render", str(other), "--check"]):
        assert run(command) == 1, command
        err = capsys.readouterr().err
        assert "factory.yaml" in err and "copy.yaml" in err and "metadata.name" in err, err
        assert "internal error" not in err
    owner = json.loads((site.parent / ".factory" / NAME / "owner.json").read_text())
    assert owner == {"factory": "factory.yaml"}


def test_a_workspace_without_an_owner_record_is_adopted_by_its_first_user(site, capsys):
    ws = site.parent / ".factory" / NAME
    (ws / "state").mkdir(parents=True)  # written by a factoryctl that kept no record
    other = site.parent / "copy.yaml"
    shutil.copy(site, other)
    assert run(["render", str(other)]) == 0
    assert json.loads((ws / "owner.json").read_text()) == {"factory": "copy.yaml"}
    capsys.readouterr()
    assert run(["render", str(site)]) == 1
    err = capsys.readouterr().err
    assert "belongs to copy.yaml" in err


def test_a_renamed_factory_file_is_told_how_to_take_its_workspace_back(site, capsys):
    assert run(["render", str(site)]) == 0
    renamed = site.with_name("site.yaml")
    site.rename(renamed)
    capsys.readouterr()
    assert run(["render", str(renamed)]) == 1
    err = capsys.readouterr().err
    assert "owner.json" in err and "adopts" in err
    (site.parent / ".factory" / NAME / "owner.json").unlink()
    assert run(["render", str(renamed)]) == 0


def test_the_applied_snapshot_keeps_only_the_rendered_files(site, tmp_path):
    """apply keeps the applied tree for drift and key-level diffs: the files the render wrote,
    not what someone left in build/ (a note, a link to a file outside)."""
    outside = tmp_path / "outside.yml"
    outside.write_text("secret: 1\n")
    assert run(["render", str(site)]) == 0
    ws = Workspace.beside(site, NAME)
    (ws.build / "notes.yml").write_text("mine: 1\n")
    (ws.build / "ansible" / "linked.yml").symlink_to(outside)
    ws.record_applied("hash", {}, build=ws.build)
    kept = ws.applied_files()
    assert "notes.yml" not in kept and "ansible/linked.yml" not in kept
    assert "ansible/project/site.yml" in kept
    assert (ws.applied_dir / "manifest.json").is_file()
