"""tradeops-dr: the sandbox stack, playbook runs through ansible-runner, and drills."""

from __future__ import annotations

import argparse
import json
import sys
import time

_T0 = time.perf_counter()  # the kill-switch fast path reports its time from here
DEFAULT_BACKUP_ROOT = "/var/backups/tradeops-dr/postgres"  # pg_backup_root's default


def _kv(items):
    out = {}
    for item in items or []:
        if item.startswith("@") or "=" not in item:
            raise SystemExit(f"tradeops-dr: -e takes key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def cmd_sandbox(args) -> int:
    from .sandbox import Sandbox, SandboxError

    sb = Sandbox(args.state_dir)
    try:
        if args.action == "up":
            state = sb.up()
            seeded = state.get("seeded") or {}
            print(f"sandbox up in {sb.state_dir}")
            print(f"  redis     127.0.0.1:{state['redis']['port']}  (AOF on, ledger {state['redis']['ledger']})")
            tsdb = state["postgres"].get("timescaledb")
            print(f"  postgres  127.0.0.1:{state['postgres']['port']}  (database trading, user {state['postgres']['user']}"
                  + (f"; TimescaleDB {tsdb}, hypertable ticks with {seeded['timescaledb']['compressed_chunks']} "
                     "compressed chunks" if tsdb and "timescaledb" in seeded else "; no TimescaleDB") + ")")
            if state.get("questdb"):
                q = state["questdb"]
                print(f"  questdb   127.0.0.1:{q['http_port']}  (HTTP; health {q['health_port']}; WAL table trades)")
            if state.get("model"):
                m = state["model"]
                print(f"  inference 127.0.0.1:{m['port']}  (stand-in serving {m['model_path']}, git+DVC in {m['repo']})")
            if state.get("pms"):
                print(f"  pms       127.0.0.1:{state['pms']['port']}  (stand-in of the PMS API, its book in the database "
                      f"{state['pms']['database']}; bearer token in {state['pms']['token_file']})")
            for name, why in (state.get("missing") or {}).items():
                print(f"  {name:<9} not part of this sandbox: {why}")
            print("  inventory inventories/local")
            return 0
        status = sb.down() if args.action == "down" else sb.status()
    except SandboxError as exc:
        print(f"tradeops-dr: {exc}", file=sys.stderr)
        return 1
    if args.action == "down":
        print("sandbox down" if status else "no sandbox to stop")
    bad = 0
    for name, st in status.items():
        port = f"127.0.0.1:{st['port']}" if st.get("port") else ""
        print(f"  {name:<9} {'running' if st.get('running') else 'stopped':<8} "
              f"{'ready' if st.get('ready') else '':<6} {port:<16} {st.get('detail', '')}")
        bad += args.action == "status" and not st.get("ready")
    return 1 if bad else 0


def cmd_run(args) -> int:
    from .api import run_playbook

    res = run_playbook(args.playbook, inventory=args.inventory, extravars=_kv(args.extra_vars), limit=args.limit,
                       tags=args.tags, check=args.check, quiet=False)
    print(f"\n{res.status} (rc={res.rc}) in {res.duration:.2f}s; changed={res.changed}; artifacts {res.artifact_dir}")
    for f in res.failures:
        print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
    return 0 if res.ok else (res.rc or 1)


def cmd_drill(args) -> int:
    from . import drill, drill_history
    from .sandbox import Sandbox

    chosen = args.scenario or ["all"]
    if "history" in chosen and len(chosen) > 1:
        print("tradeops-dr: `drill history` takes no other scenario", file=sys.stderr)
        return 2
    if chosen == ["history"]:
        records = drill_history.load()
        if not records:
            print(f"no drill history yet in {drill_history.drills_dir()} (run: tradeops-dr drill)")
            return 1
        print("\n".join(drill_history.history_lines(records, args.last)))
        print(f"history {drill_history.drills_dir() / 'history.jsonl'}; reports and charts beside it")
        return 0
    try:
        hostvars = drill_history.require_drill_target(args.inventory)
    except drill_history.NotADrillTarget as exc:
        print(f"tradeops-dr: {exc}", file=sys.stderr)
        return 2
    sb = Sandbox(args.state_dir)
    steps: list = []
    printer = drill.Printer(drill_history.objectives(hostvars))
    drill_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    print("starting the sandbox (tradeops-dr sandbox up) ...", flush=True)
    state = sb.up()
    missing = dict(state.get("missing") or {})
    if "detect" in chosen or "all" in chosen:
        from . import monitoring

        why = monitoring.missing() or (None if args.inventory == "local" else
                                       "the monitoring stack watches the sandbox only (-i local)")
        if why:
            missing["monitoring (drill detect)"] = why
    drill.print_header(missing)
    for name, run, what in drill.DRILLS:
        if name in chosen or "all" in chosen:
            print(f"... {what}", flush=True)
            steps += run(sb, inventory=args.inventory, on_step=printer)
    print(f"\n{sum(s.ok for s in steps)} passed, {sum(not s.ok for s in steps)} failed"
          + (f" ({sum(not s.met for s in steps)} missed the runbook's objective)" if any(not s.met for s in steps) else ""))
    if steps:
        history = drill_history.append(steps, drill_id, args.inventory)
        md, png = drill_history.report(steps, drill_id, args.inventory, drill_history.load(history))
        print(f"report {md} (chart {png}); history {history}; `tradeops-dr drill history` shows the trend")
    print(f"The sandbox is still running ({sb.state_dir}); see it with `tradeops-dr sandbox status`, "
          "stop it with `tradeops-dr sandbox down` (its data is kept for the next `sandbox up`).")
    return 0 if steps and all(s.ok for s in steps) else 1


def cmd_kill_switch(args) -> int:
    """engage: the flag first, straight from here (no Ansible import), then the playbook."""
    from . import fastpath

    if args.action == "engage" and not (args.reason and args.actor):
        print("tradeops-dr: engage needs --reason and --actor (they are recorded with the switch); nothing was done",
              file=sys.stderr)
        return 2
    if args.action == "engage":
        try:
            done = fastpath.engage(args.inventory, args.reason, args.actor, args.incident, args.state, args.limit,
                                   started=_T0)
        except Exception as exc:  # any failure here must not stop the playbook from failing closed
            print(f"KILL SWITCH FAST PATH FAILED: {exc}; running the playbook, which fails closed", file=sys.stderr)
            done = None
        if done and done["outcome"] == "failed":
            print(f"KILL SWITCH NOT SET ANYWHERE: {done['error']}; running the playbook, which fails closed",
                  file=sys.stderr, flush=True)
        elif done and done["outcome"] == "flag-file":
            print(f"KILL SWITCH NOT SET IN REDIS ({done['error']}): the local flag file {done['flag_file']} was "
                  f"written {done['seconds']:.3f}s after start (fail closed)", file=sys.stderr, flush=True)
        elif done:
            print(f"kill switch {done['outcome']} in Redis {done['endpoint']} ({done['host']}) "
                  f"{done['seconds']:.3f}s after start (connection from {done['via']}"
                  f"{': ' + done['why_ansible'] if done['why_ansible'] else ''})", flush=True)
        if args.flag_only:
            return 0 if done and done["outcome"] not in ("flag-file", "failed") else 1
    from .api import run_playbook

    extra = dict(kill_switch_action=args.action, kill_switch_actor=args.actor or "",
                 kill_switch_reason=args.reason or "", kill_switch_incident=args.incident or "",
                 kill_switch_state=args.state)
    if args.action == "reset":
        extra.update(kill_switch_confirm=args.confirm or "", kill_switch_approver=args.approver or "",
                     kill_switch_force=args.force)
    res = run_playbook("kill_switch.yml", inventory=args.inventory, extravars=extra, limit=args.limit, quiet=False)
    for f in res.failures:
        print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
    if res.ok:
        try:  # every run refreshes the fast path's private cache of the resolved connection
            fastpath.resolve(args.inventory, args.limit, use_cache=False)
        except Exception as exc:  # the cache only saves time at the next engage
            print(f"note: the fast path's connection cache was not refreshed: {exc}", file=sys.stderr)
    return 0 if res.ok else (res.rc or 1)


def cmd_pitr(args) -> int:
    """tradeops-dr pitr find: the transactions that touched a table around a time, from the archived
    WAL (playbooks/pitr_find.yml on the inventory's PostgreSQL hosts), and the recovery command."""
    from tradeops_dr.api import run_playbook

    extra = dict(dr_pitr_table=args.table, dr_pitr_around=args.around, dr_pitr_window=args.window)
    res = run_playbook("pitr_find.yml", inventory=args.inventory, extravars=extra, limit=args.limit)
    if not res.ok:
        for f in res.failures:
            print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
        return res.rc or 1
    found = res.data.get("pitr_transactions") or {}
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for host, txs in sorted(found.items()):
        print(f"{host}: {len(txs)} transaction(s) touched {args.table} within {args.window} s of {args.around}")
        print(f"  {'xid':>8}  {'committed (UTC)':<32} {'records':<24} target just before it")
        for t in txs:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(t["records"].items()))
            print(f"  {t['xid']:>8}  {t['committed']:<32} {kinds:<24} {t['target_before']}")
        if txs:
            print("  recover to just before one of them (the old data directory is kept aside):\n"
                  f"    ansible-playbook playbooks/database_failure.yml -i {args.inventory or 'inventories/local'} "
                  "-e timescale_restore_method=pitr -e timescale_restore_action=restore \\\n"
                  "      -e timescale_restore_pitr_target_type=time "
                  f"-e 'timescale_restore_pitr_target=\"{txs[-1]['target_before']}\"'")
    return 0


def cmd_backups(args) -> int:
    """The database backup catalog (manifests written by the pg_backup role)."""
    if args.action == "verify":
        from tradeops_dr.api import run_playbook

        extra = dict(pg_backup_action="verify", pg_backup_test_restore=args.test_restore)
        res = run_playbook("backup.yml", inventory=args.inventory, extravars=extra, limit=args.limit, quiet=False)
        for f in res.failures:
            print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
        return 0 if res.ok else (res.rc or 1)
    from tradeops_dr.paths import module_utils

    backup = module_utils("_backup")
    root = args.root
    if root is None:  # the production default, else the sandbox's catalog when there is one
        from pathlib import Path

        from .sandbox import Sandbox

        sandbox_root = Sandbox(args.state_dir).state_dir / "backups" / "postgres"
        root = DEFAULT_BACKUP_ROOT if Path(DEFAULT_BACKUP_ROOT).is_dir() or not sandbox_root.is_dir() else str(sandbox_root)
        if not args.json:
            print(f"catalog {root} (--root to choose another)")
    entries = [e for e in backup.catalog(root) if not args.database or e["database"] == args.database]
    now = time.time()
    if args.json:
        print(json.dumps([dict(e, created_at=backup.iso(e["created_at"])) for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no backups below {root}")
        return 1
    print(f"{'created (UTC)':20} {'age h':>7} {'database':16} {'kind':7} {'status':11} {'MB':>9}  dump")
    for e in entries:
        print(f"{backup.iso(e['created_at']):20} {(now - e['created_at']) / 3600:7.1f} {e['database'] or '-':16} "
              f"{e['kind'] or '-':7} {e['status']:11} {e['size'] / 2**20:9.1f}  {e['dump'] or e['manifest']}")
    newest = backup.newest(entries, args.database, status="verified")
    print(f"newest verified: {newest['dump'] if newest else 'NONE'}")
    return 0 if newest else 1


class _Progress:
    """Live progress of a recovery for a person: one row per component and host (stage, the task
    running now, its state, seconds), drawn by rich; plain lines when stdout is not a terminal."""

    def __init__(self, title: str, live: bool):
        self.title, self.rows, self.stage, self.started = title, {}, "", time.monotonic()
        self.live = None
        if live:
            from rich.live import Live

            self.live = Live(self._table(), refresh_per_second=4, transient=False)
            self.live.start()

    def _table(self):
        from rich.table import Table

        table = Table(title=f"{self.title} - {self.stage} - {time.monotonic() - self.started:.0f}s", expand=False)
        for col in ("component", "host", "stage", "now", "state", "s"):
            table.add_column(col, overflow="fold", max_width=60 if col == "now" else None)
        for (comp, host), r in sorted(self.rows.items()):
            style = {"failed": "bold red", "changed": "yellow", "ok": "green"}.get(r["status"], "")
            table.add_row(comp, host, r["stage"], r["task"], f"[{style}]{r['status']}[/]" if style else r["status"],
                          f"{r['elapsed']:.0f}")
        return table

    # the variables full_recovery.yml prints for a person - the table and the plan -, shown as they come
    SHOWN = ("dr_diagnosis_table", "dr_plan_lines")

    def _show(self, ev: dict) -> None:
        ed = ev.get("event_data") or {}
        res = ed.get("res") or {}
        for name in self.SHOWN:
            if ev.get("event") != "runner_on_ok" or name not in res:
                continue
            lines = res[name] if isinstance(res[name], list) else [str(res[name])]
            if self.live:
                for line in lines:
                    self.live.console.print(line, markup=False, highlight=False)
            else:
                print("\n".join(lines), flush=True)

    def __call__(self, ev: dict) -> bool:
        from .recovery import progress_event

        self._show(ev)
        pe = progress_event(ev, self.started)
        if pe is None:
            return True
        if pe["kind"] == "stage":
            self.stage = pe["stage"]
            if not self.live:
                print(f"[{pe['elapsed']:6.1f}s] {self.stage}", flush=True)
        elif pe["component"] and pe["status"] != "running" and not pe["task"].startswith("Validating arguments"):
            key = (pe["component"], pe["host"])
            before = self.rows.get(key, {}).get("stage")
            self.rows[key] = dict(stage=pe["stage"], task=pe["task"], status=pe["status"], elapsed=pe["elapsed"])
            if not self.live and (pe["status"] in ("failed", "changed") or before != pe["stage"]):
                print(f"[{pe['elapsed']:6.1f}s]   {pe['component']:<11} {pe['host']:<20} {pe['status']:<8} {pe['task']}",
                      flush=True)
        if self.live:
            self.live.update(self._table())
        return True

    def stop(self):
        if self.live:
            self.live.stop()

    def pause(self):
        """Let a question be asked on the terminal."""
        self.stop()

    def resume(self):
        if self.live:
            self.live.start()


def _print_recovery(res) -> None:
    print(f"\n{'component':<11} {'host':<22} {'before':<10} {'after':<10} {'outcome':<18} {'seconds':>8} {'RTO':>6}")
    for c in res.components:
        print(f"{c.component:<11} {c.host:<22} {c.before or '-':<10} {c.after or '-':<10} {c.outcome:<18} "
              f"{c.seconds:8.1f} {c.rto_seconds or '-':>6}")
        if c.message and c.outcome not in ("skipped: healthy",):
            print(f"    {c.message}")
    if not res.components:  # stopped before the diagnosis: the failures say why
        for f in res.failures:
            print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
    print(f"\n{res.status.upper()} (exit {res.exit_code}) in {res.recovery_seconds:.1f}s, incident {res.incident or '-'}, "
          f"{res.classification}: {res.reason}")
    if res.incident_record:
        print(f"incident record: {res.incident_record}")


def cmd_recover(args) -> int:
    """playbooks/full_recovery.yml (or one scenario of it) with progress, a result, an exit code."""
    from . import errors
    from .recovery import new_incident_id, recover

    if args.approve and not args.incident:
        print("tradeops-dr: --approve CODE approves the plan of one incident: give --incident with it (the plan "
              "printed both); nothing was done", file=sys.stderr)
        return 2
    incident = args.incident or new_incident_id()
    progress = _Progress(f"tradeops-dr recover {args.scenario} ({incident})", live=not args.json and sys.stdout.isatty())

    def ask(request: dict) -> str:
        """Asked once, during the run (which holds its lock and waits): the plan's destructive steps and its code."""
        progress.pause()
        try:
            print(f"\nIncident {request['incident']}. These destructive steps wait for approval:")
            for step in request["steps"]:
                print(f"  - {step}")
            return input(f"Type this plan's approval code ({request['code']}) to approve them; anything else leaves "
                         f"them planned: ").strip()
        except EOFError:
            return ""
        finally:
            progress.resume()

    interactive = not args.json and not args.approve and sys.stdin.isatty() and sys.stdout.isatty()
    try:
        res = recover(args.scenario, inventory=args.inventory, check=args.check, limit=args.limit,
                      approve=args.approve, incident=incident, tags=args.tags, extravars=_kv(args.extra_vars),
                      event_handler=None if args.json else progress, approver=args.approver,
                      ask=ask if interactive else None)
    except errors.BadInput as exc:
        progress.stop()
        print(f"tradeops-dr: {exc}; nothing was done", file=sys.stderr)
        return 2
    progress.stop()
    if args.json:
        print(json.dumps(res.as_dict(), indent=2, default=str))
        return res.exit_code
    _print_recovery(res)
    if res.approval_refused:
        print(f"approval refused: {res.approval_refused}", file=sys.stderr)
    if res.status == "approval needed":
        print(f"to approve this plan: tradeops-dr recover {args.scenario} -i {args.inventory or 'inventories/local'} "
              f"--incident {incident} --approve {res.approval_code}", file=sys.stderr)
    return res.exit_code


def cmd_exporter(args) -> int:
    from . import exporter
    from .errors import BadInput

    try:
        conf = exporter.load_config(args.config)
        if args.once:
            sys.stdout.write(exporter.render(conf))
            return 0
        server, _thread = exporter.serve(conf, args.listen)
    except BadInput as exc:
        print(f"tradeops-dr: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, the address is not this machine's
        print(f"tradeops-dr: the exporter cannot listen on {args.listen or conf.get('listen') or exporter.DEFAULT_LISTEN}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    print(f"tradeops-dr exporter: serving http://{host}:{port}/metrics (configuration {args.config})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def cmd_lock(args) -> int:
    """The recovery lock of full_recovery.yml on every host: status, or break (recorded)."""
    import getpass

    from .api import run_playbook

    extra = dict(dr_lock_action=args.action)
    if args.action == "break":
        if not args.reason:
            print("tradeops-dr: lock break needs --reason (it is recorded with who broke it); nothing was done",
                  file=sys.stderr)
            return 2
        extra.update(dr_lock_actor=args.actor or getpass.getuser(), dr_lock_reason=args.reason,
                     dr_lock_force=bool(args.force))
    res = run_playbook("lock.yml", inventory=args.inventory, extravars=extra, limit=args.limit)
    locks = res.data.get("dr_lock") or {}
    if args.json:
        print(json.dumps(dict(ok=res.ok, locks=locks, failures=[f.__dict__ for f in res.failures]), indent=2, default=str))
        return 0 if res.ok else 1
    for host, lock in sorted(locks.items()):
        if lock.get("broken"):
            print(f"{host:<22} BROKEN (was held by {lock['broken'].get('user')}@{lock['broken'].get('control_node')}, "
                  f"{lock['broken'].get('playbook')}, incident {lock['broken'].get('incident')}); recorded")
        elif lock.get("held"):
            print(f"{host:<22} held by {lock['holder_text']} - {'alive' if lock['alive'] else 'DEAD'}: {lock['why']}")
        else:
            print(f"{host:<22} free")
    for f in res.failures:
        print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
    return 0 if res.ok else 1


def cmd_rehearse(args) -> int:
    from . import rehearse

    names = rehearse.scenarios() if args.scenario == ["all"] else args.scenario
    if args.list:
        for name in rehearse.scenarios():
            print(f"{name:<20} {', '.join(rehearse.scenario_images(name))}")
        return 0
    started = time.monotonic()
    try:
        results = rehearse.rehearse(names, jobs=args.jobs, log=lambda line: print(line, flush=True),
                                    strict=args.strict)
    except rehearse.RehearsalError as exc:
        print(f"tradeops-dr: {exc}", file=sys.stderr)
        return 2
    print("\n".join(rehearse.summary(results, time.monotonic() - started)))
    if not any(r.status in ("passed", "failed") for r in results):
        print("tradeops-dr: no scenario ran: that is not a passed rehearsal", file=sys.stderr)
        return 1
    return 0 if all(r.status != "failed" for r in results) else 1


def _venv_on_path() -> None:
    """The tools of this venv (ansible-playbook, dvc) for everything the CLI starts, also when it is
    called as .venv/bin/tradeops-dr without the venv activated."""
    import os

    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])


class _Scenarios:
    """recover's choices, read from the component catalog only when argparse needs them (help, or a recover
    command): the kill-switch fast path does not pay for reading YAML."""

    def _names(self):
        from . import catalog

        try:
            return catalog.scenarios()
        except (catalog.CatalogError, RuntimeError) as exc:  # no collection found: say so where the choices go
            return (f"(the catalog cannot be read: {exc})",)

    def __contains__(self, item):
        return item in self._names()

    def __iter__(self):
        return iter(self._names())


def _scenarios():
    return _Scenarios()


# the names of drill.DRILLS (written out: the CLI imports drill only when it drills; a unit test
# keeps the two, and playbooks/drill.yml's list, the same)
DRILL_NAMES = ["redis", "kill-switch", "database", "questdb", "model", "config", "fileset", "broker", "feed", "trading",
               "pms", "pipeline", "detect", "full"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradeops-dr", description=__doc__)
    parser.add_argument("--state-dir", help="sandbox state directory (default: .sandbox of the checkout)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sandbox", help="the local stack: real Redis, PostgreSQL/TimescaleDB and QuestDB on 127.0.0.1")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("run", help="run a playbook of the collection through ansible-runner")
    p.add_argument("playbook", help="name under playbooks/ (redis_failure.yml) or a path")
    p.add_argument("-i", "--inventory", default=None, help="inventory (default inventories/local)")
    p.add_argument("-e", "--extra-vars", action="append", help="key=value (value parsed as JSON when it is)")
    p.add_argument("-l", "--limit")
    p.add_argument("-t", "--tags")
    p.add_argument("-C", "--check", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("kill-switch", help="engage (flag first, then the playbook), status, flatten, reset")
    p.add_argument("action", choices=["engage", "status", "flatten", "reset"])
    p.add_argument("-i", "--inventory", required=True)
    p.add_argument("-l", "--limit")
    p.add_argument("--reason")
    p.add_argument("--actor")
    p.add_argument("--incident")
    p.add_argument("--state", choices=["halted", "reducing"], default="halted")
    p.add_argument("--confirm", help="reset: the incident id")
    p.add_argument("--approver", help="reset: the second approver")
    p.add_argument("--force", action="store_true", help="reset beyond the drawdown threshold")
    p.add_argument("--flag-only", action="store_true", help="engage: set the flag and stop (no playbook)")
    p.set_defaults(func=cmd_kill_switch)

    p = sub.add_parser("backups", help="list the database backup catalog, or verify the backups of an inventory")
    p.add_argument("action", choices=["list", "verify"])
    p.add_argument("--root", help=f"list: root of the catalog (default {DEFAULT_BACKUP_ROOT}, or the sandbox's when "
                                  "that does not exist and a sandbox does)")
    p.add_argument("--database", help="list: only this database")
    p.add_argument("--json", action="store_true", help="list: as JSON")
    p.add_argument("-i", "--inventory", help="verify: inventory (default inventories/local)")
    p.add_argument("-l", "--limit")
    p.add_argument("--test-restore", action="store_true", help="verify: also restore into a scratch database")
    p.set_defaults(func=cmd_backups)

    p = sub.add_parser("recover", help="diagnose and recover every component (or one), with progress and a record",
                       description="Runs playbooks/full_recovery.yml. Exit codes: 0 recovered, healthy or planned (--check); "
                                   "1 failed; 2 bad input; 3 refused (another run holds the lock) or approval needed.")
    # metavar: argparse would read the choices when the parser is built (the fast path would pay for the catalog)
    p.add_argument("scenario", choices=_scenarios(), metavar="SCENARIO",
                   help="%(choices)s: full, or one component of the catalog (playbooks/full_recovery/components.yml); "
                        "one trading depends on brings the kill switch along")
    p.add_argument("-i", "--inventory", default=None, help="inventory (default inventories/local, the sandbox)")
    p.add_argument("-l", "--limit")
    p.add_argument("-t", "--tags", help="e.g. diagnose: the table only")
    p.add_argument("-C", "--check", action="store_true", help="print the plan, change nothing")
    p.add_argument("--approve", metavar="CODE", help="approve the destructive steps of the plan that printed this "
                   "approval code (with the same --incident); used once")
    p.add_argument("--incident", help="the incident id (default: INC-<UTC time>)")
    p.add_argument("--approver", help="who approves (recorded; a second person with -e dr_require_second_approver=true)")
    p.add_argument("-e", "--extra-vars", action="append", help="key=value (value parsed as JSON when it is)")
    p.add_argument("--json", action="store_true", help="the result as JSON for machines, no progress")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("lock", help="who holds the recovery lock of an inventory's hosts; break it (recorded)")
    p.add_argument("action", choices=["status", "break"])
    p.add_argument("-i", "--inventory", default=None, help="inventory (default inventories/local)")
    p.add_argument("-l", "--limit")
    p.add_argument("--reason", help="break: why (recorded)")
    p.add_argument("--actor", help="break: who (default: this user; recorded)")
    p.add_argument("--force", action="store_true", help="break: even a live holder's lock (recorded as forced)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser("exporter", help="the collection's Prometheus exporter (kill switch, backups, WAL, locks, drills)",
                       description="Serves /metrics through prometheus-client: what only tradeops.dr knows, read at "
                                   "each scrape (extensions/monitoring/exporter.example.yml shows the configuration).")
    p.add_argument("--config", required=True, help="the exporter's YAML configuration")
    p.add_argument("--listen", help="HOST:PORT (default: the configuration's listen, else 127.0.0.1:9870)")
    p.add_argument("--once", action="store_true", help="print one scrape and exit")
    p.set_defaults(func=cmd_exporter)

    p = sub.add_parser("pitr", help="point-in-time recovery: find the target in the archived WAL",
                       description="find: the transactions that touched a table around a time (pg_waldump over "
                                   "the WAL pgBackRest archived), each with a recovery target just before it.")
    p.add_argument("action", choices=["find"])
    p.add_argument("--table", required=True, help="schema.table (a hypertable's chunks are included)")
    p.add_argument("--around", required=True, help='a time with its zone, e.g. "2026-11-25 14:03:00+00"')
    p.add_argument("--window", type=int, default=300, help="seconds before and after (default 300)")
    p.add_argument("-i", "--inventory", default=None, help="inventory (default inventories/local)")
    p.add_argument("-l", "--limit")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pitr)

    p = sub.add_parser("drill", help="inject failures into the sandbox and recover them; score, record, chart",
                       description="Each scenario is scored against its runbook objective (playbooks/vars/"
                                   "drill_objectives.yml, dr_drill_objectives in the inventory); every drill is "
                                   "appended to the history with a Markdown report and a PNG chart. Only inventories "
                                   "whose hosts are marked dr_drill_target: true are drilled.")
    p.add_argument("scenario", choices=["all", *DRILL_NAMES, "history"], nargs="*",
                   help="scenarios (run in the order of `all`), all of them (the default), or history (the trend so far)")
    p.add_argument("-i", "--inventory", default="local", help="a drill target (default inventories/local, the sandbox)")
    p.add_argument("--last", type=int, default=20, help="history: how many drills the trend shows")
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("rehearse", help="Molecule rehearsals: inject, recover and verify inside containers",
                       description="Runs `molecule test -s <scenario>` (create, prepare = inject the failure, "
                                   "converge = recover, idempotence, a --check converge, testinfra verify; the containers "
                                   "removed before and after) "
                                   "in the project's private Docker engine, building the images the scenarios need "
                                   "first (only when their recipe changed).")
    p.add_argument("scenario", nargs="*", default=["all"], help="scenarios under molecule/ (default: all)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="scenarios run side by side (default 1)")
    p.add_argument("--list", action="store_true", help="list the scenarios and their images")
    p.add_argument("--strict", action="store_true",
                   help="a scenario whose servers this machine lacks fails instead of being skipped (CI)")
    p.set_defaults(func=cmd_rehearse)

    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `tradeops-dr ... | head` ends quietly
    _venv_on_path()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
