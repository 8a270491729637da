"""Model + resolved facts -> the plain, sorted data every template reads (no I/O, no clock)."""

from __future__ import annotations

from .. import __version__
from ..resolve import Site
from ..resolve.storage import transport as storage_transport
from . import ansible_vars, healthcheck, hostchecks, kube, monitoring, slurm_inference
from . import slurm as slurm_facts
from .units import aws_settings, terraform_units


def build(site: Site) -> dict:
    f = site.factory
    facts = site.to_dict()
    hosts = facts["hosts"]
    by_role: dict[str, list[str]] = {}
    for h in hosts:
        for r in h["roles"]:
            by_role.setdefault(r, []).append(h["name"])
    gpu_groups = {g["name"]: g for g in facts["groups"]}
    kube_facts = kube.build(site)
    health_check = healthcheck.build(site)
    return {
        "factory": f.model_dump(mode="json"),
        "name": f.metadata.name,
        "provider": f.site.provider,
        "hosts": hosts,  # in declaration order: group order, then index
        "groups": gpu_groups,
        "hosts_by_role": {r: sorted(v) for r, v in sorted(by_role.items())},
        "racks": facts["racks"],
        "fabric": facts["fabric"],
        "network": facts["network"],
        "inference": facts["inference"],
        "totals": facts["totals"],
        "tool_version": __version__,
        "ansible": ansible_vars.build(f.model_dump(mode="json"), hosts, gpu_groups, storage_transport(f),
                                      {"monitoring_inference_jobs": monitoring.inference_jobs(site)}),
        "monitoring": {"rules": monitoring.rules(site)},  # monitoring/rules.yml
        "slurm": slurm_facts.build(site),
        "slurm_inference": slurm_inference.jobs(site),  # slurm/inference/<name>.sbatch
        "slurm_health_check": health_check,  # slurm/factoryctl-healthcheck.sh (render/healthcheck.py)
        "kube": kube_facts,
        "kube_inference": kube_facts["inference"],  # kubernetes/inference/<name>/manifests.yaml
        "terraform_units": terraform_units(f, hosts, gpu_groups),  # render/units.py
        "aws": aws_settings(f),  # terraform/aws: settings.auto.tfvars.json
        "verify": hostchecks.build(site),  # verify/checks.json: the host checks (render/hostchecks.py)
    }
