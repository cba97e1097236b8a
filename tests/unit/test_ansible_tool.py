"""The CLI finds Ansible's commands where pip put them: beside the interpreter in a venv, on PATH in
a system install (scripts in /usr/local/bin, the interpreter in /usr/bin: the execution
environment's layout, where `tradeops-dr drill` failed with FileNotFoundError)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tradeops_dr import drill_history


def _tool(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / name
    f.write_text("#!/bin/sh\n")
    f.chmod(0o755)
    return f


def test_a_system_install_finds_the_tool_on_path(tmp_path, monkeypatch):
    interpreter_dir, scripts_dir = tmp_path / "usr" / "bin", tmp_path / "usr" / "local" / "bin"
    interpreter_dir.mkdir(parents=True)
    tool = _tool(scripts_dir, "ansible-inventory")
    monkeypatch.setattr(sys, "executable", str(interpreter_dir / "python3"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(scripts_dir), "/usr/bin"]))
    assert drill_history.ansible_tool("ansible-inventory") == str(tool)


def test_the_venv_beside_the_interpreter_comes_first(tmp_path, monkeypatch):
    venv_tool = _tool(tmp_path / "venv" / "bin", "ansible-inventory")
    _tool(tmp_path / "elsewhere", "ansible-inventory")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    assert drill_history.ansible_tool("ansible-inventory") == str(venv_tool)


def test_a_missing_tool_is_a_clear_refusal(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(drill_history.NotADrillTarget, match="ansible-inventory is not installed"):
        drill_history.ansible_tool("ansible-inventory")


def test_inventory_vars_reads_an_inventory_from_a_system_layout(tmp_path, monkeypatch):
    """End to end through the real ansible-inventory, found on PATH only."""
    real = Path(drill_history.ansible_tool("ansible-inventory"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python3"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(real.parent), os.environ.get("PATH", "")]))
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    drill-1:\n      dr_drill_target: true\n")
    assert drill_history.inventory_vars(str(inv)) == {"drill-1": {"dr_drill_target": True}}
