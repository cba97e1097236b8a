"""Benchmark: every drill scenario on a fresh sandbox of its own, as `tradeops-dr drill all` runs it.

Prints the whole drill's wall time (sandbox start included; issue 27's target under 120 s) and each
scenario's recovery time against its objective (playbooks/vars/drill_objectives.yml; target at
most 1/20 of it). One run; the machines are shared and noisy: read the figures as such.

    python bench/drill.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# imported for what it does: the collection link, PATH, a private incidents folder (as the tests have)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tradeops_dr import drill, drill_history  # noqa: E402
from tradeops_dr.sandbox import Sandbox  # noqa: E402

TARGET_WALL_S, TARGET_FRACTION = 120.0, 1 / 20


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="tradeops-bench-drill-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    sb = Sandbox(state)
    objectives = drill_history.objectives(drill_history.require_drill_target("local"))
    steps = []
    t0 = time.perf_counter()
    try:
        sb.up()
        for _name, run, _what in drill.DRILLS:
            steps += run(sb, on_step=drill.Printer(objectives))
        wall = time.perf_counter() - t0
    finally:
        sb.down()
        shutil.rmtree(state, ignore_errors=True)
    ok = all(s.ok for s in steps) and wall < TARGET_WALL_S
    print()
    for s in steps:
        frac = s.seconds / s.objective if s.objective else float("nan")
        ok &= frac <= TARGET_FRACTION
        print(f"{s.scenario.replace(' ', '_')}_objective_fraction {frac:.4f} ({s.seconds:.2f} s of {s.objective:g} s; "
              f"target <= {TARGET_FRACTION:.2f}; the drill step {'passed' if s.ok else 'FAILED'})")
    print(f"drill_all_wall_s {wall:.1f} ({len(steps)} scenarios, sandbox start included; target < {TARGET_WALL_S:.0f})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
