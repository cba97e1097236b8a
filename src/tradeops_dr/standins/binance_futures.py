"""STAND-IN for an exchange (not part of the collection): the REST shape of Binance USD-M
futures, reduced to what the trading-side recoveries use, on 127.0.0.1 only.

Endpoints (as https://fapi.binance.com and https://api.binance.com answer them; ccxt's
`binanceusdm` talks to it when its API URLs are pointed here):
  GET  /fapi/v1/ping, /fapi/v1/time, /fapi/v1/exchangeInfo, /fapi/v1/ticker/price, /fapi/v2/ticker/price
  GET  /sapi/v1/system/status                  0 normal, 1 system_maintenance
  GET  /fapi/v1/leverageBracket                signed
  GET  /fapi/v2/positionRisk, /fapi/v3/positionRisk, /fapi/v2/balance, /fapi/v3/balance   signed
  GET  /fapi/v1/openOrders, /fapi/v1/allOrders signed
  POST /fapi/v1/order                          signed; MARKET fills at the mark price, LIMIT rests
  DELETE /fapi/v1/order, /fapi/v1/allOpenOrders signed
  POST /fapi/v1/countdownCancelAll             signed; the dead-man's switch, per symbol
Signed requests carry X-MBX-APIKEY and an HMAC-SHA256 signature of the query (or body) made
with the secret, as Binance checks them: a wrong key answers -2015, a wrong signature -1022.

Test controls (no authentication, loopback only), under /_standin/:
  GET  state                                   positions, orders, countdowns, faults, request log
  POST fault {"mode": "drop"|"maintenance"|"error"|"ratelimit"|"sticky"|"none", "count": n, "paths": [prefix],
             "keep": n}
       drop: the connection is closed without an answer (n times, or until "none"); maintenance:
       system status 1, and on /fapi 503 {"code": 1, "msg": "System is under maintenance."} (what ccxt
       reads as OnMaintenance); error: 500; ratelimit: 429 with Retry-After; sticky: cancel-all answers
       as usual but leaves the first `keep` open orders of the symbol open
A new order whose newClientOrderId an open order carries is refused with -4116 (DUPLICATED_CLIENT_ORDER_ID),
as Binance does; the id of a filled or cancelled order may be sent again.
  POST positions {"BTCUSDT": {"amt": "0.5", "entry": "60000"}}   set the exchange's positions
  POST price {"BTCUSDT": "61000"}                                  set mark prices
  POST orders {"symbol": ..., "count": n, "side": "BUY", "price": ...} resting orders (setup)

Run: python binance_futures.py --port P --api-key K   (secret from STANDIN_API_SECRET, or --secret-file)
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

SYMBOLS = {"BTCUSDT": ("BTC", "60000.00"), "ETHUSDT": ("ETH", "3000.00"), "SOLUSDT": ("SOL", "150.00")}


def _ms():
    return int(time.time() * 1000)


def _market(symbol, base):
    return {
        "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


class Exchange:
    """The book of one account: positions, orders, mark prices, countdowns, faults."""

    def __init__(self, api_key, secret):
        self.api_key, self.secret = api_key, secret
        self.lock = threading.RLock()
        self.prices = {s: Decimal(p) for s, (_b, p) in SYMBOLS.items()}
        self.positions = {}          # symbol -> {"amt": Decimal, "entry": Decimal, "time": ms}
        self.orders = []             # every order ever placed, Binance's order shape
        self.countdowns = {}         # symbol -> deadline (monotonic)
        self.fault = {"mode": "none", "count": 0, "paths": []}
        self.requests = []           # (method, path, status)
        self.next_id = 1000
        self.wallet = Decimal("100000")
        threading.Thread(target=self._countdown_loop, daemon=True).start()

    # -- book ---------------------------------------------------------------------------
    def _order(self, symbol, side, otype, qty, price, client_id, reduce_only=False):
        self.next_id += 1
        now = _ms()
        return {"orderId": self.next_id, "symbol": symbol, "status": "NEW",
                "clientOrderId": client_id or "standin-%d" % self.next_id, "price": str(price or "0"),
                "avgPrice": "0", "origQty": str(qty), "executedQty": "0", "cumQuote": "0",
                "timeInForce": "GTC", "type": otype, "reduceOnly": reduce_only, "closePosition": False,
                "side": side, "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
                "priceProtect": False, "origType": otype, "time": now, "updateTime": now}

    def place(self, p):
        symbol = p.get("symbol", "")
        if symbol not in SYMBOLS:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        side, otype = p.get("side", "").upper(), p.get("type", "").upper()
        qty = Decimal(p.get("quantity", "0"))
        if side not in ("BUY", "SELL") or otype not in ("LIMIT", "MARKET") or qty <= 0:
            return 400, {"code": -1102, "msg": "Mandatory parameter was not sent, was empty/null, or malformed."}
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        with self.lock:
            client_id = p.get("newClientOrderId")
            if client_id and any(o["clientOrderId"] == client_id for o in self.open_orders()):
                # Binance refuses a client order id that an open order carries (DUPLICATED_CLIENT_ORDER_ID); a
                # filled or cancelled order's id may be sent again - and then the same id is in the book twice
                return 400, {"code": -4116, "msg": "ClientOrderId is duplicated."}
            order = self._order(symbol, side, otype, qty, p.get("price"), p.get("newClientOrderId"), reduce_only)
            if otype == "MARKET":
                mark = self.prices[symbol]
                signed = qty if side == "BUY" else -qty
                pos = self.positions.get(symbol, {"amt": Decimal(0), "entry": Decimal(0)})
                if reduce_only and (pos["amt"] == 0 or (pos["amt"] > 0) == (signed > 0)):
                    return 400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}
                if reduce_only and abs(signed) > abs(pos["amt"]):
                    signed = -pos["amt"]
                    qty = abs(signed)
                new = pos["amt"] + signed
                if pos["amt"] == 0 or (pos["amt"] > 0) == (signed > 0):
                    entry = (pos["amt"] * pos["entry"] + signed * mark) / new if new else Decimal(0)
                else:
                    if new != 0 and (new > 0) != (pos["amt"] > 0):
                        entry = mark
                    else:
                        entry = pos["entry"]
                    self.wallet += (mark - pos["entry"]) * min(abs(signed), abs(pos["amt"])) * (1 if pos["amt"] > 0 else -1)
                self.positions[symbol] = {"amt": new, "entry": entry if new else Decimal(0), "time": _ms()}
                order.update(status="FILLED", avgPrice=str(mark), executedQty=str(qty), cumQuote=str(qty * mark),
                             origQty=str(qty))
            self.orders.append(order)
            return 200, order

    def open_orders(self, symbol=None):
        return [o for o in self.orders if o["status"] == "NEW" and (symbol is None or o["symbol"] == symbol)]

    def cancel_all(self, symbol):
        with self.lock:
            # the "sticky" fault: the venue answers the cancel-all and leaves some orders open (an order being
            # matched, a venue that cancels asynchronously) - what the module's read-back must catch
            keep = int(self.fault.get("keep", 0)) if self.fault["mode"] == "sticky" else 0
            for o in self.open_orders(symbol)[keep:]:
                o["status"], o["updateTime"] = "CANCELED", _ms()

    def _countdown_loop(self):
        while True:
            time.sleep(0.05)
            with self.lock:
                now = time.monotonic()
                for symbol, deadline in list(self.countdowns.items()):
                    if now >= deadline:
                        self.cancel_all(symbol)
                        del self.countdowns[symbol]

    def position_rows(self, v3):
        rows = []
        with self.lock:
            for symbol, pos in sorted(self.positions.items()):
                if pos["amt"] == 0 and v3:
                    continue
                mark = self.prices[symbol]
                pnl = (mark - pos["entry"]) * pos["amt"]
                row = {"symbol": symbol, "positionSide": "BOTH", "positionAmt": str(pos["amt"]),
                       "entryPrice": str(pos["entry"]), "breakEvenPrice": str(pos["entry"]),
                       "markPrice": str(mark), "unRealizedProfit": str(pnl), "liquidationPrice": "0",
                       "isolatedMargin": "0", "notional": str(pos["amt"] * mark), "isolatedWallet": "0",
                       "updateTime": pos.get("time", _ms())}
                if v3:
                    row.update(initialMargin=str(abs(pos["amt"] * mark) / 10), maintMargin="0",
                               positionInitialMargin=str(abs(pos["amt"] * mark) / 10), openOrderInitialMargin="0",
                               adl=1, bidNotional="0", askNotional="0", marginAsset="USDT")
                else:
                    row.update(leverage="10", marginType="cross", maxNotionalValue="1000000", isAutoAddMargin="false")
                rows.append(row)
        return rows

    def balance_rows(self):
        with self.lock:
            pnl = sum(((self.prices[s] - p["entry"]) * p["amt"] for s, p in self.positions.items()), Decimal(0))
            return [{"accountAlias": "standin", "asset": "USDT", "balance": str(self.wallet),
                     "crossWalletBalance": str(self.wallet), "crossUnPnl": str(pnl),
                     "availableBalance": str(self.wallet + pnl), "maxWithdrawAmount": str(self.wallet),
                     "marginAvailable": True, "updateTime": _ms()}]

    def state(self):
        with self.lock:
            return {"positions": {s: {"amt": str(p["amt"]), "entry": str(p["entry"])} for s, p in self.positions.items()},
                    "prices": {s: str(p) for s, p in self.prices.items()},
                    "open_orders": self.open_orders(), "orders": list(self.orders),
                    "countdowns": {s: round(d - time.monotonic(), 3) for s, d in self.countdowns.items()},
                    "fault": dict(self.fault), "requests": list(self.requests[-500:]), "wallet": str(self.wallet)}


class Handler(BaseHTTPRequestHandler):
    server_version = "standin-binance-futures"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    @property
    def ex(self) -> Exchange:
        return self.server.exchange

    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        with self.ex.lock:
            self.ex.requests.append([self.command, urlsplit(self.path).path, status])

    def _fault(self, path):
        """Apply the injected fault; True when the request was answered (or dropped) by it."""
        f = self.ex.fault
        if f["mode"] == "none" or path.startswith("/_standin/"):
            return False
        if f["paths"] and not any(path.startswith(p) for p in f["paths"]):
            return False
        mode = f["mode"]
        if mode == "sticky":
            return False  # answered as usual; cancel_all leaves orders open
        if mode == "maintenance":
            if path == "/sapi/v1/system/status":
                self._send(200, {"status": 1, "msg": "system_maintenance"})
            else:
                # the shape ccxt's binance knows as maintenance (OnMaintenance), not -1008 (server busy)
                self._send(503, {"code": 1, "msg": "System is under maintenance."})
            return True
        with self.ex.lock:
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    f["mode"] = "none"
        if mode == "drop":
            with self.ex.lock:
                self.ex.requests.append([self.command, path, 0])
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return True
        if mode == "error":
            self._send(500, {"code": -1000, "msg": "An unknown error occured while processing the request."})
            return True
        if mode == "ratelimit":
            self._send(429, {"code": -1003, "msg": "Too many requests; current limit is 2400 requests per minute."},
                       {"Retry-After": "1"})
            return True
        return False

    def _params(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        raw = url.query if self.command in ("GET", "DELETE") or not body else body
        if url.query and body and self.command not in ("GET", "DELETE"):
            raw = url.query + "&" + body
        return url.path, raw, dict(parse_qsl(raw, keep_blank_values=True)), body

    def _signed(self, raw, params):
        if self.headers.get("X-MBX-APIKEY") != self.ex.api_key:
            self._send(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
            return False
        payload, _sep, sig = raw.rpartition("&signature=")
        good = hmac.new(self.ex.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sig or not hmac.compare_digest(sig, good):
            self._send(400, {"code": -1022, "msg": "Signature for this request is not valid."})
            return False
        if abs(int(params.get("timestamp", 0)) - _ms()) > int(params.get("recvWindow", 5000)):
            self._send(400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."})
            return False
        return True

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def do_DELETE(self):
        self._route()

    def _route(self):  # noqa: C901 - one table of endpoints
        path, raw, p, body = self._params()
        if self._fault(path):
            return
        ex, cmd = self.ex, self.command
        if path.startswith("/_standin/"):
            return self._control(path[len("/_standin/"):], body)
        public = {
            "/fapi/v1/ping": lambda: {},
            "/fapi/v1/time": lambda: {"serverTime": _ms()},
            "/fapi/v1/exchangeInfo": lambda: {"timezone": "UTC", "serverTime": _ms(), "rateLimits": [],
                                              "exchangeFilters": [], "assets": [],
                                              "symbols": [_market(s, b) for s, (b, _p) in SYMBOLS.items()]},
            "/sapi/v1/system/status": lambda: {"status": 0, "msg": "normal"},
        }
        if cmd == "GET" and path in public:
            return self._send(200, public[path]())
        if cmd == "GET" and path in ("/fapi/v1/ticker/price", "/fapi/v2/ticker/price"):
            with ex.lock:
                rows = [{"symbol": s, "price": str(v), "time": _ms()} for s, v in ex.prices.items()
                        if p.get("symbol") in (None, s)]
            if p.get("symbol") and not rows:
                return self._send(400, {"code": -1121, "msg": "Invalid symbol."})
            return self._send(200, rows[0] if p.get("symbol") else rows)
        if not self._signed(raw, p):
            return
        symbol = p.get("symbol")
        if symbol is not None and symbol not in SYMBOLS:
            return self._send(400, {"code": -1121, "msg": "Invalid symbol."})
        if cmd == "GET" and path == "/fapi/v1/leverageBracket":
            return self._send(200, [{"symbol": s, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
                 "maintMarginRatio": 0.004, "cum": 0.0}]} for s in SYMBOLS])
        if cmd == "GET" and path in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
            rows = ex.position_rows(path.startswith("/fapi/v3"))
            return self._send(200, [r for r in rows if symbol in (None, r["symbol"])])
        if cmd == "GET" and path in ("/fapi/v2/balance", "/fapi/v3/balance"):
            return self._send(200, ex.balance_rows())
        if cmd == "GET" and path in ("/fapi/v2/account", "/fapi/v3/account"):
            row = ex.balance_rows()[0]
            asset = {"asset": "USDT", "walletBalance": row["balance"], "unrealizedProfit": row["crossUnPnl"],
                     "marginBalance": row["availableBalance"], "maintMargin": "0", "initialMargin": "0",
                     "positionInitialMargin": "0", "openOrderInitialMargin": "0",
                     "crossWalletBalance": row["crossWalletBalance"], "crossUnPnl": row["crossUnPnl"],
                     "availableBalance": row["availableBalance"], "maxWithdrawAmount": row["maxWithdrawAmount"],
                     "updateTime": row["updateTime"]}
            return self._send(200, {"totalWalletBalance": row["balance"], "totalUnrealizedProfit": row["crossUnPnl"],
                                    "totalMarginBalance": row["availableBalance"],
                                    "availableBalance": row["availableBalance"],
                                    "maxWithdrawAmount": row["maxWithdrawAmount"], "assets": [asset],
                                    "positions": ex.position_rows(True)})
        if cmd == "GET" and path == "/fapi/v1/openOrders":
            return self._send(200, ex.open_orders(symbol))
        if cmd == "GET" and path == "/fapi/v1/allOrders":
            if not symbol:
                return self._send(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."})
            since = int(p.get("startTime", 0))
            with ex.lock:
                rows = [o for o in ex.orders if o["symbol"] == symbol and o["time"] >= since]
            return self._send(200, rows[-int(p.get("limit", 500)):])
        if cmd == "POST" and path == "/fapi/v1/order":
            status, answer = ex.place(p)
            return self._send(status, answer)
        if cmd == "DELETE" and path == "/fapi/v1/order":
            with ex.lock:
                for o in ex.open_orders(symbol):
                    if str(o["orderId"]) == p.get("orderId") or o["clientOrderId"] == p.get("origClientOrderId"):
                        o["status"] = "CANCELED"
                        return self._send(200, o)
            return self._send(400, {"code": -2011, "msg": "Unknown order sent."})
        if cmd == "DELETE" and path == "/fapi/v1/allOpenOrders":
            if not symbol:
                return self._send(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."})
            ex.cancel_all(symbol)
            return self._send(200, {"code": 200, "msg": "The operation of cancel all open order is done."})
        if cmd == "POST" and path == "/fapi/v1/countdownCancelAll":
            ms = int(p.get("countdownTime", -1))
            if not symbol or ms < 0:
                return self._send(400, {"code": -1102, "msg": "Mandatory parameter was not sent."})
            with ex.lock:
                if ms == 0:
                    ex.countdowns.pop(symbol, None)
                else:
                    ex.countdowns[symbol] = time.monotonic() + ms / 1000.0
            return self._send(200, {"symbol": symbol, "countdownTime": str(ms)})
        return self._send(404, {"code": -5000, "msg": "Path %s, Method %s is invalid" % (path, cmd)})

    def _control(self, what, body):
        ex = self.ex
        data = json.loads(body or "{}")
        with ex.lock:
            if what == "state":
                return self._send(200, ex.state())
            if what == "fault":
                ex.fault = {"mode": data.get("mode", "none"), "count": int(data.get("count", 0)),
                            "paths": list(data.get("paths", [])), "keep": int(data.get("keep", 0))}
            elif what == "positions":
                for s, v in data.items():
                    ex.positions[s] = {"amt": Decimal(str(v["amt"])), "entry": Decimal(str(v["entry"])), "time": _ms()}
            elif what == "price":
                for s, v in data.items():
                    ex.prices[s] = Decimal(str(v))
            elif what == "orders":
                for i in range(int(data.get("count", 1))):
                    o = ex._order(data["symbol"], data.get("side", "BUY"), "LIMIT", Decimal(str(data.get("qty", "0.01"))),
                                  data.get("price", "1000"), "%s-%d" % (data.get("prefix", "setup"), ex.next_id + 1))
                    ex.orders.append(o)
            else:
                return self._send(404, {"error": what})
        return self._send(200, ex.state())


def serve(port=0, api_key="standin-key", secret="standin-secret"):
    """Start the stand-in in a thread on 127.0.0.1; returns the server (server_address, shutdown())."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.exchange = Exchange(api_key, secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--max-seconds", type=float, default=3600)
    ap.add_argument("--secret-file", help="read the API secret from this file instead of STANDIN_API_SECRET")
    args = ap.parse_args(argv)
    secret = os.environ.get("STANDIN_API_SECRET")
    if args.secret_file:
        with open(args.secret_file, encoding="utf-8") as fh:
            secret = fh.read().strip()
    server = serve(args.port, args.api_key, secret)
    time.sleep(args.max_seconds)
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
