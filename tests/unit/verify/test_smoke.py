"""up's Slurm checks on a cluster that runs jobs: a node an inference job keeps allocated is
healthy in sinfo and skipped (named) by srun, which would otherwise wait for the job to end."""

from __future__ import annotations

import subprocess

from factoryctl.verify import smoke


class FakeRemote:
    def __init__(self, sinfo: str):
        self.sinfo = sinfo
        self.runs: list[list[str]] = []

    def run(self, host, argv, timeout=None):
        self.runs.append(argv)
        if argv[0] == "sinfo":
            return subprocess.CompletedProcess(argv, 0, self.sinfo, "")
        nodes = [a.split("=", 1)[1] for a in argv if a.startswith("--nodelist=")]
        out = "\n".join(nodes[0].split(",")) if nodes else "node01\nnode02"
        return subprocess.CompletedProcess(argv, 0, out + "\n", "")


EXPECTED = {"batch": ["node01", "node02"]}


def test_sinfo_accepts_nodes_running_jobs_and_fails_drained_ones():
    ok = smoke.check_sinfo(FakeRemote("batch*|node01|alloc\nbatch*|node02|mix\n"), "head01", EXPECTED, wait=0)
    assert [c.ok for c in ok] == [True]
    bad = smoke.check_sinfo(FakeRemote("batch*|node01|drain\nbatch*|node02|idle*\n"), "head01", EXPECTED, wait=0)
    assert [c.ok for c in bad] == [False] and bad[0].detail == "node01 drain, node02 idle*"


def test_srun_leaves_out_a_node_its_jobs_fill_and_says_so():
    remote = FakeRemote("")
    (c,) = smoke.check_srun(remote, "head01", ["node01", "node02"], EXPECTED, busy={"node01"})
    assert remote.runs[-1] == ["srun", "-N1", "--partition=batch", "--nodelist=node02", "hostname"]
    assert c.ok and c.detail == "node02 (node01 fully allocated to jobs: not tested)"
    (c,) = smoke.check_srun(FakeRemote(""), "head01", ["node01", "node02"], EXPECTED)
    assert c.ok and c.name == "srun -N2 --partition=batch hostname"
    (c,) = smoke.check_srun(FakeRemote(""), "head01", ["node01", "node02"], EXPECTED, busy={"node01", "node02"})
    assert c.ok and "not tested" in c.detail
