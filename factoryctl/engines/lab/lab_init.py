#!/usr/bin/python3
"""PID 1 inside a lab host (copied in as /usr/local/sbin/lab-init; runs on the host's
python3): make sure there is a host key, start sshd, then reap orphans until told to stop.
"""

import os
import signal
import subprocess
import sys
import time

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"


def stop(signum, frame):
    # Act inside the handler: a flag would never be seen, because the blocking
    # os.waitpid is retried after a handler returns (PEP 475).
    try:
        os.kill(-1, signal.SIGTERM)  # everything in this PID namespace but us
    except ProcessLookupError:
        pass
    # Give daemons up to half a second to exit cleanly, but no longer than they need.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.02)
    os._exit(0)  # PID 1 exiting makes the kernel kill whatever is left


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not os.path.exists(HOST_KEY):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", HOST_KEY])
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    rc = subprocess.run(["/usr/sbin/sshd", "-E", "/var/log/lab-sshd.log"]).returncode
    print(f"lab-init: sshd started (exit {rc})", flush=True, file=sys.stderr)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:  # nothing to reap now; orphans may come later
            time.sleep(1)


if __name__ == "__main__":
    main()
