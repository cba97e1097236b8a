"""tradeops-dr: the sandbox stack, playbook runs through ansible-runner, and drills."""

from __future__ import annotations

import argparse
import json
import sys

from .api import run_playbook
from .sandbox import Sandbox, SandboxError


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
    sb = Sandbox(args.state_dir)
    try:
        if args.action == "up":
            state = sb.up()
            print(f"sandbox up in {sb.state_dir}")
            print(f"  redis     127.0.0.1:{state['redis']['port']}  (AOF on, ledger {state['redis']['ledger']})")
            print(f"  postgres  127.0.0.1:{state['postgres']['port']}  (database trading, user {state['postgres']['user']})")
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
        print(f"  {name:<9} {'running' if st.get('running') else 'stopped':<8} "
              f"{'ready' if st.get('ready') else '':<6} {st.get('detail', '')}")
        bad += args.action == "status" and not st.get("ready")
    return 1 if bad else 0


def cmd_run(args) -> int:
    res = run_playbook(args.playbook, inventory=args.inventory, extravars=_kv(args.extra_vars), limit=args.limit,
                       tags=args.tags, check=args.check, quiet=False)
    print(f"\n{res.status} (rc={res.rc}) in {res.duration:.2f}s; changed={res.changed}; artifacts {res.artifact_dir}")
    for f in res.failures:
        print(f"FAILED {f.host} / {f.task}: {f.msg}", file=sys.stderr)
    return 0 if res.ok else (res.rc or 1)


def cmd_drill(args) -> int:
    from . import drill

    sb = Sandbox(args.state_dir)
    steps = drill.redis_drill(sb)
    drill.print_report(steps)
    return 0 if all(s.passed for s in steps) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tradeops-dr", description=__doc__)
    parser.add_argument("--state-dir", help="sandbox state directory (default: .sandbox of the checkout)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sandbox", help="the local stack: real Redis and PostgreSQL on 127.0.0.1")
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

    p = sub.add_parser("drill", help="inject failures into the sandbox and recover them")
    p.add_argument("scenario", choices=["redis"])
    p.set_defaults(func=cmd_drill)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
