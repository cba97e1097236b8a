"""Benchmark: time from process start to the kill-switch flag being visible in Redis.

In one run, against one real redis-server, repeated --runs times each (medians printed):
  (a) raw `redis-cli HSET policy:kill_switch enabled true` (what runbook 004 types);
  (b) the fast path: `tradeops-dr kill-switch engage --flag-only` (atomic engage), on a plain
      inventory and on one shaped like the sandbox's (templated values: the first engage
      resolves them through Ansible and caches the connection, the measured ones use the cache);
  (c) the full playbook (`ansible-playbook playbooks/kill_switch.yml -e kill_switch_action=engage`)
      on inventories of 1, 10 and 50 hosts: time to the flag, and time to the end of the run.
Each figure is printed with its ratio to (a). Target: (b) on the templated inventory at most
50 ms to the flag (median). The machines are shared and noisy: read the figures as such.

    python bench/kill_switch.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SeededRedis  # noqa: E402

BIN = Path(sys.executable).parent


def _inventory(path: Path, r: SeededRedis, n: int, flag: Path) -> Path:
    hosts = {f"desk-{i}": dict(ansible_connection="local", ansible_python_interpreter=sys.executable,
                               kill_switch_redis_port=r.port, kill_switch_redis_password=r.srv.password,
                               kill_switch_flag_file=str(flag)) for i in range(n)}
    path.write_text(yaml.safe_dump({"all": {"children": {"kill_switch": {"hosts": hosts}}}}))
    return path


def _time_to_flag(r: SeededRedis, argv: list[str], env: dict) -> tuple[float, float]:
    with r.client() as c:
        c.delete("policy:kill_switch")
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while c.hget("policy:kill_switch", "enabled") != "true":
            if proc.poll() is not None and c.hget("policy:kill_switch", "enabled") != "true":
                raise SystemExit(f"{argv[0]} ended without setting the flag: {proc.stderr.read()[-500:]}")
            time.sleep(0.0005)
        visible = time.perf_counter() - t0
        proc.wait()
        if proc.returncode:
            raise SystemExit(f"{' '.join(argv[:3])} failed: {proc.stderr.read()[-500:]}")
        return visible, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tradeops-bench-ks-"))
    r = SeededRedis(work / "redis")
    env = dict(os.environ, REDISCLI_AUTH=r.srv.password, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    flag = work / "flag"
    inv1 = _inventory(work / "inv-1.yml", r, 1, flag)
    cases = {
        "raw_redis_cli_hset": ["redis-cli", "-p", str(r.port), "HSET", "policy:kill_switch", "enabled", "true"],
        "fast_path": [str(BIN / "tradeops-dr"), "kill-switch", "engage", "-i", str(inv1), "--reason", "bench",
                      "--actor", "bench", "--flag-only"],
    }
    # shaped like inventories/local: every value templated, read from files beside it
    templated = work / "inv-templated"
    (templated / "group_vars").mkdir(parents=True)
    (templated / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": dict(
        ansible_connection="local", ansible_python_interpreter=sys.executable),
        "children": {"kill_switch": {"hosts": {"desk-0": None}}}}}))
    (templated / "port").write_text(str(r.port))
    (templated / "secret").write_text(r.srv.password)
    (templated / "group_vars" / "kill_switch.yml").write_text(
        "kill_switch_redis_port: \"{{ lookup('ansible.builtin.file', inventory_dir ~ '/port') }}\"\n"
        "kill_switch_redis_password: \"{{ lookup('ansible.builtin.file', inventory_dir ~ '/secret') }}\"\n"
        f"kill_switch_flag_file: {flag}\n")
    cases["fast_path_templated"] = [str(BIN / "tradeops-dr"), "kill-switch", "engage", "-i", str(templated),
                                    "--reason", "bench", "--actor", "bench", "--flag-only"]
    env["XDG_CACHE_HOME"] = str(work / "cache")
    first = _time_to_flag(r, cases["fast_path_templated"], env)  # resolves through Ansible, fills the cache
    for n in (1, 10, 50):
        inv = _inventory(work / f"inv-{n}.yml", r, n, flag)
        cases[f"playbook_{n}_hosts"] = [str(BIN / "ansible-playbook"), "playbooks/kill_switch.yml", "-i", str(inv),
                                        "-e", "kill_switch_action=engage", "-e", "kill_switch_reason=bench",
                                        "-e", "kill_switch_actor=bench"]
    results = {k: [] for k in cases}
    try:
        for _run in range(args.runs):  # interleaved, so that noise hits every case alike
            for name, argv in cases.items():
                results[name].append(_time_to_flag(r, argv, env))
    finally:
        r.stop()
    raw = statistics.median(v for v, _t in results["raw_redis_cli_hset"])
    print(f"runs {args.runs} (medians)")
    for name, vals in results.items():
        vis = statistics.median(v for v, _t in vals)
        total = statistics.median(t for _v, t in vals)
        extra = f", run ends after {total:.3f}s" if name.startswith("playbook") else ""
        print(f"{name}_to_flag_s {vis:.3f} (ratio to raw {vis / raw:.1f}{extra})")
    print(f"fast_path_templated_first_engage_s {first[0]:.3f} (resolved through Ansible, then cached)")
    fast = statistics.median(v for v, _t in results["fast_path_templated"])
    print(f"fast_path_templated_to_flag_ms {fast * 1000:.0f} (target <= 50)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
