"""Where the CPU of a whole test run went, from the kernel's process accounting (issue 24).

scripts/test_times.py splits each test's time; this report splits the machine's: every process that
ended during the run - pytest's, the background chain's (image, rehearsals, sanity), the servers' -
by what it was. On two shared cores the run is bound by CPU, so this is the list of what to cut:

    ansible-playbook   runs (controllers), their forked workers (one per task and host), the
                       modules they ran (python below a run), the rest below a run; and the
                       runs by who started them (pytest, molecule, the tradeops-dr CLI, ansible-lint...)
    outside the runs   the top commands (servers, docker, ansible-test, the test processes themselves)

scripts/test.sh turns accounting on for the run when TRADEOPS_DR_CPU_ACCOUNTING=1 (root and Debian's
acct package, which scripts/setup.sh installs, are needed; CI sets it) and prints this report at the end:

    python scripts/cpu_report.py .state/pacct [--top 12]

It reads the kernel's acct_v3 records itself (linux/acct.h: 64 bytes each, times as comp_t in
AHZ=100 ticks); a process is counted when it ends, so a server still running at the end is missing.
"""

from __future__ import annotations

import argparse
import collections
import struct
import sys

RECORD = struct.Struct("<BBHIIIIIIf8H16s")  # struct acct_v3
AFORK = 0x01  # forked but never exec'd
AHZ = 100.0
CONTROLLER = "ansible-playboo"  # the 15 characters the kernel keeps of ansible-playbook
PYTHONS = {"python", "python3"}
KINDS = ("controllers", "workers", "modules", "the rest below a run")


def comp_t(value: int) -> float:
    """comp_t: 13-bit mantissa, 3-bit base-8 exponent."""
    return float((value & 0x1FFF) << (3 * ((value >> 13) & 7)))


def read(path: str) -> list[dict]:
    """The records of an accounting file, in the order the processes ended."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for off in range(0, len(data) - RECORD.size + 1, RECORD.size):
        (flag, version, _tty, _exit, _uid, _gid, pid, ppid, btime, etime, utime, stime, *_rest,
         comm) = RECORD.unpack_from(data, off)
        if version & 0x0F != 3:
            raise SystemExit(f"cpu_report: {path} is not in the kernel's acct_v3 format (version {version})")
        out.append(dict(comm=comm.split(b"\0", 1)[0].decode("utf-8", "replace"), pid=pid, ppid=ppid,
                        fork=bool(flag & AFORK), start=float(btime), end=btime + etime / AHZ,
                        cpu=(comp_t(utime) + comp_t(stime)) / AHZ))
    return out


def link_parents(recs: list[dict]) -> list[int | None]:
    """Each record's parent record: the process of its ppid that was alive when it started (pids are reused)."""
    by_pid = collections.defaultdict(list)
    for i, r in enumerate(recs):
        by_pid[r["pid"]].append(i)
    parents: list[int | None] = []
    for r in recs:
        best = None
        for i in by_pid.get(r["ppid"], ()):
            q = recs[i]
            if q["start"] <= r["start"] + 1 and q["end"] >= r["start"] - 1 and \
                    (best is None or q["start"] > recs[best]["start"]):
                best = i
        parents.append(best)
    return parents


def summarise(recs: list[dict]) -> dict:
    """total, processes, runs (their number), parts {kind: [CPU-s, processes]} of the runs, starters {command:
    [runs, CPU-s]} (who started each run), outside (a Counter of CPU-s by command, for what ran outside the runs)."""
    parents = link_parents(recs)

    def ancestors(i):
        seen = 0
        i = parents[i]
        while i is not None and seen < 64:
            yield i
            i = parents[i]
            seen += 1

    def run_of(i):
        """The outermost ansible-playbook controller at or above record i (None: not below a run)."""
        found = i if recs[i]["comm"] == CONTROLLER and not recs[i]["fork"] else None
        for j in ancestors(i):
            if recs[j]["comm"] == CONTROLLER and not recs[j]["fork"]:
                found = j
        return found

    parts = {kind: [0.0, 0] for kind in KINDS}
    outside: collections.Counter = collections.Counter()
    runs: dict[int, float] = {}
    for i, r in enumerate(recs):
        root = run_of(i)
        if root is None:
            outside[r["comm"]] += r["cpu"]
            continue
        runs[root] = runs.get(root, 0.0) + r["cpu"]
        if i == root:
            kind = "controllers"
        elif r["comm"] == CONTROLLER and r["fork"]:
            kind = "workers"
        elif r["comm"] in PYTHONS:
            kind = "modules"
        else:
            kind = "the rest below a run"
        parts[kind][0] += r["cpu"]
        parts[kind][1] += 1
    starters: dict[str, list] = {}
    for root, cpu in runs.items():
        starter = next((recs[j]["comm"] for j in ancestors(root) if recs[j]["comm"] not in (CONTROLLER, "sh", "bash")),
                       "?")
        entry = starters.setdefault(starter, [0, 0.0])
        entry[0] += 1
        entry[1] += cpu
    return dict(total=sum(r["cpu"] for r in recs), processes=len(recs), runs=len(runs), parts=parts,
                starters=starters, outside=outside)


def report(summary: dict, top: int = 12) -> list[str]:
    total, parts = summary["total"], summary["parts"]
    in_runs = sum(cpu for cpu, _n in parts.values())
    share = 100 * in_runs / max(total, 1e-9)
    lines = [f"CPU by process accounting: {total:.0f} CPU-s in {summary['processes']} processes that ended during the "
             f"run", f"  ansible-playbook: {summary['runs']} runs, {in_runs:.0f} CPU-s ({share:.0f} %)"]
    for kind in KINDS:
        lines.append(f"    {kind:22s} {parts[kind][0]:8.0f} CPU-s  {parts[kind][1]:6d} processes")
    by_cpu = sorted(summary["starters"].items(), key=lambda kv: -kv[1][1])
    lines.append("    runs started by: " + (", ".join(f"{name} {n} ({cpu:.0f} CPU-s)" for name, (n, cpu) in by_cpu) or "-"))
    lines.append(f"  outside the runs: {total - in_runs:.0f} CPU-s; the top commands:")
    for name, cpu in summary["outside"].most_common(top):
        lines.append(f"    {name:22s} {cpu:8.0f} CPU-s")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pacct", help="the accounting file (accton's)")
    parser.add_argument("--top", type=int, default=12, help="commands outside the runs to list")
    args = parser.parse_args(argv)
    recs = read(args.pacct)
    if not recs:
        print(f"cpu_report: {args.pacct} holds no records")
        return 0
    print("\n".join(report(summarise(recs), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
