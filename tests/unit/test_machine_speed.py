"""bench/machine_speed.py: the machine's speed that scripts/test.sh prints beside a run's time (issue 24)."""

from __future__ import annotations

import json
import sys

from conftest import load_script

machine_speed = load_script("machine_speed", "bench")


def test_the_reference_measures_a_playbook_run_and_the_cpu_alone(tmp_path, monkeypatch, capsys):
    out = tmp_path / "speed.json"
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"playbook_cpu_s": 0.61, "python_cpu_s": 0.42}))
    # the reference is the machine's: the tests' caches for module payloads (scripts/test.sh sets them) are left out
    cache, payloads = tmp_path / "cache", tmp_path / "payloads"
    for folder in (cache, payloads):
        folder.mkdir(mode=0o700)
    monkeypatch.setenv("TRADEOPS_DR_PAYLOAD_BYTECODE", str(cache))
    monkeypatch.setenv("TRADEOPS_DR_ANSIBALLZ_CACHE", str(payloads))
    monkeypatch.setattr(sys, "argv", ["machine_speed.py", "--runs", "1", "--json", str(out), "--before", str(before)])
    assert machine_speed.main() == 0
    figures = json.loads(out.read_text())
    # an ansible-playbook run costs at least its imports (~0.4 CPU-s here); CPU time, not wall time
    assert figures["runs"] == 1 and figures["playbook_cpu_s"] > 0.2 and figures["python_cpu_s"] > 0.05
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"playbook_cpu_s {figures['playbook_cpu_s']} ")
    assert printed[1].startswith(f"python_cpu_s {figures['python_cpu_s']} ")
    assert printed[2] == (f"the machine's speed - a one-task ansible-playbook run 0.61 CPU-s before the run, "
                          f"{figures['playbook_cpu_s']} after; a fixed Python loop 0.42 and {figures['python_cpu_s']} "
                          "CPU-s (bench/machine_speed.py)")
    assert not list(cache.iterdir()) and not list(payloads.iterdir())


def test_a_reference_that_cannot_run_says_so_and_writes_no_figures(tmp_path, monkeypatch, capsys):
    out = tmp_path / "speed.json"
    monkeypatch.setattr(machine_speed, "PLAY", "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail:\n")
    monkeypatch.setattr(sys, "argv", ["machine_speed.py", "--runs", "1", "--json", str(out)])
    assert machine_speed.main() == 1
    assert "the reference could not be measured" in capsys.readouterr().err
    assert not out.exists()
