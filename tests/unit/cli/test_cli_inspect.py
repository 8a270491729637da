"""`factoryctl inspect`, `schema`, `blueprint` and `rules` as a user meets them."""

from __future__ import annotations

import json

from factoryctl.cli import run
from tests.helpers import REFERENCE, reference_doc, write_doc


def _json(capsys, *args):
    rc = run(list(args))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return rc, json.loads(cap.out) if cap.out.strip().startswith(("{", "[")) else cap.out


def test_inspect_json_keys(capsys):
    rc, doc = _json(capsys, "inspect", str(REFERENCE), "--format", "json")
    assert rc == 0
    assert doc["totals"]["nodes"] == 7 and doc["totals"]["gpus"] == 32
    h = {x["name"]: x for x in doc["hosts"]}
    assert set(h) == {"head01", "head02", "head03", "gpu01", "gpu02", "gpu03", "gpu04"}
    assert h["gpu01"]["rack"] == "r01" and h["gpu02"]["rack"] == "r01"
    assert h["gpu03"]["rack"] == "r02" and h["gpu04"]["rack"] == "r02"
    assert h["gpu01"]["group"] == "gpu" and "slurm-compute" in h["gpu01"]["roles"]
    assert h["head01"]["address"].startswith("10.20.0.")
    assert len({x["address"] for x in doc["hosts"]}) == 7
    racks = {r["name"]: r for r in doc["racks"]}
    # r01: 3 heads x 1.2 kW + 2 GPU nodes x 10.2 kW = 24.0 kW IT; x PUE 1.25 = 30.0 kW.
    assert racks["r01"]["it_kw"] == 24.0 and racks["r01"]["facility_kw"] == 30.0 and racks["r01"]["budget_kw"] == 45
    assert racks["r02"]["it_kw"] == 20.4
    c = doc["fabric"]["compute"]
    assert (c["endpoints"], c["leaves"], c["spines"], c["cores"], c["tiers"]) == (32, 8, 4, 0, 2)
    inf = doc["inference"][0]
    assert inf["gpus"] == 8
    # Llama-3.1-70B fp8 over TP4: 70.6 GB / 4 weights + 32k-token bf16 KV split 8 KV heads / 4 + 3 GB.
    assert 20 < inf["memory_gb_per_gpu"] < 30


def test_inspect_prints_facts_even_with_rule_errors(tmp_path, capsys):
    doc = reference_doc()
    doc["facility"]["racks"][0]["power_kw"] = 20
    rc = run(["inspect", str(write_doc(doc, tmp_path / "f.yaml"))])
    out = capsys.readouterr().out
    assert rc == 1
    assert "Racks" in out and "r01" in out and "PWR001" in out


def test_inspect_refuses_only_unloadable_files(tmp_path, capsys):
    doc = reference_doc()
    doc["nodes"][0]["count"] = "three"
    rc = run(["inspect", str(write_doc(doc, tmp_path / "f.yaml"))])
    cap = capsys.readouterr()
    assert rc == 1 and "SCH003" in cap.err and "Racks" not in cap.out


def test_schema_is_json_schema_with_every_section(capsys):
    rc, doc = _json(capsys, "schema")
    assert rc == 0
    assert doc["$schema"].startswith("https://json-schema.org/")
    for section in ("metadata", "site", "facility", "nodes", "fabric", "storage", "kubernetes", "slurm",
                    "inference", "sovereignty", "verify"):
        assert section in doc["properties"], section
    assert doc["additionalProperties"] is False


def test_blueprint_list_and_show(capsys):
    rc, doc = _json(capsys, "blueprint", "list", "--format", "json")
    assert rc == 0 and "lab" in {b["name"] for b in doc}
    rc = run(["blueprint", "show", "lab"])
    assert rc == 0 and "factory.yaml" in capsys.readouterr().out
    assert run(["blueprint", "show", "nope"]) == 64


def test_blueprint_fork_records_origin_and_applies_sets(tmp_path, capsys):
    dest = tmp_path / "site"
    rc = run(["blueprint", "fork", "enterprise-pilot-h100-4n", str(dest), "--set", "metadata.name=fra2",
              "--set", "nodes[1].count=6", "--set", "site.datacenter=fra2"])
    capsys.readouterr()
    assert rc == 0
    text = (dest / "factory.yaml").read_text()
    rc, doc = _json(capsys, "inspect", str(dest / "factory.yaml"), "--format", "json")
    assert doc["name"] == "fra2" and doc["totals"]["nodes"] == 9
    assert "blueprint:" in text and "enterprise-pilot-h100-4n" in text
    assert (dest / "README.md").is_file()


def test_blueprint_fork_refuses_existing_dir_and_bad_set(tmp_path, capsys):
    dest = tmp_path / "site"
    dest.mkdir()
    (dest / "x").write_text("keep me")
    assert run(["blueprint", "fork", "lab", str(dest)]) == 64  # a destination in use is a usage error
    assert (dest / "x").read_text() == "keep me"
    assert run(["blueprint", "fork", "lab", str(tmp_path / "b"), "--set", "nodes[99].count=1"]) == 64
    assert not (tmp_path / "b").exists()
    assert run(["blueprint", "fork", "lab", str(tmp_path / "c"), "--set", "novalue"]) == 64
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


def test_rules_list_and_explain(capsys):
    rc, doc = _json(capsys, "rules", "list", "--format", "json")
    assert rc == 0 and len(doc) >= 30
    code = doc[0]["code"]
    assert run(["rules", "explain", code]) == 0
    assert code in capsys.readouterr().out
    assert run(["rules", "explain", "XXX999"]) == 64


def test_version(capsys):
    assert run(["--version"]) == 0
    assert "factoryctl" in capsys.readouterr().out
