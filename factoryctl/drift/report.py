"""A drift report for people (text through the UI), programs (JSON) and CI (JUnit XML, SARIF 2.1.0).

JUnit: one suite per kind of drift, one test case per file, stack and host; drift is a
<failure>, could-not-check an <error>, so a CI test view tells them apart as exit 2 and 1 do.
SARIF: one result per drifted thing, located at factory.yaml (the node group a host comes
from), so code hosts can show it beside the file that owns the host.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape
from rich.text import Text

from ..files import atomic_write
from ..findings import junit, sarif
from ..ui import UI

RULES = {
    "DRIFT001": ("artifact-drift", "factory.yaml or templates changed since the last apply", "warning"),
    "DRIFT002": ("infrastructure-drift", "Terraform's state or the infrastructure moved", "error"),
    "DRIFT003": ("configuration-drift", "a host differs from what the playbook applied", "error"),
    "DRIFT004": ("runtime-drift", "a verify host check fails on a host", "error"),
    "DRIFT900": ("not-checked", "drift could not be checked", "error"),
}


def to_json(rep) -> str:
    return json.dumps(rep.to_dict(), indent=2, sort_keys=True) + "\n"


# --- console ----------------------------------------------------------------------------------

def _indent(text: str, n: int = 6) -> str:
    return "".join(" " * n + line + "\n" for line in text.rstrip("\n").splitlines())


def show_text(rep, ui: UI) -> None:
    """The report for people, through ui.show (markup in strings; diffs as plain Text)."""
    def p(line: str) -> None:
        ui.show(line)

    def raw(text: str) -> None:
        ui.show(Text(text))
    word = {"in-sync": "[green]in sync[/]", "drift": "[yellow]DRIFT[/]", "error": "[red]COULD NOT CHECK[/]"}
    p(f"[bold]Drift of {escape(rep.factory)}[/] against the apply of {rep.applied or '-'} "
      f"(mode {rep.mode}; run {rep.run or '-'})")
    a = rep.artifacts
    p(f"  artifacts:      {'in sync' if not a.drifted else f'{len(a.files)} file(s) differ from the last apply'}")
    for f in a.files:
        p(f"    {f.change:8} {escape(f.path)}")
        if f.diff:
            raw(_indent(f.diff).rstrip("\n"))
    i = rep.infra
    if i.errors:
        p(f"  infrastructure: [red]could not plan[/] {len(i.errors)} stack(s)")
    elif not i.drifted:
        p(f"  infrastructure: in sync ({len(i.stacks)} unit stack(s), terraform plan)")
    else:
        p("  infrastructure: [yellow]drift[/]")
    for s in i.stacks:
        for d in s.drift:
            p(f"    {s.unit}: {escape(d['address'])} changed outside Terraform ({d['action']})")
        for ch in s.changes:
            p(f"    {s.unit}: apply would {ch['action']} {escape(ch['address'])}"
              + (f" ({escape(ch['reason'])})" if ch.get("reason") else ""))
        if s.error:
            p(f"    {s.unit}: [red]{escape(s.error)}[/]")
    hosts = rep.hosts
    n_drift = len(rep.drifted_hosts)
    n_err = len(rep.host_errors)
    p(f"  hosts:          {len(hosts) - n_drift - n_err} in sync, {n_drift} drifted, {n_err} not checked"
      + (f" (probe {rep.seconds.get('probe', 0):.1f} s" if "probe" in rep.seconds else "")
      + (f", playbook check {rep.seconds['ansible_check']:.1f} s" if "ansible_check" in rep.seconds else "")
      + (")" if "probe" in rep.seconds else ""))
    for name, h in sorted(hosts.items()):
        if h.status == "in-sync" and not h.note:
            continue
        p(f"    {escape(name)}: {word[h.status]}" + (f" ({escape(h.error)})" if h.error else ""))
        for c in h.changes:
            p(f"      {escape(c.what)}  [dim]task: {escape(c.task)}[/]")
            if c.diff:
                raw(_indent(c.diff, 8).rstrip("\n"))
        for r in h.runtime:
            p(f"      runtime: {escape(r['check'])}: {escape(r['detail'][:200])}")
        if h.note:
            p(f"      [dim]{escape(h.note)}[/]")
    for e in rep.errors:
        p(f"  [red]error[/]: {escape(e)}")
    p(f"Result: {word[rep.status]} (exit {rep.exit_code}) in {rep.seconds.get('total', 0):.1f} s")
    for f in rep.fixes():
        p(f"  fix: {escape(f)}")


# --- JUnit -----------------------------------------------------------------------------------

def _suite(name: str, cases: list[tuple[str, str, str, str]]) -> junit.Suite:
    """cases: (name, outcome: ok | failure | error, message, detail)."""
    return junit.Suite(name, [junit.Case(f"drift.{name}", case, "passed" if outcome == "ok" else outcome,
                                         message[:500], f"drift.{outcome}", detail)
                              for case, outcome, message, detail in cases])


def junit_report(rep) -> junit.Report:
    art = [(f.path, "failure", f"{f.path} {f.change} since the last apply", f.diff) for f in rep.artifacts.files]
    suites = [_suite("artifacts", art or [("rendered tree matches the last apply", "ok", "", "")])]
    infra = []
    for s in rep.infra.stacks:
        if s.error:
            infra.append((s.unit, "error", s.error, s.error))
        elif s.drift or s.changes:
            lines = [f"{d['address']} changed outside Terraform" for d in s.drift] + \
                    [f"apply would {c['action']} {c['address']}" for c in s.changes]
            infra.append((s.unit, "failure", lines[0], "\n".join(lines)))
        else:
            infra.append((s.unit, "ok", "", ""))
    suites.append(_suite("infrastructure", infra))
    hosts = []
    for name, h in sorted(rep.hosts.items()):
        if h.error:
            hosts.append((name, "error", h.error, h.error))
        elif h.status == "drift":
            detail = "".join(f"{c.what} (task: {c.task})\n{c.diff}" for c in h.changes)
            detail += "".join(f"runtime: {r['check']}: {r['detail']}\n" for r in h.runtime)
            first = h.changes[0].what if h.changes else f"runtime: {h.runtime[0]['check']}"
            hosts.append((name, "failure", first, detail))
        else:
            hosts.append((name, "ok", "", ""))
    suites.append(_suite("hosts", hosts + [(f"error {i}", "error", e, e) for i, e in enumerate(rep.errors, 1)]))
    return junit.Report(f"factoryctl drift {rep.factory}", suites)


def write_junit(rep, path: Path) -> Path:
    return junit.write(junit_report(rep), path)


# --- SARIF -----------------------------------------------------------------------------------

def sarif_json(rep, where: Callable[[str], tuple[int, int] | None] | None = None) -> str:
    """where(host) -> (line, column) in factory.yaml of the node group the host comes from."""
    results: list[sarif.Result] = []

    def add(rule: str, text: str, uri: str, logical: str, pos: tuple[int, int] | None = None) -> None:
        results.append(sarif.Result(rule, RULES[rule][2], text, uri, logical, *(pos or (None, None))))

    factory = rep.file
    for f in rep.artifacts.files:
        add("DRIFT001", f"rendered {f.path} {f.change} since the last apply; plan and apply, or revert",
            factory, f"build/{f.path}", (1, 1))
    for s in rep.infra.stacks:
        for d in s.drift:
            add("DRIFT002", f"{d['address']} changed outside Terraform", factory, f"terraform/{s.unit}/{d['address']}")
        for c in s.changes:
            add("DRIFT002", f"apply would {c['action']} {c['address']}", factory, f"terraform/{s.unit}/{c['address']}")
        if s.error:
            add("DRIFT900", f"terraform plan failed for {s.unit}: {s.error[:500]}", factory, f"terraform/{s.unit}")
    for name, h in sorted(rep.hosts.items()):
        pos = where(name) if where else None
        for c in h.changes:
            add("DRIFT003", f"{name}: {c.what} (task: {c.task})", factory, f"hosts/{name}", pos)
        for r in h.runtime:
            add("DRIFT004", f"{name}: verify check {r['check']} fails: {r['detail'][:300]}", factory,
                f"hosts/{name}", pos)
        if h.error:
            add("DRIFT900", f"{name}: not checked: {h.error}", factory, f"hosts/{name}", pos)
    for e in rep.errors:
        add("DRIFT900", e, factory, "drift")
    rules = [sarif.Rule(code, RULES[code][0], RULES[code][1], RULES[code][2])
             for code in sorted({r.rule for r in results})]
    return sarif.to_json("factoryctl-drift", rules, results)


def write_sarif(rep, path: Path, where: Callable[[str], tuple[int, int] | None] | None = None) -> Path:
    return atomic_write(path, sarif_json(rep, where))
