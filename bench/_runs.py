"""What the benchmarks that compare ways of running a playbook share: the environment of a run on a sandbox, one
command or ansible-playbook run measured (its wall time and the CPU of it and everything it started), the medians of
interleaved rounds, and a healthy full_recovery.yml compared with and without something."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def healthy_runs_compared(variants: Callable[[Path], dict[str, dict]], runs: int, warm_up: str,
                          prefix: str = "tradeops-bench-") -> dict[str, tuple[float, float]]:
    """A healthy playbooks/full_recovery.yml (every component diagnosed, nothing to do) on a sandbox of its own, in
    each variant's environment (variants(state) -> {name: env}) in turn, `runs` rounds after one run of the
    `warm_up` variant (the sandbox's first answers, the page cache): {name: (median wall, median CPU)}."""
    from tradeops_dr.sandbox import Sandbox  # pylint: disable=import-outside-toplevel

    state = Path(tempfile.mkdtemp(prefix=prefix))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    envs = variants(state)
    playbook = ROOT / "playbooks" / "full_recovery.yml"
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in envs}
    sb = Sandbox(state)
    try:
        sb.up()
        measured_run(playbook, envs[warm_up])
        for _round in range(runs):
            for name, env in envs.items():
                figures[name].append(measured_run(playbook, env))
    finally:
        sb.down()
        shutil.rmtree(state, ignore_errors=True)
    return medians(figures)


def print_compared(name: str, what: str, med: dict[str, tuple[float, float]], runs: int, target: float) -> None:
    """The figures of healthy_runs_compared's "with" and "without", one a line, the CPU ratio against its target."""
    print(f"runs {runs}; a healthy full_recovery.yml on the sandbox, with and without {what}, interleaved")
    for k in ("without", "with"):
        print(f"{k}_{name}_run_s {med[k][0]:.2f}")
        print(f"{k}_{name}_cpu_s {med[k][1]:.2f} (user + system, ansible-playbook and its children)")
    print(f"{name}_wall_ratio {med['with'][0] / med['without'][0]:.2f}")
    print(f"{name}_cpu_ratio {med['with'][1] / med['without'][1]:.2f} (target <= {target})")


# the tests' caches for module payloads (scripts/test.sh sets both): a benchmark of one leaves the other out
TEST_CACHES = ("TRADEOPS_DR_PAYLOAD_BYTECODE", "TRADEOPS_DR_ANSIBALLZ_CACHE")


def compare_test_cache(doc: str, variable: str, name: str, what: str, target: float) -> int:
    """The main of a benchmark of one of the tests' caches (TEST_CACHES): a healthy full_recovery.yml without either
    cache and with `variable` naming a new 0700 folder, interleaved --runs times after one run that fills the cache
    (as a test run's first module runs are the only ones that fill it); prints print_compared's lines."""
    import argparse  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    def variants(state: Path) -> dict[str, dict]:
        cache = state / name
        cache.mkdir(mode=0o700)
        without = sandbox_env(state)
        for cached in TEST_CACHES:
            without.pop(cached, None)
        return {"without": without, "with": dict(without, **{variable: str(cache)})}

    med = healthy_runs_compared(variants, args.runs, warm_up="with", prefix=f"tradeops-bench-{name}-")
    print_compared(name, what, med, args.runs, target)
    return 0
