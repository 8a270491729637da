"""The built-in benchmark's CPU path with nothing but the standard library (no PyTorch).

Lab hosts and plain CPU nodes carry python3 but not torch. There, ``fallback_worker --mode cpu``
lands here (or ``--backend tcp`` asks for it): the same result document
(``factoryctl.bench.fallback/v1``), measured without torch:

* memory copy (the document's ``hbm`` entry, device "cpu"): ``dst[:] = src`` on two bytearrays,
  one memmove per iteration; GB/s = 2 x size / median time (read + write), as on a GPU.
* all_reduce(SUM) across ranks over TCP: a ring (reduce-scatter, then all-gather) between the
  ranks' own sockets, rendezvous through rank 0 at MASTER_ADDR:MASTER_PORT. Elements are
  unsigned 64-bit lanes; the sum of two chunks is one big-integer addition (C speed) of the
  chunks read as little-endian integers, which adds lane by lane as long as no lane carries:
  every lane holds rank+1, so a sum stays far below 2^64. Out of place, like nccl-tests: each
  iteration reduces the same input, so repeated runs never grow the values.
  busbw = algbw x 2(n-1)/n, time per size = mean over ranks of each rank's median.
* GEMM: not measured (a pure-Python matrix product measures the interpreter, not the CPU);
  the entry says so and the judge reports it as skipped.

The file only needs the standard library and fallback_worker's helpers, so both can be
copied onto a node and run with its system python3 (see factoryctl.bench.slurm_stage).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any

LANE = 8  # bytes per element (uint64)
NO_GEMM = "not measured: PyTorch is not installed here and a pure-Python GEMM would time the interpreter"


# --- connections ------------------------------------------------------------------------------


def _send_msg(sock: socket.socket, obj: Any) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int, into: memoryview | None = None) -> bytes | None:
    buf = into if into is not None else memoryview(bytearray(n))
    got = 0
    while got < n:
        k = sock.recv_into(buf[got:n], n - got)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k
    return None if into is not None else bytes(buf)


def _recv_msg(sock: socket.socket) -> Any:
    (n,) = struct.unpack("!I", _recv_exact(sock, 4))
    return json.loads(_recv_exact(sock, n))


def _connect(addr: str, port: int, deadline: float) -> socket.socket:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection((addr, port), timeout=5)
            s.settimeout(None)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError as exc:  # rank 0 not listening yet
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"cannot reach {addr}:{port}: {last}")


def _accept(server: socket.socket, deadline: float) -> socket.socket:
    server.settimeout(max(0.1, deadline - time.monotonic()))
    conn, _ = server.accept()
    conn.settimeout(None)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Group:
    """Ranks joined in a star (to rank 0: barrier, gather) and a ring (the collective)."""

    def __init__(self, rank: int, world: int, addr: str, port: int, timeout: float) -> None:
        self.rank, self.world = rank, world
        deadline = time.monotonic() + timeout
        ring_srv = socket.create_server(("", 0))
        ring_port = ring_srv.getsockname()[1]
        me = {"rank": rank, "host": socket.gethostname(), "port": ring_port}
        self.peers: list[socket.socket] = []  # rank 0: one per other rank, in rank order
        if rank == 0:
            srv = socket.create_server(("", port), reuse_port=False)
            table = {0: me}
            by_rank: dict[int, socket.socket] = {}
            while len(by_rank) < world - 1:
                conn = _accept(srv, deadline)
                info = _recv_msg(conn)
                by_rank[info["rank"]] = conn
                table[info["rank"]] = info | {"addr": conn.getpeername()[0]}
            srv.close()
            self.peers = [by_rank[r] for r in range(1, world)]
            for conn in self.peers:
                _send_msg(conn, table)
            self.table = table
        else:
            self.master = _connect(addr, port, deadline)
            _send_msg(self.master, me)
            self.table = {int(k): v for k, v in _recv_msg(self.master).items()}
        right = self.table[(rank + 1) % world]
        right_addr = addr if right["rank"] == 0 else right["addr"]
        # Connect right and accept left at the same time: with two ranks they are one peer.
        box: dict[str, socket.socket] = {}
        t = threading.Thread(target=lambda: box.__setitem__("left", _accept(ring_srv, deadline)))
        t.start()
        self.right = _connect(right_addr, right["port"], deadline)
        t.join()
        ring_srv.close()
        if "left" not in box:
            raise TimeoutError("the left neighbour never connected")
        self.left = box["left"]

    def barrier(self) -> None:
        if self.rank == 0:
            for c in self.peers:
                _recv_exact(c, 1)
            for c in self.peers:
                c.sendall(b"b")
        else:
            self.master.sendall(b"b")
            _recv_exact(self.master, 1)

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's obj on rank 0 (rank order); None elsewhere."""
        if self.rank != 0:
            _send_msg(self.master, obj)
            return None
        return [obj] + [_recv_msg(c) for c in self.peers]

    def close(self) -> None:
        for s in [self.left, self.right, *self.peers, *([self.master] if self.rank else [])]:
            try:
                s.close()
            except OSError:
                pass


# --- the collective ---------------------------------------------------------------------------


def _chunks(nbytes: int, parts: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges of `parts` lane-aligned chunks covering nbytes."""
    lanes = nbytes // LANE
    out, start = [], 0
    for i in range(parts):
        n = lanes // parts + (1 if i < lanes % parts else 0)
        out.append((start * LANE, (start + n) * LANE))
        start += n
    return out


def _exchange(g: Group, send: memoryview, recv: memoryview) -> None:
    """Send to the right neighbour while receiving as much from the left one."""
    err: list[BaseException] = []

    def push() -> None:
        try:
            g.right.sendall(send)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            err.append(exc)

    t = threading.Thread(target=push)
    t.start()
    if len(recv):
        _recv_exact(g.left, len(recv), recv)
    t.join()
    if err:
        raise err[0]


def all_reduce(g: Group, src: bytes | bytearray, dst: bytearray) -> None:
    """dst = elementwise sum over ranks of src (uint64 lanes), ring algorithm."""
    n, r = g.world, g.rank
    dst[:] = src
    if n == 1:
        return
    view = memoryview(dst)
    chunks = _chunks(len(dst), n)
    scratch = bytearray(max(e - s for s, e in chunks))
    tmp = memoryview(scratch)
    for step in range(n - 1):  # reduce-scatter: after it, rank r holds chunk (r+1) % n summed
        s_lo, s_hi = chunks[(r - step) % n]
        r_lo, r_hi = chunks[(r - step - 1) % n]
        _exchange(g, view[s_lo:s_hi], tmp[: r_hi - r_lo])
        if r_hi > r_lo:
            total = int.from_bytes(view[r_lo:r_hi], "little") + int.from_bytes(tmp[: r_hi - r_lo], "little")
            view[r_lo:r_hi] = total.to_bytes(r_hi - r_lo, "little")
    for step in range(n - 1):  # all-gather of the summed chunks
        s_lo, s_hi = chunks[(r + 1 - step) % n]
        r_lo, r_hi = chunks[(r - step) % n]
        _exchange(g, view[s_lo:s_hi], view[r_lo:r_hi])


def _lanes(value: int, nbytes: int) -> bytearray:
    return bytearray(value.to_bytes(LANE, "little") * (nbytes // LANE))


def _sizes(lo: int, hi: int, factor: int) -> list[int]:
    out, size = [], max(LANE, lo)
    while size <= hi:
        out.append(size - size % LANE)
        size *= factor
    return out


def _all_reduce_sweep(g: Group, args) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the all_reduce entry without its check, this rank's check record)."""
    world, rank = g.world, g.rank
    sizes = _sizes(args.min_bytes, args.max_bytes, args.step_factor)
    src = _lanes(rank + 1, sizes[-1])
    dst = bytearray(len(src))
    factor = 2 * (world - 1) / world
    rows = []
    for size in sizes:
        s, d = memoryview(src)[:size], bytearray(size)
        times = []
        for i in range(args.warmup + args.iters):
            g.barrier()
            t0 = time.perf_counter()
            all_reduce(g, s, d)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        medians = g.gather(statistics.median(times))
        if rank == 0:
            sec = sum(medians) / world
            algbw = size / sec / 1e9
            rows.append({"size_bytes": size, "count": size // LANE, "time_us": sec * 1e6,
                         "algbw_gbps": algbw, "busbw_gbps": algbw * factor})
    # Correctness on the largest size: every lane must read n(n+1)/2 on every rank.
    all_reduce(g, src, dst)
    want = world * (world + 1) // 2
    lanes = len(dst) // LANE
    if dst == _lanes(want, len(dst)):  # the usual case, compared at C speed
        wrong, checksum = 0, want * lanes
    else:
        values = [int.from_bytes(dst[i:i + LANE], "little") for i in range(0, len(dst), LANE)]
        wrong, checksum = sum(v != want for v in values), sum(values)
    check = {"elements": lanes, "expected_value": float(want), "wrong": wrong,
             "checksum": float(checksum)}
    entry = {"dtype": "uint64", "op": "sum", "ranks": world, "busbw_factor": factor,
             "warmup": args.warmup, "iters": args.iters, "rows": rows,
             "transport": "tcp (ring, Python standard library)"}
    return entry, check


# --- memory copy ------------------------------------------------------------------------------


def bench_copy(nbytes: int, warmup: int, iters: int) -> dict[str, Any]:
    """Host memory copy dst <- src: bytes read + written (2 x size) / median time."""
    nbytes = max(LANE, nbytes)
    src = bytearray(os.urandom(1 << 16)) * max(1, nbytes >> 16)
    dst = bytearray(len(src))
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        dst[:] = src
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"bytes": len(src), "moved_bytes": 2 * len(src), "iters": iters,
            "time_ms_median": med * 1e3, "gbps": 2 * len(src) / med / 1e9}


# --- one rank's run ---------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args, env: dict[str, Any], schema: str) -> dict[str, Any]:
    """Everything one rank measures; rank 0 returns the whole document, the others {}."""
    started = datetime.now(UTC)
    rank, world = env["rank"], env["world_size"]
    g = Group(rank, world, env["master_addr"], env["master_port"], args.timeout) if world > 1 else None
    errors: list[str] = []
    rec: dict[str, Any] = {"rank": rank, "local_rank": env["local_rank"], "host": socket.gethostname(),
                           "device": "cpu", "device_name": _cpu_name(), "threads": 1,
                           "gemm": {}, "hbm": None, "h2d": None, "d2h": None, "errors": errors}
    if "gemm" in args.tests:
        for dt in args.dtypes:
            rec["gemm"][dt] = {"dtype": dt, "skipped": NO_GEMM}
    if g:
        g.barrier()
    if "hbm" in args.tests:
        try:
            rec["hbm"] = bench_copy(args.hbm_bytes, args.warmup, args.iters)
        except Exception as exc:  # noqa: BLE001 - recorded, the other tests still run
            errors.append(f"memory copy: {type(exc).__name__}: {exc}")
    all_reduce_doc: dict[str, Any] | None = None
    check = None
    if "all_reduce" in args.tests:
        if g is None:
            all_reduce_doc = {"skipped": "world size 1: no collective to measure"}
        else:
            all_reduce_doc, check = _all_reduce_sweep(g, args)
    ranks = [rec]
    checks = [check]
    if g is not None:
        got = g.gather({"rec": rec, "check": check})
        g.barrier()
        g.close()
        if rank != 0:
            return {}
        ranks = [x["rec"] for x in got]
        checks = [x["check"] for x in got]
    if all_reduce_doc is not None and "rows" in all_reduce_doc:
        all_reduce_doc["check"] = {
            "elements": checks[0]["elements"], "expected_value": checks[0]["expected_value"],
            "wrong": sum(c["wrong"] for c in checks), "checksums": [c["checksum"] for c in checks]}
    finished = datetime.now(UTC)
    hosts = sorted({r["host"] for r in ranks})
    return {
        "schema": schema, "mode": "cpu", "backend": "tcp", "launcher": env["launcher"],
        "world_size": world, "nodes": len(hosts), "hosts": hosts,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 3),
        "versions": {"python": platform.python_version(), "torch": None, "cuda": None, "hip": None,
                     "nccl": None, "driver": None},
        "config": {"tests": args.tests, "dtypes": args.dtypes, "gemm_size": args.gemm_size,
                   "hbm_bytes": args.hbm_bytes, "host_bytes": 0, "min_bytes": args.min_bytes,
                   "max_bytes": args.max_bytes, "step_factor": args.step_factor,
                   "warmup": args.warmup, "iters": args.iters},
        "env": {},
        "ranks": ranks,
        "all_reduce": all_reduce_doc,
        "errors": [f"rank {r['rank']}: {e}" for r in ranks for e in r.get("errors", [])],
    }
