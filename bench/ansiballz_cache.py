"""Benchmark: what the tests' AnsiballZ payload cache saves (issue 24; src/tradeops_dr/ansiballz_cache.py).

Before each module run, the task's worker builds the module's payload (it parses the module and every module_utils
file it imports, and zips them); ansible-core keeps a payload for the rest of its run only. scripts/test.sh keeps
them from one run to the next for the tests (TRADEOPS_DR_ANSIBALLZ_CACHE). In one run, on a sandbox of its own, a
healthy `playbooks/full_recovery.yml` (every component diagnosed, nothing to do) with the cache and without it,
interleaved N times: wall time and the CPU seconds of ansible-playbook and all it started (user + system). The
first run with the cache fills it and is not counted, as only a test run's first build of a module is a build. The
payload bytecode cache (TRADEOPS_DR_PAYLOAD_BYTECODE) is left out of both.

    python bench/ansiballz_cache.py [--runs 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# imported for what it does: the collection link, PATH, a private incidents folder (as the tests have)
import conftest  # noqa: E402,F401  # pylint: disable=unused-import
from _runs import compare_test_cache  # noqa: E402  # bench/, beside this script

TARGET_CPU_RATIO = 0.9  # the cache must save at least a tenth of a whole healthy run's CPU

if __name__ == "__main__":
    sys.exit(compare_test_cache(__doc__, "TRADEOPS_DR_ANSIBALLZ_CACHE", "ansiballz_cache",
                                "the AnsiballZ payload cache", TARGET_CPU_RATIO))
