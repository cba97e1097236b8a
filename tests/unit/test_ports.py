"""Ports of servers started by concurrent processes (pytest-xdist workers, two sandboxes): each
process picks from its own slice, so two never pick the same port before either binds it."""

from __future__ import annotations

import pytest

from tradeops_dr.sandbox import free_port, port_slice


@pytest.mark.parametrize("spec", ["0/2", "1/2", "0/3", "1/3", "2/3"])
def test_a_process_picks_only_ports_of_its_slice(spec, monkeypatch):
    monkeypatch.setenv("TRADEOPS_DR_PORT_SLICE", spec)
    index, count = (int(x) for x in spec.split("/"))
    ports = {free_port() for _attempt in range(20)}
    assert all((p // 2) % count == index for p in ports), sorted(ports)


@pytest.mark.parametrize("spec", ["", "x", "3/3", "-1/2", "1/0", "1/2/3"])
def test_an_unset_or_malformed_slice_means_every_port(spec, monkeypatch):
    monkeypatch.setenv("TRADEOPS_DR_PORT_SLICE", spec)
    assert port_slice() == (0, 1)
    assert 0 < free_port() < 65536


def test_a_port_to_avoid_is_never_picked(monkeypatch):
    monkeypatch.delenv("TRADEOPS_DR_PORT_SLICE", raising=False)
    first = free_port()
    assert all(free_port(avoid={first}) != first for _attempt in range(20))


def _lowest_port(avoid=()) -> int:
    """free_port as the system may answer it: nothing is bound yet, so the same port can be handed out again - the
    lowest one not avoided."""
    return next(port for port in range(41000, 41100, 2) if port not in avoid)


def test_a_new_sandbox_gives_every_part_a_port_of_its_own(tmp_path, monkeypatch):
    """A sandbox's ports are picked before any part binds one: the inference API once got one of QuestDB's (it
    avoided Redis's and PostgreSQL's only) and that sandbox failed every `up`. The parts' servers are not started
    here - only the sandbox's plan, as `up` writes it to sandbox.json."""
    from tradeops_dr.sandbox import processes, stack

    monkeypatch.setattr(processes, "free_port", _lowest_port)
    monkeypatch.setattr(stack, "free_port", _lowest_port)
    monkeypatch.setattr(stack.PostgresCluster, "init", lambda self: None)
    monkeypatch.setattr(stack.builds, "questdb_jar", lambda: tmp_path / "questdb.jar")
    monkeypatch.setattr(stack.builds, "timescaledb_installed", lambda: False)
    monkeypatch.setattr(stack.builds, "missing", lambda name: None)
    monkeypatch.setattr(stack.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(stack.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(stack.seed, "seed_model_repo", lambda repo, remote: "0" * 32)
    state = stack.Sandbox(tmp_path / "sb")._create()
    ports = [state["redis"]["port"], state["postgres"]["port"], state["model"]["port"]] + [
        state["questdb"][k] for k in ("http_port", "health_port", "pg_port", "ilp_port")]
    assert len(set(ports)) == len(ports) == 7, ports
