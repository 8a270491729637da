"""SARIF 2.1.0, the one writer for every command that annotates factory.yaml on a code host
(validate's findings, drift's drifted things). Rules are listed in the order given; each
result names its rule by id and index."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import __version__

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


@dataclass
class Rule:
    id: str
    name: str
    short: str
    level: str  # error | warning | note
    full: str | None = None
    help_uri: str | None = None

    def to_dict(self) -> dict:
        d = {"id": self.id, "name": self.name, "shortDescription": {"text": self.short},
             "defaultConfiguration": {"level": self.level}}
        if self.full is not None:
            d["fullDescription"] = {"text": self.full}
        if self.help_uri is not None:
            d["helpUri"] = self.help_uri
        return d


@dataclass
class Result:
    rule: str
    level: str
    text: str
    uri: str  # the file the result is shown beside
    logical: str  # what in it: a YAML path, a host, a stack address
    line: int | None = None
    column: int | None = None
    logical_kind: str | None = None

    def to_dict(self, index: int) -> dict:
        loc: dict = {"physicalLocation": {"artifactLocation": {"uri": self.uri}}}
        if self.line:
            loc["physicalLocation"]["region"] = {"startLine": self.line, "startColumn": self.column or 1}
        logical = {"fullyQualifiedName": self.logical}
        if self.logical_kind:
            logical["kind"] = self.logical_kind
        loc["logicalLocations"] = [logical]
        return {"ruleId": self.rule, "ruleIndex": index, "level": self.level, "message": {"text": self.text},
                "locations": [loc]}


def to_json(tool: str, rules: list[Rule], results: list[Result]) -> str:
    index = {r.id: i for i, r in enumerate(rules)}
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": tool, "version": __version__, "rules": [r.to_dict() for r in rules]}},
            "results": [r.to_dict(index[r.rule]) for r in results],
        }],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
