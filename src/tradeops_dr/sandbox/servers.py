"""The servers of the sandbox, each under a folder of its own on 127.0.0.1: Redis, a PostgreSQL
cluster, QuestDB and the stand-ins of the users' inference API and PMS. What they share (their pid and log
files, kill and stop) is `Server`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import redis

from .. import builds, seed
from ..errors import SandboxError
from ..paths import STANDINS
from .processes import kill_pidfile, pg_bin, pid_alive, read_pid, start_detached, wait_for


class Server:
    """What every server of the sandbox has: a folder (`root`), its pid and log files in `home`
    (named after `FILES`), a start that waits until it is `ready()` (`START_TIMEOUT` seconds), and
    kill/stop by its pid file, waiting `STOP_TIMEOUT` seconds. A `FOREGROUND` server is started
    detached and its pid written to its pid file; the others daemonize themselves."""

    root: Path
    port: int
    NAME = "server"  # in messages
    FILES = "server"  # the stem of its pid, log and conf files
    START_TIMEOUT = 20.0
    STOP_TIMEOUT = 10
    FOREGROUND = False

    def start_command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> tuple[bool, str]:
        raise NotImplementedError

    def start(self, timeout: float | None = None) -> None:
        """Start it unless its pid lives, then wait until it is ready (never a fixed sleep)."""
        if pid_alive(read_pid(self.pidfile)):
            return
        if self.FOREGROUND:
            proc = start_detached(self.start_command(), self.logfile)
            self.pidfile.write_text(f"{proc.pid}\n")
        else:
            proc = subprocess.run(self.start_command(), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SandboxError(f"{self.NAME} failed to start: {proc.stderr or proc.stdout}; see {self.logfile}")
        wait_for(self.ready, timeout or self.START_TIMEOUT, f"{self.NAME} on 127.0.0.1:{self.port}")

    @property
    def home(self) -> Path:
        return self.root

    @property
    def pidfile(self) -> Path:
        return self.home / f"{self.FILES}.pid"

    @property
    def logfile(self) -> Path:
        return self.home / f"{self.FILES}.log"

    def kill(self, sig=signal.SIGKILL) -> None:
        kill_pidfile(self.pidfile, sig, self.NAME, self.STOP_TIMEOUT)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# --------------------------------------------------------------------------- Redis

@dataclass
class RedisServer(Server):
    """A redis-server under `root`, configured as the sandbox and the tests use it."""

    NAME, FILES = "Redis", "redis"

    root: Path
    port: int
    password: str

    @property
    def conf(self) -> Path:
        return self.home / f"{self.FILES}.conf"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def write_config(self, extra: str = "") -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.conf.write_text(
            "# tradeops.dr sandbox Redis (loopback only)\n"
            f"bind 127.0.0.1\nport {self.port}\nprotected-mode yes\n"
            f"dir {self.data_dir}\n"
            f"pidfile {self.pidfile}\nlogfile {self.logfile}\ndaemonize yes\n"
            "appendonly yes\nappendfsync always\n"
            "# refuse to load a truncated AOF: a DR tool must see the damage, not hide it\n"
            "aof-load-truncated no\n"
            'save ""\n'
            f"requirepass {self.password}\n" + extra
        )
        self.conf.chmod(0o600)

    def start_command(self) -> list[str]:
        return ["redis-server", str(self.conf)]

    def ready(self):
        return self.ping()

    def client(self, **kw):
        kw.setdefault("decode_responses", True)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5, **kw)

    def ping(self):
        try:
            with self.client() as c:
                return bool(c.ping()), "PONG"
        except (redis.RedisError, OSError) as exc:
            return False, str(exc)


# --------------------------------------------------------------------------- PostgreSQL

@dataclass
class PostgresCluster(Server):
    """A PostgreSQL 15 cluster (initdb + pg_ctl) under `root`, listening on 127.0.0.1."""

    NAME, FILES, START_TIMEOUT, STOP_TIMEOUT = "PostgreSQL", "postgres", 60.0, 60

    root: Path
    port: int
    password: str
    user: str = "tradeops"
    # extra server settings on the command line, e.g. shared_preload_libraries=timescaledb
    settings: dict = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def _as_owner(self, argv: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: as root, run it as the postgres system user.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / ".pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        try:
            proc = subprocess.run(self._as_owner([pg_bin("initdb"), "-D", str(self.data_dir), "-U", self.user,
                                                  "--pwfile", str(pwfile), "--auth-local=scram-sha-256",
                                                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]),
                                  capture_output=True, text=True, check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise SandboxError(f"initdb failed: {proc.stderr[-800:]}")

    def start_command(self) -> list[str]:
        opts = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        for name, value in sorted(self.settings.items()):
            opts += f" -c {name}={value}"
        return self._as_owner([pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.logfile), "-o", opts,
                               "-w", "start"])

    def ready(self):
        proc = subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                              capture_output=True, text=True, check=False)
        return proc.returncode == 0, proc.stdout.strip()

    def stop(self) -> None:
        self.kill(signal.SIGINT)  # fast shutdown

    def dsn(self, dbname: str = "postgres") -> dict:
        return dict(host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=dbname)


# --------------------------------------------------------------------------- QuestDB

@dataclass
class QuestDBServer(Server):
    """A real QuestDB (the jar of tradeops_dr.builds) under `root`, every port on 127.0.0.1.
    It runs in the foreground: service control's process manager starts it detached and keeps
    its pid in `pidfile`."""

    NAME, FILES, START_TIMEOUT, STOP_TIMEOUT, FOREGROUND = "QuestDB", "questdb", 60.0, 60, True

    root: Path
    http_port: int
    health_port: int
    pg_port: int
    ilp_port: int

    @property
    def home(self) -> Path:  # its pid and log files sit beside its folder, which QuestDB owns
        return self.root.parent

    @property
    def port(self) -> int:  # the one its readiness is named by
        return self.http_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def write_config(self) -> None:
        (self.root / "conf").mkdir(parents=True, exist_ok=True)
        (self.root / "conf" / "server.conf").write_text(
            "# tradeops.dr QuestDB (loopback only)\n"
            f"http.bind.to=127.0.0.1:{self.http_port}\n"
            "http.min.enabled=true\n"
            f"http.min.net.bind.to=127.0.0.1:{self.health_port}\n"
            f"pg.net.bind.to=127.0.0.1:{self.pg_port}\n"
            f"line.tcp.net.bind.to=127.0.0.1:{self.ilp_port}\n"
            "line.udp.enabled=false\ntelemetry.enabled=false\nshared.worker.count=2\n"
            "# allows ALTER TABLE t SUSPEND WAL: the drills and tests suspend tables on purpose\n"
            "dev.mode.enabled=true\n"
        )

    def start_command(self) -> list[str]:
        jar = builds.questdb_jar()
        if jar is None:
            raise SandboxError(builds.HOW_TO_GET["questdb"])
        return builds.questdb_command(jar, self.root)

    def service(self, **extra) -> dict:
        """The service dict of service control (manager process) for this server."""
        return dict(name="questdb", manager="process", start_command=self.start_command(), foreground=True,
                    pidfile=str(self.pidfile), log_file=str(self.logfile), stop_timeout=30, **extra)

    def ready(self):
        try:
            with urllib.request.urlopen(self.health_url + "/", timeout=2) as resp:
                body = resp.read().decode()
            return "Healthy" in body, body.strip()
        except OSError as exc:
            return False, str(exc)

    def sql(self, statement: str) -> dict:
        """One statement over /exec; raises SandboxError with QuestDB's error."""
        import urllib.error
        import urllib.parse
        url = f"{self.url}/exec?" + urllib.parse.urlencode({"query": statement})
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"QuestDB rejected {statement!r}: {exc.read().decode()[:300]}") from None


# --------------------------------------------------------------------------- the users' inference API

@dataclass
class InferenceAPI(Server):
    """A stand-in for the users' inference API (src/tradeops_dr/standins/inference_api.py: loads a zip
    model, reports its md5/sha256 at /v1/health, reloads on POST /v1/models/reload), serving the
    model of a git work tree whose model folder real DVC tracks, with a local DVC remote."""

    NAME, FILES, FOREGROUND = "inference API stand-in", "inference", True

    root: Path
    port: int

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_command(self) -> list[str]:
        return [sys.executable, str(STANDINS / "inference_api.py"), "--port",
                str(self.port), "--model", str(self.repo / seed.MODEL), "--pidfile", str(self.pidfile)]

    def ready(self):
        try:
            with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as resp:
                body = json.loads(resp.read())
            return body.get("status") == "healthy", f"model md5 {body.get('model_md5')}"
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode()[:200]
        except (OSError, ValueError) as exc:
            return False, str(exc)


# --------------------------------------------------------------------------- the users' PMS

@dataclass
class PmsStandin(Server):
    """A stand-in for the users' portfolio management system (src/tradeops_dr/standins/pms.py: runbook 000's
    book, MTM and Decision Journal endpoints behind a bearer token), keeping its book in a database of the
    sandbox's PostgreSQL."""

    NAME, FILES, FOREGROUND = "PMS stand-in", "pms", True

    root: Path
    port: int
    pg_port: int
    pg_user: str
    pg_password_file: Path
    token_file: Path
    database: str = "pms"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_command(self) -> list[str]:
        return [sys.executable, str(STANDINS / "pms.py"), "--port", str(self.port), "--pidfile", str(self.pidfile),
                "--pg-port", str(self.pg_port), "--pg-user", self.pg_user, "--pg-password-file",
                str(self.pg_password_file), "--database", self.database, "--token-file", str(self.token_file)]

    def start(self, timeout: float | None = None) -> None:
        """Its database first (the PMS's own, beside the trading one), then the stand-in."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user=self.pg_user, dbname="postgres",
                                password=self.pg_password_file.read_text().strip(), connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()
        super().start(timeout)

    def ready(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return json.loads(resp.read()).get("status") == "healthy", "GET /health"
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode()[:200]
        except (OSError, ValueError) as exc:
            return False, str(exc)
