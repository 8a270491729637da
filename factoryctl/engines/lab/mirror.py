"""The lab's internal mirror: a web server on the bridge serving what the roles install.

An air-gapped site declares internal mirrors in `site.mirrors` and a model store its
deployments' `model_source` points into; its hosts reach nothing else. The lab plays both
from the control machine: one HTTP server bound to the bridge's own address (which only lab
hosts and this machine can reach) serves a folder under the lab directory:

    simple/, files/        the engine wheelhouse (PEP 503 index), from wheelhouse.py
    models/<name>/         a model folder with its SHA256SUMS, from tinymodel.py

The folder holds links into the lab cache, so publishing costs nothing and a cache rebuilt
for a new recipe is picked up by re-linking. The server is a detached process of this module
(`main()` below, started with `python -c`), recorded in mirror.json; it is stopped with the
lab's network, since without the bridge its address is gone.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import procs
from .errors import LabError

MARKER_ARG = "--factoryctl-lab-mirror"
ROOT_HEADER = "X-Factoryctl-Mirror"  # every answer names the folder served: which server it is
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class MirrorSpec:
    bind: str  # the bridge's address
    port: int
    wheelhouse: str = ""  # folder with simple/ and files/, or "" for none
    models: tuple[tuple[str, str], ...] = ()  # (name under models/, folder)


def root_of(lab_dir: Path) -> Path:
    return Path(lab_dir) / "mirror"


def _record_path(lab_dir: Path) -> Path:
    return Path(lab_dir) / "mirror.json"


def _relink(link: Path, target: str) -> None:
    if link.is_symlink() and os.readlink(link) == target:
        return
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)  # atomic: a request in flight sees the old or the new folder


def publish(lab_dir: Path, spec: MirrorSpec) -> Path:
    """Lay out the served folder as links into the cache; the folder."""
    root = root_of(lab_dir)
    (root / "models").mkdir(parents=True, exist_ok=True)
    wanted = {"simple", "files"} if spec.wheelhouse else set()
    for name in ("simple", "files"):
        link = root / name
        if name in wanted:
            _relink(link, str(Path(spec.wheelhouse) / name))
        elif link.is_symlink():
            link.unlink()
    models = dict(spec.models)
    for name, folder in models.items():
        _relink(root / "models" / name, folder)
    for old in (root / "models").iterdir():
        if old.is_symlink() and old.name not in models:
            old.unlink()
    return root


def _running(lab_dir: Path) -> dict | None:
    try:
        rec = json.loads(_record_path(lab_dir).read_text())
    except (OSError, ValueError):
        return None
    pid = rec.get("pid")
    if isinstance(pid, int) and procs.has_arg(pid, MARKER_ARG) and str(root_of(lab_dir)) in procs.cmdline(pid):
        return rec
    return None


def _answers(bind: str, port: int, root: Path) -> bool:
    """True when this lab's mirror (not whatever else holds the port) serves there."""
    try:
        with urllib.request.urlopen(f"http://{bind}:{port}/", timeout=1) as r:
            return r.headers.get(ROOT_HEADER) == str(root)
    except (OSError, ValueError):
        return False


def ensure_running(lab_dir: Path, spec: MirrorSpec) -> str:
    """Publish the folder and make sure the server runs with this address; its base URL."""
    root = publish(lab_dir, spec)
    rec = _running(lab_dir)
    if rec and (rec.get("bind"), rec.get("port")) == (spec.bind, spec.port):
        return f"http://{spec.bind}:{spec.port}/"
    if rec:
        stop(lab_dir)
    log = open(Path(lab_dir) / "mirror.log", "ab")
    try:
        proc = subprocess.Popen(
            # -c, not -m: the lab package imports this module, and running it as __main__ too
            # would load it twice (runpy's warning)
            [sys.executable, "-c", "from factoryctl.engines.lab.mirror import main; main()", MARKER_ARG,
             "--root", str(root), "--bind", spec.bind, "--port", str(spec.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(spec.bind, spec.port, root):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = (Path(lab_dir) / "mirror.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise LabError(f"the lab mirror did not start on {spec.bind}:{spec.port}: {' '.join(tail) or 'no answer'}",
                           f"free port {spec.port} on the bridge address, or declare another port in site.mirrors")
        time.sleep(0.1)
    record = {"pid": proc.pid, **asdict(spec)}
    _record_path(lab_dir).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return f"http://{spec.bind}:{spec.port}/"


def stop(lab_dir: Path) -> None:
    """Stop the lab's mirror server, if it runs. Safe to repeat."""
    rec = _running(lab_dir)
    if rec:
        pid = rec["pid"]
        procs.signal_all([pid], signal.SIGTERM)
        if not procs.wait_until(lambda: not procs.is_alive(pid), 5.0):
            procs.kill_hard([pid])
    _record_path(lab_dir).unlink(missing_ok=True)


class _Handler(SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header(ROOT_HEADER, self.directory)
        super().end_headers()

    # One line per request in mirror.log is what an operator wants; the default goes to stderr too.
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="factoryctl-lab-mirror")
    p.add_argument(MARKER_ARG, action="store_true")
    p.add_argument("--root", required=True)
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    handler = functools.partial(_Handler, directory=a.root)
    ThreadingHTTPServer.daemon_threads = True
    with ThreadingHTTPServer((a.bind, a.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
