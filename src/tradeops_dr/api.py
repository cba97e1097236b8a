"""Run the collection's playbooks through ansible-runner and read the outcome back.

    from tradeops_dr import run_playbook
    result = run_playbook("redis_failure.yml", inventory="inventories/prod")
    if not result.ok:
        print(result.failures)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner

from .paths import cache_dir, collections_base, is_checkout, project_root, with_callbacks


@dataclass
class Failure:
    host: str
    task: str
    msg: str


@dataclass
class RunResult:
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    duration: float  # seconds, wall clock, ansible-playbook start to end
    stats: dict = field(default_factory=dict)  # {host: {ok, changed, failures, unreachable, skipped}}
    failures: list[Failure] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # what the roles exported with ansible.builtin.set_stats
    artifact_dir: str = ""
    stdout: str = ""
    run_events: list = field(default_factory=list, repr=False)  # every ansible-runner event of the run
    record: dict = field(default_factory=dict)  # where the incident callback wrote the record: {id, json, markdown}

    @property
    def incident_record(self) -> str | None:
        """The Markdown incident record the tradeops.dr.incident callback wrote (the .json lies beside it)."""
        return self.record.get("markdown")

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())


def _resolve(path: str | os.PathLike, base: Path, subdir: str) -> str:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p.resolve())
    cand = base / subdir / p
    return str(cand if cand.exists() else base / p)


def inventory_path(inventory: str | os.PathLike | None) -> str:
    """The inventory a run uses: a path, a name under inventories/ ("local", "prod"), default inventories/local."""
    root = project_root()
    return _resolve(inventory, root, "inventories") if inventory else str(root / "inventories" / "local")


def _host_stats(stats_event: dict) -> dict:
    out: dict = {}
    for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
        for host, n in (stats_event.get(key) or {}).items():
            out.setdefault(host, {})["unreachable" if key == "dark" else key] = n
    return out


KEEP_RUNS = 20


# what ansible-runner puts into the environment of the ansible-playbook it runs
_RUNNER_ENV = ("AWX_ISOLATED_DATA_DIR", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_STDOUT_CALLBACK", "ORIGINAL_STDOUT_CALLBACK")


def _leave_the_outer_runner() -> None:
    """A run started from inside a runner job (an AWX job, playbooks/drill.yml) inherits that
    runner's callback settings; ansible-runner appends to them, and the inner run then fails in
    Ansible's start-up ('awx_display' has no attribute 'CallbackModule'). This process's own
    runs use their own runner's settings only."""
    if "AWX_ISOLATED_DATA_DIR" in os.environ:
        for key in _RUNNER_ENV:
            os.environ.pop(key, None)


def _ansible_settings(root: Path) -> dict:
    """A checkout runs with its own ansible.cfg. An installed collection keeps the user's Ansible
    configuration and gets, through the environment, what the collection's playbooks rely on:
    the collection on the collections path, the incident callback (and lean_workers, which spares each
    task's worker the garbage collection of what it inherited), pipelining, an unparsable inventory as
    an error."""
    if is_checkout(root):
        return {"ANSIBLE_CONFIG": str(root / "ansible.cfg")}
    current = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or \
        os.pathsep.join(["~/.ansible/collections", "/usr/share/ansible/collections"])
    return {
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([str(collections_base(root)), current]),
        "ANSIBLE_CALLBACKS_ENABLED": with_callbacks(os.environ.get("ANSIBLE_CALLBACKS_ENABLED", ""),
                                                    "tradeops.dr.incident", "tradeops.dr.lean_workers"),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }


def runs_dir() -> str:
    """Where runs keep ansible-runner's folders (artifacts hold the run's environment and its
    events): private to the user (0700), and only the newest KEEP_RUNS are kept
    ($TRADEOPS_DR_RUNS_DIR, default ~/.cache/tradeops-dr/runs)."""
    base = Path(os.environ.get("TRADEOPS_DR_RUNS_DIR") or cache_dir("runs"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    runs = sorted((p for p in base.glob("run-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:max(0, len(runs) - KEEP_RUNS + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return str(base)


def run_playbook(playbook: str, inventory: str | os.PathLike | None = None, extravars: dict | None = None,
                 limit: str | None = None, tags: str | None = None, skip_tags: str | None = None,
                 check: bool = False, verbosity: int = 0, envvars: dict | None = None,
                 private_data_dir: str | None = None, timeout: int | None = None, quiet: bool = True,
                 event_handler=None) -> RunResult:
    """Run playbooks/<playbook> (or a path) with ansible-runner. Never raises for a failed
    play: read RunResult.ok, .failures and .data. `event_handler(event)` sees every runner
    event as it happens (return True to keep it)."""
    root = project_root()
    _leave_the_outer_runner()
    pdd = private_data_dir or tempfile.mkdtemp(prefix="run-", dir=runs_dir())
    os.makedirs(pdd, exist_ok=True)
    env = {
        # ansible-playbook of this venv, even when PATH does not name it
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "ANSIBLE_NOCOLOR": "1",
    }
    env.update(_ansible_settings(root))
    # the incident callback says where it wrote the run's record here (data, not a line of output)
    pointer = os.path.join(pdd, "incident-record.json")
    env["TRADEOPS_DR_RECORD_POINTER"] = pointer
    env.update(envvars or {})
    cmdline = []
    if check:
        cmdline.append("--check")
    if skip_tags:
        cmdline += ["--skip-tags", skip_tags]
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=pdd,
        project_dir=str(root),
        playbook=_resolve(playbook, root, "playbooks"),
        inventory=inventory_path(inventory),
        extravars=extravars or {},
        limit=limit,
        tags=tags,
        cmdline=" ".join(cmdline) or None,
        envvars=env,
        verbosity=verbosity,
        quiet=quiet,
        timeout=timeout,
        event_handler=event_handler,
    )
    duration = time.monotonic() - started
    failures, stats, data = [], {}, {}
    events = list(runner.events)
    for ev in events:
        kind = ev.get("event")
        ed = ev.get("event_data", {})
        if kind in ("runner_on_failed", "runner_on_unreachable") and not ed.get("ignore_errors"):
            res = ed.get("res", {})
            failures.append(Failure(host=ed.get("host", "?"), task=ed.get("task", "?"),
                                    msg=str(res.get("msg") or res.get("stderr") or res)[:2000]))
        elif kind == "playbook_on_stats":
            stats = _host_stats(ed)
            data = ed.get("artifact_data") or {}
        elif kind == "playbook_on_no_hosts_matched":
            # a recovery that reaches no host did nothing: never a success
            failures.append(Failure(host="-", task=ed.get("play", "?"), msg=(
                f"no host of inventory {inventory or 'inventories/local'} matched play {ed.get('play', '?')!r}"
                f"{' with --limit ' + limit if limit else ''}: the run reached no host")))
    stdout_file = Path(runner.config.artifact_dir) / "stdout"
    stdout = stdout_file.read_text(errors="replace") if stdout_file.exists() else ""
    status, rc = runner.status, runner.rc
    if status == "successful" and (failures or not stats):
        status, rc = "failed", rc or 2  # no host matched, or no play ran at all
        if not failures:
            failures.append(Failure(host="-", task="-", msg="the run reached no host"))
    if status != "successful" and not failures:  # ansible-playbook stopped before any task: say why
        errors = [line.strip() for line in stdout.splitlines() if "ERROR" in line]
        failures.append(Failure(host="-", task="-", msg=(errors[-1] if errors else f"ansible-playbook ended {status} "
                                                         f"(rc={rc}) before any task ran; see {stdout_file}")))
    record = {}
    if os.path.exists(pointer):
        with open(pointer, encoding="utf-8") as handle:
            record = json.load(handle)
    return RunResult(status=status, rc=rc, duration=duration, stats=stats, failures=failures,
                     data=data, artifact_dir=runner.config.artifact_dir, stdout=stdout, run_events=events, record=record)
