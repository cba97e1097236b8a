"""STAND-IN for the users' own order router and broker adapters (not part of the collection).

Reads new entries of orders.validated; when the adapter named by broker:active is one of
--fills-for, it fills the order into orders.fills (order_id, qty, price, broker). An adapter
not listed (a broker that is down) fills nothing. Stops by itself after --max-seconds.

Run: python paper_broker.py --port P --fills-for zerodha --fills-for paper (password from REDISCLI_AUTH,
or --password-file: a service manager that passes no environment, as in the Molecule rehearsal)
"""

from __future__ import annotations

import argparse
import os
import time

import redis


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fills-for", action="append", default=[])
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--password-file", help="read the Redis password from this file instead of REDISCLI_AUTH")
    args = ap.parse_args(argv)
    password = os.environ.get("REDISCLI_AUTH")
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    r = redis.Redis(host="127.0.0.1", port=args.port, password=password, decode_responses=True)
    # New orders are those after the stream's last entry at start. Not "$" at every read: "$" means "after
    # the newest entry at the time of this call", so an order added between two reads (one timed out, the
    # next not yet sent - seconds on a loaded machine) was never seen, and a working failover was judged
    # unfilled and rolled back (a Molecule rehearsal under load).
    newest = r.xrevrange("orders.validated", count=1)
    cursor = newest[0][0] if newest else "0-0"
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        for _stream, entries in r.xread({"orders.validated": cursor}, block=200) or []:
            for entry_id, order in entries:
                cursor = entry_id
                active = r.get("broker:active")
                if active in args.fills_for:
                    r.xadd("orders.fills", {"order_id": order.get("order_id", ""), "qty": order.get("qty", "0"),
                                            "price": "100.0", "broker": active})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
