"""A REPLAY of recorded QuestDB 8.1.2 answers, not a QuestDB.

QuestDB cannot be installed from the registries these machines reach. The project's shared
fixtures hold real HTTP exchanges recorded from QuestDB 8.1.2 (shared/fixtures/questdb-8.1.2).
This server answers a request with the recorded response whose request matches it (the SQL of
/exec compared after decoding and folding white space and case), choosing among recordings of
the same query by a small state machine that follows the order in which they were recorded:

  wal:        healthy | suspended -> (resume) -> resumed | stuck (suspends again after resume)
              | disk_full (the suspended recording with errorTag set to DISK FULL: DERIVED, see below)
              | lagging (the suspended recording with suspended=false: a writer that never catches up; DERIVED)
  checkpoint: idle -> (create) -> in_progress -> (create again: the recorded 400) -> (release) -> idle
              | release_fails: CHECKPOINT RELEASE answers 400 (DERIVED, shaped like the recorded 400s)

What it adds to the recordings, and says so:
  - a query that was not recorded gets HTTP 400 {"error": "not in the recorded QuestDB exchanges"};
  - `disk_full` rewrites errorTag/errorMessage of the recorded suspended row (QuestDB reports
    errorTag "DISK FULL" there; no such answer was recorded);
  - the root folder (--root): at start, a `_restore` trigger file is consumed as QuestDB does
    after a successful restore (the file removed, the server up), or, with --fail-restore, the
    server exits with the trigger file left in place, as QuestDB does when a restore fails.

Run: python questdb_replay.py --fixtures DIR --port P --health-port H [--wal suspended] [--root DIR]
     [--pidfile F] [--fail-restore]
Control (tests only): POST /_replay/state {"wal": "...", "checkpoint": "...", "release_fails": true};
GET /_replay/state.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def norm(sql: str) -> str:
    return re.sub(r"\s+", " ", sql.strip().lower())


class Recordings:
    def __init__(self, folder: Path):
        self.by_name = {}
        for f in sorted(folder.glob("*.json")):
            self.by_name[f.stem] = json.loads(f.read_text())

    def response(self, name: str):
        return self.by_name[name]["response"]

    def sql(self, name: str) -> str:
        url = self.by_name[name]["request"]["url"]
        return norm(parse_qs(urlsplit(url).query).get("query", [""])[0])


class State:
    def __init__(self, wal: str):
        self.lock = threading.Lock()
        self.wal = wal
        self.checkpoint = "idle"
        self.release_fails = False
        self.requests: list[str] = []


def make_handler(rec: Recordings, state: State, health: bool):
    sql_index: dict[str, list[str]] = {}
    for name in rec.by_name:
        if rec.by_name[name]["request"]["url"].startswith("http://{host}:9000/exec"):
            sql_index.setdefault(rec.sql(name), []).append(name)

    def pick(sql: str) -> str | None:
        names = sql_index.get(sql)
        if not names:
            return None
        if sql == rec.sql("wal_tables_healthy"):
            return {"healthy": "wal_tables_healthy", "suspended": "wal_tables_suspended", "stuck": "wal_tables_suspended",
                    "disk_full": "wal_tables_suspended", "resumed": "wal_tables_resumed",
                    "lagging": "wal_tables_suspended"}[state.wal]
        if sql == rec.sql("count_trades"):
            return "count_after_resume" if state.wal == "resumed" else (
                "count_while_suspended" if state.wal in ("suspended", "stuck", "disk_full") else "count_trades")
        if sql == rec.sql("checkpoint_status_idle"):
            return "checkpoint_status_in_progress" if state.checkpoint == "in_progress" else "checkpoint_status_idle"
        if sql == rec.sql("checkpoint_create"):
            if state.checkpoint == "in_progress":
                return "checkpoint_create_twice"
            state.checkpoint = "in_progress"
            return "checkpoint_create"
        if sql == rec.sql("checkpoint_release"):
            if state.release_fails:
                return "checkpoint_release_fails"
            state.checkpoint = "idle"
            return "checkpoint_release"
        if sql == rec.sql("resume_wal"):
            if state.wal in ("suspended", "disk_full"):
                state.wal = "resumed"
            return "resume_wal"
        return names[0]

    class Handler(BaseHTTPRequestHandler):
        server_version = "questDB/1.0 (replay of recorded answers)"

        def log_message(self, *args):
            pass

        def _send(self, status: int, body, content_type="application/json; charset=utf-8"):
            data = body if isinstance(body, bytes) else (
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _recorded(self, name: str, transform=None):
            resp = rec.response(name)
            body = resp["body"]
            if transform:
                body = transform(body)
            self._send(resp["status"], body, resp["headers"].get("Content-Type", "application/json"))

        def do_GET(self):  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            if health:
                return self._recorded("health_status" if parts.path == "/status" else "health_ok")
            if parts.path == "/_replay/state":
                return self._send(200, {"wal": state.wal, "checkpoint": state.checkpoint, "requests": state.requests})
            if parts.path != "/exec":
                return self._send(404, {"error": "not in the recorded QuestDB exchanges: %s" % parts.path})
            sql = norm(parse_qs(parts.query).get("query", [""])[0])
            with state.lock:
                state.requests.append(sql)
                name = pick(sql)
                wal = state.wal
            if name is None:
                return self._send(400, {"query": sql, "error": "not in the recorded QuestDB exchanges", "position": 0})
            if name == "wal_tables_suspended" and wal == "disk_full":
                return self._recorded(name, _disk_full)
            if name == "wal_tables_suspended" and wal == "lagging":
                return self._recorded(name, _lagging)
            if name == "checkpoint_release_fails":
                error = "could not release the checkpoint (DERIVED by the replay)"
                return self._send(400, {"query": sql, "error": error, "position": 0})
            return self._recorded(name)

        def do_POST(self):  # noqa: N802
            if urlsplit(self.path).path != "/_replay/state":
                return self._send(404, {"error": "not found"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with state.lock:
                state.wal = body.get("wal", state.wal)
                state.checkpoint = body.get("checkpoint", state.checkpoint)
                state.release_fails = body.get("release_fails", state.release_fails)
            return self._send(200, {"wal": state.wal, "checkpoint": state.checkpoint})

    return Handler


def _lagging(body: str) -> str:
    data = json.loads(body)
    for row in data["dataset"]:
        row[1] = False  # not suspended, writerTxn still behind sequencerTxn
    return json.dumps(data)


def _disk_full(body: str) -> str:
    data = json.loads(body)
    for row in data["dataset"]:
        if row[1] is True:
            row[5] = "DISK FULL"
            row[6] = "could not allocate file [errno=28, No space left on device] (DERIVED by the replay)"
    return json.dumps(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--health-port", type=int, required=True)
    ap.add_argument("--wal", default="healthy",
                    choices=["healthy", "suspended", "stuck", "disk_full", "resumed", "lagging"])
    ap.add_argument("--root", type=Path)
    ap.add_argument("--fail-restore", action="store_true")
    ap.add_argument("--pidfile", type=Path)
    args = ap.parse_args(argv)

    if args.root and (args.root / "_restore").exists():
        if args.fail_restore or not (args.root / "db").is_dir():
            print("restore failed: _restore trigger left in place", file=sys.stderr)
            return 1
        (args.root / "_restore").unlink()
    rec = Recordings(args.fixtures)
    state = State(args.wal)
    servers = [ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(rec, state, health=False)),
               ThreadingHTTPServer(("127.0.0.1", args.health_port), make_handler(rec, state, health=True))]
    if args.pidfile:
        args.pidfile.write_text("%d\n" % os.getpid())
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
