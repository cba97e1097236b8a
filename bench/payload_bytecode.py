"""Benchmark: what the tests' bytecode cache for module payloads saves (issue 24; src/tradeops_dr/payload_bytecode.py).

Each module run imports ansible-core's module_utils and the collection's from the zip Ansible wrote for that run,
and zipimport compiles that source every time. scripts/test.sh gives the tests a bytecode cache for it
(TRADEOPS_DR_PAYLOAD_BYTECODE). In one run, on a sandbox of its own, a healthy `playbooks/full_recovery.yml` (every
component diagnosed, nothing to do) with the cache and without it, interleaved N times: wall time and the CPU
seconds of ansible-playbook and all it started (user + system). The first run with the cache fills it and is not
counted, as a test run's first module runs are the only ones that compile.

    python bench/payload_bytecode.py [--runs 5]
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
TARGET_CPU_RATIO = 0.9  # the cache must save at least a tenth of a whole healthy run's CPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tradeops-bench-bytecode-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    cache = state / "payload-bytecode"
    cache.mkdir(mode=0o700)
    sb = Sandbox(state)
    envs = {"without": sandbox_env(state), "with": sandbox_env(state, TRADEOPS_DR_PAYLOAD_BYTECODE=str(cache))}
    envs["without"].pop("TRADEOPS_DR_PAYLOAD_BYTECODE", None)
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in envs}
    try:
        sb.up()
        measured_run(PLAYBOOK, envs["with"])  # once before measuring: fills the cache, the sandbox's first answers
        for _round in range(args.runs):
            for name, env in envs.items():
                figures[name].append(measured_run(PLAYBOOK, env))
    finally:
        sb.down()
        shutil.rmtree(state, ignore_errors=True)
    med = medians(figures)
    print(f"runs {args.runs}; a healthy full_recovery.yml on the sandbox, with and without the payload bytecode "
          "cache, interleaved")
    for k in ("without", "with"):
        print(f"{k}_payload_bytecode_run_s {med[k][0]:.2f}")
        print(f"{k}_payload_bytecode_cpu_s {med[k][1]:.2f} (user + system, ansible-playbook and its children)")
    print(f"payload_bytecode_wall_ratio {med['with'][0] / med['without'][0]:.2f}")
    print(f"payload_bytecode_cpu_ratio {med['with'][1] / med['without'][1]:.2f} (target <= {TARGET_CPU_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
