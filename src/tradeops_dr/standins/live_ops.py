"""STAND-IN for the users' own process that reads the trading host's state files (not part of the
collection): runbook 002's `live_ops.py`, reduced to what a file-state recovery around it needs.

At start it reads --state (JSON: its positions) once, as an engine loads its state: a file that is
missing or does not parse ends it at once with exit code 2 and the reason on stdout (a real engine
does not trade on a state it cannot read). It then answers GET /health on 127.0.0.1 with
{"status": "ok", "positions", "pid", "started"} (200); its pid goes to --pidfile; SIGTERM ends it.
It never writes the state file. It stops by itself after --max-seconds.

Run: python live_ops.py --port P --pidfile F --state /srv/trading/state/positions.json
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--max-seconds", type=float, default=3600)
    args = ap.parse_args(argv)
    try:
        positions = json.loads(args.state.read_text())
    except (OSError, ValueError) as exc:
        print(f"live_ops: cannot load the state {args.state}: {exc}", flush=True)
        return 2
    started = time.time()
    body = json.dumps({"status": "ok", "positions": positions, "pid": os.getpid(), "started": started}).encode()

    class Health(BaseHTTPRequestHandler):
        def log_message(self, *_a):
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            code, data = (200, body) if self.path == "/health" else (404, b'{"error": "not found"}')
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Health)
    args.pidfile.write_text(f"{os.getpid()}\n")
    print(f"live_ops: serving /health on 127.0.0.1:{args.port}, {len(positions)} positions loaded", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(args.max_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
