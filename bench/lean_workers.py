"""Benchmark: what the lean_workers callback saves (issues 24 and 27).

Every task runs in a worker process forked from the controller; the callback freezes, in each
worker right after the fork, the objects it inherited, so that the worker's garbage collector
does not walk the controller's whole heap again. In one run, on a sandbox of its own, a healthy
`playbooks/full_recovery.yml` (every component diagnosed, nothing to do) with the callback and
without it (`ANSIBLE_CALLBACKS_ENABLED` without it; the incident callback in both), interleaved
N times: wall time and the CPU seconds of ansible-playbook and all it started (user + system).

    python bench/lean_workers.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# imported for what it does: the collection link, PATH, a private incidents folder (as the tests have)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tradeops_dr.sandbox import Sandbox  # noqa: E402
from _runs import measured_run, medians, sandbox_env  # noqa: E402  # bench/, beside this script

PLAYBOOK = ROOT / "playbooks" / "full_recovery.yml"
TARGET_CPU_RATIO = 0.97  # the callback must save at least 3 % of a whole healthy run's CPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tradeops-bench-lean-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    sb = Sandbox(state)
    envs = {"with": sandbox_env(state, ANSIBLE_CALLBACKS_ENABLED="tradeops.dr.incident,tradeops.dr.lean_workers"),
            "without": sandbox_env(state, ANSIBLE_CALLBACKS_ENABLED="tradeops.dr.incident")}
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in envs}
    try:
        sb.up()
        measured_run(PLAYBOOK, envs["without"])  # once before measuring: the sandbox's first answers, the page cache
        for _round in range(args.runs):
            for name, env in envs.items():
                figures[name].append(measured_run(PLAYBOOK, env))
    finally:
        sb.down()
        shutil.rmtree(state, ignore_errors=True)
    med = medians(figures)
    print(f"runs {args.runs}; a healthy full_recovery.yml on the sandbox, with and without lean_workers, interleaved")
    for k in ("without", "with"):
        print(f"{k}_lean_workers_run_s {med[k][0]:.2f}")
        print(f"{k}_lean_workers_cpu_s {med[k][1]:.2f} (user + system, ansible-playbook and its children)")
    print(f"lean_workers_wall_ratio {med['with'][0] / med['without'][0]:.2f}")
    print(f"lean_workers_cpu_ratio {med['with'][1] / med['without'][1]:.2f} (target <= {TARGET_CPU_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
