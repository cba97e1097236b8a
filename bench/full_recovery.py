"""Benchmark: the front door, playbooks/full_recovery.yml, on a sandbox of its own.

In one run, repeated N times (interleaved, so that machine noise hits all figures alike):
  (a) a no-fault run: every component diagnosed, nothing to do (cron may run it hourly as a
      health check);
  (b) a combined outage: Redis killed, a table dropped, a WAL table suspended with writes
      waiting and the model file corrupted, all at once, recovered by one approved run; each
      component's own recovery time (from the run's record) is compared with its runbook RTO
      (Redis 300 s from runbook 000; database 1800 s and model 600 s from 001; QuestDB 900 s);
      and when the kill switch was engaged, from the call to recover() to the switch's flag on disk
      (Redis is down: the switch fails closed to the flag file) - the front door's probe engages it
      before ansible-playbook starts (runbook 004: protect capital first);
  (c) the fast path on the same outage (Redis killed): `tradeops-dr kill-switch engage`, from its
      start to the flag on disk, then Redis recovered and the switch reset.
Wall times are ansible-runner's whole run, ansible-playbook start-up included. The machines are
shared and noisy: read the figures as such.

    python bench/full_recovery.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# imported for what it does: the collection link, PATH, a private incidents folder (as the tests have)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tradeops_dr import faults, recover, run_playbook  # noqa: E402
from tradeops_dr.drill import operator_resets_the_switch  # noqa: E402
from tradeops_dr.recovery import recover_and_approve  # noqa: E402
from tradeops_dr.sandbox import Sandbox  # noqa: E402

# issue 27's targets: a healthy run (what an hourly cron pays) 5 s, the combined outage 20 s, the switch 1 s
TARGETS = dict(no_fault_s=5.0, outage_s=20.0, rto_fraction=1 / 20, switch_engaged_s=1.0)
BIN = Path(sys.executable).parent


class FlagWatch(threading.Thread):
    """Seconds from start() until the kill switch's flag file exists (polled every 5 ms)."""

    def __init__(self, flag: Path, limit: float = 300.0):
        super().__init__(daemon=True)
        self.flag, self.limit, self.seconds = flag, limit, None
        self.t0 = time.perf_counter()

    def run(self):
        while time.perf_counter() - self.t0 < self.limit:
            if self.flag.exists():
                self.seconds = time.perf_counter() - self.t0
                return
            time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tradeops-bench-full-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    sb = Sandbox(state)
    env = {"TRADEOPS_DR_SANDBOX": str(state)}
    no_fault, outage, per_component, rto = [], [], {}, {}
    switch_front_door, switch_fast_path = [], []
    flag = state / "kill_switch.flag"
    try:
        info = sb.up()
        names = [n for n in faults.FAULTS if n not in faults.OPTIONAL or info.get(n)]
        backup = run_playbook("backup.yml", inventory="local", envvars=env)
        if not backup.ok:
            print(f"the backup a restore needs failed: {backup.failures}", file=sys.stderr)
            return 1
        for i in range(args.runs):
            t0 = time.perf_counter()
            healthy = recover("full", inventory="local", envvars=env)
            no_fault.append(time.perf_counter() - t0)
            if healthy.status != "healthy":
                print(f"run {i}: the no-fault run ended {healthy.status}: {healthy.reason}", file=sys.stderr)
                return 1
            faults.inject(sb, names)
            watch = FlagWatch(flag)
            t0 = time.perf_counter()
            watch.start()
            # the run, then the approval of the code it printed for what waits (the restore)
            first, res = recover_and_approve("full", inventory="local", incident=f"BENCH-{i}", envvars=env)
            outage.append(time.perf_counter() - t0)
            watch.join()
            switch_front_door.append(watch.seconds if watch.seconds is not None else float("inf"))
            if res.status != "recovered":
                print(f"run {i}: the outage ended {res.status}: {res.reason}", file=sys.stderr)
                return 1
            for c in first.components + (res.components if res is not first else []):
                if c.component in names and c.before == "broken":
                    per_component.setdefault(c.component, []).append(c.seconds)
                    rto[c.component] = c.rto_seconds
            reset = operator_resets_the_switch(sb)
            if not reset.ok:
                print(f"run {i}: the kill switch reset failed: {reset.failures}", file=sys.stderr)
                return 1
            # the fast path on the same outage: Redis killed, the switch engaged by hand
            faults.inject(sb, ("redis",))
            watch = FlagWatch(flag, limit=60)
            watch.start()
            fast = subprocess.run([str(BIN / "tradeops-dr"), "kill-switch", "engage", "-i", "local", "--reason",
                                   "bench", "--actor", "bench", "--incident", f"BENCH-FP-{i}"], cwd=ROOT,
                                  env=dict(os.environ, **env), capture_output=True, text=True, timeout=120, check=False)
            watch.join()
            switch_fast_path.append(watch.seconds if watch.seconds is not None else float("inf"))
            back = recover("redis", inventory="local", envvars=env, incident=f"BENCH-FP-{i}")
            if watch.seconds is None or back.status not in ("recovered", "healthy"):
                print(f"run {i}: the fast path ({fast.returncode}: {fast.stderr[-300:]}) or Redis's recovery "
                      f"({back.status}: {back.reason}) failed", file=sys.stderr)
                return 1
            reset = operator_resets_the_switch(sb)
            if not reset.ok:
                print(f"run {i}: the kill switch reset failed: {reset.failures}", file=sys.stderr)
                return 1
    finally:
        sb.down()
        shutil.rmtree(state, ignore_errors=True)

    ok = True
    a, b = statistics.median(no_fault), statistics.median(outage)
    print(f"runs {args.runs}; faults injected at once: {', '.join(names)}")
    for name in names:
        secs = statistics.median(per_component[name])
        frac = secs / rto[name]
        ok &= frac <= TARGETS["rto_fraction"]
        print(f"{name}_recovery_s {secs:.2f} (max {max(per_component[name]):.2f}; runbook RTO {rto[name]} s)")
        print(f"{name}_rto_fraction {frac:.4f} (target <= {TARGETS['rto_fraction']:.2f})")
    ok &= b <= TARGETS["outage_s"] and a <= TARGETS["no_fault_s"]
    print(f"combined_outage_recovery_s {b:.2f} (max {max(outage):.2f}; target <= {TARGETS['outage_s']:.0f})")
    print(f"no_fault_run_s {a:.2f} (max {max(no_fault):.2f}; target <= {TARGETS['no_fault_s']:.0f})")
    front, fastp = statistics.median(switch_front_door), statistics.median(switch_fast_path)
    ok &= front <= TARGETS["switch_engaged_s"]
    print(f"fast_path_to_switch_engaged_s {fastp:.3f} (max {max(switch_fast_path):.3f}; Redis down: the flag file)")
    print(f"recover_full_to_switch_engaged_s {front:.2f} (max {max(switch_front_door):.2f}; "
          f"target <= {TARGETS['switch_engaged_s']:.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
