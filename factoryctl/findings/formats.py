"""Findings -> text (with a source snippet and caret), JSON or SARIF 2.1.0."""

from __future__ import annotations

import json

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
    from . import sarif as sarif_log

    driver_rules = []
    for code in sorted({f.code for f in findings}):
        r = rules.get(code)
        driver_rules.append(sarif_log.Rule(
            code, r.check.__name__ if r else code, r.title if r else schema_title(code),
            SARIF_LEVEL[r.severity.value] if r else "error",
            full=(r.doc if r else schema_title(code)) or code, help_uri=f"docs/rules.md#{code.lower()}"))
    results = [sarif_log.Result(f.code, SARIF_LEVEL[f.severity.value],
                                f.message + (f" (hint: {f.hint})" if f.hint else ""),
                                f.file or "factory.yaml", f.path, f.line or None, f.column or 1, "member")
               for f in findings]
    return sarif_log.to_json("factoryctl", driver_rules, results)


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


def schema_title(code: str) -> str:
    return SCHEMA_TITLES.get(code, code)
