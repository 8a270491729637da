"""`factoryctl drift`: does the site still match factory.yaml and the last apply?

Four kinds of drift, each from a real engine, checked in this order:

    artifacts.py   factory.yaml or templates changed since the last apply (re-render, compare)
    infra.py       Terraform: changed outside it, or would change (plan with the saved state)
    ops/hoststate  hosts: one SSH probe per host of what Ansible manages (baseline.py keeps
                   the answer after each apply); hosts whose answer moved, or that have no
                   baseline, go on to
    config.py      `ansible-playbook --check --diff` of the applied playbook, per host and task
    --verify       the host checks of `factoryctl verify` (runtime: a daemon down, a mount gone)

Exit 0 in sync, 2 drift, 1 could not check (an unreachable host, an engine failure, nothing
applied yet). 1 wins over 2: a pipeline must not read "some hosts drifted" as "all others
were checked". `--full` skips the probe and runs the check-mode playbook on every host.

stage.py runs them in turn (run_drift -> DriftResult); report.py shows a DriftResult (console,
JSON) and writes it for CI (JUnit and SARIF, through findings/junit.py and findings/sarif.py).
"""

from .stage import DriftOptions, DriftResult, HostDrift, host_positions, run_drift

__all__ = ["DriftOptions", "DriftResult", "HostDrift", "host_positions", "run_drift"]
