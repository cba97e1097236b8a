"""service_control's main(): the per-host service dict, validated like direct options."""

from __future__ import annotations

import sys

from ansible_collections.tradeops.dr.plugins.modules import service_control

from conftest import run_module


def test_service_dict_runs_a_real_process(tmp_path, capsys):
    svc = dict(name="sleeper", manager="process", pidfile=str(tmp_path / "p.pid"), foreground=True,
               start_command=[sys.executable, "-c", "import time; time.sleep(30)"])
    out, failed = run_module(service_control, dict(service=svc, state="started"), capsys)
    assert not failed and out["changed"] and out["service"]["running"] is True
    out, failed = run_module(service_control, dict(service=svc, state="stopped", stop_timeout=5), capsys)
    assert not failed and out["service"]["running"] is False


def test_direct_options_take_precedence_over_the_service_dict(tmp_path, capsys):
    svc = dict(name="x", manager="process", pidfile=str(tmp_path / "a.pid"))
    out, failed = run_module(service_control, dict(service=svc, pidfile=str(tmp_path / "b.pid"), state="status"),
                             capsys)
    assert not failed and str(tmp_path / "b.pid") in out["service"]["status_before"]


def test_unknown_key_in_the_service_dict_is_refused(capsys):
    out, failed = run_module(service_control, dict(service=dict(name="x", manager="process", pid="/x")), capsys)
    assert failed and out["msg"].startswith("unknown service option(s) pid; known: name, manager")


def test_unknown_manager_in_the_service_dict_names_the_choices(capsys):
    out, failed = run_module(service_control, dict(service=dict(name="x", manager="runit")), capsys)
    assert failed and "manager" in out["msg"] and "process, systemd, docker, compose" in out["msg"]


def test_name_is_required_somewhere(capsys):
    out, failed = run_module(service_control, dict(manager="process"), capsys)
    assert failed and "name" in out["msg"] and "service" in out["msg"]
