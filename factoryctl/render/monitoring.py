"""Prometheus for the site: the inference engines' scrape jobs (role variable
`monitoring_inference_jobs`, read by the monitoring role's prometheus.yml) and the recording
and alerting rules (monitoring/rules.yml, installed beside it).

Engines run where the scheduler puts them, so each Slurm deployment's job scrapes every host
of its node groups on the engine port and keeps only the series of its own model (vLLM labels
every engine metric with model_name, the served model: inference[].model), with `deployment`
and `tenant` target labels added: tokens reach the owner without a rule joining on model
names. Kubernetes deployments are scraped in the cluster (their Service is a ClusterIP).
Rule and alert syntax: prometheus.io/docs/prometheus/latest/configuration/recording_rules/
and alerting_rules/; recording-rule names follow level:metric:operations (best practices).
"""

from __future__ import annotations

import re

from ..resolve import Site

ENGINE_PORT = 8000  # vLLM's default; the Slurm job's --port (roles/inference) and status' probe
WAITING_FOR = "5m"
DOWN_FOR = "5m"
UNOWNED = "none"


def _owner(site: Site) -> dict[str, str]:
    return {d: t.name for t in site.factory.tenants for d in t.deployments}


def _hosts_of(site: Site, groups) -> list[str]:
    return [f"{h.address or h.name}:{ENGINE_PORT}" for g in groups for h in site.hosts_by_group.get(g, [])]


def inference_jobs(site: Site) -> list[dict]:
    """One scrape job per Slurm inference deployment."""
    owner = _owner(site)
    out = []
    for inf, fit in site.deployments_on("slurm"):
        targets = _hosts_of(site, fit.groups)
        if not targets:
            continue
        out.append({
            "job": f"inference-{inf.name}",
            "targets": targets,
            "labels": {"deployment": inf.name, "tenant": owner.get(inf.name, UNOWNED)},
            # metric_relabel keep: the deployment's own model, or series without a model (process_*)
            "keep_model": "|" + re.escape(inf.model),
        })
    return out


def rules(site: Site) -> dict:
    """The recording and alerting rule groups (a promtool-checkable rules file)."""
    f = site.factory
    record = []
    for kind in ("prompt", "generation"):
        metric = f"vllm:{kind}_tokens_total"
        record.append({"record": f"deployment_tenant:{kind}_tokens:rate5m",
                       "expr": f"sum by (deployment, tenant) (rate({metric}[5m]))"})
        record.append({"record": f"tenant:{kind}_tokens:rate5m",
                       "expr": f"sum by (tenant) (rate({metric}[5m]))"})
    alerts = [{
        "alert": "TargetDown",
        # engines are scraped on every host they may land on: their own alert follows
        "expr": 'up{job!~"inference-.*"} == 0',
        "for": DOWN_FOR,
        "labels": {"severity": "critical"},
        "annotations": {"summary": "{{ $labels.job }} target {{ $labels.instance }} is down",
                        "description": "Prometheus has not scraped {{ $labels.instance }} for " + DOWN_FOR + "."},
    }]
    for inf, _ in site.deployments_on("slurm"):
        sel = f'job="inference-{inf.name}"'
        alerts.append({
            "alert": "InferenceReplicasDown",
            "expr": f"sum(up{{{sel}}}) < {inf.replicas}",
            "for": DOWN_FOR,
            "labels": {"severity": "critical", "deployment": inf.name},
            "annotations": {"summary": f"{inf.name}: fewer than {inf.replicas} engine(s) answer /metrics"},
        })
        # more waiting than one full batch (max_num_seqs) for a while: the deployment is short of replicas
        alerts.append({
            "alert": "InferenceRequestsWaiting",
            "expr": f"sum(vllm:num_requests_waiting{{{sel}}}) > {inf.max_num_seqs * inf.replicas}",
            "for": WAITING_FOR,
            "labels": {"severity": "warning", "deployment": inf.name},
            "annotations": {"summary": f"{inf.name}: {{{{ $value }}}} requests waiting, more than "
                                       f"{inf.max_num_seqs * inf.replicas} (max_num_seqs x replicas)"},
        })
    if site.totals.get("gpus"):
        alerts.append({
            "alert": "GpuXidError",
            # DCGM_FI_DEV_XID_ERRORS holds the last XID a GPU raised (DCGM field 230; dcgm-exporter
            # default-counters.csv); any nonzero value needs a look (NVIDIA XID catalog)
            "expr": "DCGM_FI_DEV_XID_ERRORS > 0",
            "labels": {"severity": "critical"},
            "annotations": {"summary": "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} raised XID {{ $value }}"},
        })
    return {"groups": [{"name": f"{f.metadata.name}-usage", "rules": record},
                       {"name": f"{f.metadata.name}-alerts", "rules": alerts}]}
