"""Real pipeline orchestrators on 127.0.0.1 for the tests and drills of the pipeline recovery (runbook 000 scenario 5:
Dagster; runbook 001: Airflow), running the stand-in pipeline of the users (standins/pipelines: a morning pack job of
two steps that can be made to fail once).

- Dagster: dagster-webserver and dagster-daemon from this venv (dagster-webserver is a test dependency), an instance
  folder of its own (DAGSTER_HOME, telemetry off), its queued runs launched by the daemon as in production.
- Airflow 3: its API server, scheduler (without its log server, which would listen on every address) and DAG
  processor, from the venv scripts/setup.sh makes (builds.airflow_venv), on SQLite with the LocalExecutor, the simple
  auth manager with one user whose password is in a 0600 file.

Each process is started by the same argv its service_control description (services()) gives a recovery, so that a
restart by the collection is the start the fixture made."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import builds
from ..errors import SandboxError
from ..paths import STANDINS
from .processes import free_port, kill_pidfile, pid_alive, read_pid, start_detached, wait_for

PIPELINES = STANDINS / "pipelines"
JOB = "morning_pack"
# a run's end, as Dagster (upper case) and Airflow (lower case) name it, compared in upper case
ENDED = ("SUCCESS", "FAILURE", "FAILED", "CANCELED")


class _Orchestrator:
    NAME = "orchestrator"
    ROLES: tuple[str, ...] = ()
    START_TIMEOUT = 90.0
    # Airflow's DAG processor took more than 20 s to leave after SIGTERM on a loaded 2-core machine (CI, stop 43): the
    # restart then failed as a process killed hard. 60 s, as the sandbox gives PostgreSQL and QuestDB.
    STOP_TIMEOUT = 60

    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or free_port()
        self.work = self.root / "pipeline"  # what the pipeline reads and writes (TRADEOPS_PIPELINE_DIR)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        raise NotImplementedError

    def argv(self, role: str) -> list[str]:
        raise NotImplementedError

    def command(self, role: str) -> list[str]:
        """The argv of a role's process with its environment (`env K=V ... argv`: env execs it, the pid stays)."""
        return ["env"] + [f"{k}={v}" for k, v in sorted(self.env().items())] + self.argv(role)

    def pidfile(self, role: str) -> Path:
        return self.root / f"{role}.pid"

    def logfile(self, role: str) -> Path:
        return self.root / f"{role}.log"

    def services(self) -> list[dict]:
        """The processes as tradeops.dr.service_control takes them, in start order."""
        return [dict(name=f"{self.NAME.lower()}-{role}", manager="process", foreground=True,
                     start_command=self.command(role), pidfile=str(self.pidfile(role)),
                     log_file=str(self.logfile(role)), workdir=str(self.root), stop_timeout=self.STOP_TIMEOUT)
                for role in self.ROLES]

    def prepare(self) -> None:
        pass

    def start(self, timeout: float | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
        self.prepare()
        try:
            for role in self.ROLES:
                if not pid_alive(read_pid(self.pidfile(role))):
                    proc = start_detached(self.command(role), self.logfile(role))
                    self.pidfile(role).write_text(f"{proc.pid}\n")
                    wait_for(lambda r=role: self.role_ready(r), timeout or self.START_TIMEOUT, f"{self.NAME} {role}")
            wait_for(self.ready, timeout or self.START_TIMEOUT, f"{self.NAME} on {self.url}")
        except SandboxError as exc:
            logs = "; ".join(f"{r}: {self.logfile(r).read_text(errors='replace')[-400:]}" for r in self.ROLES
                             if self.logfile(r).exists())
            raise SandboxError(f"{exc} ({logs})") from exc

    def ready(self) -> tuple[bool, str]:
        raise NotImplementedError

    def role_ready(self, role: str) -> tuple[bool, str]:  # pylint: disable=unused-argument
        """Whether the next role may start (a role that sets up shared storage first)."""
        return True, ""

    def kill(self, role: str, sig=signal.SIGKILL) -> None:
        kill_pidfile(self.pidfile(role), sig, f"{self.NAME} {role}", self.STOP_TIMEOUT)

    def stop(self) -> None:
        for role in reversed(self.ROLES):
            try:
                self.kill(role, signal.SIGTERM)
            except SandboxError:
                self.kill(role)

    def fail_next_run(self) -> None:
        """The next build step fails as a step fails when its upstream feed is late (standins/pipelines/work.py)."""
        (self.work / "fail_next").write_text("feed late\n")

    def wait_end(self, run_id: str, timeout: float = 120.0) -> str:
        """The run's status (upper case) once it ended, or as it is when `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while (status := self.status(run_id).upper()) not in ENDED and time.monotonic() < deadline:
            time.sleep(0.5)
        return status

    def loads(self) -> int:
        """How many times the first step (load_prices) ran."""
        log = self.work / "loads.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def _get(self, path: str, data: dict | None = None, headers: dict | None = None):
        req = urllib.request.Request(self.url + path, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(req, timeout=30) as resp:  # a loaded test machine: generous
            return json.loads(resp.read())


class DagsterServer(_Orchestrator):
    NAME = "Dagster"
    ROLES = ("webserver", "daemon")

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def env(self) -> dict:
        return {"DAGSTER_HOME": str(self.home), "TRADEOPS_PIPELINE_DIR": str(self.work),
                "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}

    def argv(self, role: str) -> list[str]:
        bindir, defs = Path(sys.executable).parent, str(PIPELINES / "dagster_defs.py")
        if role == "webserver":
            return [str(bindir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port), "-f", defs]
        return [str(bindir / "dagster-daemon"), "run", "-f", defs]

    def prepare(self) -> None:
        self.home.mkdir(exist_ok=True)
        # no telemetry (it would send to dagster.io): these machines talk to loopback only. Runs are queued and
        # launched by the daemon as in production, which looks at the queue every second here (its default: 5 s)
        (self.home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\n"
            "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
            "  config:\n    dequeue_interval_seconds: 1\n")

    def role_ready(self, role: str) -> tuple[bool, str]:
        """The webserver first: on a new instance it creates the storage, which the daemon starting beside it would
        create too (sqlite3: table runs already exists)."""
        if role != "webserver":
            return True, ""
        try:
            return bool(self._get("/server_info").get("dagster_version")), "GET /server_info"
        except (OSError, ValueError) as exc:
            return False, str(exc)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return self._get("/graphql", {"query": query, "variables": variables or {}})["data"]

    def ready(self):
        try:
            data = self.graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }")
        except (OSError, ValueError, KeyError) as exc:
            return False, str(exc)
        sick = [d["daemonType"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]
                if d["required"] and not d["healthy"]]
        return not sick, f"daemons not healthy yet: {sick}"

    def launch(self) -> str:
        """A new run of the job, as its schedule would launch it: the run id."""
        data = self.graphql(
            "mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
            {"p": {"selector": {"repositoryLocationName": "dagster_defs.py", "repositoryName": "__repository__",
                                "pipelineName": JOB}, "runConfigData": {}}})["launchPipelineExecution"]
        if data["__typename"] != "LaunchRunSuccess":
            raise SandboxError(f"Dagster did not launch {JOB}: {data}")
        return data["run"]["runId"]

    def status(self, run_id: str) -> str:
        return self.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                            {"id": run_id})["runOrError"]["status"]

    def runs(self) -> list[dict]:
        return self.graphql("{ runsOrError { ... on Runs { results { runId status parentRunId } } } }")[
            "runsOrError"]["results"]


class AirflowServer(_Orchestrator):
    NAME = "Airflow"
    ROLES = ("api-server", "scheduler", "dag-processor")
    USER = "ops"

    def __init__(self, root: Path, port: int | None = None):
        super().__init__(root, port)
        venv = builds.airflow_venv()
        if venv is None:
            raise SandboxError(builds.HOW_TO_GET["airflow"])
        self.venv = venv
        self.password_file = self.root / "airflow_password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def env(self) -> dict:
        home = self.root / "airflow_home"
        return {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PIPELINES / "airflow_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.root / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "TRADEOPS_PIPELINE_DIR": str(self.work),
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
        }

    def argv(self, role: str) -> list[str]:
        airflow = str(self.venv / "bin" / "airflow")
        return {"api-server": [airflow, "api-server"],
                "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
                "dag-processor": [airflow, "dag-processor"]}[role]

    def prepare(self) -> None:
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(16) + "\n")
        passwords = self.root / "passwords.json"
        if not passwords.exists():
            fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({self.USER: self.password}, f)
        if not (self.root / "airflow_home" / "airflow.db").exists():
            env = ["env"] + [f"{k}={v}" for k, v in sorted(self.env().items())]
            proc = subprocess.run(env + [str(self.venv / "bin" / "airflow"), "db", "migrate"],
                                  capture_output=True, text=True, check=False, timeout=300)
            if proc.returncode != 0:
                raise SandboxError(f"airflow db migrate failed: {(proc.stderr or proc.stdout)[-600:]}")

    def token(self) -> str:
        return self._get("/auth/token", {"username": self.USER, "password": self.password})["access_token"]

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.url + "/api/v2" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token()}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def ready(self):
        try:
            health = self._get("/api/v2/monitor/health")
            sick = [part for part in ("metadatabase", "scheduler", "dag_processor")
                    if (health.get(part) or {}).get("status") != "healthy"]
            if sick:
                return False, f"not healthy yet: {sick}"
            self.api("GET", f"/dags/{JOB}")
            return True, ""
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code} (the DAG not parsed yet?)"
        except (OSError, ValueError, KeyError) as exc:
            return False, str(exc)

    def launch(self) -> str:
        return self.api("POST", f"/dags/{JOB}/dagRuns", {"logical_date": None})["dag_run_id"]

    def status(self, run_id: str) -> str:
        return self.api("GET", f"/dags/{JOB}/dagRuns/{urllib.request.quote(run_id, safe='')}")["state"]
