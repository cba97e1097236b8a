"""The sandbox stack (`Sandbox`): its servers created, seeded, started, stopped and described in
sandbox.json, which `inventories/local` reads."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import psycopg2

from .. import builds, seed
from ..paths import STANDINS, project_root
from .processes import free_port, free_ports, pid_alive, postgres_can_reach, read_pid
from .servers import InferenceAPI, PmsStandin, PostgresCluster, QuestDBServer, RedisServer


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
        conn = psycopg2.connect(**Sandbox.postgres_cluster(state).dsn(dbname or state["postgres"]["database"]))
        conn.autocommit = True
        return conn

    @staticmethod
    def inference_api(state: dict) -> InferenceAPI | None:
        m = state.get("model")
        return InferenceAPI(Path(m["root"]), m["port"]) if m else None

    @staticmethod
    def pms_standin(state: dict) -> PmsStandin | None:
        p, pg = state.get("pms"), state["postgres"]
        return PmsStandin(Path(p["root"]), p["port"], pg["port"], pg["user"], Path(pg["password_file"]),
                          Path(p["token_file"]), p["database"]) if p else None

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
        pms = self.pms_standin(state)
        if pms is not None:
            out.append(("pms", pms, pms.ready))
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
        if "pms" not in state:  # sandboxes made before the PMS part existed
            state["pms"] = self._pms_part(state)
            self._write(state)
        started = []  # what this call starts: stopped again when a part does not come up
        try:
            for _name, srv, _probe in self.parts(state):
                if not pid_alive(read_pid(srv.pidfile)):
                    started.append(srv)
                srv.start()
        except Exception:
            for srv in reversed(started):
                srv.stop()
            raise
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
        # every part's ports at once, none of them another's: none is bound before the parts start (the inference
        # API once got one of QuestDB's and failed to start, in this sandbox's every `up`)
        ports = free_ports(("redis", "postgres", "questdb http", "questdb health", "questdb pg", "questdb ilp",
                            "inference"))
        redis_port, pg_port = ports["redis"], ports["postgres"]
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
            qdb = QuestDBServer(self.state_dir / "questdb" / "root", ports["questdb http"], ports["questdb health"],
                                ports["questdb pg"], ports["questdb ilp"])
            qdb.write_config()
        api = None
        missing = {name: why for name in ("timescaledb", "questdb") if (why := builds.missing(name))}
        # the seed uses DVC's Python API, the modules its command
        if shutil.which("dvc") and shutil.which("git") and importlib.util.find_spec("dvc"):
            api = InferenceAPI(self.state_dir / "model", ports["inference"])
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

    def _pms_part(self, state: dict) -> dict:
        """The PMS stand-in: its folder, port and bearer token (a secret file, 0600), its database on the
        sandbox's PostgreSQL."""
        root = self.state_dir / "pms"
        root.mkdir(parents=True, exist_ok=True)
        token_file = self.state_dir / "secrets" / "pms_token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18) + "\n")
        # the other parts' ports, free now if they are not running yet
        taken = {state["redis"]["port"], state["postgres"]["port"], (state.get("model") or {}).get("port")} | {
            (state.get("questdb") or {}).get(k) for k in ("http_port", "health_port", "pg_port", "ilp_port")}
        pms = PmsStandin(root, free_port(avoid=taken), state["postgres"]["port"], state["postgres"]["user"],
                         Path(state["postgres"]["password_file"]), token_file)
        return dict(root=str(root), port=pms.port, url=pms.url, database=pms.database, token_file=str(token_file),
                    pidfile=str(pms.pidfile), logfile=str(pms.logfile), start_command=pms.start_command())

    def _postgres_root(self) -> Path:
        """Where the cluster lives: .sandbox/postgres, unless PostgreSQL must run as the
        postgres user (we are root) and that user cannot reach the checkout (a clone below
        /root or another 0700 folder). Then the cluster goes to /var/lib/tradeops-dr/<id>/
        and .sandbox/postgres links to it."""
        link = self.state_dir / "postgres"
        if os.geteuid() != 0 or postgres_can_reach(self.state_dir):
            link.mkdir(parents=True, exist_ok=True)
            return link
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
