"""STAND-IN for the users' own portfolio management system (not part of the collection): the PMS of
runbook 000 ("Macro Fund PMS"), reduced to the endpoints its scenarios 3 (incorrect position) and 4
(incorrect mark-to-market) call, with its book and Decision Journal kept in a real PostgreSQL database.

Served on 127.0.0.1, JSON in and out, errors as a FastAPI application answers them ({"detail": ...};
404 unknown, 409 a state conflict, 422 a body that does not validate, 401 without the bearer token when
--token-file is given):
  GET  /health                                  {"status": "healthy", "database": "connected"} or 503
  GET  /api/v1/pms/book/positions[?status=OPEN|CLOSED]   {"positions": [...]}
  GET  /api/v1/pms/book/positions/{id}
  POST /api/v1/pms/book/positions/{id}/close    {"exit_price", "notes"}: realized_pnl = direction x size x
                                                (exit - entry) - fees; 409 when it is not OPEN
  POST /api/v1/pms/book/positions/open          {"instrument", "size", "direction", "entry_price", "notes"} (201)
  POST /api/v1/pms/book/mtm                     {"manual_prices": {instrument: price}}: marks every OPEN position
                                                at its override, else at the newest feed price in pms_prices;
                                                instruments with neither stay as they were ("unpriced")
  GET  /api/v1/pms/book/summary                 {"realized_pnl", "unrealized_pnl", "total_pnl", "open_positions"}
  GET  /api/v1/pms/journal[?entry_type=&related_position_id=]   {"entries": [...]}
  POST /api/v1/pms/journal                      {"entry_type", "content", "related_position_id", "metadata"} (201)
Nothing is ever deleted or rewritten except a position's close and its marks, as the runbook's immutability
rule says. The tables are created when missing (pms_positions, pms_journal, pms_prices).

Run: python pms.py --port P --pidfile F --pg-port N --pg-user U --pg-password-file F --database D [--token-file F] [--max-seconds S]
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import threading
import time
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import psycopg2.extras

SCHEMA = """
CREATE TABLE IF NOT EXISTS pms_positions (
    id bigserial PRIMARY KEY,
    instrument text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('LONG', 'SHORT')),
    size numeric NOT NULL CHECK (size > 0),
    entry_price numeric NOT NULL CHECK (entry_price > 0),
    current_price numeric,
    fees numeric NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED')),
    exit_price numeric,
    realized_pnl numeric NOT NULL DEFAULT 0,
    notes text NOT NULL DEFAULT '',
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    marked_at timestamptz);
CREATE TABLE IF NOT EXISTS pms_journal (
    id bigserial PRIMARY KEY,
    entry_type text NOT NULL,
    content text NOT NULL,
    related_position_id bigint REFERENCES pms_positions (id),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS pms_prices (
    id bigserial PRIMARY KEY,
    instrument text NOT NULL,
    price numeric NOT NULL CHECK (price > 0),
    source text NOT NULL,
    ts timestamptz NOT NULL DEFAULT now());
"""
ENTRY_TYPES = ("incident", "correction", "decision", "note")


class Problem(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _num(body, field, positive=True):
    if field not in body or body[field] is None:
        raise Problem(422, [{"loc": ["body", field], "msg": "field required", "type": "value_error.missing"}])
    try:
        value = Decimal(str(body[field]))
    except InvalidOperation:
        raise Problem(422, [{"loc": ["body", field], "msg": "value is not a valid decimal",
                             "type": "type_error.decimal"}]) from None
    if positive and value <= 0:
        raise Problem(422, [{"loc": ["body", field], "msg": "ensure this value is greater than 0",
                             "type": "value_error.number.not_gt"}])
    return value


def _position(row) -> dict:
    p = dict(row)
    sign = 1 if p["direction"] == "LONG" else -1
    p["unrealized_pnl"] = (float(sign * p["size"] * (p["current_price"] - p["entry_price"]))
                           if p["status"] == "OPEN" and p["current_price"] is not None else 0.0)
    for key in ("size", "entry_price", "current_price", "fees", "exit_price", "realized_pnl"):
        p[key] = None if p[key] is None else float(p[key])
    for key in ("opened_at", "closed_at", "marked_at"):
        p[key] = p[key].isoformat() if p[key] else None
    return p


class Book:
    """The book and the journal in PostgreSQL: one connection per request (the stand-in serves a few)."""

    def __init__(self, dsn: dict):
        self.dsn = dsn

    def run(self, fn, *args):
        conn = psycopg2.connect(**self.dsn, cursor_factory=psycopg2.extras.RealDictCursor)
        try:
            with conn, conn.cursor() as cur:
                return fn(cur, *args)
        finally:
            conn.close()

    @staticmethod
    def create(cur):
        cur.execute(SCHEMA)

    @staticmethod
    def health(cur):
        cur.execute("SELECT 1 AS ok")
        return {"status": "healthy", "database": "connected"}

    @staticmethod
    def positions(cur, status):
        if status and status not in ("OPEN", "CLOSED"):
            raise Problem(422, [{"loc": ["query", "status"], "msg": "must be OPEN or CLOSED", "type": "value_error"}])
        cur.execute("SELECT * FROM pms_positions" + (" WHERE status = %s" if status else "") + " ORDER BY id",
                    (status,) if status else None)
        return {"positions": [_position(r) for r in cur.fetchall()]}

    @staticmethod
    def get(cur, pid, lock=False):
        cur.execute("SELECT * FROM pms_positions WHERE id = %s" + (" FOR UPDATE" if lock else ""), (pid,))
        row = cur.fetchone()
        if row is None:
            raise Problem(404, "Position not found")
        return row

    def position(self, cur, pid):
        return _position(self.get(cur, pid))

    def close(self, cur, pid, body):
        exit_price = _num(body, "exit_price")
        row = self.get(cur, pid, lock=True)
        if row["status"] != "OPEN":
            raise Problem(409, f"Position {pid} is already closed")
        sign = 1 if row["direction"] == "LONG" else -1
        realized = sign * row["size"] * (exit_price - row["entry_price"]) - row["fees"]
        notes = (row["notes"] + "\n" if row["notes"] else "") + str(body.get("notes") or "")
        cur.execute("UPDATE pms_positions SET status = 'CLOSED', exit_price = %s, realized_pnl = %s, notes = %s,"
                    " closed_at = now() WHERE id = %s RETURNING *", (exit_price, realized, notes, pid))
        return _position(cur.fetchone())

    @staticmethod
    def open(cur, body):
        size, entry = _num(body, "size"), _num(body, "entry_price")
        direction = str(body.get("direction") or "").upper()
        if direction not in ("LONG", "SHORT"):
            raise Problem(422, [{"loc": ["body", "direction"], "msg": "must be LONG or SHORT", "type": "value_error"}])
        instrument = str(body.get("instrument") or "").strip()
        if not instrument:
            raise Problem(422, [{"loc": ["body", "instrument"], "msg": "field required", "type": "value_error.missing"}])
        cur.execute("INSERT INTO pms_positions (instrument, direction, size, entry_price, current_price, notes)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                    (instrument, direction, size, entry, entry, str(body.get("notes") or "")))
        return _position(cur.fetchone())

    @staticmethod
    def mtm(cur, body):
        manual = body.get("manual_prices") or {}
        if not isinstance(manual, dict):
            raise Problem(422, [{"loc": ["body", "manual_prices"], "msg": "must be an object", "type": "type_error"}])
        prices = {k: _num(manual, k) for k in manual}
        for instrument, price in prices.items():
            cur.execute("INSERT INTO pms_prices (instrument, price, source) VALUES (%s, %s, 'manual')",
                        (instrument, price))
        cur.execute("SELECT DISTINCT instrument FROM pms_positions WHERE status = 'OPEN' ORDER BY instrument")
        marked, unpriced = {}, []
        for (instrument,) in [(r["instrument"],) for r in cur.fetchall()]:
            price = prices.get(instrument)
            if price is None:
                cur.execute("SELECT price FROM pms_prices WHERE instrument = %s AND source <> 'manual'"
                            " ORDER BY ts DESC, id DESC LIMIT 1", (instrument,))
                row = cur.fetchone()
                price = row["price"] if row else None
            if price is None:
                unpriced.append(instrument)
                continue
            cur.execute("UPDATE pms_positions SET current_price = %s, marked_at = now()"
                        " WHERE status = 'OPEN' AND instrument = %s", (price, instrument))
            marked[instrument] = float(price)
        cur.execute("SELECT * FROM pms_positions WHERE status = 'OPEN' ORDER BY id")
        return {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "marked": marked,
                "unpriced": unpriced, "positions": [_position(r) for r in cur.fetchall()]}

    @staticmethod
    def summary(cur):
        cur.execute("SELECT * FROM pms_positions")
        rows = [_position(r) for r in cur.fetchall()]
        realized = sum(p["realized_pnl"] for p in rows)
        unrealized = sum(p["unrealized_pnl"] for p in rows)
        return {"realized_pnl": realized, "unrealized_pnl": unrealized, "total_pnl": realized + unrealized,
                "open_positions": sum(1 for p in rows if p["status"] == "OPEN")}

    @staticmethod
    def journal(cur, entry_type, related):
        where, args = [], []
        if entry_type:
            where.append("entry_type = %s")
            args.append(entry_type)
        if related:
            where.append("related_position_id = %s")
            args.append(int(related))
        cur.execute("SELECT * FROM pms_journal" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id",
                    args)
        return {"entries": [dict(r, created_at=r["created_at"].isoformat()) for r in cur.fetchall()]}

    def post_journal(self, cur, body):
        entry_type = body.get("entry_type")
        if entry_type not in ENTRY_TYPES:
            raise Problem(422, [{"loc": ["body", "entry_type"], "msg": "must be one of " + ", ".join(ENTRY_TYPES),
                                 "type": "value_error"}])
        if not str(body.get("content") or "").strip():
            raise Problem(422, [{"loc": ["body", "content"], "msg": "field required", "type": "value_error.missing"}])
        related = body.get("related_position_id")
        if related is not None:
            self.get(cur, int(related))
        cur.execute("INSERT INTO pms_journal (entry_type, content, related_position_id, metadata)"
                    " VALUES (%s, %s, %s, %s) RETURNING *",
                    (entry_type, body["content"], related, json.dumps(body.get("metadata") or {})))
        row = cur.fetchone()
        return dict(row, created_at=row["created_at"].isoformat())


ROUTES = (
    ("GET", r"/health", lambda b, m, q, body: b.run(b.health)),
    ("GET", r"/api/v1/pms/book/positions", lambda b, m, q, body: b.run(b.positions, q.get("status"))),
    ("GET", r"/api/v1/pms/book/summary", lambda b, m, q, body: b.run(b.summary)),
    ("GET", r"/api/v1/pms/book/positions/(\d+)", lambda b, m, q, body: b.run(b.position, int(m[1]))),
    ("POST", r"/api/v1/pms/book/positions/(\d+)/close", lambda b, m, q, body: b.run(b.close, int(m[1]), body)),
    ("POST", r"/api/v1/pms/book/positions/open", lambda b, m, q, body: (201, b.run(b.open, body))),
    ("POST", r"/api/v1/pms/book/mtm", lambda b, m, q, body: b.run(b.mtm, body)),
    ("GET", r"/api/v1/pms/journal", lambda b, m, q, body: b.run(b.journal, q.get("entry_type"),
                                                                q.get("related_position_id"))),
    ("POST", r"/api/v1/pms/journal", lambda b, m, q, body: (201, b.run(b.post_journal, body))),
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile", type=Path, required=True)
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--pg-user", required=True)
    ap.add_argument("--pg-password-file", type=Path, required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--token-file", type=Path, help="require Authorization: Bearer <the file's token>")
    ap.add_argument("--max-seconds", type=float, default=0, help="stop after this long (0: run until killed)")
    args = ap.parse_args(argv)
    book = Book(dict(host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname=args.database,
                     password=args.pg_password_file.read_text().strip(), connect_timeout=3))
    token = args.token_file.read_text().strip() if args.token_file else None
    book.run(book.create)

    class Api(BaseHTTPRequestHandler):
        def log_message(self, *_a):
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            self._route("GET")

        def do_POST(self):  # noqa: N802
            self._route("POST")

        def _route(self, method):
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if token and url.path != "/health" and not hmac.compare_digest(
                        self.headers.get("Authorization", ""), "Bearer " + token):
                    raise Problem(401, "Not authenticated")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}") if method == "POST" else {}
                except ValueError:
                    raise Problem(422, [{"loc": ["body"], "msg": "JSON decode error", "type": "value_error.jsondecode"}])
                for verb, pattern, handler in ROUTES:
                    match = re.fullmatch(pattern, url.path)
                    if match and verb == method:
                        answer = handler(book, match, query, body)
                        return self._send(*(answer if isinstance(answer, tuple) else (200, answer)))
                raise Problem(405 if any(re.fullmatch(p, url.path) for _v, p, _h in ROUTES) else 404,
                              "Method Not Allowed" if any(re.fullmatch(p, url.path) for _v, p, _h in ROUTES)
                              else "Not Found")
            except Problem as exc:
                return self._send(exc.status, {"detail": exc.detail})
            except psycopg2.Error as exc:
                status = 503 if isinstance(exc, psycopg2.OperationalError) else 500
                return self._send(status, {"detail": str(exc).strip()[:300]})

        def _send(self, code, body):
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Api)
    args.pidfile.write_text(f"{os.getpid()}\n")
    print(f"pms: serving the PMS API on 127.0.0.1:{args.port} for {args.database}", flush=True)
    if args.max_seconds > 0:
        threading.Timer(args.max_seconds, server.shutdown).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
