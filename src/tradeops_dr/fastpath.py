"""The kill-switch fast path: set the flag in Redis straight from the command line, with the
same Lua script the kill_switch module runs (module_utils/_killswitch.py), before anything
imports Ansible; the playbook then does the rest (stop services, verify acks).

Where Redis is comes from the inventory: the kill_switch_redis_* variables (and
kill_switch_flag_file) of the first host of the kill_switch group (or --limit), read with
PyYAML from the inventory file or folder (hosts file, group_vars/, host_vars/), or by Ansible
when a value is templated or vaulted (slower). The resolved connection is then kept in a
private cache (~/.cache/tradeops-dr/kill-switch/, folder 0700, file 0600: it holds the Redis
password) and used while the inventory's files are unchanged, so that an engage does not wait
for YAML, Ansible or redis-py: it opens one socket and runs one EVAL. A cached connection that
fails is resolved again once.

Fail closed: when Redis cannot be reached, or the inventory cannot be read, the local flag
file is written at once: kill_switch_flag_file of the inventory, or (inventory unreadable)
$TRADEOPS_DR_KILL_SWITCH_FLAG, default /var/lib/tradeops-dr/kill_switch.flag."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tradeops_dr.paths import cache_dir, module_utils

KEYS = ("kill_switch_redis_host", "kill_switch_redis_port", "kill_switch_redis_user", "kill_switch_redis_password",
        "kill_switch_flag_file")
DEFAULTS = dict(kill_switch_redis_host="127.0.0.1", kill_switch_redis_port=6379, kill_switch_redis_user="",
                kill_switch_redis_password="", kill_switch_flag_file="/var/lib/tradeops-dr/kill_switch.flag")


_PLUGINS_READY = False


class NeedsAnsible(Exception):
    pass


def _load(path: Path, vaulted_as_none: bool = False) -> dict:
    """A YAML file of the inventory; a vaulted value raises NeedsAnsible (or reads as None when asked)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def vault(loader, node):
        if vaulted_as_none:
            return None
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


def _groups_of(tree: dict, host: str) -> set[str]:
    """Every group that holds host, directly or through a child group (all included)."""
    out: set[str] = set()

    def walk(groups: dict) -> bool:
        found = False
        for name, group in (groups or {}).items():
            group = group or {}
            below = walk(group.get("children") or {})
            if host in (group.get("hosts") or {}) or below:
                out.add(name)
                found = True
        return found

    walk(tree)
    return out | {"all"}


def _ancestors(tree: dict, group: str) -> set[str]:
    """group and every group above it."""
    out: set[str] = set()

    def walk(groups: dict, path: list[str]) -> None:
        for name, g in (groups or {}).items():
            if name == group:
                out.update(path + [name])
            walk((g or {}).get("children") or {}, path + [name])

    walk(tree, [])
    return out | {"all"}


def _plain_precedence(tree: dict, base: Path, host: str) -> None:
    """NeedsAnsible unless the reader below resolves the host's variables exactly as Ansible would:
    the host is in kill_switch and its parents only (no other group whose variables could win, in an
    order only Ansible knows), and no group_vars file belongs to a parent group the reader does not read
    (issue 26: group_vars/prod.yml for a parent prod was ignored and the wrong Redis engaged)."""
    groups = _groups_of(tree, host)
    others = groups - _ancestors(tree, "kill_switch")
    if others:
        raise NeedsAnsible(f"{host} is in other groups too ({', '.join(sorted(others))}): Ansible's precedence decides")
    folder = base / "group_vars"
    for name in sorted(groups - {"all", "kill_switch"}):
        if any((folder / f"{name}{ext}").exists() for ext in ("", ".yml", ".yaml", ".json")):
            raise NeedsAnsible(f"group_vars of the parent group {name} may set the connection")
    if any("ansible_group_priority" in layer for layer in _group_vars_chain(tree, host)):
        raise NeedsAnsible("a group sets ansible_group_priority")


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


def _inventory_tree(inventory: str) -> tuple[dict, Path]:
    """The inventory's YAML hosts files merged, and the folder its group_vars/ and host_vars/ are in."""
    inv = Path(inventory)
    files = sorted(p for p in inv.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file()) if inv.is_dir() else [inv]
    tree: dict = {}
    for f in files:
        tree.update(_load(f))
    return tree, (inv if inv.is_dir() else inv.parent)


def connection_from_inventory(inventory: str, limit: str | None = None) -> dict:
    """The kill_switch_redis_* values of the target host; NeedsAnsible when a value is templated."""
    tree, base = _inventory_tree(inventory)
    hosts = _hosts(tree, "kill_switch")
    if limit:
        hosts = [h for h in hosts if h == limit] or [limit]
    if not hosts:
        raise NeedsAnsible("no host in group kill_switch found by the plain YAML reader")
    host = hosts[0]
    _plain_precedence(tree, base, host)
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
                login_password=merged["kill_switch_redis_password"] or None,
                flag_file=merged["kill_switch_flag_file"], via="yaml")


def _vars_files(folder: Path, name: str, vaulted_as_none: bool = False) -> list[dict]:
    """<folder>/<name>.yml or .yaml, and every YAML file in a <folder>/<name>/ folder."""
    paths = [folder / f"{name}{ext}" for ext in (".yml", ".yaml")]
    if (folder / name).is_dir():
        paths += sorted(p for p in (folder / name).iterdir() if p.suffix in (".yml", ".yaml"))
    return [_load(p, vaulted_as_none) for p in paths if p.is_file()]


def _host_vars(tree: dict, host: str) -> dict:
    for group in (tree or {}).values():
        group = group or {}
        if host in (group.get("hosts") or {}):
            return (group["hosts"][host] or {})
        found = _host_vars(group.get("children") or {}, host)
        if found:
            return found
    return {}


def init_plugins() -> None:
    """Ansible's plugin loader, once per process (a second init warns: AnsibleCollectionFinder already configured)."""
    global _PLUGINS_READY  # pylint: disable=global-statement
    if not _PLUGINS_READY:
        import warnings

        from ansible.plugins.loader import init_plugin_loader

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been configured")
            init_plugin_loader([])
        _PLUGINS_READY = True


def recording_loader(read: set):
    """Ansible's DataLoader, noting in `read` every file it reads (a template's file lookup included): what a
    cache of what Ansible resolved must be invalidated by, beside the inventory's own files."""
    from ansible.parsing.dataloader import DataLoader

    class Recording(DataLoader):
        def get_text_file_contents(self, file_name, encoding=None):
            read.add(os.path.abspath(file_name))
            return super().get_text_file_contents(file_name, encoding=encoding)

        def load_from_file(self, file_name, *args, **kwargs):
            read.add(os.path.abspath(file_name))
            return super().load_from_file(file_name, *args, **kwargs)

    return Recording()


def files_state(paths) -> list:
    """[path, mtime_ns, size] of each file (None, None when it is gone)."""
    out = []
    for path in sorted(set(paths)):
        try:
            st = os.stat(path)
            out.append([path, st.st_mtime_ns, st.st_size])
        except OSError:
            out.append([path, None, None])
    return out


def connection_via_ansible(inventory: str, limit: str | None = None) -> dict:
    from ansible.inventory.manager import InventoryManager
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    init_plugins()
    read: set = set()
    loader = recording_loader(read)
    inv = InventoryManager(loader=loader, sources=[inventory])
    hosts = inv.get_hosts(limit or "kill_switch")
    if not hosts:
        raise LookupError(f"no host in group kill_switch of inventory {inventory}")
    variables = VariableManager(loader=loader, inventory=inv).get_vars(host=hosts[0])
    templar = Templar(loader=loader, variables=variables)
    val = {k: templar.template(variables.get(k, DEFAULTS[k])) for k in KEYS}
    return dict(host=hosts[0].name, login_host=val["kill_switch_redis_host"], login_port=int(val["kill_switch_redis_port"]),
                login_user=val["kill_switch_redis_user"] or None,
                login_password=val["kill_switch_redis_password"] or None,
                flag_file=val["kill_switch_flag_file"], via="ansible", read=sorted(read))


def cache_file(kind: str, inventory: str, *key: str) -> Path:
    """The private cache file of what `kind` resolved from an inventory (and the rest of its key)."""
    import hashlib

    digest = hashlib.sha256("|".join([str(Path(inventory).resolve()), *key]).encode()).hexdigest()[:20]
    return cache_dir(kind) / f"{digest}.json"


_ENV_LOOKUP = re.compile(r"""env['"]\s*,\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")


def inventory_fingerprint(inventory: str) -> list:
    """(path, mtime_ns, size) of every file of the inventory, and the value of every environment
    variable its templates look up (inventories/local reads TRADEOPS_DR_SANDBOX): a change of
    either invalidates the cache, so that it never names the Redis of another setting."""
    inv = Path(inventory)
    files = [inv] if inv.is_file() else sorted(p for p in inv.rglob("*") if p.is_file())
    out, names = [], set()
    for f in files:
        st = f.stat()
        out.append([str(f), st.st_mtime_ns, st.st_size])
        if st.st_size < 1_000_000:
            names.update(_ENV_LOOKUP.findall(f.read_text(errors="replace")))
    out += [["env", name, os.environ.get(name)] for name in sorted(names)]
    return out


def read_private(path: Path, fingerprint) -> dict | None:
    """The payload of a private cache file (0600, ours) whose fingerprint is still the given one (a
    list, or a function of the payload giving it), else None."""
    import json

    try:
        if path.stat().st_mode & 0o077 or path.stat().st_uid != os.getuid():
            return None  # not private (or not ours): never trusted
        data = json.loads(path.read_text())
        payload = data.get("payload")
        expected = fingerprint(payload) if callable(fingerprint) else fingerprint
        if not isinstance(payload, dict) or data.get("fingerprint") != expected:
            return None
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return payload


def write_private(path: Path, fingerprint: list, payload) -> None:
    """Keep payload in a private cache file (folder 0700, file 0600: it may hold a password), with the
    fingerprint that invalidates it; a failure only costs the next call its time."""
    import json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(fingerprint=fingerprint, payload=payload), handle)
        os.replace(tmp, path)
    except OSError:
        pass


def read_resolved(path: Path, inventory: str) -> dict | None:
    """What was resolved from the inventory and cached at path (a payload naming the files the resolution
    read, under "read"), while none of the inventory's files, the environment its templates read, nor
    those files changed; else None."""
    base = inventory_fingerprint(inventory)
    return read_private(path, lambda payload: base + files_state(payload.get("read") or []))


def write_resolved(path: Path, inventory: str, payload: dict) -> None:
    """Cache what was resolved from the inventory (payload["read"]: the files the resolution read)."""
    write_private(path, inventory_fingerprint(inventory) + files_state(payload.get("read") or []), payload)


def _read_cache(inventory: str, limit: str | None) -> dict | None:
    conn = read_resolved(cache_file("kill-switch", inventory, limit or ""), inventory)
    if conn:
        conn["via"] = "cache"
    return conn


def _write_cache(inventory: str, limit: str | None, conn: dict) -> None:
    write_resolved(cache_file("kill-switch", inventory, limit or ""), inventory,
                   {k: v for k, v in conn.items() if k not in ("via", "why_ansible")})


def resolve(inventory: str, limit: str | None = None, use_cache: bool = True) -> dict:
    """The Redis connection and flag file of the kill switch: cache, else YAML, else Ansible."""
    conn = _read_cache(inventory, limit) if use_cache else None
    if conn:
        return conn
    try:
        conn = connection_from_inventory(inventory, limit)
    except NeedsAnsible as why:
        conn = connection_via_ansible(inventory, limit)
        conn["why_ansible"] = str(why)
    _write_cache(inventory, limit, conn)
    return conn


def inventory_flag_file(inventory: str, limit: str | None = None) -> str | None:
    """kill_switch_flag_file as the inventory's plain files give it, when the full resolution failed (a
    vaulted password without the vault's password): the engines read that file, not the default path."""
    try:
        tree, base = _inventory_tree(inventory)
        hosts = _hosts(tree, "kill_switch")
        host = limit if limit and (limit in hosts or not hosts) else (hosts[0] if hosts else None)
        if host is None:
            return None
        flag = None
        layers = (_group_vars_chain(tree, host)
                  + [layer for g in sorted(_groups_of(tree, host)) for layer in _vars_files(base / "group_vars", g, True)]
                  + [_host_vars(tree, host)] + _vars_files(base / "host_vars", host, True))
        for layer in layers:
            value = layer.get("kill_switch_flag_file")
            if isinstance(value, str) and value and "{{" not in value:
                flag = value
        return flag
    except Exception:  # pylint: disable=broad-except  # best effort: the caller falls back to the default path
        return None


def _flag_in_redis(conn: dict, state: str, reason: str, actor: str, incident: str | None, _killswitch):
    client = _killswitch.RespClient(conn["login_host"], conn["login_port"], conn.get("login_user"),
                                    conn.get("login_password"))
    try:
        return _killswitch.engage(client, "policy:kill_switch", "policy:kill_switch:events", state, reason, actor,
                                  incident)
    finally:
        client.close()


def _fail_closed(out: dict, _killswitch, flag: str, what: tuple, noted: str, error: str, started: float) -> dict:
    """The local flag file when Redis cannot hold the switch; outcome 'failed' when the file cannot be written
    either (a folder below a file, a read-only disk): the switch is then set nowhere, and the result says why."""
    reason, actor, incident, state = what
    try:
        _killswitch.write_flag_file(flag, reason, actor, incident, state, noted)
    except OSError as exc:
        return dict(out, outcome="failed", flag_file=flag, seconds=time.perf_counter() - started,
                    error=f"{error}; the local flag file {flag} could not be written either: {exc}")
    return dict(out, outcome="flag-file", flag_file=flag, error=error, seconds=time.perf_counter() - started)


def engage(inventory: str, reason: str, actor: str, incident: str | None, state: str = "halted",
           limit: str | None = None, started: float | None = None) -> dict:
    """Set the flag; fail closed. Returns what was done and when (seconds since `started`):
    outcome engaged/already/escalated, or 'flag-file' when only the local flag file could be
    written (Redis unreachable, inventory unreadable), with the error, or 'failed' when that file could not be
    written either (the switch is set nowhere: said, not raised - the playbook's own engage follows)."""
    started = started if started is not None else time.perf_counter()
    _killswitch = module_utils("_killswitch")
    out = dict(pid=os.getpid(), previous=None, via=None, why_ansible=None, host=None, endpoint=None)
    try:
        conn = resolve(inventory, limit)
    except Exception as exc:  # an engage whose inventory cannot be read still sets the local flag
        flag = inventory_flag_file(inventory, limit) or os.environ.get("TRADEOPS_DR_KILL_SWITCH_FLAG") \
            or DEFAULTS["kill_switch_flag_file"]
        return _fail_closed(out, _killswitch, flag, (reason, actor, incident, state), f"inventory {inventory}: {exc}",
                            f"cannot read inventory {inventory}: {exc}", started)
    out.update(host=conn["host"], endpoint=f"{conn['login_host']}:{conn['login_port']}", via=conn["via"],
               why_ansible=conn.get("why_ansible"))
    try:
        try:
            outcome, previous = _flag_in_redis(conn, state, reason, actor, incident, _killswitch)
        except (OSError, _killswitch.RespError):
            if conn["via"] != "cache":
                raise
            conn = resolve(inventory, limit, use_cache=False)  # the cache may be stale: once more, fresh
            out.update(endpoint=f"{conn['login_host']}:{conn['login_port']}", via=conn["via"])
            outcome, previous = _flag_in_redis(conn, state, reason, actor, incident, _killswitch)
    except (OSError, _killswitch.RespError) as exc:
        flag = conn.get("flag_file") or DEFAULTS["kill_switch_flag_file"]
        return _fail_closed(out, _killswitch, flag, (reason, actor, incident, state), str(exc),
                            f"Redis {out['endpoint']}: {exc}", started)
    return dict(out, outcome=outcome, previous=previous, seconds=time.perf_counter() - started)
