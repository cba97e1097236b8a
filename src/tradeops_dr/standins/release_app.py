"""STAND-IN for a release of the users' own trading application (not part of the collection).

The Molecule rehearsal of release_rollback commits this file into a git tree beside a VERSION
file, once per release; it serves GET /health -> 200 {"status": "ok", "version": <VERSION read at
start>} on 127.0.0.1, as runbook 003's `curl .../health` expects of the real application.

Run: python release_app.py --port P --pidfile F
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile", required=True)
    args = ap.parse_args(argv)
    version = (Path(__file__).resolve().parent / "VERSION").read_text().strip()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"status": "ok", "version": version}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    Path(args.pidfile).write_text(f"{os.getpid()}\n")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
