"""src/tradeops_dr/payload_bytecode.py: the tests' bytecode cache for what modules import from their AnsiballZ
payload, installed in each of the venv's Pythons by the .pth scripts/setup.sh writes (issue 24)."""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import subprocess
import sys
import zipfile

import pytest

SOURCE = "VALUE = {value!r}\n\ndef boom():\n    raise RuntimeError('boom')\n"
RUN = ("import sys, traceback\nsys.path.insert(0, sys.argv[1])\nimport pbc_probe\nprint(pbc_probe.VALUE)\n"
       "try:\n    pbc_probe.boom()\nexcept RuntimeError as exc:\n    print(traceback.extract_tb(exc.__traceback__)[-1].filename)\n")


def payload(path, value="first"):
    """A zip as AnsiballZ writes one: source only, imported through zipimport."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pbc_probe.py", SOURCE.format(value=value))
    return path


def run(zip_path, cache):
    environ = dict(os.environ)
    environ.pop("TRADEOPS_DR_PAYLOAD_BYTECODE", None)
    if cache is not None:
        environ["TRADEOPS_DR_PAYLOAD_BYTECODE"] = str(cache)
    out = subprocess.run([sys.executable, "-c", RUN, str(zip_path)], capture_output=True, text=True, env=environ,
                         check=False, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()


def key(value):
    source = SOURCE.format(value=value).encode()
    return hashlib.sha256(importlib.util.MAGIC_NUMBER + bytes([sys.flags.optimize]) + source).hexdigest()


@pytest.fixture(name="cache")
def cache_folder(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    return folder


def test_the_venv_caches_a_payloads_code_and_reads_it_back_under_this_runs_path(tmp_path, cache):
    pth = [p for p in sys.path if p.endswith("site-packages")]
    assert any(os.path.exists(os.path.join(p, "tradeops_dr_payload_bytecode.pth")) for p in pth), \
        "scripts/setup.sh did not write tradeops_dr_payload_bytecode.pth into the venv"
    first = payload(tmp_path / "ansible_one_payload.zip")
    assert run(first, cache) == ["first", f"{first}/pbc_probe.py"]
    assert [p.name for p in cache.iterdir()] == [key("first")]
    # another run's payload, the same source: the code comes from the folder and names this run's file
    second = payload(tmp_path / "ansible_two_payload.zip")
    os.utime(cache / key("first"), (1, 1))
    assert run(second, cache) == ["first", f"{second}/pbc_probe.py"]
    assert [p.name for p in cache.iterdir()] == [key("first")]
    assert (cache / key("first")).stat().st_mtime == 1  # read, not written again


def test_what_runs_is_the_cached_code_and_a_changed_source_is_compiled_again(tmp_path, cache):
    zip_path = payload(tmp_path / "ansible_one_payload.zip")
    run(zip_path, cache)
    # the cache is trusted as __pycache__ is (hence a folder of this account's alone): prove it is what runs
    (cache / key("first")).write_bytes(marshal.dumps(compile("VALUE = 'from the cache'\ndef boom():\n    raise "
                                                             "RuntimeError()\n", "x", "exec")))
    assert run(zip_path, cache)[0] == "from the cache"
    changed = payload(tmp_path / "ansible_changed_payload.zip", value="second")
    assert run(changed, cache)[0] == "second"
    assert sorted(p.name for p in cache.iterdir()) == sorted([key("first"), key("second")])


def test_a_folder_others_can_write_or_no_variable_leaves_the_compile_as_it_was(tmp_path, cache):
    zip_path = payload(tmp_path / "ansible_one_payload.zip")
    cache.chmod(0o770)
    assert run(zip_path, cache)[0] == "first"
    assert not list(cache.iterdir())
    cache.chmod(0o700)
    assert run(zip_path, None)[0] == "first"
    assert run(zip_path, tmp_path / "missing")[0] == "first"
    assert not list(cache.iterdir())
    probe = "import zipimport; print(zipimport._compile_source.__qualname__)"
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "TRADEOPS_DR_PAYLOAD_BYTECODE"})
    assert plain.stdout.strip() == "_compile_source"


def test_a_damaged_cache_file_is_compiled_again_and_replaced(tmp_path, cache):
    zip_path = payload(tmp_path / "ansible_one_payload.zip")
    (cache / key("first")).write_bytes(b"\x00not marshal")
    assert run(zip_path, cache)[0] == "first"
    assert marshal.loads((cache / key("first")).read_bytes()).co_filename == f"{zip_path}/pbc_probe.py"
