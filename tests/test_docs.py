"""docs/architecture.md's tables name exactly what exists: every module_util, module, role and file
of the Python package it lists exists, and every existing one is listed. README stays the user's
path (short; contributor material is in docs/) and its links lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import need

ROOT = Path(__file__).resolve().parents[1]
ARCH = (ROOT / "docs" / "architecture.md").read_text()


def _first_column(section: str) -> set[str]:
    """The backticked names in the first column of the table under a `## section` heading."""
    body = ARCH.split("\n## " + section, 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split(" | ")[0]))
    return names


def test_module_utils_table():
    listed = _first_column("module_utils")
    there = {p.name for p in (ROOT / "plugins" / "module_utils").glob("_*.py")}
    assert listed == there


def test_modules_table():
    listed = _first_column("Modules")
    there = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")}
    assert listed == there


def test_roles_table():
    listed = _first_column("Roles and playbooks")
    there = {p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()}
    assert listed & there == there and not {n for n in listed if not n.startswith("playbooks/")} - there


def test_python_package_table():
    listed = _first_column("The Python package")
    pkg = ROOT / "src" / "tradeops_dr"
    there = {p.name for p in pkg.glob("*.py") if p.name != "__init__.py"}
    there |= {f"{d.name}/" for d in pkg.iterdir() if d.is_dir() and d.name != "__pycache__"}
    assert {n for n in listed if n.endswith((".py", "/")) and "/" not in n.rstrip("/")} == there


def test_readme_is_the_users_path_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for heading in ("## At 3 a.m.", "## The two commands", "## Using it on your systems", "## Where to read more"):
        assert heading in readme
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        assert (ROOT / link).exists(), link


def test_layout_names_everything():
    layout = (ROOT / "docs" / "layout.md").read_text()
    names = [p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")]
    names += [p.stem for p in (ROOT / "plugins" / "module_utils").glob("_*.py")]
    names += [f"roles/{p.name}/" for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()]
    names += [p.name for p in (ROOT / "playbooks").glob("*.yml")]
    names += [p.name for p in (ROOT / "src" / "tradeops_dr").glob("*.py") if p.name != "__init__.py"]
    names += [f"{p.parent.name}/{p.name}" for pkg in ("drill", "sandbox")
              for p in (ROOT / "src" / "tradeops_dr" / pkg).glob("*.py")]
    assert [n for n in names if not re.search(rf"(?<![\w/]){re.escape(n)}(?![\w.])", layout)] == []


def test_the_generated_reference_is_current(tmp_path):
    """docs/reference is what antsibull-docs makes of the modules' DOCUMENTATION and the roles' argument specs now."""
    need(None if (Path(sys.executable).parent / "antsibull-docs").exists() else
         "antsibull-docs is not installed (pip install -e .[test])")
    subprocess.run(["bash", str(ROOT / "scripts" / "docs.sh"), str(tmp_path / "ref")], check=True, capture_output=True,
                   text=True, timeout=300, env=dict(os.environ, VENV=str(Path(sys.executable).parent.parent)))
    made = {p.name: p.read_text() for p in (tmp_path / "ref").glob("*.rst")}
    kept = {p.name: p.read_text() for p in (ROOT / "docs" / "reference").glob("*.rst")}
    stale = sorted(n for n in made.keys() | kept.keys() if made.get(n) != kept.get(n))
    assert not stale, f"docs/reference is stale ({', '.join(stale)}): run bash scripts/docs.sh"
    # every module and role has its page
    for p in (ROOT / "plugins" / "modules").glob("*.py"):
        assert f"{p.stem}_module.rst" in made
    for p in (ROOT / "roles").iterdir():
        assert f"{p.name}_role.rst" in made


def test_the_changelog_is_built_from_the_fragments(tmp_path):
    """CHANGELOG.rst is what antsibull-changelog makes of changelogs/fragments for the version in galaxy.yml."""
    need(None if (Path(sys.executable).parent / "antsibull-changelog").exists() else
         "antsibull-changelog is not installed (pip install -e .[test])")
    subprocess.run(["bash", str(ROOT / "scripts" / "changelog.sh"), str(tmp_path / "CHANGELOG.rst")], check=True,
                   capture_output=True, text=True, timeout=300,
                   env=dict(os.environ, VENV=str(Path(sys.executable).parent.parent)))
    assert (tmp_path / "CHANGELOG.rst").read_text() == (ROOT / "CHANGELOG.rst").read_text(), \
        "CHANGELOG.rst is stale: run bash scripts/changelog.sh"
    assert list((ROOT / "changelogs" / "fragments").glob("*.yml")), "the fragments are kept until a release"
