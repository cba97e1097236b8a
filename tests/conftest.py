"""Shared fixtures: real redis-server processes on free loopback ports, seeded with the
ledger data set, inventories that describe them, and a runner for the playbooks."""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import importlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# answers recorded from real servers: test data of the project (tests/fixtures/README.md)
FIXTURES = ROOT / "tests" / "fixtures"
QUESTDB_FIXTURES = FIXTURES / "questdb-8.1.2"
TIMESCALE_FIXTURES = FIXTURES / "timescaledb-2.28.3"
COLLECTIONS = ROOT / ".state" / "collections"
_link = COLLECTIONS / "ansible_collections" / "tradeops" / "dr"
if not _link.exists():  # scripts/setup.sh makes it; make it here too for a bare pytest run
    _link.parent.mkdir(parents=True, exist_ok=True)
    _link.symlink_to(ROOT)
sys.path.insert(0, str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
# the incident callback writes a record of every run: the tests' records go to a folder of their own
_INCIDENTS = tempfile.mkdtemp(prefix="tradeops-incidents-")
os.environ.setdefault("TRADEOPS_DR_INCIDENTS_DIR", _INCIDENTS)
atexit.register(shutil.rmtree, _INCIDENTS, True)
# pytest-xdist workers (gw0, gw1, ...): each picks its servers' ports from its own slice
# (sandbox.free_port) and keeps its ansible-runner folders apart (the runs folder prunes old runs)
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw"):
    # scripts/test.sh keeps one slice more than there are workers (TRADEOPS_DR_PORT_SLICES) for the drills it runs
    # inside the execution environment beside pytest
    os.environ["TRADEOPS_DR_PORT_SLICE"] = "%s/%s" % (_WORKER[2:], os.environ.get("TRADEOPS_DR_PORT_SLICES")
                                                      or os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _RUNS = tempfile.mkdtemp(prefix=f"tradeops-runs-{_WORKER}-")
    os.environ["TRADEOPS_DR_RUNS_DIR"] = _RUNS
    atexit.register(shutil.rmtree, _RUNS, True)

from tradeops_dr import fastpath  # noqa: E402
from tradeops_dr import run_playbook  # noqa: E402
from tradeops_dr import seed  # noqa: E402
from tradeops_dr import builds  # noqa: E402
from tradeops_dr.sandbox import PostgresCluster, QuestDBServer, RedisServer, free_port, pid_alive, read_pid  # noqa: E402

import timing  # noqa: E402

# Ansible's collection finder for the whole worker, configured after ANSIBLE_CONFIG is set above (Ansible reads its
# configuration once) and before any test imports ansible_collections: the front door (capital.protect, run
# in-process by test_full_recovery's recover()) installs it, and a collection package imported before it was
# installed cannot import its further modules after (ValueError: collection metadata was not loaded for collection
# tradeops.dr - ten tests failed so in a CI run that started test_full_recovery.py first)
fastpath.init_plugins()


def pytest_configure(config):
    timing.install(config)


_DURATIONS = Path(__file__).with_name("file_durations.json")


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle: files slowest first, tests within a file shuffled
def pytest_collection_modifyitems(session, config, items):
    """The slowest files first (tests/file_durations.json, written by scripts/test_times.py --write-durations from a
    run's timings): pytest-xdist's loadfile hands files out in this order, so that a long file does not start
    last while the other worker idles (test_full_recovery.py, 725 s, started last and ran alone for 7 minutes).
    A file not measured yet counts as the median. The order is the same on every worker (xdist requires it)."""
    try:
        known = json.loads(_DURATIONS.read_text())
    except (OSError, ValueError):
        return
    median = sorted(known.values())[len(known) // 2] if known else 0.0
    first_seen = {}
    for i, item in enumerate(items):
        first_seen.setdefault(item.nodeid.split("::")[0], i)
    items.sort(key=lambda it: (-known.get(it.nodeid.split("::")[0], median), first_seen[it.nodeid.split("::")[0]]))


def need(why: str | None) -> None:
    """Skip with the reason when something a test needs is missing (why is None when it is there); under
    CI=true its absence fails the test instead: CI installs everything the suite needs."""
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, yet {why}")
        pytest.skip(why)


def need_module(name: str, install: str):
    """The module, imported; a missing one is need()'s business."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(f"the Python module {name} is not installed ({install})")
        return None


def need_server(name: str) -> None:
    """Skip (saying how to get it) when the real server `name` is not installed here; under
    CI=true its absence fails the test: CI installs both from ../shared/servers."""
    why = builds.missing(name)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, yet {why}")
        pytest.skip(why)


class SeededRedis:
    """A real redis-server (AOF on, aof-load-truncated no, password) with the seed data set
    written to its ledger and applied to it."""

    def __init__(self, root: Path, extra_conf: str = ""):
        self.srv = RedisServer(root, free_port(), "pw-" + os.urandom(8).hex())
        self.srv.write_config(extra_conf)
        self.srv.start()
        self.ledger = root / "ledger.db"
        self.expected = seed.seed_redis(self.srv, self.ledger)
        self.backup_dir = root / "aof-backups"

    @property
    def port(self) -> int:
        return self.srv.port

    def client(self):
        return self.srv.client()

    def running(self) -> bool:
        return pid_alive(read_pid(self.srv.pidfile))

    def kill9(self) -> None:
        self.srv.kill(signal.SIGKILL)

    def lengths(self) -> dict:
        with self.client() as c:
            return {name: c.xlen(name) for name in self.expected["streams"]}

    def snapshot(self) -> dict:
        """Every key's type and content, to prove that a run changed nothing."""
        out = {}
        with self.client() as c:
            for key in sorted(c.scan_iter()):
                kind = c.type(key)
                if kind == "stream":
                    out[key] = c.xrange(key)
                elif kind == "hash":
                    out[key] = c.hgetall(key)
                else:
                    out[key] = c.get(key)
        return out

    def role_vars(self, **overrides) -> dict:
        v = dict(
            redis_restart_host="127.0.0.1",
            redis_restart_port=self.port,
            redis_restart_password=self.srv.password,
            redis_restart_service=dict(name="redis", manager="process", start_command=self.srv.start_command(),
                                       pidfile=str(self.srv.pidfile)),
            redis_restart_config_file=str(self.srv.conf),
            redis_restart_ready_timeout=20,
            redis_restart_streams=self.expected["streams"],
            redis_restart_keys=self.expected["keys"],
            redis_restart_ledger_path=str(self.ledger),
            redis_restart_aof_backup_dir=str(self.backup_dir),
            redis_restart_snapshot_dir=str(self.backup_dir.parent / "snapshots"),
        )
        v.update(overrides)
        return v

    def stop(self) -> None:
        if self.running():
            self.srv.kill(signal.SIGKILL)


@pytest.fixture
def redis_seeded(tmp_path):
    r = SeededRedis(tmp_path / "redis")
    yield r
    r.stop()


def write_inventory(path: Path, hostvars: dict, group: str = "redis_servers", host: str = "host-under-test") -> Path:
    inv = {"all": {"children": {group: {"hosts": {host: dict(
        ansible_connection="local", ansible_python_interpreter=sys.executable, **hostvars)}}}}}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


class Runner:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.n = 0

    def __call__(self, playbook: str, hostvars: dict, check: bool = False, tags: str | None = None,
                 group: str = "redis_servers", **extra):
        self.n += 1
        inv = write_inventory(self.tmp / f"inventory-{self.n}.yml", hostvars, group=group)
        pdd = self.tmp / f"runner-{self.n}"
        return run_playbook(playbook, inventory=str(inv), extravars=extra or None, check=check, tags=tags,
                            private_data_dir=str(pdd))


@pytest.fixture
def run(tmp_path):
    return Runner(tmp_path)


def artifacts_text(result) -> str:
    """Everything ansible-runner recorded of a run: stdout and every event."""
    parts = [result.stdout]
    for f in sorted(Path(result.artifact_dir).rglob("*")):
        if f.is_file():
            parts.append(f.read_text(errors="replace"))
    return "\n".join(parts)


def record(result, key: str = "redis_recovery") -> dict:
    return next(iter((result.data.get(key) or {}).values()), {})


def load_script(name: str, folder: str = "scripts"):
    """<folder>/<name>.py imported as a module (scripts/ and bench/ are no packages): what their unit tests call."""
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loaded_after(imports: list[str], names: list[str]) -> dict[str, bool]:
    """Which of `names` a fresh interpreter holds in sys.modules after importing `imports`, on this process's
    sys.path (the collection resolves as here): what loading a plugin or a module costs every run, checked
    without timing it."""
    code = "import json, sys\n" + "".join(f"import {i}\n" for i in imports) + \
        f"print(json.dumps({{n: n in sys.modules for n in {list(names)!r}}}))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_child(module: str, call: str, *args):
    """tradeops_dr.<module>.<call>(*args) in a child process, JSON in and out: a process that has not resolved
    anything through Ansible yet (fastpath's in-process caches and plugin loader start empty), as a command does."""
    code = ("import json, sys\nfrom tradeops_dr import %s as m\n"
            "print(json.dumps(m.%s(*json.loads(sys.argv[1])), default=str))" % (module, call))
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_module(module, args: dict, capsys) -> tuple[dict, bool]:
    """Run a module's main() in-process with real arguments; return (result, failed)."""
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    out = json.loads(capsys.readouterr().out)
    return out, exc.value.code != 0 or bool(out.get("failed"))


# --------------------------------------------------------------------------- PostgreSQL

class PG:
    """One real PostgreSQL 15 cluster for the session (initdb + pg_ctl on a free loopback port);
    each test gets its own databases on it."""

    def __init__(self, cluster: PostgresCluster):
        self.cluster = cluster
        self.port = cluster.port
        self.user = cluster.user
        self.password = cluster.password

    def connect(self, dbname: str = "postgres", autocommit: bool = True):
        import psycopg2

        conn = psycopg2.connect(**self.cluster.dsn(dbname))
        conn.autocommit = autocommit
        return conn

    def sql(self, dbname: str, statement: str, args=None):
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def databases(self) -> set:
        return {r[0] for r in self.sql("postgres", "SELECT datname FROM pg_database")}

    def counts(self, dbname: str) -> dict:
        return {t: self.sql(dbname, f"SELECT count(*) FROM {t}")[0][0] for t in ("public.trades", "public.positions")}

    def seed(self, dbname: str, n_trades: int = 5000) -> dict:
        return seed.seed_postgres(self.cluster, n_trades=n_trades, dbname=dbname)

    def login(self) -> dict:
        """Module options for this server."""
        return dict(login_host="127.0.0.1", login_port=self.port, login_user=self.user,
                    login_password=self.password)

    def env(self) -> dict:
        return dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=self.user, PGPASSWORD=self.password)


def _cluster(settings: dict | None = None):
    import shutil
    import tempfile

    # as root, PostgreSQL runs as postgres, which cannot enter pytest's 0700 tmp folders
    root = Path(tempfile.mkdtemp(prefix="tradeops-dr-pg-", dir="/var/tmp"))
    root.chmod(0o755)
    cluster = PostgresCluster(root / "pg", free_port(), "pg-test-" + os.urandom(6).hex(), settings=settings or {})
    cluster.root.mkdir()
    cluster.root.chmod(0o755)
    try:
        cluster.init()
        cluster.start()
        yield PG(cluster)
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """A plain PostgreSQL 15 (TimescaleDB, where installed, is not preloaded)."""
    yield from _cluster()


@pytest.fixture(scope="session")
def ts_server_session():
    need_server("timescaledb")
    yield from _cluster(builds.TIMESCALEDB_SETTINGS)


@pytest.fixture
def ts(ts_server_session):
    """PostgreSQL 15 with the real TimescaleDB preloaded; databases a test creates are dropped after it."""
    yield from _dropping_new_databases(ts_server_session)


def _dropping_new_databases(server):
    before = server.databases()
    yield server
    conn = server.connect()
    with conn.cursor() as cur:
        for name in server.databases() - before:
            cur.execute('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % name.replace('"', '""'))
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cur.execute('DROP DATABASE IF EXISTS "%s"' % name.replace('"', '""'))
    conn.close()


@pytest.fixture
def pg(pg_server):
    """The session's server; databases a test creates are dropped after it."""
    yield from _dropping_new_databases(pg_server)


# --------------------------------------------------------------------------- QuestDB

@pytest.fixture
def questdb_real(tmp_path):
    """A real QuestDB 8.1.2 on free loopback ports, with its own root, stopped after the test."""
    need_server("questdb")
    ports = set()
    for _port in range(4):
        ports.add(free_port(avoid=ports))
    http, health, pgw, ilp = sorted(ports)
    srv = QuestDBServer(tmp_path / "questdb" / "root", http, health, pgw, ilp)
    srv.write_config()
    try:
        srv.start()
        yield srv
    finally:
        srv.kill()


# --------------------------------------------------------------------------- exchange stand-in

class StandinExchange:
    """An exchange stand-in of src/tradeops_dr/standins in a thread of the test process, on 127.0.0.1; modules reach
    it through ccxt with api_base pointed here. venue "binanceusdm": binance_futures.py (Binance USD-M futures, a
    dead-man's timer per symbol); "kraken": kraken_spot.py (Kraken spot, one account-wide cancelAllOrdersAfter timer,
    a cancel-all that takes no instrument, base64 secrets)."""

    def __init__(self, venue: str = "binanceusdm"):
        sys.path.insert(0, str(ROOT / "src" / "tradeops_dr" / "standins"))
        import binance_futures
        import kraken_spot

        self.venue = venue
        self.api_key = "key-" + os.urandom(6).hex()
        if venue == "kraken":
            self.secret = base64.b64encode(os.urandom(48)).decode()
            self.server = kraken_spot.serve(0, self.api_key, self.secret)
        else:
            self.secret = "secret-" + os.urandom(12).hex()
            self.server = binance_futures.serve(0, self.api_key, self.secret)
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]

    def params(self, **extra) -> dict:
        """The exchange options of a module."""
        p = dict(exchange=self.venue, api_key=self.api_key, api_secret=self.secret, api_base=self.base,
                 request_timeout=5, retries=1)
        p.update(extra)
        return p

    def role_vars(self, prefix: str) -> dict:
        return {f"{prefix}_exchange": self.params()}

    def control(self, what: str, data: dict | None = None) -> dict:
        import urllib.request

        req = urllib.request.Request(f"{self.base}/_standin/{what}", data=json.dumps(data or {}).encode(),
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def state(self) -> dict:
        return self.control("state")

    def ccxt(self):
        import ccxt

        if self.venue == "kraken":
            ex = ccxt.kraken(dict(apiKey=self.api_key, secret=self.secret, enableRateLimit=False))
            ex.urls["api"].update(public=self.base, private=self.base)
            return ex
        ex = ccxt.binanceusdm(dict(apiKey=self.api_key, secret=self.secret,
                                   options=dict(fetchCurrencies=False, warnOnFetchOpenOrdersWithoutSymbol=False)))
        for k, v in ex.urls["api"].items():
            if isinstance(v, str):
                ex.urls["api"][k] = self.base + "/" + v.split("/", 3)[3]
        return ex

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exchange():
    ex = StandinExchange()
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def kraken():
    ex = StandinExchange("kraken")
    try:
        yield ex
    finally:
        ex.stop()


# --------------------------------------------------------------------------- an HTTP catcher on loopback

class _Catch(BaseHTTPRequestHandler):
    """What a notification service or the Decision Journal would receive: every POST, kept. Like a real service it
    serves its own paths only (the journal, the notification endpoints the tests name); any other path is answered
    404 {"detail": "Not Found"}, so that a client that ignores an error status is seen."""

    got: list = []
    PATHS = ("/journal", "/notify", "/ops", "/risk", "/st", "/l2", "/l3")

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).got.append((self.path, dict(self.headers), json.loads(body)))
        known = self.path.split("?")[0] in self.PATHS
        answer = b"{}" if known else b'{"detail": "Not Found"}'
        self.send_response(200 if known else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def catching(handler=_Catch):
    """(port, posts) of an HTTP server on 127.0.0.1 whose requests `handler` (a _Catch) answers and keeps."""
    handler.got = []
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def catcher():
    """(port, posts) of an HTTP server on 127.0.0.1 that answers a POST to its paths (_Catch.PATHS) with {}, and
    to any other path with 404."""
    with catching() as caught:
        yield caught
