"""STAND-IN for the users' Dagster code location (runbook 000 scenario 5): the morning pack job, two ops
(work.py). Loaded by a real dagster-webserver and dagster-daemon (tradeops_dr.sandbox.orchestrators)."""

import sys
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import work  # noqa: E402  # pylint: disable=wrong-import-position


@dg.op
def load_prices():
    return work.load_prices()


@dg.op
def build_pack(prices):
    del prices
    return work.build_pack()


@dg.job
def morning_pack():
    build_pack(load_prices())


defs = dg.Definitions(jobs=[morning_pack])
