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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# imported for what it does: the collection link, PATH, a private incidents folder (as the tests have)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import
from _runs import healthy_runs_compared, print_compared, sandbox_env  # noqa: E402  # bench/, beside this script

TARGET_CPU_RATIO = 0.97  # the callback must save at least 3 % of a whole healthy run's CPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    med = healthy_runs_compared(lambda state: {
        "with": sandbox_env(state, ANSIBLE_CALLBACKS_ENABLED="tradeops.dr.incident,tradeops.dr.lean_workers"),
        "without": sandbox_env(state, ANSIBLE_CALLBACKS_ENABLED="tradeops.dr.incident")},
        args.runs, warm_up="without", prefix="tradeops-bench-lean-")
    print_compared("lean_workers", "lean_workers", med, args.runs, TARGET_CPU_RATIO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
