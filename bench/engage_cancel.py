"""Benchmark: from the kill switch's engage to every open order cancelled on the exchange.

In one run, against one real redis-server and the Binance USD-M futures stand-in
(src/tradeops_dr/standins/binance_futures.py, on 127.0.0.1) holding --orders resting orders over three
symbols, repeated --runs times (medians printed):
  (a) the floor: a script that cancels every open order through ccxt directly (process start
      to the last order cancelled on the exchange);
  (b) `ansible-playbook playbooks/kill_switch.yml -e kill_switch_action=engage` with
      kill_switch_exchange set: from the switch set in Redis (its engaged_at_ms) to the last
      order cancelled (the exchange's update time of the order), and from the playbook's start.
Targets: engage -> every order cancelled at most 2 s, playbook start -> every order cancelled at
most 10 s (median). The machines are shared and noisy: read the figures as such.

    python bench/engage_cancel.py [--runs 5] [--orders 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SeededRedis, StandinExchange  # noqa: E402

BIN = Path(sys.executable).parent
DIRECT = """
import sys, ccxt
ex = ccxt.binanceusdm(dict(apiKey=sys.argv[2], secret=sys.argv[3], enableRateLimit=False, options=dict(fetchCurrencies=False,
                      warnOnFetchOpenOrdersWithoutSymbol=False)))
for k, v in ex.urls["api"].items():
    if isinstance(v, str):
        ex.urls["api"][k] = sys.argv[1] + "/" + v.split("/", 3)[3]
ex.load_markets()
for s in sorted({o["symbol"] for o in ex.fetch_open_orders()}):
    ex.cancel_all_orders(s)
"""


def _place(exchange: StandinExchange, n: int) -> None:
    for i, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        exchange.control("orders", {"symbol": symbol, "count": n // 3 + (1 if i < n % 3 else 0), "price": "100"})


def _last_cancel_ms(exchange: StandinExchange) -> int:
    state = exchange.state()
    if state["open_orders"]:
        raise SystemExit(f"{len(state['open_orders'])} order(s) still open")
    return max(o["updateTime"] for o in state["orders"] if o["status"] == "CANCELED")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--orders", type=int, default=60)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-cancel-"))
    redis = SeededRedis(tmp / "redis")
    exchange = StandinExchange()
    direct, engage_to, start_to = [], [], []
    try:
        inv = tmp / "inventory.yml"
        inv.write_text(yaml.safe_dump({"all": {"children": {"kill_switch": {"hosts": {"desk": dict(
            ansible_connection="local", ansible_python_interpreter=sys.executable,
            kill_switch_redis_port=redis.port, kill_switch_redis_password=redis.srv.password,
            kill_switch_flag_file=str(tmp / "ks.flag"),
            kill_switch_exchange=exchange.params())}}}}}))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), TRADEOPS_DR_INCIDENTS_DIR=str(tmp / "inc"))
        for _run in range(args.runs):
            _place(exchange, args.orders)
            t0 = time.time()
            subprocess.run([sys.executable, "-c", DIRECT, exchange.base, exchange.api_key, exchange.secret], check=True)
            direct.append(_last_cancel_ms(exchange) / 1000 - t0)

            _place(exchange, args.orders)
            with redis.client() as c:
                c.delete("policy:kill_switch")
            t0 = time.time()
            proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), str(ROOT / "playbooks" / "kill_switch.yml"),
                                   "-e", "kill_switch_action=engage", "-e", "kill_switch_reason=bench",
                                   "-e", "kill_switch_actor=bench"], env=env, cwd=ROOT, capture_output=True, text=True,
                                  check=False)
            if proc.returncode:
                raise SystemExit(f"engage failed: {proc.stdout[-1500:]}")
            last = _last_cancel_ms(exchange)
            with redis.client() as c:
                engaged_ms = int(c.hget("policy:kill_switch", "engaged_at_ms"))
            engage_to.append((last - engaged_ms) / 1000)
            start_to.append(last / 1000 - t0)
    finally:
        exchange.stop()
        redis.stop()
    med = statistics.median
    print(json.dumps(dict(runs=args.runs, orders=args.orders, direct=direct, engage_to_cancelled=engage_to,
                          playbook_start_to_cancelled=start_to), indent=1))
    print(f"direct_ccxt_cancel_s {med(direct):.2f} (the floor: a script cancelling through ccxt)")
    print(f"engage_to_cancelled_s {med(engage_to):.2f} (target <= 2.0)")
    print(f"playbook_start_to_cancelled_s {med(start_to):.2f} (target <= 10.0)")
    print(f"engage_over_direct_ratio {med(engage_to) / med(direct):.2f}")
    return 0 if med(engage_to) <= 2.0 and med(start_to) <= 10.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
