"""Benchmark: does Mitogen for Ansible pay on ansible-core 2.19 here (issue 27)?

In one run, on a sandbox of its own, a healthy `playbooks/full_recovery.yml` (every component
diagnosed, nothing to do) with ansible-core's own strategies and with Mitogen's, interleaved N
times: wall time and the CPU seconds of ansible-playbook and all it started (user + system).
Mitogen runs modules in a persistent interpreter instead of a new Python per task; its strategies
are `mitogen_linear` (the default for the run) and `mitogen_free`, which stands for the playbook's
`ansible.builtin.free` plays in a copy of the playbook beside it (deleted after).

Mitogen is not a dependency of the collection: the bench installs it with pip into
.state/bench/mitogen (PyPI) when it is not there, and the collection's runs never load it.

    python bench/mitogen.py [--runs 5] [--version 0.3.54]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# imported for what it does: the collection link, PATH, a private incidents folder (as the tests have)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import
from tradeops_dr.sandbox import Sandbox  # noqa: E402
from _runs import measured_run, medians, sandbox_env  # noqa: E402  # bench/, beside this script


def _mitogen(version: str) -> Path:
    """The folder of Mitogen's strategy plugins, installed into .state/bench/mitogen when missing."""
    target = ROOT / ".state" / "bench" / f"mitogen-{version}"
    strategies = target / "ansible_mitogen" / "plugins" / "strategy"
    if not strategies.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), f"mitogen=={version}"],
                       check=True)
    return strategies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--version", default="0.3.54", help="Mitogen's release on PyPI")
    args = parser.parse_args()
    strategies = _mitogen(args.version)
    state = Path(tempfile.mkdtemp(prefix="tradeops-bench-mitogen-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user under root
    sb = Sandbox(state)
    base_env = sandbox_env(state)
    mito_env = dict(base_env, ANSIBLE_STRATEGY_PLUGINS=str(strategies), ANSIBLE_STRATEGY="mitogen_linear")
    playbook = ROOT / "playbooks" / "full_recovery.yml"
    text = playbook.read_text(encoding="utf-8")
    copy = playbook.with_name(".bench-mitogen-full_recovery.yml")
    copy.write_text(text.replace("strategy: ansible.builtin.free", "strategy: mitogen_free"), encoding="utf-8")
    figures: dict[str, list[tuple[float, float]]] = {"core": [], "mitogen": []}
    try:
        sb.up()
        measured_run(playbook, base_env)  # once before measuring: the sandbox's first answers, the page cache
        for _round in range(args.runs):
            wall, cpu = measured_run(playbook, base_env)
            figures["core"].append((wall, cpu))
            # a strategy that did not load fails the run ("Invalid play strategy"): a passed run ran under Mitogen
            wall, cpu = measured_run(copy, mito_env)
            figures["mitogen"].append((wall, cpu))
    finally:
        copy.unlink(missing_ok=True)
        sb.down()
        shutil.rmtree(state, ignore_errors=True)
    med = medians(figures)
    print(f"runs {args.runs}; Mitogen {args.version}; a healthy full_recovery.yml on the sandbox, interleaved")
    for k in ("core", "mitogen"):
        print(f"{k}_no_fault_run_s {med[k][0]:.2f} (max {max(w for w, _cpu in figures[k]):.2f})")
        print(f"{k}_no_fault_cpu_s {med[k][1]:.2f} (user + system, ansible-playbook and its children)")
    print(f"mitogen_wall_ratio {med['mitogen'][0] / med['core'][0]:.2f} (below 1: Mitogen is faster)")
    print(f"mitogen_cpu_ratio {med['mitogen'][1] / med['core'][1]:.2f} (below 1: Mitogen uses less CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
