"""How each kind of host check looks at a host and judges what it finds.

A probe takes a host (anything with testinfra's ``run(command) -> result with rc, stdout,
stderr``: a testinfra Host over SSH, Ansible's inventory or locally) and one entry of
checks.json, and returns the detail of a pass, or raises ``Skip`` (the hardware or the
software it needs is absent: the reason says which) or ``Fail`` (what differs from the
model). Everything is read with plain commands and kernel files (/proc, /sys) that every
Linux node has, so no tool beyond coreutils and procps needs to be installed to verify.
Parsing is kept in small functions of text, tested on their own.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any


class Skip(Exception):
    """The check does not apply here; the message says why."""


class Fail(Exception):
    """The host differs from the model; the message says how."""


_CACHE: dict[tuple[Any, str], Any] = {}  # (host, what) -> answer, for one pytest process


def _cached(host, key: str, fn: Callable[[], Any]) -> Any:
    k = (host, key)
    if k not in _CACHE:
        _CACHE[k] = fn()
    return _CACHE[k]


def sh(host, command: str):
    return host.run(command)


def _why(res) -> str:
    """The most telling line of a failed command: its last non-empty line of stderr (or stdout)."""
    lines = [ln.strip() for ln in (res.stderr or res.stdout or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def _has(host, tool: str) -> bool:
    return _cached(host, f"has:{tool}", lambda: sh(host, f"command -v {shlex.quote(tool)}").rc == 0)


# --- hardware presence (the "needs" gate) -----------------------------------------------------

HW_COMMAND = ("for d in /sys/bus/pci/devices/*; do [ -r \"$d/vendor\" ] && "
              "echo \"pci $(cat \"$d/vendor\") $(cat \"$d/class\")\"; done 2>/dev/null; "
              "ls /sys/class/infiniband 2>/dev/null | sed 's/^/rdma /'; true")


def parse_hardware(text: str) -> dict[str, int]:
    """PCI NVIDIA GPUs (vendor 0x10de, class 0x0300/0x0302), Mellanox/NVIDIA network adapters
    (0x15b3, class 0x0200/0x0207) and RDMA devices, as the hardware_facts role counts them."""
    gpus = nics = rdma = 0
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == "pci":
            vendor, cls = f[1].lower(), f[2].lower()
            gpus += vendor == "0x10de" and cls[:6] in ("0x0300", "0x0302")
            nics += vendor == "0x15b3" and cls[:6] in ("0x0200", "0x0207")
        elif len(f) == 2 and f[0] == "rdma":
            rdma += 1
    return {"nvidia_gpus": gpus, "mellanox": nics, "rdma": rdma}


def hardware(host) -> dict[str, int]:
    return _cached(host, "hw", lambda: parse_hardware(sh(host, HW_COMMAND).stdout))


def gate(host, needs: str) -> None:
    """Skip when the hardware a check needs is absent."""
    if not needs:
        return
    hw = hardware(host)
    if needs == "nvidia-gpu" and not hw["nvidia_gpus"]:
        raise Skip("no NVIDIA GPU on the PCI bus (vendor 0x10de)"
                   + ("" if _has(host, "nvidia-smi") else "; nvidia-smi absent"))
    if needs == "rdma" and not (hw["rdma"] or hw["mellanox"]):
        raise Skip("no RDMA device (/sys/class/infiniband empty) and no Mellanox/NVIDIA adapter on the PCI bus")


# --- basics ------------------------------------------------------------------------------------


def hostname(host, expect: dict) -> str:
    got = sh(host, "hostname").stdout.strip().split(".")[0]
    if got != expect["name"]:
        raise Fail(f"hostname is {got!r}, expected {expect['name']!r}")
    return got


def os_family(text: str) -> str:
    """debian or redhat from /etc/os-release; '' when neither."""
    fields = {}
    for line in text.splitlines():
        k, _, v = line.partition("=")
        fields[k.strip()] = v.strip().strip('"').lower()
    words = set((fields.get("ID", "") + " " + fields.get("ID_LIKE", "")).split())
    if words & {"debian", "ubuntu"}:
        return "debian"
    if words & {"rhel", "fedora", "centos", "rocky", "almalinux"}:
        return "redhat"
    return ""


def installed_debian(text: str) -> set[str]:
    """Packages dpkg-query reports fully installed ('<name> ii ')."""
    out = set()
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[1].startswith("ii"):
            out.add(f[0].split(":")[0])
    return out


def installed_rpm(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip() and " " not in line.strip()}


def packages(host, expect: dict) -> str:
    family = _cached(host, "family", lambda: os_family(sh(host, "cat /etc/os-release").stdout))
    if not family:
        raise Skip("neither a Debian nor a Red Hat family system: package names unknown")
    want = expect.get(family, [])
    if not want:
        raise Skip(f"no packages expected on {family}")
    names = " ".join(shlex.quote(p) for p in want)
    if family == "debian":
        have = installed_debian(sh(host, f"dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' {names}").stdout)
    else:
        have = installed_rpm(sh(host, f"rpm -q --qf '%{{NAME}}\\n' {names}").stdout)
    missing = [p for p in want if p not in have]
    if missing:
        raise Fail(f"not installed: {', '.join(missing)} ({len(want) - len(missing)} of {len(want)} present)")
    return f"{len(want)} installed: {', '.join(want)}"


def process(host, expect: dict) -> str:
    for name in expect["processes"]:
        res = sh(host, f"pgrep -x {shlex.quote(name)}")
        if res.rc == 0 and res.stdout.split():
            return f"{name} running (pid {', '.join(res.stdout.split()[:3])})"
    raise Fail(f"{expect['service']} not running (no {' or '.join(expect['processes'])} process)")


def listening_ports(text: str) -> set[int]:
    """TCP ports in LISTEN state (st 0A) from /proc/net/tcp and tcp6."""
    ports = set()
    for line in text.splitlines():
        f = line.split()
        if len(f) > 3 and ":" in f[1] and f[3] == "0A":
            try:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
            except ValueError:
                continue
    return ports


def port(host, expect: dict) -> str:
    text = sh(host, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null").stdout
    if expect["port"] not in listening_ports(text):
        raise Fail(f"nothing listens on TCP port {expect['port']} ({expect['daemon']})")
    return f"TCP {expect['port']} listening ({expect['daemon']})"


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts(text: str) -> dict[str, tuple[str, str]]:
    """mount point -> (fstype, source) from /proc/self/mounts; the last mount on a path wins."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3:
            out[_unescape(f[1])] = (f[2], _unescape(f[0]))
    return out


def mount(host, expect: dict) -> str:
    found = mounts(sh(host, "cat /proc/self/mounts").stdout).get(expect["path"])
    if found is None:
        raise Fail(f"{expect['path']} is not mounted (storage {expect['storage']}, {expect['type']})")
    fstype, source = found
    if fstype not in expect["fstypes"]:
        raise Fail(f"{expect['path']} is {fstype} from {source}, expected {' or '.join(expect['fstypes'])}")
    return f"{expect['path']}: {fstype} from {source}"


MODULES_COMMAND = "cat /proc/modules; echo ---; cat /lib/modules/$(uname -r)/modules.builtin 2>/dev/null; true"


def kernel_modules(text: str) -> set[str]:
    loaded, _, builtin = text.partition("---")
    names = {line.split()[0] for line in loaded.splitlines() if line.split()}
    for line in builtin.splitlines():
        base = line.strip().rsplit("/", 1)[-1]
        if base.endswith(".ko"):
            names.add(base[:-3])
    return {n.replace("-", "_") for n in names}


def modules(host, expect: dict) -> str:
    have = kernel_modules(sh(host, MODULES_COMMAND).stdout)
    missing = [m for m in expect["modules"] if m not in have]
    if missing:
        raise Fail(f"kernel module(s) not loaded: {', '.join(missing)}")
    return f"loaded: {', '.join(expect['modules'])}"


# --- health: disk space and time sync ---------------------------------------------------------


def parse_df(text: str) -> dict[str, dict[str, int]]:
    """`df -P -k PATH...` (POSIX output: Filesystem 1024-blocks Used Available Capacity Mounted
    on): per path asked, in the order asked, its 1 KiB blocks used and available. A line per
    path (the mount point is the last field, the path itself is not printed)."""
    out: dict[str, dict[str, int]] = {}
    rows = [ln.split() for ln in text.splitlines()[1:] if ln.split()]
    for i, f in enumerate(rows):
        if len(f) >= 6 and f[2].isdigit() and f[3].isdigit():
            out[str(i)] = {"used": int(f[2]), "avail": int(f[3]), "mount": " ".join(f[5:])}
    return out


def _gib(kib: int) -> str:
    return f"{kib / 1024 ** 2:.1f} GiB"


def disk_space(host, expect: dict) -> str:
    """Free share of each path's filesystem against verify.thresholds.disk_free_fraction. The
    share counts what users may still write (df's Available over Used + Available, as df's
    Capacity column does; blocks reserved for root are neither)."""
    paths, least = expect["paths"], float(expect["min_free_fraction"])
    res = sh(host, "df -P -k " + " ".join(shlex.quote(p) for p in paths))
    rows = parse_df(res.stdout)
    if len(rows) != len(paths):
        raise Fail(f"df -P gave {len(rows)} of {len(paths)} filesystems (exit {res.rc}): {_why(res)}")
    low, seen = [], []
    for i, path in enumerate(paths):
        r = rows[str(i)]
        total = r["used"] + r["avail"]
        free = r["avail"] / total if total else 0.0
        seen.append(f"{path}: {free:.1%} free ({_gib(r['avail'])} of {_gib(total)})")
        if free < least:
            low.append(seen[-1])
    if low:
        raise Fail(f"{'; '.join(low)}; threshold {least:.0%} free (verify.thresholds.disk_free_fraction)")
    return f"{'; '.join(seen)}; threshold {least:.0%}"


def parse_chrony_tracking(text: str) -> dict[str, Any]:
    """`chronyc tracking`: the system clock's offset from NTP time in seconds (negative: slow;
    chronyc(1): 'System time : 0.000001 seconds slow of NTP time') and the leap status
    ('Not synchronised' when chronyd has no usable source)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key, val = key.strip(), val.strip()
        if key == "System time":
            m = re.match(r"([\d.]+)\s+seconds\s+(fast|slow)", val)
            if m:
                out["offset_s"] = float(m.group(1)) * (1 if m.group(2) == "fast" else -1)
        elif key == "Leap status":
            out["leap"] = val
        elif key == "Reference ID":
            out["reference"] = val
    return out


def time_sync(host, expect: dict, clock: Callable[[], float] | None = None) -> str:
    """The clock offset against verify.thresholds.clock_offset_ms: chronyd's own estimate where
    chronyc answers (the common role installs chrony when site.ntp_servers is set); otherwise
    the offset from the verifying machine's clock, measured over the connection (the remote
    time against the middle of the round trip, which bounds the error at half of it)."""
    import time

    limit_ms = float(expect["max_offset_ms"])
    if _has(host, "chronyc"):
        res = sh(host, "chronyc -n tracking")
        t = parse_chrony_tracking(res.stdout)
        if res.rc != 0 or "offset_s" not in t:
            raise Fail(f"chronyc tracking gave no offset (exit {res.rc}): {_why(res)}")
        if t.get("leap", "").lower().startswith("not sync"):
            raise Fail(f"chronyd not synchronised (leap status {t['leap']!r}); threshold {limit_ms:g} ms")
        off = t["offset_s"] * 1000
        if abs(off) > limit_ms:
            raise Fail(f"clock {off:+.1f} ms from NTP (chronyc tracking), threshold {limit_ms:g} ms")
        return f"clock {off:+.3f} ms from NTP (chronyc tracking), threshold {limit_ms:g} ms"
    now = clock or time.time
    t0 = now()
    res = sh(host, "date +%s.%N")
    t1 = now()
    try:
        remote = float(res.stdout.strip())
    except ValueError:
        raise Fail(f"date +%s.%N gave {res.stdout.strip()[:40]!r} (exit {res.rc})") from None
    off = (remote - (t0 + t1) / 2) * 1000
    err = (t1 - t0) / 2 * 1000
    if abs(off) - err > limit_ms:
        raise Fail(f"clock {off:+.1f} ms (±{err:.1f}) from the verifying machine's, threshold {limit_ms:g} ms "
                   "(chronyc absent)")
    return f"clock {off:+.1f} ms (±{err:.1f}) from the verifying machine's (chronyc absent), threshold {limit_ms:g} ms"


# --- GPUs --------------------------------------------------------------------------------------

SMI_QUERY = "nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id --format=csv,noheader"


def parse_smi(text: str) -> list[dict[str, str]]:
    gpus = []
    for line in text.splitlines():
        f = [x.strip() for x in line.split(",")]
        if len(f) >= 4 and f[0].isdigit():
            gpus.append({"index": f[0], "name": f[1], "driver": f[2], "bus": f[3]})
    return gpus


def _smi(host) -> list[dict[str, str]]:
    def query():
        if not _has(host, "nvidia-smi"):
            n = hardware(host)["nvidia_gpus"]
            raise Fail(f"nvidia-smi absent although {n} NVIDIA GPU(s) sit on the PCI bus (driver missing?)")
        res = sh(host, SMI_QUERY)
        if res.rc != 0:
            raise Fail(f"nvidia-smi failed (exit {res.rc}): {_why(res)}")
        return parse_smi(res.stdout)
    return _cached(host, "smi", query)


def gpu_count(host, expect: dict) -> str:
    if expect["count"] == 0:
        raise Skip("no GPU declared")
    gpus = _smi(host)
    if len(gpus) != expect["count"]:
        raise Fail(f"{len(gpus)} GPU(s) visible to nvidia-smi, {expect['count']} declared")
    return f"{len(gpus)} of {expect['count']}"


def gpu_model(host, expect: dict) -> str:
    from .. import catalog

    names = sorted({g["name"] for g in _smi(host)})
    if not names:
        raise Fail("nvidia-smi lists no GPU")
    wrong = [n for n in names if (spec := catalog.gpu(n)) is None or spec.name != expect["model"]]
    if wrong:
        raise Fail(f"found {', '.join(wrong)}; declared {expect['model']}")
    return f"{', '.join(names)} = {expect['model']}"


def gpu_driver(host, expect: dict) -> str:
    versions = sorted({g["driver"] for g in _smi(host)})
    if not versions:
        raise Fail("nvidia-smi lists no GPU")
    if len(versions) > 1:
        raise Fail(f"GPUs report different drivers: {', '.join(versions)}")
    branch = expect.get("branch") or ""
    if branch and versions[0].split(".")[0] != branch:
        raise Fail(f"driver {versions[0]}, expected the {branch} branch (nvidia_driver_branch)")
    return f"driver {versions[0]}" + (f" (branch {branch})" if branch else "")


def parse_nvlink(text: str) -> dict[int, dict[str, Any]]:
    """`nvidia-smi nvlink -s`: per GPU, the GB/s of each active link and the inactive ones."""
    out: dict[int, dict[str, Any]] = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"\s*GPU (\d+):", line)
        if m:
            cur = out.setdefault(int(m.group(1)), {"gbps": [], "inactive": 0})
            continue
        m = re.match(r"\s*Link (\d+):\s*(.*)$", line)
        if m and cur is not None:
            speed = re.match(r"([\d.]+)\s*GB/s", m.group(2))
            if speed:
                cur["gbps"].append(float(speed.group(1)))
            else:
                cur["inactive"] += 1
    return out


def nvlink(host, expect: dict) -> str:
    _smi(host)  # same skips and failures as the other GPU checks
    res = sh(host, "nvidia-smi nvlink -s")
    gpus = parse_nvlink(res.stdout)
    if res.rc != 0 or not gpus:
        raise Fail(f"nvidia-smi nvlink -s gave nothing (exit {res.rc})")
    bad = []
    for idx, g in sorted(gpus.items()):
        total = sum(g["gbps"])
        if g["inactive"] or total < 0.99 * expect["gbps_per_gpu"]:
            bad.append(f"GPU {idx}: {len(g['gbps'])} links up, {g['inactive']} inactive, {total:g} GB/s")
    if len(gpus) != expect["gpus"]:
        bad.append(f"{len(gpus)} GPUs report NVLink, {expect['gpus']} declared")
    if bad:
        raise Fail(f"NVLink below {expect['gbps_per_gpu']:g} GB/s per GPU: " + "; ".join(bad))
    links = sum(len(g["gbps"]) for g in gpus.values())
    return f"{len(gpus)} GPUs, {links} links up, >= {expect['gbps_per_gpu']:g} GB/s each GPU"


# Kernel Xid/SXid lines of this boot: dmesg where this user may read the ring buffer, else the
# journal's kernel messages of this boot (NVIDIA Xid catalog: "NVRM: Xid" lines; NVSwitch SXid).
XID_COMMAND = ("{ dmesg -T 2>/dev/null || journalctl -k -b --no-pager -o short 2>/dev/null; } "
               "| grep -E 'NVRM: Xid|SXid|fallen off the bus'; true")


def health_sources(host, expect: dict) -> list[tuple[str, str]]:
    """(what ran, its output) for the health tools this node's design calls for."""
    out = []
    res = sh(host, "nvidia-smi -q -x")
    if res.rc != 0 or not res.stdout.strip():
        raise Fail(f"nvidia-smi -q -x failed (exit {res.rc}): {_why(res)}")
    out.append(("nvidia-smi -q -x", res.stdout))
    if expect.get("nvlink"):
        res = sh(host, "nvidia-smi nvlink -s")
        if res.rc != 0 or not res.stdout.strip():
            raise Fail(f"nvidia-smi nvlink -s failed (exit {res.rc}): {_why(res)}")
        out.append(("nvidia-smi nvlink -s", res.stdout))
    if expect.get("ib_gbps") and _has(host, "ibstat"):
        res = sh(host, "ibstat")
        out.append(("ibstat", res.stdout + ("\n" + res.stderr if res.rc else "")))
    log = sh(host, XID_COMMAND).stdout
    if log.strip():
        out.append(("kernel log (Xid, SXid)", log))
    return out


HEALTH_DIR_ENV = "FACTORYCTL_HEALTH_DIR"  # where verify keeps the raw outputs (runs/<id>/hostchecks/health)


def keep(subject: str, what: str, text: str) -> None:
    """The raw output into the run folder, when verify gave one: the evidence behind a finding,
    and what the consistency across nodes reads (verify/hostchecks.py)."""
    import os
    from pathlib import Path

    folder = os.environ.get(HEALTH_DIR_ENV)
    if not folder or not subject:
        return
    slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
    path = Path(folder) / f"{subject}.{slug}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def gpu_health(host, expect: dict, subject: str = "") -> str:
    """nvidia-smi -q -x (ECC, remapped rows, retired pages, PCIe link, throttle reasons,
    temperatures, power, persistence), NVLink when declared, ibstat on InfiniBand, kernel Xids:
    parsed and judged by the health package here, on the verifying machine, against the
    thresholds of verify.health; fails naming GPU or port, the value and the threshold."""
    from ..health import HealthInputError, judge, load_thresholds, parse_text
    from ..health.model import Gpu

    _smi(host)  # same skips and failures as the other GPU checks
    thresholds = load_thresholds(expect.get("thresholds") or {})
    fails, warns, gpus = [], [], None
    for what, text in health_sources(host, expect):
        keep(subject, what, text)
        try:
            parsed = parse_text(text, what, subject or None)
        except HealthInputError as e:
            raise Fail(f"{what}: output not understood: {e}") from None
        if parsed.format == "nvidia-smi-xml":
            gpus = len(parsed.of(Gpu))
        rate = float(expect["ib_gbps"]) if what == "ibstat" and expect.get("ib_gbps") else None
        for f in judge(parsed, thresholds, expect_ib_rate=rate):
            line = f"{f.device} {f.check} {f.value} (expected {f.expected})" + (f": {f.detail}" if f.detail else "")
            if f.status == "fail":
                fails.append(f"{what}: {line}")
            elif f.status == "warn":
                warns.append(line)
    if gpus is not None and gpus != expect["gpus"]:
        fails.insert(0, f"nvidia-smi -q -x reports {gpus} GPU(s), {expect['gpus']} declared")
    if fails:
        raise Fail(f"{len(fails)} health finding(s) failed: " + "; ".join(fails[:12])
                   + (f"; and {len(fails) - 12} more" if len(fails) > 12 else ""))
    return (f"{gpus} GPU(s) healthy" + (f"; {len(warns)} warning(s): " + "; ".join(warns[:6]) if warns else ""))


# --- fabric ------------------------------------------------------------------------------------

IB_PORTS_COMMAND = ("for p in /sys/class/infiniband/*/ports/*; do [ -r \"$p/state\" ] && "
                    "echo \"$p|$(cat \"$p/state\")|$(cat \"$p/rate\")|$(cat \"$p/link_layer\" 2>/dev/null)\"; "
                    "done 2>/dev/null; true")
NET_COMMAND = ("for n in /sys/class/net/*; do [ -e \"$n/device\" ] && "
               "echo \"${n##*/}|$(cat \"$n/operstate\")|$(cat \"$n/speed\" 2>/dev/null)\"; done 2>/dev/null; true")


def parse_ib_ports(text: str) -> list[dict[str, Any]]:
    """Ports from sysfs: device/port, ACTIVE or not, rate in Gb/s, link layer."""
    out = []
    for line in text.splitlines():
        f = line.split("|")
        if len(f) < 4:
            continue
        m = re.match(r"\s*([\d.]+)\s*Gb/sec", f[2])
        parts = f[0].rstrip("/").split("/")
        out.append({"port": f"{parts[-3]}/{parts[-1]}" if len(parts) >= 3 else f[0],
                    "active": "ACTIVE" in f[1].upper(),
                    "gbps": float(m.group(1)) if m else 0.0,
                    "link_layer": f[3].strip()})
    return out


def parse_net(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        f = line.split("|")
        if len(f) == 3:
            speed = int(f[2]) if f[2].strip().lstrip("-").isdigit() else 0
            out.append({"port": f[0], "active": f[1].strip() == "up", "gbps": speed / 1000})
    return out


def fabric_ports(host, expect: dict) -> str:
    want, rate = expect["ports"], float(expect["gbps"])
    if expect["type"] in ("infiniband", "roce"):
        layer = "InfiniBand" if expect["type"] == "infiniband" else "Ethernet"
        ports = [p for p in parse_ib_ports(sh(host, IB_PORTS_COMMAND).stdout)
                 if not p["link_layer"] or p["link_layer"].lower() == layer.lower()]
        source = "RDMA ports (sysfs, as ibstat reads them)"
    else:
        ports = parse_net(sh(host, NET_COMMAND).stdout)
        if not ports:
            raise Skip("no physical network interface visible (/sys/class/net/*/device)")
        source = "network interfaces (sysfs, as ethtool reads them)"
    good = [p for p in ports if p["active"] and p["gbps"] >= rate]
    if len(good) < want:
        others = [f"{p['port']} {'up' if p['active'] else 'down'} {p['gbps']:g}G" for p in ports if p not in good]
        raise Fail(f"{len(good)} of {want} {expect['fabric']} ports up at {rate:g} Gb/s"
                   + (f"; others: {', '.join(others[:8])}" if others else f"; {len(ports)} {source} found"))
    return f"{len(good)} {expect['fabric']} ports up at >= {rate:g} Gb/s ({want} declared)"


def rdma_devices(host, expect: dict) -> str:
    n = hardware(host)["rdma"]
    if n < expect["min"]:
        raise Fail(f"{n} RDMA device(s) in /sys/class/infiniband, {expect['min']} expected from the NICs declared")
    return f"{n} RDMA devices (>= {expect['min']})"


# --- Slurm -------------------------------------------------------------------------------------

SINFO_COMMAND = "sinfo -h -a -o '%P|%a' && echo --- && sinfo -h -a -N -o '%N|%P|%T|%E'"
# The drain reason of `verify --quarantine` (verify/quarantine.py); the rendered
# HealthCheckProgram's start "factoryctl-hc:" (render/healthcheck.py).
QUARANTINE_REASON = "factoryctl:"
OK_STATES = {"idle", "allocated", "mixed", "completing", "planned", "reserved"}
STATE_FLAGS = "*~#!%$@^-+"


def parse_sinfo(text: str) -> dict[str, Any]:
    """Partitions (availability, default) and, per node, its partitions and state."""
    head, _, rows = text.partition("---")
    parts: dict[str, dict[str, Any]] = {}
    for line in head.splitlines():
        f = line.strip().split("|")
        if len(f) == 2 and f[0]:
            name = f[0].rstrip("*")
            parts[name] = {"up": f[1].strip() == "up", "default": f[0].endswith("*"), "nodes": set()}
    nodes: dict[str, dict[str, Any]] = {}
    for line in rows.splitlines():
        f = line.strip().split("|", 3)
        if len(f) < 3 or not f[0]:
            continue
        part = f[1].rstrip("*")
        parts.setdefault(part, {"up": False, "default": f[1].endswith("*"), "nodes": set()})["nodes"].add(f[0])
        why = f[3].strip() if len(f) > 3 else ""
        n = nodes.setdefault(f[0], {"partitions": set(), "state": f[2].strip(),
                                    "reason": "" if why in ("none", "(null)") else why})
        n["partitions"].add(part)
    return {"partitions": parts, "nodes": nodes}


def _sinfo(host) -> dict[str, Any]:
    def query():
        if not _has(host, "sinfo"):
            raise Fail("sinfo absent on this Slurm controller (slurm-client not installed)")
        res = sh(host, SINFO_COMMAND)
        if res.rc != 0:
            raise Fail(f"sinfo failed (exit {res.rc}): {_why(res)}")
        return parse_sinfo(res.stdout)
    return _cached(host, "sinfo", query)


def slurm_partition(host, expect: dict) -> str:
    info = _sinfo(host)["partitions"].get(expect["partition"])
    if info is None:
        raise Fail(f"partition {expect['partition']} does not exist")
    problems = []
    want = set(expect["nodes"])
    if not info["up"]:
        problems.append("not up")
    if info["default"] != expect["default"]:
        problems.append("the default partition, declared not default" if info["default"]
                        else "not the default partition, declared default")
    if want - info["nodes"]:
        problems.append(f"missing nodes {', '.join(sorted(want - info['nodes']))}")
    if info["nodes"] - want:
        problems.append(f"extra nodes {', '.join(sorted(info['nodes'] - want))}")
    if problems:
        raise Fail(f"partition {expect['partition']}: " + "; ".join(problems))
    return f"partition {expect['partition']} up with {len(want)} nodes" + (" (default)" if expect["default"] else "")


def node_state(state: str) -> tuple[str, bool]:
    """(base state, responding) from sinfo %T: 'idle*' is idle but not responding."""
    responding = "*" not in state
    return state.rstrip(STATE_FLAGS).lower(), responding


def slurm_node(host, expect: dict, subject: str) -> str:
    node = _sinfo(host)["nodes"].get(subject)
    if node is None:
        raise Fail(f"{subject} is not a Slurm node (sinfo does not list it)")
    base, responding = node_state(node["state"])
    why = node.get("reason", "")
    if base not in OK_STATES and why.startswith(QUARANTINE_REASON):
        raise Skip(f"{node['state']} by factoryctl ({why!r}): the node's own checks decide; "
                   "verify --quarantine resumes it once they pass")
    problems = []
    if not responding:
        problems.append(f"not responding ({node['state']})")
    if base not in OK_STATES:
        problems.append(f"state {node['state']}" + (f" ({why})" if why else ""))
    missing = sorted(set(expect["partitions"]) - node["partitions"])
    if missing:
        problems.append(f"not in partition(s) {', '.join(missing)}")
    if problems:
        raise Fail(f"{subject}: " + "; ".join(problems))
    return f"{node['state']} in {', '.join(sorted(node['partitions']))}"


# --- Kubernetes and inference ------------------------------------------------------------------

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


def parse_kube_nodes(doc: dict) -> dict[str, dict[str, Any]]:
    out = {}
    for item in doc.get("items", []):
        name = item.get("metadata", {}).get("name", "")
        conds = {c.get("type"): c.get("status") for c in item.get("status", {}).get("conditions", [])}
        alloc = item.get("status", {}).get("allocatable", {})
        gpus = alloc.get("nvidia.com/gpu", "0")
        out[name.split(".")[0]] = {"ready": conds.get("Ready") == "True",
                                   "gpus": int(gpus) if str(gpus).isdigit() else 0}
    return out


def _kube_nodes(host) -> dict[str, dict[str, Any]]:
    def query():
        if not _has(host, "kubectl"):
            raise Skip("kubectl absent here: no Kubernetes cluster to check")
        res = sh(host, f"{KUBECTL} get nodes -o json")
        if res.rc != 0:
            raise Skip(f"no Kubernetes cluster answers here: {_why(res)}")
        return parse_kube_nodes(json.loads(res.stdout))
    return _cached(host, "kube", query)


def kube_node(host, expect: dict, subject: str) -> str:
    node = _kube_nodes(host).get(subject)
    if node is None:
        raise Fail(f"{subject} is not a node of the cluster")
    problems = [] if node["ready"] else ["not Ready"]
    if expect["gpus"] and node["gpus"] != expect["gpus"]:
        problems.append(f"allocatable nvidia.com/gpu {node['gpus']}, {expect['gpus']} declared")
    if problems:
        raise Fail(f"{subject}: " + "; ".join(problems))
    return "Ready" + (f", nvidia.com/gpu {node['gpus']}" if expect["gpus"] else "")


# Runs on the node with python3: /v1/models, then one short completion with the first model.
HTTP_PROBE = r"""
import json, sys, urllib.request
base = sys.argv[1]
def call(path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
try:
    models = [m["id"] for m in call("/v1/models").get("data", [])]
    out = {"models": models}
    if models:
        c = call("/v1/completions", {"model": models[0], "prompt": "The capital of France is", "max_tokens": 8})
        out["text"] = (c.get("choices") or [{}])[0].get("text", "")
except Exception as e:
    out = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(out))
"""


ENDPOINT_PREFIX = "factoryctl-endpoint="  # render/slurm_inference.py: the job's comment


def first_node(nodelist: str) -> str | None:
    """The first host of a Slurm hostlist: "node[01-03],gpu7" -> "node01" (the batch script's
    first node runs the API server)."""
    head = nodelist.split(",")[0].strip()
    if not head or head in ("(null)", "n/a"):
        return None
    if "[" in head:
        prefix, rng = head.split("[", 1)
        return prefix + rng.split("]")[0].split(",")[0].split("-")[0]
    return head


def parse_endpoints(text: str, port: int) -> list[str]:
    """URLs of an inference job's running tasks from `squeue -h -o '%k|%N'` lines: the endpoint
    the batch script wrote into its comment, else the first node with the declared port."""
    out = []
    for line in text.splitlines():
        comment, _, nodes = line.strip().partition("|")
        if comment.startswith(ENDPOINT_PREFIX):
            out.append(comment[len(ENDPOINT_PREFIX):].split()[0].rstrip("/"))
        elif first_node(nodes):
            out.append(f"http://{first_node(nodes)}:{port}")
    return out


def endpoints(host, expect: dict) -> list[str]:
    """http://address:port of each running replica of a deployment. Skip where the platform
    is absent from this host; Fail when it is there and the deployment is declared but not
    running (a stopped job is what verify exists to catch)."""
    if expect["platform"] == "kubernetes":
        if not _has(host, "kubectl"):
            raise Skip("kubectl absent here: no Kubernetes cluster, nothing deployed")
        res = sh(host, f"{KUBECTL} -n {shlex.quote(expect['namespace'])} get service "
                       f"{shlex.quote(expect['service'])} -o jsonpath='{{.spec.clusterIP}}'")
        if res.rc != 0 or not res.stdout.strip():
            raise Fail(f"deployment {expect['name']} is declared but not deployed: no service "
                       f"{expect['namespace']}/{expect['service']} (run factoryctl apply)")
        return [f"http://{res.stdout.strip()}:{expect['port']}"]
    if not _has(host, "squeue"):
        raise Skip("squeue absent here: no Slurm job to reach")
    job = shlex.quote(expect["job"])
    res = sh(host, f"squeue -h -n {job} -t RUNNING -o '%k|%N'")
    if res.rc != 0:
        raise Fail(f"squeue could not list job {expect['job']}: {_why(res)}")
    urls = parse_endpoints(res.stdout, expect["port"])
    if not urls:
        other = sh(host, f"squeue -h -n {job} -o '%T %r'").stdout.strip()
        raise Fail(f"deployment {expect['name']} is declared but not running: "
                   + (f"job {expect['job']} is {other.splitlines()[0].lower()}" if other
                      else f"no Slurm job {expect['job']}") + " (run factoryctl apply to start it)")
    return urls


def _probe(host, base: str) -> str:
    res = sh(host, f"python3 -c {shlex.quote(HTTP_PROBE)} {shlex.quote(base)}")
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise Fail(f"{base}: no answer ({_why(res)})") from None
    if "error" in out:
        raise Fail(f"{base}: {out['error']}")
    if not out.get("models"):
        raise Fail(f"{base}/v1/models lists no model")
    if not out.get("text"):
        raise Fail(f"{base}: the completion returned no text")
    return f"{base}: {', '.join(out['models'])}; completion {out['text'].strip()[:40]!r}"


def inference(host, expect: dict) -> str:
    """Every running replica lists its model and completes a short prompt."""
    return "; ".join(_probe(host, base) for base in endpoints(host, expect))


# --- Prometheus ---------------------------------------------------------------------------------

PROMETHEUS_TARGETS = ("python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                      "\"http://127.0.0.1:{port}/api/v1/targets?state=active\", timeout=10).read().decode())'")


def parse_targets(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """(job, instance label) -> {"health", "lastError", "scrapeUrl"} from /api/v1/targets."""
    doc = json.loads(text)
    out = {}
    for t in (doc.get("data") or {}).get("activeTargets") or []:
        labels = t.get("labels") or {}
        out[(labels.get("job", ""), labels.get("instance", ""))] = {
            "health": t.get("health", ""), "lastError": t.get("lastError", ""), "scrapeUrl": t.get("scrapeUrl", "")}
    return out


def prometheus_target(host, expect: dict, subject: str) -> str:
    """Prometheus on this host scrapes `subject`'s exporter and finds it up (the targets API,
    prometheus.io/docs/prometheus/latest/querying/api/#targets)."""
    def read():
        res = sh(host, PROMETHEUS_TARGETS.format(port=int(expect["server_port"])))
        if res.rc != 0:
            raise Fail(f"Prometheus on port {expect['server_port']} does not answer: {_why(res)}")
        try:
            return parse_targets(res.stdout)
        except ValueError as e:
            raise Fail(f"Prometheus' targets API answered something that is not JSON: {e}") from None

    targets = _cached(host, "prometheus-targets", read)
    t = targets.get((expect["job"], subject))
    if t is None:
        raise Fail(f"Prometheus does not scrape {subject} in job {expect['job']}")
    if t["health"] != "up":
        raise Fail(f"{expect['job']} on {subject} is {t['health'] or 'unknown'}: {t['lastError'] or 'no error given'}")
    return f"{expect['job']} target {t['scrapeUrl']} up"


PROBES: dict[str, Callable[..., str]] = {
    "hostname": hostname, "packages": packages, "process": process, "port": port, "mount": mount,
    "modules": modules, "gpu_count": gpu_count, "gpu_model": gpu_model, "gpu_driver": gpu_driver,
    "nvlink": nvlink, "fabric_ports": fabric_ports, "rdma_devices": rdma_devices,
    "slurm_partition": slurm_partition, "slurm_node": slurm_node, "kube_node": kube_node,
    "inference": inference, "prometheus_target": prometheus_target, "disk_space": disk_space,
    "time_sync": time_sync, "gpu_health": gpu_health,
}
SUBJECT = {"slurm_node", "kube_node", "prometheus_target", "gpu_health"}  # probes that look at another host from where they run


def judge(host, check: dict) -> str:
    """The detail of a passing check; raises Skip or Fail."""
    if check["kind"] == "gpu_count" and check["expect"]["count"] == 0:
        raise Skip("no GPU declared")
    gate(host, check.get("needs", ""))
    probe = PROBES[check["kind"]]
    if check["kind"] in SUBJECT:
        return probe(host, check["expect"], check["host"])
    return probe(host, check["expect"])
