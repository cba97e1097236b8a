"""STAND-IN for the users' own trading strategy (not part of the collection).

What a strategy process does that the trading-side recoveries look at, reduced to that: it
reads the price of --symbol from the exchange (through ccxt, --exchange-base pointing at the
stand-in exchange) and writes a heartbeat file {"ts", "price_ts", "price", "connected"};
every --order-every loops it places a resting LIMIT order (--order-type market: one that fills at
once) with client order id <name>-<sequence> (the sequence kept in --state); it logs to stdout. On a lost connection it
tries to reconnect 3 times ("reconnect attempt i/3"), then logs "reconnect failed ... giving
up" and stays up without prices (runbook 003 section 3: then a restart is needed). Faults a
test can ask for: --crash-after S (an exception ends it, traceback in the log),
--duplicate-on-start (a buggy restart re-sends its last client order id: refused by the exchange
while that order is open, -4116, which it logs; taken once it filled). With --health-port
it answers GET /health with {"status", "version"} (version: the VERSION file of --release-dir).
With --redis-port it honours the kill switch (policy:kill_switch enabled: no new order).

Run: python strategy.py --name momentum --exchange-base http://127.0.0.1:P --api-key K
     --heartbeat F --state S   --secret-file F
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import ccxt


def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), msg, flush=True)


def exchange(base, key, secret):
    ex = ccxt.binanceusdm(dict(apiKey=key, secret=secret, timeout=2000,
                               options=dict(fetchCurrencies=False, warnOnFetchOpenOrdersWithoutSymbol=False)))
    for k, v in ex.urls["api"].items():
        if isinstance(v, str):
            ex.urls["api"][k] = base.rstrip("/") + "/" + v.split("/", 3)[3]
    return ex


def write_json(path: Path, data: dict):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def serve_health(port, version):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = json.dumps({"status": "ok", "version": version}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def place(ex, args, price, client_id):
    """A resting LIMIT buy at price (--order-type limit), or a MARKET buy that fills at once."""
    if args.order_type == "market":
        return ex.create_order(args.symbol, "market", "buy", 0.001, params={"newClientOrderId": client_id})
    return ex.create_order(args.symbol, "limit", "buy", 0.001, price, params={"newClientOrderId": client_id})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--exchange-base", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--secret-file", type=Path, required=True)
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--heartbeat", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--order-every", type=int, default=5)
    ap.add_argument("--crash-after", type=float)
    ap.add_argument("--duplicate-on-start", action="store_true")
    ap.add_argument("--order-type", choices=["limit", "market"], default="limit")
    ap.add_argument("--health-port", type=int)
    ap.add_argument("--release-dir", type=Path)
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--redis-password-file", type=Path)
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args(argv)
    version = (args.release_dir / "VERSION").read_text().strip() if args.release_dir else "unknown"
    if args.health_port:
        serve_health(args.health_port, version)
    switch = None
    if args.redis_port:
        import redis

        switch = redis.Redis(host="127.0.0.1", port=args.redis_port, decode_responses=True,
                             password=args.redis_password_file.read_text().strip() if args.redis_password_file else None)
    ex = exchange(args.exchange_base, args.api_key, args.secret_file.read_text().strip())
    state = json.loads(args.state.read_text()) if args.state.exists() else {"seq": 0}
    log(f"strategy {args.name} {version} starting, last client order {args.name}-{state['seq']}")
    started = time.monotonic()
    loops = 0
    connected = True
    if args.duplicate_on_start and state["seq"]:
        # the bug a restart must not hide: the last order sent again under the same client id. The exchange
        # refuses it while the first is still open (-4116, DUPLICATED_CLIENT_ORDER_ID); once that one filled,
        # it takes it - and the same order is in the book twice
        last = f"{args.name}-{state['seq']}"
        try:
            place(ex, args, 1000, last)
            log(f"re-sent {last}")
        except ccxt.ExchangeError as exc:
            if "-4116" not in str(exc):
                raise
            log(f"re-sent {last}: refused by the exchange as a duplicate (-4116): the order is already open")
    price, price_ts = None, None
    while time.monotonic() - started < args.max_seconds:
        if args.crash_after is not None and time.monotonic() - started > args.crash_after:
            raise RuntimeError(f"strategy {args.name}: position manager state corrupt (injected crash)")
        if connected:
            try:
                price = float(ex.fapiPublicGetTickerPrice({"symbol": args.symbol})["price"])
                price_ts = time.time()
                loops += 1
                halted = switch is not None and switch.hget("policy:kill_switch", "enabled") == "true"
                if loops % args.order_every == 0 and not halted:
                    state["seq"] += 1
                    write_json(args.state, state)
                    place(ex, args, round(price * 0.5, 2), f"{args.name}-{state['seq']}")
            except ccxt.NetworkError as exc:
                log(f"connection lost: {type(exc).__name__}")
                connected = False
                for attempt in range(1, 4):
                    time.sleep(0.3)
                    log(f"reconnect attempt {attempt}/3")
                    try:
                        ex.fapiPublicGetPing()
                        connected = True
                        log("reconnected")
                        break
                    except ccxt.NetworkError:
                        continue
                if not connected:
                    log("reconnect failed after 3 attempts, giving up; restart needed")
        write_json(args.heartbeat, {"ts": time.time(), "price_ts": price_ts, "price": price, "connected": connected,
                                    "version": version, "pid": os.getpid()})
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
