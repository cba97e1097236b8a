"""STAND-IN for an exchange (not part of the collection): the REST shape of Kraken spot, reduced to what the
exchange modules use, on 127.0.0.1 only - the venue whose dead-man's switch is ccxt's unified
cancelAllOrdersAfter (one timer for the whole account), where Binance's stand-in has a timer per symbol.

Endpoints (as https://api.kraken.com answers them; ccxt's `kraken` talks to it when its API URLs are pointed here).
Every answer is {"error": [...], "result": ...}; a refusal is a string in `error` ("EAPI:Invalid key"), which is how
ccxt sorts it:
  GET  /0/public/Time, /0/public/SystemStatus ("online" | "maintenance" | "cancel_only"), /0/public/Assets,
       /0/public/AssetPairs
  POST /0/private/Balance, /0/private/BalanceEx, /0/private/OpenPositions (no margin positions), /0/private/OpenOrders
  POST /0/private/AddOrder                   limit orders rest; market orders fill at once at the pair's price
  POST /0/private/CancelOrder (txid), /0/private/CancelAll (every open order of the account: Kraken's cancel-all
       takes no pair)
  POST /0/private/CancelAllOrdersAfter       {timeout: seconds, 0 disarms, at most 86400}: when it runs out every
       open order is cancelled and the timer stays off until armed again
Private requests carry API-Key and API-Sign = base64(HMAC-SHA512(path + SHA256(nonce + body), base64decode(secret)))
and a nonce above the key's last one, as Kraken checks them: a wrong key answers "EAPI:Invalid key", a wrong signature
"EAPI:Invalid signature", a nonce not above the last "EAPI:Invalid nonce".

Test controls (no authentication, loopback only), under /_standin/:
  GET  state                                   orders, timer, faults, request log
  POST fault {"mode": "maintenance"|"cancel_only"|"sticky"|"drop"|"none", "keep": n}
       maintenance: system status "maintenance" and every private call "EService:Unavailable" (Kraken's answer while
       it is down); cancel_only: status "cancel_only", new orders "EService:Market in cancel_only mode", cancels go
       through; sticky: CancelAll answers as usual but leaves the first `keep` open orders open; drop: the connection
       is closed without an answer
  POST orders {"pair": "XBTUSD", "count": n, "side": "buy", "price": "50000"}   resting orders (setup)

Run: python kraken_spot.py --port P --api-key K   (secret, base64, from STANDIN_API_SECRET)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# pair id -> (altname, wsname, base id, quote id, price)
PAIRS = {"XXBTZUSD": ("XBTUSD", "XBT/USD", "XXBT", "ZUSD", "60000.0"),
         "XETHZUSD": ("ETHUSD", "ETH/USD", "XETH", "ZUSD", "3000.00")}
ASSETS = {"XXBT": ("XBT", 10, 5), "XETH": ("ETH", 10, 5), "ZUSD": ("USD", 4, 2)}


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Exchange:
    """One account: open and closed orders, balances, the cancel-all-after timer, faults."""

    def __init__(self, api_key, secret):
        self.api_key, self.secret = api_key, secret
        self.lock = threading.RLock()
        self.orders = {}                 # txid -> Kraken's order shape plus "pair"
        self.timer = None                # monotonic deadline of CancelAllOrdersAfter, or None
        self.last_nonce = 0
        self.fault = {"mode": "none", "keep": 0}
        self.requests = []               # [method, path, first error or ""]
        self.balance = {"ZUSD": Decimal("100000"), "XXBT": Decimal("1.5"), "XETH": Decimal("10")}
        self.next_id = 0
        threading.Thread(target=self._timer_loop, daemon=True).start()

    def _txid(self):
        self.next_id += 1
        raw = "%016X" % (0x5A5A5A5A00000000 + self.next_id)
        return "O%s-%s-%s" % (raw[:5], raw[5:10], raw[10:16])

    def add(self, pair_name, side, otype, volume, price=None, cl_ord_id=None):
        pair = next((p for p, v in PAIRS.items() if pair_name in (p, v[0], v[1])), None)
        if pair is None:
            return ["EQuery:Unknown asset pair"], None
        if side not in ("buy", "sell") or otype not in ("limit", "market") or Decimal(volume) <= 0 \
                or (otype == "limit" and not price):
            return ["EGeneral:Invalid arguments"], None
        alt = PAIRS[pair][0]
        price = price if otype == "limit" else None
        txid = self._txid()
        desc = "%s %s %s @ %s" % (side, volume, alt, "limit %s" % price if price else "market")
        order = {"refid": None, "userref": 0, "cl_ord_id": cl_ord_id, "status": "open", "opentm": time.time(),
                 "starttm": 0, "expiretm": 0,
                 "descr": {"pair": alt, "type": side, "ordertype": otype, "price": price or "0", "price2": "0",
                           "leverage": "none", "order": desc, "close": ""},
                 "vol": str(volume), "vol_exec": "0.00000000", "cost": "0.00000", "fee": "0.00000",
                 "price": "0.00000", "stopprice": "0.00000", "limitprice": "0.00000", "misc": "", "oflags": "fciq"}
        if otype == "market":
            fill = Decimal(PAIRS[pair][4])
            order.update(status="closed", closetm=time.time(), vol_exec=str(volume), price=str(fill),
                         cost=str(fill * Decimal(volume)))
        self.orders[txid] = order
        return [], {"descr": {"order": desc}, "txid": [txid]}

    def open_orders(self):
        return {t: o for t, o in self.orders.items() if o["status"] == "open"}

    def cancel(self, txids):
        for t in txids:
            self.orders[t].update(status="canceled", closetm=time.time())
        return len(txids)

    def cancel_all(self, keep=0):
        return self.cancel(list(self.open_orders())[keep:])

    def _timer_loop(self):
        while True:
            time.sleep(0.05)
            with self.lock:
                if self.timer is not None and time.monotonic() >= self.timer:
                    self.cancel_all()
                    self.timer = None  # Kraken: the timer stays off until it is armed again

    def state(self):
        with self.lock:
            return {"open_orders": self.open_orders(), "orders": dict(self.orders),
                    "timer": None if self.timer is None else round(self.timer - time.monotonic(), 3),
                    "fault": dict(self.fault), "requests": list(self.requests[-500:])}


class Handler(BaseHTTPRequestHandler):
    server_version = "standin-kraken-spot"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    @property
    def ex(self) -> Exchange:
        return self.server.exchange

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, error=None, result=None, status=200):
        """Kraken's answer: {"error": [...]} and, without an error, "result"; kept in the request log."""
        body = {"error": list(error or [])}
        if not error:
            body["result"] = result
        self._json(status, body)
        with self.ex.lock:
            self.ex.requests.append([self.command, urlsplit(self.path).path, (error or [""])[0]])

    def do_GET(self):  # noqa: N802 - http.server's name
        self._route()

    def do_POST(self):  # noqa: N802 - http.server's name
        self._route()

    def _signed(self, path, body, params):
        ex = self.ex
        if self.headers.get("API-Key") != ex.api_key:
            return "EAPI:Invalid key"
        nonce = params.get("nonce", "")
        digest = hashlib.sha256((nonce + body).encode()).digest()
        good = base64.b64encode(hmac.new(base64.b64decode(ex.secret), path.encode() + digest,
                                         hashlib.sha512).digest()).decode()
        if not hmac.compare_digest(self.headers.get("API-Sign", ""), good):
            return "EAPI:Invalid signature"
        with ex.lock:
            if not nonce.isdigit() or int(nonce) <= ex.last_nonce:
                return "EAPI:Invalid nonce"
            ex.last_nonce = int(nonce)
        return None

    def _route(self):  # noqa: C901 - one table of endpoints
        url = urlsplit(self.path)
        path = url.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        ex = self.ex
        if path.startswith("/_standin/"):
            return self._control(path[len("/_standin/"):], body)
        mode = ex.fault["mode"]
        if mode == "drop":
            with ex.lock:
                ex.requests.append([self.command, path, "dropped"])
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return None
        if self.command == "GET" and path.startswith("/0/public/"):
            return self._public(path[len("/0/public/"):])
        if self.command != "POST" or not path.startswith("/0/private/"):
            return self._send(["EGeneral:Unknown method"])
        params = dict(parse_qsl(body, keep_blank_values=True))
        refused = self._signed(path, body, params)
        if refused:
            return self._send([refused])
        if mode == "maintenance":
            return self._send(["EService:Unavailable"])
        what = path[len("/0/private/"):]
        with ex.lock:
            if what == "Balance":
                return self._send(result={k: "%.4f" % v for k, v in ex.balance.items()})
            if what == "BalanceEx":
                return self._send(result={k: {"balance": "%.4f" % v, "hold_trade": "0.0000"}
                                          for k, v in ex.balance.items()})
            if what == "OpenPositions":
                # no margin positions on this account; consolidated by market (what ccxt asks) the answer is a list
                return self._send(result=[] if params.get("consolidation") == "market" else {})
            if what == "OpenOrders":
                return self._send(result={"open": ex.open_orders()})
            if what == "AddOrder":
                if mode == "cancel_only":
                    return self._send(["EService:Market in cancel_only mode"])
                error, result = ex.add(params.get("pair", ""), params.get("type", ""), params.get("ordertype", ""),
                                       params.get("volume", "0"), params.get("price"), params.get("cl_ord_id"))
                return self._send(error, result)
            if what == "CancelOrder":
                txid = params.get("txid", "")
                if txid not in ex.open_orders():
                    return self._send(["EOrder:Unknown order"])
                return self._send(result={"count": ex.cancel([txid])})
            if what == "CancelAll":
                keep = ex.fault.get("keep", 0) if mode == "sticky" else 0
                return self._send(result={"count": ex.cancel_all(keep)})
            if what == "CancelAllOrdersAfter":
                timeout = params.get("timeout", "")
                if not timeout.isdigit() or int(timeout) > 86400:
                    return self._send(["EGeneral:Invalid arguments"])
                now = time.time()
                ex.timer = time.monotonic() + int(timeout) if int(timeout) else None
                return self._send(result={"currentTime": _iso(now),
                                          "triggerTime": _iso(now + int(timeout)) if int(timeout) else "0"})
        return self._send(["EGeneral:Unknown method"])

    def _public(self, what):
        status = {"maintenance": "maintenance", "cancel_only": "cancel_only"}.get(self.ex.fault["mode"], "online")
        if what == "Time":
            now = time.time()
            return self._send(result={"unixtime": int(now), "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000",
                                                                                     time.gmtime(now))})
        if what == "SystemStatus":
            return self._send(result={"status": status, "timestamp": _iso(time.time())})
        if what == "Assets":
            return self._send(result={a: {"aclass": "currency", "altname": alt, "decimals": dec,
                                          "display_decimals": disp, "status": "enabled"}
                                      for a, (alt, dec, disp) in ASSETS.items()})
        if what == "AssetPairs":
            return self._send(result={p: {"altname": alt, "wsname": ws, "aclass_base": "currency", "base": base,
                                          "aclass_quote": "currency", "quote": quote, "lot": "unit",
                                          "cost_decimals": 5, "pair_decimals": 1 if base == "XXBT" else 2,
                                          "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [],
                                          "leverage_sell": [], "fees": [[0, 0.4]], "fees_maker": [[0, 0.25]],
                                          "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                                          "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1",
                                          "status": "online"}
                                      for p, (alt, ws, base, quote, _price) in PAIRS.items()})
        return self._send(["EGeneral:Unknown method"])

    def _control(self, what, body):
        ex = self.ex
        data = json.loads(body or "{}") if self.command == "POST" else {}
        with ex.lock:
            if what == "fault":
                ex.fault = {"mode": data.get("mode", "none"), "keep": int(data.get("keep", 0))}
            elif what == "orders":
                for _i in range(int(data.get("count", 1))):
                    ex.add(data.get("pair", "XBTUSD"), data.get("side", "buy"), "limit", data.get("volume", "0.01"),
                           data.get("price", "50000.0"), data.get("cl_ord_id"))
            elif what != "state":
                return self._json(404, {"error": what})
            state = ex.state()
        return self._json(200, state)


def serve(port=0, api_key="standin-key", secret=None):
    """Start the stand-in in a thread on 127.0.0.1; returns the server (server_address, shutdown()). The secret is
    base64, as Kraken's are."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.exchange = Exchange(api_key, secret or base64.b64encode(os.urandom(32)).decode())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args(argv)
    server = serve(args.port, args.api_key, os.environ.get("STANDIN_API_SECRET"))
    time.sleep(args.max_seconds)
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
