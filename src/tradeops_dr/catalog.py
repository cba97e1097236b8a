"""The component catalog, as Python reads it: playbooks/full_recovery/components.yml's dr_catalog is
the one list of the components the front door knows (group, role, diagnosis fact, stage, RTO and its
runbook line, priority, whether it protects capital, its diagnose and recover variables, its approval
variable). The CLI's choices, the scenarios of recover(), the components that bring the kill switch
along and the component of each progress event come from here; tests/test_catalog.py proves that
every consumer agrees with it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from . import errors
from .paths import project_root

CATALOG_FILE = Path("playbooks") / "full_recovery" / "components.yml"
FIELDS = ("group", "role", "roles", "fact", "stage", "rto", "rto_source", "priority", "priority_source",
          "protect_capital", "probe", "diagnose", "recover", "approval", "awaiting")
STAGES = ("capital", "data", "applications")


class CatalogError(errors.CollectionNotFound):
    """The catalog cannot be read, or an entry lacks what every consumer relies on."""


def check(catalog: dict) -> dict:
    """Refuse a catalog whose entries lack a field or hold one of the wrong kind (a new entry is checked at once)."""
    if not isinstance(catalog, dict) or not catalog:
        raise CatalogError("dr_catalog must map component names to entries")
    for name, entry in catalog.items():
        missing = [f for f in FIELDS if f not in (entry or {})]
        if missing:
            raise CatalogError(f"dr_catalog.{name} lacks {', '.join(missing)}")
        if entry["stage"] not in STAGES:
            raise CatalogError(f"dr_catalog.{name}.stage is {entry['stage']!r}; one of {', '.join(STAGES)}")
        if not isinstance(entry["diagnose"], dict) or not isinstance(entry["recover"], dict):
            raise CatalogError(f"dr_catalog.{name}: diagnose and recover are the role's variables (mappings)")
        if entry["protect_capital"] and not {"host", "port", "default_host", "default_port"} <= set(entry["probe"] or {}):
            raise CatalogError(f"dr_catalog.{name} protects capital: its probe names host, port and their defaults")
        if not 1 <= int(entry["priority"]) <= 4:
            raise CatalogError(f"dr_catalog.{name}.priority is {entry['priority']!r}: runbook 004 knows P1-P4")
    return catalog


def load(root: Path | None = None) -> dict:
    """dr_catalog of the collection at root (default: paths.project_root())."""
    return _read((root or project_root()) / CATALOG_FILE)


@lru_cache(maxsize=8)
def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read the component catalog {path}: {exc}") from exc
    return check((data or {}).get("dr_catalog"))


def components(root: Path | None = None) -> tuple[str, ...]:
    """The components, in the catalog's order."""
    return tuple(load(root))


def scenarios(root: Path | None = None) -> tuple[str, ...]:
    """What `tradeops-dr recover` takes: full, or one component."""
    return ("full",) + components(root)


def protect_capital(root: Path | None = None) -> tuple[str, ...]:
    """The components trading depends on: recovering one brings the kill switch along (runbook 004)."""
    return tuple(name for name, e in load(root).items() if e["protect_capital"])


def capital_components(root: Path | None = None) -> tuple[str, ...]:
    """The components of the capital stage (the kill switch)."""
    return tuple(name for name, e in load(root).items() if e["stage"] == "capital")


def role_component(root: Path | None = None) -> dict[str, str]:
    """Each role (the entry's role and its other roles) -> its component."""
    out = {}
    for name, e in load(root).items():
        for role in [e["role"], *e["roles"]]:
            out[role] = name
    return out
