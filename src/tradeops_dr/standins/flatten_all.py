"""STAND-IN for the users' own flatten tool (runbook 004: hedger.py --flatten-all).

Closes every position it finds in positions:* by sending the opposite order through the
paper broker: a fill in orders.fills, and the position's qty set to 0. With --leave SYMBOL it
leaves that one open (a flatten that did not complete).

Run: python flatten_all.py --port P [--leave SYMBOL] (password from REDISCLI_AUTH)
"""

from __future__ import annotations

import argparse
import os

import redis


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--leave", action="append", default=[])
    args = ap.parse_args(argv)
    r = redis.Redis(host="127.0.0.1", port=args.port, password=os.environ.get("REDISCLI_AUTH"), decode_responses=True)
    for key in r.scan_iter(match="positions:*"):
        symbol = key.split(":", 1)[1]
        qty = float(r.hget(key, "qty") or 0)
        if not qty or symbol in args.leave:
            continue
        r.xadd("orders.fills", {"symbol": symbol, "qty": -qty, "reason": "flatten-all"})
        r.hset(key, "qty", 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
