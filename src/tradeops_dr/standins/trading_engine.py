"""STAND-IN for the users' own trading engine (not part of the collection).

What a real engine is expected to do with the kill switch, reduced to what the tests need:
while policy:kill_switch is not enabled it sends an order to orders.validated every
--interval seconds; once it sees the switch enabled it sends no new order and acknowledges
by writing engine:<name>:ack (state, at_ms). With --silent it never acknowledges (a hung
engine); with --ignore-switch it acknowledges and keeps trading (a broken engine, which the
drill must catch). It stops by itself after --max-seconds.

Run: python trading_engine.py --port P --name momentum [--silent] (password from REDISCLI_AUTH, or
--password-file: a service manager that passes no environment, as in the Molecule rehearsal)
"""

from __future__ import annotations

import argparse
import os
import time

import redis


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--silent", action="store_true")
    ap.add_argument("--ignore-switch", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--password-file", help="read the Redis password from this file instead of REDISCLI_AUTH")
    ap.add_argument("--max-drawdown", type=float, help="engage the switch itself at this drawdown (risk:drawdown)")
    args = ap.parse_args(argv)
    password = os.environ.get("REDISCLI_AUTH")
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    r = redis.Redis(host="127.0.0.1", port=args.port, password=password, decode_responses=True)
    deadline = time.monotonic() + args.max_seconds
    acked_for = None
    n = 0
    while time.monotonic() < deadline:
        switch = r.hgetall("policy:kill_switch")
        dd = r.get("risk:drawdown")
        if args.max_drawdown is not None and dd and float(dd) >= args.max_drawdown and switch.get("enabled") != "true":
            # the engine's own risk check (runbook 004, 3.5: the kill switch auto-engages)
            ms = int(time.time() * 1000)
            r.hset("policy:kill_switch", mapping={
                "enabled": "true", "state": "halted", "reason": f"drawdown {float(dd):.2%} >= {args.max_drawdown:.2%}",
                "actor": f"engine:{args.name}", "incident": f"AUTO-{ms}", "engaged_at_ms": ms,
                "engaged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))})
            switch = r.hgetall("policy:kill_switch")
        if switch.get("enabled") == "true":
            engaged = switch.get("engaged_at_ms")
            if not args.silent and acked_for != engaged:
                ack = {"state": switch.get("state", "halted"), "at_ms": int(time.time() * 1000)}
                r.hset(f"engine:{args.name}:ack", mapping=ack)
                acked_for = engaged
            if args.ignore_switch:
                n += 1
                r.xadd("orders.validated", {"engine": args.name, "order_id": f"{args.name}-{n}", "qty": 1})
        else:
            acked_for = None
            n += 1
            r.xadd("orders.validated", {"engine": args.name, "order_id": f"{args.name}-{n}", "qty": 1})
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
