"""src/tradeops_dr/ansiballz_cache.py: the tests' cache of the AnsiballZ payloads ansible-core builds, kept from one
ansible-playbook run to the next under a digest of their sources, installed in each of the venv's Pythons by the
.pth scripts/setup.sh writes (issue 24). Real ansible-playbook runs of a module of a collection made here."""

from __future__ import annotations

import marshal
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
MODULE = '''from ansible.module_utils.basic import AnsibleModule
from ansible_collections.probe.cache.plugins.module_utils.value import VALUE


def main():
    module = AnsibleModule(argument_spec={})
    module.exit_json(changed=False, value=VALUE@SUFFIX@)


if __name__ == "__main__":
    main()
'''
PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - probe.cache.echo:
      register: out
    - ansible.builtin.debug:
        msg: "VALUE={{ out.value }}"
"""
FQN = "ansible_collections.probe.cache.plugins.modules.echo-"


@pytest.fixture(name="probe")
def probe_collection(tmp_path):
    root = tmp_path / "collections" / "ansible_collections" / "probe" / "cache"
    (root / "plugins" / "modules").mkdir(parents=True)
    (root / "plugins" / "module_utils").mkdir()
    (root / "galaxy.yml").write_text("namespace: probe\nname: cache\nversion: 1.0.0\nreadme: README.md\nauthors: [t]\n")
    (root / "plugins" / "modules" / "echo.py").write_text(MODULE.replace("@SUFFIX@", ""))
    (root / "plugins" / "module_utils" / "value.py").write_text('VALUE = "first"\n')
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # ansible-core's defaults, not the checkout's
    return root


def environment(tmp_path, cache: Path | None) -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"),
               ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.default",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "local-tmp"), ANSIBLE_PIPELINING="true")
    for name in ("TRADEOPS_DR_ANSIBALLZ_CACHE", "TRADEOPS_DR_PAYLOAD_BYTECODE"):
        env.pop(name, None)
    if cache is not None:
        env["TRADEOPS_DR_ANSIBALLZ_CACHE"] = str(cache)
    return env


def play(tmp_path, cache: Path | None, name: str = "play.yml") -> str:
    env = environment(tmp_path, cache)
    out = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
                          f"ansible_python_interpreter={sys.executable}", str(tmp_path / name)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def run(tmp_path, cache: Path | None) -> str:
    out = play(tmp_path, cache)
    return next(line.split("VALUE=")[1].strip().strip('"') for line in out.splitlines() if "VALUE=" in line)


def payloads(cache: Path) -> dict[str, Path]:
    """{digest folder: the echo module's cached payload} of what the cache holds."""
    found = {}
    for folder in cache.iterdir():
        if folder.name in ("yaml", "jinja"):  # parsed files and compiled templates (the tests below)
            continue
        files = [p for p in (folder / "ansiballz_cache").iterdir() if p.name.startswith(FQN) and p.suffix != ".lock"]
        assert len(files) == 1, files
        found[folder.name] = files[0]
    return found


@pytest.fixture(name="cache")
def cache_folder(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    return folder


def test_a_payload_is_built_once_then_read_back_and_built_again_when_a_source_changes(tmp_path, probe, cache):
    pth = [p for p in sys.path if p.endswith("site-packages")]
    assert any(os.path.exists(os.path.join(p, "tradeops_dr_ansiballz_cache.pth")) for p in pth), \
        "scripts/setup.sh did not write tradeops_dr_ansiballz_cache.pth into the venv"
    assert run(tmp_path, cache) == "first"
    built_payloads = payloads(cache)
    assert len(built_payloads) == 1, built_payloads
    first_key, first = next(iter(built_payloads.items()))
    built = first.stat()
    # the next run reads the payload back: an edit that keeps the file's size and time is not in the digest (sizes
    # and times are, as for make), so the run still says "first" - the proof that the kept payload ran, not a build
    util = probe / "plugins" / "module_utils" / "value.py"
    stamp = util.stat()
    util.write_text('VALUE = "frist"\n')
    os.utime(util, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert run(tmp_path, cache) == "first"
    assert list(payloads(cache)) == [first_key] and first.stat().st_mtime_ns == built.st_mtime_ns
    # a module_utils file edited (a new time): a new digest, a new build - never the stale payload
    util.write_text('VALUE = "second"\n')
    os.utime(util, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert run(tmp_path, cache) == "second"
    assert len(payloads(cache)) == 2
    # the module itself edited: its source is in the digest whatever its time
    module = probe / "plugins" / "modules" / "echo.py"
    mstamp = module.stat()
    module.write_text(MODULE.replace("@SUFFIX@", ' + "!"'))
    os.utime(module, ns=(mstamp.st_atime_ns, mstamp.st_mtime_ns))
    assert run(tmp_path, cache) == "second!"
    assert len(payloads(cache)) == 3
    assert all(p.stat().st_mode & 0o077 == 0 for p in cache.iterdir())


def forks_default(tmp_path, cache: Path | None) -> str:
    out = subprocess.run([str(BIN / "ansible-config"), "dump"], capture_output=True, text=True, cwd=tmp_path,
                         env=environment(tmp_path, cache), check=True, timeout=120)
    return next(line for line in out.stdout.splitlines() if line.startswith("DEFAULT_FORKS("))


def test_the_static_yaml_is_parsed_once_then_read_back(tmp_path, probe, cache):
    """ansible.builtin's routing and the configuration definitions, parsed by the first run, are read back by the
    next process: the kept definitions, edited here, are what ansible-config reports; without the cache (or once
    ansible-core's file differs: its bytes name the entry) ansible-core's own file is what counts."""
    assert run(tmp_path, cache) == "first"
    assert forks_default(tmp_path, cache) == "DEFAULT_FORKS(default) = 5"
    kept = {p: pickle.loads(p.read_bytes()) for p in (cache / "yaml").iterdir()}
    assert all(p.stat().st_mode & 0o077 == 0 for p in kept), "kept files others could read or write"
    routing = [v for v in kept.values() if "plugin_routing" in v]
    assert any("redirected_local" in r["plugin_routing"].get("connection", {}) for r in routing), "no builtin routing"
    definitions = next(p for p, v in kept.items() if "DEFAULT_FORKS" in v)
    value = kept[definitions]
    value["DEFAULT_FORKS"]["default"] = 7
    definitions.write_bytes(pickle.dumps(value))
    assert forks_default(tmp_path, cache) == "DEFAULT_FORKS(default) = 7"
    assert forks_default(tmp_path, None) == "DEFAULT_FORKS(default) = 5"
    assert run(tmp_path, cache) == "first"  # a playbook run with what it kept


TEMPLATES = """- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "WORD={{ 'abc' | upper }}"
      when: "'x' in 'xyz'"
"""


def swapped(code, old: str, new: str):
    """The code object with the string constant ``old`` replaced by ``new``, in it and every code object it holds."""
    consts = tuple(swapped(c, old, new) if hasattr(c, "co_consts") else (new if c == old else c)
                   for c in code.co_consts)
    return code.replace(co_consts=consts)


def holding(code, value: str) -> bool:
    return any(holding(c, value) if hasattr(c, "co_consts") else c == value for c in code.co_consts)


def test_compiled_templates_and_expressions_are_read_back_while_their_filters_resolve_alike(tmp_path, probe, cache):
    """The code Jinja generated for a template and for a `when` expression in one run is what the next run executes
    (edited here: the proof it is read back, not compiled again); kept beside the filters it names as they resolved
    then, and compiled again when one resolves otherwise."""
    (tmp_path / "templates.yml").write_text(TEMPLATES)
    assert "WORD=ABC" in play(tmp_path, cache, "templates.yml")
    kept = {p: marshal.loads(p.read_bytes()) for p in (cache / "jinja").iterdir()}
    assert all(p.stat().st_mode & 0o077 == 0 for p in kept), "kept files others could read or write"
    template = next(p for p, (used, code) in kept.items() if holding(code, "abc"))
    expression = next(p for p, (used, code) in kept.items() if holding(code, "xyz"))
    used, code = kept[template]
    assert ("filter", "upper", "") in used, used
    template.write_bytes(marshal.dumps((used, swapped(code, "abc", "def"))))
    assert "WORD=DEF" in play(tmp_path, cache, "templates.yml")
    assert "WORD=ABC" in play(tmp_path, None, "templates.yml")  # without the cache: Jinja compiles as usual
    # the `when` expression's kept code, edited to `'x' in 'abc'`, skips the task
    used_expression, code_expression = kept[expression]
    expression.write_bytes(marshal.dumps((used_expression, swapped(code_expression, "xyz", "abc"))))
    assert "WORD=" not in play(tmp_path, cache, "templates.yml")
    # a filter that no longer resolves as it did (here: claimed to have wanted the context): compiled again
    template.write_bytes(marshal.dumps(((("filter", "upper", "context"),), swapped(code, "abc", "def"))))
    expression.write_bytes(marshal.dumps(kept[expression]))
    assert "WORD=ABC" in play(tmp_path, cache, "templates.yml")


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_folder_others_can_write_or_no_variable_leaves_ansible_core_alone(tmp_path, probe, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)  # its files would be unpickled by every run: nobody else may write there
    assert run(tmp_path, shared) == "first"
    assert not list(shared.iterdir())
    assert run(tmp_path, None) == "first"


def test_without_the_builder_it_knows_nothing_is_changed():
    from types import SimpleNamespace

    from tradeops_dr import ansiballz_cache

    assert ansiballz_cache.patch(SimpleNamespace(C=SimpleNamespace(DEFAULT_LOCAL_TMP="/tmp")), "/nowhere") is False
    assert ansiballz_cache.patch(SimpleNamespace(_find_module_utils=lambda **kw: kw, C=SimpleNamespace()),
                                 "/nowhere") is False
