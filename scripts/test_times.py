"""Sum where the test suite's time went, from the lines tests/timing.py wrote during a pytest run
(.state/test-times/*.jsonl, or the folder given): wall seconds per category (fixture set-up,
ansible-playbook start-up, playbooks, commands, waiting, teardown, real work), per file, per fixture
and per xdist worker, and the CPU seconds per file (what the suite spends on two shared cores).

    python scripts/test_times.py [FOLDER] [--files N] [--fixtures N] [--write-durations]

--write-durations writes each file's total (its time asleep counted twice: file_totals) to tests/file_durations.json:
tests/conftest.py hands the files to the pytest-xdist workers slowest first from it, so that no long file starts last
while the other worker idles, and no sleeping one once nothing else runs.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("fixture", "playbook_startup", "playbook", "cli", "command", "waiting", "setup", "teardown", "work")
LABEL = {"fixture": "fixture set-up (servers, seed data)", "playbook_startup": "ansible-playbook start-up",
         "playbook": "playbooks running", "cli": "tradeops-dr CLI commands", "command": "other commands",
         "waiting": "waiting (sleep)", "setup": "other set-up", "teardown": "teardown", "work": "real work"}
SHORT = {"fixture": "fixture", "playbook_startup": "pb-start", "playbook": "playbook", "cli": "cli",
         "command": "cmd", "waiting": "wait", "setup": "setup", "teardown": "teardown", "work": "work"}


def load(folder: Path) -> list[dict]:
    lines = []
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                lines.append(json.loads(line))
    return lines


def report(lines: list[dict], n_files: int, n_fixtures: int) -> str:
    out = []
    total = sum(t["total"] for t in lines)
    cpu_total = sum(t.get("cpu", 0.0) for t in lines)
    cats: dict = defaultdict(float)
    files: dict = defaultdict(lambda: defaultdict(float))
    counts: dict = defaultdict(int)
    fixtures: dict = defaultdict(float)
    fixture_n: dict = defaultdict(int)
    workers: dict = defaultdict(float)
    for t in lines:
        counts[t["file"]] += 1
        workers[t["worker"]] += t["total"]
        files[t["file"]]["total"] += t["total"]
        files[t["file"]]["cpu"] += t.get("cpu", 0.0)
        for k, v in t["categories"].items():
            cats[k] += v
            files[t["file"]][k] += v
        for k, v in t["fixtures"].items():
            fixtures[k] += v
            fixture_n[k] += 1
    out.append(f"test time: {len(lines)} tests, {total:.0f} s summed over "
               f"{len(workers)} worker(s) ({', '.join(f'{w} {s:.0f} s' for w, s in sorted(workers.items()))}); "
               f"{cpu_total:.0f} CPU-s spent by the workers and what they started and reaped")
    for k in ORDER:
        if cats.get(k):
            out.append(f"  {LABEL[k]:<40} {cats[k]:8.1f} s  {100 * cats[k] / max(total, 1e-9):5.1f} %")
    out.append("")
    head = f"{'file':<52} {'tests':>5} {'total':>7} {'cpu':>7} " + " ".join(f"{SHORT[k]:>8}" for k in ORDER)
    out.append(f"slowest files (seconds; of {len(files)}):")
    out.append(head)
    for name, row in sorted(files.items(), key=lambda kv: -kv[1]["total"])[:n_files]:
        out.append(f"{name[-52:]:<52} {counts[name]:>5} {row['total']:7.1f} {row['cpu']:7.1f} " +
                   " ".join(f"{row.get(k, 0.0):8.1f}" for k in ORDER))
    out.append("")
    out.append(f"fixture set-up (seconds, times set up; of {len(fixtures)}):")
    for name, secs in sorted(fixtures.items(), key=lambda kv: -kv[1])[:n_fixtures]:
        out.append(f"  {name:<40} {secs:8.1f} s  x{fixture_n[name]}")
    return "\n".join(out)


def file_totals(lines: list[dict]) -> dict:
    """Each file's place in the workers' order: its seconds, and its seconds asleep once more. A file that sleeps
    leaves its core idle unless something else runs: it goes earlier, while scripts/test.sh's background steps
    (the image, the rehearsals, sanity) use that core. test_alerts.py, 176 s of which 117 asleep (Prometheus's
    scrapes and rule evaluations), started after they were done and left a core idle for most of its run."""
    totals: dict = defaultdict(float)
    for t in lines:
        totals[t["file"]] += t["total"] + t["categories"].get("waiting", 0.0)
    return {name: round(secs, 1) for name, secs in sorted(totals.items(), key=lambda kv: -kv[1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(ROOT / ".state" / "test-times"))
    ap.add_argument("--files", type=int, default=25)
    ap.add_argument("--fixtures", type=int, default=15)
    ap.add_argument("--write-durations", action="store_true",
                    help="write each file's seconds to tests/file_durations.json (the order of the xdist workers)")
    args = ap.parse_args(argv)
    lines = load(Path(args.folder))
    if not lines:
        print(f"test_times: no timing lines in {args.folder} (tests/timing.py writes them during pytest)")
        return 1
    print(report(lines, args.files, args.fixtures))
    if args.write_durations:
        target = ROOT / "tests" / "file_durations.json"
        target.write_text(json.dumps(file_totals(lines), indent=1) + "\n", encoding="utf-8")
        print(f"test_times: {target.relative_to(ROOT)} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
