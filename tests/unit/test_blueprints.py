"""Every shipped blueprint validates, documents how to fork it, and forks into a valid site.

Blueprints are discovered from the blueprints/ folder, so a new blueprint is a new case here
without editing this file. A few blueprints also pin the numbers their README promises.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from factoryctl.cli import run
from factoryctl.findings import Severity
from factoryctl.resources import blueprints_dir
from factoryctl.session import Checked, check

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINTS = sorted(p.name for p in blueprints_dir().iterdir() if (p / "factory.yaml").is_file())
LAB_EXAMPLE = ROOT / "examples" / "lab.yaml"


@cache
def checked(name: str) -> Checked:
    return check(blueprints_dir() / name / "factory.yaml")


def _errors(c: Checked) -> list[str]:
    return [f"{f.code} {f.path}: {f.message}" for f in c.findings if f.severity is Severity.error]


def test_blueprints_are_discovered() -> None:
    assert {"lab", "enterprise-pilot-h100-4n", "superpod-h100-1su"} <= set(BLUEPRINTS)


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint_validates_without_errors(name: str) -> None:
    c = checked(name)
    assert c.site is not None, [f.message for f in c.findings]
    assert _errors(c) == []


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint_readme_explains_forking(name: str) -> None:
    readme = blueprints_dir() / name / "README.md"
    assert readme.is_file(), f"{name} has no README.md"
    text = readme.read_text()
    assert re.search(r"^#+ .*change when forking", text, re.IGNORECASE | re.MULTILINE), (
        f"{name}/README.md needs a 'What to change when forking' section"
    )
    assert "metadata.name" in text
    assert f"blueprint fork {name} " in text, f"{name}/README.md should show the fork command"


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint_forks_into_a_valid_site(name: str, tmp_path: Path) -> None:
    dest = tmp_path / "site"
    assert run(["blueprint", "fork", name, str(dest), "--set", "metadata.name=x"]) == 0
    forked = dest / "factory.yaml"
    doc = YAML(typ="safe").load(forked.read_text())
    assert doc["metadata"]["name"] == "x"
    assert doc["metadata"]["blueprint"]["name"] == name
    assert doc["metadata"]["blueprint"]["version"]
    assert (dest / "README.md").is_file()
    c = check(forked)
    assert c.factory is not None and c.factory.metadata.blueprint.name == name
    assert _errors(c) == []


def test_superpod_one_su_matches_the_reference_architecture() -> None:
    # DGX SuperPOD H100 RA, 1 SU: 8 leaves, 4 spines, 252 node+UFM cables, 256 leaf-spine.
    site = checked("superpod-h100-1su").site
    fab = site.fabric["compute"]
    assert (fab.leaves, fab.spines) == (8, 4)
    assert (fab.node_leaf_cables, fab.leaf_spine_cables) == (252, 256)
    assert site.totals["gpus"] == 248
    assert any("ufm" in h.roles for h in site.hosts)


def test_enterprise_32n_has_256_gpus_on_racks_within_budget() -> None:
    site = checked("enterprise-h100-32n").site
    assert site.totals["gpus"] == 256
    assert site.groups["gpu"].count == 32
    assert all(r.it_kw <= r.budget_kw for r in site.racks)


def test_hybrid_has_h100_and_a100_groups() -> None:
    site = checked("hybrid-slurm-research").site
    assert site.totals["gpus"] == 192
    models = {g.gpu_model for g in site.groups.values() if g.gpus_per_node}
    assert models == {"H100-SXM-80GB", "A100-SXM-80GB"}


def test_lab_is_three_hosts_without_gpus() -> None:
    site = checked("lab").site
    assert site.totals["nodes"] == 3 and len(site.hosts) == 3
    assert site.totals["gpus"] == 0
    assert site.factory.site.provider == "lab"
    assert site.factory.slurm.enabled and not site.factory.kubernetes.enabled
    assert "compute" not in site.fabric


def test_gb300_racks_are_liquid_cooled() -> None:
    site = checked("gb300-nvl72-neocloud").site
    gpu_racks = [r for r in site.racks if r.gpus]
    assert gpu_racks and all(r.cooling == "liquid" for r in gpu_racks)
    assert all(r.gpus == 72 for r in gpu_racks)  # one NVL72 domain per rack


def test_sovereign_blueprint_is_air_gapped() -> None:
    f = checked("sovereign-eu-airgapped").factory
    assert f.sovereignty.air_gapped and f.site.mirrors is not None
    assert all(s.location is not None and s.encryption is not None for s in f.storage)


def test_lab_example_is_the_blueprint_plus_serving() -> None:
    """examples/lab.yaml = blueprints/lab + the mirror and the inference deployment, the compute
    nodes' room for the engine (memory, a second CPU), and issue 18's parts on head01
    (slurmdbd, Prometheus) with two tenants: nothing else differs."""
    c = check(LAB_EXAMPLE)
    assert c.site is not None and _errors(c) == []
    example, blueprint = c.factory, checked("lab").factory
    assert [i.name for i in example.inference] == ["tiny"] and not blueprint.inference
    assert example.site.mirrors is not None and example.site.mirrors.pypi
    assert [t.name for t in example.tenants] == ["research", "product"] and example.slurm.accounting
    head = example.nodes[0].model_copy(update={"hardware": blueprint.nodes[0].hardware, "roles": blueprint.nodes[0].roles})
    node = example.nodes[1].model_copy(update={"hardware": blueprint.nodes[1].hardware})
    same = example.model_copy(update={
        "inference": [], "tenants": [], "site": example.site.model_copy(update={"mirrors": None}),
        "slurm": example.slurm.model_copy(update={"accounting": False}),
        "nodes": [head, node], "metadata": blueprint.metadata})
    assert same == blueprint


def _leaves(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, node


def test_pilot_blueprint_keeps_every_reference_value() -> None:
    yaml = YAML(typ="safe")
    reference = yaml.load((ROOT / "examples" / "reference" / "factory.yaml").read_text())
    pilot = dict(_leaves(yaml.load((blueprints_dir() / "enterprise-pilot-h100-4n" / "factory.yaml").read_text())))
    changed = [(p, v, pilot.get(p)) for p, v in _leaves(reference) if pilot.get(p, object()) != v]
    assert changed == []


def test_blueprint_errors_carry_their_exit_codes(tmp_path: Path, capsys) -> None:
    from factoryctl import blueprints as bp
    from factoryctl.errors import ExitCode

    with pytest.raises(bp.UnknownBlueprint) as unknown:
        bp.get("nope")
    with pytest.raises(bp.SetError) as bad_set:
        bp.parse_set("novalue")
    with pytest.raises(bp.SetError) as missing:
        bp.fork("lab", tmp_path / "site", ["nodes[99].count=1"])
    assert {unknown.value.exit_code, bad_set.value.exit_code, missing.value.exit_code} == {ExitCode.USAGE}
    assert bp.BlueprintError("cannot write").exit_code == ExitCode.FAILED
    assert run(["blueprint", "show", "nope"]) == ExitCode.USAGE
    assert "error: no blueprint named 'nope'" in capsys.readouterr().err


# Contradictions issue 16 found in shipped blueprints, each fixed in the blueprint: a copy with
# the fix taken out again gets the rule's finding (and the blueprint itself does not).
_HA_STATE = [(b, "SLM020", ("slurm", "state_save_location")) for b in
             ("enterprise-h100-32n", "enterprise-pilot-h100-4n", "hybrid-slurm-research",
              "sovereign-eu-airgapped", "superpod-h100-1su")]
_SPLIT = [(b, "NOD011", ("nodes", "@gpu", "gpu_split")) for b in
          ("enterprise-h100-32n", "enterprise-pilot-h100-4n", "sovereign-eu-airgapped")]
_PYXIS = [(b, "SLM022", ("slurm", "containers", "pyxis_repo")) for b in
          ("enterprise-pilot-h100-4n", "sovereign-eu-airgapped")]


@pytest.mark.parametrize("name, code, fix", _HA_STATE + _SPLIT + _PYXIS,
                         ids=[f"{b}-{c}" for b, c, _ in _HA_STATE + _SPLIT + _PYXIS])
def test_blueprint_fix_taken_out_brings_the_finding_back(name: str, code: str, fix: tuple, tmp_path: Path) -> None:
    assert code not in {f.code for f in checked(name).findings}
    yaml = YAML(typ="rt")
    doc = yaml.load((blueprints_dir() / name / "factory.yaml").read_text())
    node = doc
    for key in fix[:-1]:
        node = next(ng for ng in node if ng["group"] == "gpu") if key == "@gpu" else node[key]
    del node[fix[-1]]
    path = tmp_path / "factory.yaml"
    with path.open("w") as fh:
        yaml.dump(doc, fh)
    found = [f for f in check(path).findings if f.code == code]
    # SLM022 warns: without a source, pyxis is left out and the site still runs (rules/slurm.py).
    severity = Severity.warning if code == "SLM022" else Severity.error
    assert found and found[0].severity is severity and found[0].line, [f.code for f in check(path).findings]
