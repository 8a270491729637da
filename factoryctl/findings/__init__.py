"""One finding type for schema errors and rule findings, so every output writer is shared."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


class Severity(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    path: str  # YAML path as the user reads it: inference[0].tensor_parallel
    message: str
    hint: str = ""
    file: str = ""
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    rule: str = ""  # name of the rule function that raised it (empty for schema findings)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["severity"] = self.severity.value
        d.pop("extra")
        return d

    def sort_key(self) -> tuple:
        return (self.file, self.line or 0, self.column or 0, self.code, self.path, self.message)


def format_path(loc: tuple | list) -> str:
    """('nodes', 1, 'hardware') -> 'nodes[1].hardware'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<document>"


def reaches(findings: list[Finding], level: Severity) -> bool:
    return any(f.severity.rank >= level.rank for f in findings)


def counts(findings: list[Finding]) -> dict[str, int]:
    c = {s.value: 0 for s in Severity}
    for f in findings:
        c[f.severity.value] += 1
    return c
