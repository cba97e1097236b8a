"""Benchmark: from a fault to an alert to a protected or healthy system, with nobody running a command.

On the sandbox, with the monitoring stack of src/tradeops_dr/monitoring.py at the documented
production intervals (Prometheus scrapes and evaluates every 5 s; the rules' own `for:` as shipped;
Alertmanager sends at once), per scenario and run:

  drawdown   risk:drawdown written at 20 % where the risk engine writes it -> TradeopsDrDrawdownBreach
             firing -> the kill switch engaged by the rulebook's run
  redis      kill -9 of Redis -> TradeopsDrRedisDown firing (for: 10 s) -> the guarded recovery admitted
             -> the incident record 'recovered' and Redis answering
  postgres   PostgreSQL stopped -> TradeopsDrPostgresDown firing (for: 10 s; the real postgres exporter)
             -> the guarded recovery admitted -> the record 'recovered' (the server started)
  wal        a QuestDB WAL table suspended with writes waiting -> TradeopsDrQuestDBWalSuspended firing
             -> the record 'recovered' (resumed; where the sandbox runs QuestDB)

Each run gets a fresh monitoring stack (the guard's hourly count starts afresh). Prints one line per
figure with its target (the runbook RTO of the component beside the recoveries); the figures are
medians over --runs. The machines are shared and noisy: read them as such.

    python bench/detect.py [--runs 1] [--interval 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from tradeops_dr import catalog, faults, monitoring
from tradeops_dr.drill import operator_resets_the_switch
from tradeops_dr.sandbox import Sandbox

RTO = {name: entry["rto"] for name, entry in catalog.load().items()}  # the runbooks' RTO per component (seconds)


def drawdown(sb, mon) -> dict:
    got = monitoring.drawdown_breach(sb, mon)
    assert operator_resets_the_switch(sb).ok
    return dict(firing=got["firing"], engaged=got["engaged"])


def redis_crash(sb, mon) -> dict:
    got = monitoring.redis_crash(sb, mon)
    assert got["record"]["status"] == "recovered" and got["answering"], got["record"]["status"]
    assert operator_resets_the_switch(sb).ok
    return dict(firing=got["firing"], started=got["started"], healthy=got["healthy"])


def _recovered(sb, mon, alertname, inject) -> dict:
    got = monitoring.recovery_scenario(mon, alertname, inject)
    assert got["record"]["status"] == "recovered", (got["record"]["status"], got["record"]["reason"])
    assert operator_resets_the_switch(sb).ok
    return dict(firing=got["firing"], started=got["started"], healthy=got["healthy"])


def postgres_stopped(sb, mon) -> dict:
    state = sb.load()
    return _recovered(sb, mon, "TradeopsDrPostgresDown", lambda: Sandbox.postgres_cluster(state).stop())


def wal_suspended(sb, mon) -> dict:
    state = sb.load()
    return _recovered(sb, mon, "TradeopsDrQuestDBWalSuspended", lambda: faults.suspend_wal(sb, state))


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
    scenarios = [("drawdown", drawdown), ("redis", redis_crash), ("postgres", postgres_stopped)]
    if sb.load().get("questdb"):
        scenarios.append(("wal", wal_suspended))
    else:
        print("wal: not measured - this sandbox runs no QuestDB (not installed here)")
    results: dict[str, list[dict]] = {name: [] for name, _scenario in scenarios}
    try:
        for n in range(args.runs):
            # interleaved: each run measures every scenario, each on its own stack
            for name, scenario in scenarios:
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
    print(f"detect_to_healthy_seconds {med('redis', 'healthy'):.1f} (target <= 45; runbook RTO {RTO['redis']})")
    print(f"postgres_stopped_to_firing_seconds {med('postgres', 'firing'):.1f} (the rule's for: 10 s)")
    print(f"postgres_detect_to_healthy_seconds {med('postgres', 'healthy'):.1f} (runbook RTO {RTO['postgres']})")
    if "wal" in results:
        print(f"wal_suspended_to_firing_seconds {med('wal', 'firing'):.1f}")
        print(f"wal_detect_to_healthy_seconds {med('wal', 'healthy'):.1f} (runbook RTO {RTO['questdb']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
