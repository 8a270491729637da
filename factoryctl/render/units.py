"""Terraform units: the hosts of a site split into stacks that plan in parallel.

One stack with one resource per node plans superlinearly (and its apply rewrites the whole
state after every resource), so each provider's stack is rendered once per unit:
`terraform/<provider>/units/<unit>/`. A unit is a run of at most UNIT_HOSTS consecutive hosts
of one node group, named `<group>-<chunk>` (`gpu-000`, `gpu-001`, ...).

Membership is stable on purpose: a host's unit depends only on its group and its position
in that group, so growing or shrinking a group at its end never moves an existing host to
another stack (which Terraform would see as destroy here + create there).
"""

from __future__ import annotations

import json

from ..model import Factory

UNIT_HOSTS = 128  # four 32-node scalable units; plan time per node is flat up to ~256


def terraform_units(factory: Factory, hosts: list[dict], groups: dict[str, dict],
                    size: int = UNIT_HOSTS) -> list[dict]:
    """[{name, group, index, hosts: [host dicts], facts: {host: facts}}] in group order."""
    interface = {g.group: g.network.management.interface for g in factory.nodes}
    members: dict[str, list[dict]] = {}
    for h in hosts:  # declaration order: group order, then index
        members.setdefault(h["group"], []).append(h)
    units: list[dict] = []
    for group, items in members.items():
        chunks = range(0, len(items), size)
        width = max(3, len(str(len(chunks) - 1)))
        gpu_model = groups[group]["gpu_model"] if group in groups else None
        for k, start in enumerate(chunks):
            chunk = items[start:start + size]
            facts = {h["name"]: _facts(h, gpu_model, interface.get(group)) for h in chunk}
            units.append({
                "name": f"{group}-{k:0{width}d}",
                "group": group,
                "index": k,
                "hosts": chunk,
                "facts": facts,
                # hosts.auto.tfvars.json, written here: one host per line (readable diffs) and
                # C-speed JSON (the json filter's indented form is ~10x slower at 16k hosts)
                "tfvars": tfvars_json(facts),
                "tfvars_encoded": tfvars_json(facts, encoded=True),
            })
    return units


def tfvars_json(facts: dict[str, dict], encoded: bool = False) -> str:
    """{"hosts": {name: facts}} as sorted JSON, one host per line. `encoded`: each host's
    facts as one JSON string (the existing stack records that string as is: planning a map
    of strings costs ~20% less than converting a map of typed objects)."""
    def value(f: dict) -> str:
        text = json.dumps(f, sort_keys=True, ensure_ascii=False)
        return json.dumps(text, ensure_ascii=False) if encoded else text

    lines = [f"    {json.dumps(name, ensure_ascii=False)}: {value(facts[name])}" for name in sorted(facts)]
    return '{\n  "hosts": {\n' + ",\n".join(lines) + ("\n" if lines else "") + "  }\n}\n"


def _facts(h: dict, gpu_model: str | None, interface: str | None) -> dict:
    """What a stack records per host: a change to any of these shows as a change in plan."""
    return {
        "address": h["address"],
        "country": h["country"],
        "gpu_model": gpu_model,
        "gpus": h["gpus"],
        "group": h["group"],
        "index": h["index"],
        "interface": interface,
        "oob_address": h["oob_address"],
        "rack": h["rack"],
        "roles": list(h["roles"]),
    }
