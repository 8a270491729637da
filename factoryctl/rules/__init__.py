"""Semantic rules, one module per area. Importing this package registers them all."""

from . import (  # noqa: F401 - imported for their @rule registrations
    cloud,
    fabric,
    inference,
    kubernetes,
    network,
    nodes,
    power,
    slurm,
    sovereignty,
    storage,
    tenants,
)
from .base import REGISTRY, Issue, Rule, rule, run_rules

__all__ = ["REGISTRY", "Issue", "Rule", "rule", "run_rules"]
