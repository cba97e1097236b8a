"""The sandbox stack: a real PostgreSQL 15 cluster (with TimescaleDB preloaded where it is
installed), a real Redis server (AOF on), where its jar is installed a real QuestDB, and the
inference API stand-in serving a model that real git and DVC track, on 127.0.0.1, on free
ports, under a state directory of the checkout, seeded with a small trading data set and its
ledger. `inventories/local` describes it through sandbox.json."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import builds, errors, seed
from .paths import STANDINS, project_root

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)


SandboxError = errors.SandboxError  # the sandbox could not be brought to the asked state

# Servers that run in the foreground (QuestDB, the inference stand-in) are started detached and
# outlive the objects that started them; their Popen objects are kept here so that they are
# reaped when they exit and never collected (with a warning) while they still run.
_DETACHED: list = []


def kill_pidfile(pidfile: Path, sig: int, what: str, timeout: float) -> None:
    """Signal the process of a pidfile and wait until it has exited (a server of the sandbox)."""
    pid = read_pid(pidfile)
    if pid_alive(pid):
        os.kill(pid, sig)
        wait_for(lambda: (not pid_alive(pid), f"pid {pid} alive"), timeout, f"{what} pid {pid} to exit")
    _reap()


def _reap() -> None:
    for proc in list(_DETACHED):
        if proc.poll() is not None:
            _DETACHED.remove(proc)


def _start_detached(argv: list[str], logfile: Path) -> subprocess.Popen:
    with open(os.devnull, "rb") as devnull, open(logfile, "ab") as log:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log, start_new_session=True)
    _DETACHED.append(proc)
    return proc


def _port_slice() -> tuple[int, int]:
    """$TRADEOPS_DR_PORT_SLICE="I/N": this process takes only ports p with (p // 2) % N == I, so
    that several processes picking ports at once (test workers, two sandboxes) never pick the same
    one between the pick and the server's bind. (p // 2: Linux hands out ports of one parity to
    bind(), so p % 2 would leave one slice empty.) Unset: every port."""
    spec = os.environ.get("TRADEOPS_DR_PORT_SLICE", "")
    try:
        index, count = (int(x) for x in spec.split("/"))
    except ValueError:
        return 0, 1
    return (index, count) if count > 0 and 0 <= index < count else (0, 1)


def free_port(avoid=()) -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now (in this process's slice)."""
    index, count = _port_slice()
    for _attempt in range(100 * count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid and (port // 2) % count == index:
            return port
    raise SandboxError("no free port found on 127.0.0.1")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_for(check, timeout: float, what: str):
    delay, deadline = 0.05, time.monotonic() + timeout
    last = None
    while True:
        ok, last = check()
        if ok:
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} not ready after {timeout}s: {last}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _postgres_can_reach(path: Path) -> bool:
    proc = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True,
                          check=False)
    return proc.returncode == 0


def pg_bin(name: str) -> str:
    for d in PG_BIN_DIRS:
        cand = Path(d) / name
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if not found:
        raise SandboxError(f"{name} not found: install Debian's postgresql package (make setup does)")
    return found


# --------------------------------------------------------------------------- Redis

@dataclass
class RedisServer:
    """A redis-server under `root`, configured as the sandbox and the tests use it."""

    root: Path
    port: int
    password: str

    @property
    def conf(self) -> Path:
        return self.root / "redis.conf"

    @property
    def pidfile(self) -> Path:
        return self.root / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.root / "redis.log"

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

    def start(self, timeout: float = 20) -> None:
        if pid_alive(read_pid(self.pidfile)):
            return
        proc = subprocess.run(self.start_command(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SandboxError(f"redis-server failed to start: {proc.stderr or proc.stdout}")
        wait_for(self.ping, timeout, f"Redis on 127.0.0.1:{self.port}")

    def client(self, **kw):
        import redis

        kw.setdefault("decode_responses", True)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5, **kw)

    def ping(self):
        import redis

        try:
            with self.client() as c:
                return bool(c.ping()), "PONG"
        except (redis.RedisError, OSError) as exc:
            return False, str(exc)

    def kill(self, sig=signal.SIGKILL) -> None:
        kill_pidfile(self.pidfile, sig, "Redis", 10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# --------------------------------------------------------------------------- PostgreSQL

@dataclass
class PostgresCluster:
    """A PostgreSQL 15 cluster (initdb + pg_ctl) under `root`, listening on 127.0.0.1."""

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
    def logfile(self) -> Path:
        return self.root / "postgres.log"

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

    def start(self, timeout: float = 60) -> None:
        if pid_alive(read_pid(self.pidfile)):
            return
        proc = subprocess.run(self.start_command(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SandboxError(f"pg_ctl start failed: {proc.stderr or proc.stdout}; see {self.logfile}")
        wait_for(self.ready, timeout, f"PostgreSQL on 127.0.0.1:{self.port}")

    def ready(self):
        proc = subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                              capture_output=True, text=True, check=False)
        return proc.returncode == 0, proc.stdout.strip()

    def stop(self) -> None:
        pid = read_pid(self.pidfile)
        if pid_alive(pid):
            os.kill(pid, signal.SIGINT)  # fast shutdown
            wait_for(lambda: (not pid_alive(pid), f"pid {pid} alive"), 60, f"PostgreSQL pid {pid} to exit")

    def dsn(self, dbname: str = "postgres") -> dict:
        return dict(host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=dbname)


# --------------------------------------------------------------------------- QuestDB

@dataclass
class QuestDBServer:
    """A real QuestDB (the jar of tradeops_dr.builds) under `root`, every port on 127.0.0.1.
    It runs in the foreground: service control's process manager starts it detached and keeps
    its pid in `pidfile`."""

    root: Path
    http_port: int
    health_port: int
    pg_port: int
    ilp_port: int

    @property
    def pidfile(self) -> Path:
        return self.root.parent / "questdb.pid"

    @property
    def logfile(self) -> Path:
        return self.root.parent / "questdb.log"

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
        return ["java", "-Xmx1g", "--add-exports", "java.base/jdk.internal.math=ALL-UNNAMED", "-jar", str(jar),
                "-d", str(self.root)]

    def service(self, **extra) -> dict:
        """The service dict of service control (manager process) for this server."""
        return dict(name="questdb", manager="process", start_command=self.start_command(), foreground=True,
                    pidfile=str(self.pidfile), log_file=str(self.logfile), stop_timeout=30, **extra)

    def start(self, timeout: float = 60) -> None:
        if pid_alive(read_pid(self.pidfile)):
            return
        proc = _start_detached(self.start_command(), self.logfile)
        self.pidfile.write_text(f"{proc.pid}\n")
        wait_for(self.ready, timeout, f"QuestDB on 127.0.0.1:{self.http_port}")

    def ready(self):
        import urllib.request

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
        import urllib.request

        url = f"{self.url}/exec?" + urllib.parse.urlencode({"query": statement})
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"QuestDB rejected {statement!r}: {exc.read().decode()[:300]}") from None

    def kill(self, sig=signal.SIGKILL) -> None:
        kill_pidfile(self.pidfile, sig, "QuestDB", 60)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# --------------------------------------------------------------------------- the users' inference API

@dataclass
class InferenceAPI:
    """A stand-in for the users' inference API (src/tradeops_dr/standins/inference_api.py: loads a zip
    model, reports its md5/sha256 at /v1/health, reloads on POST /v1/models/reload), serving the
    model of a git work tree whose model folder real DVC tracks, with a local DVC remote."""

    root: Path
    port: int

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def pidfile(self) -> Path:
        return self.root / "inference.pid"

    @property
    def logfile(self) -> Path:
        return self.root / "inference.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_command(self) -> list[str]:
        import sys

        return [sys.executable, str(STANDINS / "inference_api.py"), "--port",
                str(self.port), "--model", str(self.repo / seed.MODEL), "--pidfile", str(self.pidfile)]

    def start(self, timeout: float = 20) -> None:
        if pid_alive(read_pid(self.pidfile)):
            return
        _start_detached(self.start_command(), self.logfile)
        wait_for(self.ready, timeout, f"inference API stand-in on 127.0.0.1:{self.port}")

    def ready(self):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as resp:
                body = json.loads(resp.read())
            return body.get("status") == "healthy", f"model md5 {body.get('model_md5')}"
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode()[:200]
        except (OSError, ValueError) as exc:
            return False, str(exc)

    def kill(self, sig=signal.SIGKILL) -> None:
        kill_pidfile(self.pidfile, sig, "inference stand-in", 10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# --------------------------------------------------------------------------- the stack

class Sandbox:
    def __init__(self, state_dir: Path | None = None):
        self.state_dir = Path(state_dir or os.environ.get("TRADEOPS_DR_SANDBOX") or project_root() / ".sandbox")
        self.state_file = self.state_dir / "sandbox.json"

    def load(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def redis_server(state: dict) -> RedisServer:
        """The sandbox's Redis as sandbox.json describes it."""
        pw = Path(state["redis"]["password_file"]).read_text().strip()
        return RedisServer(Path(state["redis"]["root"]), state["redis"]["port"], pw)

    @staticmethod
    def postgres_cluster(state: dict) -> PostgresCluster:
        """The sandbox's PostgreSQL as sandbox.json describes it."""
        pg_pw = Path(state["postgres"]["password_file"]).read_text().strip()
        return PostgresCluster(Path(state["postgres"]["root"]), state["postgres"]["port"], pg_pw,
                               state["postgres"]["user"], settings=state["postgres"].get("settings") or {})

    @staticmethod
    def questdb_server(state: dict) -> QuestDBServer | None:
        """The sandbox's QuestDB, or None when the sandbox was made without one (not installed)."""
        q = state.get("questdb")
        if not q:
            return None
        return QuestDBServer(Path(q["root"]), q["http_port"], q["health_port"], q["pg_port"], q["ilp_port"])

    @staticmethod
    def pg_connect(state: dict, dbname: str | None = None):
        """An autocommit psycopg2 connection to the sandbox's PostgreSQL (its trading database by default)."""
        import psycopg2

        conn = psycopg2.connect(**Sandbox.postgres_cluster(state).dsn(dbname or state["postgres"]["database"]))
        conn.autocommit = True
        return conn

    @staticmethod
    def inference_api(state: dict) -> InferenceAPI | None:
        m = state.get("model")
        return InferenceAPI(Path(m["root"]), m["port"]) if m else None

    def _servers(self, state: dict):
        return self.redis_server(state), self.postgres_cluster(state)

    def parts(self, state: dict) -> list:
        """(name, server, readiness probe) of every running part of the stack."""
        redis_srv, pg = self._servers(state)
        out = [("redis", redis_srv, redis_srv.ping), ("postgres", pg, pg.ready)]
        qdb = self.questdb_server(state)
        if qdb is not None:
            out.append(("questdb", qdb, qdb.ready))
        api = self.inference_api(state)
        if api is not None:
            out.append(("inference", api, api.ready))
        return out

    def up(self) -> dict:
        state = self.load()
        if state is None:
            state = self._create()
        if "config" not in state and shutil.which("git"):  # sandboxes made before the config part existed
            state["config"] = seed.seed_config_repo(self.state_dir / "config" / "repo")
            state["config"]["backup_dir"] = str(self.state_dir / "backups" / "config")
            self._write(state)
        if "trading" not in state:  # sandboxes made before the trading host existed
            state["trading"] = seed.seed_trading_host(self.state_dir / "trading")
            state["trading"].update(sets_dir=str(self.state_dir / "backups" / "files"),
                                    feed_backup_dir=str(self.state_dir / "backups" / "feeds"))
            self._write(state)
        if "standins" not in state:
            # the stand-ins of the users' applications as the machine that runs the sandbox starts them:
            # a drill inside the execution environment starts services on this host through service
            # control, with this host's interpreter and paths, not the image's
            state["standins"] = dict(python=sys.executable, dir=str(STANDINS))
            self._write(state)
        for _name, srv, _probe in self.parts(state):
            srv.start()
        if not state.get("seeded"):
            redis_srv, pg = self._servers(state)
            counts = seed.seed_all(redis_srv, pg, Path(state["redis"]["ledger"]))
            if state["postgres"].get("timescaledb"):
                counts["timescaledb"] = seed.seed_timescale(pg, state["postgres"]["database"])
            qdb = self.questdb_server(state)
            if qdb is not None:
                counts["questdb"] = seed.seed_questdb(qdb)
            state["seeded"] = counts
            self._write(state)
        return state

    def _create(self) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # the postgres user must reach its own folder below
        secrets_dir = self.state_dir / "secrets"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        redis_port = free_port()
        pg_port = free_port(avoid={redis_port})
        redis_pw, pg_pw = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        (secrets_dir / "redis_password").write_text(redis_pw + "\n")
        (secrets_dir / "postgres_password").write_text(pg_pw + "\n")
        for f in secrets_dir.iterdir():
            f.chmod(0o600)
        redis_srv = RedisServer(self.state_dir / "redis", redis_port, redis_pw)
        redis_srv.write_config()
        tsdb = builds.timescaledb_installed()
        pg = PostgresCluster(self._postgres_root(), pg_port, pg_pw,
                             settings=dict(builds.TIMESCALEDB_SETTINGS) if tsdb else {})
        pg.init()
        qdb = None
        if builds.questdb_jar() is not None:
            taken = {redis_port, pg_port}
            for _port in range(4):
                taken.add(free_port(avoid=taken))
            http, health, pgw, ilp = sorted(taken - {redis_port, pg_port})
            qdb = QuestDBServer(self.state_dir / "questdb" / "root", http, health, pgw, ilp)
            qdb.write_config()
        api = None
        missing = {name: why for name in ("timescaledb", "questdb") if (why := builds.missing(name))}
        if shutil.which("dvc") and shutil.which("git"):
            api = InferenceAPI(self.state_dir / "model", free_port(avoid={redis_port, pg_port}))
            md5 = seed.seed_model_repo(api.repo, api.remote)
        else:
            missing["inference"] = "git and dvc are needed for the model repository (pip install dvc)"
        state = dict(
            state_dir=str(self.state_dir),
            redis=dict(root=str(redis_srv.root), host="127.0.0.1", port=redis_port, conf=str(redis_srv.conf),
                       pidfile=str(redis_srv.pidfile), logfile=str(redis_srv.logfile),
                       data_dir=str(redis_srv.data_dir), password_file=str(secrets_dir / "redis_password"),
                       ledger=str(self.state_dir / "ledger.db"), backup_dir=str(self.state_dir / "backups" / "redis")),
            postgres=dict(root=str(pg.root), host="127.0.0.1", port=pg_port, user=pg.user,
                          data_dir=str(pg.data_dir), socket_dir=str(pg.socket_dir), pidfile=str(pg.pidfile),
                          logfile=str(pg.logfile), start_command=pg.start_command(),
                          password_file=str(secrets_dir / "postgres_password"), database="trading",
                          timescaledb=builds.TIMESCALEDB_VERSION if tsdb else None, settings=pg.settings),
            questdb=None if qdb is None else dict(
                root=str(qdb.root), url=qdb.url, health_url=qdb.health_url, http_port=qdb.http_port,
                health_port=qdb.health_port, pg_port=qdb.pg_port, ilp_port=qdb.ilp_port, pidfile=str(qdb.pidfile),
                logfile=str(qdb.logfile), start_command=qdb.start_command(),
                backup_dir=str(self.state_dir / "backups" / "questdb"),
                state_file=str(self.state_dir / "questdb-known-counts.json")),
            model=None if api is None else dict(
                root=str(api.root), port=api.port, url=api.url, repo=str(api.repo), remote=str(api.remote),
                pidfile=str(api.pidfile), logfile=str(api.logfile), start_command=api.start_command(),
                model_path=seed.MODEL, card=str(Path(seed.MODEL).parent / "model_card.json"), md5=md5,
                backup_dir=str(self.state_dir / "backups" / "models")),
            missing=missing,
            seeded=None,
        )
        self._write(state)
        return state

    def _postgres_root(self) -> Path:
        """Where the cluster lives: .sandbox/postgres, unless PostgreSQL must run as the
        postgres user (we are root) and that user cannot reach the checkout (a clone below
        /root or another 0700 folder). Then the cluster goes to /var/lib/tradeops-dr/<id>/
        and .sandbox/postgres links to it."""
        link = self.state_dir / "postgres"
        if os.geteuid() != 0 or _postgres_can_reach(self.state_dir):
            link.mkdir(parents=True, exist_ok=True)
            return link
        import hashlib

        ident = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:12]
        root = Path("/var/lib/tradeops-dr") / ident / "postgres"
        root.mkdir(parents=True, exist_ok=True)
        for d in (root.parent.parent, root.parent):
            d.chmod(0o755)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(root)
        return root

    def _write(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_file)

    def down(self) -> dict:
        state = self.load()
        if state is None:
            return {}
        for _name, srv, _probe in self.parts(state):
            srv.stop()
        return self.status()

    def status(self) -> dict:
        state = self.load()
        if state is None:
            return dict(redis=dict(running=False, detail="no sandbox (run: tradeops-dr sandbox up)"),
                        postgres=dict(running=False, detail="no sandbox"))
        out = {}
        for name, srv, probe in self.parts(state):
            pid = read_pid(srv.pidfile)
            running = pid_alive(pid)
            ok, detail = probe() if running else (False, "not running")
            port = getattr(srv, "http_port", None) or srv.port
            out[name] = dict(running=running, pid=pid if running else None, port=port, ready=ok, detail=detail)
        return out

    def destroy(self) -> None:
        self.down()
        link = self.state_dir / "postgres"
        if link.is_symlink():
            shutil.rmtree(link.resolve().parent, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
