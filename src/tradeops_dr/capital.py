"""The front door's first second (runbook 004: "protect capital - risk manager + kill switch always
first"; issue 27). Before recover() starts ansible-playbook - whose start-up, lock and plays take
seconds - it probes the ports of what the kill switch depends on (the catalog's protect_capital
components: their `probe` variables, on the hosts of their groups), in parallel with a short
deadline (dr_probe_timeout, 2 s), and when one does not answer, or dr_engage_kill_switch is set,
engages the switch through the fast path (fastpath.engage: the same Lua script in Redis, the local
flag file while Redis is down). The playbook then does the rest - its own probe, the engines'
acknowledgements, the strategies stopped, the orders cancelled - and its record says when the
switch was first engaged, in seconds from the command's start.

Where to probe comes from the inventory through Ansible (hosts, group and host variables,
templates) once, then from a private cache (like the fast path's, 0600 in a 0700 folder) while the
inventory's files, the environment variables its templates read and every file Ansible read to
resolve them (a sandbox.json looked up by a template) are unchanged.

Engaging the switch is the one thing done here, and only the protective direction: never a
reset, never a repair; without a lock (like the fast path: it must not wait), idempotent (a switch
already engaged keeps its first engagement)."""

from __future__ import annotations

import getpass
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from . import catalog, fastpath

TRUE = ("1", "true", "yes", "on", "y")


def selected(extravars: dict) -> list[str]:
    """The components of the run, as full_recovery.yml reads dr_components (a list, or a comma string)."""
    comps = extravars.get("dr_components")
    if comps in (None, "", []):
        return list(catalog.components())
    if isinstance(comps, str):
        return [c.strip() for c in comps.split(",") if c.strip()]
    return [str(c) for c in comps]


def resolve_via_ansible(inventory: str, limit: str | None, components: list[str]) -> tuple[dict, list[str]]:
    """({targets: [{component, host, address, port}], kill_switch_hosts: [...]}, the files Ansible read)."""
    fastpath.init_plugins()
    from ansible.inventory.manager import InventoryManager  # pylint: disable=import-outside-toplevel
    from ansible.template import Templar  # pylint: disable=import-outside-toplevel
    from ansible.vars.manager import VariableManager  # pylint: disable=import-outside-toplevel

    read: set[str] = set()
    loader = fastpath.recording_loader(read)
    inv = InventoryManager(loader=loader, sources=[inventory])
    if limit:
        inv.subset(limit)
    variables = VariableManager(loader=loader, inventory=inv)
    entries = catalog.load()
    targets = []
    for name in components:
        probe = entries[name]["probe"]
        for host in inv.get_hosts(entries[name]["group"]):
            hv = variables.get_vars(host=host)
            templar = Templar(loader=loader, variables=hv)
            address = templar.template(hv.get(probe["host"], probe["default_host"]))
            port = templar.template(hv.get(probe["port"], probe["default_port"]))
            targets.append(dict(component=name, host=host.name, address=str(address), port=int(port)))
    switch_hosts = [h.name for h in inv.get_hosts("kill_switch")]
    return dict(targets=targets, kill_switch_hosts=switch_hosts), sorted(read)


def probe_targets(inventory: str, limit: str | None, components: list[str]) -> dict:
    """What to probe and which hosts hold the switch: from the private cache while nothing it was
    resolved from changed, else through Ansible (then cached)."""
    path = fastpath.cache_file("front-door", inventory, limit or "", ",".join(components))
    cached = fastpath.read_resolved(path, inventory)
    if cached is not None:
        return dict(cached["resolved"], via="cache")
    resolved, read = resolve_via_ansible(inventory, limit, components)
    fastpath.write_resolved(path, inventory, dict(resolved=resolved, read=read))
    return dict(resolved, via="ansible")


def _answers(target: dict, timeout: float) -> bool:
    try:
        with socket.create_connection((target["address"], target["port"]), timeout=timeout):
            return True
    except OSError:
        return False


def probe(targets: list[dict], timeout: float) -> list[dict]:
    """The targets whose port does not answer within timeout, all tried at once."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        answers = list(pool.map(lambda t: _answers(t, timeout), targets))
    return [t for t, ok in zip(targets, answers) if not ok]


def protect(inventory: str, limit: str | None, extravars: dict, incident: str,
            started: float | None = None) -> dict | None:
    """The front door's protective step. None when it does not apply (the kill switch is not part of
    the run); else what it found and did: {probed, down, engaged: fastpath.engage's result or None,
    engage_failed: that result when it set the switch nowhere (else None), seconds, skipped: why it could not
    probe}. It never raises: the playbook's own probe follows."""
    started = time.perf_counter() if started is None else started
    comps = selected(extravars)
    if "kill_switch" not in comps:
        return None
    capital = [c for c in comps if c in catalog.protect_capital()]
    asked = str(extravars.get("dr_engage_kill_switch", "")).strip().lower() in TRUE
    timeout = float(extravars.get("dr_probe_timeout", 2) or 2)
    out = dict(probed=[], down=[], engaged=None, engage_failed=None, skipped=None)
    try:
        resolved = probe_targets(inventory, limit, capital)
    except Exception as exc:  # pylint: disable=broad-except  # the playbook probes and says why
        out["skipped"] = f"the inventory could not be read here ({type(exc).__name__}: {exc})"
        return dict(out, seconds=round(time.perf_counter() - started, 3))
    if not resolved["kill_switch_hosts"]:
        out["skipped"] = "no host of the kill_switch group in this run"
        return dict(out, seconds=round(time.perf_counter() - started, 3))
    out["probed"] = [f"{t['component']} on {t['host']}" for t in resolved["targets"]]
    down = probe(resolved["targets"], timeout)
    out["down"] = [f"{t['component']} on {t['host']}" for t in down]
    if down or asked:
        why = (", ".join(out["down"]) + " not answering" if down else "dr_engage_kill_switch")
        try:
            res = fastpath.engage(inventory, reason=f"full recovery {incident}: {why} (the front door, before the "
                                  "playbook)", actor=getpass.getuser(), incident=incident,
                                  limit=resolved["kill_switch_hosts"][0], started=started)
        except Exception as exc:  # pylint: disable=broad-except  # said, and the playbook's own engage follows
            res = dict(outcome="failed", error=f"{type(exc).__name__}: {exc}",
                       seconds=time.perf_counter() - started)
        # only an engagement that set something is one the playbook keeps as the first: a failed one is said apart
        out["engage_failed" if res.get("outcome") == "failed" else "engaged"] = {
            k: res.get(k) for k in ("outcome", "seconds", "flag_file", "error", "host", "previous")}
        out["reason"] = why
    return dict(out, seconds=round(time.perf_counter() - started, 3))
