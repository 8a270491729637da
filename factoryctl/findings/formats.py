"""Findings -> text (with a source snippet and caret), JSON or SARIF 2.1.0."""

from __future__ import annotations

import json

from .. import __version__
from . import Finding, counts

SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def text(findings: list[Finding], source: str | None = None, fail_level: str = "error") -> str:
    lines_of = source.splitlines() if source else []
    out: list[str] = []
    for f in findings:
        where = f.file or "<input>"
        if f.line:
            where += f":{f.line}:{f.column or 1}"
        out.append(f"{where}: {f.severity.value}[{f.code}] {f.path}: {f.message}")
        if f.line and 0 < f.line <= len(lines_of):
            src = lines_of[f.line - 1]
            out.append(f"  {f.line:>4} | {src}")
            out.append(f"       | {' ' * ((f.column or 1) - 1)}^")
        if f.hint:
            out.append(f"  hint: {f.hint}")
    c = counts(findings)
    out.append(
        f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info (fail level: {fail_level})"
    )
    return "\n".join(out) + "\n"


def as_json(findings: list[Finding], fail_level: str, failed: bool) -> str:
    return json.dumps(
        {
            "findings": [f.to_dict() for f in findings],
            "summary": counts(findings) | {"fail_level": fail_level, "failed": failed},
        },
        indent=2,
        sort_keys=True,
    ) + "\n"


def sarif(findings: list[Finding], rules: dict) -> str:
    """SARIF 2.1.0 so code hosts can annotate factory.yaml in pull requests."""
    used = sorted({f.code for f in findings})
    driver_rules = []
    for code in used:
        r = rules.get(code)
        driver_rules.append({
            "id": code,
            "name": r.check.__name__ if r else code,
            "shortDescription": {"text": r.title if r else _schema_title(code)},
            "fullDescription": {"text": (r.doc if r else _schema_title(code)) or code},
            "defaultConfiguration": {"level": SARIF_LEVEL[r.severity.value] if r else "error"},
            "helpUri": f"docs/rules.md#{code.lower()}",
        })
    index = {code: i for i, code in enumerate(used)}
    results = []
    for f in findings:
        loc: dict = {"physicalLocation": {"artifactLocation": {"uri": f.file or "factory.yaml"}}}
        if f.line:
            loc["physicalLocation"]["region"] = {"startLine": f.line, "startColumn": f.column or 1}
        loc["logicalLocations"] = [{"fullyQualifiedName": f.path, "kind": "member"}]
        msg = f.message + (f" (hint: {f.hint})" if f.hint else "")
        results.append({
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": SARIF_LEVEL[f.severity.value],
            "message": {"text": msg},
            "locations": [loc],
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "factoryctl", "version": __version__, "rules": driver_rules}},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


SCHEMA_TITLES = {
    "SCH000": "File cannot be read",
    "SCH001": "YAML syntax error",
    "SCH002": "Unknown key",
    "SCH003": "Wrong type or value",
    "SCH004": "Missing required key",
    "SCH005": "Invalid name (not an RFC 1123 label)",
    "SCH006": "Duplicate key",
    "INT001": "A rule crashed (factoryctl bug)",
    "INT002": "Facts could not be derived (factoryctl bug)",
}


def _schema_title(code: str) -> str:
    return SCHEMA_TITLES.get(code, code)
