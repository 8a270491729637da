"""Generate docs/rules.md from the rule registry (CI checks it is current).

Regenerate with: python -m factoryctl.docsgen > docs/rules.md
"""

from __future__ import annotations

from .findings.formats import SCHEMA_TITLES
from .rules import REGISTRY
from .rules.base import AREAS


def rules_markdown() -> str:
    out = [
        "# Rules",
        "",
        "Generated from the rule registry by `python -m factoryctl.docsgen`; do not edit by hand.",
        "Every finding carries its code, severity, the YAML path and `file:line:col`, and a hint.",
        "Skip a rule with `factoryctl validate --skip-rule CODE`; fail on warnings with",
        "`--fail-level warning`. Codes are stable: a retired code is never reused.",
        "",
        "## Schema (SCH) and internal (INT)",
        "",
        "| code | severity | what |",
        "|---|---|---|",
    ]
    for code, title in sorted(SCHEMA_TITLES.items()):
        sev = "warning" if code == "INT001" else "error"
        out.append(f"| {code} | {sev} | {title} |")
    for prefix, area in AREAS.items():
        rules = [r for code, r in sorted(REGISTRY.items()) if code.startswith(prefix)]
        if not rules:
            continue
        out += ["", f"## {area.capitalize()} ({prefix})", ""]
        for r in rules:
            out.append(f"### {r.code}")
            out.append("")
            out.append(f"**{r.title}** ({r.severity.value})")
            if r.doc:
                out += ["", r.doc]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(rules_markdown())
