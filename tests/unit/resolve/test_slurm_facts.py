"""Slurm facts resolve derives: the declared release, what it supports, each platform's GPUs."""

from __future__ import annotations

from factoryctl.resolve import (
    SLURM_BLOCK_TOPOLOGY,
    SLURM_IMEX_SWITCH,
    kube_gpus,
    slurm_gpus,
    slurm_release,
)
from factoryctl.session import check
from tests.helpers import reference_doc, write_doc


def test_slurm_release_parses_declared_versions():
    assert slurm_release(None) is None
    assert slurm_release("24.05.3") == (24, 5) and slurm_release("v23.11") == (23, 11)
    assert slurm_release("25") == (25, 0)
    assert slurm_release("23.02.7") < SLURM_BLOCK_TOPOLOGY <= slurm_release("23.11.0") < SLURM_IMEX_SWITCH


def test_platform_gpu_shares(tmp_path):
    doc = reference_doc()
    site = check(write_doc(doc, tmp_path / "a.yaml")).site
    gpu = site.factory.nodes[1]
    assert (slurm_gpus(gpu), kube_gpus(gpu)) == (4, 4)  # gpu_split in the reference
    del doc["nodes"][1]["gpu_split"]
    gpu = check(write_doc(doc, tmp_path / "b.yaml")).site.factory.nodes[1]
    assert (slurm_gpus(gpu), kube_gpus(gpu)) == (8, 8)  # both schedulers claim all (NOD011)
    doc["nodes"][1]["roles"] = ["kube-worker"]
    gpu = check(write_doc(doc, tmp_path / "c.yaml")).site.factory.nodes[1]
    assert (slurm_gpus(gpu), kube_gpus(gpu)) == (0, 8)
