"""Plots for the report, drawn by matplotlib (Agg backend) straight to SVG text.

Fonts are drawn as paths (svg.fonttype = path) so the SVG needs nothing at view time, and
the id salt and metadata are fixed so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import re
from typing import Any

from .cost import Cost

GIB = 1 << 30


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.fonttype": "path", "svg.hashsalt": "factoryctl", "font.size": 9,
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    })
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "factoryctl"})
    _plt().close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG goes inline
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF block, no use inline


def gpu_hour_plot(co: Cost) -> str | None:
    """Owned cost per GPU-hour split into capex, power, support/staff, beside the cloud price."""
    try:
        parts = [("capex", co.get("gpu_hour_capex").value), ("power", co.get("gpu_hour_power").value),
                 ("support + staff", co.get("gpu_hour_opex").value)]
    except KeyError:
        return None
    if all(v is None for _, v in parts):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 1.9))
    left = 0.0
    total = co.get("gpu_hour_cost")
    owned = "owned" if total.complete else f"owned ({total.basis})"  # a lower bound says so here too
    colors = ("#4c72b0", "#dd8452", "#55a868")
    for (name, v), c in zip(parts, colors, strict=True):
        v = v or 0.0
        ax.barh([owned], [v], left=left, color=c, label=f"{name} {v:.3g}")
        left += v
    cloud = next((f.value for f in co.unit_cost if f.key == "cloud_price_per_gpu_hour"), None)
    if cloud:
        ax.barh(["cloud"], [cloud], color="#8172b3", label=f"cloud {cloud:.3g}")
    ax.set_xlabel(f"{co.currency} per GPU-hour")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.grid(axis="y", visible=False)
    return _svg(fig)


def _busbw(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        halves = [r.get("out_of_place"), r.get("in_place"), r]  # nccl-tests halves, or a flat sweep row
        vals = [h.get("busbw_gbps") for h in halves if isinstance(h, dict) and isinstance(h.get("busbw_gbps"), int | float)]
        size = r.get("size_bytes")
        if vals and isinstance(size, int) and size > 0:
            xs.append(size)
            ys.append(max(vals))
    return xs, ys


def busbw_plot(results: list[dict[str, Any]]) -> str | None:
    """Bus bandwidth against message size, one line per nccl-tests result (log-2 x axis)."""
    series = []
    for res in results:
        xs, ys = _busbw(res.get("rows", []))
        if xs:
            label = res.get("collective") or res.get("name") or "all_reduce"
            if res.get("ranks"):
                label += f", {res['ranks']} ranks"
            series.append((label, xs, ys, res.get("expected_busbw_gbps")))
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, xs, ys, expected in series:
        line, = ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if isinstance(expected, int | float):
            ax.axhline(expected, color=line.get_color(), linestyle="--", linewidth=1, label=f"expected {expected:g}")
    ax.set_xscale("log", base=2)
    ticks = [t for t in (1 << 10, 1 << 20, 1 << 24, 1 << 27, 1 << 30, 1 << 33, 1 << 34) if min(min(s[1]) for s in series) <= t <= max(max(s[1]) for s in series)]
    if ticks:
        ax.set_xticks(ticks, [_size(t) for t in ticks])
    ax.set_xlabel("message size")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def _size(n: int) -> str:
    for unit, scale in (("G", GIB), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            return f"{n // scale}{unit}"
    return str(n)


def usage_plot(doc: dict) -> str | None:
    """GPU-hours per tenant in a usage record (factoryctl.usage/v1), the idle capacity last."""
    rows = [r for r in doc.get("tenants") or [] if isinstance(r, dict) and isinstance(r.get("gpu_hours"), int | float)]
    if not rows or not any(r["gpu_hours"] for r in rows):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 0.9))
    names = [str(r.get("name", "?")) for r in rows][::-1]
    hours = [float(r["gpu_hours"]) for r in rows][::-1]
    colors = ["#bbbbbb" if n == "idle" else "#4c72b0" for n in names]
    ax.barh(names, hours, color=colors)
    for y, (h, r) in enumerate(zip(hours, rows[::-1], strict=True)):
        cost = r.get("cost")
        label = f"{h:,.1f} GPU-h" + (f", {cost:,.2f} {doc.get('currency', '')}" if isinstance(cost, int | float) else "")
        ax.text(h, y, " " + label, va="center", fontsize=8)
    ax.set_xlabel("GPU-hours in the window")
    ax.grid(axis="y", visible=False)
    return _svg(fig)
