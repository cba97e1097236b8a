"""Where the real TimescaleDB and QuestDB builds (and Airflow's venv) are, and why a test or the sandbox cannot use
them when they are missing.

Debian's and PyPI's packages carry neither. `scripts/setup.sh` installs the builds kept in
`../shared/servers` (verified against its SHA256SUMS): TimescaleDB into Debian's PostgreSQL 15,
the QuestDB jar into `.state/servers/`. Elsewhere the user installs them (see `how_to_get`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .paths import project_root

TIMESCALEDB_VERSION = "2.28.3"
QUESTDB_VERSION = "8.1.2"
# Airflow runs from a venv of its own (it pins its own SQLAlchemy, FastAPI...): scripts/setup.sh makes it
AIRFLOW_VERSION = "3.3.2"
PG_MAJOR = "15"
PG_SHARE = Path(f"/usr/share/postgresql/{PG_MAJOR}/extension")
PG_LIB = Path(f"/usr/lib/postgresql/{PG_MAJOR}/lib")
# what a cluster needs to run TimescaleDB (the sandbox's, the tests')
TIMESCALEDB_SETTINGS = {"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"}

HOW_TO_GET = {
    "timescaledb": (
        f"TimescaleDB {TIMESCALEDB_VERSION} for PostgreSQL {PG_MAJOR} is not installed "
        f"({PG_SHARE}/timescaledb--{TIMESCALEDB_VERSION}.sql missing): install it from Timescale's "
        "packages (timescaledb-2-postgresql-15) or build it from source (github timescale/timescaledb, "
        f"tag {TIMESCALEDB_VERSION}), or run scripts/setup.sh with ../shared/servers beside the checkout"),
    "questdb": (
        f"QuestDB {QUESTDB_VERSION} is not installed (no jar at TRADEOPS_DR_QUESTDB_JAR or "
        f".state/servers/questdb-{QUESTDB_VERSION}.jar) or no java on PATH: download QuestDB's "
        "no-JRE release, point TRADEOPS_DR_QUESTDB_JAR at its questdb.jar and install "
        "openjdk-17-jre-headless, or run scripts/setup.sh with ../shared/servers beside the checkout"),
    "airflow": (
        f"Airflow {AIRFLOW_VERSION} is not installed (no airflow in TRADEOPS_DR_AIRFLOW_VENV or "
        f".state/servers/airflow-{AIRFLOW_VERSION}): run scripts/setup.sh (it makes that venv from PyPI), or "
        f"python3 -m venv <dir> && <dir>/bin/pip install apache-airflow=={AIRFLOW_VERSION} and point "
        "TRADEOPS_DR_AIRFLOW_VENV at <dir>"),
}


def timescaledb_installed() -> bool:
    return (PG_SHARE / f"timescaledb--{TIMESCALEDB_VERSION}.sql").is_file() and (
        PG_LIB / f"timescaledb-{TIMESCALEDB_VERSION}.so").is_file()


def questdb_jar() -> Path | None:
    """The QuestDB jar to run, or None (with java missing too)."""
    env = os.environ.get("TRADEOPS_DR_QUESTDB_JAR")
    cand = Path(env) if env else project_root() / ".state" / "servers" / f"questdb-{QUESTDB_VERSION}.jar"
    if cand.is_file() and shutil.which("java"):
        return cand
    return None


def airflow_venv() -> Path | None:
    """The venv Airflow runs from, or None."""
    env = os.environ.get("TRADEOPS_DR_AIRFLOW_VENV")
    cand = Path(env) if env else project_root() / ".state" / "servers" / f"airflow-{AIRFLOW_VERSION}"
    # scripts/setup.sh marks the venv complete only after Airflow's install
    return cand if (cand / "bin" / "airflow").is_file() and (cand / ".tradeops-installed").is_file() else None


def missing(name: str) -> str | None:
    """None when the server `name` ('timescaledb', 'questdb' or 'airflow') can be used here, else why not
    and how to get it."""
    ok = {"timescaledb": timescaledb_installed, "questdb": lambda: questdb_jar() is not None,
          "airflow": lambda: airflow_venv() is not None}[name]()
    return None if ok else HOW_TO_GET[name]
