"""Stand-in for the users' inference API (runbook 001, scenario 2) - small and honest: it is
the users' own application, not something this collection ships.

    GET  /v1/health         200 {"status": "healthy", "model_md5", "model_sha256", "model_path", "loaded_at"}
                            503 {"status": "unhealthy", "error"} when no model could be loaded
    POST /v1/models/reload  reloads the model file; 200 with the new hashes, 500 when it cannot load it

"Loading" a model means what matters for recovery: the file is a zip archive whose
`model.json` parses (a truncated or overwritten file fails). The hashes reported are those of
the bytes that were loaded. With --reload-broken the reload endpoint always answers 500 (a
wedged loader; only a restart helps), as runbook 001 expects before its restart step.

    python src/tradeops_dr/standins/inference_api.py --port P --model PATH --pidfile F [--reload-broken]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Model:
    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.state: dict = {}
        self.load()

    def load(self) -> dict:
        with self.lock:
            try:
                data = open(self.path, "rb").read()
                with zipfile.ZipFile(self.path) as zf:
                    meta = json.loads(zf.read("model.json"))
                self.state = dict(status="healthy", model_md5=hashlib.md5(data).hexdigest(),
                                  model_sha256=hashlib.sha256(data).hexdigest(), model_path=self.path,
                                  model_version=meta.get("version"), loaded_at=time.time())
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                self.state = dict(status="unhealthy", error=f"cannot load {self.path}: {exc}")
            return self.state


def serve(port: int, model_path: str, reload_broken: bool) -> None:
    model = Model(model_path)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):  # noqa: N802
            if self.path == "/v1/health":
                st = model.state
                self._send(200 if st.get("status") == "healthy" else 503, st)
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            if self.path != "/v1/models/reload":
                self._send(404, {"error": "not found"})
            elif reload_broken:
                self._send(500, {"error": "model loader is wedged; restart the service"})
            else:
                st = model.load()
                self._send(200 if st.get("status") == "healthy" else 500, st)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--reload-broken", action="store_true")
    args = ap.parse_args()
    if args.pidfile:
        with open(args.pidfile, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    serve(args.port, args.model, args.reload_broken)


if __name__ == "__main__":
    main()
