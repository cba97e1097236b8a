"""Benchmark: what the tests' bytecode cache for module payloads saves (issue 24; src/tradeops_dr/payload_bytecode.py).

Each module run imports ansible-core's module_utils and the collection's from the zip Ansible wrote for that run,
and zipimport compiles that source every time. scripts/test.sh gives the tests a bytecode cache for it
(TRADEOPS_DR_PAYLOAD_BYTECODE). In one run, on a sandbox of its own, a healthy `playbooks/full_recovery.yml` (every
component diagnosed, nothing to do) with the cache and without it, interleaved N times: wall time and the CPU
seconds of ansible-playbook and all it started (user + system). The first run with the cache fills it and is not
counted, as a test run's first module runs are the only ones that compile.

    python bench/payload_bytecode.py [--runs 5]
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
    sys.exit(compare_test_cache(__doc__, "TRADEOPS_DR_PAYLOAD_BYTECODE", "payload_bytecode",
                                "the payload bytecode cache", TARGET_CPU_RATIO))
