"""The way users install it: the collection from its built tarball (ansible-galaxy collection
install), the tradeops-dr package with pip (not editable), run from outside any checkout."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("installed")
    # away from the checkout's ansible.cfg, whose collections path already holds tradeops.dr 0.1.0 (a link to the
    # checkout): ansible-galaxy would find it installed and skip the install
    bare = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_CONFIG", "TRADEOPS_DR_ROOT", "PYTHONPATH")}
    run = dict(capture_output=True, text=True, timeout=600, cwd=tmp, env=bare)
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp / "dist"), str(ROOT)],
                   check=True, **run)
    tarball = next((tmp / "dist").glob("tradeops-dr-*.tar.gz"))
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(tmp / "colls"),
                    str(tarball)], check=True, **run)
    assert (tmp / "colls" / "ansible_collections" / "tradeops" / "dr" / "MANIFEST.json").is_file()
    # from a copy of the package's sources: setuptools builds in the source tree (a build/ folder), which must
    # not appear in the checkout; with build isolation, pip fetches the setuptools pyproject.toml asks for
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    subprocess.run([str(BIN / "pip"), "install", "-q", "--no-deps", "--target", str(tmp / "pkg"), str(src)], check=True,
                   **run)
    env = dict(bare)
    env.update(PYTHONPATH=str(tmp / "pkg"), ANSIBLE_COLLECTIONS_PATH=str(tmp / "colls"),
               TRADEOPS_DR_INCIDENTS_DIR=str(tmp / "incidents"), TRADEOPS_DR_RUNS_DIR=str(tmp / "runs"),
               HOME=str(tmp / "home"))
    work = tmp / "elsewhere"  # not a checkout, nor below one
    work.mkdir()
    return tmp, env, work


def _cli(installed, *args):
    tmp, env, work = installed
    return subprocess.run([sys.executable, "-m", "tradeops_dr.cli", *args], env=env, cwd=work, capture_output=True,
                          text=True, timeout=600, check=False)


def test_the_package_and_the_collection_are_the_installed_ones(installed):
    tmp, env, work = installed
    code = "import tradeops_dr, tradeops_dr.paths as p; print(tradeops_dr.__file__); print(p.project_root())"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True, check=True)
    pkg, root = out.stdout.split()
    assert pkg.startswith(str(tmp / "pkg")), pkg
    assert root == str(tmp / "colls" / "ansible_collections" / "tradeops" / "dr")


def test_kill_switch_fast_path_finds_its_module_utils_in_the_installed_collection(installed):
    tmp, _env, _work = installed
    inv = tmp / "ks.yml"
    flag = tmp / "kill_switch.flag"
    inv.write_text("all:\n  children:\n    kill_switch:\n      hosts:\n        risk-1:\n"
                   f"          kill_switch_redis_host: 127.0.0.1\n          kill_switch_redis_port: {_closed_port()}\n"
                   f"          kill_switch_flag_file: {flag}\n")
    out = _cli(installed, "kill-switch", "engage", "-i", str(inv), "--reason", "test", "--actor", "tester",
               "--flag-only")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "KILL SWITCH NOT SET IN REDIS" in out.stderr and flag.exists()


def test_a_playbook_of_the_installed_collection_runs_with_its_module_and_callback(installed):
    tmp, _env, _work = installed
    inv = tmp / "hosts.yml"
    inv.write_text("all:\n  children:\n    redis_servers:\n      hosts:\n        cache-1:\n"
                   f"          ansible_connection: local\n          ansible_python_interpreter: {sys.executable}\n"
                   f"          dr_lock_dir: {tmp / 'locks'}\n")
    out = _cli(installed, "lock", "status", "-i", str(inv))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cache-1" in out.stdout and "free" in out.stdout
    assert list((tmp / "incidents").glob("INC-*.json")), "the incident callback of the installed collection did not run"
