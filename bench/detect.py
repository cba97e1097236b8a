"""Benchmark: from a fault to an alert to a protected or healthy system, with nobody running a command.

On the sandbox, with the monitoring stack of src/tradeops_dr/monitoring.py at the documented
production intervals (Prometheus scrapes and evaluates every 5 s; the rules' own `for:` as shipped;
Alertmanager sends at once), per scenario and run:

  drawdown   risk:drawdown written at 20 % where the risk engine writes it -> TradeopsDrDrawdownBreach
             firing -> the kill switch engaged by the rulebook's run
  redis      kill -9 of Redis -> TradeopsDrRedisDown firing (for: 10 s) -> the guarded recovery admitted
             -> the incident record 'recovered' and Redis answering

Each run gets a fresh monitoring stack (the rulebook throttles an alert name for 10 minutes, as it
should in production). Prints one line per figure with its target; the figures are medians over
--runs. The machines are shared and noisy: read them as such.

    python bench/detect.py [--runs 1] [--interval 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from tradeops_dr import monitoring
from tradeops_dr.drill import operator_resets_the_switch
from tradeops_dr.sandbox import Sandbox

RUNBOOK_RTO_REDIS = 300  # runbook 000 line 346: Redis restart 2-5 minutes


def drawdown(sb, mon) -> dict:
    got = monitoring.drawdown_breach(sb, mon)
    assert operator_resets_the_switch(sb).ok
    return dict(firing=got["firing"], engaged=got["engaged"])


def redis_crash(sb, mon) -> dict:
    got = monitoring.redis_crash(sb, mon)
    assert got["record"]["status"] == "recovered" and got["answering"], got["record"]["status"]
    assert operator_resets_the_switch(sb).ok
    return dict(firing=got["firing"], started=got["started"], healthy=got["healthy"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--interval", type=float, default=5.0, help="Prometheus scrape and evaluation interval (s)")
    args = ap.parse_args()
    why = monitoring.missing()
    if why:
        raise SystemExit(f"bench/detect.py: {why}")
    state = Path(tempfile.mkdtemp(prefix="tradeops-bench-detect-"))
    state.chmod(0o755)
    sb = Sandbox(state)
    sb.up()
    results: dict[str, list[dict]] = {"drawdown": [], "redis": []}
    try:
        for n in range(args.runs):
            # interleaved: each run measures both scenarios on its own stack
            for name, scenario in (("drawdown", drawdown), ("redis", redis_crash)):
                mon = monitoring.MonitoringStack(state / f"monitoring-{n}-{name}", state, interval=args.interval)
                mon.forget_automatic_runs()  # each run starts the guard's hourly count afresh
                try:
                    mon.start()
                    results[name].append(scenario(sb, mon))
                finally:
                    mon.stop()
                print(f"run {n + 1} {name}: {json.dumps({k: round(v, 1) for k, v in results[name][-1].items()})}",
                      flush=True)
    finally:
        sb.down()
        shutil.rmtree(state, ignore_errors=True)

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    print(f"interval_seconds {args.interval:g} (Prometheus scrape and evaluation; runs {args.runs})")
    print(f"drawdown_to_firing_seconds {med('drawdown', 'firing'):.1f}")
    print(f"drawdown_to_switch_engaged_seconds {med('drawdown', 'engaged'):.1f} (target <= 15)")
    print(f"redis_crash_to_firing_seconds {med('redis', 'firing'):.1f} (the rule's for: 10 s)")
    print(f"redis_crash_to_recovery_started_seconds {med('redis', 'started'):.1f}")
    print(f"detect_to_healthy_seconds {med('redis', 'healthy'):.1f} (target <= 45; runbook RTO {RUNBOOK_RTO_REDIS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
