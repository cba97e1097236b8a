"""STAND-IN for the users' own market-data ingestion worker (not part of the collection).

What runbook 004 (3.2) expects of a worker, reduced to what the rehearsal needs: it reads the feed
registry (primary_feed, backup_feed) once when it starts and reports the feed it ingests from in
--status (JSON: primary, pid, started_at); it does not notice a registry change until restarted.
With --gap-fill it runs once instead: it appends the feed it would back-fill from to --gap-log.

Run: python feed_worker.py --registry R --status S   |   python feed_worker.py --registry R --gap-fill --gap-log L
"""

from __future__ import annotations

import argparse
import json
import os
import time


def read_primary(path: str) -> str:
    # the registry is flat "key: value" YAML; the stand-in needs no YAML library
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _sep, value = line.partition(":")
            if key.strip() == "primary_feed":
                return value.strip()
    raise SystemExit(f"no primary_feed in {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--status")
    ap.add_argument("--gap-fill", action="store_true")
    ap.add_argument("--gap-log")
    ap.add_argument("--max-seconds", type=float, default=900)
    args = ap.parse_args(argv)
    primary = read_primary(args.registry)
    if args.gap_fill:
        with open(args.gap_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"gap_fill_from": primary, "at": time.time()}) + "\n")
        return 0
    with open(args.status, "w", encoding="utf-8") as fh:
        json.dump({"primary": primary, "pid": os.getpid(), "started_at": time.time()}, fh)
    time.sleep(args.max_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
