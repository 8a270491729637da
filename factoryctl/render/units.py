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

from .. import catalog
from ..model import Factory

UNIT_HOSTS = 128  # four 32-node scalable units; plan time per node is flat up to ~256
# Providers whose hosts share resources only one Terraform state can share: on AWS every
# instance sits in one cluster security group that admits itself (EFA's requirement, AWS EFA
# user guide "Prepare an EFA-enabled security group") and the GPU instances in one cluster
# placement group, so an AWS site is one stack, `site-000`.
ONE_STACK = ("aws",)


def terraform_units(factory: Factory, hosts: list[dict], groups: dict[str, dict],
                    size: int = UNIT_HOSTS) -> list[dict]:
    """[{name, group, index, hosts: [host dicts], facts: {host: facts}}] in group order."""
    interface = {g.group: g.network.management.interface for g in factory.nodes}
    if getattr(getattr(factory, "site", None), "provider", None) in ONE_STACK:
        facts = {h["name"]: _facts(h, groups[h["group"]]["gpu_model"] if h["group"] in groups else None,
                                   interface.get(h["group"])) for h in hosts}
        return [{"name": "site-000", "group": "site", "index": 0, "hosts": list(hosts), "facts": facts,
                 "tfvars": tfvars_json(facts), "tfvars_encoded": tfvars_json(facts, encoded=True)}]
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


def aws_settings(factory: Factory) -> dict | None:
    """The `aws` variable of the AWS stack (settings.auto.tfvars.json): site.aws with the
    facts it implies. EFA interfaces per GPU instance come from the instance catalog (one per
    network card: p5.48xlarge 32, p4d.24xlarge 4); the subnet is the management network, so
    every host gets its planned address as its primary private IP."""
    aws = factory.site.aws
    if factory.site.provider != "aws" or aws is None:
        return None
    spec = catalog.instance(aws.instance_type)
    return {
        "admin_cidrs": list(aws.admin_cidrs),
        "ami": aws.ami,
        "availability_zone": aws.availability_zone,
        "capacity_block": aws.capacity_block,
        "capacity_reservation_id": aws.capacity_reservation_id,
        "cidr": factory.fabric.management.cidr,
        "cpu_instance_type": aws.cpu_instance_type,
        "efa_interfaces": spec.efa_interfaces if aws.efa and spec else 0,
        "instance_type": aws.instance_type,
        # an air-gapped site gets no route out and no public address
        "internet": not factory.sovereignty.air_gapped,
        "key_name": aws.key_name,
        "placement_group": aws.placement_group,
        "public_key": aws.public_key,
        "region": aws.region,
        "subnet_id": aws.subnet_id,
        "vpc_id": aws.vpc_id,
    }
