"""The lean_workers callback: each worker forked after it loaded starts with the objects it inherited frozen (out of
its garbage collector's reach), the controller's own collection untouched; the collection's ansible.cfg and the
Python API enable it for every run."""

from __future__ import annotations

import configparser
import gc
import os
from pathlib import Path

import pytest

from ansible_collections.tradeops.dr.plugins.callback import lean_workers

ROOT = Path(__file__).resolve().parents[4]


def _frozen_in_a_child() -> int:
    """gc.get_freeze_count() as a child forked now sees it right after the fork."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's cleanup
        try:
            os.write(write, str(gc.get_freeze_count()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        seen = int(f.read())
    os.waitpid(pid, 0)
    return seen


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="POSIX only")
def test_a_worker_forked_after_the_callback_loaded_starts_with_its_inherited_objects_frozen():
    gc.unfreeze()
    before = _frozen_in_a_child()
    lean_workers.CallbackModule()
    lean_workers.CallbackModule()  # loaded twice (as Ansible may): registered once
    after = _frozen_in_a_child()
    assert before == 0 and after > 10000, (before, after)  # the test process's own objects, by the thousand
    assert gc.get_freeze_count() == 0  # the parent (the controller) still collects all of its objects
    assert lean_workers._REGISTERED == [True]


def test_the_checkout_and_the_python_api_enable_it(tmp_path):
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    enabled = [c.strip() for c in cfg["defaults"]["callbacks_enabled"].split(",")]
    assert "tradeops.dr.lean_workers" in enabled and "tradeops.dr.incident" in enabled
    from tradeops_dr import api

    installed_root = tmp_path / "ansible_collections" / "tradeops" / "dr"  # a collection installed, not a checkout
    installed_root.mkdir(parents=True)
    installed = api._ansible_settings(installed_root)
    assert "tradeops.dr.lean_workers" in installed["ANSIBLE_CALLBACKS_ENABLED"].split(","), installed
