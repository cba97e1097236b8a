"""tradeops-dr: the sandbox stack, playbook runs through ansible-runner, and drills."""

from __future__ import annotations

import argparse
import json
import sys
import time

_T0 = time.perf_counter()  # the kill-switch fast path reports its time from here


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
    from . import drill
    from .sandbox import Sandbox

    sb = Sandbox(args.state_dir)
    steps = []
    if args.scenario in ("redis", "all"):
        steps += drill.redis_drill(sb)
    if args.scenario in ("kill-switch", "all"):
        steps += drill.kill_switch_drill(sb)
    if args.scenario in ("database", "all"):
        steps += drill.database_drill(sb)
    drill.print_report(steps)
    return 0 if all(s.passed for s in steps) else 1


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
        if done and done["outcome"] == "flag-file":
            print(f"KILL SWITCH NOT SET IN REDIS ({done['error']}): the local flag file {done['flag_file']} was "
                  f"written {done['seconds']:.3f}s after start (fail closed)", file=sys.stderr, flush=True)
        elif done:
            print(f"kill switch {done['outcome']} in Redis {done['endpoint']} ({done['host']}) "
                  f"{done['seconds']:.3f}s after start (connection from {done['via']}"
                  f"{': ' + done['why_ansible'] if done['why_ansible'] else ''})", flush=True)
        if args.flag_only:
            return 0 if done and done["outcome"] != "flag-file" else 1
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
    entries = [e for e in backup.catalog(args.root) if not args.database or e["database"] == args.database]
    now = time.time()
    if args.json:
        print(json.dumps([dict(e, created_at=backup.iso(e["created_at"])) for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no backups below {args.root}")
        return 1
    print(f"{'created (UTC)':20} {'age h':>7} {'database':16} {'kind':7} {'status':11} {'MB':>9}  dump")
    for e in entries:
        print(f"{backup.iso(e['created_at']):20} {(now - e['created_at']) / 3600:7.1f} {e['database'] or '-':16} "
              f"{e['kind'] or '-':7} {e['status']:11} {e['size'] / 2**20:9.1f}  {e['dump'] or e['manifest']}")
    newest = backup.newest(entries, args.database, status="verified")
    print(f"newest verified: {newest['dump'] if newest else 'NONE'}")
    return 0 if newest else 1


def _venv_on_path() -> None:
    """The tools of this venv (ansible-playbook, dvc) for everything the CLI starts, also when it is
    called as .venv/bin/tradeops-dr without the venv activated."""
    import os

    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])


def main(argv=None) -> int:
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
    p.add_argument("--root", default="/var/backups/tradeops-dr/postgres", help="list: root of the catalog")
    p.add_argument("--database", help="list: only this database")
    p.add_argument("--json", action="store_true", help="list: as JSON")
    p.add_argument("-i", "--inventory", help="verify: inventory (default inventories/local)")
    p.add_argument("-l", "--limit")
    p.add_argument("--test-restore", action="store_true", help="verify: also restore into a scratch database")
    p.set_defaults(func=cmd_backups)

    p = sub.add_parser("drill", help="inject failures into the sandbox and recover them")
    p.add_argument("scenario", choices=["all", "redis", "kill-switch", "database"], nargs="?", default="all")
    p.set_defaults(func=cmd_drill)

    args = parser.parse_args(argv)
    _venv_on_path()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
