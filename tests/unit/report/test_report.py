"""`factoryctl report`: one self-contained HTML file, and what a browser shows of it.

The browser test renders the reports of the 4-node pilot and the 32-node blueprint in headless
Chromium and checks that the topology and rack pictures are drawn (not blank). Chromium comes
from `.ci/report-deps.sh` (apt, as root); the test skips only when it cannot be installed.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from factoryctl.cli import run
from factoryctl.report.html import REPORT_FILE, render, write_report
from factoryctl.report.racks import racks_svg
from factoryctl.report.topology import MAX_NODES, build, topology_svg
from factoryctl.session import check
from tests.helpers import ROOT, check_doc

PILOT = ROOT / "blueprints" / "enterprise-pilot-h100-4n" / "factory.yaml"
ENT32 = ROOT / "blueprints" / "enterprise-h100-32n" / "factory.yaml"
SPOD = ROOT / "blueprints" / "superpod-h100-1su" / "factory.yaml"
WIDTH = 1400

# --- the document ------------------------------------------------------------------------------


def test_report_is_self_contained(tmp_path):
    c = check(PILOT)
    path = write_report(c, tmp_path / "out", tmp_path / "ws")
    assert path == tmp_path / "out" / REPORT_FILE
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    for needle in ("<script", "<link", "@import", " src=", "<iframe"):
        assert needle not in text, needle
    assert not re.search(r"url\((?!#)", text)  # only references inside the document (SVG clip paths)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls  # namespaces only
    for section in ("summary", "topology", "racks", "bom", "cost", "tokens", "findings"):
        assert f'id="{section}"' in text
    assert 'id="verify"' not in text  # no run in the workspace
    assert text.count("<svg") >= 4  # compute + storage topology, racks, cost plot
    assert "QM9700" in text and "leaf switch" in text and "Owned cost per GPU-hour" in text
    assert not list(path.parent.glob(".report.html.*"))  # the temp file was renamed, not left


def test_report_is_deterministic(tmp_path):
    c = check(ENT32)
    assert render(c, tmp_path) == render(c, tmp_path)


def test_report_shows_last_verify_run(tmp_path):
    ws = tmp_path / "ws"
    run_dir = ws / "runs" / "20260501T120000Z"
    run_dir.mkdir(parents=True)
    rows = [{"size_bytes": 1 << k, "count": (1 << k) // 4, "out_of_place": {"busbw_gbps": min(450.0, 2.0 ** (k - 14))},
             "in_place": {"busbw_gbps": min(440.0, 2.0 ** (k - 14))}} for k in range(23, 34)]
    (run_dir / "bench.json").write_text(json.dumps({
        "nccl": [{"collective": "all_reduce", "ranks": 32, "rows": rows}],
        "inference": [{"deployment": "chat", "tokens_per_second": 1800.0, "gpus": 4}],
        "measurements": [{"name": "all_reduce busbw", "value": 450.0, "unit": "GB/s", "expected": 480.0,
                          "fraction": 0.94, "verdict": "pass", "reason": "94% of expected"}],
    }))
    (run_dir / "verify.json").write_text(json.dumps({"checks": [
        {"host": "gpu01", "check": "gpu-count", "status": "passed", "detail": "8 of 8"},
        {"host": "gpu02", "check": "gpu-count", "status": "failed", "detail": "7 of 8"},
    ]}))
    text = render(check(PILOT), ws)
    assert 'id="verify"' in text and "20260501T120000Z" in text
    assert 'id="busbw"' in text  # the matplotlib plot, inline SVG
    assert text.index("gpu02") < text.index("gpu01", text.index("Host checks"))  # failures first
    assert "1,800" in text and "measured" in text  # the measured tokens/s reached the cost table
    assert "all_reduce busbw" in text


def test_cli_report(tmp_path, capsys, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PILOT, site / "factory.yaml")
    monkeypatch.chdir(tmp_path)
    assert run(["report", str(site / "factory.yaml")]) == 0
    out = capsys.readouterr().out
    default = site / ".factory" / "fra1-pilot" / "report" / REPORT_FILE  # the workspace beside the file
    assert default.is_file() and str(default.relative_to(tmp_path)) in out
    assert not (tmp_path / ".factory").exists()
    assert run(["report", str(PILOT), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / REPORT_FILE).is_file()
    assert not (PILOT.parent / ".factory").exists(), "reading a workspace creates none"
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Factory\n")
    assert run(["report", str(bad)]) == 1
    assert "factory.yaml has errors: no report written" in capsys.readouterr().err


def test_cli_report_from_another_folder_shows_the_sites_last_run(tmp_path, capsys, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PILOT, site / "factory.yaml")
    run_dir = site / ".factory" / "fra1-pilot" / "runs" / "20260501T120000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "bench.json").write_text(json.dumps({"inference": [
        {"deployment": "chat", "tokens_per_second": 1800.0, "gpus": 4}]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run(["report", str(site / "factory.yaml"), "--out", "out"]) == 0
    text = (elsewhere / "out" / REPORT_FILE).read_text()
    assert 'id="verify"' in text and "20260501T120000Z" in text
    assert not (elsewhere / ".factory").exists()


# --- the pictures as SVG -----------------------------------------------------------------------


def _fork(tmp_path: Path, gpu_nodes: int) -> Path:
    """The 32-node blueprint grown to `gpu_nodes` nodes, 4 per rack."""
    doc = yaml.safe_load(ENT32.read_text())
    racks = [r for r in doc["facility"]["racks"] if r["name"] == "r00"]
    racks += [{"name": f"r{i:03d}", "power_kw": 50, "cooling": "rear-door"} for i in range(1, gpu_nodes // 4 + 1)]
    doc["facility"]["racks"] = racks
    doc["site"]["power_capacity_kw"] = gpu_nodes * 15
    doc["kubernetes"]["pod_cidr"] = "10.128.0.0/12"
    doc["fabric"]["management"]["cidr"] = "10.40.0.0/20"
    doc["fabric"]["oob"]["cidr"] = "10.41.0.0/20"
    gpu = next(g for g in doc["nodes"] if g["group"] == "gpu")
    gpu.update(count=gpu_nodes, rack=[r["name"] for r in racks[1:]], hostname="gpu{index:04d}")
    c = check_doc(doc, tmp_path)
    assert c.site is not None
    return tmp_path / "factory.yaml"


def test_topology_small_draws_every_port():
    site = check(PILOT).site
    pic = build(site)
    leaves, nodes = pic.rows[-2], pic.rows[-1]
    assert [b.label for b in nodes] == ["gpu01", "gpu02", "gpu03", "gpu04"]
    assert len(leaves) == 8 and all(len(b.ports) == 8 for b in nodes)
    rail_edges = [e for e in pic.edges if e.b.startswith("n:")]
    assert len(rail_edges) == 32  # 4 nodes x 8 rails, each to its rail's leaf
    assert {e.a for e in rail_edges if e.b_slot == 2} == {"leaf0.2"}
    svg = topology_svg(site)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "rail 8" in svg


def test_topology_aggregates_large_sites(tmp_path):
    site = check(_fork(tmp_path, 256)).site
    pic = build(site)
    nodes = pic.rows[-1]
    assert len(nodes) <= 16 and all("nodes" in b.label for b in nodes)  # SU blocks, not 256 boxes
    assert sum(int(b.label.split()[0]) for b in nodes) == 256
    assert any("mesh" in label for _, label in pic.bands)  # 2,048 leaf-spine cables as one band
    assert 256 > MAX_NODES


def test_racks_merge_when_many(tmp_path):
    site = check(_fork(tmp_path, 256)).site
    svg = racks_svg(site)
    assert "\u00d764 identical racks" in svg and "identical racks merged" in svg
    small = racks_svg(check(SPOD).site)
    assert "identical racks" not in small and small.count(">dgx0") == 31


# --- what a browser shows ------------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    script = ROOT / ".ci" / "report-deps.sh"
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"chromium is not installed and .ci/report-deps.sh could not install it: {done.stderr.strip()}")
    return found


def _browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--force-color-profile=srgb", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


PROBE = """<script>
(function () {
  var out = {height: document.documentElement.scrollHeight};
  ["topology-compute", "racks-figure"].forEach(function (id) {
    var r = document.getElementById(id).getBoundingClientRect();
    out[id] = [r.left, r.top + window.scrollY, r.width, r.height];
  });
  document.body.setAttribute("data-geometry", JSON.stringify(out));
})();
</script>"""


def _geometry(binary: str, report: Path, tmp: Path) -> dict:
    """Where the pictures sit on the page, measured by Chromium on a copy with a probe script."""
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    done = _browser(binary, tmp / "profile-probe", f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri())
    m = re.search(r'data-geometry="([^"]+)"', done.stdout)
    assert m, f"chromium printed no geometry: {done.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def _crop(img, box):
    import numpy as np

    left, top, w, h = (int(round(v)) for v in box)
    return np.asarray(img.convert("RGB").crop((left, top, left + w, top + h))).reshape(-1, 3).astype(int)


def _drawn(img, box) -> tuple[float, int]:
    """(share of non-white pixels, number of distinct colours) inside box = left, top, width, height."""
    px = _crop(img, box)
    ink = (px.min(axis=1) < 235).mean()
    return float(ink), len({tuple(p) for p in px[::7]})


def _has_colour(img, box, rgb: tuple[int, int, int], tol: int = 10) -> bool:
    px = _crop(img, box)
    return bool((abs(px - rgb).max(axis=1) <= tol).any())


@pytest.mark.slow
@pytest.mark.parametrize(("blueprint", "nodes"), [(PILOT, 4), (ENT32, 32)])
def test_browser_shows_topology_and_racks(tmp_path, blueprint, nodes):
    from PIL import Image

    binary = _chromium()
    report = write_report(check(blueprint), tmp_path / "report", tmp_path / "ws")
    geo = _geometry(binary, report, tmp_path)
    height = int(geo["height"]) + 20
    shot = tmp_path / "page.png"
    done = _browser(binary, tmp_path / "profile-shot", f"--window-size={WIDTH},{height}",
                    f"--screenshot={shot}", report.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    img = Image.open(shot)
    assert img.size == (WIDTH, height)
    for key in ("topology-compute", "racks-figure"):
        box = geo[key]
        assert box[2] > 600 and box[3] > 200, f"{key} is laid out too small: {box}"
        ink, colours = _drawn(img, box)
        assert ink > 0.02 and colours > 20, f"{key} looks blank: {ink:.1%} ink, {colours} colours"
    # the rails in their colours, and the rack power bars (amber for 40.8 of 50 kW in the 32-node site)
    assert _has_colour(img, geo["topology-compute"], (0x1F, 0x77, 0xB4))  # rail 1
    assert _has_colour(img, geo["topology-compute"], (0x17, 0xBE, 0xCF))  # rail 8
    bar = (0x2E, 0x9D, 0x48) if nodes == 4 else (0xE0, 0xA1, 0x00)
    assert _has_colour(img, geo["racks-figure"], bar)
