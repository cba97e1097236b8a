"""The machine's speed beside a test run's time (issue 24): the same fixed work measured at the run's start and end.

The test machines are shared: the same code cost up to half as much CPU again in the afternoon as in the morning
(docs/testing.md, stop 48), so a whole run's time says as much about the machine as about the code. scripts/test.sh
runs this before the tests and after them, and prints both figures beside the run's total; a run that took longer
while these did not moved because of the code.

    python scripts/machine_speed.py [--runs 3] [--json FILE]

Two figures, each the median of --runs, in CPU seconds (user + system of the measured processes; wall time would
count the other processes of a busy machine):
  playbook_cpu_s   a one-task ansible-playbook run on localhost (ansible.builtin.ping, the local connection, this
                   checkout's ansible.cfg): what most of the suite's time is made of (765 runs a CI run)
  python_cpu_s     a fixed pure-Python loop in a new interpreter: the CPU alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAY = """- name: The machine-speed reference (scripts/machine_speed.py)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One module run
      ansible.builtin.ping:
"""
LOOP = "s = 0\nfor i in range(5_000_000):\n    s += i * i % 7\n"


def _child_cpu(argv: list[str], env: dict) -> float:
    """CPU seconds of argv and everything it started and reaped; raises when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 3)


def measure(runs: int = 3) -> dict:
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="tradeops-speed-") as tmp:
        play = Path(tmp) / "reference.yml"
        play.write_text(PLAY)
        # the run's incident record (the collection's callback) goes where nobody reads it, and goes with it
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), TRADEOPS_DR_INCIDENTS_DIR=str(Path(tmp) / "inc"))
        playbook = [str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
                    f"ansible_python_interpreter={sys.executable}", str(play)]
        python = [sys.executable, "-c", LOOP]
        pb, py = [], []
        for _run in range(runs):  # interleaved: a change of the machine's speed hits both alike
            pb.append(_child_cpu(playbook, env))
            py.append(_child_cpu(python, env))
    return dict(playbook_cpu_s=round(statistics.median(pb), 3), python_cpu_s=round(statistics.median(py), 3),
                runs=runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        figures = measure(args.runs)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        print(f"machine_speed: the reference could not be measured: {exc} {err.decode(errors='replace')[-500:]}",
              file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")
    print(f"playbook_cpu_s {figures['playbook_cpu_s']} (a one-task ansible-playbook run, median of {args.runs})")
    print(f"python_cpu_s {figures['python_cpu_s']} (a fixed pure-Python loop, median of {args.runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
