"""Benchmark: how long the Redis recovery takes compared with the bare restart it wraps.

In one run, on the same seeded redis-server (AOF on), repeated N times after a kill -9:
  (a) bare restart: `redis-server redis.conf` until PING answers (what a runbook does);
  (b) the whole playbooks/redis_failure.yml through ansible-runner (diagnosis, AOF check,
      restart, verification of every stream and key, the recovery record).
Prints the medians, the ratio b/a, and b against the runbooks' RTO for a Redis restart
(runbook 000: 2-5 minutes). The machines are shared and noisy: read the figures as such.

    python bench/redis_recovery.py [--runs 5]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SeededRedis, write_inventory  # noqa: E402
from tradeops_dr import run_playbook  # noqa: E402


def bare_restart(r: SeededRedis) -> float:
    r.srv.kill(signal.SIGKILL)
    t0 = time.perf_counter()
    subprocess.run(r.srv.start_command(), check=True, capture_output=True)
    while not r.srv.ping()[0]:
        time.sleep(0.005)
    return time.perf_counter() - t0


def playbook_recovery(r: SeededRedis, work: Path, i: int) -> float:
    r.srv.kill(signal.SIGKILL)
    inv = write_inventory(work / f"inv-{i}.yml", r.role_vars())
    t0 = time.perf_counter()
    res = run_playbook("redis_failure.yml", inventory=str(inv), private_data_dir=str(work / f"run-{i}"))
    took = time.perf_counter() - t0
    if not res.ok:
        raise SystemExit(f"recovery failed: {res.failures}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    r = SeededRedis(work / "redis")
    try:
        bare, full = [], []
        for i in range(args.runs):  # interleaved so that machine noise hits both alike
            bare.append(bare_restart(r))
            full.append(playbook_recovery(r, work, i))
    finally:
        r.stop()
    a, b = statistics.median(bare), statistics.median(full)
    print(f"runs {args.runs}, streams {r.expected['streams']}")
    print(f"bare_restart_to_pong_s {a:.3f} (min {min(bare):.3f}, max {max(bare):.3f})")
    print(f"playbook_recovery_s {b:.3f} (min {min(full):.3f}, max {max(full):.3f}; runbook 000 RTO 120-300 s)")
    print(f"recovery_overhead_ratio {b / a:.1f} (informational: ansible-playbook start-up dominates)")
    print(f"recovery_within_rto {'yes' if b <= 120 else 'no'} (target: playbook_recovery_s <= 120)")
    return 0 if b <= 120 else 1


if __name__ == "__main__":
    raise SystemExit(main())
