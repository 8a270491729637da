"""The change impact `plan` reports, from the declared table in factoryctl/data/impact.yaml:
per Ansible role, and per YAML key prefix where one key outranks its role."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

TABLE = Path(__file__).resolve().parent.parent / "data" / "impact.yaml"
# Impact classes, least to most disruptive: what applying a change does to a running factory.
IMPACTS = ("none", "add", "reload", "restart", "drain", "destroy")
DECLARED = ("none", "reload", "restart", "drain")  # what the table may say


@dataclass(frozen=True)
class Rule:
    impact: str
    reason: str


@dataclass(frozen=True)
class ImpactTable:
    roles: dict[str, Rule]
    keys: dict[str, Rule]
    default: Rule

    def role_impact(self, role: str) -> str:
        rule = self.roles.get(role)
        return rule.impact if rule else self.default.impact

    def key_role(self, key: str) -> str | None:
        """The role a group_vars key belongs to: the longest role name `<role>_` prefixes it with."""
        top = key.split(".")[0]
        return max((r for r in self.roles if top.startswith(r + "_")), key=len, default=None)

    def key_rule(self, key: str) -> Rule:
        """The declared entry for a changed YAML key: the longest key prefix, else its role,
        else the default. Inventory keys (`all.hosts.<host>.<var>`) count by their variable."""
        matches = [p for p in self.keys if key == p or key.startswith(p + ".")]
        if matches:
            return self.keys[max(matches, key=len)]
        role = self.key_role(key.split(".")[-1] if key.startswith(("all.", "vars.")) else key)
        return self.roles[role] if role else self.default


def _rules(section: dict, where: str) -> dict[str, Rule]:
    out = {}
    for name, entry in (section or {}).items():
        if entry.get("impact") not in DECLARED or not entry.get("reason"):
            raise ValueError(f"{TABLE}: {where}.{name} needs impact (one of {', '.join(DECLARED)}) and a reason")
        out[str(name)] = Rule(entry["impact"], entry["reason"])
    return out


@cache
def table() -> ImpactTable:
    doc = yaml.safe_load(TABLE.read_text())
    return ImpactTable(_rules(doc["roles"], "roles"), _rules(doc["keys"], "keys"),
                       _rules({"default": doc["default"]}, "")["default"])
