"""What the benchmarks that compare ways of running a playbook share: the environment of a run on a sandbox, one
command or ansible-playbook run measured (its wall time and the CPU of it and everything it started), and the
medians of interleaved rounds."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sandbox_env(state: Path, **extra: str) -> dict:
    """The environment of a run on the sandbox in state: the checkout's ansible.cfg, this venv's commands first."""
    return dict(os.environ, TRADEOPS_DR_SANDBOX=str(state), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), **extra)


def measured(argv: list[str], env: dict, timeout: float = 600) -> tuple[float, float]:
    """(wall seconds, CPU seconds of argv and everything it started and reaped, user + system) of one command run
    from the checkout; raises RuntimeError when it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(argv[-1]).name} failed (rc {out.returncode}): "
                           f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measured_run(playbook: Path | str, env: dict, inventory: str = "inventories/local") -> tuple[float, float]:
    """(wall seconds, CPU seconds of the run and its children, user + system) of one ansible-playbook run;
    raises when it failed."""
    return measured([str(BIN / "ansible-playbook"), str(playbook), "-i", inventory], env)


def medians(figures: dict[str, list[tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """{name: (median wall, median CPU)} of each variant's rounds."""
    return {k: (statistics.median(w for w, _c in v), statistics.median(c for _w, c in v)) for k, v in figures.items()}
