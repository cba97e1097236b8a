"""STAND-IN for the users' own application that uses the database (not part of the collection): the
API, PMS or dashboard backend of runbook 000 scenario 1 ("stop the application services that use the
database ... start them ... GET /health"), reduced to what a restore around it needs.

It keeps one connection to PostgreSQL open for as long as it runs (as a connection pool does: the
session a restore must not swap a database under) and answers GET /health on 127.0.0.1 with
{"status": "ok", "database", "positions", "pid", "started"} (200) when `SELECT count(*) FROM
positions` works on that connection, else {"status": "unhealthy", "error"} (503); a lost
connection is opened again at the next request. Its pid goes to --pidfile; it logs to stdout.

Run: python db_app.py --port P --pidfile F --pg-port N --pg-user U --pg-password-file F --database D
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile", type=Path, required=True)
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--pg-user", required=True)
    ap.add_argument("--pg-password-file", type=Path, required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args(argv)
    dsn = dict(host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname=args.database,
               password=args.pg_password_file.read_text().strip(), connect_timeout=3)
    lock = threading.Lock()
    state = {"conn": None}
    started = time.time()

    def positions() -> int:
        with lock:
            if state["conn"] is None or state["conn"].closed:
                state["conn"] = psycopg2.connect(**dsn)
                state["conn"].autocommit = True
            try:
                with state["conn"].cursor() as cur:
                    cur.execute("SELECT count(*) FROM positions")
                    return cur.fetchone()[0]
            except psycopg2.Error:
                state["conn"].close()
                raise

    class Health(BaseHTTPRequestHandler):
        def log_message(self, *_a):
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path != "/health":
                return self._send(404, {"error": "not found"})
            try:
                return self._send(200, {"status": "ok", "database": args.database, "positions": positions(),
                                        "pid": os.getpid(), "started": started})
            except psycopg2.Error as exc:
                return self._send(503, {"status": "unhealthy", "error": str(exc).strip()[:300]})

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    try:
        positions()  # the pool's connection, open from the start
    except psycopg2.Error as exc:
        print(f"db_app: database not reachable at start: {exc}", flush=True)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Health)
    args.pidfile.write_text(f"{os.getpid()}\n")
    print(f"db_app: serving /health on 127.0.0.1:{args.port} for {args.database}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(args.max_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
