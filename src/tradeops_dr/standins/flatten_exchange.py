"""STAND-IN for the users' own flatten tool, on an exchange (runbook 004 3.5: hedger.py --flatten-all).

Closes every position the exchange reports with a reduce-only market order through ccxt
(--exchange-base pointing at the stand-in exchange). With --leave SYMBOL it leaves that one
open (a flatten that did not complete).

Run: python flatten_exchange.py --exchange-base http://127.0.0.1:P --api-key K --secret-file F
"""

from __future__ import annotations

import argparse
from pathlib import Path

from strategy import exchange


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchange-base", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--secret-file", type=Path, required=True)
    ap.add_argument("--leave", action="append", default=[])
    args = ap.parse_args(argv)
    ex = exchange(args.exchange_base, args.api_key, args.secret_file.read_text().strip())
    for pos in ex.fetch_positions():
        qty = float(pos.get("contracts") or 0)
        if not qty or ex.markets[pos["symbol"]]["id"] in args.leave:
            continue
        side = "sell" if pos["side"] == "long" else "buy"
        ex.create_order(pos["symbol"], "market", side, qty, params={"reduceOnly": True})
        print(f"flattened {pos['symbol']} {pos['side']} {qty}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
