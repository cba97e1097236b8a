"""Where the collection checkout is: TRADEOPS_DR_ROOT, else the checkout this package was
installed from (editable install), else the current directory or one of its parents."""

from __future__ import annotations

import os
from pathlib import Path


def _is_root(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() and (path / "playbooks").is_dir()


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
    raise RuntimeError("cannot find the tradeops.dr checkout: set TRADEOPS_DR_ROOT")


def module_utils(name: str):
    """A module_utils file of the collection (those that import nothing from Ansible), found
    through the .state/collections link of the checkout."""
    import importlib
    import sys

    for cand in Path(__file__).resolve().parents:
        coll = cand / ".state" / "collections"
        if coll.is_dir():
            if str(coll) not in sys.path:
                sys.path.insert(0, str(coll))
            break
    return importlib.import_module(f"ansible_collections.tradeops.dr.plugins.module_utils.{name}")
