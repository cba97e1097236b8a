"""The machine's speed beside a test run's time (issue 24): the same fixed work measured at the run's start and end.

The test machines are shared: the same code cost up to half as much CPU again in the afternoon as in the morning
(docs/testing.md, stop 48), so a whole run's time says as much about the machine as about the code. scripts/test.sh
runs this before the tests and after them, and prints both figures beside the run's total; a run that took longer
while these did not moved because of the code.

    python bench/machine_speed.py [--runs 3] [--json FILE] [--before FILE]

Two figures, each the median of --runs, in CPU seconds (user + system of the measured processes; wall time would
count the other processes of a busy machine):
  playbook_cpu_s   a one-task ansible-playbook run on localhost (ansible.builtin.ping, the local connection, this
                   checkout's ansible.cfg): what most of the suite's time is made of (~770 runs a CI run)
  python_cpu_s     a fixed pure-Python loop in a new interpreter: the CPU alone
--before FILE (the --json of an earlier measurement) adds a last line with both measurements side by side.
The tests' caches for module payloads (TRADEOPS_DR_PAYLOAD_BYTECODE, TRADEOPS_DR_ANSIBALLZ_CACHE) are left out: the
reference is the machine's, not the suite's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import BIN, ROOT, TEST_CACHES, measured  # noqa: E402  # bench/, beside this script

PLAY = """- name: The machine-speed reference (bench/machine_speed.py)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One module run
      ansible.builtin.ping:
"""
LOOP = "s = 0\nfor i in range(5_000_000):\n    s += i * i % 7\n"


def measure(runs: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="tradeops-speed-") as tmp:
        play = Path(tmp) / "reference.yml"
        play.write_text(PLAY)
        # the run's incident record (the collection's callback) goes where nobody reads it, and goes with it
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), TRADEOPS_DR_INCIDENTS_DIR=str(Path(tmp) / "inc"))
        for cache in TEST_CACHES:  # the tests' caches for module payloads: not the machine's
            env.pop(cache, None)
        playbook = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
                    f"ansible_python_interpreter={sys.executable}", str(play)]
        python = [sys.executable, "-c", LOOP]
        pb, py = [], []
        for _run in range(runs):  # interleaved: a change of the machine's speed hits both alike
            pb.append(measured(playbook, env, timeout=300)[1])
            py.append(measured(python, env, timeout=300)[1])
    return dict(playbook_cpu_s=round(statistics.median(pb), 3), python_cpu_s=round(statistics.median(py), 3),
                runs=runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--before", type=Path, help="the --json of an earlier measurement, printed beside this one")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        figures = measure(args.runs)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"machine_speed: the reference could not be measured: {str(exc)[-1000:]}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")
    print(f"playbook_cpu_s {figures['playbook_cpu_s']} (a one-task ansible-playbook run, median of {args.runs})")
    print(f"python_cpu_s {figures['python_cpu_s']} (a fixed pure-Python loop, median of {args.runs})")
    if args.before:
        try:
            before = json.loads(args.before.read_text())
        except (OSError, ValueError):
            before = {}
        print(f"the machine's speed - a one-task ansible-playbook run {before.get('playbook_cpu_s', '?')} CPU-s "
              f"before the run, {figures['playbook_cpu_s']} after; a fixed Python loop "
              f"{before.get('python_cpu_s', '?')} and {figures['python_cpu_s']} CPU-s (bench/machine_speed.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
