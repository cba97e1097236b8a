"""STAND-IN for the users' Airflow DAG (runbook 001's daily data pipeline; the same two steps as the Dagster job,
work.py). Parsed by a real Airflow 3 DAG processor (tradeops_dr.sandbox.orchestrators)."""

import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import work  # noqa: E402  # pylint: disable=wrong-import-position


@dag(dag_id="morning_pack", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def morning_pack():
    @task
    def load_prices():
        return work.load_prices()

    @task
    def build_pack(prices):
        del prices
        return work.build_pack()

    build_pack(load_prices())


morning_pack()
