"""How a verify run is shown: console tables, JSON and JUnit XML. Each one prints the same
VerifyResult (results.py, which also writes the run folder) and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ..findings import junit
from ..ui import UI
from .results import VerifyResult

STATUS_STYLE = {"passed": "green", "failed": "red", "error": "red", "skipped": "dim"}
VERDICT_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
ALL_ROWS = 200  # up to this many checks every one is listed; above, only those not passed


def to_json(run: VerifyResult) -> str:
    return json.dumps(run.to_dict(), indent=2, sort_keys=True) + "\n"


def show_text(run: VerifyResult, ui: UI) -> None:
    """Host checks per host, then the benchmark judgements, then one summary line (ui.show)."""
    shown = run.checks if len(run.checks) <= ALL_ROWS else [c for c in run.checks if c.status != "passed"]
    if shown:
        t = Table(title=f"host checks: {run.site} (run {run.run_id}, {run.connection})", show_edge=False,
                  pad_edge=False, title_justify="left")
        for col in ("host", "check", "status", "detail"):
            t.add_column(col, overflow="fold")
        for c in shown:
            st = STATUS_STYLE.get(c.status, "")
            where = f" (on {c.on})" if c.on and c.on != c.host else ""
            t.add_row(c.host, c.check + where, f"[{st}]{c.status}[/{st}]", escape(c.detail))
        ui.show(t)
    if len(shown) < len(run.checks):
        ui.show(f"({len(run.checks) - len(shown)} passed checks not listed)")
    b = run.bench
    if b is not None:
        head = f"benchmark: {b.path}" + (f" through {b.scheduler}" if b.scheduler else "")
        if b.hosts:
            head += f" on {', '.join(b.hosts)}"
        ui.show(f"\n[bold]{escape(head)}[/bold] ({b.duration_s:.1f} s)")
        if b.skipped:
            ui.show(f"  skipped: {escape(b.skipped)}")
        for e in b.errors:
            ui.show(f"  [red]error:[/red] {escape(e)}")
        for doc in b.nccl:
            rows = doc.get("rows") or []
            if rows:
                big = max(rows, key=lambda r: r.get("size_bytes", 0))
                bw = big.get("busbw_gbps")
                if bw is None:  # nccl-tests rows keep busbw per half
                    halves = [big.get(k) or {} for k in ("out_of_place", "in_place")]
                    bw = max((h.get("busbw_gbps") or 0 for h in halves), default=0)
                ui.show(f"  {escape(str(doc.get('name') or doc.get('collective') or 'all_reduce'))}: "
                          f"{len(rows)} sizes, busbw {bw:.4g} GB/s at {big.get('size_bytes')} B")
        if b.measurements:
            t = Table(show_edge=False, pad_edge=False)
            for col in ("figure", "measured", "expected", "verdict", "reason"):
                t.add_column(col, overflow="fold", justify="right" if col in ("measured", "expected") else "left")
            for m in b.measurements:
                v = VERDICT_STYLE.get(m["verdict"], "")
                val = "-" if m.get("value") is None else f"{m['value']:.4g} {m.get('unit', '')}"
                exp = "-" if m.get("expected") is None else f"{m['expected']:g}"
                t.add_row(m["name"], val, exp, f"[{v}]{m['verdict']}[/{v}]", escape(m.get("reason", "")))
            ui.show(t)
    for a in run.quarantine or []:
        style = {"drained": "yellow", "resumed": "green", "failed": "red", "refused": "red"}.get(a["action"], "dim")
        ui.show(f"quarantine: {a['scheduler']} {escape(a['node'])} [{style}]{a['action']}[/{style}]"
                + (f" ({escape(a['reason'])})" if a["reason"] else "") + (f": {escape(a['detail'])}" if a["detail"] else ""))
    for p in run.problems:
        ui.show(f"[red]problem:[/red] {escape(p)}")
    n = run.counts()
    verdict = "[red]FAILED[/red]" if run.failed else "[green]PASSED[/green]"
    bench = f"; benchmark: {run.bench.verdict}" if run.bench is not None else ""
    ui.show(f"\n{verdict}: {n['passed']} passed, {n['failed']} failed, {n['error']} errors, "
              f"{n['skipped']} skipped{bench} ({run.duration_s:.1f} s)")


def junit_report(run: VerifyResult) -> junit.Report:
    """JUnit: one suite of host checks (class = host), one of benchmark figures."""
    outcome = {"failed": "failure", "error": "error", "skipped": "skipped"}
    kind = {"failed": "check", "error": "error"}
    checks = junit.Suite("host checks", timestamp=run.started, time=f"{sum(c.duration_s for c in run.checks):.3f}")
    for c in run.checks:
        o = outcome.get(c.status, "passed")
        checks.cases.append(junit.Case(c.host, c.check, o, c.detail, kind.get(c.status, ""),
                                       c.detail if o in ("failure", "error") else None,
                                       output=c.detail, time=f"{c.duration_s:.3f}"))
    suites = [checks]
    b = run.bench
    if b is not None:
        verdict = {"fail": ("failure", "threshold"), "error": ("error", "error"), "skip": ("skipped", "")}
        cases = [(m["name"], m["verdict"], m.get("reason", "")) for m in b.measurements]
        cases += [("stage", "error", e) for e in b.errors]
        if b.skipped:
            cases.append(("stage", "skip", b.skipped))
        bench = junit.Suite(f"benchmark {b.path}", timestamp=run.started, time=f"{b.duration_s:.3f}")
        for name, v, reason in cases:
            o, t = verdict.get(v, ("passed", ""))
            bench.cases.append(junit.Case("benchmark", name, o, reason, t, reason if o != "skipped" else None,
                                          output=f"{v}: {reason}", time="0"))
        suites.append(bench)
    return junit.Report(f"factoryctl verify {run.site}", suites, time=f"{run.duration_s:.3f}")


def junit_xml(run: VerifyResult) -> str:
    return junit.to_xml(junit_report(run))


def write_junit(run: VerifyResult, path: Path) -> Path:
    return junit.write(junit_report(run), path)
