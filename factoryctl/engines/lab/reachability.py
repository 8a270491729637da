"""Is a host's sshd answering? A TCP connect plus the SSH banner, many hosts at once."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor


def sshd_answers(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def answering(addresses: list[str], port: int = 22, timeout: float = 1.0) -> dict[str, bool]:
    if not addresses:
        return {}
    with ThreadPoolExecutor(max_workers=min(32, len(addresses))) as pool:
        results = pool.map(lambda a: sshd_answers(a, port, timeout), addresses)
        return dict(zip(addresses, results, strict=True))


def wait_answering(addresses: list[str], timeout: float, port: int = 22) -> list[str]:
    """Poll until every address answers or timeout passes; return those still silent."""
    pending = list(addresses)
    deadline = time.monotonic() + timeout
    while pending:
        state = answering(pending, port, timeout=0.5)
        pending = [a for a in pending if not state[a]]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return pending
