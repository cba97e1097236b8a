"""STAND-IN for the users' own pipeline code (runbook 000 scenario 5: the morning pack; runbook 001: the daily data
run), shared by the Dagster code location (dagster_defs.py) and the Airflow DAG (airflow_dags/morning_pack.py) the
tests and drills run on real orchestrators. It is not part of the collection: the collection only talks to the
orchestrators' APIs.

Two steps, as a real morning pack has them: load_prices (the newest prices into prices.json, one line per run in
loads.log) and build_pack (morning_pack_<today>.json from them, the agents' signals.json updated). Everything lives in
TRADEOPS_PIPELINE_DIR. `python work.py daily-run` runs both steps without an orchestrator (the runbook's manual
fallback, its daily run script). A file `fail_next` there makes the next build_pack fail the way a data step fails when its
upstream feed is not ready - a RuntimeError naming the feed - and is consumed by that failure: the re-run succeeds.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path


def folder() -> Path:
    return Path(os.environ["TRADEOPS_PIPELINE_DIR"])


def load_prices() -> dict:
    today = datetime.date.today().isoformat()
    prices = {"date": today, "EURUSD": 1.0843, "USDCOP": 3921.5}
    (folder() / "prices.json").write_text(json.dumps(prices))
    with (folder() / "loads.log").open("a") as log:
        log.write(today + "\n")
    return prices


def build_pack() -> str:
    trigger = folder() / "fail_next"
    if trigger.exists():
        trigger.unlink()
        raise RuntimeError("upstream feed not ready: prices.json is older than the run (feed job late)")
    prices = json.loads((folder() / "prices.json").read_text())
    pack = folder() / f"morning_pack_{prices['date']}.json"
    pack.write_text(json.dumps({"date": prices["date"], "prices": prices}))
    (folder() / "signals.json").write_text(json.dumps({"updated": prices["date"], "USDCOP": "hold"}))
    return str(pack)


if __name__ == "__main__":
    # the runbook's manual fallback, `python scripts/daily_run.py`: both steps, without the orchestrator
    import sys

    if sys.argv[1:] != ["daily-run"]:
        sys.exit("usage: work.py daily-run  (TRADEOPS_PIPELINE_DIR names the folder)")
    load_prices()
    print(build_pack())
