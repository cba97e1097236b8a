"""Where the collection is: TRADEOPS_DR_ROOT; else the checkout this package was installed from
(editable install) or the current directory's; else the tradeops.dr collection installed on
Ansible's collections path (ansible-galaxy collection install), with the package installed by pip
on its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import errors

COLLECTION = Path("ansible_collections") / "tradeops" / "dr"
# the stand-ins of the users' own applications (exchange, strategy, engines, router...), part of this package
STANDINS = Path(__file__).resolve().parent / "standins"


def cache_dir(*parts: str) -> Path:
    """The package's folder under the user's cache ($XDG_CACHE_HOME, default ~/.cache): tradeops-dr/<parts>."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "tradeops-dr", *parts)


def _is_root(path: Path) -> bool:
    """A checkout (galaxy.yml) or an installed collection (MANIFEST.json), with its playbooks."""
    return ((path / "galaxy.yml").is_file() or (path / "MANIFEST.json").is_file()) and (path / "playbooks").is_dir()


def collections_paths() -> list[Path]:
    """Ansible's collections path as the environment sets it, else its defaults (read without
    importing Ansible: the kill-switch fast path must not pay for that)."""
    env = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else \
        [Path("~/.ansible/collections").expanduser(), Path("/usr/share/ansible/collections")]
    # collections installed into the Python environment (the `ansible` bundle's place)
    paths += [Path(p) for p in sys.path if p.endswith("site-packages")]
    return paths


def installed_collection() -> Path | None:
    for base in collections_paths():
        if _is_root(base / COLLECTION):
            return base / COLLECTION
    return None


def project_root() -> Path:
    env = os.environ.get("TRADEOPS_DR_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for cand in here.parents:
        if _is_root(cand):
            return cand
    cwd = Path.cwd().resolve()
    for cand in (cwd, *cwd.parents):
        if _is_root(cand):
            return cand
    installed = installed_collection()
    if installed is not None:
        return installed
    raise errors.CollectionNotFound("cannot find the tradeops.dr collection: run from a checkout, install it "
                                    "(ansible-galaxy collection install), or set TRADEOPS_DR_ROOT")


def is_checkout(root: Path) -> bool:
    """A checkout reaches its collection through .state/collections and uses its ansible.cfg."""
    return (root / ".state" / "collections").is_dir()


def collections_base(root: Path) -> Path:
    """The folder that holds ansible_collections/tradeops/dr for this root."""
    if is_checkout(root):
        return root / ".state" / "collections"
    if root.parts[-3:] == COLLECTION.parts:
        return root.parents[2]
    raise errors.CollectionNotFound(f"{root} is neither a set-up checkout (run scripts/setup.sh) nor an installed collection")


def with_callbacks(enabled: str, *names: str) -> str:
    """An ANSIBLE_CALLBACKS_ENABLED value: the callbacks already enabled (comma-separated, as given), then these
    names, each once."""
    current = [c for c in enabled.split(",") if c.strip()]
    return ",".join(dict.fromkeys(current + list(names)))


def module_utils(name: str):
    """A module_utils file of the collection, from the checkout's .state/collections link or from
    the installed collection. The kill-switch fast path takes only those that import nothing from
    Ansible; others (_redis, _questdb) import ansible-core's module_utils, a dependency of the package."""
    import importlib

    base = str(collections_base(project_root()))
    if base not in sys.path:
        sys.path.insert(0, base)
    return importlib.import_module(f"ansible_collections.tradeops.dr.plugins.module_utils.{name}")
