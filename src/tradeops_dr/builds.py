"""Where the real TimescaleDB and QuestDB builds (and Airflow's venv) are, and why a test or the sandbox cannot use
them when they are missing.

Debian's and PyPI's packages carry neither. `scripts/setup.sh` installs the builds kept in
`../shared/servers` (verified against its SHA256SUMS): TimescaleDB into Debian's PostgreSQL 15,
the QuestDB jar into `.state/servers/`. Elsewhere the user installs them (see `how_to_get`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
    cand = Path(env) if env else _installed_questdb(".jar")
    if cand.is_file() and shutil.which("java"):
        return cand
    return None


# The JVM options of the QuestDB servers the sandbox and the tests start (small, on loopback, started and stopped
# many times; never the users' own QuestDB, which their service's start_command starts): the client compiler only
# and the serial collector, and the class-data archive that scripts/setup.sh makes for the jar it installs. On this
# machine the three took QuestDB's start from 2.4-2.9 s and 2.8-3.5 CPU-s to 1.2 s and 1.2 CPU-s (docs/testing.md).
QUESTDB_JAVA_OPTIONS = ("-Xmx1g", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                        "--add-exports", "java.base/jdk.internal.math=ALL-UNNAMED")


def _installed_questdb(suffix: str) -> Path:
    """A file of the QuestDB scripts/setup.sh installs into this checkout: its jar (.jar), its archive (.jsa)."""
    return project_root() / ".state" / "servers" / f"questdb-{QUESTDB_VERSION}{suffix}"


def questdb_archive() -> Path:
    """Where scripts/setup.sh keeps the class-data archive of the jar it installs (`make_questdb_archive`)."""
    return _installed_questdb(".jsa")


def questdb_command(jar: Path, root: Path, archive_at_exit: Path | None = None) -> list[str]:
    """The command line of a QuestDB on `jar` with its data in `root`. The class-data archive is used when it is
    this project's own (made by setup.sh, owned by this user, writable by nobody else: the JVM loads code from it)
    and at least as new as the jar and java; the JVM itself checks that it matches both and runs without it when
    not. `archive_at_exit`: write one there when the server stops (how `make_questdb_archive` makes it)."""
    opts = list(QUESTDB_JAVA_OPTIONS)
    if archive_at_exit is not None:
        opts.append(f"-XX:ArchiveClassesAtExit={archive_at_exit}")
    elif _archive_fits(questdb_archive(), jar):
        opts.append(f"-XX:SharedArchiveFile={questdb_archive()}")
    return ["java", *opts, "-jar", str(jar), "-d", str(root)]


def _archive_fits(archive: Path, jar: Path) -> bool:
    try:
        st = archive.stat()
        java = Path(os.path.realpath(shutil.which("java") or "/nonexistent"))
        newest = max(jar.stat().st_mtime, java.stat().st_mtime)
    except OSError:
        return False
    return (st.st_uid == os.getuid() and not st.st_mode & 0o022 and st.st_mtime >= newest
            and jar.resolve() == _installed_questdb(".jar").resolve())


def make_questdb_archive() -> str:
    """Make the class-data archive of the installed jar (scripts/setup.sh, after installing it): one QuestDB started
    on free loopback ports in a temporary folder, stopped once healthy; the JVM writes the archive as it exits. Says
    what it did; does nothing when the archive fits already or no jar is installed."""
    import signal
    import tempfile

    from .sandbox.processes import free_port, wait_for
    from .sandbox.servers import QuestDBServer

    jar = questdb_jar()
    archive = questdb_archive()
    if jar is None or jar.resolve() != _installed_questdb(".jar").resolve():
        return "no QuestDB jar in .state/servers: no class-data archive made"
    if _archive_fits(archive, jar):
        return f"QuestDB's class-data archive {archive} is up to date"
    with tempfile.TemporaryDirectory(prefix="tradeops-questdb-archive-") as tmp:
        ports: set[int] = set()
        for _port in range(4):
            ports.add(free_port(avoid=ports))
        http, health, pgw, ilp = sorted(ports)
        srv = QuestDBServer(Path(tmp) / "root", http, health, pgw, ilp)
        srv.write_config()
        # the JVM writes it by path: beside the archive, in .state/servers (this checkout's, made by setup.sh)
        made = archive.with_name(archive.name + f".{os.getpid()}.new")
        made.unlink(missing_ok=True)
        with open(Path(tmp) / "questdb.log", "ab") as log:
            proc = subprocess.Popen(questdb_command(jar, srv.root, archive_at_exit=made), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_for(srv.ready, 60, f"QuestDB on 127.0.0.1:{http} (making its class-data archive)")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        if not made.is_file():
            return f"QuestDB (rc {proc.returncode}) wrote no class-data archive: it starts without one, a second slower"
        made.chmod(0o644)
        os.replace(made, archive)
    return f"QuestDB's class-data archive made: {archive}"


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
