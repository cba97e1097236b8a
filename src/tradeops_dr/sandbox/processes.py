"""The processes of the sandbox's servers: free ports on loopback (in this process's slice), pid
files, waiting for readiness with a deadline, processes started detached and reaped, and the
PostgreSQL binaries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import SandboxError

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)

# Servers that run in the foreground (QuestDB, the inference stand-in) are started detached and
# outlive the objects that started them; their Popen objects are kept here so that they are
# reaped when they exit and never collected (with a warning) while they still run.
_DETACHED: list = []


def kill_pidfile(pidfile: Path, sig: int, what: str, timeout: float) -> None:
    """Signal the process of a pidfile and wait until it has exited (a server of the sandbox)."""
    pid = read_pid(pidfile)
    if pid_alive(pid):
        os.kill(pid, sig)
        wait_for(lambda: (not pid_alive(pid), f"pid {pid} alive"), timeout, f"{what} pid {pid} to exit")
    reap()


def reap() -> None:
    for proc in list(_DETACHED):
        if proc.poll() is not None:
            _DETACHED.remove(proc)


def start_detached(argv: list[str], logfile: Path) -> subprocess.Popen:
    with open(os.devnull, "rb") as devnull, open(logfile, "ab") as log:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log, start_new_session=True)
    _DETACHED.append(proc)
    return proc


def port_slice() -> tuple[int, int]:
    """$TRADEOPS_DR_PORT_SLICE="I/N": this process takes only ports p with (p // 2) % N == I, so
    that several processes picking ports at once (test workers, two sandboxes) never pick the same
    one between the pick and the server's bind. (p // 2: Linux hands out ports of one parity to
    bind(), so p % 2 would leave one slice empty.) Unset: every port."""
    spec = os.environ.get("TRADEOPS_DR_PORT_SLICE", "")
    try:
        index, count = (int(x) for x in spec.split("/"))
    except ValueError:
        return 0, 1
    return (index, count) if count > 0 and 0 <= index < count else (0, 1)


def free_port(avoid=()) -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (in this process's slice)."""
    index, count = port_slice()
    for _attempt in range(100 * count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid and (port // 2) % count == index:
            return port
    raise SandboxError("no free port found on 127.0.0.1")


def free_ports(names) -> dict[str, int]:
    """A free port for each name, all different: each picked avoiding those picked before it (they are not bound
    yet, so the system could hand any of them out again)."""
    ports: dict[str, int] = {}
    for name in names:
        ports[name] = free_port(avoid=set(ports.values()))
    return ports


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_for(check, timeout: float, what: str, max_delay: float = 0.25):
    """check() -> (ok, detail) until ok, backing off from 0.05 s to `max_delay` between checks (a check is a
    connection or a request on loopback: a cap of a second lost up to a second per server start); raises
    SandboxError with the last detail at the deadline."""
    delay, deadline = 0.05, time.monotonic() + timeout
    last = None
    while True:
        ok, last = check()
        if ok:
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} not ready after {timeout}s: {last}")
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def postgres_can_reach(path: Path) -> bool:
    proc = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True,
                          check=False)
    return proc.returncode == 0


def pg_bin(name: str) -> str:
    for d in PG_BIN_DIRS:
        cand = Path(d) / name
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if not found:
        raise SandboxError(f"{name} not found: install Debian's postgresql package (make setup does)")
    return found


# --------------------------------------------------------------------------- Redis
