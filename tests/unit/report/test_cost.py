"""Cost arithmetic against hand-computed values (the DGX H100 examples of the defaults' sources), and where inputs come from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from factoryctl.cli import run
from factoryctl.report.bom import bom
from factoryctl.report.cost import (
    HOURS_PER_YEAR,
    break_even_utilisation,
    capex_per_gpu_hour,
    cost,
    cost_per_million_tokens,
    energy_mwh_per_year,
)
from factoryctl.report.runs import latest_run, measured_throughput, runs
from tests.helpers import assert_finding, check_doc, reference_doc, write_doc

# --- worked examples: DGX H100 at the documented defaults ----------------------------------


def test_dgx_h100_energy_per_year():
    """A DGX H100 at 8 kW average (of 10.2 kW max) and PUE 1.3: 8 x 1.3 x 8,760 h = 91.1 MWh."""
    mwh = energy_mwh_per_year(10.2, 8 / 10.2, 1.3)
    assert mwh == pytest.approx(91.104)
    assert round(mwh) == 91
    assert mwh * 1000 * 0.10 == pytest.approx(9110.4)  # "about $9.1k at $0.10/kWh"


def test_capex_per_gpu_hour_before_power():
    """$25,000 per GPU over 4 years at 80 %: 25,000 / (4 x 8,760 x 0.8) = 0.8918 per GPU-hour."""
    assert capex_per_gpu_hour(25_000, 4, 0.8) == pytest.approx(0.89184, abs=1e-5)
    assert round(capex_per_gpu_hour(25_000, 4, 0.8), 2) == 0.89


def test_break_even_and_token_cost_formulas():
    # 8 GPUs, 59,110.40 per year against 2.35 per GPU-hour: 59,110.40 / (8 x 8,760 x 2.35) = 35.9 %
    assert break_even_utilisation(59_110.4, 8, 2.35) == pytest.approx(0.358924, abs=1e-6)
    # 1.0543 per GPU-hour, 4 GPUs, 1,000 tokens/s: 4.2174 per hour / 3.6 M tokens = 1.1715 per 1M
    assert cost_per_million_tokens(1.05434, 4, 1000) == pytest.approx(1.17149, abs=1e-4)


# --- one DGX-class node, every figure checked by hand -----------------------------------------

ECON = {
    "currency": "USD",
    "capex_per_node": {"gpu": 200_000},  # 25,000 per GPU
    "amortisation_years": 4,
    "utilisation": 0.8,
    "electricity_price_per_kwh": 0.10,
    "average_power_fraction": 0.7843137254901961,  # 8 kW of 10.2 kW
    "cloud_price_per_gpu_hour": 2.35,
}


def _one_node(tmp_path: Path, econ: dict | None = ECON, tps: float | None = 1000.0):
    doc = reference_doc()
    doc["nodes"] = [g for g in doc["nodes"] if g["group"] == "gpu"]
    doc["nodes"][0].update(count=1, rack="r01")
    doc["facility"]["pue"] = 1.3
    if econ is not None:
        doc["economics"] = econ
    if tps is not None:
        doc["inference"][0]["tokens_per_second"] = tps
    c = check_doc(doc, tmp_path)
    assert c.site is not None, c.findings
    return c.site


def test_one_node_by_hand(tmp_path):
    site = _one_node(tmp_path)
    co = cost(site, bom(site))
    v = {f.key: f.value for f in co.figures()}
    assert v["it_kw"] == 10.2 and v["facility_kw"] == pytest.approx(13.26)
    assert v["energy_mwh_per_year"] == pytest.approx(91.104)
    assert v["energy_cost_per_year"] == pytest.approx(9110.4)
    assert v["capex_nodes"] == 200_000 and v["capex_per_year"] == 50_000
    assert v["gpu_hours_per_year"] == pytest.approx(8 * HOURS_PER_YEAR * 0.8)  # 56,064
    assert v["gpu_hour_capex"] == pytest.approx(0.8918, abs=1e-4)
    assert v["gpu_hour_power"] == pytest.approx(9110.4 / 56064, abs=1e-4)  # 0.1625 per used GPU-hour
    assert v["gpu_hour_cost"] == pytest.approx(59_110.4 / 56_064, abs=1e-4)  # 1.0543
    assert v["break_even_utilisation"] == pytest.approx(0.3589, abs=1e-4)
    (d,) = co.inference
    assert d.source == "stated" and d.replica_gpus == 4
    assert d.cost_per_million_tokens.value == pytest.approx(1.1715, abs=1e-3)
    # 1.3 kW per GPU at the meter (10.2 x 0.784 x 1.3 / 8); 4 GPUs / 3.6 M tokens per hour
    assert d.energy_per_million_tokens.value == pytest.approx(4 * 1.3 / 3.6, abs=1e-3)


def test_every_figure_names_its_inputs(tmp_path):
    site = _one_node(tmp_path)
    co = cost(site, bom(site))
    for f in co.figures():
        assert f.formula and f.unit is not None
        for i in f.inputs:
            assert i.origin, f"{f.key}: input {i.name} has no origin"
    origins = {i.name: i.origin for f in co.figures() for i in f.inputs}
    assert origins["utilisation"] == "factory.yaml economics.utilisation"
    assert origins["PUE"] == "factory.yaml facility.pue"
    assert origins["node price (gpu) x 1"] == "factory.yaml economics.capex_per_node.gpu"
    tps = co.inference[0].tokens_per_second.inputs[0]
    assert "tokens_per_second (stated assumption)" in tps.origin


def test_defaults_carry_their_source(tmp_path):
    site = _one_node(tmp_path, econ=None)
    co = cost(site, bom(site))
    origins = {i.name: i.origin for f in co.figures() for i in f.inputs}
    assert origins["utilisation"].startswith("default: assumed: 80 %")
    assert origins["amortisation"].startswith("default:")
    assert origins["electricity price"].startswith("default:") and "0.10/kWh" in origins["electricity price"]
    assert "25,000 USD per H100-SXM-80GB" in origins["node price (gpu) x 1"]
    assert co.get("capex_nodes").value == 200_000  # 8 x the sourced 25k per H100 GPU
    assert co.get("cloud_price_per_gpu_hour").value == 2.35
    assert co.get("capex_switches").note.startswith("switches not costed")
    assert "lower bound" in co.get("gpu_hour_cost").note


def test_other_currency_gets_no_usd_defaults(tmp_path):
    site = _one_node(tmp_path, econ={"currency": "EUR"})
    co = cost(site, bom(site))
    assert co.currency == "EUR"
    assert co.get("energy_cost_per_year").value is None
    assert "electricity_price_per_kwh" in co.get("energy_cost_per_year").note
    assert co.get("capex_nodes").value == 0 and "gpu" in co.get("capex_nodes").note
    assert co.get("break_even_utilisation").value is None


def test_tokens_per_second_never_invented(tmp_path):
    site = _one_node(tmp_path, tps=None)
    (d,) = cost(site, bom(site)).inference
    assert d.source == "missing"
    assert d.tokens_per_second.value is None and d.cost_per_million_tokens.value is None
    assert "tokens_per_second" in d.tokens_per_second.note


def _bench(ws: Path, run_id: str, doc: dict | str, name: str = "bench-inference.json") -> Path:
    d = ws / "runs" / run_id
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_measured_throughput_wins_over_stated(tmp_path):
    site = _one_node(tmp_path)
    ws = tmp_path / ".factory" / "fra1-pilot"
    _bench(ws, "20260501T100000Z", {"inference": [{"deployment": "chat", "tokens_per_second": 500.0}]})
    newest = _bench(ws, "20260502T100000Z", {"inference": [{"deployment": "chat", "tokens_per_second": 2000.0,
                                                            "gpus": 4, "tool": "vllm bench serve"}]})
    _bench(ws, "20260503T100000Z", "{not json", name="bench-broken.json")  # skipped, named in problems
    measured = measured_throughput(ws)
    assert measured["chat"].tokens_per_second == 2000.0 and measured["chat"].file == str(newest)
    (d,) = cost(site, bom(site), measured).inference
    assert d.source == "measured"
    assert d.tokens_per_second.inputs[0].origin.startswith(f"measured: {newest}")
    assert d.cost_per_million_tokens.value == pytest.approx(1.0543 * 4 / (2000 * 3600) * 1e6, abs=1e-3)
    assert latest_run(ws).id == "20260502T100000Z"  # the broken newest run holds nothing readable
    broken = [r for r in runs(ws) if r.id.startswith("20260503")]
    assert broken[0].problems and "not readable JSON" in broken[0].problems[0]


def test_measured_bad_entries_are_skipped(tmp_path):
    ws = tmp_path / "ws"
    _bench(ws, "r1", {"inference": [{"deployment": "chat", "tokens_per_second": -1},
                                    {"deployment": "chat", "tokens_per_second": 10, "gpus": "4"},
                                    {"tokens_per_second": 10}]})
    assert measured_throughput(ws) == {}
    assert measured_throughput(tmp_path / "nowhere") == {}


@pytest.mark.parametrize(("econ", "path"), [
    ({"currency": "usd"}, "economics.currency"),
    ({"utilisation": 1.5}, "economics.utilisation"),
    ({"capex_per_nodes": {}}, "economics.capex_per_nodes"),
    ({"amortisation_years": 0}, "economics.amortisation_years"),
])
def test_economics_schema(tmp_path, econ, path):
    doc = reference_doc()
    doc["economics"] = econ
    c = check_doc(doc, tmp_path)
    assert any(f.code.startswith("SCH") and f.path == path for f in c.findings), [(f.code, f.path) for f in c.findings]
    assert_finding(c, c.findings[0].code)


def test_cli_cost(tmp_path, capsys, monkeypatch):
    doc = reference_doc()
    doc["economics"] = ECON
    doc["inference"][0]["tokens_per_second"] = 1500.0
    path = write_doc(doc, tmp_path / "factory.yaml")
    monkeypatch.chdir(tmp_path)
    assert run(["cost", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    keys = {f["key"]: f for sec in ("power", "capex", "opex", "unit_cost") for f in out[sec]}
    assert keys["energy_mwh_per_year"]["unit"] == "MWh/yr"
    assert out["inference"][0]["source"] == "stated"
    assert run(["cost", str(path)]) == 0
    text = capsys.readouterr().out
    assert "Owned cost per GPU-hour" in text and "Break-even" in text and "chat" in text
    assert run(["cost", str(path), "--format", "csv"]) == 64


def test_cli_cost_reads_the_workspace_beside_the_file_from_any_folder(tmp_path, capsys, monkeypatch):
    doc = reference_doc()
    doc["economics"] = ECON
    doc["inference"][0]["tokens_per_second"] = 1500.0
    site = tmp_path / "site"
    site.mkdir()
    path = write_doc(doc, site / "factory.yaml")
    ws = site / ".factory" / doc["metadata"]["name"]
    measured = _bench(ws, "20260501T100000Z", {"inference": [{"deployment": "chat", "tokens_per_second": 2000.0}]})
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert run(["cost", str(path), "--format", "json"]) == 0
    (d,) = json.loads(capsys.readouterr().out)["inference"]
    assert d["source"] == "measured" and str(measured) in json.dumps(d)
    assert not (tmp_path / "elsewhere" / ".factory").exists()
    assert not (ws / "owner.json").exists(), "a workspace cost only reads gets no owner record"
    # --workspace still wins: an empty one has no measurement
    assert run(["cost", str(path), "--format", "json", "--workspace", str(tmp_path / "none")]) == 0
    assert json.loads(capsys.readouterr().out)["inference"][0]["source"] == "stated"


def test_cli_cost_refuses_a_workspace_another_file_owns(tmp_path, capsys):
    doc = reference_doc()
    path = write_doc(doc, tmp_path / "factory.yaml")
    ws = tmp_path / ".factory" / doc["metadata"]["name"]
    ws.mkdir(parents=True)
    (ws / "owner.json").write_text(json.dumps({"factory": "other.yaml"}) + "\n")
    assert run(["cost", str(path)]) == 1
    assert "belongs to other.yaml" in capsys.readouterr().err


# --- honest headlines (issue 17): a figure that leaves a cost out says so ----------------------

GB300 = Path(__file__).resolve().parents[3] / "blueprints" / "gb300-nvl72-neocloud" / "factory.yaml"
ALL_STATED = {**ECON, "capex_per_node": {"gpu": 200_000, "default": 12_000}, "capex_per_switch": {"default": 30_000}, "capex_other": 0,
              "support_opex_per_year": 40_000, "staff_opex_per_year": 0}


def test_gb300_cost_json_marks_the_gpu_hour_figure_power_only(capsys):
    assert run(["cost", str(GB300), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    owned = next(f for f in d["unit_cost"] if f["key"] == "gpu_hour_cost")
    assert owned["value"] > 0 and owned["basis"] == "power only" and owned["complete"] is False
    assert any(x.startswith("node capex: no price stated for") for x in owned["left_out"])
    assert {"support: not stated", "staff: not stated"} <= set(owned["left_out"])
    be = next(f for f in d["unit_cost"] if f["key"] == "break_even_utilisation")
    assert be["complete"] is False  # built on the same incomplete annual cost
    energy = next(f for f in d["power"] if f["key"] == "energy_mwh_per_year")
    assert energy["basis"] == "nodes only" and "switch power" in energy["left_out"][0]


def test_gb300_cost_text_says_power_only(capsys):
    assert run(["cost", str(GB300)]) == 0
    out = capsys.readouterr().out
    assert "(power only)" in out
    assert "owned cost per GPU-hour: power only: no node prices stated" in out


def test_gb300_report_card_says_power_only(tmp_path):
    from factoryctl.report.html import render
    from factoryctl.session import check

    text = render(check(GB300), tmp_path)
    card = re.search(r'<div class="kpi"><b>([^<]*)</b><span>USD per GPU-hour \(owned[^<]*</span>(.*?)</div>', text)
    assert card, "no GPU-hour card"
    assert card.group(1).startswith("&ge; ")
    assert "power only: no node prices stated" in card.group(2)


def test_stated_prices_get_the_full_label(tmp_path):
    from factoryctl.report.html import render

    site = _one_node(tmp_path, econ=ALL_STATED)
    owned = cost(site, bom(site)).get("gpu_hour_cost")
    assert owned.complete and owned.basis == "complete" and owned.caveat() == ""
    assert owned.to_dict()["complete"] is True and owned.to_dict()["left_out"] == []
    text = render(check_doc({**reference_doc(), "economics": ALL_STATED}, tmp_path), tmp_path / "ws")
    card = re.search(r'<div class="kpi"><b>([^<]*)</b><span>USD per GPU-hour \(owned, all costs stated\)</span></div>', text)
    assert card and not card.group(1).startswith("&ge;"), "a fully priced site gets the plain label"


def test_sourced_node_default_without_switch_prices_is_a_lower_bound(tmp_path):
    site = _one_node(tmp_path, econ=None)
    owned = cost(site, bom(site)).get("gpu_hour_cost")
    assert owned.basis == "lower bound" and not owned.complete
    assert not any(x.startswith("node capex") for x in owned.left_out)  # the sourced H100 default prices it
    assert "switch capex" in owned.caveat()


def test_nothing_priced_gives_no_owned_cost(tmp_path):
    site = _one_node(tmp_path, econ={"currency": "EUR"})
    owned = cost(site, bom(site)).get("gpu_hour_cost")
    assert owned.value is None and owned.basis == "nothing priced"  # 0 would read as free
