"""The kill-switch fast path: set the flag in Redis straight from the command line, with the
same code the kill_switch module runs (module_utils/_killswitch.py), before anything imports
Ansible (about 0.6 s here); the playbook then does the rest (stop services, verify acks).

Where Redis is comes from the inventory: the kill_switch_redis_* variables of the first host
of the kill_switch group (or --limit), read with PyYAML from the inventory file or folder
(hosts file, group_vars/, host_vars/). Values that are templated or vaulted need Ansible
itself: then the inventory is read by Ansible, slower, and the result says so."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tradeops_dr.paths import module_utils

KEYS = ("kill_switch_redis_host", "kill_switch_redis_port", "kill_switch_redis_user", "kill_switch_redis_password")
DEFAULTS = dict(kill_switch_redis_host="127.0.0.1", kill_switch_redis_port=6379, kill_switch_redis_user="",
                kill_switch_redis_password="")


class NeedsAnsible(Exception):
    pass


def _load(path: Path) -> dict:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def vault(loader, node):
        raise NeedsAnsible(f"{path} holds a vaulted value")

    Loader.add_constructor("!vault", vault)
    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    return yaml.load(path.read_text(), Loader=Loader) or {}


def _group_vars_chain(tree: dict, host: str) -> list[dict]:
    """The vars of every inventory group that holds host (directly or through its children),
    outer groups first."""
    out: list[dict] = []

    def walk(groups: dict) -> bool:
        found = False
        for group in (groups or {}).values():
            group = group or {}
            mark = len(out)
            out.append(group.get("vars") or {})
            below = walk(group.get("children") or {})
            if host in (group.get("hosts") or {}) or below:
                found = True
            else:
                del out[mark]  # nothing below was kept either
        return found

    walk(tree)
    return out


def _hosts(tree: dict, group: str) -> list[str]:
    out = []
    for name, g in (tree or {}).items():
        g = g or {}
        if name == group:
            out += list((g.get("hosts") or {}).keys())
            for child in (g.get("children") or {}).values():
                out += list(((child or {}).get("hosts") or {}).keys())
        out += _hosts(g.get("children") or {}, group)
    return out


def connection_from_inventory(inventory: str, limit: str | None = None) -> dict:
    """The kill_switch_redis_* values of the target host; NeedsAnsible when a value is templated."""
    inv = Path(inventory)
    files = sorted(p for p in inv.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file()) if inv.is_dir() else [inv]
    base = inv if inv.is_dir() else inv.parent
    tree = {}
    for f in files:
        tree.update(_load(f))
    hosts = _hosts(tree, "kill_switch")
    if limit:
        hosts = [h for h in hosts if h == limit] or [limit]
    if not hosts:
        raise NeedsAnsible("no host in group kill_switch found by the plain YAML reader")
    host = hosts[0]
    merged = dict(DEFAULTS)
    # Ansible's order, lowest first: inventory group vars (outer groups first), group_vars/all,
    # group_vars/kill_switch, the host's inventory vars, host_vars/<host>.
    layers = (_group_vars_chain(tree, host) + _vars_files(base / "group_vars", "all")
              + _vars_files(base / "group_vars", "kill_switch") + [_host_vars(tree, host)]
              + _vars_files(base / "host_vars", host))
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if k in KEYS})
    for k in KEYS:
        if isinstance(merged[k], str) and ("{{" in merged[k] or "{%" in merged[k]):
            raise NeedsAnsible(f"{k} of {host} is templated")
    return dict(host=host, login_host=merged["kill_switch_redis_host"], login_port=int(merged["kill_switch_redis_port"]),
                login_user=merged["kill_switch_redis_user"] or None,
                login_password=merged["kill_switch_redis_password"] or None, via="yaml")


def _vars_files(folder: Path, name: str) -> list[dict]:
    """<folder>/<name>.yml or .yaml, and every YAML file in a <folder>/<name>/ folder."""
    paths = [folder / f"{name}{ext}" for ext in (".yml", ".yaml")]
    if (folder / name).is_dir():
        paths += sorted(p for p in (folder / name).iterdir() if p.suffix in (".yml", ".yaml"))
    return [_load(p) for p in paths if p.is_file()]


def _host_vars(tree: dict, host: str) -> dict:
    for group in (tree or {}).values():
        group = group or {}
        if host in (group.get("hosts") or {}):
            return (group["hosts"][host] or {})
        found = _host_vars(group.get("children") or {}, host)
        if found:
            return found
    return {}


def connection_via_ansible(inventory: str, limit: str | None = None) -> dict:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    init_plugin_loader([])
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[inventory])
    hosts = inv.get_hosts(limit or "kill_switch")
    if not hosts:
        raise SystemExit(f"tradeops-dr: no host in group kill_switch of {inventory}")
    variables = VariableManager(loader=loader, inventory=inv).get_vars(host=hosts[0])
    templar = Templar(loader=loader, variables=variables)
    val = {k: templar.template(variables.get(k, DEFAULTS[k])) for k in KEYS}
    return dict(host=hosts[0].name, login_host=val["kill_switch_redis_host"], login_port=int(val["kill_switch_redis_port"]),
                login_user=val["kill_switch_redis_user"] or None,
                login_password=val["kill_switch_redis_password"] or None, via="ansible")


def engage(inventory: str, reason: str, actor: str, incident: str | None, state: str = "halted",
           limit: str | None = None, started: float | None = None) -> dict:
    """Set the flag. Returns what was done and when (seconds since `started`)."""
    started = started if started is not None else time.perf_counter()
    try:
        conn = connection_from_inventory(inventory, limit)
    except NeedsAnsible as why:
        conn = connection_via_ansible(inventory, limit)
        conn["why_ansible"] = str(why)
    _killswitch = module_utils("_killswitch")
    import redis

    client = redis.Redis(host=conn["login_host"], port=conn["login_port"], username=conn["login_user"],
                         password=conn["login_password"], socket_timeout=3, socket_connect_timeout=3)
    outcome, previous = _killswitch.engage(client, "policy:kill_switch", "policy:kill_switch:events", state, reason,
                                           actor, incident)
    client.close()
    return dict(outcome=outcome, previous=previous, host=conn["host"], endpoint=f"{conn['login_host']}:{conn['login_port']}",
                via=conn["via"], why_ansible=conn.get("why_ansible"), seconds=time.perf_counter() - started,
                pid=os.getpid())
