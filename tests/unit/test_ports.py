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
