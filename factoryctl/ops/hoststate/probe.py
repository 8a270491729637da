"""The host probe: one SSH command per host, all hosts at once, that reports the state of
every resource Ansible manages there (resources.py) in one line of JSON; also the Slurm jobs
a role keeps queued (`slurmjobs:<name prefix>`, the inference deployments' jobs).

After each apply the probe's answer is kept as the host's baseline; drift asks again and
compares. A host whose answer moved is handed to `ansible-playbook --check --diff`, which
says what the playbook would change and shows the diff. The probe only reads: it hashes
files, stats folders and links, asks the init system about services and the package
manager about packages. It is a few milliseconds of work per host, so drift on many hosts
costs about what it costs on one.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# Runs on the host with its python3 (Ansible needs one there anyway). Input: the resource
# keys as JSON in argv[1]; output: {key: observation} as JSON on stdout.
PROBE = r'''
import hashlib, json, os, pwd, grp, stat, subprocess, sys

def owner(st):
    try:
        u = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        u = str(st.st_uid)
    try:
        g = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        g = str(st.st_gid)
    return "%s:%s %04o" % (u, g, stat.S_IMODE(st.st_mode))

def run(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
        return p.returncode, p.stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return 127, ""

def service(name):
    if os.path.isdir("/run/systemd/system"):
        return "running" if run(["systemctl", "is-active", "--quiet", name])[0] == 0 else "stopped"
    script = "/etc/init.d/" + name
    if os.access(script, os.X_OK):
        return "running" if run([script, "status"])[0] == 0 else "stopped"
    return "unknown (no systemd, no init script)"

def packages(names):
    if not names:
        return {}
    if os.path.exists("/usr/bin/dpkg-query"):
        rc, out = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n"] + names)
        seen = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[2] == "installed":
                seen[parts[0]] = "installed " + parts[1]
        return {n: seen.get(n, "not installed") for n in names}
    out = {}
    for n in names:
        rc, text = run(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", n])
        out[n] = "installed " + text.strip() if rc == 0 else "not installed"
    return out

keys = json.loads(sys.argv[1])
seen = {}
pkgs = [k.split(":", 1)[1] for k in keys if k.startswith(("package:", "nopackage:"))]
versions = packages(pkgs)
for key in keys:
    kind, _, name = key.partition(":")
    try:
        if kind == "file":
            st = os.stat(name)
            h = hashlib.sha256()
            with open(name, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            seen[key] = "sha256:%s %s" % (h.hexdigest(), owner(st))
        elif kind == "dir":
            st = os.stat(name)
            seen[key] = ("directory " if stat.S_ISDIR(st.st_mode) else "not a directory ") + owner(st)
        elif kind == "link":
            seen[key] = "-> " + os.readlink(name)
        elif kind == "absent":
            seen[key] = "present" if os.path.lexists(name) else "absent"
        elif kind in ("service", "stopped"):
            seen[key] = service(name)
        elif kind in ("package", "nopackage"):
            seen[key] = versions.get(name, "not installed")
        elif kind == "hostname":
            seen[key] = os.uname()[1]
        elif kind == "user":
            seen[key] = "uid %d" % pwd.getpwnam(name).pw_uid
        elif kind == "slurmjobs":
            rc, out = run(["squeue", "-h", "-o", "%j", "-t", "PENDING,RUNNING,CONFIGURING,REQUEUED"])
            jobs = sorted({j for j in out.split() if j.startswith(name)})
            seen[key] = ("queued: " + " ".join(jobs) if jobs else "none queued") if rc == 0 else "squeue failed"
        else:
            seen[key] = "unknown kind"
    except FileNotFoundError:
        seen[key] = "missing"
    except KeyError:
        seen[key] = "missing"
    except OSError as e:
        seen[key] = "error: %s" % e.strerror
print(json.dumps(seen, sort_keys=True))
'''


@dataclass
class Answer:
    host: str
    state: dict[str, str] | None  # None: the host could not be asked
    error: str = ""


def ask(remote, hosts: dict[str, list[str]], workers: int = 32, timeout: float = 60) -> dict[str, Answer]:
    """Probe every host for its resources, in parallel; host -> Answer."""

    def one(item: tuple[str, list[str]]) -> Answer:
        host, keys = item
        try:
            r = remote.run(host, ["python3", "-c", PROBE, json.dumps(keys)], timeout=timeout)
        except (OSError, subprocess.SubprocessError) as e:
            return Answer(host, None, f"ssh failed: {e}")
        if r.returncode != 0:
            text = (r.stderr or r.stdout or "").strip().splitlines()
            why = text[-1][:300] if text else f"exit {r.returncode}"
            return Answer(host, None, f"unreachable ({why})" if r.returncode == 255 else f"probe failed: {why}")
        try:
            return Answer(host, json.loads(r.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return Answer(host, None, f"probe answered no JSON: {r.stdout[-200:]!r}")

    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        return {a.host: a for a in pool.map(one, sorted(hosts.items()))}


def moved(baseline: dict[str, str], now: dict[str, str]) -> dict[str, tuple[str, str]]:
    """key -> (was, is) for every resource whose observation changed."""
    return {k: (baseline.get(k, "?"), now.get(k, "?")) for k in sorted(baseline) if baseline.get(k) != now.get(k)}
